#!/usr/bin/env bash
# Install Debian's chromium (used headless by the report's browser test) unless one is on PATH.
# Needs root or sudo; the report tests skip without chromium only outside CI.
set -euo pipefail
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "chromium already installed: $(command -v "$name")"
        exit 0
    fi
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
command -v chromium
