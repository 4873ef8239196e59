output "webhook" {
  description = "The webhook (upstream's keys): `endpoint` (set it as the GitHub App's webhook URL), `lambda`, `lambda_log_group`, `lambda_role`, and in EventBridge mode `dispatcher` and `eventbridge` (bus, rule, dead-letter queue); `function_url` if enabled; `redelivery` (function, log group, role, schedule rule) unless `enable_webhook_redelivery = false`."
  value = {
    endpoint         = module.webhook.endpoint
    function_url     = module.webhook.function_url
    lambda           = module.webhook.lambda.function
    lambda_log_group = module.webhook.lambda.log_group
    lambda_role      = module.webhook.lambda.role
    dispatcher       = try(module.webhook.eventbridge.dispatcher, null)
    eventbridge      = module.webhook.eventbridge
    redelivery       = try(module.webhook_redelivery[0].lambda, null)
  }
}

output "runners" {
  description = "The runners (upstream's keys): launch template, scale-up and scale-down functions with their log groups and roles, the runner role, log groups and files, labels (the pool's are null without `pool_config`); plus `ssm_paths`, `lambda_job_retry` and `lambda_ssm_housekeeper` (null when off)."
  value = {
    launch_template_name    = module.runners.launch_template.name
    launch_template_id      = module.runners.launch_template.id
    launch_template_version = module.runners.launch_template.latest_version
    launch_template_ami_id  = module.runners.launch_template.image_id
    lambda_up               = module.runners.lambda_up.function
    lambda_up_log_group     = module.runners.lambda_up.log_group
    lambda_down             = module.runners.lambda_down.function
    lambda_down_log_group   = module.runners.lambda_down.log_group
    lambda_pool             = try(module.runners.lambda_pool.function, null)
    lambda_pool_log_group   = try(module.runners.lambda_pool.log_group, null)
    role_runner             = module.runners.role_runner
    role_scale_up           = module.runners.lambda_up.role
    role_scale_down         = module.runners.lambda_down.role
    role_pool               = try(module.runners.lambda_pool.role, null)
    runners_log_groups      = module.runners.runners_log_groups
    labels                  = module.runners.labels
    logfiles                = module.runners.logfiles
    ssm_paths               = module.runners.ssm_paths
    lambda_job_retry        = module.runners.lambda_job_retry
    lambda_ssm_housekeeper  = module.runners.lambda_ssm_housekeeper
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
  description = "The runner distribution (upstream's keys): the syncer `lambda`, `lambda_log_group`, `lambda_role`, the tarball's `location` (`s3://…`) and `bucket` (null when disabled)."
  value = var.enable_runner_binaries_syncer ? {
    lambda           = module.runner_binaries[0].lambda.function
    lambda_log_group = module.runner_binaries[0].lambda.log_group
    lambda_role      = module.runner_binaries[0].lambda.role
    location         = module.runner_binaries[0].location
    bucket           = module.runner_binaries[0].bucket
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

output "instance_termination_watcher" {
  description = "The interruption warning watcher (`lambda`, `lambda_log_group`, `lambda_role`), null when off."
  value       = var.instance_termination_watcher.enable ? module.instance_termination_watcher[0].spot_termination_notification : null
}

output "instance_termination_handler" {
  description = "The spot termination (BidEvictedEvent) handler (`lambda`, `lambda_log_group`, `lambda_role`), null when off."
  value       = var.instance_termination_watcher.enable ? module.instance_termination_watcher[0].spot_termination_handler : null
}
