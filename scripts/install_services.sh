#!/usr/bin/env bash
# Debian programs that some tests drive. Each such test skips, saying why, when
# its program is missing, so nothing here may fail the setup: when they cannot
# be installed (not root, no apt-get, no package source) this says so and goes on.
#   chromium   tests/test_browser.py: the served mp4 plays in headless Chromium
#   redis      tests/test_durable_streams.py, the bench: the Redis state store
#   RTSP       tests/test_live.py: an RTSP server (gst-rtsp-server through the
#              system python3's gi; tests/rtsp_server.py --check says if it runs)
set -uo pipefail

# COMMAND:DEBIAN_PACKAGE, one per service; add new ones here.
SERVICES=(chromium:chromium redis-server:redis-server)
# the RTSP server's packages, without their recommends (those add a desktop's
# worth of GL, VA and font packages that a server on 127.0.0.1 does not use)
RTSP_PACKAGES=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good)
RTSP_CHECK=(/usr/bin/python3 "$(dirname "$0")/../tests/rtsp_server.py" --check)

missing=()
for service in "${SERVICES[@]}"; do
  command -v "${service%%:*}" >/dev/null 2>&1 || missing+=("${service#*:}")
done
missing_rtsp=()
"${RTSP_CHECK[@]}" >/dev/null 2>&1 || missing_rtsp=("${RTSP_PACKAGES[@]}")
[[ ${#missing[@]} -eq 0 && ${#missing_rtsp[@]} -eq 0 ]] && exit 0

all_missing=("${missing[@]}" "${missing_rtsp[@]}")
if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "services: not installing ${all_missing[*]} (needs root and apt-get); the tests that use them will skip"
  exit 0
fi
echo "services: installing ${all_missing[*]} from Debian"
log="$(mktemp)"
ok=true
apt-get update -qq >"$log" 2>&1 || ok=false
if $ok && [[ ${#missing[@]} -gt 0 ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$log" 2>&1 || ok=false
fi
if $ok && [[ ${#missing_rtsp[@]} -gt 0 ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing_rtsp[@]}" >>"$log" 2>&1 || ok=false
fi
if $ok; then
  rm -f "$log"
else
  echo "services: apt-get could not install ${all_missing[*]} (log: $log); the tests that use them will skip"
fi
exit 0
