#!/usr/bin/env bash
# Install Debian's headless-capable Chromium and its WebDriver (chromium-driver).
# Idempotent: exits 0 at once when `chromium` (or `chromium-browser`) and
# `chromedriver` are both present; otherwise installs only what is missing
# (apt-get update first: a fresh container has empty package lists).
#
# Exit status: 0 when chromium is available afterwards. A chromedriver that could
# not be installed is reported on stderr but does not fail the script, so the HTML
# report test (tests/integration/test_officer_tools.py, chromium only) still runs;
# the officer console browser test (tests/integration/test_console.py, Selenium
# with /usr/bin/chromedriver) checks for chromedriver itself and skips naming this
# script's stderr. Needs root (or sudo) and a reachable Debian mirror the first
# time only.
set -euo pipefail
have_browser() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}
have_driver() {
    command -v chromedriver >/dev/null 2>&1
}
if have_browser && have_driver; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        have_browser || { echo "install-chromium.sh: chromium is missing and we" \
                               "are not root" >&2; exit 1; }
        echo "install-chromium.sh: chromedriver is missing and we are not root" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if ! have_browser; then
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core \
        >/dev/null
fi
if ! have_driver; then
    $SUDO apt-get install -y -qq --no-install-recommends chromium-driver >/dev/null \
        || echo "install-chromium.sh: could not install chromium-driver" >&2
    have_driver || echo "install-chromium.sh: chromedriver is still missing" >&2
fi
have_browser
