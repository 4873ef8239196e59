variable "aws_region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_id" {
  description = "VPC of the runners."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (with a NAT gateway) of the runners."
  type        = list(string)
}

variable "github_app" {
  description = "The GitHub App: `id`, `key_base64` (base64 of its private key PEM) and `webhook_secret` (the secret you set in the App)."
  type = object({
    id             = string
    key_base64     = string
    webhook_secret = string
  })
  sensitive = true
}

variable "environment" {
  description = "Name prefix of the deployment (the `ghr:environment` tag)."
  type        = string
  default     = "ephemeral"
}

variable "pool_organization" {
  description = "The organization whose pool of idle runners is kept during working hours; null: no pool."
  type        = string
  default     = null
}
