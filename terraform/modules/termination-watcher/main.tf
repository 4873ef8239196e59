################################################################################
# Termination watcher: spot interruption and termination metrics, the runners of terminating
# instances deregistered from GitHub (a busy one retried from a delay queue), and (job rescue,
# beyond upstream) jobs a spot reclaim interrupted re-run on on-demand capacity
################################################################################

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  prefix       = var.config.prefix
  architecture = coalesce(var.config.architecture, "arm64")
  zip          = coalesce(var.config.zip, "${path.module}/../../../target/lambda/${local.architecture == "arm64" ? "arm64" : "x86_64"}/termination-watcher/bootstrap.zip")

  # Every App (root and multi-runner modules), else upstream's one App.
  apps = var.config.app_parameters != null ? var.config.app_parameters : (var.config.github_app_parameters == null ? null : {
    ids              = var.config.github_app_parameters.id.name
    keys             = var.config.github_app_parameters.key_base64.name
    installation_ids = ""
    arns             = [var.config.github_app_parameters.id.arn, var.config.github_app_parameters.key_base64.arn]
  })
  deregistration = var.config.enable_runner_deregistration && local.apps != null
  # Job rescue (beyond upstream) reads runs through the Apps and waits on the retry queue too.
  rescue  = var.config.job_rescue != null && local.apps != null
  github  = local.deregistration || local.rescue
  metrics = var.config.metrics

  lambda = {
    prefix                    = local.prefix
    environment               = local.prefix
    architecture              = local.architecture
    memory_size               = coalesce(var.config.memory_size, 256)
    timeout                   = coalesce(var.config.timeout, 60)
    log_level                 = coalesce(var.config.log_level, "info")
    metrics_namespace         = local.metrics.namespace
    logging_retention_in_days = coalesce(var.config.logging_retention_in_days, 180)
    logging_kms_key_id        = var.config.logging_kms_key_id
    log_class                 = var.config.log_class
    role_path                 = coalesce(var.config.role_path, "/${local.prefix}/")
    role_permissions_boundary = var.config.role_permissions_boundary
    subnet_ids                = var.config.subnet_ids
    security_group_ids        = var.config.security_group_ids
    tags                      = merge(var.config.tags, var.config.lambda_tags)
    tracing_mode              = var.config.tracing_config.mode
    principals                = var.config.principals
    zip                       = local.zip
  }

  # One environment for the three functions: the binary tells the events apart.
  environment_variables = merge({
    PREFIX                                    = local.prefix
    TAG_FILTERS                               = jsonencode(var.config.tag_filters)
    ENABLE_METRICS_SPOT_WARNING               = tostring(local.metrics.enable && local.metrics.metric.enable_spot_termination_warning)
    ENABLE_METRICS_SPOT_TERMINATION           = tostring(local.metrics.enable && local.metrics.metric.enable_spot_termination)
    ENABLE_RUNNER_DEREGISTRATION              = tostring(local.deregistration)
    PARAMETER_GITHUB_APP_ID_NAME              = local.github ? local.apps.ids : ""
    PARAMETER_GITHUB_APP_KEY_BASE64_NAME      = local.github ? local.apps.keys : ""
    PARAMETER_GITHUB_APP_INSTALLATION_ID_NAME = local.github ? local.apps.installation_ids : ""
    DEREGISTER_RETRY_QUEUE_URL                = local.github ? aws_sqs_queue.deregister_retry[0].url : ""
    JOB_RESCUE_CONFIG = local.rescue ? jsonencode({
      maxAttempts = var.config.job_rescue.max_attempts
      queues      = { for environment, queue in var.config.job_rescue.queues : environment => queue.url }
    }) : ""
    GHES_URL                     = var.config.ghes_url == null ? "" : var.config.ghes_url
    NODE_TLS_REJECT_UNAUTHORIZED = var.config.ghes_url != null && !var.config.ghes_ssl_verify ? "0" : "1"
    USER_AGENT                   = var.config.user_agent
  }, var.config.environment_variables)

  functions = merge(
    var.config.features.enable_spot_termination_notification_watcher ? { notification = module.notification[0] } : {},
    var.config.features.enable_spot_termination_handler ? { handler = module.handler[0] } : {},
    local.github ? { retry = module.deregister_retry[0] } : {},
  )
}

################################################################################
# The interruption warning (and, with deregistration, every instance shutting down)
################################################################################

module "notification" {
  source = "../lambda"
  count  = var.config.features.enable_spot_termination_notification_watcher ? 1 : 0
  lambda = merge(local.lambda, {
    name                  = "spot-termination-notification"
    environment_variables = local.environment_variables
  })
}

resource "aws_cloudwatch_event_rule" "spot_warning" {
  count       = var.config.features.enable_spot_termination_notification_watcher ? 1 : 0
  name        = "${local.prefix}-spot-notify"
  description = "Spot Instance Interruption Warning"
  tags        = local.lambda.tags
  event_pattern = jsonencode({
    source      = ["aws.ec2"]
    detail-type = ["EC2 Spot Instance Interruption Warning"]
  })
}

resource "aws_cloudwatch_event_target" "spot_warning" {
  count = var.config.features.enable_spot_termination_notification_watcher ? 1 : 0
  rule  = aws_cloudwatch_event_rule.spot_warning[0].name
  arn   = module.notification[0].function.arn
}

resource "aws_lambda_permission" "spot_warning" {
  count         = var.config.features.enable_spot_termination_notification_watcher ? 1 : 0
  statement_id  = "AllowExecutionFromCloudWatch"
  action        = "lambda:InvokeFunction"
  function_name = module.notification[0].function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.spot_warning[0].arn
}

# Every termination (scale-down, a user, a spot reclaim): the runner is deregistered while the
# instance is shutting down, and looked for once more when it is terminated (a second chance
# if the first event failed; it finds nothing otherwise).
resource "aws_cloudwatch_event_rule" "state_change" {
  count       = var.config.features.enable_spot_termination_notification_watcher && local.deregistration ? 1 : 0
  name        = "${local.prefix}-instance-termination"
  description = "EC2 instance shutting down: its runner is deregistered from GitHub"
  tags        = local.lambda.tags
  event_pattern = jsonencode({
    source      = ["aws.ec2"]
    detail-type = ["EC2 Instance State-change Notification"]
    detail      = { state = ["shutting-down", "terminated"] }
  })
}

resource "aws_cloudwatch_event_target" "state_change" {
  count = length(aws_cloudwatch_event_rule.state_change)
  rule  = aws_cloudwatch_event_rule.state_change[0].name
  arn   = module.notification[0].function.arn
}

resource "aws_lambda_permission" "state_change" {
  count         = length(aws_cloudwatch_event_rule.state_change)
  statement_id  = "AllowExecutionFromCloudWatchStateChange"
  action        = "lambda:InvokeFunction"
  function_name = module.notification[0].function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.state_change[0].arn
}

################################################################################
# The reclaim itself (CloudTrail BidEvictedEvent)
################################################################################

module "handler" {
  source = "../lambda"
  count  = var.config.features.enable_spot_termination_handler ? 1 : 0
  lambda = merge(local.lambda, {
    name                  = "spot-termination-handler"
    environment_variables = local.environment_variables
  })
}

resource "aws_cloudwatch_event_rule" "spot_termination" {
  count       = var.config.features.enable_spot_termination_handler ? 1 : 0
  name        = "${local.prefix}-spot-termination"
  description = "Spot Instance Termination (BidEvictedEvent)"
  tags        = local.lambda.tags
  event_pattern = jsonencode({
    source      = ["aws.ec2"]
    detail-type = ["AWS Service Event via CloudTrail"]
    detail      = { eventSource = ["ec2.amazonaws.com"], eventName = ["BidEvictedEvent"] }
  })
}

resource "aws_cloudwatch_event_target" "spot_termination" {
  count = var.config.features.enable_spot_termination_handler ? 1 : 0
  rule  = aws_cloudwatch_event_rule.spot_termination[0].name
  arn   = module.handler[0].function.arn
}

resource "aws_lambda_permission" "spot_termination" {
  count         = var.config.features.enable_spot_termination_handler ? 1 : 0
  statement_id  = "AllowExecutionFromCloudWatch"
  action        = "lambda:InvokeFunction"
  function_name = module.handler[0].function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.spot_termination[0].arn
}

################################################################################
# Deregistration retries: a busy runner waits 5 minutes (the queue's delay), then again
################################################################################

resource "aws_sqs_queue" "deregister_retry_dlq" {
  count                     = local.github ? 1 : 0
  name                      = "${local.prefix}-deregister-retry-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.config.kms_key_arn == null
  kms_master_key_id         = var.config.kms_key_arn
  tags                      = local.lambda.tags
}

resource "aws_sqs_queue" "deregister_retry" {
  count                      = local.github ? 1 : 0
  name                       = "${local.prefix}-deregister-retry"
  delay_seconds              = 300
  message_retention_seconds  = 86400
  visibility_timeout_seconds = local.lambda.timeout + 30
  sqs_managed_sse_enabled    = var.config.kms_key_arn == null
  kms_master_key_id          = var.config.kms_key_arn
  tags                       = local.lambda.tags
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.deregister_retry_dlq[0].arn
    maxReceiveCount     = 3
  })
}

module "deregister_retry" {
  source = "../lambda"
  count  = local.github ? 1 : 0
  lambda = merge(local.lambda, {
    name                  = "deregister-retry"
    environment_variables = local.environment_variables
  })
}

resource "aws_lambda_event_source_mapping" "deregister_retry" {
  count                   = local.github ? 1 : 0
  event_source_arn        = aws_sqs_queue.deregister_retry[0].arn
  function_name           = module.deregister_retry[0].function.arn
  batch_size              = 1
  function_response_types = ["ReportBatchItemFailures"]
}

################################################################################
# IAM
################################################################################

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "termination-watcher"
  role     = each.value.role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        # DescribeInstances supports no resource-level permissions.
        Sid      = "DescribeInstances"
        Effect   = "Allow"
        Action   = ["ec2:DescribeInstances"]
        Resource = "*"
      }],
      local.github ? [
        {
          Sid      = "ReadApps"
          Effect   = "Allow"
          Action   = ["ssm:GetParameters"]
          Resource = local.apps.arns
        },
        {
          Sid      = "RetryQueue"
          Effect   = "Allow"
          Action   = each.key == "retry" ? ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"] : ["sqs:SendMessage"]
          Resource = [aws_sqs_queue.deregister_retry[0].arn]
        },
      ] : [],
      # Job rescue: the re-run job's message goes to its build queue.
      local.rescue && each.key == "retry" ? [{
        Sid      = "SendRescuedJobs"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = distinct([for queue in values(var.config.job_rescue.queues) : queue.arn])
      }] : [],
      local.github && var.config.kms_key_arn != null ? [{
        Sid      = "Keys"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [var.config.kms_key_arn]
      }] : [],
    )
  })
}
