#!/usr/bin/env bash
# Final stage of docker/stack/Dockerfile: the pinned stack of
# scripts/setup_env.sh, in the same order, into the venv.
#   install-stack.sh deps MMCV_DIR   torch, mmcv-full, torchvision, mmdet/mmcls/mmtrack, TorchServe
# This package itself goes in on top, in the server image (docker/serve/install-package.sh).
set -euo pipefail
# shellcheck source=docker/stack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
STEP="${1:?usage: install-stack.sh deps MMCV_DIR}"

[[ "$STEP" == deps ]] || { echo "install-stack.sh: unknown step $STEP" >&2; exit 2; }
MMCV_DIR="${2:?}"
mapfile -t index_args < <(torch_index_args)
echo "stack: [1/4] torch 2.13.0"
"${PIP[@]}" install "${index_args[@]}" "torch==2.13.0"
"${PIPC[@]}" "setuptools>=77.0.3,<81" "numpy==1.23.5" "opencv-python-headless==4.11.0.86"
echo "stack: [2/4] mmcv-full 1.7.2 with ops"
# --no-deps and its requirements by name: a wheel built where cv2 was not
# importable requires opencv-python, whose cv2 needs libGL and would replace
# the headless one
"${PIPC[@]}" --no-deps "$MMCV_DIR"/mmcv_full-1.7.2-*.whl
"${PIPC[@]}" addict packaging Pillow pyyaml "yapf==0.40.1"
echo "stack: [3/4] torchvision 0.28.0 (importable next to a CPU torch)"
"${PIP[@]}" install --no-deps "${index_args[@]}" "torchvision==0.28.0"
"$VENV/bin/python" "$BUILD_DIR/patch_torchvision.py"
echo "stack: [4/4] mmdet, mmcls, mmtrack, TorchServe"
"${PIPC[@]}" -r "$BUILD_DIR/requirements/runtime.txt"
# mmtrack pins pandas<=1.3.5 and scipy<=1.7.3, which have no Python 3.11 wheels.
"${PIPC[@]}" --no-deps "mmtrack==0.14.0"

cd /
"$VENV/bin/python" - <<'PY'
import numpy, torch, mmcv, mmcv.ops, mmdet, mmtrack, av, cv2, ts, yaml
assert numpy.__version__ == "1.23.5", numpy.__version__
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert "libx264" in av.codecs_available, "PyAV lacks libx264"
print(f"stack: torch {torch.__version__} (CUDA {torch.version.cuda}), mmcv {mmcv.__version__}, "
      f"mmdet {mmdet.__version__}, mmtrack {mmtrack.__version__}, av {av.__version__}, "
      f"opencv {cv2.__version__}, torchserve {ts.__version__}")
PY
command -v torchserve >/dev/null
