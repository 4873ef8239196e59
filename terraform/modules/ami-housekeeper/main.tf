################################################################################
# AMI housekeeper: old machine images nothing launches from, deregistered with their snapshots
################################################################################

module "function" {
  source = "../lambda"
  lambda = merge(var.lambda, {
    name        = "ami-housekeeper"
    zip         = var.zip
    memory_size = var.memory_size
    timeout     = var.timeout
    environment_variables = {
      AMI_CLEANUP_OPTIONS = jsonencode(var.cleanup_config)
    }
  })
}

resource "aws_cloudwatch_event_rule" "schedule" {
  name                = "${var.lambda.prefix}-ami-housekeeper"
  description         = "Deregisters old machine images that no launch template or listed parameter uses"
  schedule_expression = var.schedule_expression
  state               = var.state
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

# A failed run (images in use unreadable) is not retried at once: the next day's run is.
resource "aws_lambda_function_event_invoke_config" "schedule" {
  function_name                = module.function.function.name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 3600
}

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  arn_prefix = "arn:${data.aws_partition.current.partition}"
  region     = data.aws_region.current.name
}

resource "aws_iam_role_policy" "function" {
  name = "ami-housekeeper"
  role = module.function.role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Describe calls support no resource-level permissions.
        Sid      = "ReadImagesAndTemplates"
        Effect   = "Allow"
        Action   = ["ec2:DescribeImages", "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions", "ssm:DescribeParameters"]
        Resource = "*"
      },
      {
        # Images and snapshots have no account in their ARN; the function only asks for this
        # account's own (`Owners = self`).
        Sid    = "DeregisterImages"
        Effect = "Allow"
        Action = ["ec2:DeregisterImage", "ec2:DeleteSnapshot"]
        Resource = [
          "${local.arn_prefix}:ec2:${local.region}::image/*",
          "${local.arn_prefix}:ec2:${local.region}::snapshot/*",
        ]
      },
      {
        # The listed parameters (wildcards included) and those launch templates resolve.
        Sid      = "ReadImageParameters"
        Effect   = "Allow"
        Action   = ["ssm:GetParameters", "ssm:GetParameter"]
        Resource = "${local.arn_prefix}:ssm:${local.region}:${data.aws_caller_identity.current.account_id}:parameter/*"
      },
    ]
  })
}
