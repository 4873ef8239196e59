data "aws_region" "current" {}

locals {
  region = data.aws_region.current.name
  # Every EMF metric shown or alarmed on, with its dimensions besides `Environment`. These are
  # the metrics the functions emit (common::telemetry::metrics::ALL; a Rust test compares them),
  # and every widget and alarm looks its metric up here, so a name not listed fails the plan.
  emf_metrics = {
    WebhookReceived                  = []
    WebhookAccepted                  = []
    WebhookRejected                  = ["Reason"]
    JobsDispatched                   = []
    JobsNotDispatched                = ["Reason"]
    JobsReceived                     = []
    MalformedMessages                = []
    RunnersRequested                 = []
    RunnersCreated                   = []
    RunnersFailed                    = ["Reason"]
    JobsSkipped                      = ["Reason"]
    JobsRetried                      = []
    GitHubAppRateLimitRemaining      = ["AppId"]
    GitHubRateLimitHits              = ["AppId"]
    RunnersSeen                      = []
    RunnersIdleKept                  = []
    RunnersTerminated                = ["Reason"]
    RunnersSkipped                   = ["Reason"]
    ScaleDownErrors                  = []
    RunnerBinarySync                 = ["Result"]
    PoolRunnersAvailable             = []
    PoolRunnersLaunched              = []
    WarmPoolClaims                   = []
    WarmPoolFallbacks                = ["Reason"]
    WarmPoolReturned                 = []
    WarmPoolClaimToRunnerStart       = []
    WarmPoolReady                    = []
    WarmPoolPreparing                = []
    WarmPoolLaunched                 = []
    WarmPoolRetired                  = ["Reason"]
    RetryJob                         = ["RetryCount"]
    SsmParametersDeleted             = ["Reason"]
    SsmParametersNotDeleted          = []
    DeliveriesFailedSeen             = []
    DeliveriesRedelivered            = []
    DeliveriesGivenUp                = []
    AmisDeregistered                 = []
    AmiSnapshotsDeleted              = []
    AmisNotDeregistered              = []
    SpotInterruptionWarning          = ["InstanceType"]
    SpotTermination                  = ["InstanceType"]
    TerminatedRunnersDeregistered    = []
    TerminatedRunnersBusy            = []
    TerminatedRunnersNotDeregistered = []
    JobsRescued                      = []
    JobsNotRescued                   = ["Reason"]
  }
  # Gauges are read by their lowest value (the pool at its emptiest); the other metrics are counts.
  gauges = ["GitHubAppRateLimitRemaining", "WarmPoolReady", "WarmPoolPreparing"]
  # Timings are read by their median.
  timings   = ["WarmPoolClaimToRunnerStart"]
  functions = { for k, v in var.functions : k => v if v != null }

  # Which `Environment` values emit each metric: the webhook and dispatcher run once for the
  # deployment (`prefix`); scale-up and scale-down once per runner configuration; the syncer
  # once per OS and architecture.
  # Keyed `default` for one configuration (the root module), so that its alarms keep their
  # addresses (see the moved blocks below).
  runner_envs         = var.runner_environments == null ? { default = var.prefix } : { for e in var.runner_environments : e => e }
  syncer_envs         = var.syncer_environments == null ? { default = var.prefix } : { for e in var.syncer_environments : e => e }
  runner_environments = values(local.runner_envs)
  syncer_environments = values(local.syncer_envs)
  shared_metrics      = ["WebhookReceived", "WebhookAccepted", "WebhookRejected", "JobsDispatched", "JobsNotDispatched", "DeliveriesFailedSeen", "DeliveriesRedelivered", "DeliveriesGivenUp", "AmisDeregistered", "AmiSnapshotsDeleted", "AmisNotDeregistered", "SpotInterruptionWarning", "SpotTermination", "TerminatedRunnersDeregistered", "TerminatedRunnersBusy", "TerminatedRunnersNotDeregistered", "JobsRescued", "JobsNotRescued"]
  metric_environments = { for name, dims in local.emf_metrics : name => (
    contains(local.shared_metrics, name) ? [var.prefix] : name == "RunnerBinarySync" ? local.syncer_environments : local.runner_environments
  ) }
  # A row's label names its configuration when there are several.
  label = { for env in distinct(concat([var.prefix], local.runner_environments, local.syncer_environments)) :
    env => env == var.prefix ? "" : " ${trimprefix(env, "${var.prefix}-")}"
  }

  # Each metric as dashboard rows (JSON), one per environment: plain when it has no extra
  # dimension, else a SEARCH over every value of it. CloudWatch wants every row to be an array,
  # so an expression is an array holding one object; SEARCH's schema quotes the namespace (ours
  # has a space) and the dimension names, or the search matches nothing.
  emf_rows = { for name, dims in local.emf_metrics : name => [for i, env in local.metric_environments[name] : length(dims) == 0
    ? jsonencode([var.namespace, name, "Environment", env, merge({ label = "${name}${local.label[env]}" }, contains(local.gauges, name) ? { stat = "Minimum" } : {}, contains(local.timings, name) ? { stat = "p50" } : {})])
    : jsonencode([{
      expression = "SEARCH('{${join(",", [for d in concat([var.namespace, "Environment"], dims) : "\"${d}\""])}} MetricName=\"${name}\" Environment=\"${env}\"', '${contains(local.gauges, name) ? "Minimum" : "Sum"}', 300)"
      label      = "${name}${local.label[env]}"
      id         = "${lower(name)}${i}"
    }])
  ] }
  widget = { for title, names in {
    "Webhook deliveries"             = ["WebhookReceived", "WebhookAccepted", "WebhookRejected"]
    "Dispatcher (EventBridge mode)"  = ["JobsDispatched", "JobsNotDispatched"]
    "Jobs and runners (scale-up)"    = ["JobsReceived", "RunnersRequested", "RunnersCreated", "JobsRetried", "MalformedMessages"]
    "Runners not created, by reason" = ["RunnersFailed", "JobsSkipped"]
    "GitHub App rate limit left"     = ["GitHubAppRateLimitRemaining", "GitHubRateLimitHits"]
    "Scale-down"                     = ["RunnersSeen", "RunnersIdleKept", "RunnersTerminated", "RunnersSkipped", "ScaleDownErrors"]
    "Runner binary sync"             = ["RunnerBinarySync"]
    "Pool and job retry"             = ["PoolRunnersAvailable", "PoolRunnersLaunched", "RetryJob"]
    "Warm pool"                      = ["WarmPoolReady", "WarmPoolPreparing", "WarmPoolLaunched", "WarmPoolRetired", "WarmPoolClaims", "WarmPoolFallbacks", "WarmPoolReturned", "WarmPoolClaimToRunnerStart"]
    "SSM housekeeper"                = ["SsmParametersDeleted", "SsmParametersNotDeleted"]
    "Webhook redelivery"             = ["DeliveriesFailedSeen", "DeliveriesRedelivered", "DeliveriesGivenUp"]
    "AMI housekeeper"                = ["AmisDeregistered", "AmiSnapshotsDeleted", "AmisNotDeregistered"]
    "Spot interruptions"             = ["SpotInterruptionWarning", "SpotTermination", "TerminatedRunnersDeregistered", "TerminatedRunnersBusy", "TerminatedRunnersNotDeregistered", "JobsRescued", "JobsNotRescued"]
  } : title => concat([for n in names : [for row in local.emf_rows[n] : jsondecode(row)]]...) } # not flatten: rows are lists

  # The build queues: one per runner configuration.
  queues = var.build_queues != null ? var.build_queues : {
    default = { name = var.build_queue_name, dead_letter_queue_name = var.dead_letter_queue_name, dead_letter = var.enable_dead_letter_alarm }
  }
  queue_label = { for k, q in local.queues : k => var.build_queues == null ? "" : " ${k}" }
  queue_alarm = { for k, q in local.queues : k => var.build_queues == null ? var.prefix : "${var.prefix}-${k}" }
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${var.prefix}-github-runners"
  dashboard_body = jsonencode({
    widgets = concat(
      [for i, title in keys(local.widget) : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = title
          region  = local.region
          stat    = title == "GitHub App rate limit left" ? "Minimum" : "Sum"
          period  = 300
          metrics = local.widget[title]
        }
      }],
      [
        {
          type = "metric", x = 0, y = ceil(length(local.widget) / 2) * 6, width = 12, height = 6
          properties = {
            title = "Function errors and throttles", region = local.region, stat = "Sum", period = 300
            # concat, not flatten: flatten would also flatten the rows themselves.
            metrics = concat(
              [for k, f in local.functions : ["AWS/Lambda", "Errors", "FunctionName", f, { label = "${k} errors" }]],
              [for k, f in local.functions : ["AWS/Lambda", "Throttles", "FunctionName", f, { label = "${k} throttles" }]],
            )
          }
        },
        {
          type = "metric", x = 12, y = ceil(length(local.widget) / 2) * 6, width = 12, height = 6
          properties = {
            title = "Build queue", region = local.region, period = 60
            metrics = concat(
              [for k, q in local.queues : ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q.name, { stat = "Maximum", label = "oldest job (s)${local.queue_label[k]}" }]],
              [for k, q in local.queues : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q.name, { stat = "Maximum", label = "jobs waiting${local.queue_label[k]}" }]],
              [for k, q in local.queues : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q.dead_letter_queue_name, { stat = "Maximum", label = "dead letters${local.queue_label[k]}" }] if q.dead_letter],
              [for q in var.dispatcher_dead_letter_queue.enabled ? [var.dispatcher_dead_letter_queue.name] : [] : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q, { stat = "Maximum", label = "dispatcher dead letters" }]]
            )
          }
        },
      ]
    )
  })
}

################################################################################
# Alarms
################################################################################

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = local.functions
  alarm_name          = "${var.prefix}-${each.key}-errors"
  alarm_description   = "The ${each.key} function failed."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  for_each            = local.functions
  alarm_name          = "${var.prefix}-${each.key}-throttles"
  alarm_description   = "The ${each.key} function was throttled."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  # A flag known at plan time: the queue's name is not known before the queue exists.
  for_each            = { for k, q in local.queues : k => q if q.dead_letter }
  alarm_name          = "${local.queue_alarm[each.key]}-dead-letter-jobs"
  alarm_description   = "Jobs gave up in the dead-letter queue: they got no runner."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.dead_letter_queue_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dispatcher_dead_letters" {
  count               = var.dispatcher_dead_letter_queue.enabled ? 1 : 0
  alarm_name          = "${var.prefix}-dispatcher-dead-letters"
  alarm_description   = "Queued-job events the dispatcher could not route after EventBridge's retries: their jobs got no runner (redeliver them from the bus archive or GitHub)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.dispatcher_dead_letter_queue.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "deregister_retry_dead_letters" {
  count               = var.deregister_retry_dead_letter_queue.enabled ? 1 : 0
  alarm_name          = "${var.prefix}-deregister-retry-dead-letters"
  alarm_description   = "The termination watcher failed three times to deregister a terminated instance's runner (GitHub errors): scale-down removes it once it is an offline ghost; the message says which."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.deregister_retry_dead_letter_queue.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_job" {
  for_each            = local.queues
  alarm_name          = "${local.queue_alarm[each.key]}-oldest-queued-job"
  alarm_description   = "A job has waited in the build queue for more than ${var.thresholds.oldest_job_seconds} s."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.thresholds.oldest_job_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "runners_not_created" {
  for_each            = local.runner_envs
  alarm_name          = "${each.value}-runners-not-created"
  alarm_description   = "Scale-up asked EC2 for more runners than it created (capacity, throttling or GitHub errors)."
  evaluation_periods  = 1
  threshold           = var.thresholds.runners_not_created
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
  metric_query {
    id          = "missing"
    expression  = "requested - created"
    label       = "runners requested but not created"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = { requested = "RunnersRequested", created = "RunnersCreated" }
    content {
      id = metric_query.key
      metric {
        namespace   = var.namespace
        metric_name = metric_query.value
        dimensions  = { Environment = each.value }
        stat        = "Sum"
        period      = 900
      }
    }
  }
  lifecycle {
    precondition {
      condition     = contains(keys(local.emf_metrics), "RunnersRequested") && contains(keys(local.emf_metrics), "RunnersCreated")
      error_message = "The alarm's metrics must be in the EMF catalogue."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "scale_down_errors" {
  for_each            = local.runner_envs
  alarm_name          = "${each.value}-scale-down-errors"
  alarm_description   = "Scale-down could not read or change some owners' runners for 15 minutes; their runners are kept."
  namespace           = var.namespace
  metric_name         = "ScaleDownErrors"
  dimensions          = { Environment = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
  lifecycle {
    precondition {
      condition     = contains(keys(local.emf_metrics), "ScaleDownErrors")
      error_message = "The alarm's metric must be in the EMF catalogue."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "webhook_queue_errors" {
  alarm_name          = "${var.prefix}-webhook-queue-errors"
  alarm_description   = "The webhook could not queue jobs (GitHub shows failed deliveries to redeliver)."
  namespace           = var.namespace
  metric_name         = "WebhookRejected"
  dimensions          = { Environment = var.prefix, Reason = "queue_error" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
  lifecycle {
    precondition {
      condition     = contains(local.emf_metrics["WebhookRejected"], "Reason")
      error_message = "The alarm's metric and dimension must be in the EMF catalogue."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "sync_failed" {
  # Only where a syncer is deployed (its function is known at plan time).
  for_each            = length([for k in keys(local.functions) : k if endswith(k, "syncer")]) == 0 ? {} : local.syncer_envs
  alarm_name          = "${each.value}-runner-binary-sync-failed"
  alarm_description   = "The runner binary could not be mirrored to S3 (the previous version stays in use)."
  namespace           = var.namespace
  metric_name         = "RunnerBinarySync"
  dimensions          = { Environment = each.value, Result = "failed" }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 3
  threshold           = 2
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
  lifecycle {
    precondition {
      condition     = contains(local.emf_metrics["RunnerBinarySync"], "Result")
      error_message = "The alarm's metric and dimension must be in the EMF catalogue."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "deliveries_given_up" {
  # Only where the redelivery function is deployed (its name is known at plan time).
  count               = contains(keys(local.functions), "redelivery") ? 1 : 0
  alarm_name          = "${var.prefix}-webhook-deliveries-given-up"
  alarm_description   = "Webhook deliveries still failed after every redelivery: their jobs may have no runner (see the redelivery function's log for the GUIDs)."
  namespace           = var.namespace
  metric_name         = "DeliveriesGivenUp"
  dimensions          = { Environment = var.prefix }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
  lifecycle {
    precondition {
      condition     = contains(keys(local.emf_metrics), "DeliveriesGivenUp")
      error_message = "The alarm's metric must be in the EMF catalogue."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "rate_limit" {
  # Per App and per runner configuration: each scale-up reports the limit under its own Environment.
  for_each = var.runner_environments == null ? { for app in var.github_app_ids : app => { environment = var.prefix, app = app } } : {
    for pair in setproduct(var.runner_environments, var.github_app_ids) : "${pair[0]}/${pair[1]}" => { environment = pair[0], app = pair[1] }
  }
  alarm_name          = "${each.value.environment}-github-app-${each.value.app}-rate-limit"
  alarm_description   = "GitHub App ${each.value.app} has fewer than ${var.thresholds.rate_limit_remaining} API requests left this hour."
  namespace           = var.namespace
  metric_name         = "GitHubAppRateLimitRemaining"
  dimensions          = { Environment = each.value.environment, AppId = each.value.app }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.thresholds.rate_limit_remaining
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
  lifecycle {
    precondition {
      condition     = contains(local.emf_metrics["GitHubAppRateLimitRemaining"], "AppId")
      error_message = "The alarm's metric and dimension must be in the EMF catalogue."
    }
  }
}

# The alarms of one configuration were single resources (or counted) before several
# configurations shared the module: keep them where they were.
moved {
  from = aws_cloudwatch_metric_alarm.oldest_job
  to   = aws_cloudwatch_metric_alarm.oldest_job["default"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dead_letters[0]
  to   = aws_cloudwatch_metric_alarm.dead_letters["default"]
}

moved {
  from = aws_cloudwatch_metric_alarm.runners_not_created
  to   = aws_cloudwatch_metric_alarm.runners_not_created["default"]
}

moved {
  from = aws_cloudwatch_metric_alarm.scale_down_errors
  to   = aws_cloudwatch_metric_alarm.scale_down_errors["default"]
}

moved {
  from = aws_cloudwatch_metric_alarm.sync_failed[0]
  to   = aws_cloudwatch_metric_alarm.sync_failed["default"]
}
