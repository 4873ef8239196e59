variable "lambda" {
  description = <<-EOT
    One Rust Lambda function:
    - `name`: the function's name after the prefix (`webhook`, `scale-up`...), the function is `<prefix>-<name>`.
    - `prefix`: name prefix; `environment` is the value of the `ENVIRONMENT` variable (the deployment's `ghr:environment`).
    - `zip`: path of the `bootstrap.zip` built by `make build`.
    - `architecture`: `arm64` (Graviton, default) or `x86_64`; must match the zip.
    - `memory_size` (MB), `timeout` (seconds), `reserved_concurrent_executions` (null for none).
    - `environment_variables`: the function's own variables (`ENVIRONMENT`, `LOG_LEVEL` and
      `POWERTOOLS_METRICS_NAMESPACE` are added here).
    - `log_level`: silly, trace, debug, info, warn, error or fatal.
    - `metrics_namespace`: the CloudWatch namespace of the EMF metrics.
    - `logging_retention_in_days`, `logging_kms_key_id`, `log_class`: the log group.
    - `role_path`, `role_permissions_boundary`: the function's IAM role.
    - `subnet_ids`, `security_group_ids`: run the function in a VPC.
    - `tags`.
    - `tracing_mode`: X-Ray tracing (`Active` or `PassThrough`; null: off, no X-Ray permissions).
    - `principals`: more principals allowed to assume the function's role (`[{ type, identifiers }]`).
  EOT
  type = object({
    name                           = string
    prefix                         = string
    environment                    = string
    zip                            = string
    architecture                   = optional(string, "arm64")
    memory_size                    = optional(number, 256)
    timeout                        = optional(number, 60)
    reserved_concurrent_executions = optional(number, null)
    environment_variables          = optional(map(string), {})
    log_level                      = optional(string, "info")
    metrics_namespace              = optional(string, "GitHub Runners")
    logging_retention_in_days      = optional(number, 180)
    logging_kms_key_id             = optional(string, null)
    log_class                      = optional(string, "STANDARD")
    role_path                      = optional(string, null)
    role_permissions_boundary      = optional(string, null)
    subnet_ids                     = optional(list(string), [])
    security_group_ids             = optional(list(string), [])
    tags                           = optional(map(string), {})
    tracing_mode                   = optional(string, null)
    principals = optional(list(object({
      type        = string
      identifiers = list(string)
    })), [])
  })

  validation {
    condition     = var.lambda.tracing_mode == null ? true : contains(["Active", "PassThrough"], var.lambda.tracing_mode)
    error_message = "`tracing_mode` is `Active` or `PassThrough`."
  }
  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda.architecture)
    error_message = "`architecture` must be `arm64` or `x86_64`."
  }
  validation {
    condition     = contains(["silly", "trace", "debug", "info", "warn", "error", "fatal"], var.lambda.log_level)
    error_message = "`log_level` must be one of silly, trace, debug, info, warn, error, fatal."
  }
  validation {
    condition     = var.lambda.timeout >= 1 && var.lambda.timeout <= 900 && var.lambda.memory_size >= 128 && var.lambda.memory_size <= 10240
    error_message = "`timeout` is 1-900 seconds and `memory_size` 128-10240 MB."
  }
}
