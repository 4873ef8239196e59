#!/bin/bash
# Boots a runner: packages, the runner, the job hooks, then start-runner.sh.
#
# Overridable for tests (the apply-against-moto test runs this script exactly as the launch
# template holds it): RUNNER_DIR, USER_DATA_LOG, CONSOLE. cloud-init sets none of them.
export RUNNER_DIR=$${RUNNER_DIR:-/opt/actions-runner}
export HOOKS_DIR="$RUNNER_DIR/hooks"
# Everything goes to the log file, and to syslog and the console where there is a syslog: an
# image without one (no /dev/log) must not break the pipe and kill the boot with SIGPIPE.
exec > >(tee "$${USER_DATA_LOG:-/var/log/user-data.log}" | { logger -t user-data -s 2>"$${CONSOLE:-/dev/console}" || cat >/dev/null; }) 2>&1
%{ if enable_debug_logging ~}
set -x
%{ endif ~}

${pre_install}

retry() { for _ in 1 2 3 4 5; do "$@" && return 0; sleep 5; done; return 1; }
if command -v dnf >/dev/null 2>&1; then
  retry dnf upgrade-minimal -y
  retry dnf install -y docker jq git libicu amazon-cloudwatch-agent
  retry dnf install -y --allowerasing curl
  systemctl enable --now docker
  usermod -a -G docker ec2-user || true
elif command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  retry apt-get update
  retry apt-get install -y docker.io jq git curl unzip awscli
fi

mkdir -p "$HOOKS_DIR"
cat >"$RUNNER_DIR/install-runner.sh" <<'GHR_SCRIPT'
${install_runner}
GHR_SCRIPT
cat >"$RUNNER_DIR/start-runner.sh" <<'GHR_SCRIPT'
${start_runner}
GHR_SCRIPT
cat >"$HOOKS_DIR/job-marker.sh" <<'GHR_SCRIPT'
${job_marker}
GHR_SCRIPT
cat >"$HOOKS_DIR/job-started.sh" <<'GHR_SCRIPT'
${job_started_hook}
GHR_SCRIPT
cat >"$HOOKS_DIR/job-completed.sh" <<'GHR_SCRIPT'
${job_completed_hook}
GHR_SCRIPT
%{ if user_job_started != "" ~}
cat >"$HOOKS_DIR/user-job-started.sh" <<'GHR_SCRIPT'
${user_job_started}
GHR_SCRIPT
%{ endif ~}
%{ if user_job_completed != "" ~}
cat >"$HOOKS_DIR/user-job-completed.sh" <<'GHR_SCRIPT'
${user_job_completed}
GHR_SCRIPT
%{ endif ~}
chmod 755 "$RUNNER_DIR"/*.sh "$HOOKS_DIR"/*.sh

RUNNER_TARBALL_S3='${runner_tarball_s3}' RUNNER_ARCHITECTURE='${runner_architecture}' bash "$RUNNER_DIR/install-runner.sh"

${post_install}

cat >>"$RUNNER_DIR/.env" <<GHR_ENV
ACTIONS_RUNNER_HOOK_JOB_STARTED=$HOOKS_DIR/job-started.sh
ACTIONS_RUNNER_HOOK_JOB_COMPLETED=$HOOKS_DIR/job-completed.sh
GHR_ENV
%{ if ghes_url != "" && !ghes_ssl_verify ~}
echo "GITHUB_ACTIONS_RUNNER_TLS_NO_VERIFY=1" >>"$RUNNER_DIR/.env"
%{ endif ~}

bash "$RUNNER_DIR/start-runner.sh"
