################################################################################
# Scale-up: SQS build queue → EC2 Fleet + runner registration
################################################################################

locals {
  # Scale-up's environment; the pool launches through the same code and reads the same.
  scale_up_environment = {
    AMI_ID_SSM_PARAMETER_NAME                 = local.user_ami_param == null ? "" : local.ami_param_name
    COMPUTE_PROVIDER_TYPE                     = "ec2"
    DISABLE_RUNNER_AUTOUPDATE                 = tostring(var.disable_runner_autoupdate)
    ENABLE_EPHEMERAL_RUNNERS                  = tostring(local.ephemeral)
    ENABLE_JIT_CONFIG                         = tostring(local.jit)
    ENABLE_JOB_QUEUED_CHECK                   = tostring(local.job_queued_check)
    ENABLE_METRIC_GITHUB_APP_RATE_LIMIT       = tostring(var.enable_metric_github_app_rate_limit)
    ENABLE_ON_DEMAND_FAILOVER_FOR_ERRORS      = jsonencode(var.enable_runner_on_demand_failover_for_errors)
    ENABLE_ORGANIZATION_RUNNERS               = tostring(var.enable_organization_runners)
    GHES_URL                                  = var.ghes_url == null ? "" : var.ghes_url
    INSTANCE_ALLOCATION_STRATEGY              = var.instance_allocation_strategy
    INSTANCE_MAX_SPOT_PRICE                   = var.instance_max_spot_price == null ? "" : var.instance_max_spot_price
    INSTANCE_TARGET_CAPACITY_TYPE             = var.instance_target_capacity_type
    INSTANCE_TYPES                            = join(",", var.instance_types)
    INSTANCE_TYPE_PRIORITIES                  = var.instance_type_priorities == null ? "" : jsonencode(var.instance_type_priorities)
    LAUNCH_TEMPLATE_NAME                      = aws_launch_template.runner.name
    NODE_TLS_REJECT_UNAUTHORIZED              = var.ghes_url != null && !var.ghes_ssl_verify ? "0" : "1"
    PARAMETER_GITHUB_APP_ID_NAME              = var.app_parameters.ids
    PARAMETER_GITHUB_APP_INSTALLATION_ID_NAME = var.app_parameters.installation_ids
    PARAMETER_GITHUB_APP_KEY_BASE64_NAME      = var.app_parameters.keys
    RUNNERS_MAXIMUM_COUNT                     = tostring(var.runners_maximum_count)
    RUNNER_GROUP_NAME                         = var.runner_group_name
    RUNNER_LABELS                             = lower(join(",", var.runner_labels))
    RUNNER_NAME_PREFIX                        = var.runner_name_prefix
    SCALE_ERRORS                              = jsonencode(var.scale_errors)
    SSM_CONFIG_PATH                           = local.config_path
    SSM_PARAMETER_STORE_TAGS                  = jsonencode([for k, v in merge(var.parameter_store_tags, { "ghr:environment" = var.prefix }) : { Key = k, Value = v }])
    SSM_TOKEN_PATH                            = local.token_path
    SUBNET_IDS                                = join(",", var.subnet_ids)
    USE_DEDICATED_HOST                        = tostring(var.use_dedicated_host)
    USER_AGENT                                = var.user_agent
    JOB_RETRY_CONFIG                          = local.job_retry_config
    WARM_POOL_CONFIG                          = local.warm_pool_config
  }
}

module "scale_up" {
  source = "../lambda"
  lambda = merge(var.lambda, {
    name                           = "scale-up"
    zip                            = var.scale_up_lambda.zip
    memory_size                    = var.scale_up_lambda.memory_size
    timeout                        = var.scale_up_lambda.timeout
    reserved_concurrent_executions = var.scale_up_reserved_concurrent_executions == -1 ? null : var.scale_up_reserved_concurrent_executions
    environment_variables          = local.scale_up_environment
  })
}

resource "aws_lambda_event_source_mapping" "scale_up" {
  event_source_arn                   = aws_sqs_queue.build.arn
  function_name                      = module.scale_up.function.arn
  batch_size                         = var.lambda_event_source_mapping_batch_size
  maximum_batching_window_in_seconds = var.lambda_event_source_mapping_maximum_batching_window_in_seconds
  # Without it, a failed message would be dropped with its batch (no lost jobs).
  function_response_types = ["ReportBatchItemFailures"]
}

locals {
  scale_up_kms_keys = compact([var.kms_key_arn, try(var.ami.kms_key_arn, null)])
}

locals {
  # What launching runners takes: scale-up's and the pool's (which launches through scale-up's code).
  launch_statements = concat(
    [
      {
        Sid      = "Launch"
        Effect   = "Allow"
        Action   = ["ec2:CreateFleet", "ec2:RunInstances"]
        Resource = ["${local.ec2_arn}:*", "arn:${local.partition}:ec2:${local.region}::image/*", "arn:${local.partition}:ec2:${local.region}::snapshot/*"]
      },
      {
        Sid       = "TagAtLaunch"
        Effect    = "Allow"
        Action    = ["ec2:CreateTags"]
        Resource  = ["${local.ec2_arn}:instance/*", "${local.ec2_arn}:volume/*", "${local.ec2_arn}:fleet/*", "${local.ec2_arn}:network-interface/*"]
        Condition = { StringEquals = { "ec2:CreateAction" = ["CreateFleet", "RunInstances"] } }
      },
      {
        # The runner's id, and the job it was launched for (a second delivery of the job's
        # event finds it and launches nothing).
        Sid      = "TagRunnerId"
        Effect   = "Allow"
        Action   = ["ec2:CreateTags"]
        Resource = "${local.ec2_arn}:instance/*"
        Condition = {
          StringEquals                = { "aws:ResourceTag/ghr:environment" = var.prefix }
          "ForAllValues:StringEquals" = { "aws:TagKeys" = ["ghr:github_runner_id", "ghr:launched_for_job"] }
        }
      },
      {
        # Instances whose runner could not be registered, or beyond the maximum.
        Sid      = "TerminateOwnRunners"
        Effect   = "Allow"
        Action   = ["ec2:TerminateInstances"]
        Resource = "${local.ec2_arn}:instance/*"
        Condition = {
          StringEquals = { "aws:ResourceTag/ghr:environment" = var.prefix, "aws:ResourceTag/ghr:Application" = "github-action-runner" }
        }
      },
      {
        # Describe calls have no resource-level permissions. The template's block device is
        # where a job's `ghr-ec2-ebs-*` labels go.
        Sid      = "CountRunners"
        Effect   = "Allow"
        Action   = ["ec2:DescribeInstances", "ec2:DescribeLaunchTemplateVersions"]
        Resource = "*"
      },
      {
        Sid       = "PassRunnerRole"
        Effect    = "Allow"
        Action    = ["iam:PassRole"]
        Resource  = aws_iam_role.runner.arn
        Condition = { StringEquals = { "iam:PassedToService" = "ec2.amazonaws.com" } }
      },
      {
        Sid      = "WriteTokensAndGroupCache"
        Effect   = "Allow"
        Action   = ["ssm:PutParameter", "ssm:AddTagsToResource"]
        Resource = ["arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.token_path}/*", "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.config_path}/runner-group/*"]
      },
      {
        Sid    = "ReadParameters"
        Effect = "Allow"
        Action = ["ssm:GetParameters", "ssm:GetParameter"]
        # The token path: a retried write whose first attempt landed is confirmed by reading it back.
        Resource = concat(var.app_parameters.arns, ["arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.config_path}/*", "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.token_path}/*", local.ami_param_arn])
      },
    ],
    var.create_service_linked_role_spot ? [{
      Sid       = "SpotServiceLinkedRole"
      Effect    = "Allow"
      Action    = ["iam:CreateServiceLinkedRole"]
      Resource  = "arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
      Condition = { StringLike = { "iam:AWSServiceName" = "spot.amazonaws.com" } }
    }] : [],
    # length(), not `== []`: a list never equals the empty tuple, so that test was always
    # false and added a statement without resources, which IAM rejects.
    length(local.scale_up_kms_keys) == 0 ? [] : [{
      Sid      = "Keys"
      Effect   = "Allow"
      Action   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant"]
      Resource = local.scale_up_kms_keys
    }]
  )
}

resource "aws_iam_role_policy" "scale_up" {
  name = "scale-up"
  role = module.scale_up.role.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      local.launch_statements,
      local.warm_claim_statements,
      [
        {
          Sid      = "ReadBuildQueue"
          Effect   = "Allow"
          Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
          Resource = aws_sqs_queue.build.arn
        },
      ],
      local.job_retry ? [{
        Sid      = "ScheduleRetryChecks"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = aws_sqs_queue.job_retry[0].arn
      }] : [],
    )
  })
}
