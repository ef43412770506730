"""Everything that depends on how mmtrack 0.14 works inside, in one place.

- Configs: found by path or by the name of a config shipped in the mmtrack
  wheel; ``model_class`` finds the class ``model.type`` names, from which
  ``tasks`` picks the task type.
- Weights: mmtrack's ``init_model`` calls ``init_weights()`` first, which
  downloads every ``init_cfg`` URL. Here URLs are never fetched.
- Per-video state: mmtrack keeps it inside the model (``model.tracker`` for
  MOT/VIS; attributes set during the forward pass, such as ``memo``,
  ``init_frame_id``, ``z_dict_list``, for SOT and VID) and resets it at
  frame_id 0. ``ModelState`` swaps a session's own copy in and out around each
  step, so several videos can share one model.
- Inputs: the ``inference_*`` functions rebuild the test pipeline on every frame
  and, on CPU, unwrap only ``img_metas`` from its DataContainers (SELSA then fails
  with "'DataContainer' object is not subscriptable"). Here the pipeline is built
  once (``compose``; each task type says which steps) and the whole batch is
  scattered as MMDataParallel does (``collate_and_scatter``).
- Batching: mmtrack's MOT models take one frame per forward. For the
  tracking-by-detection ones, ``forward_batch`` runs the detector's backbone and
  neck (``extract_feat``, most of the compute) over several frames at once, then
  each frame's own forward in order with its slice of those features handed in,
  so association stays sequential and mmtrack's own code decides the rest.
- Outputs: per-class arrays, turned into objects by each task type; a SOT
  box gone non-finite (random-weight heads) is not remembered
  (``keep_finite_sot_box``).
- Public detections: a "public" MOT config's test pipeline has a
  ``LoadDetections`` step, which reads ``results['detections']`` (one array per
  class) as the dataset puts it there from its ``detection_file``; the model
  then takes those boxes (``public_bboxes``) as its proposals. The MOT task type
  puts each frame's supplied boxes where the dataset would.
- Inference only: configs whose test mode is an evaluation protocol (SiamRPN++'s
  VOT mode re-initialises the tracker from each frame's ground truth, and needs
  the ``vot`` toolkit) run in the one-initialisation mode a video to track has.
"""
import contextlib
import copy
import logging
import os
import warnings
from pathlib import Path

from .errors import ConfigError


# -- configs --------------------------------------------------------------------
def configs_root():
    import mmtrack
    return Path(mmtrack.__file__).parent / '.mim' / 'configs'


def find_config(name):
    """Path of a config given as a file path or a wheel config name
    (``bytetrack_yolox_x_crowdhuman_mot17-private-half``, with or without
    ``.py``, or relative to the configs folder, e.g. ``mot/bytetrack/...``)."""
    path = Path(name)
    if path.is_file():
        return path
    root = configs_root()
    candidates = [root / name, root / f'{name}.py']
    stem = path.name[:-3] if path.name.endswith('.py') else path.name
    candidates += sorted(root.rglob(f'{stem}.py'))
    for candidate in candidates:
        if candidate.is_file() and '_base_' not in candidate.parts:
            return candidate
    raise ConfigError(f'no such config: {name} (neither a file nor a config shipped in mmtrack; '
                      f'see {root})')


def read_config(config):
    """The config as written: a copy of an ``mmcv.Config``, or a file path or
    wheel config name read (``find_config``); no options merged, nothing
    checked. ConfigError in one line when the file cannot be read."""
    import mmcv
    if isinstance(config, mmcv.Config):
        return copy.deepcopy(config)
    path = find_config(str(config))
    try:
        return mmcv.Config.fromfile(str(path))
    except Exception as e:  # mmcv raises many kinds on a bad file
        raise ConfigError(f'cannot read config {path}: {type(e).__name__}: {e}') from None


def load_config(config, cfg_options=None):
    cfg = read_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg or not isinstance(cfg.model, dict):
        raise ConfigError('the config defines no model: not an MMTracking video model config')
    if 'type' not in cfg.model:
        inner = ', '.join(f"{k} ({v.get('type')})" for k, v in cfg.model.items()
                          if isinstance(v, dict) and 'type' in v)
        raise ConfigError('the config\'s model has no type' + (f' (it only defines {inner})' if inner else '')
                          + ': not an MMTracking video model config')
    return cfg


# Where a bundled config came from (the converter writes it into config.py),
# so that messages can name the wheel config it was, not "config".
SOURCE_KEY = 'mmtrack_serve_source_config'


def config_name(cfg):
    """The config's name: the wheel config or file it came from, without ``.py``."""
    source = cfg.get(SOURCE_KEY) or getattr(cfg, 'filename', None) or 'the config'
    return Path(str(source)).stem


def record_source(cfg):
    """Keeps the config's name in the config itself, for a copy dumped elsewhere."""
    if not cfg.get(SOURCE_KEY) and getattr(cfg, 'filename', None):
        cfg[SOURCE_KEY] = Path(cfg.filename).stem


def test_pipeline(cfg):
    """``data.test.pipeline``, or ConfigError: base and partial configs (meant
    to be inherited through ``_base_``) define none, and nothing can be run."""
    data = cfg.get('data')
    test = data.get('test') if isinstance(data, dict) else None
    pipeline = test.get('pipeline') if isinstance(test, dict) else None
    if isinstance(pipeline, (list, tuple)) and pipeline:
        return pipeline
    name = config_name(cfg)
    children = _configs_based_on(name)
    raise ConfigError(
        f'{name} defines no test pipeline (data.test.pipeline): it is a base or partial config, '
        'meant to be inherited through _base_, not run; use a full config'
        + (f', e.g. {", ".join(children[:3])}' if children else ''))


def check_runnable(cfg):
    """ConfigError for configs that are not one model to run: a base config
    (``test_pipeline``) or a hyper-parameter search config, whose tracker
    settings are lists of values for mmtrack's ``mot_param_search.py`` to try
    (it searches every list under ``model.tracker``)."""
    test_pipeline(cfg)
    searched = dict(_lists_in(cfg.model.get('tracker') or {}, 'model.tracker'))
    if searched:
        key, values = next(iter(searched.items()))
        raise ConfigError(
            f'{config_name(cfg)} is a hyper-parameter search config: '
            + ', '.join(f'{k}={v}' for k, v in searched.items())
            + f' are values to try, not one model; pick one each, e.g. --cfg-options '
            f'{key}={values[0]}, or use the config it searches around')


def _lists_in(node, prefix):
    for key, value in node.items():
        if isinstance(value, list):
            yield f'{prefix}.{key}', value
        elif isinstance(value, dict):
            yield from _lists_in(value, f'{prefix}.{key}')


def _configs_based_on(name):
    """Wheel configs whose ``_base_`` names ``name``.py directly."""
    root = configs_root()
    found = []
    for path in sorted(root.rglob('*.py')):
        if '_base_' in path.parts or path.stem == name:
            continue
        try:
            text = path.read_text()
        except OSError:
            continue
        if f'/{name}.py' in text and '_base_' in text:
            found.append(path.stem)
    return found


def needs_detections(cfg):
    """True when the config's test pipeline loads public detections."""
    return any(isinstance(step, dict) and step.get('type') == 'LoadDetections'
               for step in test_pipeline(cfg))


def private_config_for(cfg):
    """The wheel's private-detection config matching a public one, or None:
    ``...-public-half`` -> ``...-private-half``; where the wheel has no exact
    match (``...-public-half_search``, ``...mot20-public``), the private config
    of that name's family closest to it."""
    name = config_name(cfg)
    if '-public' not in name:
        return None
    wanted = name.replace('-public', '-private')
    family = name[:name.index('-public')] + '-private'
    names = {p.stem for p in configs_root().rglob('*.py') if '_base_' not in p.parts}
    if wanted in names:
        return wanted
    candidates = sorted((n for n in names if n.startswith(family)),
                        key=lambda n: (-len(os.path.commonprefix([n, wanted])), len(n), n))
    return candidates[0] if candidates else None


def missing_detections_message(cfg):
    """Why a public-detection model cannot run without detections, and what to use instead."""
    name = config_name(cfg)
    private = private_config_for(cfg)
    instead = (f'use {private} instead' if private else
               'use a private-detection config (one whose test pipeline has no LoadDetections)')
    return (f'{name} tracks public detections supplied with the video and none were given: send '
            'them as MOTChallenge det.txt (run --detections det.txt; a multipart field '
            f'"detections" for the server), or, to detect objects with the model itself, {instead}')


def adapt_for_inference(cfg):
    """Changes, in place, what only makes sense in an evaluation run; returns
    one note per change. SiamRPN++'s VOT test mode compares each frame's box
    with that frame's ground truth and re-initialises from it after a failure
    (it needs the ``vot`` toolkit for the overlaps); a video to track has a
    target box for its first frame only, so it runs in OPE mode (one
    initialisation, as every other SOT config), with the config's own
    VOT-tuned parameters."""
    notes = []
    test_cfg = cfg.model.get('test_cfg')
    if isinstance(test_cfg, dict) and test_cfg.get('test_mode') == 'VOT':
        test_cfg['test_mode'] = 'OPE'
        notes.append(f'{config_name(cfg)}: the VOT test mode re-initialises the tracker from '
                     'ground truth on every frame, which a video to track does not have: '
                     'tracking in OPE mode (one initialisation) with the config\'s parameters')
    return notes


def parse_cfg_options(options):
    """``['a.b=1', 'c=[1,2]']`` as mmcv's ``--cfg-options`` reads them."""
    if not options:
        return None
    import argparse
    from mmcv import DictAction
    namespace = argparse.Namespace()
    try:
        DictAction(option_strings=[], dest='cfg_options')(None, namespace, list(options))
    except Exception as e:
        raise ConfigError(f'bad --cfg-options {" ".join(options)}: {e}') from None
    return namespace.cfg_options


def model_class(cfg):
    """The class ``cfg.model.type`` names: an mmtrack model, else an mmdet
    one (a plain detector config), else None."""
    from mmtrack.models import MODELS
    model_type = cfg.model.type
    if not isinstance(model_type, str):
        return None
    found = MODELS.get(model_type)
    if found is None:
        from mmdet.models import DETECTORS
        found = DETECTORS.get(model_type)
    return found


def class_names(cfg, model):
    """The model's class names: the checkpoint's, the config's, its dataset's, or class_<i>."""
    names = getattr(model, 'CLASSES', None) or getattr(getattr(model, 'detector', None), 'CLASSES', None)
    if names:
        return [str(n) for n in names]
    test = cfg.get('data', {}).get('test', {})
    num = _find_num_classes(cfg.model)
    classes = test.get('classes')
    if isinstance(classes, str):
        # a file of names (TAO's data/tao/annotations/tao_classes.txt), there when training
        import mmcv
        classes = mmcv.list_from_file(classes) if os.path.isfile(classes) else None
    if classes:
        return [str(n) for n in classes]
    from mmtrack.datasets import DATASETS
    dataset = DATASETS.get(test.get('type', '')) if test.get('type') else None
    version = test.get('dataset_version')
    names = getattr(dataset, f'CLASSES_{version}_version', None) or getattr(dataset, 'CLASSES', None)
    # a dataset's default names only if they fit the head (TAO's 482 classes are not COCO's 80)
    if names and (num is None or len(names) == num):
        return [str(n) for n in names]
    return [f'class_{i}' for i in range(num or 1)]


def _find_num_classes(node):
    if isinstance(node, dict):
        if isinstance(node.get('num_classes'), int):
            return node['num_classes']
        for value in node.values():
            found = _find_num_classes(value)
            if found:
                return found
    elif isinstance(node, (list, tuple)):
        for value in node:
            found = _find_num_classes(value)
            if found:
                return found
    return None


# -- weights --------------------------------------------------------------------
def pretrained_entries(node, prefix='model'):
    """Yields (key path, checkpoint) for every pretrained weight a model config
    names: ``init_cfg=dict(type='Pretrained', checkpoint=...)`` and ``pretrained=``."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f'{prefix}.{key}'
            if key == 'pretrained' and isinstance(value, str):
                yield path, value
            elif key == 'init_cfg':
                for i, init in enumerate(value if isinstance(value, (list, tuple)) else [value]):
                    if isinstance(init, dict) and init.get('type') == 'Pretrained' \
                            and isinstance(init.get('checkpoint'), str):
                        yield (f'{path}[{i}]' if isinstance(value, (list, tuple)) else path,
                               init['checkpoint'])
            else:
                yield from pretrained_entries(value, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from pretrained_entries(value, f'{prefix}[{i}]')


def strip_pretrained(node, keep=lambda checkpoint: False):
    """Removes pretrained entries in place unless ``keep(checkpoint)``;
    returns the removed checkpoints."""
    removed = []
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if key == 'pretrained' and isinstance(value, str) and not keep(value):
                node[key] = None
                removed.append(value)
            elif key == 'init_cfg':
                inits = value if isinstance(value, (list, tuple)) else [value]
                kept = [i for i in inits if not (isinstance(i, dict) and i.get('type') == 'Pretrained'
                                                 and isinstance(i.get('checkpoint'), str)
                                                 and not keep(i['checkpoint']))]
                removed += [i['checkpoint'] for i in inits if i not in kept]
                if len(kept) != len(inits):
                    node[key] = (kept or None) if isinstance(value, (list, tuple)) else None
            else:
                removed += strip_pretrained(value, keep)
    elif isinstance(node, (list, tuple)):
        for value in node:
            removed += strip_pretrained(value, keep)
    return removed


def rebase_pretrained(node, base_dir):
    """Makes relative pretrained paths (weights bundled in a .mar) absolute
    under ``base_dir``."""
    def visit(entry):
        if isinstance(entry, dict) and entry.get('type') == 'Pretrained' \
                and isinstance(entry.get('checkpoint'), str) and not _is_url(entry['checkpoint']) \
                and not os.path.isabs(entry['checkpoint']):
            entry['checkpoint'] = os.path.join(str(base_dir), entry['checkpoint'])
    for value in _walk(node):
        visit(value)


def _walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, (list, tuple)) else ()
    for child in children:
        yield from _walk(child)


def _is_url(path):
    return '://' in path


def strip_unfetched(model_cfg, checkpoint=None):
    """Drops, in place, the pretrained entries building would download: with a
    checkpoint every one (the checkpoint holds the whole model); without one,
    those that are not local files, with a warning. Returns the dropped ones."""
    if checkpoint is not None:
        return strip_pretrained(model_cfg)
    skipped = strip_pretrained(model_cfg, keep=os.path.isfile)
    if skipped:
        warnings.warn(f'not downloading {len(skipped)} pretrained weight(s) named by the config '
                      f'({", ".join(skipped)}): those parts have random weights')
    return skipped


def load_weights(model, checkpoint):
    """Loads ``checkpoint`` into ``model`` (ConfigError in one line when it
    cannot) and takes the class names its meta records."""
    from mmcv.runner import load_checkpoint
    try:
        ckpt = _quietly(load_checkpoint, model, str(checkpoint), map_location='cpu')
    except Exception as e:
        raise ConfigError(f'cannot load checkpoint {checkpoint}: {type(e).__name__}: {e}') from None
    classes = ckpt.get('meta', {}).get('CLASSES') if isinstance(ckpt, dict) else None
    if classes:
        model.CLASSES = classes


def _build(model_cfg):
    """An mmtrack model, or a plain mmdet detector (a config whose model.type
    mmtrack does not register: mmtrack's registry does not fall back to mmdet's)."""
    from mmtrack.models import MODELS
    from mmtrack.models import build_model as mmtrack_build_model
    if MODELS.get(model_cfg.get('type')) is not None:
        return mmtrack_build_model(model_cfg)
    from mmdet.models import build_detector
    return build_detector(model_cfg)


def build_model(cfg, checkpoint=None, device='cpu'):
    """The nn.Module, never downloading: with a checkpoint, every pretrained
    entry is dropped (the checkpoint holds the whole model); without one, only
    entries that are local files are loaded and the rest stay random."""
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ConfigError(f'no such checkpoint: {checkpoint}')
    strip_unfetched(cfg.model, checkpoint)
    if checkpoint is None and not list(pretrained_entries(cfg.model)):
        warnings.warn('no checkpoint given: the model has random weights')
    model = _build(cfg.model)
    _quietly(model.init_weights)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    model.cfg = cfg
    model.to(device)
    model.eval()
    return model


def _quietly(fn, *args, **kwargs):
    """mmcv logs every initialised parameter and each missing key at INFO/WARNING."""
    from mmcv.utils import get_logger
    logger = get_logger('mmcv')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return fn(*args, **kwargs)
    finally:
        logger.setLevel(level)


# -- per-video state ------------------------------------------------------------
TRACKER_CLASS_KEY = 'tracker_class'     # in a snapshot's data: the class that wrote it


class ModelState:
    """Swaps per-video state in and out of one mmtrack model.

    State is what the forward pass adds to the model's ``__dict__`` (found by
    difference with the attributes it had once built) plus the ``tracker``
    submodule, of which each session gets a fresh deep copy.
    """

    def __init__(self, model):
        self.model = model
        self.static_keys = set(model.__dict__)
        self.pristine_tracker = copy.deepcopy(getattr(model, 'tracker', None))

    def new(self):
        state = {}
        if self.pristine_tracker is not None:
            state['tracker'] = copy.deepcopy(self.pristine_tracker)
        return state

    def swap_in(self, state):
        for key in [k for k in self.model.__dict__ if k not in self.static_keys]:
            del self.model.__dict__[key]
        for key, value in state.items():
            setattr(self.model, key, value)

    def swap_out(self):
        state = {k: v for k, v in self.model.__dict__.items() if k not in self.static_keys}
        if self.pristine_tracker is not None:
            state['tracker'] = self.model.tracker
        return state

    def to_data(self, state):
        """The part of ``state`` a snapshot holds (``snapshot.dumps``): the
        model's per-video attributes (SOT's template, VID's reference memory:
        ``memo``) and of the tracker its public attributes that are data
        (``tracks``, ``num_tracks``, QDTrack's ``backdrops``...). What else a
        tracker holds is the model's own (``kf`` is ``model.motion``, set again
        by the next ``track``) and comes from a fresh copy on load."""
        from .snapshot import is_data_type
        data = {k: v for k, v in state.items() if k != 'tracker'}
        tracker = state.get('tracker')
        if tracker is not None:
            data['tracker'] = {k: v for k, v in vars(tracker).items()
                               if not k.startswith('_') and k != 'training' and is_data_type(v)}
            # mmtrack's tracker and its fast version hold their state differently
            data[TRACKER_CLASS_KEY] = type(tracker).__name__
        return data

    def from_data(self, data):
        """A state from what ``to_data`` returned (read back by
        ``snapshot.loads``): a fresh tracker copy with the saved attributes."""
        from .snapshot import SnapshotError
        if not isinstance(data, dict):
            raise SnapshotError('its model state is not a dict')
        if (self.pristine_tracker is None) != ('tracker' not in data):
            raise SnapshotError('it was written for a model '
                                f'{"without" if "tracker" not in data else "with"} a tracker')
        if self.pristine_tracker is not None:
            # snapshots made before the key was written all came from mmtrack's own class
            written_by = data.get(TRACKER_CLASS_KEY) or next(
                c.__name__ for c in type(self.pristine_tracker).__mro__
                if c.__module__.startswith('mmtrack.'))
        if self.pristine_tracker is not None and written_by != type(self.pristine_tracker).__name__:
            raise SnapshotError(f'it was written by a {written_by}, and this worker runs a '
                                f'{type(self.pristine_tracker).__name__} (--tracker-impl differs '
                                'between the servers sharing the store)')
        state = {k: v for k, v in data.items() if k not in ('tracker', TRACKER_CLASS_KEY)}
        for key in state:
            if not isinstance(key, str) or key.startswith('_') or key in self.static_keys:
                raise SnapshotError(f'model attribute {key!r} is not one a snapshot sets')
        if self.pristine_tracker is not None:
            tracker = copy.deepcopy(self.pristine_tracker)
            if not isinstance(data['tracker'], dict):
                raise SnapshotError('its tracker state is not a dict')
            for key, value in data['tracker'].items():
                if not isinstance(key, str) or key.startswith('_') or key == 'training':
                    raise SnapshotError(f'tracker attribute {key!r} is not one a snapshot sets')
                setattr(tracker, key, value)
            state['tracker'] = tracker
        return state


# -- inputs ---------------------------------------------------------------------
def compose(steps):
    """The test pipeline (a list of step dicts) built once."""
    from mmdet.datasets.pipelines import Compose
    import mmtrack.datasets  # noqa: F401 - registers VideoCollect and the Seq* steps
    return Compose(steps)


def webcam_pipeline(steps):
    """``steps`` (a copy) with the first, loading step taking an array, as
    ``inference_mot`` does."""
    steps = copy.deepcopy(list(steps))
    steps[0].type = 'LoadImageFromWebcam'
    return steps


def collate_and_scatter(sample, device):
    """One pipeline output as the model's input batch on ``device``."""
    from mmcv.parallel import collate, scatter
    data = collate([sample], samples_per_gpu=1)
    target = [device.index or 0] if device.type == 'cuda' else [-1]
    return scatter(data, target)[0]


def forward(model, data):
    import torch
    try:
        with torch.no_grad():
            return model(return_loss=False, rescale=True, **data)
    except ImportError as e:
        # mmtrack imports some packages (dataset toolkits) only where they are used
        raise ConfigError(f'the model needs a package that is not installed: {e}') from None


def has_batchable_detector(model):
    """True for models whose detector features can be computed ahead: MOT's
    ByteTrack, OC-SORT, SORT/DeepSORT, Tracktor and QDTrack all call
    ``detector.extract_feat(img)`` once per frame on the prepared image."""
    return callable(getattr(getattr(model, 'detector', None), 'extract_feat', None))


# Small inputs gain from sharing a pass, large ones lose (BENCHMARKS.md,
# detector batch): automatic batching fills a pass up to this many input pixels.
AUTO_BATCH_PIXELS = 400_000
MAX_AUTO_BATCH = 8


def frames_per_pass(image, wanted=None):
    """``wanted`` frames, or (None) as many ``image``-sized inputs as fit in
    AUTO_BATCH_PIXELS, between 1 and MAX_AUTO_BATCH."""
    if wanted:
        return max(1, int(wanted))
    pixels = int(image.shape[-1]) * int(image.shape[-2])
    return max(1, min(MAX_AUTO_BATCH, AUTO_BATCH_PIXELS // max(1, pixels)))


def forward_batch(model, batch, per_pass=None):
    """(The results of ``forward`` on each prepared frame of ``batch``, in
    order; the number of detector passes): the detector's features computed
    ``per_pass`` frames at a time (None: ``frames_per_pass``'s automatic choice).

    Each frame's forward still runs in full; only its ``extract_feat`` call on
    that very image tensor returns the precomputed slice. Any other call (a
    model that extracts twice, or from another tensor) computes as usual, so a
    result can differ from frame-by-frame only by float rounding in the batched
    convolutions (``tests/test_batching.py`` bounds it).
    """
    import torch
    images = [data['img'][0] for data in batch]
    if not batch or len({tuple(i.shape) for i in images}) > 1:
        return [forward(model, data) for data in batch], len(batch)
    size = frames_per_pass(images[0], per_pass)
    results, passes = [], 0
    for start in range(0, len(batch), size):
        chunk, chunk_images = batch[start:start + size], images[start:start + size]
        passes += 1
        if len(chunk) == 1:
            results.append(forward(model, chunk[0]))
            continue
        detector = model.detector
        with torch.no_grad():
            features = detector.extract_feat(torch.cat(chunk_images))
        for i, data in enumerate(chunk):
            with _features_for(detector, chunk_images[i], _batch_slice(features, i)):
                results.append(forward(model, data))
    return results, passes


def _batch_slice(features, i):
    import torch
    if isinstance(features, torch.Tensor):
        return features[i:i + 1]
    return type(features)(_batch_slice(f, i) for f in features)


@contextlib.contextmanager
def _features_for(detector, image, features):
    compute = detector.extract_feat
    pending = [features]

    def extract_feat(img):
        if img is image and pending:
            return pending.pop()
        return compute(img)

    detector.extract_feat = extract_feat        # an instance attribute shadows the method
    try:
        yield
    finally:
        del detector.extract_feat


# -- outputs --------------------------------------------------------------------
@contextlib.contextmanager
def keep_finite_sot_box(model):
    """A SOT model whose remembered box went NaN (random-weight heads can do it)
    would track NaN forever; the last finite box is put back, and that frame
    reports no object (``tasks.sot``)."""
    import torch
    memo = getattr(model, 'memo', None)
    before = getattr(memo, 'bbox', None)
    before = before.clone() if isinstance(before, torch.Tensor) else None
    yield
    after = getattr(getattr(model, 'memo', None), 'bbox', None)
    if before is not None and isinstance(after, torch.Tensor) and not torch.isfinite(after).all():
        model.memo.bbox = before


# -- bounded track history (issue #16) ----------------------------------------
# mmtrack's trackers append every frame's box, label, frame id (and embedding,
# mask, RoI feature) to each live track's lists and never drop an entry, so a
# track that never leaves a camera's view grows without bound. Each tracker
# reads only the last few entries; ``trim_track_history`` drops the older ones
# after every forward, which changes no result (tests/test_track_memory.py).
#
# What each tracker of mmtrack 0.14 reads (mmtrack/models/trackers/*.py, line
# numbers of the 0.14.0 wheel), hence the bounds in ``_history_bounds``:
#
# - BaseTracker: ``memo`` reads ``v[-1]`` of every list (base_tracker.py:138);
#   ``get(item, ids)`` reads ``[-1]`` (:176) and ``get(item, ids, num_samples)``
#   reads ``[-num_samples:]`` (:167; num_samples 0 or negative would read
#   more, so only a positive int is taken as a bound); ``pop_invalid_tracks``
#   reads ``frame_ids[-1]`` (:99).
# - ByteTracker: ``frame_ids[-1]`` (byte_tracker.py:68, :99-101, :222, :265),
#   ``bboxes[-1]`` (:72, :84), ``labels[-1]`` (:87, :141) and
#   ``len(bboxes) >= num_tentatives`` while a track is tentative (:82). A
#   tentative track turns confirmed as soon as its list reaches
#   num_tentatives entries and never turns back, so keeping
#   max(1, num_tentatives) boxes leaves that test unchanged; the rest keep 1.
#   Its Kalman state (``mean``, ``covariance``) is one array each.
# - SortTracker (SORT and DeepSORT): ``bboxes[-1]`` (sort_tracker.py:66, :78
#   and ``get('bboxes', ids)`` :191), ``frame_ids[-1]`` (:89-91, :187),
#   ``len(bboxes) >= num_tentatives`` (:76, as ByteTracker) and, with ReID,
#   ``get('embeds', ids, reid.num_samples, 'mean')`` (:166-170): the last
#   num_samples embeddings (the last one where num_samples is None);
#   ``scores``, ``labels``, ``ids`` are read through ``memo`` only: 1.
#   KalmanFilter.track (motion/kalman_filter.py:218-221) reads mean/covariance.
# - OCSORTTracker: as SortTracker for bboxes/labels/frame_ids (ocsort_tracker.py
#   :67, :71, :91, :93, :351). Its own ``obs`` list (one box per frame, ``None`` where
#   unmatched; :79, :100, :461) is read by ``k_step_observation`` (:132-144:
#   whether ``len(obs) > vel_delta_t`` and ``obs[-1 - vel_delta_t]``), by
#   ``last_obs`` (:221-225: the last entry that is not None) and by
#   ``online_smooth`` (:273-280: the run of trailing Nones). Keeping the last
#   max(vel_delta_t + 1, trailing Nones + 1) entries keeps all three (the
#   trailing run ends when the track is matched, or popped num_frames_retain
#   frames after its last match).
# - TracktorTracker: ``memo`` and ``get('bboxes', ids)`` read [-1]
#   (tracktor_tracker.py:64, :182); ``get('embeds', ids, reid.num_samples)``
#   (:174-178) as SortTracker. CameraMotionCompensation rewrites the last
#   ``min(num_samples, len)`` boxes, num_samples being 1 without linear motion
#   (tracktor_tracker.py:139-145, camera_motion_compensation.py:61-75), so 1.
#   LinearMotion (no config of mmtrack 0.14 uses it) scans all of
#   ``frame_ids`` for gaps without stopping at the first, and with
#   num_samples 1 pairs the last box with the very first one
#   (linear_motion.py:67-77, :36): with it, boxes and frame ids stay whole.
# - QuasiDenseTAOTracker: appends ``bboxes``, ``labels``, ``frame_ids``
#   (quasi_dense_tao_tracker.py:94-99), read as ``[-1]`` only (:110, :124-125): 1.
# - QuasiDenseTracker keeps one box, one momentum-averaged embedding and a
#   velocity per track, and at most memo_backdrop_frames backdrops
#   (quasi_dense_tracker.py:96-141): bounded already, nothing to trim.
# - MaskTrackRCNNTracker: ``get('bboxes')``, ``get('labels')``,
#   ``get('roi_feats')`` (masktrack_rcnn_tracker.py:146-148) and frame_ids in
#   pop_invalid_tracks read [-1]; its ``masks`` (full-image masks, the largest
#   entries of all) are never read back: 1 each.
#
# No MOT or VIS model reads its tracker's lists itself (mmtrack/models/mot,
# vis). Other tracker classes, subclasses included, and other keys are left
# as they are: a bound is only ever taken from the code read above.

def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _tentative_bound(tracker):
    """Boxes a track keeps so that ``len(bboxes) >= num_tentatives`` reads the
    same (None: the setting is not an int; keep all)."""
    n = getattr(tracker, 'num_tentatives', None)
    if not isinstance(n, int) or isinstance(n, bool):
        return None
    return max(1, n)


def _reid_bound(tracker):
    """Embeddings that ``get('embeds', ids, reid['num_samples'], 'mean')`` reads."""
    reid = getattr(tracker, 'reid', None)
    if not isinstance(reid, dict):
        return None
    num_samples = reid.get('num_samples', None)
    if num_samples is None:
        return 1
    return num_samples if _positive_int(num_samples) else None


def _ocsort_obs_bound(tracker, obs):
    delta = getattr(tracker, 'vel_delta_t', None)
    if not isinstance(delta, int) or isinstance(delta, bool) or delta < 0:
        return None
    trailing = 0
    for box in reversed(obs):
        if box is not None:
            break
        trailing += 1
    return max(delta + 1, trailing + 1)


def _history_bounds(tracker, model=None):
    """{key: entries kept, or a function of the track's list giving it} for
    ``tracker``'s class, or None for a class not read here (left untouched).
    A bound of None keeps that key whole."""
    from mmtrack.models import trackers as T
    kind = type(tracker)
    if kind is T.ByteTracker:
        return dict(ids=1, labels=1, frame_ids=1, bboxes=_tentative_bound(tracker))
    if kind is T.SortTracker:
        return dict(ids=1, scores=1, labels=1, frame_ids=1,
                    bboxes=_tentative_bound(tracker), embeds=_reid_bound(tracker))
    if kind is T.OCSORTTracker:
        return dict(ids=1, labels=1, frame_ids=1, bboxes=_tentative_bound(tracker),
                    obs=lambda obs: _ocsort_obs_bound(tracker, obs))
    if kind is T.TracktorTracker:
        # whole boxes and frame ids with LinearMotion, or where the model is unknown
        plain = model is not None and not getattr(model, 'with_linear_motion', True)
        return dict(ids=1, scores=1, labels=1, embeds=_reid_bound(tracker),
                    bboxes=1 if plain else None, frame_ids=1 if plain else None)
    if kind is T.QuasiDenseTAOTracker:
        return dict(bboxes=1, labels=1, frame_ids=1)
    if kind is T.QuasiDenseTracker:
        return {}
    if kind is T.MaskTrackRCNNTracker:
        return dict(ids=1, bboxes=1, labels=1, masks=1, roi_feats=1, frame_ids=1)
    return None


def trim_track_history(tracker, model=None):
    """Drops the entries of each track's per-frame lists that ``tracker`` will
    never read again (see the notes above ``_history_bounds``), in place;
    results stay those of the whole lists. ``model``: the MOT/VIS model the
    tracker runs in (Tracktor's bound depends on its motion models). Trackers
    and keys not known here are left untouched. Returns the entries dropped."""
    bounds = _history_bounds(tracker, model) if tracker is not None else None
    tracks = getattr(tracker, 'tracks', None)
    if not bounds or not isinstance(tracks, dict):
        return 0
    dropped = 0
    for track in tracks.values():
        if not isinstance(track, dict):
            continue
        for key, keep in bounds.items():
            entries = track.get(key)
            if not isinstance(entries, list):
                continue
            if callable(keep):
                keep = keep(entries)
            if keep is None or len(entries) <= keep:
                continue
            extra = len(entries) - keep
            del entries[:extra]
            dropped += extra
    return dropped


def _trim_after_forward(model, inputs, output):
    """Forward hook (``bound_track_history``): trims the tracker in the model
    now, which is the stepping session's own (``ModelState`` swaps it in)."""
    trim_track_history(getattr(model, 'tracker', None), model)


def bound_track_history(model):
    """Makes every forward of ``model`` (a MOT or VIS model) end with
    ``trim_track_history`` on its tracker: one-frame steps and the batched
    ``forward_batch`` alike, since both call the model. Idempotent."""
    hooks = getattr(model, '_forward_hooks', {})
    if not any(hook is _trim_after_forward for hook in hooks.values()):
        model.register_forward_hook(_trim_after_forward)
    return model
