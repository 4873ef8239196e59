variable "prefix" {
  description = "Name prefix of every resource."
  type        = string
}

variable "ssm_path" {
  description = "SSM path for the webhook's parameters, e.g. `/github-action-runners/<prefix>/webhook`."
  type        = string
}

variable "runner_matcher_config" {
  description = <<-EOT
    The runner configurations jobs are routed to, by key: the SQS queue (`id` URL, `arn`,
    `fifo`) and `matcherConfig` (`labelMatchers`: label sets, `exactMatch`,
    `bidirectionalLabelMatch`, `priority` 0-999: lower first, `enableDynamicLabels`: accept jobs'
    `ghr-` labels, `awsDynamicLabelsPolicy`: `{ blocked_keys = [<key>], restricted_keys = { <key> =
    { allowed = [globs], denied = [globs], max = number } } }` over the `ghr-ec2-<key>` labels).
  EOT
  type = map(object({
    id   = string
    arn  = string
    fifo = optional(bool, false)
    matcherConfig = object({
      labelMatchers           = list(list(string))
      exactMatch              = bool
      bidirectionalLabelMatch = optional(bool, false)
      priority                = optional(number, 999)
      enableDynamicLabels     = optional(bool, false)
      # Typed (upstream: `any`): a map of configurations where only some have a policy
      # cannot be converted with `any` ("attribute types must all match").
      awsDynamicLabelsPolicy = optional(object({
        blocked_keys = optional(list(string), [])
        restricted_keys = optional(map(object({
          allowed = optional(list(string))
          denied  = optional(list(string))
          max     = optional(string)
        })), {})
      }))
    })
  }))
  validation {
    condition     = alltrue([for m in var.runner_matcher_config : m.matcherConfig.priority >= 0 && m.matcherConfig.priority <= 999])
    error_message = "`priority` is between 0 and 999."
  }
}

variable "matcher_config_parameter_store_tier" {
  description = "SSM tier of the matcher config parameters: `Standard` (4 KB chunks) or `Advanced` (8 KB chunks)."
  type        = string
  default     = "Standard"
  validation {
    condition     = contains(["Standard", "Advanced"], var.matcher_config_parameter_store_tier)
    error_message = "`Standard` or `Advanced`."
  }
}

variable "webhook_secret_parameter" {
  description = "The SSM parameter of the webhook secret: `{ name, arn }`."
  type        = object({ name = string, arn = string })
}

variable "repository_white_list" {
  description = "`owner/repo` names allowed to use the runners; empty allows all."
  type        = list(string)
  default     = []
}

variable "queue_selection_strategy" {
  description = "Among equally good runner configurations: `first`, `random` or `all`."
  type        = string
  default     = "first"
  validation {
    condition     = contains(["first", "random", "all"], var.queue_selection_strategy)
    error_message = "`first`, `random` or `all`."
  }
}

variable "eventbridge" {
  description = <<-EOT
    EventBridge mode (upstream's default): the webhook publishes deliveries on the bus
    `<prefix>-runners` and the dispatcher routes queued jobs to the runner queues.
    `enable`; `accept_events`: the event types published (null or empty: all);
    `archive_retention_days` of the bus archive.
  EOT
  type = object({
    enable                 = optional(bool, true)
    accept_events          = optional(list(string), null)
    archive_retention_days = optional(number, 7)
  })
  default = {}
}

variable "dispatcher_lambda" {
  description = "Dispatcher settings over `lambda` (`zip`, `memory_size`, `timeout`)."
  type        = any
  default     = {}
}

variable "enable_function_url" {
  description = "Also expose the function with a Lambda function URL (GitHub can post to it directly; the API Gateway endpoint stays)."
  type        = bool
  default     = false
}

variable "apigateway_access_log_settings" {
  description = "API Gateway access logs: `{ destination_arn, format }`, or null for none."
  type        = object({ destination_arn = string, format = string })
  default     = null
}

variable "lambda" {
  description = "Function settings passed to the lambda module (`zip`, `architecture`, `memory_size`, `timeout`, logging, role, VPC, tags; see modules/lambda)."
  type        = any
}

variable "kms_key_arn" {
  description = "KMS key of the SSM parameters and SQS queues, if a customer managed one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the created resources."
  type        = map(string)
  default     = {}
}
