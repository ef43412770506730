#!/usr/bin/env bash
# `make docker`: builds the mmtrack-serve image in two steps, with docker when a
# Docker engine answers, else with podman (docs/docker.md):
#   1. the stack image $STACK_IMAGE from docker/stack/Dockerfile (context: the
#      repository root): system packages and the pinned Python stack; its
#      layers stay cached until requirements/ or the base image change;
#   2. this package's source staged as docker/serve/mmtrack-serve-src.tar.gz,
#      then `ENGINE build -t $IMAGE docker/serve/`: the README's (MMTracking's)
#      command, which therefore builds the same image when run by hand.
#
#   scripts/docker_build.sh [--stage-only]   (--stage-only: only the source
#                   archive, for a by-hand `docker build docker/serve/` after an edit)
#
#   IMAGE           tag to build (default mmtrack-serve:latest)
#   STACK_IMAGE     tag of the stack image (default localhost/mmtrack-serve-stack:latest,
#                   which docker/serve/Dockerfile builds on unless told otherwise)
#   ENGINE          docker or podman (default: docker if `docker info` works, else podman)
#   DOCKER_VARIANT  gpu (default: the stack Dockerfile's CUDA base images, torch from PyPI)
#                   or cpu (python:3.11-slim-bookworm, CPU torch, CPU-ops mmcv-full)
#   BASE_IMAGE, BUILD_IMAGE, TORCH_INDEX_URL, MMCV_FIND_LINKS, MMCV_CUDA,
#   TORCH_CUDA_ARCH_LIST, MAX_JOBS   passed on to the stack build where set
#   DOCKER_BUILD_ARGS  more arguments for both `docker build` / `podman build`
#
# For the cpu variant, the wheels this machine already has are staged in
# docker/stack/wheels/ (ignored by git) so that the build neither recompiles
# mmcv-full (9-13 minutes) nor downloads torch: the mmcv-full wheel that
# `make setup` cached, and a torch 2.13.0+cpu wheel from pip's find-links.
# Without them the Dockerfile compiles / downloads as usual. A gpu build
# removes what a cpu build staged; wheels you put there yourself are used.
# PIP_CERT, where set (a CA bundle for a TLS-intercepting proxy), goes to the
# stack build as the secret pip_cert; it is not stored in the image.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
IMAGE="${IMAGE:-mmtrack-serve:latest}"
DEFAULT_STACK_IMAGE=localhost/mmtrack-serve-stack:latest   # docker/serve/Dockerfile's default
STACK_IMAGE="${STACK_IMAGE:-$DEFAULT_STACK_IMAGE}"
VARIANT="${DOCKER_VARIANT:-gpu}"
CACHE="${MMTRACK_SERVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmtrack-serve}"
STAGE="docker/stack/wheels"
STAGED="$STAGE/.staged"   # the wheels this script put there (the rest are yours)
shopt -s nullglob
CPU_BASE=docker.io/library/python:3.11-slim-bookworm

say() { echo "docker: $*"; }

# This package's source as an archive in docker/serve/, the server image's
# build context: git's files (tracked, or new and not ignored), with fixed
# order, times and owners, so that the same source gives the same bytes and
# the engine's layer cache holds.
stage_package() {
  local archive=docker/serve/mmtrack-serve-src.tar.gz list
  list="$(mktemp)"
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -co --exclude-standard -- setup.py README.md mmtrack_serve
  else
    find setup.py README.md mmtrack_serve -type f
  fi | grep -v -e '__pycache__/' -e '\.pyc$' | while read -r f; do if [[ -f "$f" ]]; then echo "$f"; fi; done \
     | LC_ALL=C sort > "$list"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=go-w,a+r \
    --transform 's,^,mmtrack-serve/,' -cf - -T "$list" | gzip -n > "$archive.tmp"
  if cmp -s "$archive.tmp" "$archive"; then
    rm -f "$archive.tmp"
  else
    mv "$archive.tmp" "$archive"
  fi
  say "staged $archive ($(wc -l < "$list") files of this package)"
  rm -f "$list"
}

stage_package
if [[ "${1:-}" == --stage-only ]]; then
  exit 0
elif [[ -n "${1:-}" ]]; then
  echo "docker: unknown argument $1 (usage: scripts/docker_build.sh [--stage-only])" >&2
  exit 2
fi

if [[ -z "${ENGINE:-}" ]]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    ENGINE=docker
  elif command -v podman >/dev/null 2>&1; then
    ENGINE=podman
  else
    echo "docker: neither a running Docker engine nor podman; install one" \
         "(Debian: apt-get install podman), or run \`make docker-test\` as root to set podman up" >&2
    exit 1
  fi
fi

args=(build -f docker/stack/Dockerfile -t "$STACK_IMAGE")
case "$VARIANT" in
  gpu) ;;
  cpu)
    BASE_IMAGE="${BASE_IMAGE:-$CPU_BASE}"
    BUILD_IMAGE="${BUILD_IMAGE:-$BASE_IMAGE}"
    # mmcv-full with CPU ops, as `make setup` built it
    if [[ -z "${MMCV_FIND_LINKS:-}" ]] && ! compgen -G "$STAGE/mmcv_full-1.7.2-cp311-*.whl" >/dev/null; then
      for wheel in "$CACHE"/wheels/mmcv_full-1.7.2-cp311-*.whl; do
        cp "$wheel" "$STAGE/" && echo "${wheel##*/}" >> "$STAGED" && say "staged ${wheel##*/} (from $CACHE/wheels)"
        break
      done
    fi
    # a local torch +cpu wheel; else the CPU index
    if ! compgen -G "$STAGE/torch-2.13.0+cpu-cp311-*.whl" >/dev/null; then
      links="${PIP_FIND_LINKS:-$(pip config get global.find-links 2>/dev/null || true)}"
      for dir in $links; do
        for wheel in "${dir#file://}"/torch-2.13.0+cpu-cp311-cp311-*x86_64.whl; do
          cp "$wheel" "$STAGE/" && echo "${wheel##*/}" >> "$STAGED" && say "staged ${wheel##*/} (from $dir)"
          break 2
        done
      done
    fi
    if ! compgen -G "$STAGE/torch-2.13.0+cpu-cp311-*.whl" >/dev/null; then
      TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
    fi
    ;;
  *) echo "docker: DOCKER_VARIANT must be gpu or cpu, got $VARIANT" >&2; exit 2 ;;
esac
if [[ "$VARIANT" == gpu ]]; then
  # the CPU wheels staged for a cpu build (CPU torch, CPU-only mmcv ops) must
  # not end up in a GPU image
  for wheel in "$STAGE"/*.whl; do
    if [[ -f "$STAGED" ]] && grep -qxF "${wheel##*/}" "$STAGED"; then
      rm -f "$wheel" && say "removed ${wheel##*/} (staged for a cpu build)"
    fi
  done
  rm -f "$STAGED"
  if compgen -G "$STAGE/torch-*+cpu-*.whl" >/dev/null; then
    echo "docker: $STAGE holds a CPU torch wheel, which a GPU image would install;" \
         "remove it or build with DOCKER_VARIANT=cpu" >&2
    exit 1
  fi
fi

for name in BASE_IMAGE BUILD_IMAGE TORCH_INDEX_URL MMCV_FIND_LINKS MMCV_CUDA TORCH_CUDA_ARCH_LIST MAX_JOBS; do
  [[ -z "${!name:-}" ]] || args+=(--build-arg "$name=${!name}")
done
if [[ -n "${PIP_CERT:-}" && -f "$PIP_CERT" ]]; then
  args+=(--secret "id=pip_cert,src=$PIP_CERT")
fi
common=()
if [[ "$ENGINE" == podman ]]; then
  # the docker format keeps SHELL and HEALTHCHECK, which OCI images drop
  common+=(--format docker)
  # podman does not look for <Dockerfile>.dockerignore by itself
  args+=(--ignorefile docker/stack/Dockerfile.dockerignore)
else
  export DOCKER_BUILDKIT=1
fi
# shellcheck disable=SC2206
[[ -z "${DOCKER_BUILD_ARGS:-}" ]] || common+=($DOCKER_BUILD_ARGS)

staged=("$STAGE"/*.whl)
say "[1/2] stack: $ENGINE ${args[*]} ${common[*]} . (variant $VARIANT; wheels in $STAGE: ${staged[*]##*/})"
start=$SECONDS
"$ENGINE" "${args[@]}" "${common[@]}" .
stack_s=$((SECONDS - start))

serve=(build -t "$IMAGE")
[[ "$STACK_IMAGE" == "$DEFAULT_STACK_IMAGE" ]] || serve+=(--build-arg "STACK_IMAGE=$STACK_IMAGE")
say "[2/2] server: $ENGINE ${serve[*]} ${common[*]} docker/serve/"
t=$SECONDS
"$ENGINE" "${serve[@]}" "${common[@]}" docker/serve/
say "built $IMAGE on $STACK_IMAGE with $ENGINE in $((SECONDS - start)) s" \
    "(stack $stack_s s, server $((SECONDS - t)) s)"
