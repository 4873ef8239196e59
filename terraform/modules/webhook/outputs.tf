output "endpoint" {
  description = "The URL to set as the GitHub App's webhook URL."
  value       = "${aws_apigatewayv2_api.webhook.api_endpoint}/webhook"
}

output "function_url" {
  description = "The function URL, when enabled (GitHub can post to it directly)."
  value       = try(aws_lambda_function_url.webhook[0].function_url, null)
}

output "lambda" {
  description = "The webhook function, its role and log group."
  value       = { function = module.lambda.function, role = module.lambda.role, log_group = module.lambda.log_group }
}

output "matcher_config_parameters" {
  description = "Names of the matcher config parameters, in concatenation order."
  value       = aws_ssm_parameter.runner_matcher_config[*].name
}

output "eventbridge" {
  description = "EventBridge mode: the bus, its workflow_job rule, the dispatcher function and its dead-letter queue (null in direct mode)."
  value = local.eventbridge ? {
    bus               = { name = aws_cloudwatch_event_bus.runners[0].name, arn = aws_cloudwatch_event_bus.runners[0].arn }
    rule              = { name = aws_cloudwatch_event_rule.workflow_job[0].name, arn = aws_cloudwatch_event_rule.workflow_job[0].arn }
    dispatcher        = { function = module.dispatcher[0].function, role = module.dispatcher[0].role, log_group = module.dispatcher[0].log_group }
    dead_letter_queue = { name = aws_sqs_queue.dispatcher_dead_letters[0].name, arn = aws_sqs_queue.dispatcher_dead_letters[0].arn, url = aws_sqs_queue.dispatcher_dead_letters[0].id }
  } : null
}
