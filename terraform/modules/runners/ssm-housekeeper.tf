################################################################################
# SSM housekeeper: token parameters nobody will read, deleted on a schedule
################################################################################

locals {
  ssm_housekeeper = var.ssm_housekeeper.enabled
}

module "ssm_housekeeper" {
  source = "../lambda"
  count  = local.ssm_housekeeper ? 1 : 0
  lambda = merge(var.lambda, {
    name        = "ssm-housekeeper"
    zip         = var.ssm_housekeeper.zip
    memory_size = var.ssm_housekeeper.lambda_memory_size
    timeout     = var.ssm_housekeeper.lambda_timeout
    environment_variables = {
      RUNNER_BOOT_TIME_IN_MINUTES = tostring(var.runner_boot_time_in_minutes)
      SSM_CLEANUP_CONFIG = jsonencode({
        tokenPath      = coalesce(var.ssm_housekeeper.config.tokenPath, local.token_path)
        minimumDaysOld = var.ssm_housekeeper.config.minimumDaysOld
        dryRun         = var.ssm_housekeeper.config.dryRun
      })
    }
  })
}

resource "aws_cloudwatch_event_rule" "ssm_housekeeper" {
  count               = local.ssm_housekeeper ? 1 : 0
  name                = "${var.prefix}-ssm-housekeeper"
  description         = "Runs the SSM housekeeper"
  schedule_expression = var.ssm_housekeeper.schedule_expression
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "ssm_housekeeper" {
  count = local.ssm_housekeeper ? 1 : 0
  rule  = aws_cloudwatch_event_rule.ssm_housekeeper[0].name
  arn   = module.ssm_housekeeper[0].function.arn
}

resource "aws_lambda_permission" "ssm_housekeeper" {
  count         = local.ssm_housekeeper ? 1 : 0
  statement_id  = "AllowExecutionFromCloudWatch"
  action        = "lambda:InvokeFunction"
  function_name = module.ssm_housekeeper[0].function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.ssm_housekeeper[0].arn
}

locals {
  housekeeper_token_path = trimsuffix(coalesce(var.ssm_housekeeper.config.tokenPath, local.token_path), "/")
}

resource "aws_iam_role_policy" "ssm_housekeeper" {
  count = local.ssm_housekeeper ? 1 : 0
  name  = "ssm-housekeeper"
  role  = module.ssm_housekeeper[0].role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # GetParametersByPath is authorized on the path itself.
        Sid      = "ListTokens"
        Effect   = "Allow"
        Action   = ["ssm:GetParametersByPath"]
        Resource = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.housekeeper_token_path}"
      },
      {
        Sid      = "DeleteTokens"
        Effect   = "Allow"
        Action   = ["ssm:DeleteParameter", "ssm:DeleteParameters"]
        Resource = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.housekeeper_token_path}/*"
      },
      {
        # Describe calls have no resource-level permissions.
        Sid      = "FindInstances"
        Effect   = "Allow"
        Action   = ["ec2:DescribeInstances"]
        Resource = "*"
      },
    ]
  })
}
