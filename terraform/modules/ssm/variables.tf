variable "path_prefix" {
  description = "SSM path under which the App parameters are created, e.g. `/github-action-runners/<prefix>/app`."
  type        = string
}

variable "github_app" {
  description = <<-EOT
    The GitHub App that sends the webhooks. For each of its id, private key (base64 of the PEM)
    and webhook secret give either the value (a SecureString is created) or an existing SSM
    parameter (`*_ssm = { arn, name }`), which wins.
  EOT
  type = object({
    key_base64         = optional(string)
    key_base64_ssm     = optional(object({ arn = string, name = string }))
    id                 = optional(string)
    id_ssm             = optional(object({ arn = string, name = string }))
    webhook_secret     = optional(string)
    webhook_secret_ssm = optional(object({ arn = string, name = string }))
  })
  sensitive = true
}

variable "additional_github_apps" {
  description = "More GitHub Apps installed on the same owners, to spread the API rate limit; each with an id, a key and optionally a fixed installation id (values or existing SSM parameters)."
  type = list(object({
    key_base64          = optional(string)
    key_base64_ssm      = optional(object({ arn = string, name = string }))
    id                  = optional(string)
    id_ssm              = optional(object({ arn = string, name = string }))
    installation_id     = optional(string)
    installation_id_ssm = optional(object({ arn = string, name = string }))
  }))
  default   = []
  sensitive = true
}

variable "kms_key_arn" {
  description = "KMS key for the SecureStrings; null for the account's `aws/ssm` key."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the parameters."
  type        = map(string)
  default     = {}
}
