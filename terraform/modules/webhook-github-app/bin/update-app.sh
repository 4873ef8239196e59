#!/usr/bin/env bash
# Sets the GitHub App's webhook URL and secret (PATCH /app/hook/config, authenticated as the App
# with a JWT). Inputs come from the environment, never the command line (where any local user
# could read them): APP_ID, APP_PRIVATE_KEY_BASE64, WEBHOOK_ENDPOINT, WEBHOOK_SECRET, and
# GITHUB_API_URL (https://api.github.com, or GHES's https://<host>/api/v3).
# GHR_TEST_GITHUB_API_URL, when set, replaces the API URL (the tests' fake GitHub).
set -euo pipefail

for name in APP_ID APP_PRIVATE_KEY_BASE64 WEBHOOK_ENDPOINT WEBHOOK_SECRET; do
  if [ -z "${!name:-}" ]; then
    echo "update-app.sh: $name is not set" >&2
    exit 2
  fi
done
for tool in curl openssl base64; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "update-app.sh: $tool is needed to set the App's webhook; set it by hand: URL $WEBHOOK_ENDPOINT, content type json" >&2
    exit 2
  fi
done
api=${GHR_TEST_GITHUB_API_URL:-${GITHUB_API_URL:-https://api.github.com}}
api=${api%/}

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
umask 077
if ! printf '%s' "$APP_PRIVATE_KEY_BASE64" | base64 -d >"$workdir/key.pem" 2>/dev/null; then
  echo "update-app.sh: the App key is not base64 (give base64 of the .pem file)" >&2
  exit 2
fi

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# JSON string escaping for the two values we send (backslash and double quote; no control
# characters are valid in a URL or accepted by GitHub in a secret).
json_string() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

# Issued 60 s in the past against clock drift, valid 9 minutes (GitHub allows 10).
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
payload=$(printf '{"iat":%d,"exp":%d,"iss":"%s"}' "$((now - 60))" "$((now + 540))" "$APP_ID" | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$workdir/key.pem" -binary | b64url)

printf '{"url":%s,"content_type":"json","insecure_ssl":"0","secret":%s}' \
  "$(json_string "$WEBHOOK_ENDPOINT")" "$(json_string "$WEBHOOK_SECRET")" >"$workdir/body.json"
# The JWT goes in a header file, not on curl's command line.
printf 'Authorization: Bearer %s.%s.%s\n' "$header" "$payload" "$signature" >"$workdir/headers"

status=$(curl --silent --show-error --max-time 30 --retry 3 --retry-connrefused \
  --output "$workdir/answer.json" --write-out '%{http_code}' \
  --request PATCH "$api/app/hook/config" \
  --header @"$workdir/headers" \
  --header 'Accept: application/vnd.github+json' \
  --header 'X-GitHub-Api-Version: 2022-11-28' \
  --header 'Content-Type: application/json' \
  --data-binary @"$workdir/body.json") || status=000

if [ "$status" != "200" ]; then
  message=$(sed -n 's/.*"message": *"\([^"]*\)".*/\1/p' "$workdir/answer.json" 2>/dev/null | head -n 1)
  echo "update-app.sh: GitHub answered $status ${message:-(no answer)} to PATCH $api/app/hook/config for App $APP_ID;" \
    "set the App's webhook URL to $WEBHOOK_ENDPOINT by hand" >&2
  exit 1
fi
echo "The webhook of GitHub App $APP_ID now points at $WEBHOOK_ENDPOINT"
