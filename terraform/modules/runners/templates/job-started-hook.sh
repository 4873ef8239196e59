#!/bin/bash
# Runner job-started hook (ACTIONS_RUNNER_HOOK_JOB_STARTED): marks this instance busy with the
# `ghr:job_started` tag, so that scale-down never terminates it while the job runs, even when
# GitHub's `busy` flag lags. Then runs the user's hook. A failure here never fails the job.
IMDS_URL=${IMDS_URL:-http://169.254.169.254}
HOOKS_DIR=${HOOKS_DIR:-/opt/actions-runner/hooks}

token=$(curl -sf -X PUT "$IMDS_URL/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
meta() { curl -sf -H "X-aws-ec2-metadata-token: $token" "$IMDS_URL/latest/meta-data/$1"; }
instance_id=$(meta instance-id)
region=$(meta placement/region)
aws ec2 create-tags --region "$region" --resources "$instance_id" --tags "Key=ghr:job_started,Value=$(date +%s)" ||
  echo "job-started hook: could not write the job marker"

if [ -f "$HOOKS_DIR/user-job-started.sh" ]; then
  bash "$HOOKS_DIR/user-job-started.sh"
fi
exit 0
