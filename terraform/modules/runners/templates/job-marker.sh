#!/bin/bash
# Job markers for scale-down: `job-marker.sh started` tags this instance `ghr:job_started` with
# the time (unix milliseconds) and `ghr:job_run` with the job's run (`<owner>/<repo>/<run id>`,
# read by job rescue); `job-marker.sh completed` tags `ghr:job_completed` with the
# start it closes, so the two can never tie by accident (a job done within one second reads as
# done). Scale-down never terminates an instance whose start is later than its completion,
# even while GitHub's `busy` flag lags.
#
# The job-started and job-completed hooks call it. Custom images (enable_userdata = false or a
# userdata_template of your own) install the three files; see README "Custom images".
#
# - Written with the INSTANCE PROFILE's credentials only: a job's own AWS_* variables (e.g.
#   exported by configure-aws-credentials for later steps, hooks included), profiles and
#   endpoints are cleared for the call.
# - Retried with backoff (a burst of jobs can be throttled); every failure is logged to the job
#   log and to the runner's diagnostics (`_diag/ghr-job-markers.log`).
# - Never fails the job: it always exits 0.
#
# Overridable for tests: IMDS_URL, HOOKS_DIR, GHR_AWS_ENDPOINT_URL, GHR_MARKER_ATTEMPTS.
mode=${1:-}
IMDS_URL=${IMDS_URL:-http://169.254.169.254}
HOOKS_DIR=${HOOKS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
RUNNER_DIR=$(dirname "$HOOKS_DIR")
state_file="$HOOKS_DIR/.job-started"
diag_log="$RUNNER_DIR/_diag/ghr-job-markers.log"

log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) job-$mode hook: $*"
  echo "$line"
  { mkdir -p "$(dirname "$diag_log")" && echo "$line" >>"$diag_log"; } 2>/dev/null || true
}

now_millis() {
  local ms
  ms=$(date +%s%3N)
  case $ms in
    *[!0-9]*) echo "$(date +%s)000" ;; # a date without %N (busybox)
    *) echo "$ms" ;;
  esac
}

# The AWS CLI with the instance profile's credentials and nothing of the job's.
aws_instance() (
  while read -r name; do
    case $name in
      AWS_CA_BUNDLE) ;;
      AWS_*) unset "$name" ;;
    esac
  done < <(compgen -e)
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  export AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS_URL" AWS_MAX_ATTEMPTS=1
  if [ -n "${GHR_AWS_ENDPOINT_URL:-}" ]; then export AWS_ENDPOINT_URL="$GHR_AWS_ENDPOINT_URL"; fi
  aws "$@"
)

extra_tags=()
case $mode in
  started)
    key=ghr:job_started
    stamp=$(now_millis)
    echo "$stamp" >"$state_file" 2>/dev/null || log "cannot write $state_file"
    # The job's run, for job rescue (a job a spot reclaim interrupts is re-run).
    if [ -n "${GITHUB_REPOSITORY:-}" ] && [ -n "${GITHUB_RUN_ID:-}" ]; then
      extra_tags=("Key=ghr:job_run,Value=$GITHUB_REPOSITORY/$GITHUB_RUN_ID")
    fi
    ;;
  completed)
    key=ghr:job_completed
    stamp=$(cat "$state_file" 2>/dev/null) || stamp=$(now_millis)
    ;;
  *)
    echo "usage: job-marker.sh started|completed" >&2
    exit 0
    ;;
esac

token=$(curl -sf -X PUT "$IMDS_URL/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
meta() { curl -sf -H "X-aws-ec2-metadata-token: $token" "$IMDS_URL/latest/meta-data/$1"; }
instance_id=$(meta instance-id)
region=$(meta placement/region)

attempts=${GHR_MARKER_ATTEMPTS:-5}
for attempt in $(seq 1 "$attempts"); do
  if error=$(aws_instance ec2 create-tags --region "$region" --resources "$instance_id" \
    --tags "Key=$key,Value=$stamp" ${extra_tags[@]+"${extra_tags[@]}"} 2>&1); then
    [ "$attempt" -gt 1 ] && log "marker $key=$stamp written on attempt $attempt"
    exit 0
  fi
  log "attempt $attempt/$attempts to write $key failed: $(echo "$error" | tail -n 1)"
  [ "$attempt" -lt "$attempts" ] && sleep $((attempt * 2))
done
log "could not write the job marker $key; scale-down relies on GitHub's busy flag for this job"
exit 0
