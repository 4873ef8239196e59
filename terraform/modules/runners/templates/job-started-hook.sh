#!/bin/bash
# Runner job-started hook (ACTIONS_RUNNER_HOOK_JOB_STARTED): marks this instance busy (see
# job-marker.sh), then runs the user's hook. A failure of the marker never fails the job.
HOOKS_DIR=${HOOKS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
bash "$HOOKS_DIR/job-marker.sh" started

if [ -f "$HOOKS_DIR/user-job-started.sh" ]; then
  bash "$HOOKS_DIR/user-job-started.sh"
fi
exit 0
