output "webhook_endpoint" {
  description = "The URL the App's webhook was set to."
  value       = terraform_data.update_app.triggers_replace.webhook_endpoint
}
