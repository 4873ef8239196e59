#!/bin/bash
# Configures and starts this instance's GitHub Actions runner.
#
# Reads the runner configuration from SSM (the path in the instance's `ghr:ssm_config_path` tag),
# waits for the JIT config or config.sh arguments that scale-up stores under
# `<token_path>/<instance-id>` (only this instance may read it), deletes it, registers, and runs.
# Ephemeral runners (and any failure) end with the instance terminating itself.
#
# Warm pool (`ghr:warm` tag): an instance launched `preparing` does not register. It installs a
# unit that runs this script again at its next boot, tags itself `ready` and stops itself
# (or hibernates, with `ghr:warm_hibernate=true`: then this very run carries on after the
# resume). Scale-up claims it, writes its configuration and starts it; this script then reads
# the configuration and registers as for a fresh instance.
#
# Overridable for tests: RUNNER_DIR, IMDS_URL, TOKEN_WAIT_SECONDS, TERMINATE_DELAY, SYSTEMD_DIR,
# SYSTEMCTL.
set -euo pipefail

RUNNER_DIR=${RUNNER_DIR:-/opt/actions-runner}
IMDS_URL=${IMDS_URL:-http://169.254.169.254}
TOKEN_WAIT_SECONDS=${TOKEN_WAIT_SECONDS:-900}
TERMINATE_DELAY=${TERMINATE_DELAY:-10}
SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
SYSTEMCTL=${SYSTEMCTL:-systemctl}

agent_mode=unknown
instance_id=""
region=""

cleanup() {
  local exit_code=$?
  if [ "$exit_code" -ne 0 ]; then
    echo "start-runner: failed with exit code $exit_code"
  fi
  if [ "$agent_mode" = "ephemeral" ] || [ "$exit_code" -ne 0 ]; then
    echo "start-runner: terminating the instance"
    sleep "$TERMINATE_DELAY"
    if command -v amazon-cloudwatch-agent-ctl >/dev/null 2>&1; then
      amazon-cloudwatch-agent-ctl -a stop || true
    fi
    if [ -n "$instance_id" ]; then
      aws ec2 terminate-instances --instance-ids "$instance_id" --region "$region" || true
    fi
  fi
}
trap cleanup EXIT

imds_token=""
for _ in $(seq 1 40); do
  imds_token=$(curl -sf -X PUT "$IMDS_URL/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600") && break
  sleep 5
done
if [ -z "$imds_token" ]; then
  echo "start-runner: no IMDSv2 token"
  exit 1
fi
meta() { curl -sf -H "X-aws-ec2-metadata-token: $imds_token" "$IMDS_URL/latest/meta-data/$1"; }

instance_id=$(meta instance-id)
region=$(meta placement/region)
tag() {
  meta "tags/instance/$1" 2>/dev/null && return 0
  aws ec2 describe-tags --region "$region" --filters "Name=resource-id,Values=$instance_id" "Name=key,Values=$1" \
    --query 'Tags[0].Value' --output text
}
config_path=$(tag ghr:ssm_config_path)
name_prefix=$(tag ghr:runner_name_prefix || true)
if [ "$name_prefix" = "None" ]; then name_prefix=""; fi
echo "start-runner: instance $instance_id, config $config_path"

warm=$(tag ghr:warm 2>/dev/null || true)
if [ "$warm" = "preparing" ]; then
  # Prepared (the runner is installed, the image's first-boot work is done): into the warm pool.
  cat >"$SYSTEMD_DIR/ghr-warm-runner.service" <<UNIT
[Unit]
Description=GitHub Actions runner of a warm pool instance, started by scale-up
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
Environment=RUNNER_DIR=$RUNNER_DIR
ExecStart=/bin/bash $RUNNER_DIR/start-runner.sh
StandardOutput=append:/var/log/user-data.log
StandardError=append:/var/log/user-data.log

[Install]
WantedBy=multi-user.target
UNIT
  "$SYSTEMCTL" enable ghr-warm-runner.service
  aws ec2 create-tags --region "$region" --resources "$instance_id" --tags "Key=ghr:warm,Value=ready"
  hibernate=$(tag ghr:warm_hibernate 2>/dev/null || true)
  if [ "$hibernate" = "true" ] &&
    aws ec2 stop-instances --region "$region" --instance-ids "$instance_id" --hibernate >/dev/null; then
    # Frozen until scale-up starts the instance; then the configuration is read below.
    echo "start-runner: prepared, hibernating until claimed"
  else
    aws ec2 stop-instances --region "$region" --instance-ids "$instance_id" >/dev/null
    echo "start-runner: prepared, stopping until claimed"
    agent_mode=warm
    exit 0
  fi
fi

parameters=$(aws ssm get-parameters-by-path --path "$config_path" --region "$region" --query 'Parameters[*].[Name,Value]' --output json)
setting() { jq -r --arg name "$config_path/$1" '.[] | select(.[0] == $name) | .[1]' <<<"$parameters"; }
run_as=$(setting run_as)
agent_mode=$(setting agent_mode)
enable_jit_config=$(setting enable_jit_config)
token_path=$(setting token_path)
disable_default_labels=$(setting disable_default_labels)
enable_cloudwatch=$(setting enable_cloudwatch)
metrics_namespace=$(setting metrics_namespace)
run_as=${run_as:-ec2-user}

if [ "$enable_cloudwatch" = "true" ] && command -v amazon-cloudwatch-agent-ctl >/dev/null 2>&1; then
  amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c "ssm:$config_path/cloudwatch_agent_config_runner" || true
fi

echo "start-runner: waiting for the runner configuration"
config=""
waited=0
while [ -z "$config" ] || [ "$config" = "None" ]; do
  config=$(aws ssm get-parameter --name "$token_path/$instance_id" --with-decryption --region "$region" \
    --query 'Parameter.Value' --output text 2>/dev/null || true)
  # A warm pool claim is replaced by the configuration before the instance starts.
  if [ -n "$config" ] && [ "$config" != "None" ] && [ "${config#ghr-warm-claim:}" = "$config" ]; then break; fi
  config=
  if [ "$waited" -ge "$TOKEN_WAIT_SECONDS" ]; then
    echo "start-runner: no runner configuration after ${TOKEN_WAIT_SECONDS}s"
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
aws ssm delete-parameter --name "$token_path/$instance_id" --region "$region" || true

if [ "$run_as" = "root" ]; then
  export RUNNER_ALLOW_RUNASROOT=1
fi
as_runner() {
  if [ "$run_as" = "$(id -un)" ]; then "$@"; else sudo -E -u "$run_as" "$@"; fi
}
chown -R "$run_as" "$RUNNER_DIR" 2>/dev/null || true
cd "$RUNNER_DIR"
if [ -f .runner ]; then
  # A runner that went back to the warm pool: its registration was deleted by scale-down.
  # Forget it (config.sh refuses to configure over it) and its service.
  echo "start-runner: forgetting the registration of an earlier runner on this instance"
  if [ -f .service ]; then
    ./svc.sh stop || true
    ./svc.sh uninstall || true
  fi
  rm -f .runner .credentials .credentials_rsaparams .service
fi
cat >.setup_info <<SETUP
[{"group": "Runner Image", "detail": "AMI id: $(meta ami-id || true)\nInstance type: $(meta instance-type || true)\nRegion: $region"}]
SETUP

# A warm pool instance started for a job: the time from scale-up's claim to the runner's start,
# as the metric WarmPoolClaimToRunnerStart (seconds) of the functions' namespace.
report_warm_start() {
  local claimed_at environment seconds
  claimed_at=$(tag ghr:warm_claimed_at 2>/dev/null || true)
  case "$claimed_at" in '' | None | *[!0-9]*) return 0 ;; esac
  if [ -z "$metrics_namespace" ] || [ "$metrics_namespace" = "None" ]; then return 0; fi
  seconds=$(($(date +%s) - claimed_at))
  environment=$(tag ghr:environment 2>/dev/null || true)
  aws cloudwatch put-metric-data --region "$region" --namespace "$metrics_namespace" \
    --metric-name WarmPoolClaimToRunnerStart --unit Seconds --value "$seconds" \
    --dimensions "Environment=$environment" || true
  echo "start-runner: ${seconds}s from the warm pool claim to the runner's start"
}
report_warm_start

if [ "$enable_jit_config" = "true" ] && [ "$agent_mode" = "ephemeral" ]; then
  echo "start-runner: starting the just-in-time runner"
  as_runner ./run.sh --jitconfig "$config"
  exit 0
fi

extra=()
if [ "$disable_default_labels" = "true" ]; then extra+=(--no-default-labels); fi
# The stored arguments are shell-quoted: `eval set --` restores them exactly, so labels with
# spaces or quotes reach config.sh intact.
eval "set -- $config"
as_runner ./config.sh "${extra[@]}" --unattended --name "$name_prefix$instance_id" --work _work "$@"
runner_id=$(jq -r '.agentId // empty' .runner 2>/dev/null || true)
if [ -n "$runner_id" ]; then
  aws ec2 create-tags --region "$region" --resources "$instance_id" --tags "Key=ghr:github_runner_id,Value=$runner_id" || true
fi

if [ "$agent_mode" = "ephemeral" ]; then
  echo "start-runner: starting the ephemeral runner"
  as_runner ./run.sh
else
  echo "start-runner: installing the runner service"
  ./svc.sh install "$run_as"
  ./svc.sh start
fi
