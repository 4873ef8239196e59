################################################################################
# EventBridge mode (upstream's default): the webhook publishes every accepted delivery on the
# bus `<prefix>-runners` (archived); the rule `<prefix>-workflow_job` sends queued jobs to the
# dispatcher, which routes them to the runner queues.
#
# Nothing is dropped: EventBridge retries delivering to the function (target retry policy) and
# puts what it cannot deliver in the dead-letter queue; the function's own failures (a queue
# send failed) are retried by Lambda's asynchronous invocation and then sent to the same queue
# (on-failure destination), where they can be seen and redriven.
################################################################################

locals {
  eventbridge = var.eventbridge.enable
}

resource "aws_cloudwatch_event_bus" "runners" {
  count = local.eventbridge ? 1 : 0
  name  = "${var.prefix}-runners"
  tags  = var.tags
}

resource "aws_cloudwatch_event_archive" "runners" {
  count            = local.eventbridge ? 1 : 0
  name             = "${var.prefix}-runners-archive"
  event_source_arn = aws_cloudwatch_event_bus.runners[0].arn
  retention_days   = var.eventbridge.archive_retention_days
}

resource "aws_cloudwatch_event_rule" "workflow_job" {
  count          = local.eventbridge ? 1 : 0
  name           = "${var.prefix}-workflow_job"
  description    = "Queued workflow jobs to the dispatcher"
  event_bus_name = aws_cloudwatch_event_bus.runners[0].name
  event_pattern  = jsonencode({ "detail-type" = ["workflow_job"], detail = { action = ["queued"] } })
  tags           = var.tags
}

resource "aws_sqs_queue" "dispatcher_dead_letters" {
  count                     = local.eventbridge ? 1 : 0
  name                      = "${var.prefix}-dispatcher-dead-letters"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = var.tags
}

resource "aws_sqs_queue_policy" "dispatcher_dead_letters" {
  count     = local.eventbridge ? 1 : 0
  queue_url = aws_sqs_queue.dispatcher_dead_letters[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "EventBridgeDeadLetters"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.dispatcher_dead_letters[0].arn
        Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.workflow_job[0].arn } }
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.dispatcher_dead_letters[0].arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

module "dispatcher" {
  source = "../lambda"
  count  = local.eventbridge ? 1 : 0
  lambda = merge(var.lambda, var.dispatcher_lambda, {
    name = "dispatcher"
    environment_variables = {
      PARAMETER_RUNNER_MATCHER_CONFIG_PATH = join(":", aws_ssm_parameter.runner_matcher_config[*].name)
      REPOSITORY_ALLOW_LIST                = jsonencode(var.repository_white_list)
      QUEUE_SELECTION_STRATEGY             = var.queue_selection_strategy
    }
  })
}

resource "aws_iam_role_policy" "dispatcher" {
  count = local.eventbridge ? 1 : 0
  name  = "dispatcher"
  role  = module.dispatcher[0].role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "SendJobs"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage"]
          Resource = concat([for m in var.runner_matcher_config : m.arn], [aws_sqs_queue.dispatcher_dead_letters[0].arn])
        },
        {
          Sid      = "ReadMatcherConfig"
          Effect   = "Allow"
          Action   = ["ssm:GetParameters"]
          Resource = aws_ssm_parameter.runner_matcher_config[*].arn
        },
      ],
      var.kms_key_arn == null ? [] : [{
        Sid      = "Keys"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [var.kms_key_arn]
      }]
    )
  })
}

resource "aws_lambda_function_event_invoke_config" "dispatcher" {
  count                        = local.eventbridge ? 1 : 0
  function_name                = module.dispatcher[0].function.name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 3600
  destination_config {
    on_failure {
      destination = aws_sqs_queue.dispatcher_dead_letters[0].arn
    }
  }
}

resource "aws_cloudwatch_event_target" "dispatcher" {
  count          = local.eventbridge ? 1 : 0
  target_id      = "dispatcher"
  rule           = aws_cloudwatch_event_rule.workflow_job[0].name
  event_bus_name = aws_cloudwatch_event_bus.runners[0].name
  arn            = module.dispatcher[0].function.arn
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 20
  }
  dead_letter_config {
    arn = aws_sqs_queue.dispatcher_dead_letters[0].arn
  }
}

resource "aws_lambda_permission" "eventbridge" {
  count         = local.eventbridge ? 1 : 0
  statement_id  = "AllowEventBridge"
  action        = "lambda:InvokeFunction"
  function_name = module.dispatcher[0].function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.workflow_job[0].arn
}
