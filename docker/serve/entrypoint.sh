#!/usr/bin/env bash
# Entry point of the mmtrack-serve image.
#   (no arguments) or `serve [TORCHSERVE OPTIONS]`: TorchServe in the
#       foreground on the model store, every .mar in it loaded;
#   anything else runs as given, e.g. `mmtrack2torchserve ...` or `bash`
#       (`torchserve --start ...` gets --foreground, or the container would stop).
# Environment: TS_DISABLE_TOKEN_AUTH=true turns token authorization off (the
# same as TorchServe's TS_DISABLE_TOKEN_AUTHORIZATION); TorchServe's own TS_*
# variables override config.properties; MODEL_STORE moves the store.
set -euo pipefail

HOME_DIR=/home/model-server
case "${TS_DISABLE_TOKEN_AUTH:-}" in
  true|TRUE|True|1|yes) export TS_DISABLE_TOKEN_AUTHORIZATION=true ;;
  false|FALSE|False|0|no) export TS_DISABLE_TOKEN_AUTHORIZATION=false ;;
  "") ;;
  *) echo "mmtrack-serve: TS_DISABLE_TOKEN_AUTH must be true or false, got '$TS_DISABLE_TOKEN_AUTH'" >&2; exit 1 ;;
esac
# (not fatal: other commands may run as another --user)
mkdir -p "${TEMP:-$HOME_DIR/tmp}" "${LOG_LOCATION:-$HOME_DIR/logs}" 2>/dev/null || true
# a pid file left by an earlier run of this container would make TorchServe
# think it is already running
rm -f "${TMPDIR:-/tmp}/.model_server.pid" 2>/dev/null || true

if [[ "${1:-}" == torchserve && " $* " == *" --start "* && " $* " != *" --foreground "* ]]; then
  set -- "$@" --foreground   # as pytorch/torchserve's Helm chart starts it
fi
if [[ $# -gt 0 && "$1" != serve && "$1" != -* ]]; then
  exec "$@"
fi
[[ "${1:-}" == serve ]] && shift

STORE="${MODEL_STORE:-$HOME_DIR/model-store}"
CONFIG="${TS_CONFIG_FILE:-$HOME_DIR/config.properties}"
if [[ ! -d "$STORE" || ! -r "$STORE" || ! -x "$STORE" ]]; then
  echo "mmtrack-serve: cannot read the model store $STORE as uid $(id -u);" \
       "mount a directory that uid $(id -u) can read (docs/docker.md)" >&2
  exit 1
fi
cd "$HOME_DIR"   # TorchServe writes key_file.json to its working directory

shopt -s nullglob
mars=("$STORE"/*.mar)
names=("${mars[@]##*/}")
echo "mmtrack-serve: TorchServe on $STORE: ${#mars[@]} model(s)${names:+: ${names[*]}}"
case "${TS_DISABLE_TOKEN_AUTHORIZATION:-false}" in
  true|TRUE|True)
    echo "mmtrack-serve: token authorization is OFF" ;;
  *)
    echo "mmtrack-serve: token authorization is on: the keys will be in $HOME_DIR/key_file.json" \
         "(docker exec CONTAINER cat key_file.json)" ;;
esac
exec torchserve --start --foreground --ncs --ts-config "$CONFIG" --model-store "$STORE" "$@"
