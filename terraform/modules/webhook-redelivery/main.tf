################################################################################
# Webhook redelivery: failed workflow_job deliveries of the GitHub Apps, redelivered
################################################################################

# Every App's checkpoint (a JSON object by App id), written by the function; created here so
# that a destroy removes it.
resource "aws_ssm_parameter" "checkpoints" {
  #checkov:skip=CKV2_AWS_34:Delivery times, not secrets.
  name  = var.checkpoint_parameter
  type  = "String"
  value = "{}"
  tags  = var.lambda.tags

  lifecycle {
    ignore_changes = [value, insecure_value]
  }
}

module "function" {
  source = "../lambda"
  lambda = merge(var.lambda, {
    name        = "webhook-redelivery"
    zip         = var.zip
    memory_size = var.memory_size
    timeout     = var.timeout
    environment_variables = {
      GHES_URL                                  = var.ghes_url == null ? "" : var.ghes_url
      NODE_TLS_REJECT_UNAUTHORIZED              = var.ghes_url != null && !var.ghes_ssl_verify ? "0" : "1"
      PARAMETER_GITHUB_APP_ID_NAME              = var.app_parameters.ids
      PARAMETER_GITHUB_APP_INSTALLATION_ID_NAME = var.app_parameters.installation_ids
      PARAMETER_GITHUB_APP_KEY_BASE64_NAME      = var.app_parameters.keys
      REDELIVERY_CHECKPOINT_PARAMETER           = aws_ssm_parameter.checkpoints.name
      REDELIVERY_MAX_ATTEMPTS                   = tostring(var.max_attempts)
      REDELIVERY_WINDOW_MINUTES                 = tostring(var.window_minutes)
      USER_AGENT                                = var.user_agent
    }
  })
}

resource "aws_cloudwatch_event_rule" "schedule" {
  name                = "${var.lambda.prefix}-webhook-redelivery"
  description         = "Redelivers failed workflow_job webhook deliveries"
  schedule_expression = var.schedule_expression
  tags                = var.lambda.tags
}

resource "aws_cloudwatch_event_target" "schedule" {
  rule = aws_cloudwatch_event_rule.schedule.name
  arn  = module.function.function.arn
}

resource "aws_lambda_permission" "schedule" {
  statement_id  = "AllowExecutionFromCloudWatch"
  action        = "lambda:InvokeFunction"
  function_name = module.function.function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule.arn
}

# No retry of a failed run: the next scheduled run starts from the same checkpoint. With the
# defaults (a 120 s timeout, a 5-minute schedule) runs never overlap.
resource "aws_lambda_function_event_invoke_config" "schedule" {
  function_name                = module.function.function.name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 300
}

resource "aws_iam_role_policy" "function" {
  name = "webhook-redelivery"
  role = module.function.role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "ReadApps"
          Effect   = "Allow"
          Action   = ["ssm:GetParameters"]
          Resource = var.app_parameters.arns
        },
        {
          Sid      = "Checkpoints"
          Effect   = "Allow"
          Action   = ["ssm:GetParameter", "ssm:PutParameter"]
          Resource = aws_ssm_parameter.checkpoints.arn
        },
      ],
      var.kms_key_arn == null ? [] : [{
        Sid      = "Keys"
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [var.kms_key_arn]
      }]
    )
  })
}
