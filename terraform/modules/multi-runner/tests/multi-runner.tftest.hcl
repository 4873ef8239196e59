# The multi-runner module: several runner configurations behind one webhook, as upstream's
# module; upstream inputs not implemented yet are accepted with a plan-time warning.

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
  prefix     = "gh"
  github_app = {
    id             = "1234"
    key_base64     = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ=="
    webhook_secret = "webhook-secret-value"
  }
  multi_runner_config = {
    "linux-x64" = {
      matcherConfig = { labelMatchers = [["self-hosted", "linux", "x64", "amazon"]], priority = 2 }
      runner_config = {
        runner_os                = "linux"
        runner_architecture      = "x64"
        instance_types           = ["m5.large"]
        runners_maximum_count    = 5
        enable_ephemeral_runners = true
        runner_extra_labels      = ["extra"]
      }
    }
    "linux-arm64" = {
      matcherConfig = { labelMatchers = [["self-hosted", "linux", "arm64", "graviton"]], exactMatch = true, priority = 1 }
      runner_config = {
        runner_os             = "linux"
        runner_architecture   = "arm64"
        instance_types        = ["c7g.large"]
        runners_maximum_count = 3
        subnet_ids            = ["subnet-arm"]
      }
      redrive_build_queue = { enabled = true, maxReceiveCount = 5 }
    }
    "linux-x64-prebuilt" = {
      matcherConfig = { labelMatchers = [["self-hosted", "linux", "x64", "prebuilt"]] }
      runner_config = {
        runner_os                     = "linux"
        runner_architecture           = "x64"
        instance_types                = ["m5.large"]
        runners_maximum_count         = 2
        enable_runner_binaries_syncer = false
        enable_userdata               = false
      }
    }
  }
}

run "one_webhook_and_a_control_plane_per_configuration" {
  command = apply

  assert {
    condition     = toset(keys(module.runners)) == toset(["linux-x64", "linux-arm64", "linux-x64-prebuilt"]) && module.runners["linux-arm64"].lambda_up.function.name == "gh-linux-arm64-scale-up"
    error_message = "A runners module per configuration, named <prefix>-<key>."
  }
  assert {
    condition     = module.runners["linux-x64"].lambda_up.function.environment.ENVIRONMENT == "gh-linux-x64" && module.runners["linux-x64"].lambda_down.function.environment.ENVIRONMENT == "gh-linux-x64"
    error_message = "Each configuration's functions run as ghr:environment <prefix>-<key> (scale-down removes only its own instances)."
  }
  assert {
    condition     = module.runners["linux-x64"].ssm_paths.config == "/github-action-runners/gh/linux-x64/runners/config" && module.ssm.parameters.id.name == "/github-action-runners/gh/app/github_app_id"
    error_message = "SSM layout as upstream's multi-runner: /<root>/<prefix>/<key>/runners/..., one App under /<root>/<prefix>/app."
  }
  assert {
    condition     = join(",", local.labels["linux-x64"]) == "amazon,extra,linux,self-hosted,x64"
    error_message = "A configuration's runners carry the defaults, its extra labels and its matchers' labels."
  }
  assert {
    condition     = toset(keys(module.runner_binaries)) == toset(["linux-x64", "linux-arm64"])
    error_message = "One syncer per OS and architecture that a configuration with the syncer uses."
  }
  assert {
    condition     = module.runners["linux-x64-prebuilt"].lambda_up.function.environment.SUBNET_IDS == "subnet-1" && module.runners["linux-arm64"].lambda_up.function.environment.SUBNET_IDS == "subnet-arm"
    error_message = "A configuration's subnets override the module's."
  }
  assert {
    condition     = length(module.webhook.eventbridge.rule.name) > 0 && module.webhook.lambda.function.environment.EVENT_BUS_NAME == "gh-runners"
    error_message = "EventBridge mode by default, one bus for every configuration."
  }
  assert {
    condition     = length(module.monitoring) == 1 && toset([for a in module.monitoring[0].alarms : a if endswith(a, "-oldest-queued-job")]) == toset(["gh-linux-x64-oldest-queued-job", "gh-linux-arm64-oldest-queued-job", "gh-linux-x64-prebuilt-oldest-queued-job"])
    error_message = "One dashboard and alarms covering every configuration."
  }
  assert {
    condition     = contains(module.monitoring[0].alarms, "gh-linux-arm64-dead-letter-jobs") && !contains(module.monitoring[0].alarms, "gh-linux-x64-dead-letter-jobs")
    error_message = "Dead letters alarm where a configuration has a dead-letter queue."
  }
  assert {
    condition     = length(local.unsupported) == 0 && length(local.ignored) == 0
    error_message = "Nothing unsupported in use, no warning."
  }
}

run "upstream_inputs_not_implemented_yet_warn_by_name" {
  command = plan
  variables {
    runners_lambda_zip = "../lambdas-download/runners.zip"
    lambda_s3_bucket   = "lambdas"
    multi_runner_config = {
      "linux-x64" = {
        matcherConfig = { labelMatchers = [["self-hosted", "linux", "x64"]], enableDynamicLabels = true }
        runner_config = {
          runner_os             = "linux"
          runner_architecture   = "x64"
          instance_types        = ["m5.large"]
          runners_maximum_count = 5
          credit_specification  = "standard"
        }
      }
    }
  }
  expect_failures = [check.unsupported_features, check.ignored_inputs]
}

run "a_pool_and_job_retry_per_configuration" {
  command = plan
  variables {
    multi_runner_config = {
      "linux-x64" = {
        matcherConfig = { labelMatchers = [["self-hosted", "linux", "x64"]] }
        runner_config = {
          runner_os                   = "linux"
          runner_architecture         = "x64"
          instance_types              = ["m5.large"]
          runners_maximum_count       = 5
          enable_organization_runners = true
          job_retry                   = { enable = true }
          pool_config                 = [{ schedule_expression = "cron(* * * * ? *)", size = 2 }]
          pool_runner_owner           = "acme"
        }
      }
      "linux-arm64" = {
        matcherConfig = { labelMatchers = [["self-hosted", "linux", "arm64"]] }
        runner_config = {
          runner_os             = "linux"
          runner_architecture   = "arm64"
          instance_types        = ["m7g.large"]
          runners_maximum_count = 2
        }
      }
    }
  }
  assert {
    condition     = module.runners["linux-x64"].lambda_pool != null && module.runners["linux-arm64"].lambda_pool == null
    error_message = "A pool only where configured."
  }
  assert {
    condition     = module.runners["linux-x64"].lambda_job_retry.queue.name == "${var.prefix}-linux-x64-job-retry" && module.runners["linux-arm64"].lambda_job_retry == null
    error_message = "Job retry only where enabled, with the configuration's own queue."
  }
  assert {
    condition     = module.runners["linux-x64"].lambda_ssm_housekeeper != null && module.runners["linux-arm64"].lambda_ssm_housekeeper != null
    error_message = "The SSM housekeeper (on by default, as upstream) for every configuration."
  }
}

run "job_rescue_fallback_must_be_a_configuration" {
  command = plan
  variables {
    instance_termination_watcher = { enable = true }
    job_rescue                   = { enable = true, fallback_runner = "no-such-runner" }
    multi_runner_config = {
      "linux-x64" = {
        matcherConfig = { labelMatchers = [["self-hosted", "linux", "x64"]] }
        runner_config = {
          runner_os             = "linux"
          runner_architecture   = "x64"
          instance_types        = ["m5.large"]
          runners_maximum_count = 5
        }
      }
    }
  }
  expect_failures = [terraform_data.job_rescue]
}
