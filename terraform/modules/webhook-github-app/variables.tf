variable "github_app" {
  description = "The GitHub App: `id`, `key_base64` (base64 of its private key `.pem` file) and `webhook_secret` (the secret the webhook verifies deliveries with)."
  type = object({
    key_base64     = string
    id             = string
    webhook_secret = string
  })
  sensitive = true
}

variable "webhook_endpoint" {
  description = "The URL GitHub posts the App's deliveries to: the runners module's `webhook.endpoint` output."
  type        = string
}

variable "ghes_url" {
  description = "GitHub Enterprise Server URL (`https://github.example.com`); null for github.com. (Not in upstream's module, which only updates github.com Apps.)"
  type        = string
  default     = null
}
