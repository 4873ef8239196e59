################################################################################
# Two runner configurations behind one webhook (EventBridge mode, the default): ephemeral x64
# runners and reusable Graviton runners, each job routed by its labels to its configuration's
# queue and launched from that configuration's launch template.
################################################################################

provider "aws" {
  region = var.aws_region
  default_tags {
    tags = { Example = "multi-runner" }
  }
}

locals {
  # One runner configuration per YAML file, keyed by the file name (as upstream's example).
  multi_runner_config = {
    for file in fileset("${path.module}/templates/runner-configs", "*.yaml") :
    trimsuffix(file, ".yaml") => yamldecode(file("${path.module}/templates/runner-configs/${file}"))
  }
}

module "runners" {
  source = "../../modules/multi-runner"

  aws_region          = var.aws_region
  vpc_id              = var.vpc_id
  subnet_ids          = var.subnet_ids
  prefix              = var.environment
  tags                = { Project = "ProjectX" }
  multi_runner_config = local.multi_runner_config

  github_app = {
    id             = var.github_app.id
    key_base64     = var.github_app.key_base64
    webhook_secret = var.github_app.webhook_secret
  }

  # The functions come from `make build` (target/lambda/<arch>/<function>/bootstrap.zip).
  lambda_architecture = "arm64"

  eventbridge = {
    enable        = true
    accept_events = ["workflow_job"]
  }

  runners_scale_up_lambda_timeout   = 60
  runners_scale_down_lambda_timeout = 60
  log_class                         = "STANDARD"
}
