# shellcheck shell=bash disable=SC2034
# Sourced by the image build scripts in docker/stack/ (inside the build only).
VENV="${VIRTUAL_ENV:-/opt/venv}"
BUILD_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONSTRAINTS="$BUILD_DIR/requirements/constraints.txt"
WHEELS=/wheels          # docker/stack/wheels of the build context (copied into the build stage)
# Build args that were not given arrive as empty strings, which pip would
# take as an empty index URL.
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL TORCH_INDEX_URL MMCV_FIND_LINKS; do
  [[ -n "${!var:-}" ]] || unset "$var"
done
# A CA bundle for a TLS-intercepting proxy, passed as a build secret
# (`--secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt`); never stored in the image.
if [[ -s /run/secrets/pip_cert ]]; then
  export PIP_CERT=/run/secrets/pip_cert
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_PROGRESS_BAR=off
PIP=("$VENV/bin/python" -m pip)
PIPC=("${PIP[@]}" install -c "$CONSTRAINTS")

# torch 2.13.0 (and torchvision 0.28.0, --no-deps): a wheel in docker/stack/wheels
# first (e.g. the +cpu one), else TORCH_INDEX_URL where given
# (https://download.pytorch.org/whl/cpu for a CPU-only image), else PyPI (CUDA 13).
torch_index_args() {
  local args=(--find-links "$WHEELS")
  [[ -z "${TORCH_INDEX_URL:-}" ]] || args+=(--index-url "$TORCH_INDEX_URL")
  printf '%s\n' "${args[@]}"
}
