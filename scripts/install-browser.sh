#!/usr/bin/env bash
# Installs Debian's chromium for the test that opens the HTML report in a headless browser.
# Idempotent and quiet when chromium is already there. Needs root (apt) to install.
set -euo pipefail
say() { echo "install-browser: $*" >&2; }

[ -x /usr/bin/chromium ] && exit 0
command -v apt-get >/dev/null || { say "no apt-get here: install chromium by hand"; exit 1; }
[ "$(id -u)" = 0 ] || { say "needs root to install chromium"; exit 1; }
say "installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends chromium >/dev/null
