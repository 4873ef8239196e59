output "runners_map" {
  description = "Per runner configuration: its launch template, scale-up and scale-down functions, roles, log groups and queue (upstream's keys; the pool's are null without a `pool_config`), and `lambda_job_retry`, `lambda_ssm_housekeeper` (null when off)."
  value = { for key, runner in module.runners : key => {
    launch_template_name    = runner.launch_template.name
    launch_template_id      = runner.launch_template.id
    launch_template_version = runner.launch_template.latest_version
    launch_template_ami_id  = runner.launch_template.image_id
    lambda_up               = runner.lambda_up.function
    lambda_up_log_group     = runner.lambda_up.log_group
    lambda_down             = runner.lambda_down.function
    lambda_down_log_group   = runner.lambda_down.log_group
    lambda_pool             = try(runner.lambda_pool.function, null)
    lambda_pool_log_group   = try(runner.lambda_pool.log_group, null)
    role_runner             = runner.role_runner
    role_scale_up           = runner.lambda_up.role
    role_scale_down         = runner.lambda_down.role
    role_pool               = try(runner.lambda_pool.role, null)
    runners_log_groups      = runner.runners_log_groups
    logfiles                = runner.logfiles
    labels                  = runner.labels
    lambda_job_retry        = runner.lambda_job_retry
    lambda_ssm_housekeeper  = runner.lambda_ssm_housekeeper
    queue                   = runner.queue
    ssm_paths               = runner.ssm_paths
  } }
}

output "binaries_syncer_map" {
  description = "Per OS and architecture (`<os>-<arch>`): the syncer function, its role and log group, the tarball's location and bucket."
  value = { for key, syncer in module.runner_binaries : key => {
    lambda           = syncer.lambda.function
    lambda_log_group = syncer.lambda.log_group
    lambda_role      = syncer.lambda.role
    location         = syncer.location
    bucket           = syncer.bucket
  } }
}

output "webhook" {
  description = "The webhook: `endpoint` (set it as the GitHub App's webhook URL), `function_url` (if enabled), the function, in EventBridge mode the bus, rule and dispatcher, and `redelivery` (the redelivery function, null when `enable_webhook_redelivery = false`)."
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

output "ssm_parameters" {
  description = "The GitHub App parameters (names and ARNs)."
  value       = module.ssm.parameters
}

output "instance_termination_watcher" {
  description = "The interruption warning watcher (`lambda`, `lambda_log_group`, `lambda_role`), null when off."
  value       = var.instance_termination_watcher.enable ? module.instance_termination_watcher[0].spot_termination_notification : null
}

output "instance_termination_handler" {
  description = "The spot termination (BidEvictedEvent) handler (`lambda`, `lambda_log_group`, `lambda_role`), null when off."
  value       = var.instance_termination_watcher.enable ? module.instance_termination_watcher[0].spot_termination_handler : null
}

output "dashboard_url" {
  description = "The CloudWatch dashboard of every configuration (null when metrics are disabled)."
  value       = try(module.monitoring[0].dashboard_url, null)
}
