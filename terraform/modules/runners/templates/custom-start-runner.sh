# ---- start the runner (this project's start-runner.sh and job hooks, for a custom template) ----
# The job hooks tag the instance with the job markers scale-down relies on; a job hook the
# template configured itself (ACTIONS_RUNNER_HOOK_JOB_STARTED/COMPLETED in .env, as upstream's
# templates do) runs from ours, after the marker.
export RUNNER_DIR=$${RUNNER_DIR:-/opt/actions-runner}
export HOOKS_DIR="$RUNNER_DIR/hooks"
mkdir -p "$HOOKS_DIR"
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
for phase in started completed; do
  key="ACTIONS_RUNNER_HOOK_JOB_$${phase^^}"
  own=$(sed -n "s/^$key=//p" "$RUNNER_DIR/.env" 2>/dev/null | tail -n 1)
  if [ -n "$own" ] && [ "$own" != "$HOOKS_DIR/job-$phase.sh" ]; then
    ln -sf "$own" "$HOOKS_DIR/user-job-$phase.sh"
  fi
  sed -i "/^$key=/d" "$RUNNER_DIR/.env" 2>/dev/null || true
  echo "$key=$HOOKS_DIR/job-$phase.sh" >>"$RUNNER_DIR/.env"
done
chmod 755 "$RUNNER_DIR/start-runner.sh" "$HOOKS_DIR"/*.sh
%{ if ghes_url != "" && !ghes_ssl_verify ~}
echo "GITHUB_ACTIONS_RUNNER_TLS_NO_VERIFY=1" >>"$RUNNER_DIR/.env"
%{ endif ~}
bash "$RUNNER_DIR/start-runner.sh"
