"""`make zoo`: every tracking config shipped in the mmtrack wheel, with random
weights, through the whole path a user takes, one row each in MODEL_ZOO.md.

Per config (configs/{mot,sot,vid,vis}, ``_base_`` folders left out):

1. load: ``load_model(config)``, random weights (nothing is downloaded);
2. run: 3 real frames (MOT17-05, 640x480, as an H.264 mp4) through
   ``model.session()``, SOT with ``init_bbox``, public-detection configs with
   the sequence's own det.txt; seconds per frame over the frames after the
   first (the first holds warm-up, SOT's template and VID's reference buffer);
3. converts: the weights saved as a checkpoint, then ``mmtrack2torchserve``;
4. served once: the .mar registered on one TorchServe kept for the whole run,
   the mp4 posted once (JSON back, 3 frames), the model unregistered.

Checkpoint and .mar are deleted as soon as a config is done (R50 ones are
100-200 MB). A failure is its one-line message: an MMTrackServeError is a clear
error; anything else is a raw Python error, marked **bug** in the table.

    python scripts/model_zoo.py [--only PATTERN ...] [--resume] [--output MODEL_ZOO.md] [--work-dir DIR]

``--resume`` carries on a run that was stopped: the rows already in the table
are kept as they are, except those that ended in a raw Python error (a bug may
have been fixed since), and only the configs without a kept row are run.

About 1.5 hours on 2 CPU cores for all 62 (the VID ones are the slowest;
each config's figures from the last run: MODEL_ZOO.md).
"""
import argparse
import contextlib
import datetime
import fnmatch
import gc
import io
import json
import random
import re
import shlex
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SEQUENCE = REPO.parent / 'shared' / 'data' / 'MOT17-mini' / 'train' / 'MOT17-05-FRCNN'
TASK_FOLDERS = ('mot', 'sot', 'vid', 'vis')
NUM_FRAMES = 3
# Waits on TorchServe: server start, and one model's worker start + its request.
SERVER_START_S = 180
WORKER_START_S = 600
REQUEST_S = 900
MESSAGE_CHARS = 240

sys.path.insert(0, str(REPO / 'benchmarks'))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--only', action='append', metavar='PATTERN',
                   help='configs whose name or path (relative to the configs folder) contains '
                        'PATTERN, or matches it as a glob (repeatable; default: all)')
    p.add_argument('--resume', action='store_true',
                   help='keep the rows already in the output table (all but those marked bug) and '
                        'run only the configs without one')
    p.add_argument('--output', default=str(REPO / 'MODEL_ZOO.md'),
                   help='the table to write (default: MODEL_ZOO.md in the repository)')
    p.add_argument('--work-dir', default=None,
                   help='input video, checkpoints, model store and server logs '
                        '(default: a temporary directory, removed at the end)')
    return p.parse_args(argv)


# -- which configs ----------------------------------------------------------------
def all_configs():
    """Every tracking config in the wheel, as paths relative to its configs folder."""
    from mmtrack_serve.mmtrack_compat import configs_root
    root = configs_root()
    found = []
    for folder in TASK_FOLDERS:
        for path in sorted((root / folder).rglob('*.py')):
            if '_base_' not in path.relative_to(root).parts:
                found.append(path.relative_to(root))
    return root, found


def selected(relpath, patterns):
    if not patterns:
        return True
    names = (relpath.stem, str(relpath))
    return any(p in n or fnmatch.fnmatch(n, p) for p in patterns for n in names)


# -- the input a user would send ------------------------------------------------
def make_inputs(work):
    """The first NUM_FRAMES frames of MOT17-05 (640x480) as an H.264 mp4, their
    lines of the sequence's det.txt (public detections, MOTChallenge format),
    and an init_bbox for SOT: the first detection of the first frame."""
    import cv2
    from mmtrack_serve.errors import MMTrackServeError
    from mmtrack_serve.video import VideoReader, VideoWriter
    images = sorted((SEQUENCE / 'img1').glob('*.jpg'))[:NUM_FRAMES]
    if len(images) < NUM_FRAMES:
        raise MMTrackServeError(f'the zoo needs {NUM_FRAMES} frames of {SEQUENCE}/img1 '
                                '(the shared test data)')
    fps = 14
    for line in (SEQUENCE / 'seqinfo.ini').read_text().splitlines():
        if line.startswith('frameRate='):
            fps = int(line.split('=')[1])
    frames = [cv2.imread(str(p)) for p in images]
    height, width = frames[0].shape[:2]
    video = work / 'zoo.mp4'
    with VideoWriter(str(video), width, height, fps) as writer:
        for frame in frames:
            writer.write(frame)
    det_lines = [line for line in (SEQUENCE / 'det' / 'det.txt').read_text().splitlines()
                 if line.strip() and int(float(line.split(',')[0])) <= NUM_FRAMES]
    det_txt = work / 'det.txt'
    det_txt.write_text('\n'.join(det_lines) + '\n')
    first = sorted((l.split(',') for l in det_lines), key=lambda f: int(float(f[0])))[0]
    x, y, w, h = (float(v) for v in first[2:6])
    init_bbox = f'{x:g},{y:g},{x + w:g},{y + h:g}'
    with VideoReader(str(video)) as reader:      # what the server will decode
        decoded = list(reader)
    return {'video': video, 'det_txt': det_txt, 'init_bbox': init_bbox, 'frames': decoded,
            'size': f'{width}x{height}'}


def read_detections(det_txt):
    """{0-based frame id: (N, 5) array} through the core's reader, or None
    when this mmtrack_serve has no detections support yet."""
    try:
        from mmtrack_serve.detections import read_det_txt
    except ImportError:
        return None
    return read_det_txt(str(det_txt))


# -- one config -----------------------------------------------------------------
class Row:
    def __init__(self, relpath):
        self.relpath = relpath
        self.name = relpath.stem
        self.task = relpath.parts[0]
        self.method = ''
        self.needs_detections = '-public' in self.name
        self.seconds_per_frame = None
        self.net_input = None
        self.steps = {}          # step -> 'yes' | 'error' | 'bug' | 'skipped'
        self.notes = []
        self.seconds = 0.0

    @classmethod
    def from_cells(cls, relpath, cells):
        """A row of an earlier table (its cells as write_table wrote them)."""
        row = cls(relpath)
        _, _, row.method, detections, spf, converts, served, notes = cells
        row.needs_detections = detections == 'yes'
        first, _, rest = spf.partition(' ')
        if first in ('load', 'run'):
            row.steps['load'] = 'yes' if first == 'run' else rest
            if first == 'run':
                row.steps['run'] = rest
        else:
            row.steps['load'] = row.steps['run'] = 'yes'
            row.seconds_per_frame = float(first)
            row.net_input = rest.strip('()') or None
        row.steps['converts'], row.steps['served'] = converts, served
        row.notes = [notes.replace('\\|', '|')] if notes else []
        return row

    def fail(self, step, error):
        from mmtrack_serve.errors import MMTrackServeError
        clear = isinstance(error, MMTrackServeError)
        self.steps[step] = 'error' if clear else 'bug'
        self.notes.append(f'{step}: {"" if clear else "**bug** "}{one_line(error)}')

    @property
    def ran(self):
        return self.steps.get('run') == 'yes'


def one_line(error):
    text = error if isinstance(error, str) else f'{type(error).__name__}: {error}'
    text = ' '.join(str(text).split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 3] + '...'


def method_of(cfg):
    """'ByteTrack (YOLOX, CSPDarknet)', 'SORT (FasterRCNN, ResNet50)', 'SELSA (FasterRCNN, ResNet101)'."""
    model = cfg.model
    name = model.type
    if name == 'DeepSORT' and not model.get('reid'):
        name = 'SORT'
    detector = model.get('detector') or {}
    extractor = ((detector.get('roi_head') or {}).get('bbox_roi_extractor') or {}).get('type', '')
    if extractor == 'TemporalRoIAlign':
        name += ' + Temporal RoI Align'
    backbone = detector.get('backbone') or model.get('backbone') or {}
    parts = [detector.get('type')] if detector.get('type') else []
    if backbone.get('type'):
        depth = backbone.get('depth')
        parts.append(backbone['type'] + (str(depth) if depth and 'ResNe' in backbone['type'] else ''))
    return f'{name} ({", ".join(parts)})' if parts else name


def run_config(row, path, inputs, detections, work, server):
    """Fills ``row``; never raises (but KeyboardInterrupt)."""
    import torch
    from mmcv.runner import save_checkpoint
    from mmtrack_serve.converters.mmtrack2torchserve import convert
    from mmtrack_serve.models import load_model
    start = time.perf_counter()
    torch.manual_seed(0)        # the same random weights on every run
    try:
        model = load_model(str(path))
    except Exception as e:  # noqa: BLE001 - every failure becomes the row's note
        row.fail('load', e)
        row.method = _method_from_file(path)
        for step in ('run', 'converts', 'served'):
            row.steps[step] = 'skipped'
        row.seconds = time.perf_counter() - start
        return
    row.steps['load'] = 'yes'
    row.method = method_of(model.cfg)
    needs = getattr(model, 'needs_detections', None)
    if needs is not None:
        row.needs_detections = bool(needs)
    row.net_input = _net_input(model, inputs)
    try:
        session = model.session(init_bbox=inputs['init_bbox'] if model.task == 'sot' else None)
        times = []
        for i, frame in enumerate(inputs['frames']):
            kwargs = {}
            if row.needs_detections and detections is not None and needs is not None:
                kwargs['detections'] = detections.get(i, np.zeros((0, 5), np.float32))
            t = time.perf_counter()
            session.step(frame, **kwargs)
            times.append(time.perf_counter() - t)
        row.seconds_per_frame = sum(times[1:]) / len(times[1:]) if len(times) > 1 else times[0]
        row.steps['run'] = 'yes'
    except Exception as e:  # noqa: BLE001
        row.fail('run', e)

    store = work / 'store'
    checkpoint = work / f'{row.name}.pth'
    mar = None
    try:
        save_checkpoint(model.module, str(checkpoint), meta={'CLASSES': tuple(model.classes)})
        del model
        gc.collect()
        with contextlib.redirect_stdout(io.StringIO()):
            mar = convert(str(path), str(checkpoint), output_folder=store,
                          model_name=_model_name(row.name), force=True)
        row.steps['converts'] = 'yes'
    except Exception as e:  # noqa: BLE001
        row.fail('converts', e)
        row.steps['served'] = 'skipped'
    finally:
        checkpoint.unlink(missing_ok=True)
    if mar is not None:
        try:
            served = serve_once(server(), mar, row, inputs)
            row.steps['served'] = 'yes'
            row.notes.append(served)
        except Exception as e:  # noqa: BLE001
            row.fail('served', e)
        finally:
            mar.unlink(missing_ok=True)
    gc.collect()
    row.seconds = time.perf_counter() - start


def _method_from_file(path):
    try:
        import mmcv
        return method_of(mmcv.Config.fromfile(str(path)))
    except Exception:  # noqa: BLE001 - the load error is already noted
        return '?'


def _net_input(model, inputs):
    """The network's input size for a frame of the zoo video (not for SOT,
    whose network sees a crop around the target)."""
    if model.task == 'sot':
        return None
    try:
        image = model._prepare(inputs['frames'][0], 1)['img'][0]
        return f'{int(image.shape[-1])}x{int(image.shape[-2])}'
    except Exception:  # noqa: BLE001 - a label only; the run reports real failures
        return None


def _model_name(config_name):
    return ''.join(c if c.isalnum() or c in '_.-' else '_' for c in config_name)


# -- the server -------------------------------------------------------------------
class ZooServer:
    """One TorchServe for the whole run, started on first use; models come and
    go through the management API."""

    def __init__(self, work):
        self.work = work
        self.store = work / 'store'
        self.server = None

    def __call__(self):
        if self.server is None:
            self.server = self._start()
        return self.server

    def _start(self):
        from mmtrack_serve.errors import MMTrackServeError
        from mmtrack_serve.serving.launcher import Server, free_port_base, write_config
        self.store.mkdir(parents=True, exist_ok=True)
        base = free_port_base(random.sample(range(20000, 40000, 10), 50))
        run_dir = self.work / 'server'
        write_config(run_dir, self.store, [], base)
        # a worker that tries to download anything meets a dead proxy
        server = Server(run_dir, base, env={k: 'http://127.0.0.1:9' for k in
                                            ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY')})
        server.start(self.store)
        deadline = time.time() + SERVER_START_S
        while not server.ping():
            if time.time() > deadline:
                server.stop()
                raise MMTrackServeError(f'TorchServe did not answer within {SERVER_START_S} s; '
                                        f'see {run_dir}')
            time.sleep(1)
        return server

    def stop(self):
        if self.server is not None:
            self.server.stop()
            self.server = None


def serve_once(server, mar, row, inputs):
    """Registers ``mar``, posts the video once, unregisters; returns a note."""
    import requests
    from mmtrack_serve.errors import MMTrackServeError
    name = mar.stem
    log = server.log_dir / 'model_log.log'
    offset = log.stat().st_size if log.is_file() else 0
    start = time.perf_counter()
    r = requests.post(f'{server.management_url}/models',
                      params={'url': mar.name, 'initial_workers': 1, 'synchronous': 'false'},
                      # TorchServe unpacks the .mar (hundreds of MB for R50/R101) before answering
                      timeout=REQUEST_S)
    if r.status_code not in (200, 202):
        raise MMTrackServeError(f'registration answered HTTP {r.status_code}: {_message(r)}')
    try:
        _wait_worker(server, name, log, offset)
        ready = time.perf_counter() - start
        files = {'data': ('zoo.mp4', inputs['video'].read_bytes())}
        if row.needs_detections:
            files['detections'] = ('det.txt', inputs['det_txt'].read_bytes())
        fields = {'output': 'json'}
        if row.task == 'sot':
            fields['init_bbox'] = inputs['init_bbox']
        t = time.perf_counter()
        r = requests.post(f'{server.inference_url}/predictions/{name}', files=files, data=fields,
                          timeout=REQUEST_S)
        took = time.perf_counter() - t
        if r.status_code != 200:
            body = _json(r)
            message = f'HTTP {r.status_code}: {_message(r)}'
            if r.status_code >= 500 or body is None:
                raise RuntimeError(message)          # the server failed: a bug
            raise MMTrackServeError(message)
        result = r.json()
        if len(result.get('frames', [])) != NUM_FRAMES:
            raise RuntimeError(f'{len(result.get("frames", []))} frames answered, {NUM_FRAMES} sent')
        objects = sum(len(f['objects']) for f in result['frames'])
        return f'served: worker ready in {ready:.0f} s, {NUM_FRAMES} frames in {took:.1f} s, objects: {objects}'
    finally:
        with contextlib.suppress(requests.RequestException):
            requests.delete(f'{server.management_url}/models/{name}', timeout=120)


def _wait_worker(server, name, log, offset):
    from mmtrack_serve.errors import MMTrackServeError
    deadline = time.time() + WORKER_START_S
    while time.time() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if 'READY' in server.worker_states(name):
                return
        text = _log_since(log, offset)
        if text.count('Backend worker process died') >= 2:
            error = _worker_error(text)
            # the worker's own clear errors (mmtrack_serve.errors.*) stay clear
            kind = MMTrackServeError if error.startswith('mmtrack_serve.errors.') else RuntimeError
            raise kind(f'the worker fails to start: {error}')
        time.sleep(1)
    raise MMTrackServeError(f'no READY worker after {WORKER_START_S} s')


def _log_since(log, offset):
    if not log.is_file():
        return ''
    with open(log, 'rb') as f:
        f.seek(offset)
        return f.read().decode(errors='replace')


def _worker_error(text):
    import re
    found = re.findall(r'MODEL_LOG - ((?:\w+\.)*\w*(?:Error|Exception)\b.*)', text)
    return found[-1].strip() if found else 'the worker keeps dying'


def _json(response):
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _message(response):
    body = _json(response)
    if isinstance(body, dict) and body.get('message'):
        return body['message']
    return response.text[:MESSAGE_CHARS] or response.reason


# -- the table --------------------------------------------------------------------
TABLE_ROW = re.compile(r'\| `([^`]+)` \|')
HEADER_ROW = re.compile(r'\| (commit|date) \| (.*) \|$')


def read_table(path, configs):
    """The rows of an earlier table that ``--resume`` keeps, by config name,
    and that table's {'commit': ..., 'date': ...}."""
    by_name = {c.stem: c for c in configs}
    kept, made = {}, {}
    for line in Path(path).read_text().splitlines():
        header = HEADER_ROW.match(line)
        if header and header.group(1) not in made:
            made[header.group(1)] = header.group(2)
        match = TABLE_ROW.match(line)
        if not match or match.group(1) not in by_name:
            continue
        cells = [c.strip() for c in re.split(r'(?<!\\)\|', line)[1:-1]]
        if len(cells) != 8:
            continue
        row = Row.from_cells(by_name[match.group(1)], cells)
        if 'bug' not in row.steps.values():
            kept[row.name] = row
    return kept, made


def write_table(path, rows, header, total_configs, elapsed, size):
    partial = len(rows) < total_configs
    lines = ['# Model zoo', '',
             f'Every tracking config shipped in the mmtrack wheel ({total_configs}: '
             f'`configs/{{{",".join(TASK_FOLDERS)}}}`, `_base_` left out) with **random weights**: '
             f'loaded, {NUM_FRAMES} real frames ({size}, MOT17-05, as H.264 mp4) through '
             '`model.session()`, saved as a checkpoint, converted with `mmtrack2torchserve`, '
             'registered on one TorchServe and the video posted once (JSON back). Random weights: '
             'the times are real, the boxes are not. Do not edit: `make zoo` rewrites this file.', '']
    if partial:
        lines += [f'**Partial run: {len(rows)} of {total_configs} configs**; `make zoo` runs them '
                  'all, `make zoo ZOO_ARGS=--resume` the ones missing here.', '']
    lines += ['| run | |', '|---|---|']
    lines += [f'| {k} | {v} |' for k, v in header.items()]
    lines += [f'| wall time | {elapsed / 60:.1f} min |', '']
    lines += ['- **s/frame**: seconds per frame in-process (`session.step`, CPU), the mean over '
              f'frames 2-{NUM_FRAMES} (the first holds warm-up, SOT\'s template and VID\'s reference '
              f'buffer), on {size} frames; in brackets the network\'s input size. DFF runs its '
              'detector on every 10th frame only: its figure is that of the frames between.',
              '- **detections**: yes for public-detection configs: they track the boxes supplied '
              'with the video (`detections=` det.txt, MOTChallenge format) instead of their own '
              'detector\'s.',
              '- **converts** / **served once**: yes, `error` (a clear error, its message in the '
              'notes) or `bug` (a raw Python error: the notes say **bug**); `skipped` when an '
              'earlier step failed.', '']
    lines += ['| config | task | method | detections | s/frame | converts | served once | notes |',
              '|---|---|---|---|---|---|---|---|']
    for row in rows:
        spf = '—'
        if row.seconds_per_frame is not None:
            spf = f'{row.seconds_per_frame:.2f}' + (f' ({row.net_input})' if row.net_input else '')
        elif row.steps.get('load') != 'yes':
            spf = 'load ' + row.steps.get('load', 'error')
        else:
            spf = 'run ' + row.steps.get('run', 'error')
        notes = '; '.join(row.notes).replace('|', '\\|')
        lines.append(f'| `{row.name}` | {row.task.upper()} | {row.method} | '
                     f'{"yes" if row.needs_detections else "no"} | {spf} | '
                     f'{row.steps.get("converts", "—")} | {row.steps.get("served", "—")} | {notes} |')
    lines += ['', '## Summary', '', *summary(rows), '']
    Path(path).write_text('\n'.join(lines))


def summary(rows):
    def count(fn):
        return sum(1 for r in rows if fn(r))
    failed = [r for r in rows if any(v in ('error', 'bug') for v in r.steps.values())]
    bugs = [r for r in rows if 'bug' in r.steps.values()]
    return [
        f'- {len(rows)} configs: {count(lambda r: r.ran)} run locally, '
        f'{count(lambda r: r.steps.get("converts") == "yes")} convert, '
        f'{count(lambda r: r.steps.get("served") == "yes")} served once, '
        f'{count(lambda r: r.ran and r.steps.get("served") == "yes")} all the way.',
        f'- {count(lambda r: r.needs_detections)} need detections supplied (public-detection configs): '
        + (', '.join(f'`{r.name}`' for r in rows if r.needs_detections) or 'none') + '.',
        f'- {len(failed)} with an error ({len(failed) - len(bugs)} clear only, {len(bugs)} with a raw '
        'Python error)' + (': ' + ', '.join(f'`{r.name}`' for r in failed) if failed else '') + '.',
    ]


def outcome(row):
    if row.steps.get('load') != 'yes':
        return f'load {row.steps.get("load")}: {row.notes[0]}'
    parts = [f'run {row.seconds_per_frame:.2f} s/frame' if row.ran else f'run {row.steps.get("run")}',
             f'converts {row.steps.get("converts")}', f'served {row.steps.get("served")}']
    errors = [n for n in row.notes if not n.startswith('served: worker ready')]
    return ', '.join(parts) + (f' ({"; ".join(errors)})' if errors else '')


# -- main -------------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    from mmtrack_serve.quiet import quiet_warnings
    from mmtrack_serve.errors import MMTrackServeError
    from mmtrack_serve.tuning import tune_malloc
    from tqdm import tqdm
    import common
    quiet_warnings()
    # every model here has random weights on purpose: the table says so once
    warnings.filterwarnings('ignore', message='(not downloading|no checkpoint given)')
    tune_malloc()
    root, configs = all_configs()
    chosen = [c for c in configs if selected(c, args.only)]
    if not chosen:
        print(f'zoo: error: no config matches {" ".join(args.only)} (under {root})', file=sys.stderr)
        return 1
    header = common.machine()
    header = {'command': '`' + ' '.join(['python scripts/model_zoo.py'] + [shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])]) + '`',
              'date': datetime.date.today().isoformat(),
              **{k: header[k] for k in ('cpu', 'memory', 'torch', 'commit', 'load average at start')}}
    kept = {}
    if args.resume and Path(args.output).is_file():
        kept, made = read_table(args.output, configs)
        if kept:
            header['rows kept'] = (f'{len(kept)}, from the run of {made.get("date", "?")} at commit '
                                   f'{made.get("commit", "?")} (`--resume`)')
    to_run = [c for c in chosen if c.stem not in kept]
    temp = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix='mmtrack-zoo-') if temp else args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f'zoo: {len(to_run)} of {len(configs)} configs from {root}'
          + (f' ({len(kept)} rows kept from {args.output})' if kept else '') + f'; work dir {work}')
    try:
        inputs = make_inputs(work)
    except MMTrackServeError as e:
        print(f'zoo: error: {e}', file=sys.stderr)
        return 1
    detections = read_detections(inputs['det_txt'])
    if detections is None:
        print('zoo: mmtrack_serve has no detections support: public configs run without them')
    server = ZooServer(work)
    start = time.perf_counter()
    rows = dict(kept)

    def in_order():
        return [rows[c.stem] for c in configs if c.stem in rows]
    try:
        # started on an empty store: TorchServe loads whatever the store holds at start
        try:
            if to_run:
                server()
        except MMTrackServeError as e:
            print(f'zoo: error: {e}', file=sys.stderr)
            return 1
        bar = tqdm(to_run, unit='config', dynamic_ncols=True)
        for i, relpath in enumerate(bar, 1):
            bar.set_description(relpath.stem[:40])
            row = Row(relpath)
            try:
                run_config(row, root / relpath, inputs, detections, work, server)
            except Exception as e:  # noqa: BLE001 - a zoo bug must not lose the other rows
                row.fail('zoo', f'{type(e).__name__}: {e} ({traceback.format_exc(limit=-1).splitlines()[-2].strip()})')
            rows[row.name] = row
            tqdm.write(f'[{i}/{len(to_run)}] {row.name} ({row.seconds:.0f} s): {outcome(row)}')
            # keep the table current: a long run stopped half-way still leaves its rows
            write_table(args.output, in_order(), header, len(configs), time.perf_counter() - start,
                        inputs['size'])
        bar.close()
    finally:
        server.stop()
        if temp:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - start
    rows = in_order()
    write_table(args.output, rows, header, len(configs), elapsed, inputs['size'])
    for line in summary(rows):
        print(line)
    print(f'zoo: wrote {args.output} ({len(rows)} configs, {elapsed / 60:.1f} min)'
          + ('' if temp else f'; server logs in {work / "server" / "logs"}'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
