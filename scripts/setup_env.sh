#!/usr/bin/env bash
# Creates .venv with the pinned stack (requirements/constraints.txt, README.md's
# Quick start). Idempotent: a second run only checks a stamp and returns in seconds.
#
# The slow step is mmcv-full 1.7.2, which has no wheel for torch 2.13 and is built
# from its sdist with CPU ops (9-13 minutes on 2 cores). The built wheel is kept
# in $MMTRACK_SERVE_CACHE (default ~/.cache/mmtrack-serve), outside the repo, so
# a fresh clone on the same machine reuses it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# PYTHON=python3.12 VENV=.venv-py312 NUMPY=1.26.4 makes the second stack
# `make test-py312` checks (see requirements/constraints.txt).
PYTHON="${PYTHON:-python3.11}"
VENV="$(realpath -m "${VENV:-$ROOT/.venv}")"
NUMPY="${NUMPY:-1.23.5}"
CACHE="${MMTRACK_SERVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmtrack-serve}"
WHEELS="$CACHE/wheels"
STAMP="$VENV/.mmtrack-serve-setup"
# The stamp holds a hash of everything that decides what gets installed.
WANT="$( (cat requirements/*.txt scripts/setup_env.sh scripts/patch_torchvision.py setup.py; echo "$PYTHON $NUMPY") | sha256sum | cut -c1-16)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "setup: $VENV is up to date"
  exit 0
fi

# pyenv's shim answers only for its selected versions: look among the others too.
if ! "$PYTHON" --version >/dev/null 2>&1 && command -v pyenv >/dev/null; then
  PYTHON="$(ls -d "$(pyenv root)"/versions/*/bin/"$PYTHON" 2>/dev/null | sort -V | tail -1)"
fi
"${PYTHON:-false}" --version >/dev/null 2>&1 || { echo "setup: ${PYTHON:-the interpreter} not found; install Python 3.11 (or 3.12 for the second stack)" >&2; exit 1; }
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PYTAG="$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
# requirements/constraints.txt with this stack's numpy in place of the default one.
CONSTRAINTS="$VENV/constraints.txt"
sed "s/^numpy==.*/numpy==$NUMPY/" "$ROOT/requirements/constraints.txt" > "$CONSTRAINTS"
# This machine's pip config names local mirror folders that may be absent;
# pip warns once per package about each: noise, filtered out.
quiet_pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
PIP=(quiet_pip)
PIPC=("${PIP[@]}" install -c "$CONSTRAINTS")

echo "setup: [1/6] torch 2.13.0 (CPU wheel where one is on disk)"
"${PIP[@]}" install -q "torch==2.13.0"
"${PIPC[@]}" -q "setuptools>=77.0.3,<81" wheel ninja "numpy==$NUMPY" "opencv-python-headless==4.11.0.86"

echo "setup: [2/6] mmcv-full 1.7.2 with ops"
mkdir -p "$WHEELS"
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops" 2>/dev/null; then
  # One wheel per Python version (cp311, cp312), each built once per machine.
  if ! ls "$WHEELS"/mmcv_full-1.7.2-"$PYTAG"-*.whl >/dev/null 2>&1; then
    echo "setup: building mmcv-full for $PYTAG from source (9-13 minutes on 2 cores, once per machine)"
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    "${PIPC[@]}" -q "addict" "packaging" "Pillow" "pyyaml" "yapf==0.40.1"
    (cd "$BUILD" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" FORCE_CUDA=0 \
      "${PIP[@]}" wheel --no-build-isolation --no-deps --no-binary mmcv-full \
      -c "$CONSTRAINTS" -w "$BUILD/out" "mmcv-full==1.7.2")
    # Debug symbols make the ops library 79 MB; stripped it is 2 MB.
    (cd "$BUILD/out" && mkdir -p x "$BUILD/packed" && cd x && unzip -q ../mmcv_full-*.whl \
      && strip --strip-debug mmcv/_ext*.so \
      && "$VENV/bin/python" -m wheel pack . -d "$BUILD/packed" >/dev/null)
    cp "$BUILD"/packed/mmcv_full-1.7.2-*.whl "$WHEELS/"
  fi
  "${PIPC[@]}" -q "$WHEELS"/mmcv_full-1.7.2-"$PYTAG"-*.whl
fi

echo "setup: [3/6] torchvision (importable next to CPU torch)"
"${PIP[@]}" install -q --no-deps "torchvision==0.28.0"
"$VENV/bin/python" scripts/patch_torchvision.py

echo "setup: [4/6] mmdet, mmcls, mmtrack, serving and evaluation packages"
"${PIPC[@]}" -q -r requirements/runtime.txt -r requirements/tests.txt
# mmtrack pins pandas<=1.3.5 and scipy<=1.7.3, which have no Python 3.11 wheels.
"${PIPC[@]}" -q --no-deps "mmtrack==0.14.0"

echo "setup: [5/6] this package (editable)"
"${PIPC[@]}" -q --no-deps --no-build-isolation -e .

echo "setup: [6/6] checking imports"
NUMPY="$NUMPY" "$VENV/bin/python" - <<'EOF'
import os
import numpy, torch, mmcv, mmcv.ops, mmdet, mmtrack, av, cv2, ts, yaml
assert numpy.__version__ == os.environ["NUMPY"], numpy.__version__
assert torch.__version__.startswith("2.13.0"), torch.__version__
codecs = av.codecs_available
assert "libx264" in codecs, "PyAV lacks libx264"
print(f"setup: Python {os.sys.version.split()[0]}, numpy {numpy.__version__}, torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, "
      f"mmtrack {mmtrack.__version__}, av {av.__version__}, opencv {cv2.__version__}")
EOF
echo "$WANT" > "$STAMP"
echo "setup: done ($VENV)"
