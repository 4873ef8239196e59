################################################################################
# The warm pool (beyond upstream): prepared, stopped instances, topped up on a schedule
################################################################################

locals {
  warm_pool = var.warm_pool.size > 0
  # Scale-up (which claims) and the warm-pool function (which launches and retires) read it.
  warm_pool_config = local.warm_pool ? jsonencode({
    size        = var.warm_pool.size
    maxAgeHours = var.warm_pool.max_age_hours
    hibernate   = var.warm_pool.hibernate
  }) : "{}"

  # What a runner going back to the pool sheds and gets (common::domain::warm_pool::RETURN_UNTAG).
  warm_return_tag_keys = [
    "ghr:warm", "ghr:warm_returned_at", "ghr:Type", "ghr:Owner", "ghr:github_runner_id", "ghr:launched_for_job",
    "ghr:deregistered_at", "ghr:withdrawn_at", "ghr:pool_hold_until", "ghr:orphan", "ghr:job_started",
    "ghr:job_completed", "ghr:offline_since", "ghr:job_run", "ghr:warm_claimed_at",
  ]

  # What claiming a warm instance takes (scale-up, and the pool, which launches through its
  # code): tagging it with its owner, and starting it once its configuration is written.
  # (A filtered `for`, not a conditional: the two statements differ in shape.)
  warm_claim_statements = [for statement in [
    {
      Sid      = "ClaimWarmInstances"
      Effect   = "Allow"
      Action   = ["ec2:CreateTags"]
      Resource = "${local.ec2_arn}:instance/*"
      Condition = {
        StringEquals                = { "aws:ResourceTag/ghr:environment" = var.prefix }
        "ForAllValues:StringEquals" = { "aws:TagKeys" = ["ghr:warm", "ghr:warm_claimed_at", "ghr:Type", "ghr:Owner"] }
      }
    },
    {
      Sid      = "StartClaimedWarmInstances"
      Effect   = "Allow"
      Action   = ["ec2:StartInstances"]
      Resource = "${local.ec2_arn}:instance/*"
      Condition = {
        StringEquals = { "aws:ResourceTag/ghr:environment" = var.prefix, "aws:ResourceTag/ghr:warm" = "claimed" }
      }
    },
  ] : statement if local.warm_pool]
}

module "warm_pool" {
  source = "../lambda"
  count  = local.warm_pool ? 1 : 0
  lambda = merge(var.lambda, {
    name                           = "warm-pool"
    zip                            = var.warm_pool.zip
    memory_size                    = var.warm_pool.lambda_memory_size
    timeout                        = var.warm_pool.lambda_timeout
    reserved_concurrent_executions = 1
    # It launches through scale-up's code: scale-up's variables, and the time to prepare.
    environment_variables = merge(local.scale_up_environment, {
      RUNNER_BOOT_TIME_IN_MINUTES = tostring(var.runner_boot_time_in_minutes)
    })
  })
}

resource "aws_iam_role_policy" "warm_pool" {
  count = local.warm_pool ? 1 : 0
  name  = "warm-pool"
  role  = module.warm_pool[0].role.name
  # Launching (and terminating this environment's instances, to retire them) as scale-up does.
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.launch_statements
  })
}

resource "aws_cloudwatch_event_rule" "warm_pool" {
  count               = local.warm_pool ? 1 : 0
  name                = "${var.prefix}-warm-pool-rule"
  description         = "Tops the warm pool up"
  schedule_expression = var.warm_pool.schedule_expression
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "warm_pool" {
  count = local.warm_pool ? 1 : 0
  rule  = aws_cloudwatch_event_rule.warm_pool[0].name
  arn   = module.warm_pool[0].function.arn
}

resource "aws_lambda_permission" "warm_pool" {
  count         = local.warm_pool ? 1 : 0
  statement_id  = "AllowExecutionFromCloudWatch"
  action        = "lambda:InvokeFunction"
  function_name = module.warm_pool[0].function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.warm_pool[0].arn
}
