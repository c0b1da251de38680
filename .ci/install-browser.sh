#!/usr/bin/env bash
# Debian's chromium for tests/test_report.py, which renders a run report in a real headless browser
# (with --dump-dom: no WebDriver, so no chromium-driver). Does nothing when chromium is already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
