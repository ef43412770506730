#!/usr/bin/env bash
# `make demo-model`: retrains the demo model (about 15 minutes on 2 CPU cores),
# publishes it into demo/ (the committed copy `make demo` serves) and prints its
# held-out figures beside the ones committed before (demo/figures.json).
# Synthetic worlds, training run and logs go to work_dirs/demo_model; a finished
# training there is reused (delete work_dirs/demo_model/work to train again).
# Extra arguments go to mmtrack_serve.training.demo_model (see its --help).
# On a machine busy with other work, OMP_NUM_THREADS=1 is much faster (see there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
mkdir -p work_dirs
"$PY" -m mmtrack_serve.training.demo_model --cache-dir work_dirs/demo_model "$@" \
    2>&1 | tee work_dirs/demo_model.log
