output "launch_template" {
  description = "The runners' launch template: name, id, latest version."
  value = {
    name           = aws_launch_template.runner.name
    id             = aws_launch_template.runner.id
    latest_version = aws_launch_template.runner.latest_version
    image_id       = aws_launch_template.runner.image_id
  }
}

output "launch_template_settings" {
  description = "The launch template's optional instance settings: `credit_specification`, `cpu_options`, `placement`, `license_specifications` (as applied)."
  value = {
    credit_specification   = try(aws_launch_template.runner.credit_specification[0].cpu_credits, null)
    cpu_options            = try(aws_launch_template.runner.cpu_options[0], null)
    placement              = try(aws_launch_template.runner.placement[0], null)
    license_specifications = aws_launch_template.runner.license_specification[*].license_configuration_arn
  }
}

output "role_runner" {
  description = "The runners' IAM role: `name`, `arn`, its inline `policy` (JSON) and the `managed_policy_arns` attached to it."
  value = {
    name                = aws_iam_role.runner.name
    arn                 = aws_iam_role.runner.arn
    policy              = aws_iam_role_policy.runner.policy
    managed_policy_arns = [for a in aws_iam_role_policy_attachment.managed : a.policy_arn]
  }
}

output "queue" {
  description = "The build queue (id = URL, arn, name, fifo) and its dead-letter queue (or null)."
  value = {
    id   = aws_sqs_queue.build.id
    arn  = aws_sqs_queue.build.arn
    name = aws_sqs_queue.build.name
    fifo = false
    dlq  = try({ id = aws_sqs_queue.build_dlq[0].id, arn = aws_sqs_queue.build_dlq[0].arn, name = aws_sqs_queue.build_dlq[0].name }, null)
  }
}

output "lambda_up" {
  description = "Scale-up: function, role, log group."
  value       = { function = module.scale_up.function, role = module.scale_up.role, log_group = module.scale_up.log_group }
}

output "lambda_down" {
  description = "Scale-down: function, role, log group."
  value       = { function = module.scale_down.function, role = module.scale_down.role, log_group = module.scale_down.log_group }
}

output "labels" {
  description = "The labels the runners register with."
  value       = var.runner_labels
}

output "runners_log_groups" {
  description = "Log groups of the runner instances' log files."
  value       = [for g in aws_cloudwatch_log_group.runner : g.name]
}

output "logfiles" {
  description = "The runner log files the CloudWatch agent ships (file path, log group, stream)."
  value       = var.enable_cloudwatch_agent ? local.log_files : []
}

output "ssm_paths" {
  description = "`config` and `tokens` SSM paths."
  value       = { config = local.config_path, tokens = local.token_path }
}

output "lambda_pool" {
  description = "The pool (null without `pool.config`): function, role, log group."
  value       = local.pool ? { function = module.pool[0].function, role = module.pool[0].role, log_group = module.pool[0].log_group } : null
}

output "lambda_warm_pool" {
  description = "The warm pool (null without `warm_pool.size`): function, role, log group."
  value       = local.warm_pool ? { function = module.warm_pool[0].function, role = module.warm_pool[0].role, log_group = module.warm_pool[0].log_group } : null
}

output "lambda_job_retry" {
  description = "Job retry (null when off): function, role, log group, and its queue."
  value = local.job_retry ? {
    function = module.job_retry[0].function, role = module.job_retry[0].role, log_group = module.job_retry[0].log_group
    queue    = { id = aws_sqs_queue.job_retry[0].id, arn = aws_sqs_queue.job_retry[0].arn, name = aws_sqs_queue.job_retry[0].name }
  } : null
}

output "lambda_ssm_housekeeper" {
  description = "The SSM housekeeper (null when disabled): function, role, log group."
  value       = local.ssm_housekeeper ? { function = module.ssm_housekeeper[0].function, role = module.ssm_housekeeper[0].role, log_group = module.ssm_housekeeper[0].log_group } : null
}
