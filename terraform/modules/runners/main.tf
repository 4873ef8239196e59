data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name
  account_id  = data.aws_caller_identity.current.account_id
  config_path = "${var.ssm_root}/runners/config"
  token_path  = "${var.ssm_root}/runners/tokens"
  ec2_arn     = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"

  ephemeral            = var.enable_ephemeral_runners
  jit                  = var.enable_jit_config == null ? var.enable_ephemeral_runners : var.enable_jit_config
  job_queued_check     = var.enable_job_queued_check == null ? !var.enable_ephemeral_runners : var.enable_job_queued_check
  minimum_running_time = coalesce(var.minimum_running_time_in_minutes, var.runner_os == "windows" ? 15 : 5)

  default_ami_filter = {
    linux = {
      x64   = { name = ["al2023-ami-2023.*-kernel-6.*-x86_64"], state = ["available"] }
      arm64 = { name = ["al2023-ami-2023.*-kernel-6.*-arm64"], state = ["available"] }
    }
    windows = {
      x64   = { name = ["Windows_Server-2022-English-Full-ECS_Optimized-*"], state = ["available"] }
      arm64 = { name = ["Windows_Server-2022-English-Full-ECS_Optimized-*"], state = ["available"] }
    }
  }
  ami_filter      = try(var.ami.filter, null) != null ? var.ami.filter : local.default_ami_filter[var.runner_os][var.runner_architecture]
  ami_owners      = try(var.ami.owners, null) != null ? var.ami.owners : ["amazon"]
  user_ami_param  = try(var.ami.id_ssm_parameter_arn, null)
  ami_param_arn   = local.user_ami_param != null ? local.user_ami_param : aws_ssm_parameter.ami_id[0].arn
  ami_param_name  = local.user_ami_param != null ? regex("parameter(/.*)$", local.user_ami_param)[0] : aws_ssm_parameter.ami_id[0].name
  security_groups = concat(var.enable_managed_runner_security_group ? [aws_security_group.runner[0].id] : [], var.runner_additional_security_group_ids)
  instance_tags = merge(var.tags, var.runner_ec2_tags, {
    "Name"                   = "${var.prefix}-action-runner"
    "ghr:environment"        = var.prefix
    "ghr:ssm_config_path"    = local.config_path
    "ghr:runner_name_prefix" = var.runner_name_prefix
  })
}

################################################################################
# AMI: looked up at apply time, or the user's parameter; launch templates resolve it
################################################################################

data "aws_ami" "runner" {
  count       = local.user_ami_param == null ? 1 : 0
  most_recent = true
  owners      = local.ami_owners
  dynamic "filter" {
    for_each = local.ami_filter
    content {
      name   = filter.key
      values = filter.value
    }
  }
}

resource "aws_ssm_parameter" "ami_id" {
  #checkov:skip=CKV2_AWS_34:An AMI id is not a secret; data_type aws:ec2:image needs a String.
  count     = local.user_ami_param == null ? 1 : 0
  name      = "${local.config_path}/ami_id"
  type      = "String"
  data_type = "aws:ec2:image"
  value     = data.aws_ami.runner[0].id
  tags      = var.tags
}

################################################################################
# Runner configuration read by the boot script (upstream layout)
################################################################################

resource "aws_ssm_parameter" "runner_config" {
  #checkov:skip=CKV2_AWS_34:Settings, not secrets.
  for_each = {
    run_as                 = var.runner_as_root ? "root" : var.runner_run_as
    agent_mode             = local.ephemeral ? "ephemeral" : "persistent"
    disable_default_labels = tostring(var.runner_disable_default_labels)
    enable_jit_config      = tostring(local.jit)
    enable_cloudwatch      = tostring(var.enable_cloudwatch_agent)
    token_path             = local.token_path
    # Where a warm pool instance reports the time from its claim to its runner's start.
    metrics_namespace = try(var.lambda.metrics_namespace, "GitHub Runners")
  }
  name  = "${local.config_path}/${each.key}"
  type  = "String"
  value = each.value
  tags  = var.tags
}

# Scale-up caches the organization's runner group id here (upstream's layout). Terraform owns
# the parameter, with a placeholder scale-up overwrites, so that `terraform destroy` removes it
# instead of leaving runtime state behind. Group names SSM cannot hold in a name are not cached.
resource "aws_ssm_parameter" "runner_group_id" {
  #checkov:skip=CKV2_AWS_34:A runner group id, not a secret.
  count = var.enable_organization_runners && can(regex("^[a-zA-Z0-9_.-]+$", var.runner_group_name)) ? 1 : 0
  name  = "${local.config_path}/runner-group/${var.runner_group_name}"
  type  = "String"
  value = "unresolved"
  tags  = var.tags

  lifecycle {
    ignore_changes = [value, insecure_value]
  }
}

################################################################################
# Security group (egress only) and launch template
################################################################################

resource "aws_security_group" "runner" {
  #checkov:skip=CKV_AWS_382:Runners must reach GitHub, package registries and AWS APIs on any port; narrow it with runner_egress_rules.
  count       = var.enable_managed_runner_security_group ? 1 : 0
  name_prefix = "${var.prefix}-github-actions-runner-sg"
  description = "GitHub Actions runners: no ingress, egress to GitHub and AWS"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.prefix}-github-actions-runner-sg" })

  dynamic "egress" {
    for_each = var.runner_egress_rules
    content {
      cidr_blocks      = egress.value.cidr_blocks
      ipv6_cidr_blocks = egress.value.ipv6_cidr_blocks
      prefix_list_ids  = egress.value.prefix_list_ids
      from_port        = egress.value.from_port
      protocol         = egress.value.protocol
      security_groups  = egress.value.security_groups
      self             = egress.value.self
      to_port          = egress.value.to_port
      description      = egress.value.description
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  runner_tarball_s3 = var.runner_distribution == null ? "" : "s3://${var.runner_distribution.bucket}/${var.runner_distribution.key}"
  # This project's template writes the scripts and hooks itself from their contents.
  own_template_vars = {
    enable_debug_logging = var.enable_user_data_debug_logging_runner
    pre_install          = var.userdata_pre_install
    post_install         = var.userdata_post_install
    install_runner       = file("${path.module}/templates/install-runner.sh")
    start_runner         = file("${path.module}/templates/start-runner.sh")
    job_marker           = file("${path.module}/templates/job-marker.sh")
    job_started_hook     = file("${path.module}/templates/job-started-hook.sh")
    job_completed_hook   = file("${path.module}/templates/job-completed-hook.sh")
    user_job_started     = var.runner_hook_job_started
    user_job_completed   = var.runner_hook_job_completed
    runner_tarball_s3    = local.runner_tarball_s3
    runner_architecture  = var.runner_architecture
    ghes_url             = var.ghes_url == null ? "" : var.ghes_url
    ghes_ssl_verify      = var.ghes_ssl_verify
  }
  # A user's template (`userdata_template`) written for upstream inlines `install_runner` and
  # `start_runner` as steps, and reads upstream's other variables: give it both, with steps
  # that install this project's runner scripts and job hooks (the markers scale-down needs).
  custom_template_vars = merge(local.own_template_vars, {
    install_runner = templatefile("${path.module}/templates/custom-install-runner.sh", local.own_template_vars)
    start_runner   = templatefile("${path.module}/templates/custom-start-runner.sh", local.own_template_vars)
    # upstream's names
    s3_location_runner_distribution = local.runner_tarball_s3
    hook_job_started                = var.runner_hook_job_started
    hook_job_completed              = var.runner_hook_job_completed
    environment                     = var.prefix
    enable_cloudwatch_agent         = var.enable_cloudwatch_agent
    ssm_key_cloudwatch_agent_config = var.enable_cloudwatch_agent ? "${local.config_path}/cloudwatch_agent_config_runner" : ""
  })
  linux_user_data = (var.userdata_template == null ? templatefile("${path.module}/templates/user-data.sh", local.own_template_vars)
  : templatefile(var.userdata_template, local.custom_template_vars))
  windows_user_data = templatefile("${path.module}/templates/user-data.ps1", {
    pre_install        = var.userdata_pre_install
    post_install       = var.userdata_post_install
    runner_tarball_s3  = local.runner_tarball_s3
    start_runner       = file("${path.module}/templates/start-runner.ps1")
    user_job_started   = var.runner_hook_job_started
    user_job_completed = var.runner_hook_job_completed
  })
  # `userdata_content` replaces the rendered script whole (the user installs and starts the runner).
  script    = var.userdata_content != null ? var.userdata_content : var.runner_os == "windows" ? local.windows_user_data : local.linux_user_data
  user_data = var.runner_os == "windows" ? base64encode(local.script) : base64gzip(local.script)
}

resource "aws_launch_template" "runner" {
  #checkov:skip=CKV_AWS_88:Public IPs are opt-in (associate_public_ipv4_address, default false) for public subnets without a NAT; the security group has no ingress.
  name                                 = "${var.prefix}-action-runner"
  description                          = "GitHub Actions runners of ${var.prefix}"
  image_id                             = "resolve:ssm:${local.ami_param_arn}"
  instance_type                        = var.instance_types[0]
  key_name                             = var.key_name
  ebs_optimized                        = var.runners_ebs_optimized
  update_default_version               = true
  instance_initiated_shutdown_behavior = "terminate"
  user_data                            = var.enable_userdata ? local.user_data : null
  vpc_security_group_ids               = var.associate_public_ipv4_address ? null : local.security_groups
  tags                                 = var.tags

  iam_instance_profile {
    name = aws_iam_instance_profile.runner.name
  }

  metadata_options {
    http_endpoint               = lookup(var.runner_metadata_options, "http_endpoint", "enabled")
    http_tokens                 = lookup(var.runner_metadata_options, "http_tokens", "required")
    http_put_response_hop_limit = lookup(var.runner_metadata_options, "http_put_response_hop_limit", 1)
    instance_metadata_tags      = lookup(var.runner_metadata_options, "instance_metadata_tags", "enabled")
  }

  monitoring {
    enabled = var.enable_runner_detailed_monitoring
  }

  dynamic "credit_specification" {
    for_each = var.credit_specification == null ? [] : [var.credit_specification]
    content {
      cpu_credits = credit_specification.value
    }
  }

  dynamic "cpu_options" {
    for_each = var.cpu_options == null ? [] : [var.cpu_options]
    content {
      core_count       = cpu_options.value.core_count
      threads_per_core = cpu_options.value.threads_per_core
      amd_sev_snp      = cpu_options.value.amd_sev_snp
    }
  }

  dynamic "placement" {
    for_each = var.placement == null ? [] : [var.placement]
    content {
      affinity                = placement.value.affinity
      availability_zone       = placement.value.availability_zone
      group_name              = placement.value.group_name
      host_id                 = placement.value.host_id
      host_resource_group_arn = placement.value.host_resource_group_arn
      spread_domain           = placement.value.spread_domain
      tenancy                 = placement.value.tenancy
      partition_number        = placement.value.partition_number
    }
  }

  dynamic "license_specification" {
    for_each = var.license_specifications
    content {
      license_configuration_arn = license_specification.value.license_configuration_arn
    }
  }

  dynamic "block_device_mappings" {
    for_each = var.block_device_mappings
    content {
      device_name = block_device_mappings.value.device_name
      ebs {
        delete_on_termination = block_device_mappings.value.delete_on_termination
        volume_type           = block_device_mappings.value.volume_type
        volume_size           = block_device_mappings.value.volume_size
        encrypted             = true
        iops                  = block_device_mappings.value.iops
        throughput            = block_device_mappings.value.throughput
        kms_key_id            = block_device_mappings.value.kms_key_id
        snapshot_id           = block_device_mappings.value.snapshot_id

        volume_initialization_rate = block_device_mappings.value.volume_initialization_rate
      }
    }
  }

  # A warm pool that hibernates its prepared instances.
  dynamic "hibernation_options" {
    for_each = local.warm_pool && var.warm_pool.hibernate ? [1] : []
    content {
      configured = true
    }
  }

  dynamic "network_interfaces" {
    for_each = var.associate_public_ipv4_address ? [1] : []
    content {
      associate_public_ip_address = true
      security_groups             = local.security_groups
    }
  }

  dynamic "tag_specifications" {
    for_each = ["instance", "volume", "network-interface"]
    content {
      resource_type = tag_specifications.value
      tags          = local.instance_tags
    }
  }
}

# IMDSv1 is the user's choice (upstream's examples set it), but never a silent one: with it, any
# process on the runner that can be made to fetch a URL can read the instance's credentials.
check "imds_v2" {
  assert {
    condition     = try(var.runner_metadata_options.http_tokens, "required") == "required"
    error_message = "${var.prefix}: runner_metadata_options.http_tokens is not \"required\": the runners accept IMDSv1, which exposes their credentials to SSRF. The boot scripts use IMDSv2 either way; set it to \"required\"."
  }
}

# Two launch-template settings that the AWS provider has only from 6.x; this module works with 5.100.
check "provider_6_settings" {
  assert {
    condition     = try(var.cpu_options.nested_virtualization, null) == null && try(var.placement.group_id, null) == null
    error_message = "${var.prefix}: cpu_options.nested_virtualization and placement.group_id are not applied (they need the AWS provider 6.x in this module; use placement.group_name)."
  }
}
