################################################################################
# General
################################################################################

variable "prefix" {
  description = "Name prefix of every resource, and the runners' `ghr:environment` tag value."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC of the runners."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets the runners launch in (EC2 Fleet spreads over them)."
  type        = list(string)
}

variable "ssm_root" {
  description = "SSM root path of this deployment, e.g. `/github-action-runners/<prefix>`; the runners use `<root>/runners/config` and `<root>/runners/tokens`."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the SSM parameters and queues, or null."
  type        = string
  default     = null
}

variable "app_parameters" {
  description = "The GitHub App parameters from the ssm module (`ids`, `keys`, `installation_ids` `:`-joined, `arns`)."
  type = object({
    ids              = string
    keys             = string
    installation_ids = string
    arns             = list(string)
  })
}

variable "app_parameter_path" {
  description = "SSM path of the GitHub App parameters; runners are denied reading anything under it."
  type        = string
}

variable "secret_parameter_arns" {
  description = "ARNs of the secret parameters (App id, key, installation ids, webhook secret), wherever they live; runners are denied reading them."
  type        = list(string)
  default     = []
}

################################################################################
# GitHub
################################################################################

variable "ghes_url" {
  description = "GitHub Enterprise Server URL (or `https://<name>.ghe.com`), null for github.com."
  type        = string
  default     = null
}

variable "ghes_ssl_verify" {
  description = "Verify GHES's TLS certificate; false only affects the functions' GitHub client."
  type        = bool
  default     = true
}

variable "user_agent" {
  description = "User agent of the GitHub API requests."
  type        = string
  default     = "github-aws-runners"
}

variable "enable_organization_runners" {
  description = "Register runners with the organization instead of the repository."
  type        = bool
  default     = false
}

variable "runner_group_name" {
  description = "Runner group of organization runners."
  type        = string
  default     = "Default"
}

variable "runner_name_prefix" {
  description = "Prefix of runner names (`<prefix><instance-id>`), at most 45 characters."
  type        = string
  default     = ""
  validation {
    condition     = length(var.runner_name_prefix) <= 45 && can(regex("^[a-zA-Z0-9_.-]*$", var.runner_name_prefix))
    error_message = "At most 45 characters of letters, digits, `_`, `.` and `-`."
  }
}

variable "runner_labels" {
  description = "Labels the runners register with."
  type        = list(string)
}

variable "disable_runner_autoupdate" {
  description = "Register with `--disableupdate`."
  type        = bool
  default     = false
}

################################################################################
# Scaling
################################################################################

variable "enable_ephemeral_runners" {
  description = "One job per runner: the instance terminates itself after it."
  type        = bool
  default     = false
}

variable "enable_jit_config" {
  description = "Just-in-time runner configs for ephemeral runners; null follows `enable_ephemeral_runners`."
  type        = bool
  default     = null
}

variable "enable_job_queued_check" {
  description = "Only start runners for jobs GitHub still reports queued; null means on for reusable runners, off for ephemeral ones."
  type        = bool
  default     = null
}

variable "runners_maximum_count" {
  description = "Most runners per owner at once; -1 for no limit."
  type        = number
  default     = 3
  validation {
    condition     = var.runners_maximum_count >= -1
    error_message = "-1 or more."
  }
}

variable "scale_down_schedule_expression" {
  description = "How often scale-down runs (EventBridge schedule expression)."
  type        = string
  default     = "cron(*/5 * * * ? *)"
}

variable "minimum_running_time_in_minutes" {
  description = "A runner is kept at least this long; null for the OS default (linux 5, windows 15, osx 20)."
  type        = number
  default     = null
}

variable "runner_boot_time_in_minutes" {
  description = "Time an instance has to register its runner before it is an orphan."
  type        = number
  default     = 5
}

variable "scale_down_job_start_grace_seconds" {
  description = "Two-phase removal: scale-down deregisters an idle runner, then terminates its instance on a later run at least this long after, once its job markers show no job started on it. It must outlast a job's \"Set up job\" (the job-started hook runs after it): a job GitHub handed out just before the deregistration is then never killed. Costs about one scale-down interval of instance time per removed runner."
  type        = number
  default     = 180
  validation {
    condition     = var.scale_down_job_start_grace_seconds >= 0 && var.scale_down_job_start_grace_seconds <= 3600
    error_message = "0 to 3600 seconds."
  }
}

variable "scale_down_withdrawal_wait_seconds" {
  description = "Scale-down first removes an idle runner's custom labels (GitHub then hands it no job that asks for one), and deregisters it this long after, within the same run: a job GitHub handed it just before has started by then, and GitHub refuses the deletion instead of the job losing its runner. Runners without custom labels (`runner_extra_labels`) cannot be withdrawn this way."
  type        = number
  default     = 10
  validation {
    condition     = var.scale_down_withdrawal_wait_seconds >= 0 && var.scale_down_withdrawal_wait_seconds <= 30
    error_message = "0 to 30 seconds (spent within the scale-down run)."
  }
}

variable "runner_offline_timeout_in_minutes" {
  description = "A runner GitHub lists offline this long while its instance's job marker says a job runs (or GitHub still flags it busy) crashed mid-job: scale-down deregisters it and terminates its instance. Shorter blips keep it."
  type        = number
  default     = 15
  validation {
    condition     = var.runner_offline_timeout_in_minutes >= 1
    error_message = "At least 1 minute."
  }
}

variable "idle_config" {
  description = "When to keep idle runners: `cron` (6 fields, seconds first), `timeZone`, `idleCount`, `evictionStrategy` (`oldest_first` or `newest_first`)."
  type = list(object({
    cron             = string
    timeZone         = string
    idleCount        = number
    evictionStrategy = optional(string, "oldest_first")
  }))
  default = []
  validation {
    condition     = alltrue([for c in var.idle_config : contains(["oldest_first", "newest_first"], c.evictionStrategy)])
    error_message = "`evictionStrategy` is `oldest_first` or `newest_first`."
  }
}

variable "scale_up_reserved_concurrent_executions" {
  description = "Reserved concurrency of scale-up (-1 for none)."
  type        = number
  default     = 1
}

variable "lambda_event_source_mapping_batch_size" {
  description = "Jobs per scale-up invocation (1-10)."
  type        = number
  default     = 10
  validation {
    condition     = var.lambda_event_source_mapping_batch_size >= 1 && var.lambda_event_source_mapping_batch_size <= 10
    error_message = "1 to 10."
  }
}

variable "lambda_event_source_mapping_maximum_batching_window_in_seconds" {
  description = "Seconds to gather a batch (0-300)."
  type        = number
  default     = 0
  validation {
    condition     = var.lambda_event_source_mapping_maximum_batching_window_in_seconds >= 0 && var.lambda_event_source_mapping_maximum_batching_window_in_seconds <= 300
    error_message = "0 to 300."
  }
}

################################################################################
# Build queue
################################################################################

variable "delay_webhook_event" {
  description = "Seconds a job waits in the queue before scale-up sees it (0-900)."
  type        = number
  default     = 30
}

variable "job_queue_retention_in_seconds" {
  description = "How long a job message is kept (60-1209600)."
  type        = number
  default     = 86400
}

variable "redrive_build_queue" {
  description = "Send messages that keep failing to a dead-letter queue after `maxReceiveCount` receives."
  type        = object({ enabled = bool, maxReceiveCount = optional(number) })
  default     = { enabled = false, maxReceiveCount = null }
  validation {
    condition     = !var.redrive_build_queue.enabled || try(var.redrive_build_queue.maxReceiveCount >= 1, false)
    error_message = "`maxReceiveCount` must be set (1 or more) when the dead-letter queue is enabled."
  }
}

variable "queue_encryption" {
  description = "Queue encryption: SQS managed SSE, or a KMS key (`kms_master_key_id`)."
  type = object({
    kms_data_key_reuse_period_seconds = optional(number)
    kms_master_key_id                 = optional(string)
    sqs_managed_sse_enabled           = optional(bool, true)
  })
  default = { sqs_managed_sse_enabled = true }
}

################################################################################
# EC2
################################################################################

variable "instance_types" {
  description = "Instance types EC2 Fleet chooses from."
  type        = list(string)
  default     = ["m5.large", "c5.large"]
}

variable "instance_target_capacity_type" {
  description = "`spot` or `on-demand`."
  type        = string
  default     = "spot"
  validation {
    condition     = contains(["spot", "on-demand"], var.instance_target_capacity_type)
    error_message = "`spot` or `on-demand`."
  }
}

variable "instance_allocation_strategy" {
  description = "EC2 Fleet allocation strategy (invalid ones for the capacity type fall back to `lowest-price`)."
  type        = string
  default     = "lowest-price"
  validation {
    condition     = contains(["lowest-price", "diversified", "capacity-optimized", "capacity-optimized-prioritized", "price-capacity-optimized", "prioritized"], var.instance_allocation_strategy)
    error_message = "One of lowest-price, diversified, capacity-optimized, capacity-optimized-prioritized, price-capacity-optimized, prioritized."
  }
}

variable "instance_type_priorities" {
  description = "Priority per instance type (lower first) for the prioritized strategies."
  type        = map(number)
  default     = null
}

variable "instance_max_spot_price" {
  description = "Most to pay per hour for the whole spot fleet (`MaxTotalPrice`), null for on-demand price."
  type        = string
  default     = null
}

variable "enable_runner_on_demand_failover_for_errors" {
  description = "Spot errors for which the missing instances are launched on-demand instead, e.g. `[\"InsufficientInstanceCapacity\"]`."
  type        = list(string)
  default     = []
}

variable "scale_errors" {
  description = "EC2 error codes that make a launch retryable (the job goes back to the queue)."
  type        = list(string)
  default = [
    "UnfulfillableCapacity",
    "MaxSpotInstanceCountExceeded",
    "TargetCapacityLimitExceededException",
    "RequestLimitExceeded",
    "ResourceLimitExceeded",
    "MaxSpotFleetRequestCountExceeded",
    "InsufficientInstanceCapacity",
    "InsufficientCapacityOnHost",
  ]
}

variable "use_dedicated_host" {
  description = "Launch with RunInstances on dedicated hosts (e.g. mac instances); on-demand only."
  type        = bool
  default     = false
}

variable "ami" {
  description = <<-EOT
    The runner AMI: `filter` and `owners` to look the latest up (the default is Amazon Linux
    2023 for the architecture), or `id_ssm_parameter_arn` of a parameter holding the AMI id;
    `kms_key_arn` when the AMI's snapshots use a customer managed key.
  EOT
  type = object({
    filter               = optional(map(list(string)))
    owners               = optional(list(string), ["amazon"])
    id_ssm_parameter_arn = optional(string)
    kms_key_arn          = optional(string)
  })
  default = null
}

variable "block_device_mappings" {
  description = "Root and extra volumes of the runners (encrypted gp3 by default)."
  type = list(object({
    device_name           = optional(string, "/dev/xvda")
    delete_on_termination = optional(bool, true)
    volume_type           = optional(string, "gp3")
    volume_size           = number
    encrypted             = optional(bool, true)
    iops                  = optional(number)
    throughput            = optional(number)
    kms_key_id            = optional(string)
    snapshot_id           = optional(string)
    # The rate (MiB/s) a volume from a snapshot is initialized at (Provisioned Rate for Volume Initialization).
    volume_initialization_rate = optional(number)
  }))
  default = [{ volume_size = 30 }]
}

variable "runner_metadata_options" {
  description = "Instance metadata options (IMDSv2 required by default; tags in metadata are needed by the start script)."
  type        = map(any)
  default = {
    instance_metadata_tags      = "enabled"
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
}

variable "runner_ec2_tags" {
  description = "Extra tags of the runner instances, volumes and network interfaces."
  type        = map(string)
  default     = {}
}

variable "key_name" {
  description = "EC2 key pair of the runners, if any."
  type        = string
  default     = null
}

variable "associate_public_ipv4_address" {
  description = "Give runners a public IPv4 address (for subnets without NAT)."
  type        = bool
  default     = false
}

variable "enable_managed_runner_security_group" {
  description = "Create a security group for the runners (egress only)."
  type        = bool
  default     = true
}

variable "runner_additional_security_group_ids" {
  description = "More security groups for the runners."
  type        = list(string)
  default     = []
}

variable "runner_egress_rules" {
  description = "Egress of the managed security group."
  type = list(object({
    cidr_blocks      = list(string)
    ipv6_cidr_blocks = list(string)
    prefix_list_ids  = list(string)
    from_port        = number
    protocol         = string
    security_groups  = list(string)
    self             = bool
    to_port          = number
    description      = string
  }))
  default = [{
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
    prefix_list_ids  = null
    from_port        = 0
    protocol         = "-1"
    security_groups  = null
    self             = null
    to_port          = 0
    description      = "Runners reach GitHub, package registries and AWS APIs"
  }]
}

variable "runners_ebs_optimized" {
  description = "EBS-optimised runners."
  type        = bool
  default     = false
}

variable "enable_runner_detailed_monitoring" {
  description = "Detailed (1-minute) EC2 monitoring of the runners."
  type        = bool
  default     = false
}

variable "create_service_linked_role_spot" {
  description = "Let scale-up create the EC2 Spot service-linked role (needed once per account)."
  type        = bool
  default     = false
}

################################################################################
# Runner software and boot
################################################################################

variable "runner_os" {
  description = "`linux` or `windows`."
  type        = string
  default     = "linux"
  validation {
    condition     = contains(["linux", "windows"], var.runner_os)
    error_message = "`linux` or `windows`."
  }
}

variable "runner_architecture" {
  description = "`x64` or `arm64`."
  type        = string
  default     = "x64"
  validation {
    condition     = contains(["x64", "arm64"], var.runner_architecture)
    error_message = "`x64` or `arm64`."
  }
}

variable "runner_as_root" {
  description = "Run the runner as root."
  type        = bool
  default     = false
}

variable "runner_run_as" {
  description = "User the runner runs as (Linux)."
  type        = string
  default     = "ec2-user"
}

variable "runner_disable_default_labels" {
  description = "Register with `--no-default-labels` (only the configured labels)."
  type        = bool
  default     = false
}

variable "enable_userdata" {
  description = "Install and start the runner from user data (false for AMIs that start it themselves). WARNING: without the default user data the job hooks that keep scale-down off busy runners are not installed; install them in the image as README.md \"Custom images\" says."
  type        = bool
  default     = true
}

variable "userdata_template" {
  description = "Path of a user data template replacing the default one (it gets the hook scripts as `job_marker`, `job_started_hook`, `job_completed_hook`). WARNING: unless it installs them as the default template does, or the image has them (README.md \"Custom images\"), the job hooks that keep scale-down off busy runners are missing."
  type        = string
  default     = null
}

variable "userdata_pre_install" {
  description = "Script run before the runner is installed."
  type        = string
  default     = ""
}

variable "userdata_post_install" {
  description = "Script run after the runner is installed."
  type        = string
  default     = ""
}

variable "runner_hook_job_started" {
  description = "Script run when a job starts (after the job-started marker is written)."
  type        = string
  default     = ""
}

variable "runner_hook_job_completed" {
  description = "Script run when a job completes (before the job-completed marker is written)."
  type        = string
  default     = ""
}

variable "enable_user_data_debug_logging_runner" {
  description = "Trace the boot scripts (`set -x`) into the user data log."
  type        = bool
  default     = false
}

variable "enable_cloudwatch_agent" {
  description = "Ship the runner logs to CloudWatch with the CloudWatch agent."
  type        = bool
  default     = true
}

variable "cloudwatch_config" {
  description = "CloudWatch agent configuration replacing the default one (JSON)."
  type        = string
  default     = null
}

variable "runner_log_files" {
  description = "Runner log files shipped by the CloudWatch agent: `log_group_name`, `prefix_log_group`, `file_path`, `log_stream_name`."
  type = list(object({
    log_group_name   = string
    prefix_log_group = bool
    file_path        = string
    log_stream_name  = string
    log_class        = optional(string, "STANDARD")
  }))
  default = null
}

variable "logging_retention_in_days" {
  description = "Retention of the runner and function log groups."
  type        = number
  default     = 180
}

variable "logging_kms_key_id" {
  description = "KMS key of the log groups, or null."
  type        = string
  default     = null
}

variable "enable_ssm_on_runners" {
  description = "Allow SSM Session Manager access to the runners."
  type        = bool
  default     = false
}

variable "runner_distribution" {
  description = "Where the runner tarball is (from the runner-binaries-syncer module): `bucket`, `key`, `bucket_arn`; null to download from GitHub at boot."
  type        = object({ bucket = string, key = string, bucket_arn = string })
  default     = null
}

variable "parameter_store_tags" {
  description = "Tags of the SSM parameters the functions write."
  type        = map(string)
  default     = {}
}

################################################################################
# IAM and the functions
################################################################################

variable "role_path" {
  description = "Path of the IAM roles."
  type        = string
  default     = null
}

variable "role_permissions_boundary" {
  description = "Permissions boundary of the IAM roles."
  type        = string
  default     = null
}

variable "instance_profile_path" {
  description = "Path of the runners' instance profile."
  type        = string
  default     = null
}

variable "runner_iam_role_managed_policy_arns" {
  description = "Managed policies attached to the runner role."
  type        = list(string)
  default     = []
}

variable "lambda" {
  description = "Shared function settings (architecture, log_level, metrics_namespace, logging, role, VPC, tags; see modules/lambda)."
  type        = any
}

variable "scale_up_lambda" {
  description = "Scale-up function: `zip`, `memory_size`, `timeout`."
  type        = object({ zip = string, memory_size = optional(number, 512), timeout = optional(number, 30) })
}

variable "scale_down_lambda" {
  description = "Scale-down function: `zip`, `memory_size`, `timeout`."
  type        = object({ zip = string, memory_size = optional(number, 512), timeout = optional(number, 60) })
}

variable "enable_metric_github_app_rate_limit" {
  description = "Emit the GitHubAppRateLimitRemaining metric."
  type        = bool
  default     = true
}

variable "credit_specification" {
  description = "CPU credits of burstable instance types: `standard` or `unlimited` (null: the type's default)."
  type        = string
  default     = null
  validation {
    condition     = var.credit_specification == null ? true : contains(["standard", "unlimited"], var.credit_specification)
    error_message = "`credit_specification` is null, `standard` or `unlimited`."
  }
}

variable "cpu_options" {
  description = "CPU options of the launch template: `core_count`, `threads_per_core`, `amd_sev_snp` (`enabled`/`disabled`); `nested_virtualization` needs the AWS provider 6.x (warned, not applied)."
  type = object({
    core_count            = optional(number)
    threads_per_core      = optional(number)
    amd_sev_snp           = optional(string)
    nested_virtualization = optional(string)
  })
  default = null
}

variable "placement" {
  description = "Placement of the runners (placement group, tenancy, host, availability zone...); `group_id` needs the AWS provider 6.x (warned, not applied: use `group_name`)."
  type = object({
    affinity                = optional(string)
    availability_zone       = optional(string)
    group_id                = optional(string)
    group_name              = optional(string)
    host_id                 = optional(string)
    host_resource_group_arn = optional(string)
    spread_domain           = optional(string)
    tenancy                 = optional(string)
    partition_number        = optional(number)
  })
  default = null
}

variable "license_specifications" {
  description = "License Manager configurations of the runners (e.g. for macOS dedicated hosts): `[{ license_configuration_arn }]`."
  type        = list(object({ license_configuration_arn = string }))
  default     = []
}

variable "userdata_content" {
  description = "User data that replaces the rendered boot script whole (it must install, configure and start the runner itself; the pre/post install and hook variables are not used)."
  type        = string
  default     = null
}

variable "pool" {
  description = <<-EOT
    The pool of idle organization runners (upstream's `pool_config` and `pool_*` variables):
    `config` (one schedule per entry: `schedule_expression`, `schedule_expression_timezone`, `size`),
    `runner_owner` (the organization), `include_busy_runners`, `hold_minutes` (how long a pool run keeps
    scale-down off the runners it counts; longer than the time between two runs), and the function's
    `zip`, `memory_size`, `timeout`, `reserved_concurrent_executions`. No pool when `config` is empty.
  EOT
  type = object({
    config = optional(list(object({
      schedule_expression          = string
      schedule_expression_timezone = optional(string)
      size                         = number
    })), [])
    runner_owner                   = optional(string)
    include_busy_runners           = optional(bool, false)
    hold_minutes                   = optional(number, 30)
    zip                            = string
    memory_size                    = optional(number, 512)
    timeout                        = optional(number, 60)
    reserved_concurrent_executions = optional(number, 1)
  })
  validation {
    condition     = alltrue([for c in var.pool.config : c.size >= 0])
    error_message = "A pool's size cannot be negative."
  }
}

variable "job_retry" {
  description = "Job retry (upstream's `job_retry`): `enable`, `delay_in_seconds`, `delay_backoff`, `max_attempts`, and the function's `zip`, `lambda_memory_size`, `lambda_timeout`."
  type = object({
    enable             = optional(bool, false)
    delay_in_seconds   = optional(number, 300)
    delay_backoff      = optional(number, 2)
    lambda_memory_size = optional(number, 256)
    lambda_timeout     = optional(number, 30)
    max_attempts       = optional(number, 1)
    zip                = string
  })
  validation {
    condition     = var.job_retry.delay_in_seconds >= 0 && var.job_retry.delay_in_seconds <= 900 && var.job_retry.delay_backoff >= 1 && var.job_retry.max_attempts >= 1
    error_message = "job_retry: delay_in_seconds 0-900 (SQS's limit), delay_backoff at least 1, max_attempts at least 1."
  }
}

variable "ssm_housekeeper" {
  description = "The SSM housekeeper (upstream's `runners_ssm_housekeeper`): `enabled`, `schedule_expression`, `config` (`tokenPath`, default the token path; `minimumDaysOld`; `dryRun`), and the function's `zip`, `lambda_memory_size`, `lambda_timeout`."
  type = object({
    schedule_expression = optional(string, "rate(1 day)")
    enabled             = optional(bool, true)
    lambda_memory_size  = optional(number, 512)
    lambda_timeout      = optional(number, 60)
    config = object({
      tokenPath      = optional(string)
      minimumDaysOld = optional(number, 1)
      dryRun         = optional(bool, false)
    })
    zip = string
  })
}

variable "warm_pool" {
  description = <<-EOT
    Beyond upstream: a warm pool of prepared, stopped instances that scale-up starts for a job
    instead of launching a fresh one. `size` (0: off), `max_age_hours` (a prepared instance older
    than this is replaced), `hibernate` (hibernate rather than stop: the launch template allows
    hibernation, which needs an encrypted root volume at least as large as the instance's memory
    and an instance type that supports it), `schedule_expression` (the top-up), and the warm-pool
    function's `zip`, `lambda_memory_size`, `lambda_timeout`. Its instances are on-demand (EC2
    stops no one-time spot instance). See docs/warm-pool.md.
  EOT
  type = object({
    size                = optional(number, 0)
    max_age_hours       = optional(number, 24)
    hibernate           = optional(bool, false)
    schedule_expression = optional(string, "rate(2 minutes)")
    lambda_memory_size  = optional(number, 256)
    lambda_timeout      = optional(number, 60)
    zip                 = optional(string, "")
  })
  default = {}
  validation {
    condition     = var.warm_pool.size >= 0 && var.warm_pool.max_age_hours >= 1 && (var.warm_pool.size == 0 || var.warm_pool.zip != "")
    error_message = "warm_pool: size at least 0 (0 is off), max_age_hours at least 1, and the function's zip with a size."
  }
}
