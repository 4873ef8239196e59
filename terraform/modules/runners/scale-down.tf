################################################################################
# Scale-down: schedule → idle, orphan and ghost runners removed, never a busy one
################################################################################

module "scale_down" {
  source = "../lambda"
  lambda = merge(var.lambda, {
    name        = "scale-down"
    zip         = var.scale_down_lambda.zip
    memory_size = var.scale_down_lambda.memory_size
    timeout     = var.scale_down_lambda.timeout
    environment_variables = {
      COMPUTE_PROVIDER_TYPE                     = "ec2"
      ENABLE_METRIC_GITHUB_APP_RATE_LIMIT       = tostring(var.enable_metric_github_app_rate_limit)
      GHES_URL                                  = var.ghes_url == null ? "" : var.ghes_url
      MINIMUM_RUNNING_TIME_IN_MINUTES           = tostring(local.minimum_running_time)
      NODE_TLS_REJECT_UNAUTHORIZED              = var.ghes_url != null && !var.ghes_ssl_verify ? "0" : "1"
      PARAMETER_GITHUB_APP_ID_NAME              = var.app_parameters.ids
      PARAMETER_GITHUB_APP_INSTALLATION_ID_NAME = var.app_parameters.installation_ids
      PARAMETER_GITHUB_APP_KEY_BASE64_NAME      = var.app_parameters.keys
      RUNNER_BOOT_TIME_IN_MINUTES               = tostring(var.runner_boot_time_in_minutes)
      RUNNER_JOB_START_GRACE_SECONDS            = tostring(var.scale_down_job_start_grace_seconds)
      RUNNER_NAME_PREFIX                        = var.runner_name_prefix
      RUNNER_OFFLINE_TIMEOUT_IN_MINUTES         = tostring(var.runner_offline_timeout_in_minutes)
      RUNNER_WITHDRAWAL_WAIT_SECONDS            = tostring(var.scale_down_withdrawal_wait_seconds)
      SCALE_DOWN_CONFIG                         = jsonencode(var.idle_config)
      WARM_POOL_CONFIG                          = local.warm_pool_config
      USER_AGENT                                = var.user_agent
    }
  })
}

resource "aws_cloudwatch_event_rule" "scale_down" {
  name                = "${var.prefix}-scale-down-rule"
  description         = "Runs scale-down"
  schedule_expression = var.scale_down_schedule_expression
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "scale_down" {
  rule = aws_cloudwatch_event_rule.scale_down.name
  arn  = module.scale_down.function.arn
}

resource "aws_lambda_permission" "scale_down" {
  statement_id  = "AllowExecutionFromCloudWatch"
  action        = "lambda:InvokeFunction"
  function_name = module.scale_down.function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.scale_down.arn
}

resource "aws_iam_role_policy" "scale_down" {
  name = "scale-down"
  role = module.scale_down.role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "ListRunners"
          Effect   = "Allow"
          Action   = ["ec2:DescribeInstances"]
          Resource = "*"
        },
        {
          Sid      = "RemoveRunners"
          Effect   = "Allow"
          Action   = ["ec2:TerminateInstances"]
          Resource = "${local.ec2_arn}:instance/*"
          Condition = {
            StringEquals = { "aws:ResourceTag/ghr:environment" = var.prefix, "aws:ResourceTag/ghr:Application" = "github-action-runner" }
          }
        },
        {
          Sid      = "MarkOrphansAndOfflineRunners"
          Effect   = "Allow"
          Action   = ["ec2:CreateTags", "ec2:DeleteTags"]
          Resource = "${local.ec2_arn}:instance/*"
          Condition = {
            StringEquals                = { "aws:ResourceTag/ghr:environment" = var.prefix }
            "ForAllValues:StringEquals" = { "aws:TagKeys" = ["ghr:orphan", "ghr:offline_since", "ghr:deregistered_at", "ghr:withdrawn_at"] }
          }
        },
        {
          Sid      = "ReadApp"
          Effect   = "Allow"
          Action   = ["ssm:GetParameters"]
          Resource = var.app_parameters.arns
        },
      ],
      # An idle runner that came from the warm pool goes back to it: tagged ready, stripped of
      # its owner, runner and job tags, stopped.
      [for statement in [
        {
          Sid      = "ReturnToWarmPool"
          Effect   = "Allow"
          Action   = ["ec2:CreateTags", "ec2:DeleteTags"]
          Resource = "${local.ec2_arn}:instance/*"
          Condition = {
            StringEquals                = { "aws:ResourceTag/ghr:environment" = var.prefix }
            "ForAllValues:StringEquals" = { "aws:TagKeys" = local.warm_return_tag_keys }
          }
        },
        {
          Sid      = "StopReturnedRunners"
          Effect   = "Allow"
          Action   = ["ec2:StopInstances"]
          Resource = "${local.ec2_arn}:instance/*"
          Condition = {
            StringEquals = { "aws:ResourceTag/ghr:environment" = var.prefix, "aws:ResourceTag/ghr:warm" = "ready" }
          }
        },
      ] : statement if local.warm_pool],
      var.kms_key_arn == null ? [] : [{
        Sid      = "Keys"
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [var.kms_key_arn]
      }]
    )
  })
}
