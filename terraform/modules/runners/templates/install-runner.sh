#!/bin/bash
# Installs the GitHub Actions runner into RUNNER_DIR: from the syncer's S3 copy
# (RUNNER_TARBALL_S3), a URL (RUNNER_TARBALL_URL), or GitHub's latest release.
set -euo pipefail

RUNNER_DIR=${RUNNER_DIR:-/opt/actions-runner}
RUNNER_TARBALL_S3=${RUNNER_TARBALL_S3:-}
RUNNER_TARBALL_URL=${RUNNER_TARBALL_URL:-}
RUNNER_ARCHITECTURE=${RUNNER_ARCHITECTURE:-x64}
IMDS_URL=${IMDS_URL:-http://169.254.169.254}

mkdir -p "$RUNNER_DIR" /opt/hostedtoolcache
cd "$RUNNER_DIR"

if [ -n "$RUNNER_TARBALL_URL" ]; then
  curl -fsSL --retry 5 -o actions-runner.tar.gz "$RUNNER_TARBALL_URL"
elif [ -n "$RUNNER_TARBALL_S3" ]; then
  token=$(curl -sf -X PUT "$IMDS_URL/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
  region=$(curl -sf -H "X-aws-ec2-metadata-token: $token" "$IMDS_URL/latest/meta-data/placement/region")
  aws s3 cp "$RUNNER_TARBALL_S3" actions-runner.tar.gz --region "$region"
else
  version=$(curl -fsSL --retry 5 https://api.github.com/repos/actions/runner/releases/latest | jq -r .tag_name | sed 's/^v//')
  curl -fsSL --retry 5 -o actions-runner.tar.gz \
    "https://github.com/actions/runner/releases/download/v$version/actions-runner-linux-$RUNNER_ARCHITECTURE-$version.tar.gz"
fi
tar xzf actions-runner.tar.gz
rm -f actions-runner.tar.gz

if [ -x ./bin/installdependencies.sh ] && command -v apt-get >/dev/null 2>&1; then
  ./bin/installdependencies.sh
elif command -v dnf >/dev/null 2>&1; then
  for _ in 1 2 3 4 5; do dnf install -y libicu && break; sleep 5; done
fi
echo "install-runner: installed in $RUNNER_DIR"
