################################################################################
# Runner instance role: its own token, its own tags, its own termination
################################################################################

data "aws_iam_policy_document" "runner_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "runner" {
  name                 = "${substr("${var.prefix}-runner", 0, 54)}-${substr(md5("${var.prefix}-runner"), 0, 8)}"
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.runner_assume.json
  tags                 = var.tags
}

resource "aws_iam_instance_profile" "runner" {
  name = "${var.prefix}-runner-profile"
  path = var.instance_profile_path
  role = aws_iam_role.runner.name
  tags = var.tags
}

locals {
  parameter_arn    = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter"
  config_path_arns = ["${local.parameter_arn}${local.config_path}", "${local.parameter_arn}${local.config_path}/*"]
  # Secrets no runner ever reads, whatever else the role is given (Session Manager, CloudWatch
  # agent, `runner_iam_role_managed_policy_arns`): the App's id, key and installation ids, the
  # webhook secret, and everything under the App path.
  app_secret_arns = distinct(concat(var.secret_parameter_arns, ["${local.parameter_arn}${var.app_parameter_path}", "${local.parameter_arn}${var.app_parameter_path}/*"]))
  parameter_reads = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory", "ssm:GetParametersByPath"]
  # A by-path read of any ancestor of the secrets or the tokens would return them too: those
  # paths (and the root) are denied to by-path reads; a user's own unrelated paths are not.
  guarded_paths = concat([var.app_parameter_path, local.token_path], [for arn in var.secret_parameter_arns : regex("parameter(/.*)$", arn)[0]])
  guarded_ancestors = distinct(flatten([for p in local.guarded_paths : [
    for i in range(1, length(split("/", p))) : join("/", slice(split("/", p), 0, i + 1))
  ]]))
  by_path_denied = concat(["${local.parameter_arn}/"], [for p in local.guarded_ancestors : "${local.parameter_arn}${p}"], ["${local.parameter_arn}${local.token_path}/*"])
}

resource "aws_iam_role_policy" "runner" {
  name = "runner"
  role = aws_iam_role.runner.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          # An instance reads and deletes only the token parameter tagged with its own id.
          Sid      = "OwnToken"
          Effect   = "Allow"
          Action   = ["ssm:GetParameter", "ssm:DeleteParameter"]
          Resource = "${local.parameter_arn}${local.token_path}/*"
          Condition = {
            StringLike = { "ec2:SourceInstanceARN" = "*/$${aws:ResourceTag/InstanceId}" }
          }
        },
        {
          Sid      = "Config"
          Effect   = "Allow"
          Action   = ["ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"]
          Resource = local.config_path_arns
        },
        {
          # Explicit denies win over any allow the role gets elsewhere (managed policies).
          Sid      = "NoAppSecrets"
          Effect   = "Deny"
          Action   = local.parameter_reads
          Resource = local.app_secret_arns
        },
        {
          Sid      = "NoOtherTokens"
          Effect   = "Deny"
          Action   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory"]
          Resource = "${local.parameter_arn}${local.token_path}/*"
          Condition = {
            StringNotLike = { "ec2:SourceInstanceARN" = "*/$${aws:ResourceTag/InstanceId}" }
          }
        },
        {
          Sid      = "NoReadsByPathAboveSecrets"
          Effect   = "Deny"
          Action   = ["ssm:GetParametersByPath"]
          Resource = local.by_path_denied
        },
        {
          # Its runner id, and the job markers that keep scale-down from killing a busy runner.
          Sid      = "OwnTags"
          Effect   = "Allow"
          Action   = ["ec2:CreateTags"]
          Resource = "${local.ec2_arn}:instance/*"
          Condition = {
            StringEquals                = { "aws:ARN" = "$${ec2:SourceInstanceARN}" }
            "ForAllValues:StringEquals" = { "aws:TagKeys" = ["ghr:github_runner_id", "ghr:job_started", "ghr:job_completed", "ghr:job_run"] }
          }
        },
        {
          Sid       = "OwnTermination"
          Effect    = "Allow"
          Action    = ["ec2:TerminateInstances"]
          Resource  = "${local.ec2_arn}:instance/*"
          Condition = { StringEquals = { "aws:ARN" = "$${ec2:SourceInstanceARN}" } }
        },
        {
          # Describe calls have no resource-level permissions.
          Sid      = "ReadTags"
          Effect   = "Allow"
          Action   = ["ec2:DescribeTags"]
          Resource = "*"
        },
      ],
      # A warm pool instance, once prepared: tags itself ready (that value only) and stops.
      [for statement in [
        {
          Sid      = "WarmPoolReady"
          Effect   = "Allow"
          Action   = ["ec2:CreateTags"]
          Resource = "${local.ec2_arn}:instance/*"
          Condition = {
            StringEquals                = { "aws:ARN" = "$${ec2:SourceInstanceARN}", "aws:RequestTag/ghr:warm" = "ready" }
            "ForAllValues:StringEquals" = { "aws:TagKeys" = ["ghr:warm"] }
          }
        },
        {
          # The time from its claim to its runner's start (the dashboard's warm pool row);
          # PutMetricData has no resource-level permissions, the namespace is the condition.
          Sid       = "WarmPoolStartMetric"
          Effect    = "Allow"
          Action    = ["cloudwatch:PutMetricData"]
          Resource  = "*"
          Condition = { StringEquals = { "cloudwatch:namespace" = try(var.lambda.metrics_namespace, "GitHub Runners") } }
        },
        {
          Sid       = "WarmPoolStopItself"
          Effect    = "Allow"
          Action    = ["ec2:StopInstances"]
          Resource  = "${local.ec2_arn}:instance/*"
          Condition = { StringEquals = { "aws:ARN" = "$${ec2:SourceInstanceARN}" } }
        },
      ] : statement if local.warm_pool],
      var.runner_distribution == null ? [] : [{
        Sid      = "RunnerTarball"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "${var.runner_distribution.bucket_arn}/${var.runner_distribution.key}"
      }],
      # Session Manager needs only these (AWS's minimal instance profile for Session Manager).
      # AmazonSSMManagedInstanceCore, which upstream attaches, also allows ssm:GetParameter* on
      # every parameter: any job could read the App's key and other runners' tokens.
      var.enable_ssm_on_runners ? [
        {
          Sid      = "SessionManagerRegistration"
          Effect   = "Allow"
          Action   = ["ssm:UpdateInstanceInformation"]
          Resource = "${local.ec2_arn}:instance/*"
        },
        {
          # The ssmmessages actions have no resource-level permissions.
          Sid      = "SessionManagerChannels"
          Effect   = "Allow"
          Action   = ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]
          Resource = "*"
        },
      ] : [],
      var.enable_cloudwatch_agent ? [{
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
        Resource = [for g in aws_cloudwatch_log_group.runner : "${g.arn}:*"]
      }] : [],
      var.enable_cloudwatch_agent ? [{
        Sid      = "AgentConfig"
        Effect   = "Allow"
        Action   = ["ssm:GetParameter"]
        Resource = aws_ssm_parameter.cloudwatch_agent_config[0].arn
      }] : [],
      var.kms_key_arn == null ? [] : [{
        Sid      = "Keys"
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [var.kms_key_arn]
      }]
    )
  })
}

resource "aws_iam_role_policy_attachment" "managed" {
  for_each   = toset(var.runner_iam_role_managed_policy_arns)
  role       = aws_iam_role.runner.name
  policy_arn = each.value
}
