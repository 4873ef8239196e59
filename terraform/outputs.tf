output "webhook" {
  description = "The webhook: `endpoint` (set it as the GitHub App's webhook URL), `function_url` (if enabled), the function."
  value = {
    endpoint     = module.webhook.endpoint
    function_url = module.webhook.function_url
    lambda       = module.webhook.lambda
  }
}

output "runners" {
  description = "Launch template, runner role, scale-up and scale-down functions, labels, log groups, SSM paths."
  value = {
    launch_template    = module.runners.launch_template
    role_runner        = module.runners.role_runner
    lambda_up          = module.runners.lambda_up
    lambda_down        = module.runners.lambda_down
    labels             = module.runners.labels
    runners_log_groups = module.runners.runners_log_groups
    ssm_paths          = module.runners.ssm_paths
  }
}

output "queues" {
  description = "The build queue and its dead-letter queue (names, ARNs, URLs)."
  value = {
    build_queue_name    = module.runners.queue.name
    build_queue_arn     = module.runners.queue.arn
    build_queue_url     = module.runners.queue.id
    build_queue_dlq_arn = try(module.runners.queue.dlq.arn, null)
  }
}

output "binaries_syncer" {
  description = "The runner distribution bucket, its object location and the syncer function (null when disabled)."
  value = var.enable_runner_binaries_syncer ? {
    bucket   = module.runner_binaries[0].bucket
    location = module.runner_binaries[0].location
    lambda   = module.runner_binaries[0].lambda
  } : null
}

output "ssm_parameters" {
  description = "The GitHub App parameters (names and ARNs)."
  value       = module.ssm.parameters
}

output "dashboard_url" {
  description = "The CloudWatch dashboard (null when metrics are disabled)."
  value       = try(module.monitoring[0].dashboard_url, null)
}
