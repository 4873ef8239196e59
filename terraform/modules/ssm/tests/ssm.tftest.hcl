# The GitHub App parameters: SecureStrings at the upstream paths, existing ones used as given.

mock_provider "aws" {
  mock_resource "aws_ssm_parameter" {
    defaults = { arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/github-action-runners/test/app/param", version = 1 }
  }
}

variables {
  path_prefix = "/github-action-runners/test/app"
  github_app  = { id = "1234", key_base64 = "a2V5", webhook_secret = "s3cret" }
  kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/abcd"
}

run "values_become_secure_strings" {
  command = apply
  assert {
    condition = alltrue([for p in [aws_ssm_parameter.github_app_id[0], aws_ssm_parameter.github_app_key_base64[0], aws_ssm_parameter.github_app_webhook_secret[0]] :
    p.type == "SecureString" && p.key_id == var.kms_key_arn])
    error_message = "Every App value is a SecureString under the deployment's key."
  }
  assert {
    condition     = [output.parameters.id.name, output.parameters.key_base64.name, output.parameters.webhook_secret.name] == ["/github-action-runners/test/app/github_app_id", "/github-action-runners/test/app/github_app_key_base64", "/github-action-runners/test/app/github_app_webhook_secret"]
    error_message = "Upstream parameter names."
  }
  assert {
    condition     = !issensitive(output.parameters) && !issensitive(output.app_parameters)
    error_message = "Names and ARNs are not secrets: callers can output them."
  }
  assert {
    condition     = output.app_parameters.ids == "/github-action-runners/test/app/github_app_id" && output.app_parameters.installation_ids == ""
    error_message = "One App: one id parameter, no installation id."
  }
}

run "existing_parameters_and_additional_apps" {
  command = plan
  variables {
    github_app = {
      id_ssm             = { name = "/mine/id", arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/mine/id" }
      key_base64         = "a2V5"
      webhook_secret_ssm = { name = "/mine/secret", arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/mine/secret" }
    }
    additional_github_apps = [
      { id = "5678", key_base64 = "a2V5" },
      { id_ssm = { name = "/other/id", arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/other/id" }, key_base64 = "a2V5", installation_id = "99" },
    ]
  }
  assert {
    condition     = length(aws_ssm_parameter.github_app_id) == 0 && length(aws_ssm_parameter.github_app_webhook_secret) == 0 && length(aws_ssm_parameter.github_app_key_base64) == 1
    error_message = "Nothing is created for a value given as an existing parameter."
  }
  assert {
    condition     = output.parameters.id.name == "/mine/id" && output.parameters.webhook_secret.name == "/mine/secret"
    error_message = "Existing parameters are passed on as given."
  }
  assert {
    condition = (output.app_parameters.ids == "/mine/id:/github-action-runners/test/app/additional_github_app_1_id:/other/id"
    && output.app_parameters.installation_ids == "::/github-action-runners/test/app/additional_github_app_2_installation_id")
    error_message = "Apps are positional in the `:`-joined lists, empty where an App has no installation id."
  }
  assert {
    condition     = keys(aws_ssm_parameter.additional_id) == ["1"] && keys(aws_ssm_parameter.additional_key_base64) == ["1", "2"]
    error_message = "Additional Apps' values become parameters too."
  }
}
