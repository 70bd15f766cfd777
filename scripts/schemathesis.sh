#!/usr/bin/env bash
# Property-based API testing with schemathesis against a live `admin-provisioner serve`.
#
# Starts the server on a free loopback port in a temporary folder (SQLite + the built-in emulator),
# bootstraps an admin, completes its first login through the API to get an ID token, then runs
# schemathesis against /openapi.json with that token: every check (no 5xx, responses match the schema,
# status codes documented, content types, negative data refused, ...), a fixed seed and a bounded number
# of examples per operation so the run is reproducible and takes about a minute.
#
# Usage: scripts/schemathesis.sh [path/to/admin-provisioner]   (needs .venv/bin/st: see scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="${1:-$ROOT/target/debug/admin-provisioner}"
ST="$ROOT/.venv/bin/st"
EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
SEED="${SCHEMATHESIS_SEED:-8}"

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export DATABASE_URL="sqlite://$WORK/app.db" COGNITO_EMULATOR_STATE="$WORK/emu.db" MAILBOX_DIR="$WORK/mailbox"
export BIND_ADDR="127.0.0.1:$PORT" RUST_LOG="${RUST_LOG:-warn}"
# Generous limits so the fuzzer exercises the handlers rather than the throttle (429 is still documented).
export AUTH_RATE_LIMIT_PER_MINUTE=100000 ADMIN_RATE_LIMIT_PER_MINUTE=100000
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null

EMAIL="fuzz.admin@example.com"
"$BIN" bootstrap-admin --email "$EMAIL" >/dev/null
TEMP="$(grep -rh "temporary password is" "$MAILBOX_DIR" | sed -E 's/.*temporary password is (.*)\.\r?$/\1/' | tail -n1)"
TOKEN="$(python3 - "$PORT" "$EMAIL" "$TEMP" <<'PY'
import json, sys, urllib.request
port, email, temp = sys.argv[1:4]
body = json.dumps({"username": email, "temporary_password": temp, "new_password": "Fuzz-Admin-Pass-9"}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/auth/new-password", body,
                             {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["id_token"])
PY
)"

# --exclude-path-regex: the /scim/v2 endpoints take a SCIM token, which this admin token is not (refused by
# design); scim2-tester and tests/scim.rs cover them.
# --request-timeout: above GET /api/events' longest long-poll (wait=30 s), which is an answer, not a hang.
run_schemathesis() {
  "$ST" --config-file "$ROOT/scripts/schemathesis.toml" run "http://127.0.0.1:$PORT/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --exclude-path-regex '^/scim/' \
    --checks all \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --workers 2 \
    --request-timeout 35 \
    --suppress-health-check all \
    --warnings off \
    --output-sanitize true 2>&1 | tee "$WORK/st.log"
  return "${PIPESTATUS[0]}"
}
set +e
run_schemathesis
STATUS=$?
# CPython 3.11's parser is not thread-safe with two workers: hypothesis describing a lambda can die with
# "SystemError: AST constructor recursion depth mismatch" inside schemathesis itself (a tool error, seen
# once in three runs, no request involved). Only then, and only when no check failed, run once more.
if [ "$STATUS" -ne 0 ] && grep -q "AST constructor recursion depth mismatch" "$WORK/st.log" \
  && ! grep -qE "^_+ .* _+$" <(sed -n '/= FAILURES =/,$p' "$WORK/st.log"); then
  echo "schemathesis hit CPython's AST recursion-depth bug (a tool error, not a finding): running it once more" >&2
  run_schemathesis
  STATUS=$?
fi
set -e
if [ "$STATUS" -ne 0 ]; then
  echo "schemathesis failed; server log:" >&2
  tail -n 50 "$WORK/server.log" >&2
fi
exit "$STATUS"
