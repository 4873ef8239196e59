locals {
  # Upstream allows `queue_encryption = null`: encryption off.
  queue_kms_key   = try(var.queue_encryption.kms_master_key_id, null)
  queue_kms_reuse = try(var.queue_encryption.kms_data_key_reuse_period_seconds, null)
  queue_sse       = var.queue_encryption == null ? false : local.queue_kms_key == null ? coalesce(var.queue_encryption.sqs_managed_sse_enabled, true) : null
}

################################################################################
# The build queue (one per runner configuration) and its dead-letter queue
################################################################################

resource "aws_sqs_queue" "build" {
  name                              = "${var.prefix}-queued-builds"
  delay_seconds                     = var.delay_webhook_event
  visibility_timeout_seconds        = var.scale_up_lambda.timeout
  message_retention_seconds         = var.job_queue_retention_in_seconds
  sqs_managed_sse_enabled           = local.queue_sse
  kms_master_key_id                 = local.queue_kms_key
  kms_data_key_reuse_period_seconds = local.queue_kms_reuse
  redrive_policy = var.redrive_build_queue.enabled ? jsonencode({
    deadLetterTargetArn = aws_sqs_queue.build_dlq[0].arn
    maxReceiveCount     = var.redrive_build_queue.maxReceiveCount
  }) : null
  tags = var.tags
}

resource "aws_sqs_queue" "build_dlq" {
  count                             = var.redrive_build_queue.enabled ? 1 : 0
  name                              = "${var.prefix}-queued-builds_dead_letter"
  message_retention_seconds         = 1209600
  sqs_managed_sse_enabled           = local.queue_sse
  kms_master_key_id                 = local.queue_kms_key
  kms_data_key_reuse_period_seconds = local.queue_kms_reuse
  tags                              = var.tags
}

# TLS only, on both queues (upstream attached the DLQ's policy to the main queue).
locals {
  queue_tls_only = { for name, arn in merge({ build = aws_sqs_queue.build.arn }, var.redrive_build_queue.enabled ? { dlq = aws_sqs_queue.build_dlq[0].arn } : {}) :
    name => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }]
    })
  }
}

resource "aws_sqs_queue_policy" "build" {
  queue_url = aws_sqs_queue.build.id
  policy    = local.queue_tls_only["build"]
}

resource "aws_sqs_queue_policy" "build_dlq" {
  count     = var.redrive_build_queue.enabled ? 1 : 0
  queue_url = aws_sqs_queue.build_dlq[0].id
  policy    = local.queue_tls_only["dlq"]
}
