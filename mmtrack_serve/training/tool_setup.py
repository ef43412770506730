"""What MMTracking 0.14's ``tools/train.py`` and ``tools/test.py`` share: reading
the config, picking the model family, building the model without downloads,
and putting it on a device.

Model families, as the tools pick them:

- ``'mmtrack'``: a video model (ByteTrack, SiamRPN, SELSA...), built by
  ``mmtrack.models.build_model``. A ByteTrack config trains its detector
  through ``ByteTrack.forward_train`` on an image dataset.
- ``'detector'``: ``USE_MMDET = True`` in the config (e.g. ``det/faster-rcnn_*``):
  ``cfg.model.detector`` becomes the model, an mmdet detector.
- ``'reid'``: ``TRAIN_REID = True``: ``cfg.model.reid``, built by
  ``mmtrack.models.build_reid``.
"""
import multiprocessing
import os
import platform

import cv2

from .. import mmtrack_compat as compat
from ..errors import ConfigError, InputError

FAMILIES = ('mmtrack', 'detector', 'reid')


def load_tool_config(config, cfg_options=None):
    """``(cfg, family)`` for a config path or wheel config name, with
    ``cfg.model`` replaced by its detector or reid part as the tools do,
    before ``cfg_options`` are merged (so options address that part)."""
    cfg = compat.read_config(config)
    if not isinstance(cfg.get('model'), dict):
        raise ConfigError('the config defines no model')
    family = 'mmtrack'
    if cfg.get('USE_MMDET', False):
        family = 'detector'
        if 'detector' in cfg.model:
            cfg.model = cfg.model.detector
    elif cfg.get('TRAIN_REID', False):
        family = 'reid'
        if 'reid' in cfg.model:
            cfg.model = cfg.model.reid
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg, family


def build_family_model(cfg, family, checkpoint=None):
    """The model of ``cfg`` with initialised weights, nothing downloaded:
    ``init_cfg``/``pretrained`` URLs are dropped with a warning (local files
    are kept), and with a ``checkpoint`` every pretrained entry is dropped as
    the checkpoint overwrites them all."""
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise InputError(f'checkpoint not found: {checkpoint}')
    compat.strip_unfetched(cfg.model, checkpoint)
    if family == 'detector':
        from mmdet.models import build_detector as build
    elif family == 'reid':
        from mmtrack.models import build_reid as build
    else:
        from mmtrack.models import build_model as build
    if cfg.get('train_cfg', False) or cfg.get('test_cfg', False):
        # old-style configs keep train_cfg/test_cfg at the top level
        model = build(cfg.model, train_cfg=cfg.get('train_cfg'), test_cfg=cfg.get('test_cfg'))
    else:
        model = build(cfg.model)
    model.init_weights()
    if checkpoint is not None:
        compat.load_weights(model, checkpoint)
    return model


def default_device():
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def check_device(device):
    """Distributed training runs on either device: see ``distributed``."""
    import torch
    if device not in ('cpu', 'cuda'):
        raise InputError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == 'cuda' and not torch.cuda.is_available():
        raise InputError('--device cuda: no CUDA GPU is available (use --device cpu)')


def data_parallel(model, device, gpu_ids):
    """``MMDataParallel`` on one GPU, or on the CPU (mmcv runs CPU batches
    when the wrapper has no device ids)."""
    from mmcv.parallel import MMDataParallel
    if device == 'cuda':
        return MMDataParallel(model.cuda(gpu_ids[0]), device_ids=list(gpu_ids))
    wrapped = MMDataParallel(model.cpu())
    # torch fills in every visible GPU when there is one; the CPU path is the empty list.
    wrapped.device_ids = []
    return wrapped


def distributed_parallel(model, device, find_unused_parameters=False):
    """The model of one rank under torchrun: on its GPU, or on the CPU."""
    from . import distributed
    return distributed.wrap(model, device, find_unused_parameters=find_unused_parameters)


def setup_multi_processes(cfg):
    """MMTracking's ``setup_multi_processes``, callable more than once per
    process (it fails when the start method is already set, as in a test run)."""
    if platform.system() != 'Windows':
        method = cfg.get('mp_start_method', 'fork')
        if multiprocessing.get_start_method(allow_none=True) != method:
            multiprocessing.set_start_method(method, force=True)
    cv2.setNumThreads(cfg.get('opencv_num_threads', 0))
    workers = cfg.data.get('workers_per_gpu', 0)
    for variable in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        # one thread per loader worker, or the workers fight over the cores
        if variable not in os.environ and workers > 1:
            os.environ[variable] = '1'
