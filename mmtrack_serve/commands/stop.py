"""`mmtrack-serve stop`: stops the TorchServe that `serve` started."""
from pathlib import Path

from ..serving.launcher import Server, default_run_dir


def add_arguments(p):
    p.add_argument('--port-base', type=int, default=8080)
    p.add_argument('--run-dir', help='as given to serve (default from --port-base)')


def main(args):
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.port_base)
    server = Server(run_dir, args.port_base)
    if not server.ping():
        print(f'no server answers on port {args.port_base}')
        return 0
    server.stop()
    print(f'stopped the server on port {args.port_base} (logs: {server.log_dir})')
    return 0
