"""The seed's entry point: `python tools/torchserve/test_torchserve.py VIDEO CONFIG
CHECKPOINT MODEL_NAME [--inference-addr ...] [--result-video ...]`; the same as
`mmtrack-serve parity`."""
import sys

from mmtrack_serve.cli import main

if __name__ == '__main__':
    sys.exit(main(['parity'] + sys.argv[1:]))
