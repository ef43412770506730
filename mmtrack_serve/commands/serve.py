"""`mmtrack-serve serve`: TorchServe on a model store, returning once models are READY."""
import json
from pathlib import Path

from ..errors import InputError
from ..serving.launcher import DEFAULT_LIMIT_BYTES, Server, default_run_dir, is_loopback, write_config


def add_arguments(p):
    p.add_argument('--model-store', required=True, help='folder holding .mar files')
    p.add_argument('--models', nargs='+', default=None, metavar='NAME=FILE.mar',
                   help='models to load (default: every .mar in the store)')
    p.add_argument('--port-base', type=int, default=8080,
                   help='inference port; management is +1, metrics +2, gRPC +3 and +4 (default 8080)')
    p.add_argument('--host', default='127.0.0.1',
                   help='inference address (default 127.0.0.1; token auth turns on off loopback)')
    p.add_argument('--workers', type=int, default=1, help='workers per model (default 1)')
    p.add_argument('--max-size', type=int, default=DEFAULT_LIMIT_BYTES,
                   help=f'request and response limit in bytes (default {DEFAULT_LIMIT_BYTES})')
    p.add_argument('--run-dir', help='config, logs and pid file (default ~/.local/state/mmtrack-serve/server-PORT)')
    p.add_argument('--limit', action='append', default=[], metavar='[MODEL:]NAME=VALUE',
                   help='override a request limit set at conversion, for MODEL or (no MODEL) every '
                        'model: NAME is max_frames, max_pixels, max_seconds, max_decoded_pixels or '
                        'time_budget_s; 0 turns it off (repeatable)')
    p.add_argument('--foreground', action='store_true', help='stay attached until stopped')
    p.add_argument('--timeout', type=int, default=600, help='seconds to wait for READY')


def _limit_env(overrides):
    """The workers' environment for ``--limit`` overrides (read by the handler)."""
    from ..limits import LIMITS_ENV, parse_override
    by_model = {}
    for text in overrides:
        try:
            model, name, value = parse_override(text)
        except ValueError as e:
            raise InputError(str(e)) from None
        by_model.setdefault(model, {})[name] = value
    return {LIMITS_ENV: json.dumps(by_model)} if by_model else {}


def main(args):
    env = _limit_env(args.limit)
    store = Path(args.model_store)
    if not store.is_dir():
        raise InputError(f'no such model store: {store}')
    models = args.models or []
    for model in models:
        name, _, mar = model.partition('=')
        if not (store / (mar or f'{name}.mar')).is_file():
            raise InputError(f'no {mar or name + ".mar"} in {store}')
    if not models and not list(store.glob('*.mar')):
        raise InputError(f'no .mar files in {store}')
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.port_base)
    server = Server(run_dir, args.port_base, args.host, env=env)
    if server.ping():
        raise InputError(f'a server already answers on port {args.port_base}: '
                         f'`mmtrack-serve stop --port-base {args.port_base}` first')
    config = write_config(run_dir, store, models, args.port_base, args.host, args.workers, args.max_size)
    auth = 'off (loopback only)' if is_loopback(args.host) else \
        f'on: the key is in {run_dir / "tmp"}/key_file.json'
    print(f'config: {config} (token auth {auth}; request/response limit {args.max_size} bytes)')
    if args.limit:
        print(f'request limits overridden: {", ".join(args.limit)}')
    if args.foreground:
        return server.start(store, foreground=True)
    server.start(store)
    try:
        names = server.wait_ready([m.partition('=')[0] for m in models] or None, args.timeout)
    except Exception:
        server.stop()
        raise
    for name in names:
        print(f'READY: {server.inference_url}/predictions/{name}')
    print(f'metrics: {server.metrics_url}/metrics   management: {server.management_url}/models')
    print(f'logs: {server.log_dir}')
    print(f'try: curl {server.inference_url}/predictions/{names[0]} -T video.mp4 -o result.mp4')
    print(f'stop: mmtrack-serve stop --port-base {args.port_base}')
    return 0
