################################################################################
# CloudWatch agent: runner log files to log groups
################################################################################

locals {
  default_log_files = var.runner_os == "windows" ? [
    { log_group_name = "user_data", prefix_log_group = true, file_path = "C:/UserData.log", log_stream_name = "{instance_id}" },
    { log_group_name = "runner", prefix_log_group = true, file_path = "C:/actions-runner/_diag/Runner_*.log", log_stream_name = "{instance_id}" },
    { log_group_name = "runner-startup", prefix_log_group = true, file_path = "C:/runner-startup.log", log_stream_name = "{instance_id}" },
    ] : [
    { log_group_name = "messages", prefix_log_group = true, file_path = "/var/log/messages", log_stream_name = "{instance_id}" },
    { log_group_name = "user_data", prefix_log_group = true, file_path = "/var/log/user-data.log", log_stream_name = "{instance_id}" },
    { log_group_name = "runner", prefix_log_group = true, file_path = "/opt/actions-runner/_diag/Runner_**.log", log_stream_name = "{instance_id}" },
    { log_group_name = "runner-startup", prefix_log_group = true, file_path = "/var/log/runner-startup.log", log_stream_name = "{instance_id}" },
  ]
  log_files = [for f in coalesce(var.runner_log_files, local.default_log_files) : merge(f, {
    log_group_name = f.prefix_log_group ? "/github-self-hosted-runners/${var.prefix}/${f.log_group_name}" : "/${f.log_group_name}"
    log_class      = try(coalesce(f.log_class, "STANDARD"), "STANDARD")
  })]
  # A log group's class is the first of its files' (files may share a group).
  log_group_class = { for g in distinct([for f in local.log_files : f.log_group_name]) : g => [for f in local.log_files : f.log_class if f.log_group_name == g][0] }
  cloudwatch_config = var.cloudwatch_config != null ? var.cloudwatch_config : jsonencode({
    logs = {
      logs_collected = {
        files = {
          collect_list = [for f in local.log_files : {
            file_path       = f.file_path
            log_group_name  = f.log_group_name
            log_stream_name = f.log_stream_name
          }]
        }
      }
    }
  })
}

resource "aws_cloudwatch_log_group" "runner" {
  #checkov:skip=CKV_AWS_158:KMS encryption is optional (logging_kms_key_id).
  #checkov:skip=CKV_AWS_338:Retention is the user's choice (logging_retention_in_days, default 180 days as upstream).
  for_each          = var.enable_cloudwatch_agent ? toset(distinct([for f in local.log_files : f.log_group_name])) : toset([])
  name              = each.value
  log_group_class   = local.log_group_class[each.value]
  retention_in_days = var.logging_retention_in_days
  kms_key_id        = var.logging_kms_key_id
  tags              = var.tags
}

resource "aws_ssm_parameter" "cloudwatch_agent_config" {
  #checkov:skip=CKV2_AWS_34:Agent configuration, not a secret.
  count = var.enable_cloudwatch_agent ? 1 : 0
  name  = "${local.config_path}/cloudwatch_agent_config_runner"
  type  = "String"
  value = local.cloudwatch_config
  tags  = var.tags
}
