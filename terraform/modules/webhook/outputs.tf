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
