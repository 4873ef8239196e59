################################################################################
# Points the GitHub App's webhook at the deployed endpoint, with the deployment's secret, as
# upstream's module does after an apply. Runs bin/update-app.sh (curl and openssl) on the
# machine running Terraform whenever the endpoint or secret changes. Unlike upstream's, a failure
# fails the apply with the reason (never a silent success), and the secrets reach the script
# through its environment, not its command line.
################################################################################

resource "terraform_data" "update_app" {
  # Hashes, not the values: a change re-runs the script; the state holds no new secret.
  triggers_replace = {
    app              = sha256(var.github_app.id)
    webhook_endpoint = var.webhook_endpoint
    webhook_secret   = sha256(var.github_app.webhook_secret)
  }

  provisioner "local-exec" {
    interpreter = ["bash", "-c"]
    command     = "${path.module}/bin/update-app.sh"
    environment = {
      APP_ID                 = var.github_app.id
      APP_PRIVATE_KEY_BASE64 = var.github_app.key_base64
      WEBHOOK_ENDPOINT       = var.webhook_endpoint
      WEBHOOK_SECRET         = var.github_app.webhook_secret
      GITHUB_API_URL         = var.ghes_url == null ? "https://api.github.com" : "${trimsuffix(var.ghes_url, "/")}/api/v3"
    }
  }
}
