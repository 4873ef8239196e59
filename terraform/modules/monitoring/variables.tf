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
  description = "Function names by role: `webhook`, `dispatcher`, `scale_up`, `scale_down`, `syncer`, `redelivery`, `ami_housekeeper`, `termination_notification`, `termination_handler`, `deregister_retry` (null when not deployed)."
  type        = map(string)
}

variable "build_queue_name" {
  description = "Name of the build queue (one runner configuration; see `build_queues` for several)."
  type        = string
  default     = null
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

variable "build_queues" {
  description = "Several runner configurations: their build queues by key (`name`, `dead_letter_queue_name`, `dead_letter` = a known flag that it has one). Replaces `build_queue_name` and the dead-letter inputs."
  type = map(object({
    name                   = string
    dead_letter_queue_name = optional(string)
    dead_letter            = bool
  }))
  default = null
}

variable "deregister_retry_dead_letter_queue" {
  description = "The termination watcher's deregistration retry dead-letter queue (`enabled`, a flag known at plan time, and its `name`)."
  type = object({
    enabled = bool
    name    = optional(string)
  })
  default = { enabled = false }
}

variable "dispatcher_dead_letter_queue" {
  description = "EventBridge mode: the dispatcher's dead-letter queue (`enabled`, a flag known at plan time, and its `name`): events the dispatcher failed to route after EventBridge's retries."
  type = object({
    enabled = bool
    name    = optional(string)
  })
  default = { enabled = false }
}

variable "runner_environments" {
  description = "The `Environment` values of the scale-up and scale-down metrics (one per runner configuration); default: `prefix`."
  type        = list(string)
  default     = null
}

variable "syncer_environments" {
  description = "The `Environment` values of the syncer metrics (one per syncer); default: `prefix`."
  type        = list(string)
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
