#!/usr/bin/env bash
# Run by docker/serve/Dockerfile as root, on the stack image: this package
# (from mmtrack-serve-src.tar.gz, which `make docker` stages in docker/serve/),
# the import check of what a worker loads, then the server's config,
# entrypoint and health check put in place.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$HERE/mmtrack-serve-src.tar.gz"
if [[ ! -f "$SRC" ]]; then
  echo "mmtrack-serve: docker/serve/ holds no mmtrack-serve-src.tar.gz: run \`make docker\` from the repository root (it stages it, and builds this image)" >&2
  exit 1
fi
# shellcheck source=docker/stack/common.sh
source /opt/mmtrack-serve-build/common.sh   # the stack's pip settings and constraints
"${PIPC[@]}" --no-deps --no-build-isolation "$SRC"
cd /
"$VENV/bin/python" - <<'PY'
import mmtrack
import mmtrack_serve
import mmtrack_serve.handlers.mmtrack_handler  # noqa: F401  (what a worker imports)
print(f"package: mmtrack-serve from {mmtrack_serve.__file__}, mmtrack {mmtrack.__version__}")
PY
command -v mmtrack2torchserve mmtrack-serve torchserve >/dev/null
install -m 0644 "$HERE/config.properties" /home/model-server/config.properties
install -m 0755 "$HERE/entrypoint.sh" /usr/local/bin/mmtrack-serve-entrypoint
install -m 0755 "$HERE/healthcheck.py" /usr/local/bin/mmtrack-serve-healthcheck
