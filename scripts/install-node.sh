#!/usr/bin/env bash
# Makes sure Node.js >= 18.17 and npm are on PATH (the TypeScript client in clients/typescript: its
# generator, openapi-typescript, needs 18.17). Idempotent: does nothing when a recent enough node and npm
# are installed; otherwise installs Debian's nodejs and npm packages (bookworm: Node 18.19).
set -euo pipefail

node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null \
    && node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 17) ? 0 : 1)'
}

if node_ok; then
  echo "node $(node --version), npm $(npm --version)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "Node.js >= 18.17 with npm is needed and installing it needs root (no sudo found): install nodejs and npm" >&2
    exit 1
  fi
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y nodejs npm
if ! node_ok; then
  echo "the distribution's Node.js ($(node --version 2>/dev/null || echo none)) is older than 18.17: install a newer one (e.g. from nodejs.org)" >&2
  exit 1
fi
echo "node $(node --version), npm $(npm --version)"
