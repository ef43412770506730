#!/usr/bin/env bash
# TorchServe's frontend is Java: install Java 17 from Debian when it is missing.
set -euo pipefail
if command -v java >/dev/null 2>&1; then
  version="$(java -version 2>&1 | awk -F'"' '/version/ {print $2}' | cut -d. -f1)"
  if [[ "${version:-0}" -ge 11 ]]; then exit 0; fi
fi
if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "java: installing default-jre-headless (Java 17) from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null
else
  echo "java: TorchServe needs Java 17; install it (e.g. 'sudo apt-get install default-jre-headless') and run make again" >&2
  exit 1
fi
