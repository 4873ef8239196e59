################################################################################
# Organization runners that stay up while busy and are removed when idle
################################################################################

provider "aws" {
  region = var.aws_region
  default_tags {
    tags = { Example = "default" }
  }
}

module "runners" {
  source = "../../"

  aws_region = var.aws_region
  vpc_id     = var.vpc_id
  subnet_ids = var.subnet_ids
  prefix     = var.environment
  tags       = { Project = "ProjectX" }

  github_app = {
    id             = var.github_app.id
    key_base64     = var.github_app.key_base64
    webhook_secret = var.github_app.webhook_secret
  }

  # The functions come from `make build` (target/lambda/<arch>/<function>/bootstrap.zip, the
  # default `*_lambda_zip` paths). arm64 (Graviton) is the default and cheaper; x86_64 zips are
  # built on every machine.
  lambda_architecture = "arm64"

  enable_organization_runners = true
  runner_extra_labels         = ["default", "example"]
  instance_types              = ["m5.large", "c5.large"]
  runners_maximum_count       = 5

  # Keep an idle runner around on working days, remove the rest after their minimum running time.
  idle_config = [{
    cron      = "* * 9-17 * * 1-5"
    timeZone  = "Europe/Amsterdam"
    idleCount = 1
  }]
  minimum_running_time_in_minutes = 10
  scale_down_schedule_expression  = "cron(*/5 * * * ? *)"

  delay_webhook_event                   = 5
  enable_ssm_on_runners                 = true
  enable_user_data_debug_logging_runner = true

  # Deregister this account's runner images (names with al2023) older than 10 days that no launch
  # template and no `*/ami-id` parameter uses, with their snapshots.
  enable_ami_housekeeper = true
  ami_housekeeper_cleanup_config = {
    ssmParameterNames = ["*/ami-id"]
    minimumDaysOld    = 10
    amiFilters = [
      {
        Name   = "name"
        Values = ["*al2023*"]
      }
    ]
  }
}
