################################################################################
# Job retry: launched jobs checked again after a delay, put back if still queued
################################################################################

locals {
  job_retry = var.job_retry.enable
  job_retry_config = local.job_retry ? jsonencode({
    enable         = true
    maxAttempts    = var.job_retry.max_attempts
    delayInSeconds = var.job_retry.delay_in_seconds
    delayBackoff   = var.job_retry.delay_backoff
    queueUrl       = aws_sqs_queue.job_retry[0].id
  }) : "{}"
}

resource "aws_sqs_queue" "job_retry" {
  count                             = local.job_retry ? 1 : 0
  name                              = "${var.prefix}-job-retry"
  visibility_timeout_seconds        = var.job_retry.lambda_timeout
  message_retention_seconds         = var.job_queue_retention_in_seconds
  sqs_managed_sse_enabled           = local.queue_sse
  kms_master_key_id                 = local.queue_kms_key
  kms_data_key_reuse_period_seconds = local.queue_kms_reuse
  tags                              = var.tags
}

resource "aws_sqs_queue_policy" "job_retry" {
  count     = local.job_retry ? 1 : 0
  queue_url = aws_sqs_queue.job_retry[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "sqs:*"
      Resource  = aws_sqs_queue.job_retry[0].arn
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

module "job_retry" {
  source = "../lambda"
  count  = local.job_retry ? 1 : 0
  lambda = merge(var.lambda, {
    name        = "job-retry"
    zip         = var.job_retry.zip
    memory_size = var.job_retry.lambda_memory_size
    timeout     = var.job_retry.lambda_timeout
    environment_variables = {
      ENABLE_METRIC_JOB_RETRY                   = "true"
      ENABLE_ORGANIZATION_RUNNERS               = tostring(var.enable_organization_runners)
      GHES_URL                                  = var.ghes_url == null ? "" : var.ghes_url
      JOB_QUEUE_SCALE_UP_URL                    = aws_sqs_queue.build.id
      NODE_TLS_REJECT_UNAUTHORIZED              = var.ghes_url != null && !var.ghes_ssl_verify ? "0" : "1"
      PARAMETER_GITHUB_APP_ID_NAME              = var.app_parameters.ids
      PARAMETER_GITHUB_APP_INSTALLATION_ID_NAME = var.app_parameters.installation_ids
      PARAMETER_GITHUB_APP_KEY_BASE64_NAME      = var.app_parameters.keys
      USER_AGENT                                = var.user_agent
    }
  })
}

resource "aws_lambda_event_source_mapping" "job_retry" {
  count            = local.job_retry ? 1 : 0
  event_source_arn = aws_sqs_queue.job_retry[0].arn
  function_name    = module.job_retry[0].function.arn
  batch_size       = 10
  # A job whose state GitHub could not tell comes back instead of being dropped.
  function_response_types = ["ReportBatchItemFailures"]
}

resource "aws_iam_role_policy" "job_retry" {
  count = local.job_retry ? 1 : 0
  name  = "job-retry"
  role  = module.job_retry[0].role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "ReadRetryQueue"
          Effect   = "Allow"
          Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
          Resource = aws_sqs_queue.job_retry[0].arn
        },
        {
          Sid      = "RequeueJobs"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage"]
          Resource = aws_sqs_queue.build.arn
        },
        {
          Sid      = "ReadApp"
          Effect   = "Allow"
          Action   = ["ssm:GetParameters"]
          Resource = var.app_parameters.arns
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
