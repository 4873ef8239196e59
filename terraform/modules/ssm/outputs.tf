locals {
  # Parameter names and ARNs are not secret, but a conditional over the sensitive App variable
  # marks its result sensitive whichever branch is taken; unmark them so they can be outputs.
  primary = {
    id             = nonsensitive(local.app.id_given ? { name = aws_ssm_parameter.github_app_id[0].name, arn = aws_ssm_parameter.github_app_id[0].arn } : var.github_app.id_ssm)
    key_base64     = nonsensitive(local.app.key_given ? { name = aws_ssm_parameter.github_app_key_base64[0].name, arn = aws_ssm_parameter.github_app_key_base64[0].arn } : var.github_app.key_base64_ssm)
    webhook_secret = nonsensitive(local.app.secret_given ? { name = aws_ssm_parameter.github_app_webhook_secret[0].name, arn = aws_ssm_parameter.github_app_webhook_secret[0].arn } : var.github_app.webhook_secret_ssm)
  }
  extra = [for a in local.additional : {
    id              = nonsensitive(a.id_given ? { name = aws_ssm_parameter.additional_id[a.index].name, arn = aws_ssm_parameter.additional_id[a.index].arn } : var.additional_github_apps[a.index - 1].id_ssm)
    key_base64      = nonsensitive(a.key_given ? { name = aws_ssm_parameter.additional_key_base64[a.index].name, arn = aws_ssm_parameter.additional_key_base64[a.index].arn } : var.additional_github_apps[a.index - 1].key_base64_ssm)
    installation_id = nonsensitive(a.installation_given ? { name = aws_ssm_parameter.additional_installation_id[a.index].name, arn = aws_ssm_parameter.additional_installation_id[a.index].arn } : var.additional_github_apps[a.index - 1].installation_id_ssm)
  }]
  apps = concat([{ id = local.primary.id, key_base64 = local.primary.key_base64, installation_id = null }], local.extra)
}

output "parameters" {
  description = "The primary App's parameters: `id`, `key_base64`, `webhook_secret`, each `{ name, arn }`."
  value       = local.primary
}

output "app_parameters" {
  description = "Every App (primary first) for the functions: `ids` and `keys` (`:`-joined names, positional), `installation_ids` (`:`-joined, empty where none), and `arns` (every parameter, for IAM)."
  value = {
    ids              = join(":", [for a in local.apps : a.id.name])
    keys             = join(":", [for a in local.apps : a.key_base64.name])
    installation_ids = join(":", [for a in local.apps : a.installation_id == null ? "" : a.installation_id.name])
    arns             = compact(flatten([for a in local.apps : [a.id.arn, a.key_base64.arn, a.installation_id == null ? "" : a.installation_id.arn]]))
  }
}
