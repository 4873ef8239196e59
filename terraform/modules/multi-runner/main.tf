################################################################################
# Several runner configurations behind one webhook: upstream's `modules/multi-runner`.
# One GitHub App (SSM), one webhook (EventBridge or direct mode), per configuration a queue,
# a launch template and scale-up/scale-down functions (`<prefix>-<key>-…`, ghr:environment
# `<prefix>-<key>`, SSM root `/<root>/<prefix>/<key>`), one syncer per OS/architecture in use,
# one dashboard for all of them.
################################################################################

locals {
  # Upstream's examples pass a key id (`aws_kms_key.x.key_id`) as `kms_key_arn`: IAM needs the ARN.
  # (HCL evaluates both branches of a conditional: hence the coalesce.)
  kms_key_arn = startswith(coalesce(var.kms_key_arn, "arn:"), "arn:") ? var.kms_key_arn : (
    "arn:${data.aws_partition.current.partition}:kms:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:key/${coalesce(var.kms_key_arn, "-")}"
  )
  tags     = merge(var.tags, { "ghr:environment" = var.prefix })
  ssm_root = "/${var.ssm_paths.root}/${var.prefix}"
  arch_dir = var.lambda_architecture == "arm64" ? "arm64" : "x86_64"
  zip      = { for f in ["webhook", "dispatcher", "scale-up", "scale-down", "syncer", "pool", "warm-pool", "job-retry", "ssm-housekeeper", "ami-housekeeper", "termination-watcher", "redelivery"] : f => "${path.module}/../../../target/lambda/${local.arch_dir}/${f}/bootstrap.zip" }

  # Settings every function shares (see modules/lambda); `prefix`/`environment` are the
  # configuration's for its own functions.
  lambda = {
    prefix                    = var.prefix
    environment               = var.prefix
    architecture              = var.lambda_architecture
    log_level                 = var.log_level
    metrics_namespace         = var.metrics.namespace
    logging_retention_in_days = var.logging_retention_in_days
    logging_kms_key_id        = var.logging_kms_key_id
    log_class                 = var.log_class
    role_path                 = coalesce(var.role_path, "/${var.prefix}/")
    role_permissions_boundary = var.role_permissions_boundary
    subnet_ids                = var.lambda_subnet_ids
    security_group_ids        = var.lambda_security_group_ids
    tags                      = merge(local.tags, var.lambda_tags)
    tracing_mode              = var.tracing_config.mode
    principals                = var.lambda_principals
  }

  # A configuration's labels: the defaults (unless disabled), its extra labels and every label
  # its matchers ask for (as upstream: a job that matched must find a runner with its labels).
  labels = { for key, c in var.multi_runner_config : key => sort(distinct([for l in concat(
    c.runner_config.runner_disable_default_labels ? [] : ["self-hosted", c.runner_config.runner_os, c.runner_config.runner_architecture],
    c.runner_config.runner_extra_labels,
    flatten(c.matcherConfig.labelMatchers),
  ) : l])) }

  # One syncer per OS and architecture that a configuration with the syncer uses.
  syncers = { for os_arch in distinct([for c in var.multi_runner_config : "${c.runner_config.runner_os}-${c.runner_config.runner_architecture}" if c.runner_config.enable_runner_binaries_syncer]) :
    os_arch => { os = split("-", os_arch)[0], architecture = split("-", os_arch)[1] }
  }
}

module "ssm" {
  source                 = "../ssm"
  path_prefix            = "${local.ssm_root}/${var.ssm_paths.app}"
  github_app             = var.github_app
  additional_github_apps = var.additional_github_apps
  kms_key_arn            = local.kms_key_arn
  tags                   = local.tags
}

module "runner_binaries" {
  source                           = "../runner-binaries-syncer"
  for_each                         = local.syncers
  prefix                           = "${var.prefix}-${each.key}"
  tags                             = local.tags
  runner_os                        = each.value.os
  runner_architecture              = each.value.architecture
  runner_version                   = var.runner_binaries_version
  ghes_url                         = var.ghes_url
  ghes_ssl_verify                  = var.ghes_ssl_verify
  user_agent                       = var.user_agent
  state_event_rule_binaries_syncer = var.state_event_rule_binaries_syncer
  s3_sse_configuration             = var.runner_binaries_s3_sse_configuration
  s3_versioning                    = var.runner_binaries_s3_versioning
  s3_logging_bucket                = var.runner_binaries_s3_logging_bucket
  s3_logging_bucket_prefix         = var.runner_binaries_s3_logging_bucket_prefix
  s3_tags                          = var.runner_binaries_s3_tags
  lambda = merge(local.lambda, {
    prefix      = "${var.prefix}-${each.key}"
    zip         = coalesce(var.runner_binaries_syncer_lambda_zip, local.zip["syncer"])
    memory_size = var.runner_binaries_syncer_memory_size
    timeout     = var.runner_binaries_syncer_lambda_timeout
  })
}

module "runners" {
  source   = "../runners"
  for_each = var.multi_runner_config

  prefix                                  = "${var.prefix}-${each.key}"
  tags                                    = merge(local.tags, { "ghr:environment" = "${var.prefix}-${each.key}" })
  vpc_id                                  = coalesce(each.value.runner_config.vpc_id, var.vpc_id)
  subnet_ids                              = coalesce(each.value.runner_config.subnet_ids, var.subnet_ids)
  ssm_root                                = "${local.ssm_root}/${each.key}"
  kms_key_arn                             = local.kms_key_arn
  app_parameters                          = module.ssm.app_parameters
  app_parameter_path                      = "${local.ssm_root}/${var.ssm_paths.app}"
  secret_parameter_arns                   = concat(module.ssm.app_parameters.arns, [module.ssm.parameters.webhook_secret.arn])
  ghes_url                                = var.ghes_url
  ghes_ssl_verify                         = var.ghes_ssl_verify
  user_agent                              = var.user_agent
  enable_organization_runners             = each.value.runner_config.enable_organization_runners
  runner_group_name                       = each.value.runner_config.runner_group_name
  runner_name_prefix                      = each.value.runner_config.runner_name_prefix
  runner_labels                           = local.labels[each.key]
  disable_runner_autoupdate               = each.value.runner_config.disable_runner_autoupdate
  enable_ephemeral_runners                = each.value.runner_config.enable_ephemeral_runners
  enable_jit_config                       = each.value.runner_config.enable_jit_config
  enable_job_queued_check                 = each.value.runner_config.enable_job_queued_check
  runners_maximum_count                   = each.value.runner_config.runners_maximum_count
  scale_down_schedule_expression          = each.value.runner_config.scale_down_schedule_expression
  minimum_running_time_in_minutes         = each.value.runner_config.minimum_running_time_in_minutes
  runner_boot_time_in_minutes             = each.value.runner_config.runner_boot_time_in_minutes
  scale_down_job_start_grace_seconds      = var.scale_down_job_start_grace_seconds
  scale_down_withdrawal_wait_seconds      = var.scale_down_withdrawal_wait_seconds
  runner_offline_timeout_in_minutes       = var.runner_offline_timeout_in_minutes
  idle_config                             = each.value.runner_config.idle_config
  scale_up_reserved_concurrent_executions = each.value.runner_config.scale_up_reserved_concurrent_executions
  lambda_event_source_mapping_batch_size  = coalesce(each.value.runner_config.lambda_event_source_mapping_batch_size, var.lambda_event_source_mapping_batch_size)
  lambda_event_source_mapping_maximum_batching_window_in_seconds = coalesce(
    each.value.runner_config.lambda_event_source_mapping_maximum_batching_window_in_seconds,
    var.lambda_event_source_mapping_maximum_batching_window_in_seconds,
  )
  delay_webhook_event                         = each.value.runner_config.delay_webhook_event
  job_queue_retention_in_seconds              = each.value.runner_config.job_queue_retention_in_seconds
  redrive_build_queue                         = each.value.redrive_build_queue
  queue_encryption                            = var.queue_encryption
  instance_types                              = each.value.runner_config.instance_types
  instance_target_capacity_type               = each.value.runner_config.instance_target_capacity_type
  instance_allocation_strategy                = each.value.runner_config.instance_allocation_strategy
  instance_type_priorities                    = each.value.runner_config.instance_type_priorities
  instance_max_spot_price                     = each.value.runner_config.instance_max_spot_price
  enable_runner_on_demand_failover_for_errors = each.value.runner_config.enable_on_demand_failover_for_errors
  scale_errors                                = each.value.runner_config.scale_errors
  use_dedicated_host                          = each.value.runner_config.use_dedicated_host
  ami                                         = each.value.runner_config.ami
  block_device_mappings                       = each.value.runner_config.block_device_mappings
  runner_metadata_options                     = each.value.runner_config.runner_metadata_options
  runner_ec2_tags                             = each.value.runner_config.runner_ec2_tags
  key_name                                    = var.key_name
  associate_public_ipv4_address               = var.associate_public_ipv4_address
  enable_managed_runner_security_group        = var.enable_managed_runner_security_group
  runner_additional_security_group_ids        = distinct(concat(var.runner_additional_security_group_ids, each.value.runner_config.runner_additional_security_group_ids))
  runner_egress_rules                         = var.runner_egress_rules
  runners_ebs_optimized                       = each.value.runner_config.ebs_optimized
  credit_specification                        = each.value.runner_config.credit_specification
  cpu_options                                 = each.value.runner_config.cpu_options
  placement                                   = each.value.runner_config.placement
  license_specifications                      = each.value.runner_config.license_specifications
  userdata_content                            = each.value.runner_config.userdata_content
  enable_runner_detailed_monitoring           = each.value.runner_config.enable_runner_detailed_monitoring
  create_service_linked_role_spot             = each.value.runner_config.create_service_linked_role_spot
  runner_os                                   = each.value.runner_config.runner_os
  runner_architecture                         = each.value.runner_config.runner_architecture
  runner_as_root                              = each.value.runner_config.runner_as_root
  runner_run_as                               = each.value.runner_config.runner_run_as
  runner_disable_default_labels               = each.value.runner_config.runner_disable_default_labels
  enable_userdata                             = each.value.runner_config.enable_userdata
  userdata_template                           = each.value.runner_config.userdata_template
  userdata_pre_install                        = each.value.runner_config.userdata_pre_install
  userdata_post_install                       = each.value.runner_config.userdata_post_install
  runner_hook_job_started                     = each.value.runner_config.runner_hook_job_started
  runner_hook_job_completed                   = each.value.runner_config.runner_hook_job_completed
  enable_user_data_debug_logging_runner       = var.enable_user_data_debug_logging_runner
  enable_cloudwatch_agent                     = each.value.runner_config.enable_cloudwatch_agent
  cloudwatch_config                           = each.value.runner_config.cloudwatch_config != null ? each.value.runner_config.cloudwatch_config : var.cloudwatch_config
  runner_log_files                            = each.value.runner_config.runner_log_files
  logging_retention_in_days                   = var.logging_retention_in_days
  logging_kms_key_id                          = var.logging_kms_key_id
  enable_ssm_on_runners                       = each.value.runner_config.enable_ssm_on_runners
  runner_distribution                         = each.value.runner_config.enable_runner_binaries_syncer ? module.runner_binaries["${each.value.runner_config.runner_os}-${each.value.runner_config.runner_architecture}"].runner_distribution : null
  parameter_store_tags                        = var.parameter_store_tags
  role_path                                   = coalesce(var.role_path, "/${var.prefix}/")
  role_permissions_boundary                   = var.role_permissions_boundary
  instance_profile_path                       = var.instance_profile_path
  runner_iam_role_managed_policy_arns         = each.value.runner_config.runner_iam_role_managed_policy_arns
  enable_metric_github_app_rate_limit         = var.metrics.metric.enable_github_app_rate_limit
  lambda = merge(local.lambda, {
    prefix      = "${var.prefix}-${each.key}"
    environment = "${var.prefix}-${each.key}"
  })
  scale_up_lambda = {
    zip         = coalesce(var.scale_up_lambda_zip, local.zip["scale-up"])
    memory_size = var.scale_up_lambda_memory_size
    timeout     = var.runners_scale_up_lambda_timeout
  }
  scale_down_lambda = {
    zip         = coalesce(var.scale_down_lambda_zip, local.zip["scale-down"])
    memory_size = var.scale_down_lambda_memory_size
    timeout     = var.runners_scale_down_lambda_timeout
  }
  pool = {
    config                         = each.value.runner_config.pool_config
    runner_owner                   = each.value.runner_config.pool_runner_owner
    hold_minutes                   = var.pool_hold_minutes
    zip                            = coalesce(var.pool_lambda_zip, local.zip["pool"])
    timeout                        = var.pool_lambda_timeout
    reserved_concurrent_executions = var.pool_lambda_reserved_concurrent_executions
  }
  job_retry       = merge(each.value.runner_config.job_retry, { zip = coalesce(var.job_retry_lambda_zip, local.zip["job-retry"]) })
  warm_pool       = merge(each.value.runner_config.warm_pool, { zip = coalesce(var.warm_pool_lambda_zip, local.zip["warm-pool"]) })
  ssm_housekeeper = merge(var.runners_ssm_housekeeper, { zip = coalesce(var.ssm_housekeeper_lambda_zip, local.zip["ssm-housekeeper"]) })
}

module "webhook" {
  source   = "../webhook"
  prefix   = var.prefix
  ssm_path = "${local.ssm_root}/${var.ssm_paths.webhook}"
  runner_matcher_config = { for key, c in var.multi_runner_config : key => {
    id   = module.runners[key].queue.id
    arn  = module.runners[key].queue.arn
    fifo = module.runners[key].queue.fifo
    matcherConfig = {
      labelMatchers           = c.matcherConfig.labelMatchers
      exactMatch              = c.matcherConfig.exactMatch
      bidirectionalLabelMatch = c.matcherConfig.bidirectionalLabelMatch
      priority                = c.matcherConfig.priority
      enableDynamicLabels     = c.matcherConfig.enableDynamicLabels
      awsDynamicLabelsPolicy  = c.matcherConfig.awsDynamicLabelsPolicy
    }
  } }
  matcher_config_parameter_store_tier = var.matcher_config_parameter_store_tier
  webhook_secret_parameter            = module.ssm.parameters.webhook_secret
  repository_white_list               = var.repository_white_list
  queue_selection_strategy            = var.queue_selection_strategy
  enable_function_url                 = var.enable_webhook_function_url
  # Upstream's empty `accept_events` means every event, as null does here.
  eventbridge = {
    enable        = var.eventbridge.enable
    accept_events = length(var.eventbridge.accept_events) == 0 ? null : var.eventbridge.accept_events
  }
  dispatcher_lambda = {
    zip         = coalesce(var.dispatcher_lambda_zip, local.zip["dispatcher"])
    memory_size = var.webhook_lambda_memory_size
    timeout     = var.webhook_lambda_timeout
  }
  apigateway_access_log_settings = var.webhook_lambda_apigateway_access_log_settings
  kms_key_arn                    = local.kms_key_arn
  tags                           = local.tags
  lambda = merge(local.lambda, {
    zip         = coalesce(var.webhook_lambda_zip, local.zip["webhook"])
    memory_size = var.webhook_lambda_memory_size
    timeout     = var.webhook_lambda_timeout
  })
}

module "webhook_redelivery" {
  source               = "../webhook-redelivery"
  count                = var.enable_webhook_redelivery ? 1 : 0
  lambda               = local.lambda
  zip                  = coalesce(var.webhook_redelivery_lambda_zip, local.zip["redelivery"])
  app_parameters       = module.ssm.app_parameters
  checkpoint_parameter = "${local.ssm_root}/${var.ssm_paths.webhook}/redelivery-checkpoints"
  schedule_expression  = var.webhook_redelivery_schedule_expression
  window_minutes       = var.webhook_redelivery_window_minutes
  max_attempts         = var.webhook_redelivery_max_attempts
  ghes_url             = var.ghes_url
  ghes_ssl_verify      = var.ghes_ssl_verify
  user_agent           = var.user_agent
  kms_key_arn          = local.kms_key_arn
}

module "ami_housekeeper" {
  source              = "../ami-housekeeper"
  count               = var.enable_ami_housekeeper ? 1 : 0
  lambda              = local.lambda
  zip                 = coalesce(var.ami_housekeeper_lambda_zip, local.zip["ami-housekeeper"])
  memory_size         = var.ami_housekeeper_lambda_memory_size
  timeout             = var.ami_housekeeper_lambda_timeout
  schedule_expression = var.ami_housekeeper_lambda_schedule_expression
  # Beyond upstream: when the templates to read are listed, every runner configuration's own is
  # one of them, so that their images are never deregistered by a list that forgot one.
  cleanup_config = merge(var.ami_housekeeper_cleanup_config, {
    launchTemplateNames = var.ami_housekeeper_cleanup_config.launchTemplateNames == null ? null : distinct(concat(var.ami_housekeeper_cleanup_config.launchTemplateNames, [for r in module.runners : r.launch_template.name]))
  })
}

module "instance_termination_watcher" {
  source = "../termination-watcher"
  count  = var.instance_termination_watcher.enable ? 1 : 0
  # Upstream's settings (`features`, `enable_runner_deregistration`, `memory_size`, `timeout`,
  # `zip`) over the deployment's; every App can deregister.
  config = merge(var.instance_termination_watcher, {
    prefix                       = var.prefix
    architecture                 = var.lambda_architecture
    zip                          = coalesce(var.instance_termination_watcher.zip, var.termination_watcher_lambda_zip, local.zip["termination-watcher"])
    tags                         = local.tags
    lambda_tags                  = var.lambda_tags
    log_level                    = var.log_level
    log_class                    = var.log_class
    logging_kms_key_id           = var.logging_kms_key_id
    logging_retention_in_days    = var.logging_retention_in_days
    role_path                    = local.lambda.role_path
    role_permissions_boundary    = var.role_permissions_boundary
    principals                   = var.lambda_principals
    subnet_ids                   = var.lambda_subnet_ids
    security_group_ids           = var.lambda_security_group_ids
    tracing_config               = var.tracing_config
    metrics                      = { enable = var.metrics.enable, namespace = var.metrics.namespace, metric = { enable_spot_termination_warning = var.metrics.metric.enable_spot_termination_warning } }
    app_parameters               = module.ssm.app_parameters
    kms_key_arn                  = local.kms_key_arn
    ghes_url                     = var.ghes_url
    ghes_ssl_verify              = var.ghes_ssl_verify
    user_agent                   = var.user_agent
    enable_runner_deregistration = var.instance_termination_watcher.enable_runner_deregistration
    # Each configuration's rescued jobs go to its own build queue, or to the fallback's.
    job_rescue = var.job_rescue.enable ? {
      max_attempts = var.job_rescue.max_attempts
      # (An unknown fallback falls back to the configuration here; terraform_data.job_rescue
      # fails the plan for it.)
      queues = { for key, runners in module.runners : "${var.prefix}-${key}" => {
        url = lookup(module.runners, coalesce(var.job_rescue.fallback_runner, key), runners).queue.id
        arn = lookup(module.runners, coalesce(var.job_rescue.fallback_runner, key), runners).queue.arn
      } }
    } : null
  })
}

# What job_rescue needs, checked at plan. (A variable validation reading another variable needs
# Terraform 1.9; these modules support 1.7.)
resource "terraform_data" "job_rescue" {
  count = var.job_rescue.enable ? 1 : 0
  lifecycle {
    precondition {
      condition     = var.instance_termination_watcher.enable
      error_message = "job_rescue needs the termination watcher: set instance_termination_watcher.enable = true."
    }
    precondition {
      condition     = var.job_rescue.fallback_runner == null || contains(keys(var.multi_runner_config), coalesce(var.job_rescue.fallback_runner, "-"))
      error_message = "job_rescue.fallback_runner names a key of multi_runner_config."
    }
  }
}

module "monitoring" {
  source    = "../monitoring"
  count     = var.metrics.enable ? 1 : 0
  prefix    = var.prefix
  namespace = var.metrics.namespace
  functions = merge(
    {
      webhook                  = module.webhook.lambda.function.name
      dispatcher               = try(module.webhook.eventbridge.dispatcher.function.name, null)
      redelivery               = var.enable_webhook_redelivery ? module.webhook_redelivery[0].lambda.function.name : null
      ami_housekeeper          = var.enable_ami_housekeeper ? module.ami_housekeeper[0].lambda.function.name : null
      termination_notification = var.instance_termination_watcher.enable ? lookup(module.instance_termination_watcher[0].function_names, "notification", null) : null
      termination_handler      = var.instance_termination_watcher.enable ? lookup(module.instance_termination_watcher[0].function_names, "handler", null) : null
      deregister_retry         = var.instance_termination_watcher.enable ? lookup(module.instance_termination_watcher[0].function_names, "retry", null) : null
    },
    { for key, r in module.runners : "${key}-scale_up" => r.lambda_up.function.name },
    { for key, r in module.runners : "${key}-scale_down" => r.lambda_down.function.name },
    { for key, r in module.runners : "${key}-warm_pool" => try(r.lambda_warm_pool.function.name, null) },
    { for key, s in module.runner_binaries : "${key}-syncer" => s.lambda.function.name },
  )
  runner_environments = [for key in keys(var.multi_runner_config) : "${var.prefix}-${key}"]
  syncer_environments = [for key in keys(local.syncers) : "${var.prefix}-${key}"]
  build_queues = { for key, c in var.multi_runner_config : key => {
    name                   = module.runners[key].queue.name
    dead_letter_queue_name = try(module.runners[key].queue.dlq.name, null)
    dead_letter            = c.redrive_build_queue.enabled
  } }
  github_app_ids                     = compact(concat([nonsensitive(var.github_app.id)], [for a in nonsensitive(var.additional_github_apps) : a.id]))
  dispatcher_dead_letter_queue       = { enabled = var.eventbridge.enable, name = try(module.webhook.eventbridge.dead_letter_queue.name, null) }
  deregister_retry_dead_letter_queue = { enabled = var.instance_termination_watcher.enable && (var.instance_termination_watcher.enable_runner_deregistration || var.job_rescue.enable), name = try(module.instance_termination_watcher[0].deregister_retry.dlq_name, null) }
  alarm_actions                      = var.alarm_actions
  thresholds                         = var.alarm_thresholds
  tags                               = local.tags
}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

check "provider_region" {
  assert {
    condition     = data.aws_region.current.name == var.aws_region
    error_message = "aws_region (${var.aws_region}) differs from the provider's region (${data.aws_region.current.name}): runners and functions would be created in the provider's region."
  }
}

# Upstream inputs accepted before their feature is here: warned about at plan time, by name,
# never a silent no-op (a `check` block warns; it does not fail the plan).
locals {
  unsupported_in_use = merge(
    {
      "lambda_s3_bucket (deploy the zips from S3)" = var.lambda_s3_bucket != null
      "iam_overrides"                              = coalesce(var.iam_overrides.override_instance_profile, false) || coalesce(var.iam_overrides.override_runner_role, false)
    },
    { for key, c in var.multi_runner_config : "${key}: block_device_mappings.volume_initialization_rate" => anytrue([for b in c.runner_config.block_device_mappings : b.volume_initialization_rate != null]) },
    { for key, c in var.multi_runner_config : "${key}: iam_overrides" => coalesce(c.runner_config.iam_overrides.override_instance_profile, false) || coalesce(c.runner_config.iam_overrides.override_runner_role, false) },
  )
  unsupported = sort([for name, used in local.unsupported_in_use : name if used])
  ignored = merge(
    var.runners_lambda_zip == null ? {} : { runners_lambda_zip = "set scale_up_lambda_zip and scale_down_lambda_zip: each Rust function has its own zip" },
    var.lambda_runtime == "nodejs24.x" ? {} : { lambda_runtime = "the functions are Rust binaries on provided.al2023" },
    var.webhook_lambda_s3_key == null && var.syncer_lambda_s3_key == null && var.runners_lambda_s3_key == null && var.ami_housekeeper_lambda_s3_key == null ? {} : { "*_lambda_s3_key" = "set the *_lambda_zip variables (deploying from S3 is not supported yet)" },
    var.aws_partition == data.aws_partition.current.partition ? {} : { aws_partition = "the partition is the provider's, ${data.aws_partition.current.partition}" },
  )
}

check "unsupported_features" {
  assert {
    condition     = length(local.unsupported) == 0
    error_message = "Accepted but not implemented yet, so without effect: ${join("; ", local.unsupported)}. See docs/migrating.md."
  }
}

check "ignored_inputs" {
  assert {
    condition     = length(local.ignored) == 0
    error_message = "Without meaning in this project, ignored: ${join("; ", [for name, instead in local.ignored : "${name} (${instead})"])}."
  }
}
