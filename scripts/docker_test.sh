#!/usr/bin/env bash
# `make docker-test`: the container image end to end on this machine, with no
# Docker engine and no registry: podman, runc and debootstrap from Debian (as
# root), a Debian bookworm base image made by debootstrap + `podman import`,
# hadolint on the Dockerfiles, the CPU image built on that base
# (DOCKER_VARIANT=cpu: bookworm's python3 is 3.11; the stack image first, then
# the server image from docker/serve/), then tests/test_docker.py against it:
# store mounted, ports on 127.0.0.1, a tiny model converted, a video sent with
# curl, an H.264 mp4 back, token authorization checked, the containers
# removed, and the README's `docker build -t mmtrack-serve:latest docker/serve/`.
# Podman's storage, the base image and pip's cache mount stay on the machine:
# a later run rebuilds only the layers whose inputs changed.
#
# Exits 77 when podman cannot be had or run here (scripts/docker_podman_setup.sh).
#
#   ENGINE=docker  use a running Docker engine instead (base: python:3.11-slim-bookworm)
#   IMAGE          tag to build and test (default mmtrack-serve:latest)
#   PY             the Python with the project installed (default .venv/bin/python)
#   PYTEST_ARGS    more pytest arguments
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export IMAGE="${IMAGE:-mmtrack-serve:latest}"
export ENGINE="${ENGINE:-podman}"
PY="${PY:-$ROOT/.venv/bin/python}"
LOCAL_BASE=localhost/mmtrack-serve-base:bookworm
start=$SECONDS

if [[ "$ENGINE" == podman ]]; then
  BASE_IMAGE="$LOCAL_BASE" bash scripts/docker_podman_setup.sh
  export BASE_IMAGE="${BASE_IMAGE:-$LOCAL_BASE}"
fi
bash scripts/docker_lint.sh

t=$SECONDS
DOCKER_VARIANT=cpu bash scripts/docker_build.sh
build_s=$((SECONDS - t))

t=$SECONDS
read -r -a extra <<< "${PYTEST_ARGS:-}"
MMTRACK_SERVE_DOCKER_TEST=1 MMTRACK_SERVE_DOCKER_ENGINE="$ENGINE" MMTRACK_SERVE_DOCKER_IMAGE="$IMAGE" \
  "$PY" -m pytest tests/test_docker.py -v -p no:cacheprovider "${extra[@]}"
test_s=$((SECONDS - t))
echo "docker-test: image build ${build_s} s, tests ${test_s} s, all $((SECONDS - start)) s"
