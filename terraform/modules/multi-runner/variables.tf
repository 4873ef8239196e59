# Generated from upstream's modules/multi-runner interface (v7.11: names, types, defaults and
# validations, tests/fixtures/upstream/modules) with this project's descriptions; the variables
# after the marker below are this project's own. A test compares the two interfaces.

variable "github_app" {
  description = <<-EOT
    The GitHub App: its id, private key (base64 of the PEM file GitHub gives you) and webhook
    secret, each as a value (`id`, `key_base64`, `webhook_secret`) or an existing SSM parameter
    (`id_ssm`, `key_base64_ssm`, `webhook_secret_ssm` = `{ arn, name }`).
  EOT
  type = object({
    key_base64 = optional(string)
    key_base64_ssm = optional(object({
      arn  = string
      name = string
    }))
    id = optional(string)
    id_ssm = optional(object({
      arn  = string
      name = string
    }))
    webhook_secret = optional(string)
    webhook_secret_ssm = optional(object({
      arn  = string
      name = string
    }))
  })

  validation {
    condition     = (var.github_app.key_base64 != null || var.github_app.key_base64_ssm != null) && (var.github_app.id != null || var.github_app.id_ssm != null) && (var.github_app.webhook_secret != null || var.github_app.webhook_secret_ssm != null)
    error_message = <<EOF
     You must set all of the following parameters, choosing one option from each pair:
      - `key_base64` or `key_base64_ssm`
      - `id` or `id_ssm`
      - `webhook_secret` or `webhook_secret_ssm`
    EOF
  }
  sensitive = true
}

variable "additional_github_apps" {
  description = "More GitHub Apps installed on the same owners, to spread the API rate limit: `id`/`id_ssm`, `key_base64`/`key_base64_ssm`, optional `installation_id`/`installation_id_ssm`."
  type = list(object({
    key_base64          = optional(string)
    key_base64_ssm      = optional(object({ arn = string, name = string }))
    id                  = optional(string)
    id_ssm              = optional(object({ arn = string, name = string }))
    installation_id     = optional(string)
    installation_id_ssm = optional(object({ arn = string, name = string }))
  }))
  default = []
  validation {
    condition = alltrue([
      for app in var.additional_github_apps :
      (app.key_base64 != null || app.key_base64_ssm != null) &&
      (app.id != null || app.id_ssm != null)
    ])
    error_message = "Each additional GitHub app must provide either key_base64 or key_base64_ssm, and either id or id_ssm."
  }
  sensitive = true
}

variable "prefix" {
  description = "Name prefix of every resource and the `ghr:environment` tag of the runners."
  type        = string
  default     = "github-actions"
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the SSM parameters, or null for `aws/ssm`."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "multi_runner_config" {
  description = <<-EOT
    The runner configurations, by key (the key names the configuration's queue, functions and
    runners: `<prefix>-<key>-…`). Each entry:
    - `runner_config`: the runner settings of the root module's variables of the same names
      (`runner_os`, `runner_architecture`, `instance_types`, `runners_maximum_count`,
      `enable_ephemeral_runners`, `runner_extra_labels`, `ami`, `idle_config`, ...);
      `vpc_id`/`subnet_ids` override the module's; `cpu_options`, `placement`,
      `license_specifications`, `credit_specification` and `userdata_content` as the root's
      `runner_*` variables; `pool_config` and `pool_runner_owner` (a pool for that configuration)
      and `job_retry` as the root's variables; `warm_pool` (beyond upstream) as the root's. `iam_overrides` is accepted with a plan-time warning
      until it is implemented.
    - `matcherConfig`: `labelMatchers` (label sets a job's labels are matched against),
      `exactMatch`, `bidirectionalLabelMatch`, `priority` (0-999, lower first),
      `enableDynamicLabels` (jobs' `ghr-` labels accepted, `ghr-ec2-*` ones set EC2 settings per
      job) and `awsDynamicLabelsPolicy` (what `ghr-ec2-<key>` labels may ask for; see
      docs/dynamic-labels.md).
    - `redrive_build_queue`: `enabled` and `maxReceiveCount` of the build queue's dead-letter queue.
  EOT
  type = map(object({
    runner_config = object({
      runner_os           = string
      runner_architecture = string
      runner_metadata_options = optional(map(any), {
        instance_metadata_tags      = "enabled"
        http_endpoint               = "enabled"
        http_tokens                 = "required"
        http_put_response_hop_limit = 1
      })
      ami = optional(object({
        filter               = optional(map(list(string)), { state = ["available"] })
        owners               = optional(list(string), ["amazon"])
        id_ssm_parameter_arn = optional(string, null)
        kms_key_arn          = optional(string, null)
      }), null)
      create_service_linked_role_spot      = optional(bool, false)
      credit_specification                 = optional(string, null)
      delay_webhook_event                  = optional(number, 30)
      disable_runner_autoupdate            = optional(bool, false)
      ebs_optimized                        = optional(bool, false)
      enable_ephemeral_runners             = optional(bool, false)
      enable_job_queued_check              = optional(bool, null)
      enable_on_demand_failover_for_errors = optional(list(string), [])
      scale_errors = optional(list(string), [
        "UnfulfillableCapacity",
        "MaxSpotInstanceCountExceeded",
        "TargetCapacityLimitExceededException",
        "RequestLimitExceeded",
        "ResourceLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "MaxSpotFleetRequestCountExceeded",
        "InsufficientInstanceCapacity",
        "InsufficientCapacityOnHost",
      ])
      enable_organization_runners                                    = optional(bool, false)
      enable_runner_binaries_syncer                                  = optional(bool, true)
      enable_ssm_on_runners                                          = optional(bool, false)
      enable_userdata                                                = optional(bool, true)
      instance_allocation_strategy                                   = optional(string, "lowest-price")
      instance_type_priorities                                       = optional(map(number), null)
      instance_max_spot_price                                        = optional(string, null)
      instance_target_capacity_type                                  = optional(string, "spot")
      instance_types                                                 = list(string)
      job_queue_retention_in_seconds                                 = optional(number, 86400)
      minimum_running_time_in_minutes                                = optional(number, null)
      pool_runner_owner                                              = optional(string, null)
      runner_as_root                                                 = optional(bool, false)
      runner_boot_time_in_minutes                                    = optional(number, 5)
      runner_disable_default_labels                                  = optional(bool, false)
      runner_extra_labels                                            = optional(list(string), [])
      runner_group_name                                              = optional(string, "Default")
      runner_name_prefix                                             = optional(string, "")
      runner_run_as                                                  = optional(string, "ec2-user")
      runners_maximum_count                                          = number
      runner_additional_security_group_ids                           = optional(list(string), [])
      scale_down_schedule_expression                                 = optional(string, "cron(*/5 * * * ? *)")
      scale_up_reserved_concurrent_executions                        = optional(number, 1)
      lambda_event_source_mapping_batch_size                         = optional(number, null)
      lambda_event_source_mapping_maximum_batching_window_in_seconds = optional(number, null)
      userdata_template                                              = optional(string, null)
      userdata_content                                               = optional(string, null)
      enable_jit_config                                              = optional(bool, null)
      enable_runner_detailed_monitoring                              = optional(bool, false)
      enable_cloudwatch_agent                                        = optional(bool, true)
      cloudwatch_config                                              = optional(string, null)
      userdata_pre_install                                           = optional(string, "")
      userdata_post_install                                          = optional(string, "")
      runner_hook_job_started                                        = optional(string, "")
      runner_hook_job_completed                                      = optional(string, "")
      runner_ec2_tags                                                = optional(map(string), {})
      runner_iam_role_managed_policy_arns                            = optional(list(string), [])
      vpc_id                                                         = optional(string, null)
      subnet_ids                                                     = optional(list(string), null)
      idle_config = optional(list(object({
        cron             = string
        timeZone         = string
        idleCount        = number
        evictionStrategy = optional(string, "oldest_first")
      })), [])
      cpu_options = optional(object({
        core_count            = optional(number)
        threads_per_core      = optional(number)
        amd_sev_snp           = optional(string)
        nested_virtualization = optional(string)
      }), null)
      placement = optional(object({
        affinity                = optional(string)
        availability_zone       = optional(string)
        group_id                = optional(string)
        group_name              = optional(string)
        host_id                 = optional(string)
        host_resource_group_arn = optional(string)
        spread_domain           = optional(string)
        tenancy                 = optional(string)
        partition_number        = optional(number)
      }), null)
      license_specifications = optional(list(object({
        license_configuration_arn = string
      })), [])
      use_dedicated_host = optional(bool, false)
      runner_log_files = optional(list(object({
        log_group_name   = string
        prefix_log_group = bool
        file_path        = string
        log_stream_name  = string
        log_class        = optional(string, "STANDARD")
      })), null)
      block_device_mappings = optional(list(object({
        delete_on_termination      = optional(bool, true)
        device_name                = optional(string, "/dev/xvda")
        encrypted                  = optional(bool, true)
        iops                       = optional(number)
        kms_key_id                 = optional(string)
        snapshot_id                = optional(string)
        throughput                 = optional(number)
        volume_initialization_rate = optional(number)
        volume_size                = number
        volume_type                = optional(string, "gp3")
        })), [{
        volume_size = 30
      }])
      pool_config = optional(list(object({
        schedule_expression          = string
        schedule_expression_timezone = optional(string)
        size                         = number
      })), [])
      warm_pool = optional(object({
        size                = optional(number, 0)
        max_age_hours       = optional(number, 24)
        hibernate           = optional(bool, false)
        schedule_expression = optional(string, "rate(2 minutes)")
        lambda_memory_size  = optional(number, 256)
        lambda_timeout      = optional(number, 60)
      }), {})
      job_retry = optional(object({
        enable             = optional(bool, false)
        delay_in_seconds   = optional(number, 300)
        delay_backoff      = optional(number, 2)
        lambda_memory_size = optional(number, 256)
        lambda_timeout     = optional(number, 30)
        max_attempts       = optional(number, 1)
      }), {})
      iam_overrides = optional(object({
        override_instance_profile = optional(bool, null)
        instance_profile_name     = optional(string, null)
        override_runner_role      = optional(bool, null)
        runner_role_arn           = optional(string, null)
        }), {
        override_instance_profile = false
        instance_profile_name     = null
        override_runner_role      = false
        runner_role_arn           = null
      })
    })
    matcherConfig = object({
      labelMatchers           = list(list(string))
      exactMatch              = optional(bool, false)
      bidirectionalLabelMatch = optional(bool, false)
      priority                = optional(number, 999)
      enableDynamicLabels     = optional(bool, false)
      # Typed (upstream: `any`): a map of configurations where only some have a policy
      # cannot be converted with `any` ("attribute types must all match").
      awsDynamicLabelsPolicy = optional(object({
        blocked_keys = optional(list(string), [])
        restricted_keys = optional(map(object({
          allowed = optional(list(string))
          denied  = optional(list(string))
          max     = optional(string)
        })), {})
      }))
    })
    redrive_build_queue = optional(object({
      enabled         = bool
      maxReceiveCount = number
      }), {
      enabled         = false
      maxReceiveCount = null
    })
  }))
}

variable "scale_up_lambda_memory_size" {
  description = "Memory (MB) of each configuration's scale-up function."
  type        = number
  default     = 512
}

variable "runners_scale_up_lambda_timeout" {
  description = "Scale-up timeout (s); also the build queue's visibility timeout."
  type        = number
  default     = 30
}

variable "scale_down_lambda_memory_size" {
  description = "Memory (MB) of each configuration's scale-down function."
  type        = number
  default     = 512
}

variable "runners_scale_down_lambda_timeout" {
  description = "Scale-down timeout (s)."
  type        = number
  default     = 60
}

variable "webhook_lambda_zip" {
  description = "Webhook zip; null for `target/lambda/<arch>/webhook/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "webhook_lambda_memory_size" {
  description = "Webhook memory (MB)."
  type        = number
  default     = 256
}

variable "webhook_lambda_timeout" {
  description = "Webhook timeout (s); GitHub waits 10 s."
  type        = number
  default     = 10
}

variable "role_permissions_boundary" {
  description = "Permissions boundary of the IAM roles."
  type        = string
  default     = null
}

variable "role_path" {
  description = "Path of the IAM roles; null for `/<prefix>/`."
  type        = string
  default     = null
}

variable "logging_retention_in_days" {
  description = "Retention of the log groups."
  type        = number
  default     = 180
}

variable "logging_kms_key_id" {
  description = "KMS key of the log groups."
  type        = string
  default     = null
}

variable "log_class" {
  description = "Log group class: `STANDARD` or `INFREQUENT_ACCESS`."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "INFREQUENT_ACCESS"], var.log_class)
    error_message = "`log_class` must be either `STANDARD` or `INFREQUENT_ACCESS`."
  }
}

variable "lambda_s3_bucket" {
  description = "Not supported yet (a plan-time warning says so): deploy the function zips from this S3 bucket. Set the `*_lambda_zip` variables instead."
  type        = string
  default     = null
}

variable "webhook_lambda_s3_key" {
  description = "Not supported yet (a plan-time warning says so): S3 key of the webhook zip in `lambda_s3_bucket`."
  type        = string
  default     = null
}

variable "webhook_lambda_s3_object_version" {
  description = "Not supported yet (a plan-time warning says so): S3 object version of the webhook zip."
  type        = string
  default     = null
}

variable "webhook_lambda_apigateway_access_log_settings" {
  description = "API Gateway access logs of the webhook endpoint: `{ destination_arn, format }`."
  type = object({
    destination_arn = string
    format          = string
  })
  default = null
}

variable "repository_white_list" {
  description = "`owner/repo` names allowed to use the runners; empty allows all."
  type        = list(string)
  default     = []
}

variable "queue_selection_strategy" {
  description = "Among equally good runner configurations: `first`, `random` or `all`."
  type        = string
  default     = "first"
  validation {
    condition     = contains(["first", "random", "all"], var.queue_selection_strategy)
    error_message = "`queue_selection_strategy` value not valid. Valid values are 'first', 'random', 'all'."
  }
}

variable "log_level" {
  description = "Functions' log level: silly, trace, debug, info, warn, error or fatal."
  type        = string
  default     = "info"
  validation {
    condition = anytrue([
      var.log_level == "silly",
      var.log_level == "trace",
      var.log_level == "debug",
      var.log_level == "info",
      var.log_level == "warn",
      var.log_level == "error",
      var.log_level == "fatal",
    ])
    error_message = "`log_level` value not valid. Valid values are 'silly', 'trace', 'debug', 'info', 'warn', 'error', 'fatal'."
  }
}

variable "lambda_runtime" {
  description = "Upstream's Node.js runtime. No meaning here: the functions are Rust binaries on `provided.al2023`; a plan-time warning says so when changed from the default."
  type        = string
  default     = "nodejs24.x"
}

variable "lambda_architecture" {
  description = "`arm64` (Graviton) or `x86_64`; the zips must be built for it (`make build`)."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "`lambda_architecture` value is not valid, valid values are: `arm64` and `x86_64`."
  }
}

variable "syncer_lambda_s3_key" {
  description = "Not supported yet (a plan-time warning says so): S3 key of the syncer zip in `lambda_s3_bucket`."
  type        = string
  default     = null
}

variable "lambda_principals" {
  description = "More principals allowed to assume the functions' roles (`[{ type, identifiers }]`)."
  type = list(object({
    type        = string
    identifiers = list(string)
  }))
  default = []
}

variable "runner_binaries_s3_sse_configuration" {
  description = "Encryption of the distribution bucket."
  type        = any
  default = {
    rule = {
      apply_server_side_encryption_by_default = {
        sse_algorithm = "AES256"
      }
    }
  }
}

variable "runner_binaries_s3_tags" {
  description = "Extra tags of the runner distribution buckets."
  type        = map(string)
  default     = {}
}

variable "runner_binaries_s3_versioning" {
  description = "Versioning of the distribution bucket: `Enabled`, `Suspended` or `Disabled`."
  type        = string
  default     = "Disabled"
}

variable "runner_binaries_syncer_memory_size" {
  description = "Memory (MB) of the syncer functions (one per OS and architecture in use)."
  type        = number
  default     = 256
}

variable "runner_binaries_syncer_lambda_timeout" {
  description = "Syncer timeout (s)."
  type        = number
  default     = 300
}

variable "runner_binaries_syncer_lambda_zip" {
  description = "Syncer zip; null for `target/lambda/<arch>/syncer/bootstrap.zip`."
  type        = string
  default     = null
}

variable "syncer_lambda_s3_object_version" {
  description = "Not supported yet (a plan-time warning says so): S3 object version of the syncer zip."
  type        = string
  default     = null
}

variable "state_event_rule_binaries_syncer" {
  description = "`ENABLED` or `DISABLED` (freezes the mirrored version)."
  type        = string
  default     = "ENABLED"

  validation {
    condition     = contains(["ENABLED", "DISABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"], var.state_event_rule_binaries_syncer)
    error_message = "`state_event_rule_binaries_syncer` value is not valid, valid values are: `ENABLED`, `DISABLED`, `ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`."
  }
}

variable "queue_encryption" {
  description = "Encryption of the queues: SQS managed SSE (default) or a KMS key."
  type = object({
    kms_data_key_reuse_period_seconds = number
    kms_master_key_id                 = string
    sqs_managed_sse_enabled           = bool
  })
  default = {
    kms_data_key_reuse_period_seconds = null
    kms_master_key_id                 = null
    sqs_managed_sse_enabled           = true
  }
  validation {
    condition     = var.queue_encryption == null || var.queue_encryption.sqs_managed_sse_enabled != null && var.queue_encryption.kms_master_key_id == null && var.queue_encryption.kms_data_key_reuse_period_seconds == null || var.queue_encryption.sqs_managed_sse_enabled == null && var.queue_encryption.kms_master_key_id != null
    error_message = "Invalid configuration for `queue_encryption`. Valid configurations are encryption disabled, enabled via SSE. Or encryption via KMS."
  }
}

variable "aws_partition" {
  description = "The AWS partition. The modules read it from the provider; a plan-time warning says so when this differs."
  type        = string
  default     = "aws"
}

variable "aws_region" {
  description = "AWS region of the deployment."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the runners."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the runners (private subnets with a NAT, or public ones with `associate_public_ipv4_address`)."
  type        = list(string)
}

variable "enable_managed_runner_security_group" {
  description = "Create the runners' security group (egress only)."
  type        = bool
  default     = true
}

variable "runner_egress_rules" {
  description = "Egress rules of the managed runner security group (default: everything, IPv4 and IPv6)."
  type = list(object({
    cidr_blocks      = list(string)
    ipv6_cidr_blocks = list(string)
    prefix_list_ids  = list(string)
    from_port        = number
    protocol         = string
    security_groups  = list(string)
    self             = bool
    to_port          = number
    description      = string
  }))
  default = [{
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
    prefix_list_ids  = null
    from_port        = 0
    protocol         = "-1"
    security_groups  = null
    self             = null
    to_port          = 0
    description      = null
  }]
}

variable "runner_additional_security_group_ids" {
  description = "More security groups of the runners."
  type        = list(string)
  default     = []
}

variable "runners_lambda_s3_key" {
  description = "Not supported yet (a plan-time warning says so): S3 key of upstream's combined runners zip."
  type        = string
  default     = null
}

variable "runners_lambda_s3_object_version" {
  description = "Not supported yet (a plan-time warning says so): S3 object version of upstream's combined runners zip."
  type        = string
  default     = null
}

variable "runners_lambda_zip" {
  description = "Upstream's single zip of the scale-up/scale-down/pool functions. No meaning here (each Rust function has its own zip): set `scale_up_lambda_zip` and `scale_down_lambda_zip`; a plan-time warning says so when set."
  type        = string
  default     = null
}

variable "lambda_subnet_ids" {
  description = "Run the functions in these subnets (VPC)."
  type        = list(string)
  default     = []
}

variable "lambda_security_group_ids" {
  description = "Security groups of the functions in a VPC."
  type        = list(string)
  default     = []
}

variable "cloudwatch_config" {
  description = "CloudWatch agent configuration replacing the default (JSON)."
  type        = string
  default     = null
}

variable "instance_profile_path" {
  description = "Path of the runners' instance profile."
  type        = string
  default     = null
}

variable "key_name" {
  description = "EC2 key pair of the runners."
  type        = string
  default     = null
}

variable "ghes_url" {
  description = "GitHub Enterprise Server URL (`https://ghes.example.com`) or data-residency URL (`https://<name>.ghe.com`); null for github.com."
  type        = string
  default     = null
}

variable "ghes_ssl_verify" {
  description = "Verify GHES's TLS certificate. false turns checks off for the functions' GitHub client only (and the runner's connection to GHES)."
  type        = bool
  default     = true
}

variable "pool_lambda_timeout" {
  description = "Timeout (seconds) of the pool functions (one per runner configuration with a `pool_config`)."
  type        = number
  default     = 60
}

variable "pool_lambda_reserved_concurrent_executions" {
  description = "Reserved concurrency of the pool functions (1: one top-up at a time; -1: no limit)."
  type        = number
  default     = 1
}

variable "ssm_paths" {
  description = "SSM layout: `/<root>/<prefix>/{app,runners,webhook}` (without the prefix when `use_prefix` is false)."
  type = object({
    root    = optional(string, "github-action-runners")
    app     = optional(string, "app")
    runners = optional(string, "runners")
    webhook = optional(string, "webhook")
  })
  default = {}
}

variable "tracing_config" {
  description = "X-Ray tracing of the functions: `mode` (`Active` or `PassThrough`; null: off). `capture_*` are for upstream's Node.js SDK and have no effect on the Rust functions."
  type = object({
    mode                  = optional(string, null)
    capture_http_requests = optional(bool, false)
    capture_error         = optional(bool, false)
  })
  default = {}
}

variable "associate_public_ipv4_address" {
  description = "Give runners a public IPv4 address."
  type        = bool
  default     = false
}

variable "runners_ssm_housekeeper" {
  description = "The SSM housekeeper of each runner configuration: deletes runner token/JIT parameters older than `config.minimumDaysOld` days, and sooner those of terminated instances (beyond upstream), on `schedule_expression`; `config.dryRun` only logs. `config.tokenPath` defaults to the configuration's token path."
  type = object({
    schedule_expression = optional(string, "rate(1 day)")
    enabled             = optional(bool, true)
    lambda_memory_size  = optional(number, 512)
    lambda_timeout      = optional(number, 60)
    config = object({
      tokenPath      = optional(string)
      minimumDaysOld = optional(number, 1)
      dryRun         = optional(bool, false)
    })
  })
  default = { config = {} }
}

variable "instance_termination_watcher" {
  description = "The termination watcher (`enable`): metrics of spot interruption warnings (`metrics.metric.enable_spot_termination_warning`) and reclaims, and with `enable_runner_deregistration` (default true) the runners of terminating instances deregistered from GitHub (a busy one retried from `<prefix>-deregister-retry`); `features` turns its two watchers on or off; `zip`, `memory_size`, `timeout` of its functions."
  type = object({
    enable = optional(bool, false)
    features = optional(object({
      enable_spot_termination_handler              = optional(bool, true)
      enable_spot_termination_notification_watcher = optional(bool, true)
    }), {})
    enable_runner_deregistration = optional(bool, true)
    environment_variables        = optional(map(string), {})
    memory_size                  = optional(number, null)
    s3_key                       = optional(string, null)
    s3_object_version            = optional(string, null)
    timeout                      = optional(number, null)
    zip                          = optional(string, null)
  })
  default = {}
}

variable "lambda_tags" {
  description = "Extra tags of the functions."
  type        = map(string)
  default     = {}
}

variable "matcher_config_parameter_store_tier" {
  description = "SSM tier of the matcher config: `Standard` or `Advanced`."
  type        = string
  default     = "Standard"
  validation {
    condition     = contains(["Standard", "Advanced"], var.matcher_config_parameter_store_tier)
    error_message = "`matcher_config_parameter_store_tier` value is not valid, valid values are: `Standard`, and `Advanced`."
  }
}

variable "metrics" {
  description = "EMF metrics, the dashboard and alarms: `enable` (the dashboard and alarms), `namespace`, `metric.enable_github_app_rate_limit`."
  type = object({
    enable    = optional(bool, true)
    namespace = optional(string, "GitHub Runners")
    metric = optional(object({
      enable_github_app_rate_limit    = optional(bool, true)
      enable_job_retry                = optional(bool, true)
      enable_spot_termination_warning = optional(bool, true)
    }), {})
  })
  default = {}
}

variable "eventbridge" {
  description = <<-EOT
    EventBridge mode (on by default, as upstream): the webhook publishes each delivery on the bus `<prefix>-runners` (archived) and the dispatcher routes queued jobs from it to the runner queues; off, the webhook routes jobs to the queues itself (direct mode).
    `enable`; `accept_events`: the GitHub event types published (null or empty: all).
  EOT
  type = object({
    enable        = optional(bool, true)
    accept_events = optional(list(string), [])
  })

  default = {}
}

variable "user_agent" {
  description = "User agent of the functions' GitHub requests."
  type        = string
  default     = "github-aws-runners"
}

variable "iam_overrides" {
  description = "Not supported yet (a plan-time warning says so when an override is set): use an existing instance profile or runner role."
  type = object({
    override_instance_profile = optional(bool, null)
    instance_profile_name     = optional(string, null)
    override_runner_role      = optional(bool, null)
    runner_role_arn           = optional(string, null)
  })

  default = {
    override_instance_profile = false
    instance_profile_name     = null
    override_runner_role      = false
    runner_role_arn           = null
  }

  validation {
    condition     = !var.iam_overrides.override_instance_profile || var.iam_overrides.instance_profile_name != null
    error_message = "instance_profile_name must be provided when override_instance_profile is true."
  }

  validation {
    condition     = !var.iam_overrides.override_runner_role || var.iam_overrides.runner_role_arn != null
    error_message = "runner_role_arn must be provided when override_runner_role is true."
  }
}

variable "lambda_event_source_mapping_batch_size" {
  description = "Jobs per scale-up invocation (1-10)."
  type        = number
  default     = 10
}

variable "lambda_event_source_mapping_maximum_batching_window_in_seconds" {
  description = "Seconds to gather a batch (0-300)."
  type        = number
  default     = 0
}

variable "parameter_store_tags" {
  description = "Tags of the SSM parameters the functions write."
  type        = map(string)
  default     = {}
}

variable "enable_ami_housekeeper" {
  description = "Deploy the AMI housekeeper (`<prefix>-ami-housekeeper`): deregisters old images no launch template or listed parameter uses, with their snapshots (`ami_housekeeper_cleanup_config`)."
  type        = bool
  default     = false
}

variable "ami_housekeeper_lambda_zip" {
  description = "AMI housekeeper zip; null for `target/lambda/<arch>/ami-housekeeper/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "ami_housekeeper_lambda_memory_size" {
  description = "Memory (MB) of the AMI housekeeper."
  type        = number
  default     = 256
}

variable "ami_housekeeper_lambda_timeout" {
  description = "Timeout (s) of the AMI housekeeper: what a run cannot finish is left for the next one."
  type        = number
  default     = 300
}

variable "ami_housekeeper_lambda_s3_key" {
  description = "Not supported yet (a plan-time warning says so): S3 key of the AMI housekeeper zip in `lambda_s3_bucket`."
  type        = string
  default     = null
}

variable "ami_housekeeper_lambda_s3_object_version" {
  description = "Not supported yet (a plan-time warning says so): S3 object version of the AMI housekeeper zip."
  type        = string
  default     = null
}

variable "ami_housekeeper_lambda_schedule_expression" {
  description = "When the AMI housekeeper runs."
  type        = string
  default     = "cron(11 7 * * ? *)" # once a day
}

variable "ami_housekeeper_cleanup_config" {
  description = "What the AMI housekeeper cleans up (upstream's): `amiFilters` (default: available machine images), `dryRun`, `launchTemplateNames` (null: every template of the account; when set, the runners' own is added), `maxItems`, `minimumDaysOld` (default 30), `ssmParameterNames` (`*text`: every parameter whose name contains `text`)."
  type = object({
    maxItems       = optional(number)
    minimumDaysOld = optional(number)
    amiFilters = optional(list(object({
      Name   = string
      Values = list(string)
    })))
    launchTemplateNames = optional(list(string))
    ssmParameterNames   = optional(list(string))
    dryRun              = optional(bool)
  })
  default = {}
}

################################################################################
# This project's own inputs (not in upstream's multi-runner module), as in the root module.
################################################################################

variable "scale_up_lambda_zip" {
  description = "Scale-up zip; null for `target/lambda/<arch>/scale-up/bootstrap.zip`."
  type        = string
  default     = null
}

variable "scale_down_lambda_zip" {
  description = "Scale-down zip; null for `target/lambda/<arch>/scale-down/bootstrap.zip`."
  type        = string
  default     = null
}

variable "pool_lambda_zip" {
  description = "Pool zip; null for `target/lambda/<arch>/pool/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "warm_pool_lambda_zip" {
  description = "Warm-pool zip; null for `target/lambda/<arch>/warm-pool/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "job_retry_lambda_zip" {
  description = "Job-retry zip; null for `target/lambda/<arch>/job-retry/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "enable_webhook_redelivery" {
  description = "Redeliver failed `workflow_job` webhook deliveries of the GitHub Apps (endpoint down, slow or answering 5xx), so that no job is lost to an outage. Uses the App's own JWT: no extra permission."
  type        = bool
  default     = true
}

variable "webhook_redelivery_schedule_expression" {
  description = "How often the App's delivery log is swept for failed deliveries."
  type        = string
  default     = "rate(5 minutes)"
}

variable "webhook_redelivery_window_minutes" {
  description = "How far back the first sweep looks, and the age after which a failed delivery is no longer redelivered (at most 4320, GitHub's 3 days)."
  type        = number
  default     = 360
}

variable "webhook_redelivery_max_attempts" {
  description = "Redeliveries of one delivery before it is given up (metric DeliveriesGivenUp, alarmed)."
  type        = number
  default     = 5
}

variable "webhook_redelivery_lambda_zip" {
  description = "Redelivery zip; null for `target/lambda/<arch>/redelivery/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "termination_watcher_lambda_zip" {
  description = "Termination watcher zip (its three functions); null for `target/lambda/<arch>/termination-watcher/bootstrap.zip` of this repository. `instance_termination_watcher.zip` wins when set."
  type        = string
  default     = null
}

variable "ssm_housekeeper_lambda_zip" {
  description = "SSM housekeeper zip; null for `target/lambda/<arch>/ssm-housekeeper/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "pool_hold_minutes" {
  description = "Beyond upstream: how long after a pool run scale-down leaves the runners it counted (and launched) alone, so that a pool and `idle_config` do not take turns launching and removing them. Longer than the time between two pool schedules; 0 turns the hold off."
  type        = number
  default     = 30
}

variable "dispatcher_lambda_zip" {
  description = "Dispatcher zip (EventBridge mode); null for `target/lambda/<arch>/dispatcher/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "scale_down_job_start_grace_seconds" {
  description = "Two-phase removal: an idle runner is deregistered, and its instance terminated on a later scale-down run at least this long after, once its job markers show no job started on it (a job handed out just before the deregistration, whose hook runs after \"Set up job\", is never killed)."
  type        = number
  default     = 180
}

variable "scale_down_withdrawal_wait_seconds" {
  description = "Scale-down removes an idle runner's custom labels, then deregisters it this long after within the run, so that a job GitHub handed it just before starts instead of losing its runner. Needs custom labels (`runner_extra_labels`)."
  type        = number
  default     = 10
}

variable "runner_offline_timeout_in_minutes" {
  description = "A runner GitHub lists offline this long while a job is marked on its instance (or GitHub still flags it busy) crashed mid-job: scale-down deregisters it and terminates its instance."
  type        = number
  default     = 15
}

variable "runner_binaries_version" {
  description = "Mirror this runner version (e.g. `2.321.0`) instead of the latest; null for the latest."
  type        = string
  default     = null
}

variable "runner_binaries_s3_logging_bucket" {
  description = "Bucket for the distribution bucket's access logs."
  type        = string
  default     = null
}

variable "runner_binaries_s3_logging_bucket_prefix" {
  description = "Prefix of those access logs."
  type        = string
  default     = null
}

variable "enable_user_data_debug_logging_runner" {
  description = "Trace the boot scripts."
  type        = bool
  default     = false
}

variable "enable_webhook_function_url" {
  description = "Also expose the webhook as a Lambda function URL (the API Gateway endpoint stays)."
  type        = bool
  default     = false
}

variable "alarm_actions" {
  description = "Where the alarms notify (e.g. an SNS topic ARN)."
  type        = list(string)
  default     = []
}

variable "alarm_thresholds" {
  description = "Alarm thresholds: `oldest_job_seconds`, `runners_not_created`, `rate_limit_remaining`."
  type = object({
    oldest_job_seconds   = optional(number, 900)
    runners_not_created  = optional(number, 5)
    rate_limit_remaining = optional(number, 500)
  })
  default = {}
}

variable "job_rescue" {
  description = <<-EOT
    Beyond upstream: a job a spot reclaim interrupts is re-run once it has failed, and its runner is
    launched on on-demand capacity: by the same runner configuration, or by `fallback_runner`
    (a key of `multi_runner_config`) when set. `max_attempts`: how many times one job may be
    re-run. Needs `instance_termination_watcher.enable` and the GitHub App's "Actions: write"
    permission. Off by default. See docs/job-rescue.md.
  EOT
  type = object({
    enable          = optional(bool, false)
    max_attempts    = optional(number, 1)
    fallback_runner = optional(string)
  })
  default = {}
  validation {
    condition     = var.job_rescue.max_attempts >= 1
    error_message = "job_rescue.max_attempts is at least 1."
  }
}
