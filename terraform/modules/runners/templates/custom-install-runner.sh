# ---- install the runner (this project's install-runner.sh, for a custom user-data template) ----
export RUNNER_DIR=$${RUNNER_DIR:-/opt/actions-runner}
mkdir -p /opt/ghr
cat >/opt/ghr/install-runner.sh <<'GHR_SCRIPT'
${install_runner}
GHR_SCRIPT
RUNNER_TARBALL_S3='${runner_tarball_s3}' RUNNER_ARCHITECTURE='${runner_architecture}' bash /opt/ghr/install-runner.sh
