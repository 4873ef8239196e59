#!/usr/bin/env bash
# Terraform and boot script checks, offline:
#   - shellcheck of the runner boot scripts (and the user data as Terraform renders it);
#   - with terraform and its provider mirror: fmt, init + validate of every module and example,
#     `terraform test` (mocked provider) wherever there are tests;
#   - checkov over terraform/ (own virtualenv), 0 failed checks allowed.
# The Terraform part is skipped, loudly, when terraform or the provider mirror is missing
# (decisions.md #20); everything else always runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
CHECKOV_VERSION=3.3.30
# Outside the clone, so that CI runs on one machine share it (installing checkov takes minutes).
CHECKOV_VENV=${CHECKOV_VENV:-$HOME/.cache/ghr/checkov-$CHECKOV_VERSION}

say() { printf '\n---- %s\n' "$*"; }
loud() { printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n!!!! %s\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' "$*"; }

templates=terraform/modules/runners/templates
scripts=("$templates/install-runner.sh" "$templates/start-runner.sh" "$templates/job-started-hook.sh"
  "$templates/job-completed-hook.sh" terraform/modules/webhook-github-app/bin/update-app.sh tests/fixtures/runner-stub/*.sh .ci/*.sh .ci/run)

say "shellcheck"
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "shellcheck is not installed (apt-get install shellcheck)" >&2
  exit 1
fi
shellcheck "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} scripts clean"

terraform_ok=true
if ! command -v terraform >/dev/null 2>&1; then
  loud "SKIPPED: terraform is not installed: no fmt/validate/test of terraform/ on this machine"
  terraform_ok=false
elif ! TF_CLI_CONFIG_FILE=$(.ci/terraformrc.sh); then
  loud "SKIPPED: no hashicorp/aws provider mirror on this machine: no validate/test of terraform/"
  terraform_ok=false
fi

if $terraform_ok; then
  export TF_CLI_CONFIG_FILE TF_IN_AUTOMATION=1 TF_INPUT=0
  say "terraform $(terraform version | head -n 1)"
  terraform fmt -check -diff -recursive terraform

  dirs=(terraform terraform/modules/* terraform/examples/*)
  for dir in "${dirs[@]}"; do
    say "$dir"
    terraform -chdir="$dir" init -backend=false -input=false -no-color >/dev/null
    terraform -chdir="$dir" validate -no-color
    if [ -d "$dir/tests" ]; then
      terraform -chdir="$dir" test -no-color
    fi
  done

  say "user data as Terraform renders it: bash -n and shellcheck"
  render=$(mktemp -d)
  trap 'rm -rf "$render"' EXIT
  cat >"$render/main.tf" <<HCL
output "user_data" {
  value = templatefile("$root/$templates/user-data.sh", {
    enable_debug_logging = true
    pre_install          = "echo pre-install"
    post_install         = "echo post-install"
    install_runner       = file("$root/$templates/install-runner.sh")
    start_runner         = file("$root/$templates/start-runner.sh")
    job_marker           = file("$root/$templates/job-marker.sh")
    job_started_hook     = file("$root/$templates/job-started-hook.sh")
    job_completed_hook   = file("$root/$templates/job-completed-hook.sh")
    user_job_started     = "echo user job started"
    user_job_completed   = "echo user job completed"
    runner_tarball_s3    = "s3://bucket/actions-runner-linux.tar.gz"
    runner_architecture  = "x64"
    ghes_url             = "https://ghes.example.com"
    ghes_ssl_verify      = false
  })
}
HCL
  terraform -chdir="$render" init -input=false -no-color >/dev/null
  terraform -chdir="$render" apply -auto-approve -input=false -no-color >/dev/null
  terraform -chdir="$render" output -raw user_data >"$render/user-data.sh"
  bash -n "$render/user-data.sh"
  shellcheck "$render/user-data.sh"
  echo "user-data.sh: $(wc -l <"$render/user-data.sh") lines, clean"
fi

say "checkov $CHECKOV_VERSION"
if [ ! -x "$CHECKOV_VENV/bin/checkov" ] || ! "$CHECKOV_VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  mkdir -p "$(dirname "$CHECKOV_VENV")"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
# Each skip is justified next to its resource (`#checkov:skip=<id>:<reason>`).
BC_SKIP_MAPPING=TRUE "$CHECKOV_VENV/bin/checkov" -d terraform --framework terraform --compact --quiet
echo "checkov: 0 failed checks; $(grep -rho 'checkov:skip=[A-Z0-9_]*' terraform | sort -u | wc -l) distinct checks skipped with a reason"
