#!/bin/bash
# Runner job-completed hook (ACTIONS_RUNNER_HOOK_JOB_COMPLETED): runs the user's hook, then marks
# the job done (see job-marker.sh); scale-down may remove the runner once idle.
HOOKS_DIR=${HOOKS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
if [ -f "$HOOKS_DIR/user-job-completed.sh" ]; then
  bash "$HOOKS_DIR/user-job-completed.sh"
fi

bash "$HOOKS_DIR/job-marker.sh" completed
exit 0
