"""`mmtrack2torchserve CONFIG [CHECKPOINT] --output-folder STORE --model-name NAME`

Writes a self-contained STORE/NAME.mar: the fully resolved config (every
``_base_`` merged), the checkpoint, every weight file the config names (bundled
and the config pointed at the copies), the handler, and a model-config.yaml.
A worker loading it needs no network. The same archive serves whole videos and
streams (chunks of a live video in a sequence; bounds in model-config.yaml).
"""
import argparse
import re
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Iterable, Optional, Union

import yaml

from mmtrack_serve import limits
from mmtrack_serve.errors import ConfigError, InputError, MMTrackServeError
# Streaming (README, "Streaming"): sessions per worker and their idle timeout,
# the handler's defaults.
from mmtrack_serve.handlers.sequences import DEFAULT_IDLE_MS, DEFAULT_MAX_SEQUENCES
from mmtrack_serve.handlers.state_store import DEFAULT_MAX_STATE_MB, parse_url
from mmtrack_serve.trackers import DEFAULT_TRACKER_IMPL, TRACKER_IMPL_HELP, TRACKER_IMPLS
# model-config.yaml's responseTimeout: the server's default, defined once there
from mmtrack_serve.serving.launcher import DEFAULT_RESPONSE_TIMEOUT_S

HANDLER = Path(__file__).resolve().parents[1] / 'handlers' / 'mmtrack_handler.py'
# TorchServe's own rule for model names, which also keeps them out of paths.
MODEL_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_\-.]*$')
# what a served request may ask for: the server's defaults, and a time budget
# inside the response timeout
DEFAULT_LIMITS = limits.SERVER_DEFAULTS.with_values(
    {'time_budget_s': limits.time_budget_for(DEFAULT_RESPONSE_TIMEOUT_S)})
DOWNLOAD_DIR = Path.home() / '.cache' / 'mmtrack-serve' / 'downloads'
# --sequence-batching: whole-video requests that may wait per worker beside the
# sequences (TorchServe counts each as a sequence while it waits or runs), the
# chunks one sequence may queue, and the batch wait (ms) for a request.
PLAIN_REQUEST_SLOTS = 16
SEQUENCE_QUEUE = 4
SEQUENCE_BATCH_DELAY_MS = 10


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog='mmtrack2torchserve',
        description='Convert an MMTracking config and checkpoint into a TorchServe .mar')
    p.add_argument('config', help='config file, or the name of a config shipped in mmtrack')
    p.add_argument('checkpoint', nargs='?', help='checkpoint holding the whole model; may be '
                   'omitted when all weights come through init_cfg (SORT, DeepSORT, Tracktor)')
    p.add_argument('--output-folder', required=True, help='model store to write NAME.mar into')
    p.add_argument('--model-name', required=True, help='model name (letters, digits, _ - .)')
    p.add_argument('--model-version', default='1.0')
    p.add_argument('-f', '--force', action='store_true', help='overwrite an existing .mar')
    p.add_argument('--weights', nargs='+', default=[], metavar='PART=PATH',
                   help='local files for the config\'s init_cfg weights, e.g. '
                        'detector=faster-rcnn.pth reid=reid.pth')
    p.add_argument('--download', action='store_true',
                   help='fetch weights the config names by URL (once, then bundled)')
    p.add_argument('--workers', type=int, default=1, help='workers per model (model-config.yaml)')
    p.add_argument('--detector-batch', type=int, default=0, metavar='N',
                   help='MOT: frames of a whole video whose detector runs in one pass; results '
                        'are those of frame by frame (default 0: by input size, up to 8 small '
                        'inputs and 1 large one; 1 turns it off)')
    p.add_argument('--torch-threads', type=int, default=0, metavar='N',
                   help='CPU: torch threads per worker (default 0: the CPU cores divided among '
                        'the workers)')
    p.add_argument('--max-sequences', type=int, default=DEFAULT_MAX_SEQUENCES, metavar='N',
                   help='streaming: sequences a worker holds at once; more get HTTP 503 '
                        f'(default {DEFAULT_MAX_SEQUENCES}; 0 turns streaming off)')
    p.add_argument('--sequence-idle-ms', type=int, default=DEFAULT_IDLE_MS, metavar='MS',
                   help='streaming: a sequence without a request for this long is evicted '
                        f'(default {DEFAULT_IDLE_MS})')
    p.add_argument('--sequence-batching', action='store_true',
                   help="streaming with several workers: TorchServe's sequence batching routes "
                        'each sequence to one worker (see the README for its caveats)')
    p.add_argument('--state-store', default='default', metavar='URL',
                   help='streaming: where a sequence\'s state is kept between chunks, so that '
                        'any worker takes its next chunk and a restarted worker goes on with it: '
                        'dir:PATH, redis://HOST:PORT/DB, none (each worker\'s memory only), or '
                        'default (a folder in the server\'s run dir); the server\'s '
                        '--state-store overrides it (default: default)')
    p.add_argument('--max-state-mb', type=float, default=DEFAULT_MAX_STATE_MB, metavar='MB',
                   help='streaming: the largest state snapshot of one sequence the store takes; '
                        'a larger one keeps its sequence in one worker\'s memory '
                        f'(default {DEFAULT_MAX_STATE_MB:g}; 0: no limit)')
    p.add_argument('--tracker-impl', choices=TRACKER_IMPLS, default=DEFAULT_TRACKER_IMPL,
                   help=TRACKER_IMPL_HELP + '; the server\'s --tracker-impl overrides it')
    p.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                   help='override config settings before bundling')
    limits.add_arguments(p, DEFAULT_LIMITS)
    return p.parse_args(argv)


PathLike = Union[str, Path]


def convert(config: PathLike, checkpoint: Optional[PathLike], *, output_folder: PathLike,
            model_name: str, model_version: str = '1.0', force: bool = False,
            weights: Iterable[str] = (), download: bool = False, workers: int = 1,
            cfg_options: Optional[dict] = None, max_sequences: int = DEFAULT_MAX_SEQUENCES,
            sequence_idle_ms: int = DEFAULT_IDLE_MS, sequence_batching: bool = False,
            detector_batch: int = 0, torch_threads: int = 0,
            request_limits: Optional[dict] = None, state_store: str = 'default',
            max_state_mb: float = DEFAULT_MAX_STATE_MB,
            tracker_impl: str = DEFAULT_TRACKER_IMPL) -> Path:
    """Writes the .mar and returns its path. ``request_limits``: {limit name:
    value (0 or None: none)} over the served defaults (``limits``)."""
    from mmtrack_serve import mmtrack_compat as compat
    from mmtrack_serve.tasks import task_type_for

    model_config_text = _model_config_yaml(workers, max_sequences, sequence_idle_ms,
                                           sequence_batching, detector_batch, torch_threads,
                                           request_limits, state_store, max_state_mb,
                                           tracker_impl)
    if not MODEL_NAME.match(model_name):
        raise InputError(f'model name {model_name!r} is not allowed: use letters, digits, '
                         '"_", "-" and "." and start with a letter or digit')
    store = Path(output_folder)
    store.mkdir(parents=True, exist_ok=True)
    mar = store / f'{model_name}.mar'
    if mar.exists() and not force:
        raise InputError(f'{mar} exists: pass -f/--force to overwrite it')
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise InputError(f'no such checkpoint: {checkpoint}')
    cfg = compat.load_config(config, cfg_options)
    task = task_type_for(cfg).name
    compat.check_runnable(cfg)         # a base or search config cannot be served: say so now
    compat.record_source(cfg)          # the bundled config.py keeps its name for messages

    with tempfile.TemporaryDirectory(prefix='mmtrack2torchserve-') as staging:
        staging = Path(staging)
        if checkpoint is not None:
            # the checkpoint holds every weight: nothing left to fetch
            compat.strip_pretrained(cfg.model)
        else:
            _bundle_init_weights(cfg, _parse_weights(weights), download, staging)
        cfg.dump(str(staging / 'config.py'))
        model_config = staging / 'model-config.yaml'
        model_config.write_text(model_config_text)
        archive(model_name, model_version, checkpoint, staging, model_config, store, force)
    print(f'wrote {mar} ({mar.stat().st_size / 2**20:.1f} MiB, {task.upper()} model '
          f'{cfg.model.type}{", checkpoint " + Path(checkpoint).name if checkpoint else ""})')
    print(f'next: mmtrack-serve serve --model-store {store} --models {model_name}={mar.name}')
    return mar


def _parse_weights(items):
    parts = {}
    for item in items:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise InputError(f'--weights takes PART=PATH (e.g. detector=det.pth), got {item!r}')
        if not Path(path).is_file():
            raise InputError(f'--weights {name}: no such file: {path}')
        parts[name] = Path(path)
    return parts


def _bundle_init_weights(cfg, given, download, staging):
    """Copies every init_cfg weight into ``staging/weights`` and points the
    config at the copies (paths relative to the archive)."""
    from mmtrack_serve import mmtrack_compat as compat
    entries = list(compat.pretrained_entries(cfg.model))
    if not entries:
        print('warning: no checkpoint and no init_cfg weights: the model has random weights',
              file=sys.stderr)
    used = set()
    for key, source in entries:
        part = _part_name(key)
        override = given.get(part) or given.get(key)
        used.update(n for n in (part, key) if n in given)
        if override is not None:
            local = override
        elif compat._is_url(source):
            if not download:
                raise ConfigError(
                    f'{key} names a URL ({source}) and nothing may be downloaded at serve time: '
                    f'pass --weights {part}=LOCAL_FILE, give a CHECKPOINT holding the whole model, '
                    'or add --download to fetch it now and bundle it')
            local = _download(source)
        elif Path(source).is_file():
            local = Path(source)
        else:
            raise ConfigError(f'{key} names {source}, which is not a file: '
                              f'pass --weights {part}=LOCAL_FILE')
        target = Path('weights') / f'{part}.pth'
        (staging / 'weights').mkdir(exist_ok=True)
        shutil.copy2(local, staging / target)
        _set_pretrained(cfg.model, key, str(target))
    unused = set(given) - used
    if unused:
        names = ', '.join(part for part, _ in ((_part_name(k), k) for k, _ in entries))
        raise InputError(f'--weights {", ".join(sorted(unused))}: the config has no such '
                         f'init_cfg weight (it has: {names or "none"})')


def _part_name(key):
    """'model.detector.init_cfg' -> 'detector'; 'model.reid.init_cfg' -> 'reid'."""
    parts = [p for p in re.split(r'[.\[\]]', key) if p and p not in ('model', 'init_cfg', 'pretrained')
             and not p.isdigit()]
    return '_'.join(parts) or 'model'


def _set_pretrained(model_cfg, key, path):
    node = model_cfg
    tokens = re.findall(r'[^.\[\]]+', key)[1:]
    for token in tokens[:-1]:
        node = node[int(token)] if token.isdigit() else node[token]
    last = tokens[-1]
    if last == 'pretrained':
        node['pretrained'] = path
    elif last.isdigit():
        node[int(last)]['checkpoint'] = path
    else:
        node[last]['checkpoint'] = path


def _download(url):
    from tqdm import tqdm
    DOWNLOAD_DIR.mkdir(parents=True, exist_ok=True)
    target = DOWNLOAD_DIR / url.rstrip('/').split('/')[-1].split('?')[0]
    if target.is_file():
        print(f'using {target} (downloaded before)')
        return target
    partial = target.with_suffix(target.suffix + '.part')
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, 'wb') as out:
            total = int(response.headers.get('Content-Length') or 0) or None
            with tqdm(total=total, unit='B', unit_scale=True, desc=target.name) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b''):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise ConfigError(f'cannot download {url}: {e}') from None
    partial.rename(target)
    return target


def _model_config_yaml(workers, max_sequences=DEFAULT_MAX_SEQUENCES,
                       sequence_idle_ms=DEFAULT_IDLE_MS, sequence_batching=False,
                       detector_batch=0, torch_threads=0, request_limits=None,
                       state_store='default', max_state_mb=DEFAULT_MAX_STATE_MB,
                       tracker_impl=DEFAULT_TRACKER_IMPL):
    """model-config.yaml. ``handler.sequences`` bounds the handler's streaming
    sessions (per worker); ``handler.detector_batch`` and ``handler.torch_threads``
    are read by the handler at start; ``handler.limits`` bounds each request's work. Without ``sequence_batching`` TorchServe's own part is
    what it always was (one request at a time, its failed workers restarted);
    with it, TorchServe routes each sequence to one worker (README, "Streaming")."""
    if max_sequences < 0:
        raise InputError(f'--max-sequences must be 0 (no streaming) or more, got {max_sequences}')
    if sequence_idle_ms < 100:
        raise InputError(f'--sequence-idle-ms must be at least 100, got {sequence_idle_ms}')
    if detector_batch < 0:
        raise InputError(f'--detector-batch must be 0 (automatic), 1 (frame by frame) or more, '
                         f'got {detector_batch}')
    if torch_threads < 0:
        raise InputError(f'--torch-threads must be 0 (automatic) or more, got {torch_threads}')
    try:
        bounds = DEFAULT_LIMITS.with_values(request_limits or {})
    except (KeyError, ValueError) as e:
        raise InputError(f'bad request limit: {e}') from None
    if sequence_batching and max_sequences == 0:
        raise InputError('--sequence-batching needs streaming: give --max-sequences 1 or more')
    if max_state_mb < 0:
        raise InputError(f'--max-state-mb must be 0 (no limit) or more, got {max_state_mb:g}')
    if tracker_impl not in TRACKER_IMPLS:
        raise InputError(f'--tracker-impl must be one of {", ".join(TRACKER_IMPLS)}, got {tracker_impl!r}')
    if state_store != 'default':
        try:
            parse_url(state_store)
        except ValueError as e:
            raise InputError(f'--state-store {state_store}: {e}') from None
    settings = {'minWorkers': workers,
                'maxWorkers': workers}
    if sequence_batching:
        # TorchServe 0.12 polls each idle sequence on its own thread out of
        # batchSize + 1; fewer than max_sequences + 1 would stall requests for up
        # to the idle timeout. Whole-video requests get a sequence each, ended
        # by the handler's response (continuousBatching honours that at once).
        settings.update({
            'batchSize': max_sequences + 1,
            'maxBatchDelay': SEQUENCE_BATCH_DELAY_MS,
            'sequenceBatching': True,
            'continuousBatching': True,
            'sequenceMaxIdleMSec': sequence_idle_ms,
            'maxNumSequence': max(workers, 1) * (max_sequences + PLAIN_REQUEST_SLOTS),
            'maxSequenceJobQueueSize': SEQUENCE_QUEUE})
    else:
        settings['batchSize'] = 1
    settings.update({
        'responseTimeout': DEFAULT_RESPONSE_TIMEOUT_S,
        'handler': {'detector_batch': detector_batch,
                    'torch_threads': torch_threads,
                    'tracker_impl': tracker_impl,
                    'sequences': {'max_sequences': max_sequences,
                                  'idle_ms': sequence_idle_ms,
                                  'state_store': state_store,
                                  'max_state_mb': max_state_mb},
                    # None: no limit
                    'limits': bounds.as_dict()}})
    return yaml.safe_dump(settings, sort_keys=False)


def archive(model_name, version, checkpoint, staging, model_config, store, force, handler=HANDLER):
    """``store/NAME.mar`` of ``handler``, the checkpoint, every file in
    ``staging`` and ``model_config`` as its model-config.yaml."""
    from model_archiver.model_archiver_config import ModelArchiverConfig
    from model_archiver.model_packaging import package_model
    from model_archiver.model_packaging_utils import ModelExportUtils
    config = ModelArchiverConfig(
        model_name=model_name, handler=str(handler), version=version,
        serialized_file=str(checkpoint) if checkpoint else None,
        extra_files=str(staging), export_path=str(store), force=force,
        config_file=str(model_config))
    package_model(config, manifest=ModelExportUtils.generate_manifest_json(config))


def main(argv=None):
    from mmtrack_serve.quiet import quiet_warnings
    quiet_warnings()
    args = parse_args(argv)
    try:
        cfg_options = None
        if args.cfg_options:
            from mmtrack_serve.mmtrack_compat import parse_cfg_options
            cfg_options = parse_cfg_options(args.cfg_options)
        convert(args.config, args.checkpoint, output_folder=args.output_folder,
                model_name=args.model_name, model_version=args.model_version,
                force=args.force, weights=args.weights, download=args.download,
                workers=args.workers, cfg_options=cfg_options,
                max_sequences=args.max_sequences, sequence_idle_ms=args.sequence_idle_ms,
                sequence_batching=args.sequence_batching,
                detector_batch=args.detector_batch, torch_threads=args.torch_threads,
                request_limits={name: getattr(args, name) for name in limits.NAMES},
                state_store=args.state_store, max_state_mb=args.max_state_mb,
                tracker_impl=args.tracker_impl)
    except MMTrackServeError as e:
        print(f'mmtrack2torchserve: error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
