#!/usr/bin/env bash
# Installs Debian's `chromium` (headless rendering test of the evaluation
# report) unless /usr/bin/chromium is already there. Idempotent; needs root
# or passwordless sudo. The Makefile test target calls it.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo -n)
else
  echo "install_chromium.sh: /usr/bin/chromium is missing and this user cannot install it" \
       "(not root, no sudo); run: apt-get install -y chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
test -x /usr/bin/chromium || { echo "install_chromium.sh: apt-get finished but /usr/bin/chromium is missing" >&2; exit 1; }
/usr/bin/chromium --version
