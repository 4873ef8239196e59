data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  bucket        = lower("${substr(var.prefix, 0, 40)}-dist-${substr(md5("${data.aws_caller_identity.current.account_id}-${data.aws_region.current.name}-${var.prefix}"), 0, 12)}")
  github_os     = var.runner_os == "windows" ? "win" : var.runner_os
  object_key    = var.runner_os == "windows" ? "actions-runner-windows.zip" : "actions-runner-${var.runner_os}.tar.gz"
  sse_algorithm = try(var.s3_sse_configuration.rule.apply_server_side_encryption_by_default.sse_algorithm, "AES256")
  sse_kms_key   = try(var.s3_sse_configuration.rule.apply_server_side_encryption_by_default.kms_master_key_id, null)
}

################################################################################
# The distribution bucket: private, encrypted, TLS only
################################################################################

resource "aws_s3_bucket" "dist" {
  #checkov:skip=CKV_AWS_144:Cross-region replication of a cache that rebuilds itself from GitHub within the hour is not worth its cost.
  #checkov:skip=CKV_AWS_18:Access logging is optional (runner_binaries_s3_logging_bucket).
  #checkov:skip=CKV_AWS_21:Versioning is optional (runner_binaries_s3_versioning): the object is a copy of a public release.
  #checkov:skip=CKV_AWS_19:Encrypted at rest by aws_s3_bucket_server_side_encryption_configuration.dist (SSE-S3 or KMS); checkov does not follow it through the module.
  #checkov:skip=CKV_AWS_145:Encryption is configurable (runner_binaries_s3_sse_configuration); SSE-S3 by default.
  bucket        = local.bucket
  force_destroy = true
  tags          = merge(var.tags, var.s3_tags)
}

resource "aws_s3_bucket_ownership_controls" "dist" {
  bucket = aws_s3_bucket.dist.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "dist" {
  bucket                  = aws_s3_bucket.dist.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "dist" {
  bucket = aws_s3_bucket.dist.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.sse_algorithm
      kms_master_key_id = local.sse_kms_key
    }
    bucket_key_enabled = local.sse_algorithm == "aws:kms"
  }
}

resource "aws_s3_bucket_versioning" "dist" {
  bucket = aws_s3_bucket.dist.id
  versioning_configuration {
    status = var.s3_versioning
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "dist" {
  bucket = aws_s3_bucket.dist.id
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  rule {
    id     = "intelligent-tiering"
    status = "Enabled"
    filter {}
    transition {
      days          = 35
      storage_class = "INTELLIGENT_TIERING"
    }
  }
}

resource "aws_s3_bucket_logging" "dist" {
  count         = var.s3_logging_bucket == null ? 0 : 1
  bucket        = aws_s3_bucket.dist.id
  target_bucket = var.s3_logging_bucket
  target_prefix = coalesce(var.s3_logging_bucket_prefix, "${local.bucket}/")
}

resource "aws_s3_bucket_policy" "dist" {
  bucket = aws_s3_bucket.dist.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.dist.arn, "${aws_s3_bucket.dist.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.dist]
}

################################################################################
# The syncer: hourly, and once right after deployment (trigger object)
################################################################################

module "lambda" {
  source = "../lambda"
  lambda = merge(var.lambda, {
    name = "syncer"
    environment_variables = {
      GITHUB_RUNNER_ARCHITECTURE   = var.runner_architecture
      GITHUB_RUNNER_OS             = local.github_os
      GITHUB_RUNNER_VERSION        = var.runner_version == null ? "" : var.runner_version
      GHES_URL                     = var.ghes_url == null ? "" : var.ghes_url
      NODE_TLS_REJECT_UNAUTHORIZED = var.ghes_url != null && !var.ghes_ssl_verify ? "0" : "1"
      S3_BUCKET_NAME               = aws_s3_bucket.dist.id
      S3_OBJECT_KEY                = local.object_key
      S3_SSE_ALGORITHM             = local.sse_algorithm
      S3_SSE_KMS_KEY_ID            = local.sse_kms_key == null ? "" : local.sse_kms_key
      USER_AGENT                   = var.user_agent
    }
  })
}

resource "aws_iam_role_policy" "syncer" {
  name = "syncer"
  role = module.lambda.role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "MirrorObject"
        Effect   = "Allow"
        Action   = ["s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"]
        Resource = "${aws_s3_bucket.dist.arn}/${local.object_key}"
      }],
      local.sse_kms_key == null ? [] : [{
        Sid      = "Key"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource = [local.sse_kms_key]
      }]
    )
  })
}

resource "aws_cloudwatch_event_rule" "syncer" {
  name                = "${var.prefix}-syncer-rule"
  description         = "Mirrors the GitHub Actions runner to S3"
  schedule_expression = var.schedule_expression
  state               = var.state_event_rule_binaries_syncer
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "syncer" {
  rule = aws_cloudwatch_event_rule.syncer.name
  arn  = module.lambda.function.arn
}

resource "aws_lambda_permission" "schedule" {
  statement_id  = "AllowExecutionFromCloudWatch"
  action        = "lambda:InvokeFunction"
  function_name = module.lambda.function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.syncer.arn
}

resource "aws_lambda_permission" "trigger" {
  statement_id   = "AllowExecutionFromS3"
  action         = "lambda:InvokeFunction"
  function_name  = module.lambda.function.name
  principal      = "s3.amazonaws.com"
  source_arn     = aws_s3_bucket.dist.arn
  source_account = data.aws_caller_identity.current.account_id
}

resource "aws_s3_bucket_notification" "trigger" {
  bucket = aws_s3_bucket.dist.id
  lambda_function {
    lambda_function_arn = module.lambda.function.arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = "triggers/"
    filter_suffix       = ".json"
  }
  depends_on = [aws_lambda_permission.trigger]
}

resource "aws_s3_object" "trigger" {
  bucket     = aws_s3_bucket.dist.id
  key        = "triggers/${var.prefix}-syncer-trigger.json"
  content    = jsonencode({ reason = "first sync after deployment" })
  depends_on = [aws_s3_bucket_notification.trigger]
}
