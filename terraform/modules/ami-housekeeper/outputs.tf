output "lambda" {
  description = "The AMI housekeeper function (`function`, `log_group`, `role`) and its schedule rule."
  value = {
    function  = module.function.function
    log_group = module.function.log_group
    role      = module.function.role
    rule      = aws_cloudwatch_event_rule.schedule
  }
}
