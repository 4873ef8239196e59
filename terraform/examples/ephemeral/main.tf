################################################################################
# Ephemeral runners: one job per instance, registered with a just-in-time config
################################################################################

provider "aws" {
  region = var.aws_region
  default_tags {
    tags = { Example = "ephemeral" }
  }
}

module "runners" {
  source = "../../"

  aws_region = var.aws_region
  vpc_id     = var.vpc_id
  subnet_ids = var.subnet_ids
  prefix     = var.environment
  tags       = { Project = "ProjectX" }

  github_app = {
    id             = var.github_app.id
    key_base64     = var.github_app.key_base64
    webhook_secret = var.github_app.webhook_secret
  }

  lambda_architecture = "arm64"

  enable_organization_runners = true
  runner_extra_labels         = ["ephemeral", "example"]

  # Every job gets a fresh instance that shuts itself down when the job is done. JIT config
  # (the default for ephemeral runners) means no registration token ever reaches the instance.
  enable_ephemeral_runners = true
  enable_jit_config        = true

  # Direct mode: the webhook sends jobs to the queue itself, without the EventBridge bus and
  # the dispatcher of the default mode (one function and one hop less per job).
  eventbridge = { enable = false }

  # No webhook delay: the instance is for this job only, so start it at once.
  delay_webhook_event   = 0
  runners_maximum_count = 20

  # Jobs that cannot start now (maximum reached, no capacity) are retried from the queue and
  # land in the dead-letter queue after 5 receives instead of being lost silently.
  redrive_build_queue = {
    enabled         = true
    maxReceiveCount = 5
  }

  # Spot first, on-demand when spot has no capacity.
  instance_types                              = ["m5.large", "c5.large", "m6i.large"]
  instance_allocation_strategy                = "price-capacity-optimized"
  enable_runner_on_demand_failover_for_errors = ["InsufficientInstanceCapacity"]

  # Jobs may ask for a bigger disk or another instance type with `ghr-ec2-*` labels
  # (docs/dynamic-labels.md), within this policy; a job that asks for more is answered 202.
  enable_dynamic_labels = true
  aws_dynamic_labels_policy = {
    blocked_keys = ["image-id", "subnet-id"]
    restricted_keys = {
      instance-type   = { allowed = ["m5.*", "c5.*", "m6i.*"], denied = ["*.metal"] }
      ebs-volume-size = { max = 200 }
    }
  }

  # Beyond upstream: one prepared, stopped instance waiting. A job starts it in seconds instead
  # of booting a fresh instance (docs/warm-pool.md); it costs its disk while it waits.
  warm_pool = {
    size          = 1
    max_age_hours = 24
  }

  # Ephemeral runners leave after one job; scale-down only clears the ones that never got one.
  minimum_running_time_in_minutes = 10
  scale_down_schedule_expression  = "cron(* * * * ? *)"

  # A job whose runner never took it (a spot reclaim before it started, a failed boot) is
  # checked again after 3 minutes and gets a new runner while it is still queued.
  job_retry = {
    enable           = true
    delay_in_seconds = 180
    max_attempts     = 1
  }

  # Two idle runners waiting during working hours, so that a job starts without waiting for a
  # boot (organization runners only). The pool's runners count toward runners_maximum_count.
  pool_runner_owner = var.pool_organization
  pool_config = var.pool_organization == null ? [] : [{
    schedule_expression          = "cron(*/5 8-18 ? * MON-FRI *)"
    schedule_expression_timezone = "Europe/Amsterdam"
    size                         = 2
  }]

  # Spot interruptions counted on the dashboard, and the runner of every instance that shuts
  # down (a reclaim included) deregistered from GitHub at once instead of left offline.
  instance_termination_watcher = {
    enable = true
  }
  # A job a spot reclaim interrupts is re-run on an on-demand runner (the App needs
  # "Actions: write"; docs/job-rescue.md).
  job_rescue = {
    enable = true
  }
}
