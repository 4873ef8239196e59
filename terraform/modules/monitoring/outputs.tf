output "dashboard_url" {
  description = "The CloudWatch dashboard."
  value       = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards:name=${aws_cloudwatch_dashboard.this.dashboard_name}"
}

output "alarms" {
  description = "Names of the alarms."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.function_errors : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.function_throttles : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.dead_letters : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.dispatcher_dead_letters : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.oldest_job : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.runners_not_created : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.scale_down_errors : a.alarm_name],
    [aws_cloudwatch_metric_alarm.webhook_queue_errors.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.sync_failed : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.rate_limit : a.alarm_name],
  )
}
