data "aws_region" "current" {}

locals {
  region = data.aws_region.current.name
  # Every EMF metric shown or alarmed on, with its dimensions besides `Environment`. These are
  # the metrics the functions emit (common::telemetry::metrics::ALL; a Rust test compares them),
  # and every widget and alarm looks its metric up here, so a name not listed fails the plan.
  emf_metrics = {
    WebhookReceived             = []
    WebhookAccepted             = []
    WebhookRejected             = ["Reason"]
    JobsDispatched              = []
    JobsNotDispatched           = ["Reason"]
    JobsReceived                = []
    MalformedMessages           = []
    RunnersRequested            = []
    RunnersCreated              = []
    RunnersFailed               = ["Reason"]
    JobsSkipped                 = ["Reason"]
    JobsRetried                 = []
    GitHubAppRateLimitRemaining = ["AppId"]
    GitHubRateLimitHits         = ["AppId"]
    RunnersSeen                 = []
    RunnersIdleKept             = []
    RunnersTerminated           = ["Reason"]
    RunnersSkipped              = ["Reason"]
    ScaleDownErrors             = []
    RunnerBinarySync            = ["Result"]
  }
  # Gauges are read by their lowest value; the other metrics are counts.
  gauges    = ["GitHubAppRateLimitRemaining"]
  functions = { for k, v in var.functions : k => v if v != null }

  # Each metric as a dashboard row (JSON): plain when it has no extra dimension, else a SEARCH
  # over every value of it. CloudWatch wants every row to be an array, so an expression is an
  # array holding one object; SEARCH's schema quotes the namespace (ours has a space) and the
  # dimension names, or the search matches nothing.
  emf_rows = merge(
    { for name, dims in local.emf_metrics : name => jsonencode([var.namespace, name, "Environment", var.prefix, { label = name }]) if length(dims) == 0 },
    { for name, dims in local.emf_metrics : name => jsonencode([{
      expression = "SEARCH('{${join(",", [for d in concat([var.namespace, "Environment"], dims) : "\"${d}\""])}} MetricName=\"${name}\" Environment=\"${var.prefix}\"', '${contains(local.gauges, name) ? "Minimum" : "Sum"}', 300)"
      label      = name
      id         = lower(name)
    }]) if length(dims) > 0 },
  )
  widget = { for title, names in {
    "Webhook deliveries"             = ["WebhookReceived", "WebhookAccepted", "WebhookRejected"]
    "Dispatcher (EventBridge mode)"  = ["JobsDispatched", "JobsNotDispatched"]
    "Jobs and runners (scale-up)"    = ["JobsReceived", "RunnersRequested", "RunnersCreated", "JobsRetried", "MalformedMessages"]
    "Runners not created, by reason" = ["RunnersFailed", "JobsSkipped"]
    "GitHub App rate limit left"     = ["GitHubAppRateLimitRemaining", "GitHubRateLimitHits"]
    "Scale-down"                     = ["RunnersSeen", "RunnersIdleKept", "RunnersTerminated", "RunnersSkipped", "ScaleDownErrors"]
    "Runner binary sync"             = ["RunnerBinarySync"]
  } : title => [for n in names : jsondecode(local.emf_rows[n])] }
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
          type = "metric", x = 0, y = 18, width = 12, height = 6
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
          type = "metric", x = 12, y = 18, width = 12, height = 6
          properties = {
            title = "Build queue", region = local.region, period = 60
            metrics = concat(
              [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.build_queue_name, { stat = "Maximum", label = "oldest job (s)" }],
              ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.build_queue_name, { stat = "Maximum", label = "jobs waiting" }]],
              !var.enable_dead_letter_alarm ? [] : [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.dead_letter_queue_name, { stat = "Maximum", label = "dead letters" }]]
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
  count               = var.enable_dead_letter_alarm ? 1 : 0
  alarm_name          = "${var.prefix}-dead-letter-jobs"
  alarm_description   = "Jobs gave up in the dead-letter queue: they got no runner."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.dead_letter_queue_name }
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
  alarm_name          = "${var.prefix}-oldest-queued-job"
  alarm_description   = "A job has waited in the build queue for more than ${var.thresholds.oldest_job_seconds} s."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = var.build_queue_name }
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
  alarm_name          = "${var.prefix}-runners-not-created"
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
        dimensions  = { Environment = var.prefix }
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
  alarm_name          = "${var.prefix}-scale-down-errors"
  alarm_description   = "Scale-down could not read or change some owners' runners for 15 minutes; their runners are kept."
  namespace           = var.namespace
  metric_name         = "ScaleDownErrors"
  dimensions          = { Environment = var.prefix }
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
  count               = lookup(var.functions, "syncer", null) == null ? 0 : 1
  alarm_name          = "${var.prefix}-runner-binary-sync-failed"
  alarm_description   = "The runner binary could not be mirrored to S3 (the previous version stays in use)."
  namespace           = var.namespace
  metric_name         = "RunnerBinarySync"
  dimensions          = { Environment = var.prefix, Result = "failed" }
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

resource "aws_cloudwatch_metric_alarm" "rate_limit" {
  for_each            = toset(var.github_app_ids)
  alarm_name          = "${var.prefix}-github-app-${each.value}-rate-limit"
  alarm_description   = "GitHub App ${each.value} has fewer than ${var.thresholds.rate_limit_remaining} API requests left this hour."
  namespace           = var.namespace
  metric_name         = "GitHubAppRateLimitRemaining"
  dimensions          = { Environment = var.prefix, AppId = each.value }
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
