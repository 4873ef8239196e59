# The shared function module: runtime, handler, architecture, environment, logging, role.

mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/test/test-webhook" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/test-webhook" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:test-webhook"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:test-webhook/invocations"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

variables {
  lambda = {
    name                  = "webhook"
    prefix                = "test"
    environment           = "test-env"
    zip                   = "does-not-exist/bootstrap.zip"
    log_level             = "warn"
    metrics_namespace     = "Runners NS"
    environment_variables = { QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/q" }
  }
}

run "defaults" {
  command = apply

  assert {
    condition     = aws_lambda_function.this.runtime == "provided.al2023" && aws_lambda_function.this.handler == "bootstrap"
    error_message = "Rust functions run on provided.al2023 with handler bootstrap."
  }
  assert {
    condition     = aws_lambda_function.this.architectures == tolist(["arm64"])
    error_message = "arm64 is the default architecture."
  }
  assert {
    condition     = aws_lambda_function.this.function_name == "test-webhook" && aws_cloudwatch_log_group.this.name == "/aws/lambda/test-webhook"
    error_message = "The function is <prefix>-<name> and logs to /aws/lambda/<function>."
  }
  assert {
    condition = aws_lambda_function.this.environment[0].variables == tomap({
      ENVIRONMENT                  = "test-env"
      LOG_LEVEL                    = "warn"
      POWERTOOLS_METRICS_NAMESPACE = "Runners NS"
      QUEUE_URL                    = "https://sqs.eu-west-1.amazonaws.com/123456789012/q"
    })
    error_message = "The common variables are added to the function's own."
  }
  assert {
    condition     = aws_lambda_function.this.logging_config[0].log_format == "JSON" && aws_lambda_function.this.logging_config[0].application_log_level == "INFO"
    error_message = "JSON logs; the Lambda filter stays at INFO for warn so that EMF lines (no level) are kept."
  }
  assert {
    condition     = aws_cloudwatch_log_group.this.retention_in_days == 180 && aws_lambda_function.this.timeout == 60 && aws_lambda_function.this.memory_size == 256
    error_message = "Upstream defaults: 180 days of logs, 60 s, 256 MB."
  }
  assert {
    condition     = length(aws_iam_role.this.name) <= 64 && startswith(aws_iam_role.this.name, "test-webhook-")
    error_message = "Role names fit IAM's 64 characters."
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.vpc) == 0 && length(aws_lambda_function.this.vpc_config) == 0
    error_message = "No VPC unless subnets are given."
  }
  assert {
    condition = jsondecode(aws_iam_role_policy.logging.policy).Statement == [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = "${aws_cloudwatch_log_group.this.arn}:*"
    }]
    error_message = "The role writes only to the function's own log group."
  }
  assert {
    condition     = output.function.environment == aws_lambda_function.this.environment[0].variables && output.function.architectures == tolist(["arm64"])
    error_message = "The output carries the function's environment for the callers' checks."
  }
}

run "debug_in_a_vpc_on_x86" {
  command = plan
  variables {
    lambda = {
      name               = "scale-up-with-a-very-long-name-that-needs-the-hash-suffix"
      prefix             = "a-long-prefix-for-a-deployment"
      environment        = "e"
      zip                = "x.zip"
      architecture       = "x86_64"
      log_level          = "debug"
      subnet_ids         = ["subnet-1"]
      security_group_ids = ["sg-1"]
    }
  }
  assert {
    condition     = aws_lambda_function.this.architectures == tolist(["x86_64"]) && aws_lambda_function.this.logging_config[0].application_log_level == "DEBUG"
    error_message = "x86_64 and debug logs when asked."
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.vpc) == 1 && aws_lambda_function.this.vpc_config[0].subnet_ids == toset(["subnet-1"])
    error_message = "Subnets put the function in the VPC with the VPC execution policy."
  }
  assert {
    condition     = length(aws_iam_role.this.name) == 63
    error_message = "Long names are cut to 54 characters plus an 8 character hash."
  }
}

run "rejects_an_unknown_architecture" {
  command = plan
  variables {
    lambda = { name = "webhook", prefix = "test", environment = "test", zip = "x.zip", architecture = "amd64" }
  }
  expect_failures = [var.lambda]
}

run "rejects_an_unknown_log_level" {
  command = plan
  variables {
    lambda = { name = "webhook", prefix = "test", environment = "test", zip = "x.zip", log_level = "verbose" }
  }
  expect_failures = [var.lambda]
}
