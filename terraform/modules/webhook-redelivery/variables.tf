variable "lambda" {
  description = "Settings every function shares (see modules/lambda): prefix, environment, architecture, logging, role, VPC, tags."
  type        = any
}

variable "zip" {
  description = "The function's zip (`target/lambda/<arch>/redelivery/bootstrap.zip`)."
  type        = string
}

variable "memory_size" {
  description = "Memory of the function in MB."
  type        = number
  default     = 256
}

variable "timeout" {
  description = "Timeout of the function in seconds: a run cut short resumes from its checkpoint."
  type        = number
  default     = 120
}

variable "app_parameters" {
  description = "The GitHub App parameters from the ssm module (`ids`, `keys`, `installation_ids` `:`-joined, `arns`): every App is swept."
  type = object({
    ids              = string
    keys             = string
    installation_ids = string
    arns             = list(string)
  })
}

variable "checkpoint_parameter" {
  description = "Name of the SSM parameter holding every App's checkpoint (created here, written by the function)."
  type        = string
}

variable "schedule_expression" {
  description = "How often failed deliveries are looked for."
  type        = string
  default     = "rate(5 minutes)"
}

variable "window_minutes" {
  description = "How far back the first run looks, and the age after which a failed delivery is no longer redelivered (at most 4320, GitHub's 3 days)."
  type        = number
  default     = 360
  validation {
    condition     = var.window_minutes >= 1 && var.window_minutes <= 4320
    error_message = "window_minutes must be 1 to 4320 (GitHub redelivers deliveries of the last 3 days)."
  }
}

variable "max_attempts" {
  description = "Redeliveries of one delivery before it is given up (DeliveriesGivenUp)."
  type        = number
  default     = 5
  validation {
    condition     = var.max_attempts >= 1
    error_message = "max_attempts must be at least 1."
  }
}

variable "ghes_url" {
  description = "GitHub Enterprise Server URL; null for github.com."
  type        = string
  default     = null
}

variable "ghes_ssl_verify" {
  description = "Verify the GHES certificate."
  type        = bool
  default     = true
}

variable "user_agent" {
  description = "User agent of the GitHub requests."
  type        = string
  default     = "github-aws-runners"
}

variable "kms_key_arn" {
  description = "KMS key of the App parameters, if any."
  type        = string
  default     = null
}
