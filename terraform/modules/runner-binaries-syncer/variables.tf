variable "prefix" {
  description = "Name prefix of every resource."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "runner_os" {
  description = "`linux`, `windows` or `osx` (the asset mirrored)."
  type        = string
  default     = "linux"
  validation {
    condition     = contains(["linux", "windows", "osx"], var.runner_os)
    error_message = "`linux`, `windows` or `osx`."
  }
}

variable "runner_architecture" {
  description = "`x64`, `arm64` or `arm`."
  type        = string
  default     = "x64"
  validation {
    condition     = contains(["x64", "arm64", "arm"], var.runner_architecture)
    error_message = "`x64`, `arm64` or `arm`."
  }
}

variable "runner_version" {
  description = "Mirror this runner version (e.g. `2.321.0`) instead of the latest release; null for the latest."
  type        = string
  default     = null
}

variable "ghes_url" {
  description = "GitHub Enterprise Server URL to read releases from, null for github.com."
  type        = string
  default     = null
}

variable "ghes_ssl_verify" {
  description = "Verify GHES's TLS certificate."
  type        = bool
  default     = true
}

variable "user_agent" {
  description = "User agent of the GitHub requests."
  type        = string
  default     = "github-aws-runners"
}

variable "state_event_rule_binaries_syncer" {
  description = "State of the hourly schedule: `ENABLED` or `DISABLED` (freezes the mirrored version)."
  type        = string
  default     = "ENABLED"
  validation {
    condition     = contains(["ENABLED", "DISABLED"], var.state_event_rule_binaries_syncer)
    error_message = "`ENABLED` or `DISABLED`."
  }
}

variable "schedule_expression" {
  description = "When the syncer runs."
  type        = string
  default     = "cron(27 * * * ? *)"
}

variable "s3_sse_configuration" {
  description = "Bucket encryption: `{ rule = { apply_server_side_encryption_by_default = { sse_algorithm = \"AES256\" | \"aws:kms\", kms_master_key_id } } }`."
  type        = any
  default = {
    rule = {
      apply_server_side_encryption_by_default = { sse_algorithm = "AES256" }
    }
  }
}

variable "s3_versioning" {
  description = "Bucket versioning: `Enabled`, `Suspended` or `Disabled`."
  type        = string
  default     = "Disabled"
}

variable "s3_logging_bucket" {
  description = "Bucket for S3 access logs of the distribution bucket, or null."
  type        = string
  default     = null
}

variable "s3_logging_bucket_prefix" {
  description = "Prefix of the access logs."
  type        = string
  default     = null
}

variable "lambda" {
  description = "Function settings passed to the lambda module (`zip`, `memory_size`, `timeout` and the shared settings; see modules/lambda)."
  type        = any
}

variable "s3_tags" {
  description = "Extra tags of the distribution bucket (upstream's `runner_binaries_s3_tags`)."
  type        = map(string)
  default     = {}
}
