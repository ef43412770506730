"""Training from a config, as MMTracking 0.14's ``tools/train.py``.

The steps are the tool's: read the config (a ``USE_MMDET`` config trains
``cfg.model.detector`` with mmdet, a ``TRAIN_REID`` one ``cfg.model.reid``),
set up the work dir, its log file and the seed, build the model and the
datasets, store the class names and config in the checkpoints' meta, train.

Where this differs, on purpose:

- nothing is downloaded: ``init_cfg``/``pretrained`` URLs are dropped with a
  warning, those parts start from random weights (``tool_setup``);
- a ``device`` ('cpu' or 'cuda'): mmtrack's ``train_model`` wraps the model in
  ``MMDataParallel`` without moving it to a GPU, and mmdet's ``train_detector``
  cannot run on the CPU of a machine that has a GPU. ``run_training`` below is
  the union of the two: mmdet's runner handling (``cfg.runner``, epoch or
  iteration based), mmtrack's data loaders and video evaluation hook for
  video models, mmdet's for detectors;
- fp16 is for GPUs only: on the CPU the config's ``fp16`` is ignored;
- validation leaves out 'track' on MOTChallenge datasets, whose ``evaluate``
  needs TrackEval (not installed): ``mmtrack-serve test --eval track`` scores it.

Distributed training (``launcher='pytorch'``) runs under ``torchrun``, as
MMTracking's ``tools/dist_train.sh``: one process per GPU (nccl), or several
processes on the CPU (gloo); see ``distributed`` and the train command's help.
"""
import copy
import importlib.util
import logging
import os.path as osp
import time
import warnings
from pathlib import Path

from ..errors import InputError
from . import tool_setup


def train(config, work_dir=None, seed=None, cfg_options=None, launcher='none',
          resume_from=None, device=None, validate=True, deterministic=False, gpu_id=0,
          diff_seed=False):
    """Trains the model of ``config``; returns the path of the last checkpoint.

    ``config`` is a path, a config shipped in mmtrack, or an ``mmcv.Config``;
    ``cfg_options`` a dict as mmcv's ``--cfg-options`` makes. Without
    ``work_dir``, the config's, else ``./work_dirs/CONFIG_NAME``.
    Under torchrun (``launcher='pytorch'``) every rank returns it, once rank 0
    has written it.
    """
    device = device or tool_setup.default_device()
    tool_setup.check_device(device)
    if launcher not in ('none', 'pytorch'):
        raise InputError(f"launcher must be 'none' or 'pytorch', got {launcher!r}")
    cfg, family = tool_setup.load_tool_config(config, cfg_options)
    tool_setup.setup_multi_processes(cfg)

    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', _config_name(config, cfg))
    if resume_from is not None:
        if not osp.isfile(resume_from):
            raise InputError(f'checkpoint to resume from not found: {resume_from}')
        cfg.resume_from = str(resume_from)
    cfg.gpu_ids = [gpu_id]
    cfg.device = device

    distributed = launcher != 'none'
    if not distributed:
        return _train(config, cfg, family, device, seed, validate, deterministic)
    from . import distributed as dist_setup
    backend, backend_note = dist_setup.init_process_group(device, cfg.get('dist_params'))
    try:
        return _train(config, cfg, family, device, seed, validate, deterministic,
                      dist_info=(backend, backend_note, dist_setup.members(device)),
                      diff_seed=diff_seed)
    finally:
        dist_setup.finish()


def _train(config, cfg, family, device, seed, validate, deterministic, dist_info=None,
           diff_seed=False):
    """The rest of ``train``, once the process group (if any) is joined;
    ``dist_info``: ``(backend, note, members)`` when distributed."""
    import mmcv
    import torch.distributed as dist
    from mmdet.apis import set_random_seed
    from mmtrack import __version__ as mmtrack_version
    from mmtrack.apis import init_random_seed
    from mmtrack.utils import collect_env

    distributed = dist_info is not None
    rank = dist.get_rank() if distributed else 0
    if distributed:
        cfg.gpu_ids = range(dist.get_world_size())

    mmcv.mkdir_or_exist(osp.abspath(cfg.work_dir))
    if rank == 0:
        cfg.dump(osp.join(cfg.work_dir, f'{_config_name(config, cfg)}.py'))
    timestamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())
    logger = fresh_root_logger(osp.join(cfg.work_dir, f'{timestamp}.log'),
                               cfg.get('log_level', 'INFO'))

    meta = dict()
    env_info = '\n'.join(f'{k}: {v}' for k, v in collect_env().items())
    dash_line = '-' * 60 + '\n'
    logger.info('Environment info:\n' + dash_line + env_info + '\n' + dash_line)
    meta['env_info'] = env_info
    if distributed:
        backend, backend_note, members = dist_info
        logger.info(f'Distributed training: True, device: {device}, backend: {backend}, '
                    f'world size: {len(members)}')
        if backend_note:
            logger.warning(backend_note)
        logger.info('Ranks: ' + '; '.join(members))
    else:
        logger.info(f'Distributed training: False, device: {device}')
    logger.info(f'Config:\n{cfg.pretty_text}')

    if seed is not None:
        cfg.seed = seed
    elif cfg.get('seed') is None:
        cfg.seed = init_random_seed(device=device)
    if diff_seed and distributed:
        cfg.seed = cfg.seed + dist.get_rank()
    deterministic = deterministic or cfg.get('deterministic', False)
    logger.info(f'Set random seed to {cfg.seed}, deterministic: {deterministic}')
    set_random_seed(cfg.seed, deterministic=deterministic)
    meta['seed'] = cfg.seed

    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        model = tool_setup.build_family_model(cfg, family)
    datasets = build_train_datasets(cfg)
    classes = datasets[0].CLASSES
    if cfg.get('checkpoint_config') is not None:
        # as the tools do: the checkpoint says which model and classes it holds
        cfg.checkpoint_config.meta = dict(mmtrack_version=mmtrack_version,
                                          config=cfg.pretty_text, CLASSES=classes)
    model.CLASSES = classes
    run_training(model, datasets, cfg, family, distributed=distributed, validate=validate,
                 timestamp=timestamp, meta=meta)
    if distributed:
        dist.barrier()  # rank 0 may still be writing the last checkpoint
    return latest_checkpoint(cfg.work_dir)


def _config_name(config, cfg):
    if isinstance(config, (str, Path)):
        return osp.splitext(osp.basename(str(config)))[0]
    filename = getattr(cfg, 'filename', None)
    return osp.splitext(osp.basename(filename))[0] if filename else 'config'


def fresh_root_logger(log_file, log_level):
    """mmtrack's root logger, writing to ``log_file``. mmcv sets a logger up
    once per process: a second training in one process (tests, scripts) would
    log into the first one's file, through a stream that may be closed since."""
    from mmcv.utils.logging import logger_initialized
    from mmtrack.utils import get_root_logger
    logger = logging.getLogger('mmtrack')
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger_initialized.pop('mmtrack', None)
    return get_root_logger(log_file=log_file, log_level=log_level)


def build_train_datasets(cfg):
    from mmtrack.datasets import build_dataset
    datasets = [build_dataset_or_explain(build_dataset, cfg.data.train, 'train')]
    if len(cfg.workflow) == 2:
        val = copy.deepcopy(cfg.data.val)
        val.pipeline = cfg.data.train.pipeline
        datasets.append(build_dataset_or_explain(build_dataset, val, 'val'))
    return datasets


def build_dataset_or_explain(build, dataset_cfg, split, *args):
    """``build(dataset_cfg)``; a missing annotation file is the user's to fix."""
    try:
        return build(dataset_cfg, *args)
    except FileNotFoundError as e:
        raise InputError(f'{e} (point data.{split} at the dataset with --cfg-options '
                         f'data.{split}.ann_file=... data.{split}.img_prefix=...)') from None


def run_training(model, datasets, cfg, family, distributed=False, validate=False,
                 timestamp=None, meta=None):
    """mmtrack's ``train_model`` and mmdet's ``train_detector`` in one, on
    ``cfg.device`` (see the module doc)."""
    from mmcv.runner import (DistSamplerSeedHook, EpochBasedRunner, build_optimizer,
                             build_runner)
    from mmtrack.utils import get_root_logger
    logger = get_root_logger(cfg.get('log_level', 'INFO'))

    runner_cfg = _runner_config(cfg)
    loaders = [_train_loader(ds, cfg, family, distributed) for ds in datasets]
    if distributed:
        model = tool_setup.distributed_parallel(
            model, cfg.device, find_unused_parameters=cfg.get('find_unused_parameters', False))
    else:
        model = tool_setup.data_parallel(model, cfg.device, cfg.gpu_ids)

    optimizer = build_optimizer(model, cfg.optimizer)
    runner = build_runner(runner_cfg, default_args=dict(
        model=model, optimizer=optimizer, work_dir=cfg.work_dir, logger=logger, meta=meta))
    runner.timestamp = timestamp  # the .log and .log.json files share a name

    runner.register_training_hooks(
        cfg.lr_config, _optimizer_hook_config(cfg, distributed, logger),
        cfg.get('checkpoint_config'), cfg.log_config, cfg.get('momentum_config'),
        custom_hooks_config=cfg.get('custom_hooks'))
    if distributed and isinstance(runner, EpochBasedRunner):
        runner.register_hook(DistSamplerSeedHook())
    if validate and cfg.data.get('val'):
        hook = _eval_hook(cfg, family, distributed, runner_cfg, logger)
        if hook is not None:
            runner.register_hook(hook, priority='LOW')

    if cfg.get('resume_from'):
        runner.resume(cfg.resume_from)
    elif cfg.get('load_from'):
        runner.load_checkpoint(cfg.load_from)
    runner.run(loaders, cfg.workflow)


def _runner_config(cfg):
    """``cfg.runner``, or the epoch runner of ``total_epochs`` (mmtrack's configs)."""
    if cfg.get('runner') is not None:
        runner = copy.deepcopy(cfg.runner)
        if runner.get('type') == 'EpochBasedRunner' and cfg.get('total_epochs') is not None:
            runner.max_epochs = cfg.total_epochs
        return runner
    if cfg.get('total_epochs') is None:
        raise InputError('the config sets neither runner nor total_epochs: '
                         'no training length')
    return dict(type='EpochBasedRunner', max_epochs=cfg.total_epochs)


def _train_loader(dataset, cfg, family, distributed):
    common = dict(dist=distributed, seed=cfg.seed,
                  persistent_workers=cfg.data.get('persistent_workers', False))
    if family == 'mmtrack':
        from mmtrack.datasets import build_dataloader
        return build_dataloader(dataset, cfg.data.samples_per_gpu, cfg.data.workers_per_gpu,
                                len(cfg.gpu_ids),
                                samples_per_epoch=cfg.data.get('samples_per_epoch'), **common)
    from mmdet.datasets import build_dataloader
    return build_dataloader(dataset, cfg.data.samples_per_gpu, cfg.data.workers_per_gpu,
                            len(cfg.gpu_ids), runner_type=_runner_config(cfg)['type'], **common)


def _optimizer_hook_config(cfg, distributed, logger):
    optimizer_config = copy.deepcopy(cfg.optimizer_config)
    fp16_cfg = cfg.get('fp16')
    if fp16_cfg and cfg.device != 'cuda':
        logger.info('fp16 in the config is ignored: mixed precision needs a GPU')
        fp16_cfg = None
    if 'type' not in optimizer_config:
        optimizer_config.type = 'Fp16OptimizerHook' if fp16_cfg else 'OptimizerHook'
    if fp16_cfg:
        optimizer_config.update(fp16_cfg)
    if 'Fp16' in optimizer_config.type:
        optimizer_config.update(distributed=distributed)
    return optimizer_config


def _eval_hook(cfg, family, distributed, runner_cfg, logger):
    """Video models are evaluated video by video (mmtrack's hook and test
    loop), detectors image by image (mmdet's). None when no metric is left."""
    if family == 'mmtrack':
        from mmtrack.core import DistEvalHook, EvalHook
        from mmtrack.datasets import build_dataloader, build_dataset
    else:
        from mmdet.core import DistEvalHook, EvalHook
        from mmdet.datasets import build_dataloader, build_dataset
    val_dataset = build_dataset_or_explain(build_dataset, cfg.data.val, 'val',
                                           dict(test_mode=True))
    val_loader = build_dataloader(val_dataset, samples_per_gpu=1,
                                  workers_per_gpu=cfg.data.workers_per_gpu,
                                  dist=distributed, shuffle=False)
    eval_cfg = copy.deepcopy(cfg.get('evaluation', {}))
    if eval_cfg.get('gpu_collect') and cfg.device != 'cuda':
        logger.info('evaluation.gpu_collect in the config is ignored on the CPU: the '
                    'ranks collect validation results through files in the work dir')
        eval_cfg['gpu_collect'] = False
    if 'metric' in eval_cfg:
        eval_cfg['metric'] = validation_metrics(val_dataset, eval_cfg['metric'], logger)
        if not eval_cfg['metric']:
            return None
    eval_cfg['by_epoch'] = runner_cfg['type'] != 'IterBasedRunner'
    return (DistEvalHook if distributed else EvalHook)(val_loader, **eval_cfg)


def validation_metrics(dataset, metrics, logger):
    """``metrics`` without 'track' where the dataset would fail on it:
    ``MOTChallengeDataset.evaluate`` imports TrackEval for HOTA, which is not
    installed; training would stop at its first validation."""
    from mmtrack.datasets import MOTChallengeDataset
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if 'track' in metrics and isinstance(dataset, MOTChallengeDataset) \
            and importlib.util.find_spec('trackeval') is None:
        logger.warning("validation skips the 'track' metric (MMTracking's needs TrackEval, "
                       'not installed): score the checkpoints with '
                       '`mmtrack-serve test --eval track`')
        metrics.remove('track')
    return metrics


def latest_checkpoint(work_dir):
    """``latest.pth``'s target, or the newest ``*.pth`` in ``work_dir``; None if none."""
    work_dir = Path(work_dir)
    latest = work_dir / 'latest.pth'
    if latest.exists():
        return latest.resolve()
    checkpoints = sorted(work_dir.glob('*.pth'), key=lambda p: p.stat().st_mtime)
    return checkpoints[-1] if checkpoints else None
