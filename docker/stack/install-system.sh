#!/usr/bin/env bash
# Run by docker/stack/Dockerfile as root: the system part of the image.
#   install-system.sh build    Python 3.11 with headers and a C++ compiler (builds mmcv-full)
#   install-system.sh runtime  Python 3.11, Java 17, tini, the model-server user
# Python 3.11 comes from the base image where it has one (python:3.11-*
# images), else from the distribution (Debian bookworm's python3 is 3.11;
# Ubuntu 22.04 has python3.11 in universe). Either way a venv at $VIRTUAL_ENV
# holds every Python package, so the system Python stays untouched (PEP 668).
set -euo pipefail
MODE="${1:?usage: install-system.sh build|runtime}"
VENV="${VIRTUAL_ENV:-/opt/venv}"
export DEBIAN_FRONTEND=noninteractive

packages=(ca-certificates)
python=""
for candidate in /usr/local/bin/python3.11 /usr/bin/python3.11; do
  if [[ -x "$candidate" ]] && "$candidate" -c 'import venv, ensurepip' 2>/dev/null; then
    python="$candidate"
    break
  fi
done
if [[ -z "$python" ]]; then
  packages+=(python3.11 python3.11-venv)
fi
if [[ "$MODE" == build ]] && ! { [[ -n "$python" ]] && "$python" -c \
    'import os, sysconfig; assert os.path.isfile(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null; }; then
  packages+=(python3.11-dev)
fi
case "$MODE" in
  build) packages+=(g++ make binutils unzip) ;;
  # tini: PID 1 that passes signals to TorchServe's whole process group
  runtime) packages+=(openjdk-17-jre-headless tini) ;;
  *) echo "install-system.sh: unknown mode $MODE" >&2; exit 2 ;;
esac

apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
rm -rf /var/lib/apt/lists/*

python="${python:-/usr/bin/python3.11}"
"$python" -m venv "$VENV"
"$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'

if [[ "$MODE" == runtime ]]; then
  java -version 2>&1 | head -1
  # uid and gid 1000, numeric in the Dockerfile's USER so that Kubernetes'
  # runAsNonRoot can check it; a base image's own user 1000 (ubuntu:24.04 has
  # one) makes way.
  other="$(getent passwd 1000 | cut -d: -f1 || true)"
  [[ -z "$other" ]] || userdel --remove "$other" 2>/dev/null || userdel "$other"
  other="$(getent group 1000 | cut -d: -f1 || true)"
  [[ -z "$other" ]] || groupdel "$other"
  groupadd --gid 1000 model-server
  useradd --create-home --shell /bin/bash --uid 1000 --gid 1000 model-server
  install -d -o model-server -g model-server /home/model-server/model-store \
    /home/model-server/tmp /home/model-server/logs
fi
