#!/usr/bin/env bash
# Build stage of docker/stack/Dockerfile: puts one mmcv-full 1.7.2 wheel for
# CPython 3.11 in $1, from the first source that has one:
#   1. docker/stack/wheels/mmcv_full-1.7.2-cp311-*.whl in the build context
#      (`make docker` copies the one `make setup` built, when there is one);
#   2. the MMCV_FIND_LINKS build arg (OpenMMLab's index for a torch/CUDA pair,
#      or any find-links page), prebuilt wheels only;
#   3. the sdist, compiled with ops, as scripts/setup_env.sh does (9-13 minutes
#      on 2 cores for CPU ops; CUDA ops, when nvcc is in the build image and
#      MMCV_CUDA is auto or 1, take much longer).
set -euo pipefail
OUT="${1:?usage: build-mmcv.sh OUT_DIR}"
# shellcheck source=docker/stack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mkdir -p "$OUT"

shopt -s nullglob
given=("$WHEELS"/mmcv_full-1.7.2-cp311-*.whl)
if ((${#given[@]})); then
  echo "mmcv-full: using ${given[0]##*/} from docker/stack/wheels"
  cp "${given[0]}" "$OUT/"
  exit 0
fi

bash "$BUILD_DIR/install-system.sh" build
if [[ -n "${MMCV_FIND_LINKS:-}" ]]; then
  echo "mmcv-full: prebuilt wheel from $MMCV_FIND_LINKS"
  "${PIP[@]}" download --no-deps --only-binary :all: --find-links "$MMCV_FIND_LINKS" \
    -d "$OUT" "mmcv-full==1.7.2"
  exit 0
fi

mapfile -t index_args < <(torch_index_args)
"${PIP[@]}" install "${index_args[@]}" "torch==2.13.0"
# OpenCV first, as in scripts/setup_env.sh: mmcv's setup.py adds a requirement
# on opencv-python (which needs libGL) when it cannot import cv2.
"${PIPC[@]}" "setuptools>=77.0.3,<81" wheel ninja "numpy==1.23.5" \
  "opencv-python-headless==4.11.0.86" addict packaging Pillow pyyaml "yapf==0.40.1"
case "${MMCV_CUDA:-auto}" in
  1|true) cuda=1 ;;
  0|false) cuda=0 ;;
  *) if command -v nvcc >/dev/null 2>&1; then cuda=1; else cuda=0; fi ;;
esac
if [[ "$cuda" == 1 ]]; then
  echo "mmcv-full: compiling from source with CPU and CUDA ops ($(nvcc --version | tail -1)," \
       "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-}, MAX_JOBS=${MAX_JOBS:-2})"
else
  echo "mmcv-full: compiling from source with CPU ops (9-13 minutes on 2 cores, MAX_JOBS=${MAX_JOBS:-2})"
fi
build="$(mktemp -d)"
(cd "$build" && MMCV_WITH_OPS=1 FORCE_CUDA="$cuda" MAX_JOBS="${MAX_JOBS:-2}" \
  "${PIP[@]}" wheel --no-build-isolation --no-deps --no-binary mmcv-full \
  -c "$CONSTRAINTS" -w "$build/out" "mmcv-full==1.7.2")
# Debug symbols make the ops library 79 MB; stripped it is 2 MB.
(cd "$build/out" && mkdir x && cd x && unzip -q ../mmcv_full-*.whl \
  && strip --strip-debug mmcv/_ext*.so \
  && "$VENV/bin/python" -m wheel pack . -d "$OUT" >/dev/null)
rm -rf "$build"
ls -l "$OUT"
