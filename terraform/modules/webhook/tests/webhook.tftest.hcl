# The webhook module: endpoint → function → queues, matcher config in SSM.

mock_provider "aws" {
  mock_resource "aws_cloudwatch_event_bus" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:event-bus/test-runners" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:rule/test-runners/test-workflow_job" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:test-dispatcher-dead-letters"
      id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/test-dispatcher-dead-letters"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/test/test-webhook" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:test-webhook"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:test-webhook/invocations"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/test-webhook" }
  }
  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234"
      api_endpoint  = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com"
    }
  }
  mock_resource "aws_ssm_parameter" {
    defaults = { arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/webhook/runner-matcher-config", version = 3 }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

variables {
  prefix   = "test"
  ssm_path = "/github-action-runners/test/webhook"
  runner_matcher_config = {
    "test-queued-builds" = {
      id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/test-queued-builds"
      arn = "arn:aws:sqs:eu-west-1:123456789012:test-queued-builds"
      matcherConfig = {
        labelMatchers = [["self-hosted", "linux", "x64"]]
        exactMatch    = true
      }
    }
  }
  webhook_secret_parameter = {
    name = "/github-action-runners/test/app/github_app_webhook_secret"
    arn  = "arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/app/github_app_webhook_secret"
  }
  repository_white_list = ["acme/web"]
  lambda                = { prefix = "test", environment = "test", zip = "webhook.zip", timeout = 10 }
}

run "endpoint_function_and_matchers" {
  command = apply

  assert {
    condition     = module.lambda.function.runtime == "provided.al2023" && module.lambda.function.handler == "bootstrap" && module.lambda.function.name == "test-webhook"
    error_message = "The webhook is a Rust function named <prefix>-webhook."
  }
  assert {
    condition     = aws_apigatewayv2_route.webhook.route_key == "POST /webhook" && aws_apigatewayv2_integration.webhook.integration_uri == module.lambda.function.invoke_arn
    error_message = "POST /webhook goes to the function."
  }
  assert {
    condition     = aws_lambda_permission.api_gateway.source_arn == "${aws_apigatewayv2_api.webhook.execution_arn}/*/*/webhook" && aws_lambda_permission.api_gateway.function_name == module.lambda.function.name
    error_message = "Only the API's webhook route may invoke the function."
  }
  assert {
    condition     = output.endpoint == "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/webhook" && output.function_url == null && length(aws_lambda_function_url.webhook) == 0
    error_message = "The endpoint is the API's /webhook; no function URL by default."
  }
  assert {
    condition     = module.lambda.function.environment.PARAMETER_GITHUB_APP_WEBHOOK_SECRET == var.webhook_secret_parameter.name
    error_message = "The function reads the secret from the ssm module's parameter."
  }
  assert {
    condition     = module.lambda.function.environment.PARAMETER_RUNNER_MATCHER_CONFIG_PATH == aws_ssm_parameter.runner_matcher_config[0].name && module.lambda.function.environment.PARAMETER_RUNNER_MATCHER_VERSION == "3"
    error_message = "The function reads the matcher config parameter, and its version restarts containers when it changes."
  }
  assert {
    condition     = jsondecode(module.lambda.function.environment.REPOSITORY_ALLOW_LIST) == ["acme/web"] && module.lambda.function.environment.QUEUE_SELECTION_STRATEGY == "first"
    error_message = "Allow list as JSON; first matching queue by default."
  }
  assert {
    condition = jsondecode(aws_ssm_parameter.runner_matcher_config[0].value) == [{
      id              = "https://sqs.eu-west-1.amazonaws.com/123456789012/test-queued-builds"
      arn             = "arn:aws:sqs:eu-west-1:123456789012:test-queued-builds"
      fifo            = false
      key             = "test-queued-builds"
      computeProvider = "ec2"
      matcherConfig = {
        labelMatchers           = [["self-hosted", "linux", "x64"]]
        exactMatch              = true
        bidirectionalLabelMatch = false
        priority                = 999
        enableDynamicLabels     = false
        awsDynamicLabelsPolicy  = null
      }
    }]
    error_message = "The matcher config has the upstream JSON shape."
  }
  assert {
    condition     = aws_ssm_parameter.runner_matcher_config[0].name == "/github-action-runners/test/webhook/runner-matcher-config" && aws_ssm_parameter.runner_matcher_config[0].tier == "Standard"
    error_message = "One Standard parameter at the upstream path when the config fits."
  }
  assert {
    condition = jsondecode(aws_iam_role_policy.webhook.policy).Statement == [
      { Sid = "PublishDeliveries", Effect = "Allow", Action = ["events:PutEvents"], Resource = ["arn:aws:events:eu-west-1:123456789012:event-bus/test-runners"] },
      { Sid = "ReadParameters", Effect = "Allow", Action = ["ssm:GetParameters"], Resource = [var.webhook_secret_parameter.arn] },
    ]
    error_message = "EventBridge mode (the default): the webhook may only publish on its bus and read its secret."
  }
  assert {
    condition     = module.lambda.function.environment.EVENT_BUS_NAME == "test-runners" && module.lambda.function.environment.ACCEPT_EVENTS == "null"
    error_message = "The webhook publishes on the bus; every event type by default."
  }
  assert {
    condition = (aws_cloudwatch_event_archive.runners[0].retention_days == 7
      && jsondecode(aws_cloudwatch_event_rule.workflow_job[0].event_pattern) == { "detail-type" = ["workflow_job"], detail = { action = ["queued"] } }
    && aws_cloudwatch_event_rule.workflow_job[0].name == "test-workflow_job")
    error_message = "An archived bus and the upstream rule for queued jobs."
  }
  assert {
    condition = (aws_cloudwatch_event_target.dispatcher[0].dead_letter_config[0].arn == aws_sqs_queue.dispatcher_dead_letters[0].arn
      && aws_lambda_function_event_invoke_config.dispatcher[0].destination_config[0].on_failure[0].destination == aws_sqs_queue.dispatcher_dead_letters[0].arn
    && aws_cloudwatch_event_target.dispatcher[0].retry_policy[0].maximum_retry_attempts > 0)
    error_message = "Nothing is dropped: undeliverable events and failed dispatches both end in the dead-letter queue."
  }
  assert {
    condition = jsondecode(aws_iam_role_policy.dispatcher[0].policy).Statement == [
      { Sid = "SendJobs", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = ["arn:aws:sqs:eu-west-1:123456789012:test-queued-builds", aws_sqs_queue.dispatcher_dead_letters[0].arn] },
      { Sid = "ReadMatcherConfig", Effect = "Allow", Action = ["ssm:GetParameters"], Resource = [aws_ssm_parameter.runner_matcher_config[0].arn] },
    ]
    error_message = "The dispatcher may only send to the runner queues (and its dead letters) and read the matcher config."
  }
}

run "direct_mode" {
  command = apply
  variables {
    eventbridge = { enable = false }
  }
  assert {
    condition = jsondecode(aws_iam_role_policy.webhook.policy).Statement == [
      { Sid = "SendJobs", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = ["arn:aws:sqs:eu-west-1:123456789012:test-queued-builds"] },
      { Sid = "ReadParameters", Effect = "Allow", Action = ["ssm:GetParameters"], Resource = [var.webhook_secret_parameter.arn, aws_ssm_parameter.runner_matcher_config[0].arn] },
    ]
    error_message = "Direct mode: the webhook may only send to its queues and read its own parameters."
  }
  assert {
    condition     = module.lambda.function.environment.EVENT_BUS_NAME == "" && length(aws_cloudwatch_event_bus.runners) == 0 && length(module.dispatcher) == 0
    error_message = "No bus and no dispatcher in direct mode."
  }
}

run "many_configurations_are_chunked_in_priority_order" {
  command = apply
  variables {
    runner_matcher_config = { for i in range(30) : "config-${i}" => {
      id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/config-${i}"
      arn = "arn:aws:sqs:eu-west-1:123456789012:config-${i}"
      matcherConfig = {
        labelMatchers = [["self-hosted", "linux", "x64", "label-${i}"]]
        exactMatch    = true
        priority      = 100 - i
      }
    } }
    enable_function_url = true
  }
  assert {
    condition     = length(aws_ssm_parameter.runner_matcher_config) > 1 && alltrue([for p in aws_ssm_parameter.runner_matcher_config : length(p.value) <= 4096])
    error_message = "A config larger than a Standard parameter is split into chunks that fit."
  }
  assert {
    condition     = [for m in jsondecode(join("", aws_ssm_parameter.runner_matcher_config[*].value)) : m.key][0] == "config-29" && length(jsondecode(join("", aws_ssm_parameter.runner_matcher_config[*].value))) == 30
    error_message = "The chunks concatenate back to every configuration, lowest priority value first."
  }
  assert {
    condition     = module.lambda.function.environment.PARAMETER_RUNNER_MATCHER_CONFIG_PATH == join(":", aws_ssm_parameter.runner_matcher_config[*].name)
    error_message = "The function reads every chunk, in order."
  }
  assert {
    condition     = length(aws_lambda_function_url.webhook) == 1 && aws_lambda_function_url.webhook[0].authorization_type == "NONE"
    error_message = "The optional function URL (GitHub signs with HMAC, not SigV4)."
  }
}

run "dynamic_labels_and_their_policy_reach_the_matcher_config" {
  command = apply
  variables {
    runner_matcher_config = {
      "small" = {
        id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/small"
        arn = "arn:aws:sqs:eu-west-1:123456789012:small"
        matcherConfig = {
          labelMatchers       = [["self-hosted", "linux"]]
          exactMatch          = true
          enableDynamicLabels = true
          awsDynamicLabelsPolicy = {
            blocked_keys    = ["image-id"]
            restricted_keys = { instance-type = { allowed = ["c5.*"] }, ebs-volume-size = { max = 200 } }
          }
        }
      }
      "plain" = {
        id            = "https://sqs.eu-west-1.amazonaws.com/123456789012/plain"
        arn           = "arn:aws:sqs:eu-west-1:123456789012:plain"
        matcherConfig = { labelMatchers = [["self-hosted"]], exactMatch = false }
      }
    }
  }
  assert {
    condition = (jsondecode(aws_ssm_parameter.runner_matcher_config[0].value)[1].matcherConfig.awsDynamicLabelsPolicy == {
      blocked_keys = ["image-id"]
      restricted_keys = {
        instance-type   = { allowed = ["c5.*"], denied = null, max = null }
        ebs-volume-size = { allowed = null, denied = null, max = "200" }
      }
    } && jsondecode(aws_ssm_parameter.runner_matcher_config[0].value)[1].matcherConfig.enableDynamicLabels)
    error_message = "The policy is written as upstream's JSON, with the configuration taking dynamic labels."
  }
  assert {
    condition     = jsondecode(aws_ssm_parameter.runner_matcher_config[0].value)[0].matcherConfig.awsDynamicLabelsPolicy == null
    error_message = "A configuration without a policy has none."
  }
}

run "rejects_an_unknown_strategy" {
  command = plan
  variables {
    queue_selection_strategy = "round-robin"
  }
  expect_failures = [var.queue_selection_strategy]
}
