variable "lambda" {
  description = "Settings every function shares (see modules/lambda): prefix, environment, architecture, logging, role, VPC, tags."
  type        = any
}

variable "zip" {
  description = "The function's zip (`target/lambda/<arch>/ami-housekeeper/bootstrap.zip`)."
  type        = string
}

variable "memory_size" {
  description = "Memory of the function in MB."
  type        = number
  default     = 256
}

variable "timeout" {
  description = "Timeout of the function in seconds: what a run cannot finish is left for the next one."
  type        = number
  default     = 300
}

variable "schedule_expression" {
  description = "When the housekeeper runs (upstream's `lambda_schedule_expression`)."
  type        = string
  default     = "rate(1 day)"
}

variable "state" {
  description = "State of the schedule rule (upstream's `state_event_rule_ami_housekeeper`): `ENABLED` or `DISABLED`."
  type        = string
  default     = "ENABLED"
  validation {
    condition     = contains(["ENABLED", "DISABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"], var.state)
    error_message = "`state` is ENABLED, DISABLED or ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS."
  }
}

variable "cleanup_config" {
  description = <<-EOT
    What is cleaned up (upstream's `cleanup_config`, written to `AMI_CLEANUP_OPTIONS`):
    - `amiFilters`: `DescribeImages` filters of this account's images (default: available machine images).
    - `dryRun`: only log what would be deregistered.
    - `launchTemplateNames`: the templates whose default and latest versions keep their image (null: every template of the account).
    - `maxItems`: at most this many images are looked at per run.
    - `minimumDaysOld`: images younger than this stay (default 30).
    - `ssmParameterNames`: parameters whose value keeps an image; `*text` for every parameter whose name contains `text`.
  EOT
  type = object({
    amiFilters = optional(list(object({
      Name   = string
      Values = list(string)
      })),
      [{
        Name : "state",
        Values : ["available"],
        },
        {
          Name : "image-type",
          Values : ["machine"],
      }]
    )
    dryRun              = optional(bool, false)
    launchTemplateNames = optional(list(string))
    maxItems            = optional(number)
    minimumDaysOld      = optional(number, 30)
    ssmParameterNames   = optional(list(string))
  })
  default = {}
  validation {
    condition     = var.cleanup_config.minimumDaysOld >= 0 && (var.cleanup_config.maxItems == null ? true : var.cleanup_config.maxItems >= 1)
    error_message = "`minimumDaysOld` must not be negative and `maxItems` must be at least 1."
  }
}
