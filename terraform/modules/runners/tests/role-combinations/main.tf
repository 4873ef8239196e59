# Test helper (tests/runner_role.tftest.hcl): the runners module once for every combination of
# the options that change the runner role, so that one run checks them all.

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

locals {
  combinations = {
    for c in setproduct([false, true], [false, true], [false, true], [false, true]) :
    "ssm=${c[0]},cloudwatch=${c[1]},jit=${c[2]},ephemeral=${c[3]}" => {
      ssm = c[0], cloudwatch = c[1], jit = c[2], ephemeral = c[3]
    }
  }
}

module "runners" {
  source   = "../.."
  for_each = local.combinations

  prefix     = "test"
  vpc_id     = "vpc-1"
  subnet_ids = ["subnet-1"]
  ssm_root   = "/github-action-runners/test"
  app_parameters = {
    ids              = "/github-action-runners/test/app/github_app_id"
    keys             = "/github-action-runners/test/app/github_app_key_base64"
    installation_ids = ""
    arns             = ["arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/app/github_app_id", "arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/app/github_app_key_base64"]
  }
  app_parameter_path    = "/github-action-runners/test/app"
  secret_parameter_arns = ["arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/app/github_app_id", "arn:aws:ssm:eu-west-1:123456789012:parameter/elsewhere/webhook_secret"]
  runner_labels         = ["self-hosted", "linux", "x64"]
  lambda                = { prefix = "test", environment = "test" }
  scale_up_lambda       = { zip = "up.zip" }
  scale_down_lambda     = { zip = "down.zip" }
  pool                  = { zip = "pool.zip" }
  job_retry             = { zip = "retry.zip" }
  ssm_housekeeper       = { config = {}, zip = "housekeeper.zip" }

  enable_ssm_on_runners    = each.value.ssm
  enable_cloudwatch_agent  = each.value.cloudwatch
  enable_jit_config        = each.value.jit
  enable_ephemeral_runners = each.value.ephemeral
}

output "runner_roles" {
  value = { for k, m in module.runners : k => m.role_runner }
}
