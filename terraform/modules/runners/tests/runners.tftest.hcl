# The runners module: queue → scale-up wiring, scale-down schedule, launch template, IAM.

mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/test/test-role" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:test-queued-builds"
      id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/test-queued-builds"
    }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:test-fn"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:test-fn/invocations"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:test" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:rule/test-scale-down-rule" }
  }
  mock_resource "aws_ssm_parameter" {
    defaults = { arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/runners/config/ami_id" }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = { arn = "arn:aws:iam::123456789012:instance-profile/test-runner-profile" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_ami" {
    defaults = { id = "ami-0123456789abcdef0" }
  }
}

variables {
  prefix     = "test"
  vpc_id     = "vpc-1"
  subnet_ids = ["subnet-1", "subnet-2"]
  ssm_root   = "/github-action-runners/test"
  app_parameters = {
    ids              = "/github-action-runners/test/app/github_app_id"
    keys             = "/github-action-runners/test/app/github_app_key_base64"
    installation_ids = ""
    arns             = ["arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/app/github_app_id", "arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/app/github_app_key_base64"]
  }
  app_parameter_path    = "/github-action-runners/test/app"
  secret_parameter_arns = ["arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/app/github_app_id", "arn:aws:ssm:eu-west-1:123456789012:parameter/elsewhere/webhook_secret"]
  runner_labels         = ["self-hosted", "linux", "x64", "GPU"]
  lambda                = { prefix = "test", environment = "test" }
  scale_up_lambda       = { zip = "up.zip" }
  scale_down_lambda     = { zip = "down.zip" }
  pool                  = { zip = "pool.zip" }
  job_retry             = { zip = "retry.zip" }
  ssm_housekeeper       = { config = {}, zip = "housekeeper.zip" }
  idle_config           = [{ cron = "* * 9-17 * * 1-5", timeZone = "Europe/Amsterdam", idleCount = 2 }]
  runner_distribution = {
    bucket     = "test-dist"
    key        = "actions-runner-linux.tar.gz"
    bucket_arn = "arn:aws:s3:::test-dist"
  }
}

run "reusable_runners" {
  command = apply

  # Functions
  assert {
    condition = alltrue([for f in [module.scale_up.function, module.scale_down.function] :
    f.runtime == "provided.al2023" && f.handler == "bootstrap" && f.architectures == tolist(["arm64"])])
    error_message = "Both functions are Rust on provided.al2023, handler bootstrap, arm64."
  }
  assert {
    condition     = module.scale_up.function.name == "test-scale-up" && module.scale_down.function.name == "test-scale-down"
    error_message = "Functions are named <prefix>-scale-up and <prefix>-scale-down."
  }

  # Scale-up environment wired to the resources it works with
  assert {
    condition     = module.scale_up.function.environment.LAUNCH_TEMPLATE_NAME == aws_launch_template.runner.name
    error_message = "Scale-up launches from this module's launch template."
  }
  assert {
    condition     = module.scale_up.function.environment.SSM_TOKEN_PATH == aws_ssm_parameter.runner_config["token_path"].value
    error_message = "Scale-up writes tokens where the boot script looks for them."
  }
  assert {
    condition     = module.scale_up.function.environment.SSM_CONFIG_PATH == aws_launch_template.runner.tag_specifications[0].tags["ghr:ssm_config_path"]
    error_message = "The config path scale-up uses is the one instances find in their tag."
  }
  assert {
    condition     = startswith(aws_ssm_parameter.runner_config["token_path"].name, module.scale_up.function.environment.SSM_CONFIG_PATH)
    error_message = "The runner configuration parameters live under SSM_CONFIG_PATH."
  }
  assert {
    condition = (module.scale_up.function.environment.PARAMETER_GITHUB_APP_ID_NAME == var.app_parameters.ids
      && module.scale_up.function.environment.PARAMETER_GITHUB_APP_KEY_BASE64_NAME == var.app_parameters.keys
      && module.scale_down.function.environment.PARAMETER_GITHUB_APP_ID_NAME == var.app_parameters.ids
    && module.scale_down.function.environment.PARAMETER_GITHUB_APP_KEY_BASE64_NAME == var.app_parameters.keys)
    error_message = "Both functions read the App from the ssm module's parameters."
  }
  assert {
    condition     = module.scale_up.function.environment.RUNNER_LABELS == "self-hosted,linux,x64,gpu" && module.scale_up.function.environment.SUBNET_IDS == "subnet-1,subnet-2"
    error_message = "Labels (lower case) and subnets are comma separated."
  }
  assert {
    condition = (module.scale_up.function.environment.ENABLE_EPHEMERAL_RUNNERS == "false"
      && module.scale_up.function.environment.ENABLE_JIT_CONFIG == "false"
    && module.scale_up.function.environment.ENABLE_JOB_QUEUED_CHECK == "true")
    error_message = "Reusable runners: registration tokens and the job-queued check (upstream defaults)."
  }
  assert {
    condition     = module.scale_up.function.environment.RUNNERS_MAXIMUM_COUNT == "3" && module.scale_up.function.environment.INSTANCE_TYPES == "m5.large,c5.large"
    error_message = "Upstream defaults for the maximum and instance types."
  }
  assert {
    condition     = contains(jsondecode(module.scale_up.function.environment.SCALE_ERRORS), "InsufficientInstanceCapacity") && jsondecode(module.scale_up.function.environment.ENABLE_ON_DEMAND_FAILOVER_FOR_ERRORS) == []
    error_message = "Scale errors and failover lists are JSON."
  }
  assert {
    condition = alltrue([for t in jsondecode(module.scale_up.function.environment.SSM_PARAMETER_STORE_TAGS) :
    contains(keys(t), "Key") && contains(keys(t), "Value")]) && contains([for t in jsondecode(module.scale_up.function.environment.SSM_PARAMETER_STORE_TAGS) : t.Value if t.Key == "ghr:environment"], "test")
    error_message = "Token parameters are tagged with the environment, as SSM's Key/Value list."
  }

  # Queue → scale-up
  assert {
    condition     = aws_lambda_event_source_mapping.scale_up.function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "A failed message is reported alone and retried, never lost with its batch."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.scale_up.event_source_arn == aws_sqs_queue.build.arn && aws_lambda_event_source_mapping.scale_up.function_name == module.scale_up.function.arn
    error_message = "The build queue triggers scale-up."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.scale_up.batch_size == 10 && aws_sqs_queue.build.delay_seconds == 30 && aws_sqs_queue.build.visibility_timeout_seconds == 30
    error_message = "Batches of 10, the webhook delay, and a visibility timeout of scale-up's timeout."
  }
  assert {
    condition     = length(aws_sqs_queue.build_dlq) == 0 && length(aws_sqs_queue_policy.build_dlq) == 0
    error_message = "No dead-letter queue unless asked."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_policy.build.policy).Statement[0].Effect == "Deny" && jsondecode(aws_sqs_queue_policy.build.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false" && jsondecode(aws_sqs_queue_policy.build.policy).Statement[0].Resource == aws_sqs_queue.build.arn
    error_message = "The queue refuses plain HTTP."
  }

  # Scale-down
  assert {
    condition     = aws_cloudwatch_event_target.scale_down.arn == module.scale_down.function.arn && aws_lambda_permission.scale_down.source_arn == aws_cloudwatch_event_rule.scale_down.arn
    error_message = "The schedule invokes scale-down, and only it may."
  }
  assert {
    condition     = aws_cloudwatch_event_rule.scale_down.schedule_expression == "cron(*/5 * * * ? *)"
    error_message = "Scale-down every 5 minutes by default."
  }
  assert {
    condition = (jsondecode(module.scale_down.function.environment.SCALE_DOWN_CONFIG)[0].idleCount == 2
      && jsondecode(module.scale_down.function.environment.SCALE_DOWN_CONFIG)[0].evictionStrategy == "oldest_first"
    && module.scale_down.function.environment.MINIMUM_RUNNING_TIME_IN_MINUTES == "5")
    error_message = "Idle config as JSON with the default eviction strategy; Linux minimum running time 5 minutes."
  }

  # Instances
  assert {
    condition = (aws_launch_template.runner.metadata_options[0].http_tokens == "required"
      && aws_launch_template.runner.metadata_options[0].instance_metadata_tags == "enabled"
    && aws_launch_template.runner.instance_initiated_shutdown_behavior == "terminate")
    error_message = "IMDSv2 only, tags readable from IMDS, shutdown terminates."
  }
  assert {
    condition     = alltrue([for b in aws_launch_template.runner.block_device_mappings : b.ebs[0].encrypted == "true"])
    error_message = "Root volumes are encrypted."
  }
  assert {
    condition     = aws_launch_template.runner.image_id == "resolve:ssm:${aws_ssm_parameter.ami_id[0].arn}" && aws_ssm_parameter.ami_id[0].value == "ami-0123456789abcdef0"
    error_message = "The launch template resolves the AMI the module looked up."
  }
  assert {
    condition     = aws_launch_template.runner.iam_instance_profile[0].name == aws_iam_instance_profile.runner.name && aws_iam_instance_profile.runner.role == aws_iam_role.runner.name
    error_message = "Instances get the runner role."
  }
  assert {
    condition     = alltrue([for t in aws_launch_template.runner.tag_specifications : t.tags["ghr:environment"] == "test"])
    error_message = "Instances, volumes and interfaces carry ghr:environment (the IAM conditions rely on it)."
  }
  assert {
    condition     = length(aws_security_group.runner[0].ingress) == 0
    error_message = "The runner security group has no ingress."
  }
  assert {
    condition     = strcontains(local.linux_user_data, "s3://test-dist/actions-runner-linux.tar.gz") && strcontains(local.linux_user_data, "ACTIONS_RUNNER_HOOK_JOB_STARTED=$HOOKS_DIR/job-started.sh") && strcontains(local.linux_user_data, "RUNNER_DIR=$${RUNNER_DIR:-/opt/actions-runner}")
    error_message = "The boot script installs from the syncer's bucket and sets the job-started hook."
  }
  assert {
    condition     = aws_ssm_parameter.runner_config["agent_mode"].value == "persistent" && aws_ssm_parameter.runner_config["enable_jit_config"].value == "false"
    error_message = "The boot script registers a persistent runner with config.sh."
  }

  # IAM: least privilege
  assert {
    condition = alltrue(flatten([for p in [aws_iam_role_policy.scale_up.policy, aws_iam_role_policy.scale_down.policy, aws_iam_role_policy.runner.policy] :
    [for s in jsondecode(p).Statement : [for a in flatten([s.Action]) : a != "*" && !endswith(a, ":*")]]]))
    error_message = "No wildcard actions."
  }
  assert {
    condition = alltrue(flatten([for p in [aws_iam_role_policy.scale_up.policy, aws_iam_role_policy.scale_down.policy, aws_iam_role_policy.runner.policy] :
    [for s in jsondecode(p).Statement : !contains(flatten([try(s.Resource, [])]), "*") || alltrue([for a in flatten([s.Action]) : startswith(a, "ec2:Describe") || startswith(a, "ssmmessages:")])]]))
    error_message = "`*` resources only for calls without resource-level permissions (Describe, Session Manager channels)."
  }
  assert {
    condition = alltrue(flatten([for p in [aws_iam_role_policy.scale_up.policy, aws_iam_role_policy.scale_down.policy] :
      [for s in jsondecode(p).Statement : s.Condition.StringEquals["aws:ResourceTag/ghr:environment"] == "test"
    if contains(flatten([s.Action]), "ec2:TerminateInstances")]]))
    error_message = "The functions terminate only instances of their own environment."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.scale_up.policy).Statement : s.Resource if s.Sid == "PassRunnerRole"]) == aws_iam_role.runner.arn
    error_message = "Scale-up passes only the runner role."
  }
  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.scale_up.policy).Statement : s.Resource if s.Sid == "ReadBuildQueue"]) == aws_sqs_queue.build.arn && alltrue([for s in jsondecode(aws_iam_role_policy.scale_up.policy).Statement :
    !contains(flatten([s.Action]), "sqs:SendMessage")])
    error_message = "Scale-up only consumes its own queue."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.runner.policy).Statement : s.Condition.StringLike["ec2:SourceInstanceARN"] if s.Sid == "OwnToken"]) == "*/$${aws:ResourceTag/InstanceId}"
    error_message = "An instance reads only the token tagged with its own id."
  }
  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.runner.policy).Statement : s.Condition.StringEquals["aws:ARN"] if s.Sid == "OwnTermination"]) == "$${ec2:SourceInstanceARN}" && one([for s in jsondecode(aws_iam_role_policy.runner.policy).Statement :
    s.Condition["ForAllValues:StringEquals"]["aws:TagKeys"] if s.Sid == "OwnTags"]) == ["ghr:github_runner_id", "ghr:job_started", "ghr:job_completed", "ghr:job_run"]
    error_message = "An instance terminates and tags only itself, and only with the runner id and job markers."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.runner.policy).Statement : s.Resource if s.Sid == "RunnerTarball"]) == "arn:aws:s3:::test-dist/actions-runner-linux.tar.gz"
    error_message = "An instance reads only the runner tarball from the bucket."
  }
}

run "ephemeral_jit_with_dead_letters" {
  command = apply
  variables {
    enable_ephemeral_runners = true
    redrive_build_queue      = { enabled = true, maxReceiveCount = 5 }
    runners_maximum_count    = -1
    runner_distribution      = null
  }
  assert {
    condition = (module.scale_up.function.environment.ENABLE_EPHEMERAL_RUNNERS == "true"
      && module.scale_up.function.environment.ENABLE_JIT_CONFIG == "true"
    && module.scale_up.function.environment.ENABLE_JOB_QUEUED_CHECK == "false")
    error_message = "Ephemeral runners default to JIT config and no job-queued check (upstream defaults)."
  }
  assert {
    condition     = aws_ssm_parameter.runner_config["agent_mode"].value == "ephemeral" && aws_ssm_parameter.runner_config["enable_jit_config"].value == "true"
    error_message = "The boot script starts a JIT runner."
  }
  assert {
    condition     = length(aws_sqs_queue.build_dlq) == 1 && length(aws_sqs_queue_policy.build_dlq) == 1 && aws_sqs_queue.build_dlq[0].name == "test-queued-builds_dead_letter"
    error_message = "Redrive creates the dead-letter queue with its own TLS-only policy."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.build.redrive_policy) == { deadLetterTargetArn = aws_sqs_queue.build_dlq[0].arn, maxReceiveCount = 5 }
    error_message = "Jobs go to the dead-letter queue after maxReceiveCount receives."
  }
  assert {
    condition     = module.scale_up.function.environment.RUNNERS_MAXIMUM_COUNT == "-1"
    error_message = "-1 means no maximum."
  }
  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.runner.policy).Statement : s if s.Sid == "RunnerTarball"]) == 0 && strcontains(local.linux_user_data, "RUNNER_TARBALL_S3=''")
    error_message = "Without the syncer, instances download from GitHub and get no S3 access."
  }
}

run "warm_pool_off_by_default" {
  command = plan
  assert {
    condition     = module.scale_up.function.environment.WARM_POOL_CONFIG == "{}" && length(module.warm_pool) == 0 && length(aws_cloudwatch_event_rule.warm_pool) == 0
    error_message = "No warm pool unless a size is set."
  }
  assert {
    condition = (length([for s in jsondecode(aws_iam_role_policy.runner.policy).Statement : s if startswith(s.Sid, "WarmPool")]) == 0
    && length(aws_launch_template.runner.hibernation_options) == 0)
    error_message = "Without a warm pool, runners may not stop themselves and the template does not hibernate."
  }
}

run "warm_pool_that_hibernates" {
  command = apply
  variables {
    enable_ephemeral_runners = true
    warm_pool                = { size = 2, max_age_hours = 6, hibernate = true, schedule_expression = "rate(5 minutes)", zip = "warm-pool.zip" }
  }
  assert {
    condition     = jsondecode(module.scale_up.function.environment.WARM_POOL_CONFIG) == { size = 2, maxAgeHours = 6, hibernate = true }
    error_message = "Scale-up claims from the pool it is told of."
  }
  assert {
    condition     = module.warm_pool[0].function.environment.WARM_POOL_CONFIG == module.scale_up.function.environment.WARM_POOL_CONFIG && module.warm_pool[0].function.environment.RUNNER_BOOT_TIME_IN_MINUTES != ""
    error_message = "The warm-pool function launches through scale-up's settings, with the boot time."
  }
  assert {
    condition     = aws_cloudwatch_event_rule.warm_pool[0].schedule_expression == "rate(5 minutes)"
    error_message = "The top-up runs on its schedule."
  }
  assert {
    condition     = aws_launch_template.runner.hibernation_options[0].configured
    error_message = "A hibernating pool needs a template that allows hibernation."
  }
  assert {
    condition = (length([for s in jsondecode(aws_iam_role_policy.scale_up.policy).Statement : s if s.Sid == "StartClaimedWarmInstances" && try(s.Condition.StringEquals["aws:ResourceTag/ghr:warm"], "") == "claimed"]) == 1
    && length([for s in jsondecode(aws_iam_role_policy.warm_pool[0].policy).Statement : s if s.Sid == "StartClaimedWarmInstances"]) == 0)
    error_message = "Scale-up starts claimed instances only; the warm-pool function starts none."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.runner.policy).Statement : s.Condition.StringEquals["aws:ARN"] if s.Sid == "WarmPoolStopItself"]) == "$${ec2:SourceInstanceARN}"
    error_message = "An instance may stop itself only."
  }
  assert {
    condition = (module.scale_down.function.environment.WARM_POOL_CONFIG == module.scale_up.function.environment.WARM_POOL_CONFIG
      && one([for s in jsondecode(aws_iam_role_policy.scale_down.policy).Statement : s.Condition.StringEquals["aws:ResourceTag/ghr:warm"] if s.Sid == "StopReturnedRunners"]) == "ready"
    && contains(one([for s in jsondecode(aws_iam_role_policy.scale_down.policy).Statement : s.Condition["ForAllValues:StringEquals"]["aws:TagKeys"] if s.Sid == "ReturnToWarmPool"]), "ghr:Owner"))
    error_message = "Scale-down puts idle runners from the pool back: it stops only instances tagged ready and may remove their owner."
  }
}

run "explicit_jit_off_for_ephemeral" {
  command = plan
  variables {
    enable_ephemeral_runners = true
    enable_jit_config        = false
    enable_job_queued_check  = true
  }
  assert {
    condition     = module.scale_up.function.environment.ENABLE_JIT_CONFIG == "false" && module.scale_up.function.environment.ENABLE_JOB_QUEUED_CHECK == "true"
    error_message = "Explicit settings win over the defaults."
  }
}

run "windows_with_user_ami_and_kms" {
  command = plan
  variables {
    runner_os   = "windows"
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/abcd"
    ami = {
      id_ssm_parameter_arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/my/windows-ami"
    }
    enable_cloudwatch_agent = false
  }
  assert {
    condition     = length(aws_ssm_parameter.ami_id) == 0 && aws_launch_template.runner.image_id == "resolve:ssm:arn:aws:ssm:eu-west-1:123456789012:parameter/my/windows-ami"
    error_message = "A user AMI parameter replaces the module's lookup."
  }
  assert {
    condition     = module.scale_up.function.environment.AMI_ID_SSM_PARAMETER_NAME == "/my/windows-ami"
    error_message = "Scale-up gets the user's AMI parameter name."
  }
  assert {
    condition     = module.scale_down.function.environment.MINIMUM_RUNNING_TIME_IN_MINUTES == "15"
    error_message = "Windows runners are kept at least 15 minutes by default (upstream)."
  }
  assert {
    condition     = strcontains(local.windows_user_data, "<powershell>") && aws_launch_template.runner.user_data == base64encode(local.windows_user_data)
    error_message = "Windows instances get the PowerShell user data."
  }
  assert {
    condition     = length(aws_cloudwatch_log_group.runner) == 0 && length(aws_ssm_parameter.cloudwatch_agent_config) == 0
    error_message = "No runner log groups without the CloudWatch agent."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.runner.policy).Statement : s.Resource if s.Sid == "Keys"]) == ["arn:aws:kms:eu-west-1:123456789012:key/abcd"]
    error_message = "Instances may decrypt with the deployment's key (their token is a SecureString)."
  }
}

run "warns_about_imdsv1_but_applies_it" {
  # Upstream's examples set `http_tokens = "optional"`: accepted (migration), never silently.
  command = plan
  variables {
    runner_metadata_options = { http_tokens = "optional" }
  }
  expect_failures = [check.imds_v2]
  assert {
    condition     = aws_launch_template.runner.metadata_options[0].http_tokens == "optional"
    error_message = "The user's choice is applied."
  }
}

run "rejects_a_maximum_below_minus_one" {
  command = plan
  variables {
    runners_maximum_count = -2
  }
  expect_failures = [var.runners_maximum_count]
}

# The runner role in every combination of the options that change it: no allow can reach the
# App's secrets or another instance's token, because explicit denies (which win in IAM) cover them.
run "no_combination_lets_a_runner_read_secrets_or_other_tokens" {
  command = apply
  module {
    source = "./tests/role-combinations"
  }

  assert {
    condition     = length(output.runner_roles) == 16
    error_message = "Every combination of enable_ssm_on_runners, enable_cloudwatch_agent, enable_jit_config and ephemeral is checked."
  }
  assert {
    condition = alltrue([for k, r in output.runner_roles : length([for s in jsondecode(r.policy).Statement : s if
      s.Effect == "Deny" && s.Sid == "NoAppSecrets" && try(s.Condition, null) == null &&
      length(setsubtract(["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory", "ssm:GetParametersByPath"], s.Action)) == 0 &&
      contains(flatten([try(s.Resource, [])]), "arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/app/*") &&
      contains(flatten([try(s.Resource, [])]), "arn:aws:ssm:eu-west-1:123456789012:parameter/elsewhere/webhook_secret")
    ]) == 1])
    error_message = "An unconditional deny covers every read of the App's parameters and the webhook secret, wherever they live."
  }
  assert {
    condition = alltrue([for k, r in output.runner_roles : length([for s in jsondecode(r.policy).Statement : s if
      s.Effect == "Deny" && s.Sid == "NoOtherTokens" &&
      try(s.Resource, "") == "arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/runners/tokens/*" &&
      try(s.Condition.StringNotLike["ec2:SourceInstanceARN"], "") == "*/$${aws:ResourceTag/InstanceId}"
    ]) == 1])
    error_message = "Reading a token parameter not tagged with the caller's own instance id is denied."
  }
  assert {
    condition = alltrue([for k, r in output.runner_roles : length([for s in jsondecode(r.policy).Statement : s if
      s.Effect == "Deny" && s.Action == ["ssm:GetParametersByPath"] && try(s.Condition, null) == null &&
      length(setsubtract([for p in ["/", "/github-action-runners", "/github-action-runners/test", "/github-action-runners/test/app", "/github-action-runners/test/runners", "/github-action-runners/test/runners/tokens", "/github-action-runners/test/runners/tokens/*", "/elsewhere", "/elsewhere/webhook_secret"] :
      "arn:aws:ssm:eu-west-1:123456789012:parameter${p}"], flatten([try(s.Resource, [])]))) == 0 &&
      !anytrue([for a in flatten([try(s.Resource, [])]) : strcontains(a, "runners/config")])
    ]) == 1])
    error_message = "Reading by path is denied on every ancestor of the secrets and the tokens (a by-path read returns everything below), and nowhere else: the config path stays readable, a user's own paths too."
  }
  assert {
    condition = alltrue([for k, r in output.runner_roles : alltrue([for s in jsondecode(r.policy).Statement :
      !(s.Effect == "Allow" && contains(flatten([try(s.Resource, [])]), "*") && anytrue([for a in flatten([s.Action]) : startswith(a, "ssm:GetParameter")]))
    ])])
    error_message = "No statement allows reading parameters on every resource."
  }
  assert {
    condition     = alltrue([for k, r in output.runner_roles : length(r.managed_policy_arns) == 0])
    error_message = "No managed policy is attached (AmazonSSMManagedInstanceCore would allow ssm:GetParameter* on every parameter)."
  }
  assert {
    condition     = alltrue([for k, r in output.runner_roles : (length([for s in jsondecode(r.policy).Statement : s if startswith(try(s.Sid, ""), "SessionManager")]) > 0) == strcontains(k, "ssm=true")])
    error_message = "Session Manager's permissions are there exactly when enable_ssm_on_runners is set."
  }
}
