################################################################################
# GitHub App parameters (SecureString)
################################################################################

locals {
  app = nonsensitive({
    id_given     = var.github_app.id_ssm == null
    key_given    = var.github_app.key_base64_ssm == null
    secret_given = var.github_app.webhook_secret_ssm == null
  })
  additional = nonsensitive([for i, a in var.additional_github_apps : {
    index              = i + 1
    id_given           = a.id_ssm == null
    key_given          = a.key_base64_ssm == null
    installation_given = a.installation_id_ssm == null && a.installation_id != null
  }])
}

resource "aws_ssm_parameter" "github_app_id" {
  #checkov:skip=CKV2_AWS_34:It is a SecureString (checkov cannot see through the conditional value).
  count  = local.app.id_given ? 1 : 0
  name   = "${var.path_prefix}/github_app_id"
  type   = "SecureString"
  value  = var.github_app.id
  key_id = var.kms_key_arn
  tags   = var.tags
}

resource "aws_ssm_parameter" "github_app_key_base64" {
  count  = local.app.key_given ? 1 : 0
  name   = "${var.path_prefix}/github_app_key_base64"
  type   = "SecureString"
  value  = var.github_app.key_base64
  key_id = var.kms_key_arn
  tags   = var.tags
}

resource "aws_ssm_parameter" "github_app_webhook_secret" {
  count  = local.app.secret_given ? 1 : 0
  name   = "${var.path_prefix}/github_app_webhook_secret"
  type   = "SecureString"
  value  = var.github_app.webhook_secret
  key_id = var.kms_key_arn
  tags   = var.tags
}

resource "aws_ssm_parameter" "additional_id" {
  for_each = { for a in local.additional : a.index => a if a.id_given }
  name     = "${var.path_prefix}/additional_github_app_${each.key}_id"
  type     = "SecureString"
  value    = var.additional_github_apps[each.key - 1].id
  key_id   = var.kms_key_arn
  tags     = var.tags
}

resource "aws_ssm_parameter" "additional_key_base64" {
  for_each = { for a in local.additional : a.index => a if a.key_given }
  name     = "${var.path_prefix}/additional_github_app_${each.key}_key_base64"
  type     = "SecureString"
  value    = var.additional_github_apps[each.key - 1].key_base64
  key_id   = var.kms_key_arn
  tags     = var.tags
}

resource "aws_ssm_parameter" "additional_installation_id" {
  for_each = { for a in local.additional : a.index => a if a.installation_given }
  name     = "${var.path_prefix}/additional_github_app_${each.key}_installation_id"
  type     = "SecureString"
  value    = var.additional_github_apps[each.key - 1].installation_id
  key_id   = var.kms_key_arn
  tags     = var.tags
}
