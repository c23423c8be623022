#!/usr/bin/env bash
# Install Debian's headless-capable Chromium if no chromium binary is on PATH.
# Idempotent: exits 0 at once when `chromium` (or `chromium-browser`) is present.
# Used by the HTML report test (tests/integration/test_officer_tools.py); needs root
# (or sudo) and a reachable Debian mirror the first time only.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "install-chromium.sh: chromium is missing and we are not root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1
