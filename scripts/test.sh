#!/usr/bin/env bash
# Runs every test of admin-provisioner. Installs and starts what the tests need, so it passes on a fresh
# machine: moto (AWS Cognito emulator, in a virtualenv), Chromium + ChromeDriver (browser test), and
# PostgreSQL (store suite and the saga matrix on PostgreSQL). Then: fmt, clippy, all test suites.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

step() { printf '\n==> %s\n' "$*"; }

step "moto (Python virtualenv in .venv)"
if [ ! -x .venv/bin/moto_server ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]'
fi
export MOTO_SERVER_BIN="$ROOT/.venv/bin/moto_server"
"$MOTO_SERVER_BIN" --help >/dev/null

step "Chromium and ChromeDriver"
scripts/install-browser.sh

step "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
psql "$TEST_POSTGRES_URL" -qtAc 'select 1' >/dev/null

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo test --workspace --doc
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
