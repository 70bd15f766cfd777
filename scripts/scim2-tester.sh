#!/usr/bin/env bash
# SCIM 2.0 conformance with scim2-tester (PyPI, pinned in scripts/test.sh) against a live
# `admin-provisioner serve`: SQLite + the built-in Cognito emulator in a temporary folder, one bootstrapped
# admin (so the last-admin guard is not what the tester meets), and a SCIM token issued with the CLI.
#
# Usage: scripts/scim2-tester.sh [path/to/admin-provisioner]   (needs .venv/bin/python with scim2-tester)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="${1:-$ROOT/target/debug/admin-provisioner}"
PY="${SCIM2_TESTER_PYTHON:-$ROOT/.venv/bin/python3}"

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export DATABASE_URL="sqlite://$WORK/app.db" COGNITO_EMULATOR_STATE="$WORK/emu.db" MAILBOX_DIR="$WORK/mailbox"
export BIND_ADDR="127.0.0.1:$PORT" RUST_LOG="${RUST_LOG:-warn}"
"$BIN" bootstrap-admin --email "scim.owner@example.com" >/dev/null
TOKEN="$("$BIN" scim-token create --name scim2-tester 2>/dev/null)"
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null

set +e
"$PY" "$ROOT/scripts/run_scim2_tester.py" "http://127.0.0.1:$PORT/scim/v2" "$TOKEN" "$@"
STATUS=$?
set -e
if [ "$STATUS" -ne 0 ]; then
  echo "--- server log (last 40 lines) ---"
  tail -n 40 "$WORK/server.log"
fi
exit "$STATUS"
