#!/usr/bin/env bash
# The browser test (tests/test_browser.py) drives Debian's chromium through its chromedriver.
# Install both from the system's package manager if they are missing; nothing is downloaded
# by the tests themselves.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "the browser test needs chromium and chromedriver: sudo apt-get install chromium chromium-driver" >&2
    exit 1
fi
echo "installing chromium and chromium-driver for the browser test (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
