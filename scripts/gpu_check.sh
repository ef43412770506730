#!/usr/bin/env bash
# The GPU check: mmtrack-serve on CUDA, on a host that has Python 3.12 and a
# CUDA torch preinstalled and no network (about 10 minutes on 16 cores).
#
#   bash scripts/gpu_check.sh --prepare   here, with the package registry: puts
#                                         the wheels it needs into .whl-gpu/
#   bash scripts/gpu_check.sh             there, in a copy of the repo that
#                                         carries .whl-gpu/: installs them, builds
#                                         mmcv-full's CUDA ops (sm_90, all cores)
#                                         or reuses the wheel a last run left, and
#                                         runs on CUDA:
#     1. the core tests for the four task types, and the fast trackers' tests;
#     2. the serving tests, the served-equals-local parity check among them
#        (TorchServe needs Java 17+: left out, with the reason, where none is);
#     3. benchmarks/gpu.py: model alone / in-process / served seconds per video
#        (demo model, real-size SORT) and ByteTrack YOLOX-X at 1080p, frames/s.
#
# Everything goes to $OUT (or GPU_CHECK_OUT, default gpu_check_output/): the
# log, gpu.json and the mmcv-full wheel built, to carry in .whl-gpu/ next time.
# GPU_CHECK_DEVICE=cpu runs the same steps without CUDA (the check of this
# script on a machine without a GPU); PYTHON names the interpreter (python3);
# GPU_CHECK_PYTEST_ARGS and GPU_CHECK_BENCH_ARGS (e.g. -k ..., --no-yolox) go
# to pytest and benchmarks/gpu.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHEELS="$ROOT/.whl-gpu"
PYTHON="${PYTHON:-python3}"
DEVICE="${GPU_CHECK_DEVICE:-cuda:0}"
RESULTS="${OUT:-${GPU_CHECK_OUT:-$ROOT/gpu_check_output}}"
SITE="${GPU_CHECK_SITE:-/tmp/mmtrack-serve-gpu-site}"
# What the host lacks, pinned as requirements/constraints.txt pins them; torch,
# torchvision, numpy, opencv, scipy, pandas and the like are the host's own
# (numpy 2 there: mmtrack_serve.numpy_compat gives mmdet/mmtrack the names they
# use). A device call carries 64 MiB in all: PyAV alone is 35 MB. Where the tree
# has room, GPU_CHECK_NUMPY=1.26.4 carries that numpy too, and where the host
# has Java, GPU_CHECK_SERVED=1 TorchServe (42 MB).
PACKAGES=(
  "mmdet==2.28.2" "mmcls==0.25.0" "mmtrack==0.14.0" "yapf==0.40.1" addict terminaltables
  platformdirs lap motmetrics xmltodict pycocotools av dotty_dict attributes
)
[[ -z "${GPU_CHECK_NUMPY:-}" ]] || PACKAGES+=("numpy==$GPU_CHECK_NUMPY")
[[ -z "${GPU_CHECK_SERVED:-}" ]] || PACKAGES+=("torchserve==0.12.0" "torch-model-archiver==0.12.0" enum-compat)

log() { echo "gpu_check: $*"; }

prepare() {
  # afresh, but a CUDA mmcv-full wheel an earlier run built there stays
  mkdir -p "$WHEELS"
  find "$WHEELS" -maxdepth 1 -type f ! -name 'mmcv_full-*.whl' -delete
  # mmcv-full's setup.py imports torch even to say what it needs: .venv's python
  local py="${PREPARE_PYTHON:-$ROOT/.venv/bin/python}"
  log "downloading cp312 manylinux wheels into $WHEELS (no dependencies: each is named)"
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
    -d "$WHEELS" "${PACKAGES[@]}"
  log "mmcv-full 1.7.2 source, built there for the host's torch"
  "$py" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$WHEELS" "mmcv-full==1.7.2"
  local tree_kib wheels_kib
  tree_kib=$(git ls-files -z --cached --others --exclude-standard | du -ck --files0-from=- | tail -1 | cut -f1)
  wheels_kib=$(du -sk "$WHEELS" | cut -f1)
  log "ready: .whl-gpu $((wheels_kib / 1024)) MiB + the tree $((tree_kib / 1024)) MiB (a device call carries 64 MiB in all); carry .whl-gpu"
}

if [[ "${1:-}" == "--prepare" ]]; then
  prepare
  exit 0
fi

mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/gpu_check.log") 2>&1
START=$SECONDS
step() { log "[$(( (SECONDS - START) / 60 )) min] $*"; }

step "preflight"
[[ -d "$WHEELS" ]] || { log "no $WHEELS: run 'bash scripts/gpu_check.sh --prepare' where the registry is reachable, and carry it"; exit 1; }
"$PYTHON" - "$DEVICE" <<'EOF'
import platform, sys
import torch
device = sys.argv[1]
print(f'python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda})')
if device.startswith('cuda'):
    assert torch.cuda.is_available(), 'torch sees no CUDA device'
    print(f'GPU: {torch.cuda.get_device_name(0)}, capability {torch.cuda.get_device_capability(0)}')
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
JAVA="$(command -v java || true)"
[[ -n "$JAVA" ]] && java -version 2>&1 | head -1 || log "no java: the served steps are left out (TorchServe needs Java 17+)"

step "installing the carried wheels into $SITE (nothing is fetched)"
rm -rf "$SITE"
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
  $(ls "$WHEELS"/*.whl | grep -v '/mmcv_full-')
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SITE/bin:$PATH"

step "mmcv-full 1.7.2 with ops for this torch"
MMCV_WHEEL="${GPU_CHECK_MMCV_WHEEL:-$(ls "$WHEELS"/mmcv_full-1.7.2-cp312-*.whl 2>/dev/null | head -1)}"
if [[ -z "$MMCV_WHEEL" ]]; then
  BUILD="$(mktemp -d)"
  cuda_build=0
  [[ "$DEVICE" == cuda* ]] && cuda_build=1
  log "building from source (CUDA ops: $cuda_build, sm_90, $(nproc) jobs)"
  (cd "$BUILD" && MMCV_WITH_OPS=1 FORCE_CUDA="$cuda_build" TORCH_CUDA_ARCH_LIST="9.0" \
    MAX_JOBS="$(nproc)" "$PYTHON" -m pip wheel -q --no-index --no-build-isolation --no-deps \
    -w "$BUILD/out" "$WHEELS"/mmcv-full-1.7.2.tar.gz)
  MMCV_WHEEL="$(ls "$BUILD"/out/mmcv_full-*.whl)"
  cp "$MMCV_WHEEL" "$RESULTS/"
  log "built $(basename "$MMCV_WHEEL"): $RESULTS (carry it in .whl-gpu/ to skip this step)"
fi
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$MMCV_WHEEL"
"$PYTHON" - "$DEVICE" <<'EOF'
import sys
import numpy, torch, mmcv, mmcv.ops, mmdet, mmtrack, av, cv2
import mmtrack_serve
print(f'numpy {numpy.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, '
      f'mmtrack {mmtrack.__version__}, av {av.__version__}, opencv {cv2.__version__}')
if sys.argv[1].startswith('cuda'):
    from mmcv.ops import nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10]], dtype=torch.float32, device='cuda')
    kept, _ = nms(boxes, torch.tensor([0.9, 0.8], device='cuda'), 0.5)
    assert kept.is_cuda and len(kept) == 1, kept
    print('mmcv.ops runs on CUDA (nms)')
EOF

status=0
export MMTRACK_SERVE_TEST_DEVICE="$DEVICE"
eval "pytest_args=(${GPU_CHECK_PYTEST_ARGS:-})"     # quoted words stay whole: -k 'a or b'
eval "bench_args=(${GPU_CHECK_BENCH_ARGS:-})"
step "core and tracker tests on $DEVICE"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_core.py tests/test_trackers.py \
  tests/test_numpy_compat.py "${pytest_args[@]}" || status=1
if [[ -n "$JAVA" ]]; then
  step "serving tests on $DEVICE, parity among them"
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_serving.py "${pytest_args[@]}" || status=1
fi

step "benchmark figures on $DEVICE"
served=()
[[ -n "$JAVA" ]] || served=(--no-served)
[[ "$DEVICE" == cuda* ]] || served+=(--quick)     # a CPU takes minutes a 1080p frame
"$PYTHON" benchmarks/gpu.py --device "$DEVICE" --output "$RESULTS/gpu.json" "${served[@]}" \
  "${bench_args[@]}" || status=1

step "done (exit $status): $RESULTS/gpu_check.log, $RESULTS/gpu.json"
exit "$status"
