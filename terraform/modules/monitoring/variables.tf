variable "prefix" {
  description = "Name prefix; also the `Environment` dimension of the metrics."
  type        = string
}

variable "namespace" {
  description = "CloudWatch namespace of the functions' EMF metrics."
  type        = string
  default     = "GitHub Runners"
}

variable "functions" {
  description = "Function names by role: `webhook`, `dispatcher`, `scale_up`, `scale_down`, `syncer` (null when not deployed)."
  type        = map(string)
}

variable "build_queue_name" {
  description = "Name of the build queue."
  type        = string
}

variable "enable_dead_letter_alarm" {
  description = "Whether the build queue has a dead-letter queue to show and alarm on (`dead_letter_queue_name`)."
  type        = bool
  default     = false
}

variable "dead_letter_queue_name" {
  description = "Name of the build queue's dead-letter queue (used when `enable_dead_letter_alarm`)."
  type        = string
  default     = null
}

variable "github_app_ids" {
  description = "GitHub App ids to watch the rate limit of (known only when given as values, not as SSM parameters)."
  type        = list(string)
  default     = []
}

variable "alarm_actions" {
  description = "Where alarms notify (e.g. SNS topic ARNs)."
  type        = list(string)
  default     = []
}

variable "thresholds" {
  description = <<-EOT
    Alarm thresholds: `oldest_job_seconds` (a job waits this long in the queue),
    `runners_not_created` (runners requested but not created in 15 minutes),
    `rate_limit_remaining` (GitHub App requests left in the hour).
  EOT
  type = object({
    oldest_job_seconds   = optional(number, 900)
    runners_not_created  = optional(number, 5)
    rate_limit_remaining = optional(number, 500)
  })
  default = {}
}

variable "tags" {
  description = "Tags for the alarms."
  type        = map(string)
  default     = {}
}
