# The root module: the parts wired together, feature flags, the upstream SSM layout.

mock_provider "aws" {
  mock_resource "aws_cloudwatch_event_bus" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:event-bus/test-runners" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/github-action-runners/role" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:gh-ci-queued-builds"
      id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/gh-ci-queued-builds"
    }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:gh-ci-fn"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:gh-ci-fn/invocations"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:gh-ci" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:rule/gh-ci-rule" }
  }
  mock_resource "aws_ssm_parameter" {
    defaults = { arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/gh-ci/param", version = 1 }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = { arn = "arn:aws:iam::123456789012:instance-profile/gh-ci-runner-profile" }
  }
  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234"
      api_endpoint  = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::gh-ci-dist-0123456789ab" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_ami" {
    defaults = { id = "ami-0123456789abcdef0" }
  }
}

variables {
  aws_region = "eu-west-1"
  vpc_id     = "vpc-1"
  subnet_ids = ["subnet-1"]
  prefix     = "gh-ci"
  github_app = {
    id             = "1234"
    key_base64     = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ=="
    webhook_secret = "webhook-secret-value"
  }
  runner_extra_labels = ["GPU", "ci"]
}

run "defaults" {
  command = apply

  assert {
    condition = alltrue([for f in [module.webhook.lambda.function, module.runners.lambda_up.function, module.runners.lambda_down.function, module.runner_binaries[0].lambda.function] :
    f.runtime == "provided.al2023" && f.handler == "bootstrap" && f.architectures == tolist(["arm64"])])
    error_message = "Four Rust functions, arm64 by default (upstream)."
  }
  assert {
    condition     = [module.webhook.lambda.function.name, module.runners.lambda_up.function.name, module.runners.lambda_down.function.name, module.runner_binaries[0].lambda.function.name] == ["gh-ci-webhook", "gh-ci-scale-up", "gh-ci-scale-down", "gh-ci-syncer"]
    error_message = "Function names as upstream: <prefix>-webhook, -scale-up, -scale-down, -syncer."
  }
  assert {
    condition = (module.ssm.parameters.id.name == "/github-action-runners/gh-ci/app/github_app_id"
      && module.ssm.parameters.key_base64.name == "/github-action-runners/gh-ci/app/github_app_key_base64"
    && module.ssm.parameters.webhook_secret.name == "/github-action-runners/gh-ci/app/github_app_webhook_secret")
    error_message = "The App's parameters follow the upstream layout."
  }
  assert {
    condition     = module.runners.ssm_paths == { config = "/github-action-runners/gh-ci/runners/config", tokens = "/github-action-runners/gh-ci/runners/tokens" }
    error_message = "Runner config and tokens follow the upstream layout."
  }
  assert {
    condition     = module.webhook.lambda.function.environment.PARAMETER_GITHUB_APP_WEBHOOK_SECRET == module.ssm.parameters.webhook_secret.name
    error_message = "The webhook verifies with the App's secret."
  }
  assert {
    condition     = alltrue([for f in [module.runners.lambda_up.function, module.runners.lambda_down.function] : f.environment.PARAMETER_GITHUB_APP_ID_NAME == module.ssm.parameters.id.name && f.environment.PARAMETER_GITHUB_APP_KEY_BASE64_NAME == module.ssm.parameters.key_base64.name])
    error_message = "Scale-up and scale-down authenticate as the App."
  }
  assert {
    condition     = alltrue([for f in [module.webhook.lambda.function, module.runners.lambda_up.function, module.runners.lambda_down.function, module.runner_binaries[0].lambda.function] : f.environment.ENVIRONMENT == "gh-ci" && f.environment.POWERTOOLS_METRICS_NAMESPACE == "GitHub Runners" && f.environment.LOG_LEVEL == "info"])
    error_message = "Every function knows its environment (the ghr:environment tag), metrics namespace and log level."
  }
  assert {
    condition = alltrue(flatten([for f in [module.webhook.lambda.function, module.runners.lambda_up.function, module.runners.lambda_down.function, module.runner_binaries[0].lambda.function] :
    [for v in values(f.environment) : !strcontains(v, "webhook-secret-value") && !strcontains(v, "LS0tLS1CRUdJTi")]]))
    error_message = "Secrets are read from SSM at run time, never put in a function's environment."
  }
  assert {
    condition     = module.runners.labels == tolist(["GPU", "ci", "linux", "self-hosted", "x64"]) && module.runners.lambda_up.function.environment.RUNNER_LABELS == "gpu,ci,linux,self-hosted,x64"
    error_message = "Labels are sorted(self-hosted, OS, architecture + extras), as upstream."
  }
  assert {
    condition     = output.webhook.endpoint == "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/webhook"
    error_message = "The webhook URL to put in the App's settings."
  }
  assert {
    condition     = output.queues.build_queue_url == module.runners.queue.id && output.binaries_syncer.bucket.id == module.runner_binaries[0].bucket.id
    error_message = "Queue and bucket are in the outputs."
  }
  assert {
    condition     = length(module.monitoring) == 1 && startswith(output.dashboard_url, "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards")
    error_message = "Metrics, a dashboard and alarms are on by default."
  }
}

run "features_off_ephemeral_on_x86" {
  command = plan
  variables {
    enable_runner_binaries_syncer = false
    enable_ephemeral_runners      = true
    metrics                       = { enable = false }
    lambda_architecture           = "x86_64"
    runner_disable_default_labels = true
    log_level                     = "debug"
  }
  assert {
    condition     = length(module.runner_binaries) == 0 && output.binaries_syncer == null
    error_message = "No syncer when disabled."
  }
  assert {
    condition     = length(module.monitoring) == 0 && output.dashboard_url == null
    error_message = "No dashboard or alarms when metrics are disabled."
  }
  assert {
    condition     = module.runners.lambda_up.function.environment.ENABLE_EPHEMERAL_RUNNERS == "true" && module.runners.lambda_up.function.environment.ENABLE_JIT_CONFIG == "true"
    error_message = "Ephemeral runners reach scale-up."
  }
  assert {
    condition     = alltrue([for f in [module.webhook.lambda.function, module.runners.lambda_up.function, module.runners.lambda_down.function] : f.architectures == tolist(["x86_64"]) && f.environment.LOG_LEVEL == "debug"])
    error_message = "Architecture and log level apply to every function."
  }
  assert {
    condition     = module.runners.labels == tolist(["GPU", "ci"])
    error_message = "Only the extra labels when the defaults are disabled."
  }
}

run "apps_from_existing_parameters_and_more_apps" {
  command = plan
  variables {
    github_app = {
      id_ssm             = { name = "/mine/app-id", arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/mine/app-id" }
      key_base64_ssm     = { name = "/mine/app-key", arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/mine/app-key" }
      webhook_secret_ssm = { name = "/mine/secret", arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/mine/secret" }
    }
    additional_github_apps = [{ id = "5678", key_base64 = "a2V5", installation_id = "42" }]
  }
  assert {
    condition     = module.webhook.lambda.function.environment.PARAMETER_GITHUB_APP_WEBHOOK_SECRET == "/mine/secret"
    error_message = "Existing parameters are used as given."
  }
  assert {
    condition = (module.runners.lambda_up.function.environment.PARAMETER_GITHUB_APP_ID_NAME == "/mine/app-id:/github-action-runners/gh-ci/app/additional_github_app_1_id"
      && module.runners.lambda_up.function.environment.PARAMETER_GITHUB_APP_KEY_BASE64_NAME == "/mine/app-key:/github-action-runners/gh-ci/app/additional_github_app_1_key_base64"
    && module.runners.lambda_up.function.environment.PARAMETER_GITHUB_APP_INSTALLATION_ID_NAME == ":/github-action-runners/gh-ci/app/additional_github_app_1_installation_id")
    error_message = "More Apps are `:`-joined, positionally, as upstream."
  }
}

run "rejects_an_incomplete_app" {
  command = plan
  variables {
    github_app = { id = "1234", key_base64 = "a2V5" }
  }
  expect_failures = [var.github_app]
}

run "warns_when_the_region_differs_from_the_provider" {
  command = plan
  variables {
    aws_region = "us-east-1"
  }
  expect_failures = [check.provider_region]
}

run "upstream_inputs_of_features_not_here_yet_warn_by_name" {
  command = plan
  variables {
    lambda_s3_bucket   = "lambdas"
    runners_lambda_zip = "../lambdas-download/runners.zip"
    lambda_runtime     = "nodejs22.x"
  }
  expect_failures = [check.unsupported_features, check.ignored_inputs]
  assert {
    condition     = join(",", local.unsupported) == "lambda_s3_bucket (deploy the zips from S3)" && toset(keys(local.ignored)) == toset(["runners_lambda_zip", "lambda_runtime"])
    error_message = "Each feature in use is named."
  }
}

run "termination_watcher" {
  command = plan
  variables {
    instance_termination_watcher = { enable = true, features = { enable_spot_termination_handler = false } }
  }
  assert {
    condition     = output.instance_termination_watcher.lambda.function_name == "${var.prefix}-spot-termination-notification" && output.instance_termination_handler == null && length(local.unsupported) == 0
    error_message = "The notification watcher is deployed, the handler is off, and nothing is warned about."
  }
  assert {
    condition     = module.instance_termination_watcher[0].spot_termination_notification.lambda.environment.ENABLE_RUNNER_DEREGISTRATION == "true" && module.instance_termination_watcher[0].spot_termination_notification.lambda.environment.PARAMETER_GITHUB_APP_ID_NAME == module.ssm.app_parameters.ids
    error_message = "Deregistration is on by default, with every App."
  }
  assert {
    condition     = module.instance_termination_watcher[0].spot_termination_notification.lambda.environment.ENABLE_METRICS_SPOT_WARNING == "true" && module.instance_termination_watcher[0].spot_termination_notification.lambda.environment.TAG_FILTERS == "null"
    error_message = "Spot warnings are counted (metrics are on by default); the tag filter defaults to the environment."
  }
}

run "job_rescue_deploys_the_retry_queue_without_deregistration" {
  command = plan
  variables {
    instance_termination_watcher = { enable = true, enable_runner_deregistration = false }
    job_rescue                   = { enable = true, max_attempts = 2 }
  }
  assert {
    condition     = module.instance_termination_watcher[0].function_names == { notification = "${var.prefix}-spot-termination-notification", handler = "${var.prefix}-spot-termination-handler", retry = "${var.prefix}-deregister-retry" } && module.instance_termination_watcher[0].spot_termination_notification.lambda.environment.ENABLE_RUNNER_DEREGISTRATION == "false"
    error_message = "Job rescue waits on the retry queue and its function, with deregistration off."
  }
}

run "job_rescue_needs_the_watcher" {
  command = plan
  variables {
    job_rescue = { enable = true }
  }
  expect_failures = [terraform_data.job_rescue]
}

run "ami_housekeeper" {
  command = plan
  variables {
    enable_ami_housekeeper = true
    ami_housekeeper_cleanup_config = {
      launchTemplateNames = ["golden-image-builder"]
      ssmParameterNames   = ["*/ami-id"]
      minimumDaysOld      = 10
    }
  }
  assert {
    condition     = module.ami_housekeeper[0].lambda.rule.schedule_expression == "rate(1 day)" && length(local.unsupported) == 0
    error_message = "The AMI housekeeper is deployed daily, and no longer warned about."
  }
  assert {
    condition     = jsondecode(module.ami_housekeeper[0].lambda.function.environment.AMI_CLEANUP_OPTIONS).launchTemplateNames == ["golden-image-builder", "${var.prefix}-action-runner"]
    error_message = "A listed set of templates gets the runners' own added."
  }
  assert {
    condition     = jsondecode(module.ami_housekeeper[0].lambda.function.environment.AMI_CLEANUP_OPTIONS).amiFilters[0].Name == "state"
    error_message = "Upstream's default filters apply."
  }
}

run "pool_job_retry_and_ssm_housekeeper" {
  command = plan
  variables {
    enable_organization_runners = true
    pool_runner_owner           = "acme"
    pool_config = [
      { schedule_expression = "cron(* 8-18 ? * MON-FRI *)", schedule_expression_timezone = "Europe/Amsterdam", size = 2 },
      { schedule_expression = "cron(* * ? * SAT,SUN *)", size = 1 },
    ]
    job_retry               = { enable = true, max_attempts = 2, delay_in_seconds = 180 }
    runners_ssm_housekeeper = { config = { dryRun = true } }
  }
  assert {
    condition     = length(module.runners.lambda_pool.function.function_name) > 0 && length(local.unsupported) == 0
    error_message = "The pool is deployed, and no longer warned about."
  }
  assert {
    condition     = jsondecode(module.runners.lambda_pool.function.environment.RUNNERS_MAXIMUM_COUNT) == var.runners_maximum_count && module.runners.lambda_pool.function.environment.RUNNER_OWNER == "acme"
    error_message = "The pool launches with scale-up's settings, for its organization."
  }
  assert {
    condition     = module.runners.lambda_job_retry.queue.name == "${var.prefix}-job-retry"
    error_message = "Job retry: its queue (scale-up gets its URL at apply time)."
  }
  assert {
    condition     = jsondecode(module.runners.lambda_ssm_housekeeper.function.environment.SSM_CLEANUP_CONFIG).dryRun == true
    error_message = "The SSM housekeeper gets its config, the token path filled in."
  }
}

run "upstream_runner_settings_reach_the_launch_template_and_functions" {
  command = plan
  variables {
    runner_credit_specification   = "unlimited"
    runner_cpu_options            = { core_count = 2, threads_per_core = 1 }
    runner_placement              = { tenancy = "dedicated" }
    runner_license_specifications = [{ license_configuration_arn = "arn:aws:license-manager:eu-west-1:123456789012:license-configuration:lic-1" }]
    runner_binaries_s3_tags       = { Team = "ci" }
    tracing_config                = { mode = "Active" }
    lambda_principals             = [{ type = "AWS", identifiers = ["arn:aws:iam::123456789012:root"] }]
    userdata_content              = "#!/bin/bash\necho custom"
  }
  assert {
    condition = (module.runners.launch_template_settings.credit_specification == "unlimited" && module.runners.launch_template_settings.cpu_options.core_count == 2
    && module.runners.launch_template_settings.placement.tenancy == "dedicated" && length(module.runners.launch_template_settings.license_specifications) == 1)
    error_message = "The runner settings reach the launch template."
  }
  assert {
    condition     = module.runner_binaries[0].bucket.tags.Team == "ci"
    error_message = "The distribution bucket carries runner_binaries_s3_tags."
  }
  assert {
    condition     = module.webhook.lambda.function.tracing_mode == "Active" && module.runners.lambda_up.function.tracing_mode == "Active"
    error_message = "X-Ray on every function."
  }
}

run "a_kms_key_id_is_made_an_arn" {
  # Upstream's permissions-boundary example passes `aws_kms_key.github.key_id` as `kms_key_arn`.
  command = plan
  variables {
    kms_key_arn = "1234abcd-12ab-34cd-56ef-1234567890ab"
  }
  assert {
    condition     = local.kms_key_arn == "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    error_message = "IAM statements name the key by its ARN."
  }
}
