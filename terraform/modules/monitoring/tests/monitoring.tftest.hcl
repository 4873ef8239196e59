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
    condition     = length(aws_cloudwatch_metric_alarm.dead_letters) == 1 && aws_cloudwatch_metric_alarm.dead_letters["default"].dimensions.QueueName == "test-queued-builds_dead_letter"
    error_message = "Dead letters alarm when there is a dead-letter queue."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.oldest_job["default"].threshold == 900 && aws_cloudwatch_metric_alarm.oldest_job["default"].dimensions.QueueName == "test-queued-builds"
    error_message = "A job waiting more than 15 minutes alarms."
  }
  assert {
    condition     = keys(aws_cloudwatch_metric_alarm.rate_limit) == ["1234", "5678"] && aws_cloudwatch_metric_alarm.rate_limit["1234"].dimensions == tomap({ Environment = "test", AppId = "1234" })
    error_message = "One rate-limit alarm per App, on the metric's AppId dimension."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.webhook_queue_errors.alarm_actions == toset(var.alarm_actions) && aws_cloudwatch_metric_alarm.scale_down_errors["default"].namespace == var.namespace
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

run "several_runner_configurations" {
  command = plan
  variables {
    functions = {
      webhook              = "test-webhook"
      dispatcher           = "test-dispatcher"
      "x64-scale_up"       = "test-x64-scale-up"
      "x64-scale_down"     = "test-x64-scale-down"
      "arm64-scale_up"     = "test-arm64-scale-up"
      "arm64-scale_down"   = "test-arm64-scale-down"
      "linux-x64-syncer"   = "test-linux-x64-syncer"
      "linux-arm64-syncer" = "test-linux-arm64-syncer"
    }
    build_queue_name         = null
    enable_dead_letter_alarm = false
    dead_letter_queue_name   = null
    build_queues = {
      x64   = { name = "test-x64-queued-builds", dead_letter = false }
      arm64 = { name = "test-arm64-queued-builds", dead_letter_queue_name = "test-arm64-queued-builds_dead_letter", dead_letter = true }
    }
    runner_environments = ["test-x64", "test-arm64"]
    syncer_environments = ["test-linux-x64", "test-linux-arm64"]
    github_app_ids      = ["1234"]
  }
  assert {
    condition     = toset([for a in aws_cloudwatch_metric_alarm.oldest_job : a.alarm_name]) == toset(["test-x64-oldest-queued-job", "test-arm64-oldest-queued-job"]) && aws_cloudwatch_metric_alarm.oldest_job["arm64"].dimensions.QueueName == "test-arm64-queued-builds"
    error_message = "Each configuration's queue has its own oldest-job alarm."
  }
  assert {
    condition     = keys(aws_cloudwatch_metric_alarm.dead_letters) == ["arm64"] && aws_cloudwatch_metric_alarm.dead_letters["arm64"].alarm_name == "test-arm64-dead-letter-jobs"
    error_message = "Dead letters alarm only where a configuration has a dead-letter queue."
  }
  assert {
    condition     = toset([for a in aws_cloudwatch_metric_alarm.scale_down_errors : a.dimensions.Environment]) == toset(["test-x64", "test-arm64"]) && toset([for a in aws_cloudwatch_metric_alarm.rate_limit : a.alarm_name]) == toset(["test-x64-github-app-1234-rate-limit", "test-arm64-github-app-1234-rate-limit"])
    error_message = "Scale-down and rate-limit alarms per configuration, on its Environment."
  }
  assert {
    condition     = toset([for a in aws_cloudwatch_metric_alarm.sync_failed : a.dimensions.Environment]) == toset(["test-linux-x64", "test-linux-arm64"])
    error_message = "A sync alarm per syncer."
  }
  assert {
    condition     = length(toset([for a in merge(aws_cloudwatch_metric_alarm.function_errors, aws_cloudwatch_metric_alarm.scale_down_errors) : a.alarm_name])) == length(aws_cloudwatch_metric_alarm.function_errors) + length(aws_cloudwatch_metric_alarm.scale_down_errors)
    error_message = "No two alarms share a name (a function's error alarm and a configuration's scale-down alarm)."
  }
}

run "eventbridge_mode_alarms_on_the_dispatchers_dead_letters" {
  command = plan
  variables {
    dispatcher_dead_letter_queue = { enabled = true, name = "test-dispatcher-dead-letters" }
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.dispatcher_dead_letters) == 1 && aws_cloudwatch_metric_alarm.dispatcher_dead_letters[0].dimensions.QueueName == "test-dispatcher-dead-letters"
    error_message = "Events the dispatcher could not route alarm."
  }
}
