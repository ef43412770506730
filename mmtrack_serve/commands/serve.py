"""`mmtrack-serve serve`: TorchServe on a model store, returning once models are READY."""
import json
import os
from pathlib import Path

from ..errors import InputError
from ..handlers.state_store import DEFAULT_MAX_STATE_MB, MAX_STATE_MB_ENV, STATE_STORE_ENV, check_store
from ..serving.launcher import DEFAULT_LIMIT_BYTES, Server, default_run_dir, is_loopback, write_config
from ..trackers import TRACKER_IMPL_ENV, TRACKER_IMPL_HELP, TRACKER_IMPLS


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
    p.add_argument('--state-store', metavar='URL',
                   help='where streams keep their state between chunks, so that any worker (of '
                        'any server on the same store) takes a sequence\'s next chunk and a '
                        'restarted worker goes on with it: dir:PATH, redis://HOST:PORT/DB, or '
                        'none (each worker\'s memory only); over each model\'s own (its '
                        f'converter\'s --state-store). Default: ${STATE_STORE_ENV}, else each '
                        'model\'s, whose default is dir:RUN_DIR/state')
    p.add_argument('--max-state-mb', type=float, default=None,
                   help='largest snapshot of one stream\'s state the store takes; a larger one '
                        f'keeps that stream in one worker\'s memory (default {DEFAULT_MAX_STATE_MB})')
    p.add_argument('--tracker-impl', choices=TRACKER_IMPLS, default=None,
                   help=TRACKER_IMPL_HELP + f'; over each model\'s own (its converter\'s '
                        f'--tracker-impl). Default: ${TRACKER_IMPL_ENV}, else each model\'s')
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


def _state_env(args):
    """The workers' environment for ``--state-store`` and ``--max-state-mb``,
    checked here so that a bad URL is one line, not a worker that never starts."""
    env = {}
    url = args.state_store or os.environ.get(STATE_STORE_ENV)
    if url:
        try:
            check_store(url)
        except (ValueError, ImportError) as e:
            raise InputError(f'--state-store {url}: {e}') from None
        env[STATE_STORE_ENV] = url
    if args.max_state_mb is not None:
        if args.max_state_mb < 0:
            raise InputError('--max-state-mb must be 0 (no limit) or more')
        env[MAX_STATE_MB_ENV] = f'{args.max_state_mb:g}'
    return env


def main(args):
    env = {**_limit_env(args.limit), **_state_env(args)}
    if args.tracker_impl:
        env[TRACKER_IMPL_ENV] = args.tracker_impl
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
    store_url = env.get(STATE_STORE_ENV) or f'each model\'s own (default dir:{server.state_dir})'
    print(f'stream state: {store_url}')
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
