################################################################################
# General
################################################################################

variable "aws_region" {
  description = "AWS region of the deployment."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the runners."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the runners (private subnets with a NAT, or public ones with `associate_public_ipv4_address`)."
  type        = list(string)
}

variable "prefix" {
  description = "Name prefix of every resource and the `ghr:environment` tag of the runners."
  type        = string
  default     = "github-actions"
  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{1,40}$", var.prefix))
    error_message = "1-40 letters, digits or dashes."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

################################################################################
# GitHub
################################################################################

variable "github_app" {
  description = <<-EOT
    The GitHub App: its id, private key (base64 of the PEM file GitHub gives you) and webhook
    secret, each as a value (`id`, `key_base64`, `webhook_secret`) or an existing SSM parameter
    (`id_ssm`, `key_base64_ssm`, `webhook_secret_ssm` = `{ arn, name }`).
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
  validation {
    condition     = (var.github_app.key_base64 != null || var.github_app.key_base64_ssm != null) && (var.github_app.id != null || var.github_app.id_ssm != null) && (var.github_app.webhook_secret != null || var.github_app.webhook_secret_ssm != null)
    error_message = "You must set all of the following parameters, choosing one option from each pair: `key_base64` or `key_base64_ssm`, `id` or `id_ssm`, `webhook_secret` or `webhook_secret_ssm`."
  }
}

variable "additional_github_apps" {
  description = "More GitHub Apps installed on the same owners, to spread the API rate limit: `id`/`id_ssm`, `key_base64`/`key_base64_ssm`, optional `installation_id`/`installation_id_ssm`."
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

variable "ghes_url" {
  description = "GitHub Enterprise Server URL (`https://ghes.example.com`) or data-residency URL (`https://<name>.ghe.com`); null for github.com."
  type        = string
  default     = null
}

variable "ghes_ssl_verify" {
  description = "Verify GHES's TLS certificate. false turns checks off for the functions' GitHub client only (and the runner's connection to GHES)."
  type        = bool
  default     = true
}

variable "user_agent" {
  description = "User agent of the functions' GitHub requests."
  type        = string
  default     = "github-aws-runners"
}

variable "enable_organization_runners" {
  description = "Register runners with the organization instead of each repository."
  type        = bool
  default     = false
}

variable "repository_white_list" {
  description = "`owner/repo` names allowed to use the runners; empty allows all."
  type        = list(string)
  default     = []
}

variable "runner_group_name" {
  description = "Runner group of organization runners."
  type        = string
  default     = "Default"
}

variable "runner_name_prefix" {
  description = "Prefix of runner names: `<prefix><instance-id>` (at most 45 characters)."
  type        = string
  default     = ""
}

################################################################################
# Webhook and matching
################################################################################

variable "queue_selection_strategy" {
  description = "Among equally good runner configurations: `first`, `random` or `all`."
  type        = string
  default     = "first"
  validation {
    condition     = contains(["first", "random", "all"], var.queue_selection_strategy)
    error_message = "`first`, `random` or `all`."
  }
}

variable "enable_runner_workflow_job_labels_check_all" {
  description = "A job's labels must all be runner labels (`exactMatch`; deprecated upstream in favour of the bidirectional match)."
  type        = bool
  default     = true
}

variable "enable_runner_bidirectional_label_match" {
  description = "A job's labels and the runner labels must be the same set."
  type        = bool
  default     = false
}

variable "matcher_config_parameter_store_tier" {
  description = "SSM tier of the matcher config: `Standard` or `Advanced`."
  type        = string
  default     = "Standard"
}

variable "delay_webhook_event" {
  description = "Seconds a job waits in the queue before scale-up sees it (0-900): an idle runner may take it first."
  type        = number
  default     = 30
  validation {
    condition     = var.delay_webhook_event >= 0 && var.delay_webhook_event <= 900
    error_message = "0 to 900 seconds."
  }
}

variable "job_queue_retention_in_seconds" {
  description = "How long a job message is kept (60-1209600)."
  type        = number
  default     = 86400
  validation {
    condition     = var.job_queue_retention_in_seconds >= 60 && var.job_queue_retention_in_seconds <= 1209600
    error_message = "60 to 1209600 seconds."
  }
}

variable "redrive_build_queue" {
  description = "A dead-letter queue for jobs whose runner could not be created after `maxReceiveCount` attempts."
  type = object({
    enabled         = bool
    maxReceiveCount = number
  })
  default = { enabled = false, maxReceiveCount = null }
}

variable "queue_encryption" {
  description = "Encryption of the queues: SQS managed SSE (default) or a KMS key."
  type = object({
    kms_data_key_reuse_period_seconds = number
    kms_master_key_id                 = string
    sqs_managed_sse_enabled           = bool
  })
  default = {
    kms_data_key_reuse_period_seconds = null
    kms_master_key_id                 = null
    sqs_managed_sse_enabled           = true
  }
}

variable "enable_webhook_function_url" {
  description = "Also expose the webhook as a Lambda function URL (the API Gateway endpoint stays)."
  type        = bool
  default     = false
}

variable "webhook_lambda_apigateway_access_log_settings" {
  description = "API Gateway access logs of the webhook endpoint: `{ destination_arn, format }`."
  type        = object({ destination_arn = string, format = string })
  default     = null
}

################################################################################
# Scaling
################################################################################

variable "runners_maximum_count" {
  description = "Most runners per owner at once; -1 for no limit."
  type        = number
  default     = 3
}

variable "enable_ephemeral_runners" {
  description = "One job per runner; the instance terminates after it."
  type        = bool
  default     = false
}

variable "enable_jit_config" {
  description = "Just-in-time runner configs for ephemeral runners; null follows `enable_ephemeral_runners`."
  type        = bool
  default     = null
}

variable "enable_job_queued_check" {
  description = "Start runners only for jobs GitHub still reports queued; null: on for reusable runners, off for ephemeral."
  type        = bool
  default     = null
}

variable "scale_down_schedule_expression" {
  description = "How often scale-down runs."
  type        = string
  default     = "cron(*/5 * * * ? *)"
}

variable "minimum_running_time_in_minutes" {
  description = "A runner is kept at least this long; null for the OS default (linux 5, windows 15)."
  type        = number
  default     = null
}

variable "runner_boot_time_in_minutes" {
  description = "Time an instance has to register its runner before it is an orphan."
  type        = number
  default     = 5
}

variable "scale_down_job_start_grace_seconds" {
  description = "Two-phase removal: an idle runner is deregistered, and its instance terminated on a later scale-down run at least this long after, once its job markers show no job started on it (a job handed out just before the deregistration, whose hook runs after \"Set up job\", is never killed)."
  type        = number
  default     = 180
}

variable "scale_down_withdrawal_wait_seconds" {
  description = "Scale-down removes an idle runner's custom labels, then deregisters it this long after within the run, so that a job GitHub handed it just before starts instead of losing its runner. Needs custom labels (`runner_extra_labels`)."
  type        = number
  default     = 10
}

variable "runner_offline_timeout_in_minutes" {
  description = "A runner GitHub lists offline this long while a job is marked on its instance (or GitHub still flags it busy) crashed mid-job: scale-down deregisters it and terminates its instance."
  type        = number
  default     = 15
}

variable "idle_config" {
  description = "When to keep idle runners: list of `{ cron (6 fields, seconds first), timeZone, idleCount, evictionStrategy = oldest_first | newest_first }`."
  type = list(object({
    cron             = string
    timeZone         = string
    idleCount        = number
    evictionStrategy = optional(string, "oldest_first")
  }))
  default = []
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
}

variable "lambda_event_source_mapping_maximum_batching_window_in_seconds" {
  description = "Seconds to gather a batch (0-300)."
  type        = number
  default     = 0
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
}

variable "instance_allocation_strategy" {
  description = "EC2 Fleet allocation strategy."
  type        = string
  default     = "lowest-price"
}

variable "instance_type_priorities" {
  description = "Priority per instance type (lower first) for the prioritized strategies."
  type        = map(number)
  default     = null
}

variable "instance_max_spot_price" {
  description = "Most to pay per hour for the spot fleet, null for the on-demand price."
  type        = string
  default     = null
}

variable "enable_runner_on_demand_failover_for_errors" {
  description = "Spot errors for which the missing instances are launched on-demand instead, e.g. `[\"InsufficientInstanceCapacity\"]`."
  type        = list(string)
  default     = []
}

variable "scale_errors" {
  description = "EC2 error codes that make a launch retryable."
  type        = list(string)
  default = [
    "UnfulfillableCapacity",
    "MaxSpotInstanceCountExceeded",
    "TargetCapacityLimitExceededException",
    "RequestLimitExceeded",
    "ResourceLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "MaxSpotFleetRequestCountExceeded",
    "InsufficientInstanceCapacity",
    "InsufficientCapacityOnHost",
  ]
}

variable "ami" {
  description = "The runner AMI: `filter`/`owners` to look up the latest, or `id_ssm_parameter_arn`; `kms_key_arn` of its snapshots. Default: Amazon Linux 2023 for the architecture."
  type = object({
    filter               = optional(map(list(string)), { state = ["available"] })
    owners               = optional(list(string), ["amazon"])
    id_ssm_parameter_arn = optional(string, null)
    kms_key_arn          = optional(string, null)
  })
  default = null
}

variable "block_device_mappings" {
  description = "Volumes of the runners (encrypted gp3, 30 GB root by default)."
  type = list(object({
    delete_on_termination      = optional(bool, true)
    device_name                = optional(string, "/dev/xvda")
    encrypted                  = optional(bool, true)
    iops                       = optional(number)
    kms_key_id                 = optional(string)
    snapshot_id                = optional(string)
    throughput                 = optional(number)
    volume_initialization_rate = optional(number)
    volume_size                = number
    volume_type                = optional(string, "gp3")
  }))
  default = [{ volume_size = 30 }]
}

variable "runner_metadata_options" {
  description = "Instance metadata options of the runners (IMDSv2 is always required)."
  type        = map(any)
  default = {
    instance_metadata_tags      = "enabled"
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
}

variable "runner_ec2_tags" {
  description = "Extra tags of the runner instances."
  type        = map(string)
  default     = {}
}

variable "use_dedicated_host" {
  description = "Launch on dedicated hosts with RunInstances (e.g. mac instances; on-demand only)."
  type        = bool
  default     = false
}

variable "runners_ebs_optimized" {
  description = "EBS-optimised runners."
  type        = bool
  default     = false
}

variable "enable_runner_detailed_monitoring" {
  description = "Detailed EC2 monitoring of the runners."
  type        = bool
  default     = false
}

variable "key_name" {
  description = "EC2 key pair of the runners."
  type        = string
  default     = null
}

variable "associate_public_ipv4_address" {
  description = "Give runners a public IPv4 address."
  type        = bool
  default     = false
}

variable "enable_managed_runner_security_group" {
  description = "Create the runners' security group (egress only)."
  type        = bool
  default     = true
}

variable "runner_egress_rules" {
  description = "Egress rules of the managed runner security group (default: everything, IPv4 and IPv6)."
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
    description      = null
  }]
}

variable "runner_additional_security_group_ids" {
  description = "More security groups of the runners."
  type        = list(string)
  default     = []
}

variable "create_service_linked_role_spot" {
  description = "Let scale-up create the EC2 Spot service-linked role."
  type        = bool
  default     = false
}

################################################################################
# Runner software
################################################################################

variable "runner_os" {
  description = "`linux` or `windows`."
  type        = string
  default     = "linux"
}

variable "runner_architecture" {
  description = "`x64` or `arm64`."
  type        = string
  default     = "x64"
}

variable "runner_extra_labels" {
  description = "Labels added to the default ones (`self-hosted`, OS, architecture)."
  type        = list(string)
  default     = []
}

variable "runner_disable_default_labels" {
  description = "Register without the default labels."
  type        = bool
  default     = false
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

variable "disable_runner_autoupdate" {
  description = "Register with `--disableupdate`."
  type        = bool
  default     = false
}

variable "enable_userdata" {
  description = "Install and start the runner from user data (false for prebuilt AMIs). WARNING: without the default user data the job hooks that keep scale-down off busy runners are not installed; install them in the image as README.md \"Custom images\" says."
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
  description = "Script run when a job starts."
  type        = string
  default     = ""
}

variable "runner_hook_job_completed" {
  description = "Script run when a job completes."
  type        = string
  default     = ""
}

variable "enable_user_data_debug_logging_runner" {
  description = "Trace the boot scripts."
  type        = bool
  default     = false
}

variable "enable_cloudwatch_agent" {
  description = "Ship the runner logs to CloudWatch."
  type        = bool
  default     = true
}

variable "cloudwatch_config" {
  description = "CloudWatch agent configuration replacing the default (JSON)."
  type        = string
  default     = null
}

variable "runner_log_files" {
  description = "Runner log files shipped to CloudWatch."
  type = list(object({
    log_group_name   = string
    prefix_log_group = bool
    file_path        = string
    log_stream_name  = string
    log_class        = optional(string, "STANDARD")
  }))
  default = null
}

variable "enable_ssm_on_runners" {
  description = "Allow SSM Session Manager access to the runners."
  type        = bool
  default     = false
}

################################################################################
# Runner binaries syncer
################################################################################

variable "enable_runner_binaries_syncer" {
  description = "Mirror the runner tarball to S3 (faster boots, no GitHub download per instance)."
  type        = bool
  default     = true
}

variable "state_event_rule_binaries_syncer" {
  description = "`ENABLED` or `DISABLED` (freezes the mirrored version)."
  type        = string
  default     = "ENABLED"
}

variable "runner_binaries_version" {
  description = "Mirror this runner version (e.g. `2.321.0`) instead of the latest; null for the latest."
  type        = string
  default     = null
}

variable "runner_binaries_s3_sse_configuration" {
  description = "Encryption of the distribution bucket."
  type        = any
  default = {
    rule = {
      apply_server_side_encryption_by_default = { sse_algorithm = "AES256" }
    }
  }
}

variable "runner_binaries_s3_versioning" {
  description = "Versioning of the distribution bucket: `Enabled`, `Suspended` or `Disabled`."
  type        = string
  default     = "Disabled"
}

variable "runner_binaries_s3_logging_bucket" {
  description = "Bucket for the distribution bucket's access logs."
  type        = string
  default     = null
}

variable "runner_binaries_s3_logging_bucket_prefix" {
  description = "Prefix of those access logs."
  type        = string
  default     = null
}

################################################################################
# Functions
################################################################################

variable "lambda_architecture" {
  description = "`arm64` (Graviton) or `x86_64`; the zips must be built for it (`make build`)."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "`lambda_architecture` value is not valid, valid values are: `arm64` and `x86_64`."
  }
}

variable "webhook_lambda_zip" {
  description = "Webhook zip; null for `target/lambda/<arch>/webhook/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "dispatcher_lambda_zip" {
  description = "Dispatcher zip (EventBridge mode); null for `target/lambda/<arch>/dispatcher/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "pool_lambda_zip" {
  description = "Pool zip; null for `target/lambda/<arch>/pool/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "job_retry_lambda_zip" {
  description = "Job-retry zip; null for `target/lambda/<arch>/job-retry/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "ssm_housekeeper_lambda_zip" {
  description = "SSM housekeeper zip; null for `target/lambda/<arch>/ssm-housekeeper/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "eventbridge" {
  description = <<-EOT
    EventBridge mode (on by default, as upstream): the webhook publishes each delivery on the bus `<prefix>-runners` (archived) and the dispatcher routes queued jobs from it to the runner queues; off, the webhook routes jobs to the queues itself (direct mode).
    `enable`; `accept_events`: the GitHub event types published (null or empty: all).
  EOT
  type = object({
    enable        = optional(bool, true)
    accept_events = optional(list(string), null)
  })
  default = {}
}

variable "scale_up_lambda_zip" {
  description = "Scale-up zip; null for `target/lambda/<arch>/scale-up/bootstrap.zip`."
  type        = string
  default     = null
}

variable "scale_down_lambda_zip" {
  description = "Scale-down zip; null for `target/lambda/<arch>/scale-down/bootstrap.zip`."
  type        = string
  default     = null
}

variable "runner_binaries_syncer_lambda_zip" {
  description = "Syncer zip; null for `target/lambda/<arch>/syncer/bootstrap.zip`."
  type        = string
  default     = null
}

variable "webhook_lambda_memory_size" {
  description = "Webhook memory (MB)."
  type        = number
  default     = 256
}

variable "webhook_lambda_timeout" {
  description = "Webhook timeout (s); GitHub waits 10 s."
  type        = number
  default     = 10
}

variable "runners_scale_up_lambda_memory_size" {
  description = "Scale-up memory (MB)."
  type        = number
  default     = 512
}

variable "runners_scale_up_lambda_timeout" {
  description = "Scale-up timeout (s); also the build queue's visibility timeout."
  type        = number
  default     = 30
}

variable "runners_scale_down_lambda_memory_size" {
  description = "Scale-down memory (MB)."
  type        = number
  default     = 512
}

variable "runners_scale_down_lambda_timeout" {
  description = "Scale-down timeout (s)."
  type        = number
  default     = 60
}

variable "runner_binaries_syncer_lambda_memory_size" {
  description = "Syncer memory (MB)."
  type        = number
  default     = 256
}

variable "runner_binaries_syncer_lambda_timeout" {
  description = "Syncer timeout (s)."
  type        = number
  default     = 300
}

variable "lambda_subnet_ids" {
  description = "Run the functions in these subnets (VPC)."
  type        = list(string)
  default     = []
}

variable "lambda_security_group_ids" {
  description = "Security groups of the functions in a VPC."
  type        = list(string)
  default     = []
}

variable "lambda_tags" {
  description = "Extra tags of the functions."
  type        = map(string)
  default     = {}
}

variable "log_level" {
  description = "Functions' log level: silly, trace, debug, info, warn, error or fatal."
  type        = string
  default     = "info"
}

variable "logging_retention_in_days" {
  description = "Retention of the log groups."
  type        = number
  default     = 180
}

variable "logging_kms_key_id" {
  description = "KMS key of the log groups."
  type        = string
  default     = null
}

variable "log_class" {
  description = "Log group class: `STANDARD` or `INFREQUENT_ACCESS`."
  type        = string
  default     = "STANDARD"
}

################################################################################
# IAM, SSM, KMS
################################################################################

variable "role_path" {
  description = "Path of the IAM roles; null for `/<prefix>/`."
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
  description = "Managed policies for the runner role."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the SSM parameters, or null for `aws/ssm`."
  type        = string
  default     = null
}

variable "ssm_paths" {
  description = "SSM layout: `/<root>/<prefix>/{app,runners,webhook}` (without the prefix when `use_prefix` is false)."
  type = object({
    root       = optional(string, "github-action-runners")
    app        = optional(string, "app")
    runners    = optional(string, "runners")
    webhook    = optional(string, "webhook")
    use_prefix = optional(bool, true)
  })
  default = {}
}

variable "parameter_store_tags" {
  description = "Tags of the SSM parameters the functions write."
  type        = map(string)
  default     = {}
}

################################################################################
# Metrics, dashboard and alarms
################################################################################

variable "enable_webhook_redelivery" {
  description = "Redeliver failed `workflow_job` webhook deliveries of the GitHub Apps (endpoint down, slow or answering 5xx), so that no job is lost to an outage. Uses the App's own JWT: no extra permission."
  type        = bool
  default     = true
}

variable "webhook_redelivery_schedule_expression" {
  description = "How often the App's delivery log is swept for failed deliveries."
  type        = string
  default     = "rate(5 minutes)"
}

variable "webhook_redelivery_window_minutes" {
  description = "How far back the first sweep looks, and the age after which a failed delivery is no longer redelivered (at most 4320, GitHub's 3 days)."
  type        = number
  default     = 360
}

variable "webhook_redelivery_max_attempts" {
  description = "Redeliveries of one delivery before it is given up (metric DeliveriesGivenUp, alarmed)."
  type        = number
  default     = 5
}

variable "webhook_redelivery_lambda_zip" {
  description = "Redelivery zip; null for `target/lambda/<arch>/redelivery/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "termination_watcher_lambda_zip" {
  description = "Termination watcher zip (its three functions); null for `target/lambda/<arch>/termination-watcher/bootstrap.zip` of this repository. `instance_termination_watcher.zip` wins when set."
  type        = string
  default     = null
}

variable "metrics" {
  description = "EMF metrics, the dashboard and alarms: `enable` (the dashboard and alarms), `namespace`, `metric.enable_github_app_rate_limit`, `metric.enable_spot_termination_warning` (the termination watcher's `SpotInterruptionWarning`); `metric.enable_job_retry` is upstream's and always on here."
  type = object({
    enable    = optional(bool, true)
    namespace = optional(string, "GitHub Runners")
    metric = optional(object({
      enable_github_app_rate_limit    = optional(bool, true)
      enable_job_retry                = optional(bool, true)
      enable_spot_termination_warning = optional(bool, true)
    }), {})
  })
  default = {}
}

variable "alarm_actions" {
  description = "Where the alarms notify (e.g. an SNS topic ARN)."
  type        = list(string)
  default     = []
}

variable "alarm_thresholds" {
  description = "Alarm thresholds: `oldest_job_seconds`, `runners_not_created`, `rate_limit_remaining`."
  type = object({
    oldest_job_seconds   = optional(number, 900)
    runners_not_created  = optional(number, 5)
    rate_limit_remaining = optional(number, 500)
  })
  default = {}
}

################################################################################
# The rest of upstream's root interface (v7.11: names, types, defaults, validations); features
# not implemented yet are accepted and named in a plan-time warning (main.tf).
################################################################################

variable "iam_overrides" {
  description = "Not supported yet (a plan-time warning says so when an override is set): use an existing instance profile or runner role."
  type = object({
    override_instance_profile = optional(bool, null)
    instance_profile_name     = optional(string, null)
    override_runner_role      = optional(bool, null)
    runner_role_arn           = optional(string, null)
  })

  default = {
    override_instance_profile = false
    instance_profile_name     = null
    override_runner_role      = false
    runner_role_arn           = null
  }

  validation {
    condition     = !var.iam_overrides.override_instance_profile || var.iam_overrides.instance_profile_name != null
    error_message = "instance_profile_name must be provided when override_instance_profile is true."
  }

  validation {
    condition     = !var.iam_overrides.override_runner_role || var.iam_overrides.runner_role_arn != null
    error_message = "runner_role_arn must be provided when override_runner_role is true."
  }
}

variable "runners_lambda_zip" {
  description = "Upstream's single zip of the scale-up/scale-down/pool functions. No meaning here (each Rust function has its own zip): set `scale_up_lambda_zip` and `scale_down_lambda_zip`; a plan-time warning says so when set."
  type        = string
  default     = null
}

variable "runner_binaries_s3_tags" {
  description = "Extra tags of the runner distribution bucket."
  type        = map(string)
  default     = {}
}

variable "userdata_content" {
  description = "User data that replaces the rendered boot script whole (it must install, configure and start the runner itself; `userdata_pre_install`/`post_install` and the hooks are not used)."
  type        = string
  default     = null
}

variable "lambda_s3_bucket" {
  description = "Not supported yet (a plan-time warning says so): deploy the function zips from this S3 bucket. Set the `*_lambda_zip` variables instead."
  type        = string
  default     = null
}

variable "syncer_lambda_s3_key" {
  description = "Not supported yet (a plan-time warning says so): S3 key of the syncer zip in `lambda_s3_bucket`."
  type        = string
  default     = null
}

variable "syncer_lambda_s3_object_version" {
  description = "Not supported yet (a plan-time warning says so): S3 object version of the syncer zip."
  type        = string
  default     = null
}

variable "webhook_lambda_s3_key" {
  description = "Not supported yet (a plan-time warning says so): S3 key of the webhook zip in `lambda_s3_bucket`."
  type        = string
  default     = null
}

variable "webhook_lambda_s3_object_version" {
  description = "Not supported yet (a plan-time warning says so): S3 object version of the webhook zip."
  type        = string
  default     = null
}

variable "runners_lambda_s3_key" {
  description = "Not supported yet (a plan-time warning says so): S3 key of upstream's combined runners zip."
  type        = string
  default     = null
}

variable "runners_lambda_s3_object_version" {
  description = "Not supported yet (a plan-time warning says so): S3 object version of upstream's combined runners zip."
  type        = string
  default     = null
}

variable "enable_dynamic_labels" {
  description = "Jobs may carry dynamic `ghr-` labels: they are not matched, the runner registers with them, and `ghr-ec2-<key>:<value>` ones set EC2 settings per job (instance type, vCPU/memory requirements, EBS size and type, placement, AMI, subnet, max price). See docs/dynamic-labels.md."
  type        = bool
  default     = false
}

variable "aws_dynamic_labels_policy" {
  description = "With `enable_dynamic_labels`, what `ghr-ec2-<key>` labels may ask for: `{ blocked_keys = [<key>], restricted_keys = { <key> = { allowed = [globs], denied = [globs], max = number } } }`. A job that breaks it is answered 202 and never launched. `null`: no limit."
  type = object({
    blocked_keys = optional(list(string), [])
    restricted_keys = optional(map(object({
      allowed = optional(list(string))
      denied  = optional(list(string))
      max     = optional(string)
    })), {})
  })
  default = null
}

variable "lambda_principals" {
  description = "More principals allowed to assume the functions' roles (`[{ type, identifiers }]`)."
  type = list(object({
    type        = string
    identifiers = list(string)
  }))
  default = []
}

variable "pool_lambda_memory_size" {
  description = "Memory (MB) of the pool function."
  type        = number
  default     = 512
}

variable "pool_lambda_timeout" {
  description = "Timeout (seconds) of the pool function."
  type        = number
  default     = 60
}

variable "pool_runner_owner" {
  description = "The organization the pool's runners register with (the pool supports organization runners only, as upstream; required with `pool_config`)."
  type        = string
  default     = null
}

variable "pool_lambda_reserved_concurrent_executions" {
  description = "Reserved concurrency of the pool function (1: one top-up at a time; -1: no limit)."
  type        = number
  default     = 1
}

variable "pool_config" {
  description = "The pool: one EventBridge Scheduler schedule per entry (`schedule_expression`, `schedule_expression_timezone`, default UTC), each topping the pool of idle organization runners up to `size`, never past `runners_maximum_count`. Empty: no pool."
  type = list(object({
    schedule_expression          = string
    schedule_expression_timezone = optional(string)
    size                         = number
  }))
  default = []
}

variable "pool_hold_minutes" {
  description = "Beyond upstream: how long after a pool run scale-down leaves the runners it counted (and launched) alone, so that the pool and `idle_config` do not take turns launching and removing them. Set it longer than the time between two pool schedules; 0 turns the hold off (upstream's behaviour)."
  type        = number
  default     = 30
}

variable "pool_include_busy_runners" {
  description = "Count busy runners toward the pool's size (by default only idle runners and instances still booting count)."
  type        = bool
  default     = false
}

variable "aws_partition" {
  description = "The AWS partition. The modules read it from the provider; a plan-time warning says so when this differs."
  type        = string
  default     = "aws"
}

variable "lambda_runtime" {
  description = "Upstream's Node.js runtime. No meaning here: the functions are Rust binaries on `provided.al2023`; a plan-time warning says so when changed from the default."
  type        = string
  default     = "nodejs24.x"
}

variable "tracing_config" {
  description = "X-Ray tracing of the functions: `mode` (`Active` or `PassThrough`; null: off). `capture_*` are for upstream's Node.js SDK and have no effect on the Rust functions."
  type = object({
    mode                  = optional(string, null)
    capture_http_requests = optional(bool, false)
    capture_error         = optional(bool, false)
  })
  default = {}
}

variable "runner_credit_specification" {
  description = "CPU credits of burstable runner instance types: `standard` or `unlimited` (null: the type's default)."
  type        = string
  default     = null

  validation {
    condition     = var.runner_credit_specification == null ? true : contains(["standard", "unlimited"], var.runner_credit_specification)
    error_message = "Valid values for runner_credit_specification are (null, \"standard\", \"unlimited\")."
  }
}

variable "runner_cpu_options" {
  description = "CPU options of the runners' launch template: `core_count`, `threads_per_core`, `amd_sev_snp`; `nested_virtualization` needs the AWS provider 6.x (warned, not applied)."
  type = object({
    core_count            = optional(number)
    threads_per_core      = optional(number)
    amd_sev_snp           = optional(string)
    nested_virtualization = optional(string)
  })
  default = null

  validation {
    condition = var.runner_cpu_options == null ? true : (
      # coalesce, not `== null ||`: Terraform before 1.12 evaluates both sides of `||` (upstream's
      # validation fails on a null attribute there).
      contains(["enabled", "disabled"], coalesce(var.runner_cpu_options.amd_sev_snp, "enabled")) &&
      contains(["enabled", "disabled"], coalesce(var.runner_cpu_options.nested_virtualization, "enabled"))
    )
    error_message = "When set, runner_cpu_options.amd_sev_snp and runner_cpu_options.nested_virtualization must be one of: enabled, disabled."
  }
}

variable "runner_placement" {
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

variable "runner_license_specifications" {
  description = "License Manager configurations of the runners (e.g. for macOS dedicated hosts): `[{ license_configuration_arn }]`."
  type = list(object({
    license_configuration_arn = string
  }))
  default = []
}

variable "runners_ssm_housekeeper" {
  description = "The SSM housekeeper: deletes runner token/JIT parameters older than `config.minimumDaysOld` days, and sooner those of terminated instances (beyond upstream), on `schedule_expression`; `config.dryRun` only logs. `config.tokenPath` defaults to the module's token path."
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
  })
  default = { config = {} }
}

variable "instance_termination_watcher" {
  description = "The termination watcher (`enable`): metrics of spot interruption warnings (`metrics.metric.enable_spot_termination_warning`) and reclaims, and with `enable_runner_deregistration` (default true) the runners of terminating instances deregistered from GitHub (a busy one retried from `<prefix>-deregister-retry`); `features` turns its two watchers on or off; `zip`, `memory_size`, `timeout` of its functions."
  type = object({
    enable = optional(bool, false)
    features = optional(object({
      enable_spot_termination_handler              = optional(bool, true)
      enable_spot_termination_notification_watcher = optional(bool, true)
    }), {})
    enable_runner_deregistration = optional(bool, true)
    memory_size                  = optional(number, null)
    s3_key                       = optional(string, null)
    s3_object_version            = optional(string, null)
    timeout                      = optional(number, null)
    zip                          = optional(string, null)
  })
  default = {}
}

variable "job_retry" {
  description = "Job retry: each launched job is checked again after `delay_in_seconds` × `delay_backoff`^retry (at most 900 s) and put back on the build queue while still queued, up to `max_attempts` times (queue `<prefix>-job-retry`, function `<prefix>-job-retry`)."
  type = object({
    enable             = optional(bool, false)
    delay_in_seconds   = optional(number, 300)
    delay_backoff      = optional(number, 2)
    lambda_memory_size = optional(number, 256)
    lambda_timeout     = optional(number, 30)
    max_attempts       = optional(number, 1)
  })
  default = {}
}

variable "warm_pool" {
  description = <<-EOT
    Beyond upstream: a warm pool of prepared, stopped runner instances that scale-up starts for a
    job (seconds) instead of launching a fresh one (minutes). `size` (0: off), `max_age_hours`
    (prepared instances older than this are replaced), `hibernate` (hibernate rather than stop;
    the image, instance types and an encrypted root volume at least as large as the memory must
    allow it), `schedule_expression` (the top-up by the `<prefix>-warm-pool` function), and the
    function's `lambda_memory_size` and `lambda_timeout`. Instances of the pool are on-demand and
    count toward `runners_maximum_count` only while running. See docs/warm-pool.md.
  EOT
  type = object({
    size                = optional(number, 0)
    max_age_hours       = optional(number, 24)
    hibernate           = optional(bool, false)
    schedule_expression = optional(string, "rate(2 minutes)")
    lambda_memory_size  = optional(number, 256)
    lambda_timeout      = optional(number, 60)
  })
  default = {}
}

variable "warm_pool_lambda_zip" {
  description = "Warm-pool zip; null for `target/lambda/<arch>/warm-pool/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "enable_ami_housekeeper" {
  description = "Deploy the AMI housekeeper (`<prefix>-ami-housekeeper`): deregisters old images no launch template or listed parameter uses, with their snapshots (`ami_housekeeper_cleanup_config`)."
  type        = bool
  default     = false
}

variable "ami_housekeeper_lambda_zip" {
  description = "AMI housekeeper zip; null for `target/lambda/<arch>/ami-housekeeper/bootstrap.zip` of this repository."
  type        = string
  default     = null
}

variable "ami_housekeeper_lambda_timeout" {
  description = "Timeout (s) of the AMI housekeeper: what a run cannot finish is left for the next one."
  type        = number
  default     = 300
}

variable "ami_housekeeper_lambda_s3_key" {
  description = "Not supported yet (a plan-time warning says so): S3 key of the AMI housekeeper zip in `lambda_s3_bucket`."
  type        = string
  default     = null
}

variable "ami_housekeeper_lambda_s3_object_version" {
  description = "Not supported yet (a plan-time warning says so): S3 object version of the AMI housekeeper zip."
  type        = string
  default     = null
}

variable "ami_housekeeper_lambda_schedule_expression" {
  description = "When the AMI housekeeper runs."
  type        = string
  default     = "rate(1 day)"
}

variable "ami_housekeeper_cleanup_config" {
  description = "What the AMI housekeeper cleans up (upstream's): `amiFilters` (default: available machine images), `dryRun`, `launchTemplateNames` (null: every template of the account; when set, the runners' own is added), `maxItems`, `minimumDaysOld` (default 30), `ssmParameterNames` (`*text`: every parameter whose name contains `text`)."
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
}

variable "job_rescue" {
  description = <<-EOT
    Beyond upstream: a job a spot reclaim interrupts is re-run once it has failed, and its runner is
    launched on on-demand capacity. `max_attempts`: how many times one job may be re-run.
    Needs `instance_termination_watcher.enable` and the GitHub App's "Actions: write" permission.
    Off by default. See docs/job-rescue.md.
  EOT
  type = object({
    enable       = optional(bool, false)
    max_attempts = optional(number, 1)
  })
  default = {}
  validation {
    condition     = var.job_rescue.max_attempts >= 1
    error_message = "job_rescue.max_attempts is at least 1."
  }
}
