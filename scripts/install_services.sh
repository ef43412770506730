#!/usr/bin/env bash
# Debian programs that some tests drive. Each such test skips, saying why, when
# its program is missing, so nothing here may fail the setup: when they cannot
# be installed (not root, no apt-get, no package source) this says so and goes on.
#   chromium   tests/test_browser.py: the served mp4 plays in headless Chromium
set -uo pipefail

# COMMAND:DEBIAN_PACKAGE, one per service; add new ones here.
SERVICES=(chromium:chromium)

missing=()
for service in "${SERVICES[@]}"; do
  command -v "${service%%:*}" >/dev/null 2>&1 || missing+=("${service#*:}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "services: not installing ${missing[*]} (needs root and apt-get); the tests that use them will skip"
  exit 0
fi
echo "services: installing ${missing[*]} from Debian"
log="$(mktemp)"
if apt-get update -qq >"$log" 2>&1 \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$log" 2>&1; then
  rm -f "$log"
else
  echo "services: apt-get could not install ${missing[*]} (log: $log); the tests that use them will skip"
fi
exit 0
