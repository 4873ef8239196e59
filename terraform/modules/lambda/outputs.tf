output "function" {
  description = "The Lambda function: name (and `function_name`, as the resource names it), arn, invoke_arn, runtime, handler, architectures, environment (its variables), tracing_mode."
  value = {
    name          = aws_lambda_function.this.function_name
    function_name = aws_lambda_function.this.function_name
    arn           = aws_lambda_function.this.arn
    invoke_arn    = aws_lambda_function.this.invoke_arn
    runtime       = aws_lambda_function.this.runtime
    handler       = aws_lambda_function.this.handler
    architectures = aws_lambda_function.this.architectures
    environment   = aws_lambda_function.this.environment[0].variables
    tracing_mode  = aws_lambda_function.this.tracing_config[0].mode
  }
}

output "role" {
  description = "The function's IAM role: name, arn (attach the function's own policies to it)."
  value = {
    name = aws_iam_role.this.name
    arn  = aws_iam_role.this.arn
  }
}

output "log_group" {
  description = "The function's CloudWatch log group: name, arn."
  value = {
    name = aws_cloudwatch_log_group.this.name
    arn  = aws_cloudwatch_log_group.this.arn
  }
}
