#!/bin/bash
# Boots a runner: packages, the runner, the job hooks, then start-runner.sh.
exec > >(tee /var/log/user-data.log | logger -t user-data -s 2>/dev/console) 2>&1
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

mkdir -p /opt/actions-runner/hooks
cat >/opt/actions-runner/install-runner.sh <<'GHR_SCRIPT'
${install_runner}
GHR_SCRIPT
cat >/opt/actions-runner/start-runner.sh <<'GHR_SCRIPT'
${start_runner}
GHR_SCRIPT
cat >/opt/actions-runner/hooks/job-started.sh <<'GHR_SCRIPT'
${job_started_hook}
GHR_SCRIPT
cat >/opt/actions-runner/hooks/job-completed.sh <<'GHR_SCRIPT'
${job_completed_hook}
GHR_SCRIPT
%{ if user_job_started != "" ~}
cat >/opt/actions-runner/hooks/user-job-started.sh <<'GHR_SCRIPT'
${user_job_started}
GHR_SCRIPT
%{ endif ~}
%{ if user_job_completed != "" ~}
cat >/opt/actions-runner/hooks/user-job-completed.sh <<'GHR_SCRIPT'
${user_job_completed}
GHR_SCRIPT
%{ endif ~}
chmod 755 /opt/actions-runner/*.sh /opt/actions-runner/hooks/*.sh

RUNNER_TARBALL_S3='${runner_tarball_s3}' RUNNER_ARCHITECTURE='${runner_architecture}' bash /opt/actions-runner/install-runner.sh

${post_install}

cat >>/opt/actions-runner/.env <<'GHR_ENV'
ACTIONS_RUNNER_HOOK_JOB_STARTED=/opt/actions-runner/hooks/job-started.sh
ACTIONS_RUNNER_HOOK_JOB_COMPLETED=/opt/actions-runner/hooks/job-completed.sh
GHR_ENV
%{ if ghes_url != "" && !ghes_ssl_verify ~}
echo "GITHUB_ACTIONS_RUNNER_TLS_NO_VERIFY=1" >>/opt/actions-runner/.env
%{ endif ~}

bash /opt/actions-runner/start-runner.sh
