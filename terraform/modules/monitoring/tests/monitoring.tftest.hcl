# Dashboard and alarms over the functions' EMF metrics and Lambda/SQS metrics.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
}

variables {
  prefix    = "test"
  namespace = "GitHub Runners"
  functions = {
    webhook    = "test-webhook"
    scale_up   = "test-scale-up"
    scale_down = "test-scale-down"
    syncer     = "test-syncer"
  }
  build_queue_name         = "test-queued-builds"
  enable_dead_letter_alarm = true
  dead_letter_queue_name   = "test-queued-builds_dead_letter"
  github_app_ids           = ["1234", "5678"]
  alarm_actions            = ["arn:aws:sns:eu-west-1:123456789012:alerts"]
}

run "everything_on" {
  command = apply

  assert {
    condition = toset(compact(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : [for m in w.properties.metrics :
      try(regex("MetricName=\"([A-Za-z]+)\"", m[0].expression)[0], m[0] == var.namespace ? m[1] : "")]
    ]))) == toset(keys(local.emf_metrics))
    error_message = "The dashboard shows every EMF metric of the catalogue, and only those."
  }
  assert {
    condition     = alltrue([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : w.properties.region == "eu-west-1"])
    error_message = "Widgets show the deployment's region."
  }
  assert {
    condition = alltrue(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : [for m in w.properties.metrics :
    can(m[0].expression) ? length(m) == 1 : (can(tostring(m[0])) && can(tostring(m[1])))]]))
    error_message = "Every dashboard row is an array: a metric, or one expression object (CloudWatch rejects anything else)."
  }
  assert {
    condition     = strcontains(one(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : [for m in w.properties.metrics : m[0].expression if can(m[0].expression) && strcontains(try(m[0].expression, ""), "GitHubAppRateLimitRemaining")]])), "'Minimum'")
    error_message = "The rate limit left is shown by its minimum, not summed over Apps' reports."
  }
  assert {
    condition = length([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : w if w.properties.title == "Function errors and throttles" &&
    length(w.properties.metrics) == 8]) == 1
    error_message = "Errors and throttles of each of the four functions."
  }
  assert {
    condition     = keys(aws_cloudwatch_metric_alarm.function_errors) == ["scale_down", "scale_up", "syncer", "webhook"] && aws_cloudwatch_metric_alarm.function_errors["scale_up"].dimensions.FunctionName == "test-scale-up"
    error_message = "Every function has an error alarm on its own name."
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.dead_letters) == 1 && aws_cloudwatch_metric_alarm.dead_letters[0].dimensions.QueueName == "test-queued-builds_dead_letter"
    error_message = "Dead letters alarm when there is a dead-letter queue."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.oldest_job.threshold == 900 && aws_cloudwatch_metric_alarm.oldest_job.dimensions.QueueName == "test-queued-builds"
    error_message = "A job waiting more than 15 minutes alarms."
  }
  assert {
    condition     = keys(aws_cloudwatch_metric_alarm.rate_limit) == ["1234", "5678"] && aws_cloudwatch_metric_alarm.rate_limit["1234"].dimensions == tomap({ Environment = "test", AppId = "1234" })
    error_message = "One rate-limit alarm per App, on the metric's AppId dimension."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.webhook_queue_errors.alarm_actions == toset(var.alarm_actions) && aws_cloudwatch_metric_alarm.scale_down_errors.namespace == var.namespace
    error_message = "Alarms notify the given actions; EMF alarms use the metrics namespace."
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.sync_failed) == 1
    error_message = "Failed syncs alarm when the syncer is deployed."
  }
}

run "without_syncer_and_dead_letters" {
  command = plan
  variables {
    functions                = { webhook = "test-webhook", scale_up = "test-scale-up", scale_down = "test-scale-down", syncer = null }
    enable_dead_letter_alarm = false
    dead_letter_queue_name   = null
    github_app_ids           = []
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.sync_failed) == 0 && length(aws_cloudwatch_metric_alarm.dead_letters) == 0 && length(aws_cloudwatch_metric_alarm.rate_limit) == 0
    error_message = "Alarms follow the deployed parts."
  }
  assert {
    condition     = !contains(keys(aws_cloudwatch_metric_alarm.function_errors), "syncer")
    error_message = "No alarm for a function that is not deployed."
  }
}
