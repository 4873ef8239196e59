################################################################################
# A Rust function on provided.al2023 (handler `bootstrap`), its log group and role
################################################################################

locals {
  function_name = "${var.lambda.prefix}-${var.lambda.name}"
  # IAM role names are at most 64 characters: keep them unique when the prefix is long.
  role_name = "${substr(local.function_name, 0, 54)}-${substr(md5(local.function_name), 0, 8)}"
  # Lambda counts log lines without a `level` (the EMF metric lines) as INFO: its own filter
  # stays at INFO or below so metrics are never dropped; the function filters by LOG_LEVEL.
  application_log_level = contains(["silly", "trace", "debug"], var.lambda.log_level) ? "DEBUG" : "INFO"
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the user's choice (logging_retention_in_days, default 180 days as upstream).
  #checkov:skip=CKV_AWS_158:KMS encryption is optional (logging_kms_key_id), as upstream.
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.lambda.logging_retention_in_days
  kms_key_id        = var.lambda.logging_kms_key_id
  log_group_class   = var.lambda.log_class
  tags              = var.lambda.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
  # Upstream's `lambda_principals`: more principals that may assume the functions' roles.
  dynamic "statement" {
    for_each = var.lambda.principals
    content {
      actions = ["sts:AssumeRole"]
      principals {
        type        = statement.value.type
        identifiers = statement.value.identifiers
      }
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = local.role_name
  path                 = var.lambda.role_path
  permissions_boundary = var.lambda.role_permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  tags                 = var.lambda.tags
}

resource "aws_iam_role_policy" "logging" {
  name = "logging"
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = "${aws_cloudwatch_log_group.this.arn}:*"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "vpc" {
  count      = length(var.lambda.subnet_ids) > 0 ? 1 : 0
  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy" "xray" {
  count = var.lambda.tracing_mode == null ? 0 : 1
  name  = "xray"
  role  = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
      Resource = "*"
    }]
  })
}

data "aws_partition" "current" {}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_50:X-Ray is optional (tracing_mode / upstream's tracing_config), off by default as upstream.
  #checkov:skip=CKV_AWS_116:Failures are not lost: SQS-triggered scale-up reports batch item failures back to its queue (with its own DLQ); scheduled functions run again on the next tick.
  #checkov:skip=CKV_AWS_117:Optional: set lambda_subnet_ids to run in a VPC. The functions only call AWS and GitHub APIs.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile the user owns; zips come from `make build`.
  #checkov:skip=CKV_AWS_173:The environment holds only SSM parameter names and settings, never secrets; secrets are read from SSM SecureString at run time.
  #checkov:skip=CKV_AWS_115:Concurrency is limited where it matters (scale-up); the webhook must scale with GitHub's deliveries.
  function_name                  = local.function_name
  description                    = "github-aws-runners ${var.lambda.name} (Rust)"
  role                           = aws_iam_role.this.arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.lambda.architecture]
  filename                       = var.lambda.zip
  source_code_hash               = fileexists(var.lambda.zip) ? filebase64sha256(var.lambda.zip) : null
  memory_size                    = var.lambda.memory_size
  timeout                        = var.lambda.timeout
  reserved_concurrent_executions = var.lambda.reserved_concurrent_executions
  tags                           = var.lambda.tags

  environment {
    variables = merge(
      {
        ENVIRONMENT                  = var.lambda.environment
        LOG_LEVEL                    = var.lambda.log_level
        POWERTOOLS_METRICS_NAMESPACE = var.lambda.metrics_namespace
      },
      var.lambda.environment_variables
    )
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this.name
    application_log_level = local.application_log_level
    system_log_level      = "WARN"
  }

  # X-Ray (upstream's `tracing_config`): `Active` samples and records every invocation.
  tracing_config {
    mode = coalesce(var.lambda.tracing_mode, "PassThrough")
  }

  dynamic "vpc_config" {
    for_each = length(var.lambda.subnet_ids) > 0 ? [1] : []
    content {
      subnet_ids         = var.lambda.subnet_ids
      security_group_ids = var.lambda.security_group_ids
    }
  }

  depends_on = [aws_iam_role_policy.logging, aws_cloudwatch_log_group.this]
}
