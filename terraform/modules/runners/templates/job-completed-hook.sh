#!/bin/bash
# Runner job-completed hook (ACTIONS_RUNNER_HOOK_JOB_COMPLETED): runs the user's hook, then marks
# the job done with the `ghr:job_completed` tag (scale-down may remove the runner once idle).
IMDS_URL=${IMDS_URL:-http://169.254.169.254}
HOOKS_DIR=${HOOKS_DIR:-/opt/actions-runner/hooks}

if [ -f "$HOOKS_DIR/user-job-completed.sh" ]; then
  bash "$HOOKS_DIR/user-job-completed.sh"
fi

token=$(curl -sf -X PUT "$IMDS_URL/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
meta() { curl -sf -H "X-aws-ec2-metadata-token: $token" "$IMDS_URL/latest/meta-data/$1"; }
instance_id=$(meta instance-id)
region=$(meta placement/region)
aws ec2 create-tags --region "$region" --resources "$instance_id" --tags "Key=ghr:job_completed,Value=$(date +%s)" ||
  echo "job-completed hook: could not write the job marker"
exit 0
