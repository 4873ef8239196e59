output "webhook_endpoint" {
  description = "Set this as the GitHub App's webhook URL."
  value       = module.runners.webhook.endpoint
}

output "dashboard_url" {
  description = "The CloudWatch dashboard of both configurations."
  value       = module.runners.dashboard_url
}

output "runners" {
  description = "Per configuration: launch template, functions, roles, labels and queue."
  value       = module.runners.runners_map
}
