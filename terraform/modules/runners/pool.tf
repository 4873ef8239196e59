################################################################################
# The pool: idle organization runners topped up on EventBridge Scheduler schedules
################################################################################

locals {
  pool = length(var.pool.config) > 0
}

module "pool" {
  source = "../lambda"
  count  = local.pool ? 1 : 0
  lambda = merge(var.lambda, {
    name                           = "pool"
    zip                            = var.pool.zip
    memory_size                    = var.pool.memory_size
    timeout                        = var.pool.timeout
    reserved_concurrent_executions = var.pool.reserved_concurrent_executions == -1 ? null : var.pool.reserved_concurrent_executions
    # The pool launches through scale-up's code: scale-up's variables, and its own.
    environment_variables = merge(local.scale_up_environment, {
      INCLUDE_BUSY_RUNNERS        = tostring(var.pool.include_busy_runners)
      POOL_HOLD_MINUTES           = tostring(var.pool.hold_minutes)
      RUNNER_BOOT_TIME_IN_MINUTES = tostring(var.runner_boot_time_in_minutes)
      RUNNER_OWNER                = coalesce(var.pool.runner_owner, "-")
    })
  })
}

resource "aws_iam_role_policy" "pool" {
  count = local.pool ? 1 : 0
  name  = "pool"
  role  = module.pool[0].role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.launch_statements, local.warm_claim_statements, [{
      Sid      = "HoldPoolRunners"
      Effect   = "Allow"
      Action   = ["ec2:CreateTags"]
      Resource = "${local.ec2_arn}:instance/*"
      Condition = {
        StringEquals                = { "aws:ResourceTag/ghr:environment" = var.prefix }
        "ForAllValues:StringEquals" = { "aws:TagKeys" = ["ghr:pool_hold_until"] }
      }
    }])
  })
}

resource "aws_scheduler_schedule_group" "pool" {
  count       = local.pool ? 1 : 0
  name_prefix = "${var.prefix}-pool"
  tags        = var.tags
}

resource "aws_iam_role" "pool_scheduler" {
  count                = local.pool ? 1 : 0
  name                 = "${var.prefix}-pool-scheduler"
  path                 = var.lambda.role_path
  permissions_boundary = var.lambda.role_permissions_boundary
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "scheduler.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "pool_scheduler" {
  count = local.pool ? 1 : 0
  name  = "invoke-pool"
  role  = aws_iam_role.pool_scheduler[0].name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "InvokePool"
      Effect   = "Allow"
      Action   = ["lambda:InvokeFunction"]
      Resource = module.pool[0].function.arn
    }]
  })
}

resource "aws_scheduler_schedule" "pool" {
  #checkov:skip=CKV_AWS_297:The schedule holds a pool size, no data; it uses the customer key when kms_key_arn is set.
  for_each                     = { for i, c in var.pool.config : tostring(i) => c }
  kms_key_arn                  = var.kms_key_arn
  name                         = "${var.prefix}-pool-${each.key}"
  group_name                   = aws_scheduler_schedule_group.pool[0].name
  schedule_expression          = each.value.schedule_expression
  schedule_expression_timezone = each.value.schedule_expression_timezone
  flexible_time_window {
    mode = "OFF"
  }
  lifecycle {
    precondition {
      condition     = var.enable_organization_runners && var.pool.runner_owner != null
      error_message = "The pool supports organization runners only (as upstream): set enable_organization_runners = true and pool_runner_owner to the organization."
    }
  }
  target {
    arn      = module.pool[0].function.arn
    role_arn = aws_iam_role.pool_scheduler[0].arn
    input    = jsonencode({ poolSize = each.value.size, type = "ec2" })
  }
}
