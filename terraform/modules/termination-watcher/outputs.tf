output "spot_termination_notification" {
  description = "The interruption warning watcher (`lambda`, `lambda_log_group`, `lambda_role`, as upstream), null when off."
  value = var.config.features.enable_spot_termination_notification_watcher ? {
    lambda           = module.notification[0].function
    lambda_log_group = module.notification[0].log_group
    lambda_role      = module.notification[0].role
  } : null
}

output "spot_termination_handler" {
  description = "The spot termination (BidEvictedEvent) handler (`lambda`, `lambda_log_group`, `lambda_role`), null when off."
  value = var.config.features.enable_spot_termination_handler ? {
    lambda           = module.handler[0].function
    lambda_log_group = module.handler[0].log_group
    lambda_role      = module.handler[0].role
  } : null
}

output "deregister_retry" {
  description = "The deregistration retry queue, its dead-letter queue and function (as upstream; job rescue waits there too), null without deregistration or job rescue."
  value = local.github ? {
    queue_url        = aws_sqs_queue.deregister_retry[0].url
    queue_arn        = aws_sqs_queue.deregister_retry[0].arn
    dlq_url          = aws_sqs_queue.deregister_retry_dlq[0].url
    dlq_arn          = aws_sqs_queue.deregister_retry_dlq[0].arn
    dlq_name         = aws_sqs_queue.deregister_retry_dlq[0].name
    lambda           = module.deregister_retry[0].function
    lambda_log_group = module.deregister_retry[0].log_group
    lambda_role      = module.deregister_retry[0].role
  } : null
}

output "function_names" {
  description = "The watcher's function names by role (`notification`, `handler`, `retry`), for the monitoring module."
  value       = { for k, m in local.functions : k => m.function.name }
}
