output "webhook_endpoint" {
  description = "Set this as the GitHub App's webhook URL."
  value       = module.runners.webhook.endpoint
}

output "dashboard_url" {
  description = "The CloudWatch dashboard."
  value       = module.runners.dashboard_url
}

output "runners" {
  description = "Launch template, roles, functions and labels of the runners."
  value       = module.runners.runners
}
