#!/usr/bin/env bash
# The benchmark's peer trackers, in a venv of their own (.venv-peers): Roboflow's
# `trackers` (Apache-2.0) needs numpy 2, the runtime pins numpy 1.23.5, and no
# peer ever goes into the runtime. `make bench` calls this; benchmarks/tracker_peers.py
# runs in it. Idempotent: a stamp makes a second run return at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
VENV="${PEERS_VENV:-$ROOT/.venv-peers}"
STAMP="$VENV/.mmtrack-serve-peers"
# what is installed, pinned: the versions the issue's table and BENCHMARKS.md name
PACKAGES=("trackers==2.6.1" "supervision==0.26.1" "numpy>=2.0.2,<2.3" "scipy>=1.13.1"
          "opencv-python-headless>=4.8" "rich>=13" "requests>=2.28" "pydeprecate>=0.8"
          "matplotlib>=3.6" "pyyaml>=5.3" "defusedxml>=0.7.1" "pillow>=9.4" "tqdm>=4.62")
WANT="$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "bench peers: $VENV is up to date"
  exit 0
fi
command -v "$PYTHON" >/dev/null || { echo "bench peers: $PYTHON not found" >&2; exit 1; }
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip_() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
echo "bench peers: installing ${PACKAGES[0]} and its dependencies into $VENV"
# trackers and supervision ask for opencv-python (with GUI libraries); the
# headless build is the same cv2 without them: install them without their deps
pip_ install "${PACKAGES[@]:2}"
pip_ install --no-deps "${PACKAGES[0]}" "${PACKAGES[1]}"
"$VENV/bin/python" -c "import trackers, supervision; from importlib.metadata import version; print('bench peers: trackers', version('trackers'), 'supervision', version('supervision'))"
echo "$WANT" > "$STAMP"
