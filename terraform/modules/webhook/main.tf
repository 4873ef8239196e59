################################################################################
# Matcher config in SSM (chunked to fit the tier)
################################################################################

locals {
  ordered_keys = [for k in sort([for key, m in var.runner_matcher_config : format("%03d-%s", m.matcherConfig.priority, key)]) : substr(k, 4, -1)]
  matchers = [for key in local.ordered_keys : {
    id              = var.runner_matcher_config[key].id
    arn             = var.runner_matcher_config[key].arn
    fifo            = var.runner_matcher_config[key].fifo
    key             = key
    computeProvider = "ec2"
    matcherConfig   = var.runner_matcher_config[key].matcherConfig
  }]
  matcher_json = jsonencode(local.matchers)
  # Queue URLs and ARNs are unknown at plan time: size the chunks for the longest they can be.
  worst_case = jsonencode([for m in local.matchers : merge(m, { id = join("", [for i in range(135) : "x"]), arn = join("", [for i in range(127) : "x"]) })])
  chunk_size = var.matcher_config_parameter_store_tier == "Advanced" ? 8000 : 4000
  chunks     = ceil(length(local.worst_case) / local.chunk_size)
  part       = ceil(length(local.matcher_json) / local.chunks)
}

resource "aws_ssm_parameter" "runner_matcher_config" {
  #checkov:skip=CKV2_AWS_34:Not a secret: queue URLs and label sets.
  count = local.chunks
  name  = local.chunks == 1 ? "${var.ssm_path}/runner-matcher-config" : "${var.ssm_path}/runner-matcher-config-${count.index}"
  type  = "String"
  tier  = var.matcher_config_parameter_store_tier
  value = substr(local.matcher_json, count.index * local.part, local.part)
  tags  = var.tags
}

################################################################################
# The function
################################################################################

module "lambda" {
  source = "../lambda"
  lambda = merge(var.lambda, {
    name = "webhook"
    environment_variables = {
      PARAMETER_GITHUB_APP_WEBHOOK_SECRET  = var.webhook_secret_parameter.name
      PARAMETER_RUNNER_MATCHER_CONFIG_PATH = join(":", aws_ssm_parameter.runner_matcher_config[*].name)
      PARAMETER_RUNNER_MATCHER_VERSION     = join(":", aws_ssm_parameter.runner_matcher_config[*].version)
      REPOSITORY_ALLOW_LIST                = jsonencode(var.repository_white_list)
      QUEUE_SELECTION_STRATEGY             = var.queue_selection_strategy
      # EventBridge mode publishes on this bus (ACCEPT_EVENTS filters what); empty is direct mode.
      EVENT_BUS_NAME = local.eventbridge ? aws_cloudwatch_event_bus.runners[0].name : ""
      ACCEPT_EVENTS  = jsonencode(var.eventbridge.accept_events)
    }
  })
}

resource "aws_iam_role_policy" "webhook" {
  name = "webhook"
  role = module.lambda.role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        local.eventbridge ? {
          Sid      = "PublishDeliveries"
          Effect   = "Allow"
          Action   = ["events:PutEvents"]
          Resource = [aws_cloudwatch_event_bus.runners[0].arn]
          } : {
          Sid      = "SendJobs"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage"]
          Resource = [for m in var.runner_matcher_config : m.arn]
        },
        {
          Sid    = "ReadParameters"
          Effect = "Allow"
          Action = ["ssm:GetParameters"]
          # EventBridge mode reads only the secret: the dispatcher routes.
          Resource = local.eventbridge ? [var.webhook_secret_parameter.arn] : concat([var.webhook_secret_parameter.arn], aws_ssm_parameter.runner_matcher_config[*].arn)
        },
      ],
      var.kms_key_arn == null ? [] : [{
        Sid      = "Keys"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [var.kms_key_arn]
      }]
    )
  })
}

################################################################################
# The endpoint: API Gateway HTTP API `POST /webhook`, optionally a function URL
################################################################################

resource "aws_apigatewayv2_api" "webhook" {
  name          = "${var.prefix}-github-action-webhook"
  protocol_type = "HTTP"
  tags          = var.tags
}

resource "aws_apigatewayv2_integration" "webhook" {
  api_id                 = aws_apigatewayv2_api.webhook.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = module.lambda.function.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "webhook" {
  #checkov:skip=CKV_AWS_309:GitHub authenticates deliveries with an HMAC signature that the function verifies (constant time); API Gateway authorizers cannot check it.
  api_id    = aws_apigatewayv2_api.webhook.id
  route_key = "POST /webhook"
  target    = "integrations/${aws_apigatewayv2_integration.webhook.id}"
  lifecycle {
    # Users may attach their own authorizer.
    ignore_changes = [authorization_type, authorizer_id]
  }
}

resource "aws_apigatewayv2_stage" "webhook" {
  #checkov:skip=CKV_AWS_76:Access logs are optional (webhook_lambda_apigateway_access_log_settings); every delivery is logged by the function with its delivery id.
  api_id      = aws_apigatewayv2_api.webhook.id
  name        = "$default"
  auto_deploy = true
  tags        = var.tags
  dynamic "access_log_settings" {
    for_each = var.apigateway_access_log_settings == null ? [] : [var.apigateway_access_log_settings]
    content {
      destination_arn = access_log_settings.value.destination_arn
      format          = access_log_settings.value.format
    }
  }
}

resource "aws_lambda_permission" "api_gateway" {
  statement_id  = "AllowApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = module.lambda.function.name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.webhook.execution_arn}/*/*/webhook"
}

resource "aws_lambda_function_url" "webhook" {
  #checkov:skip=CKV_AWS_258:GitHub cannot sign requests with AWS credentials; the function verifies GitHub's HMAC signature instead.
  count              = var.enable_function_url ? 1 : 0
  function_name      = module.lambda.function.name
  authorization_type = "NONE"
}
