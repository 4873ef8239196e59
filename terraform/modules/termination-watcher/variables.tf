variable "config" {
  description = <<-EOF
    The termination watcher (upstream's `config`, same keys and defaults):
    - `prefix`: names the functions, rules and queues, and is the default tag filter.
    - `tag_filters`: tags an instance must carry, each with a value starting with the given one (default `{"ghr:environment" = prefix}`).
    - `features`: `enable_spot_termination_notification_watcher` (the interruption warning, and instance state changes with deregistration) and `enable_spot_termination_handler` (CloudTrail `BidEvictedEvent`).
    - `metrics`: `enable`, `namespace`, and per metric `enable_spot_termination_warning` / `enable_spot_termination`.
    - `enable_runner_deregistration` with `github_app_parameters` (`id`, `key_base64`: `{ arn, name }`) deletes a terminating instance's runner from GitHub; a busy one waits on the `<prefix>-deregister-retry` queue. `ghes_url` for GitHub Enterprise Server.
    - The functions: `zip` (default `target/lambda/<architecture>/termination-watcher/bootstrap.zip` of this repository), `architecture`, `memory_size`, `timeout`, `log_level`, `log_class`, `logging_kms_key_id`, `logging_retention_in_days`, `role_path`, `role_permissions_boundary`, `principals`, `subnet_ids`, `security_group_ids`, `tags`, `lambda_tags`, `tracing_config`, `environment_variables`.
    - This project's own: `app_parameters` (every App, as the ssm module outputs them; set by the root and multi-runner modules instead of `github_app_parameters`), `kms_key_arn` of those parameters, `ghes_ssl_verify`, `user_agent`, and `job_rescue` (`max_attempts`, `queues`: `ghr:environment` → the build queue `{ url, arn }` its rescued jobs go to; set by the root and multi-runner modules from their `job_rescue`): a job a spot reclaim interrupted is re-run, on on-demand capacity (docs/job-rescue.md).
    - Upstream's `aws_partition`, `runtime`, `s3_bucket`, `s3_key` and `s3_object_version` have no meaning here (Rust functions, the partition is the provider's; zips from S3 are not supported yet).
  EOF
  type = object({
    aws_partition         = optional(string, null)
    architecture          = optional(string, null)
    environment_variables = optional(map(string), {})
    features = optional(object({
      enable_spot_termination_handler              = optional(bool, true)
      enable_spot_termination_notification_watcher = optional(bool, true)
    }), {})
    lambda_tags               = optional(map(string), {})
    log_level                 = optional(string, null)
    log_class                 = optional(string, "STANDARD")
    logging_kms_key_id        = optional(string, null)
    logging_retention_in_days = optional(number, null)
    memory_size               = optional(number, null)
    metrics = optional(object({
      enable    = optional(bool, false)
      namespace = optional(string, "GitHub Runners")
      metric = optional(object({
        enable_spot_termination         = optional(bool, true)
        enable_spot_termination_warning = optional(bool, true)
      }), {})
    }), {})
    prefix = optional(string, null)
    principals = optional(list(object({
      type        = string
      identifiers = list(string)
    })), [])
    role_path                 = optional(string, null)
    role_permissions_boundary = optional(string, null)
    runtime                   = optional(string, null)
    s3_bucket                 = optional(string, null)
    s3_key                    = optional(string, null)
    s3_object_version         = optional(string, null)
    security_group_ids        = optional(list(string), [])
    subnet_ids                = optional(list(string), [])
    tag_filters               = optional(map(string), null)
    tags                      = optional(map(string), {})
    timeout                   = optional(number, null)
    tracing_config = optional(object({
      mode                  = optional(string, null)
      capture_http_requests = optional(bool, false)
      capture_error         = optional(bool, false)
    }), {})
    zip                          = optional(string, null)
    enable_runner_deregistration = optional(bool, false)
    github_app_parameters = optional(object({
      id         = map(string)
      key_base64 = map(string)
    }), null)
    ghes_url = optional(string, null)
    # This project's own keys.
    app_parameters = optional(object({
      ids              = string
      keys             = string
      installation_ids = string
      arns             = list(string)
    }), null)
    kms_key_arn     = optional(string, null)
    ghes_ssl_verify = optional(bool, true)
    user_agent      = optional(string, "github-aws-runners-termination-watcher")
    job_rescue = optional(object({
      max_attempts = optional(number, 1)
      queues = map(object({
        url = string
        arn = string
      }))
    }), null)
  })
  validation {
    condition     = var.config.job_rescue == null || try(var.config.job_rescue.max_attempts >= 1, false)
    error_message = "`config.job_rescue.max_attempts` is at least 1 (the number of re-runs a job may get)."
  }
  validation {
    condition     = var.config.prefix != null && var.config.prefix != ""
    error_message = "`config.prefix` names the watcher's resources and is its default tag filter: set it."
  }
}
