#!/usr/bin/env bash
# Installs Chromium and ChromeDriver for tests/browser.rs (Debian/Ubuntu packages).
# Idempotent: does nothing when both /usr/bin/chromium and /usr/bin/chromedriver already exist.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "chromium and chromedriver are already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium chromium-driver

/usr/bin/chromium --version
/usr/bin/chromedriver --version
