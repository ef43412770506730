"""Testing a model on a dataset, as MMTracking 0.14's ``tools/test.py``, on one
device: build ``cfg.data.test``, run ``single_gpu_test`` (or load results saved
earlier), evaluate.

- ``'track'`` is evaluated here, not by the dataset: MMTracking's
  ``MOTChallengeDataset.evaluate`` also computes HOTA with TrackEval, which is
  not installed (nor on PyPI). The tracks are turned into MOTChallenge rows
  per video (with the dataset's track interpolation, if it has one) and scored
  by ``mot_metrics.evaluate_mot`` (motmetrics) against the ground truth that
  ``find_track_gt`` finds.
- Every other metric (``'bbox'``, ``'segm'``) is the dataset's own
  ``evaluate``: COCO mAP with pycocotools for ``CocoVideoDataset``, VOC-style
  mAP at IoU 0.5 for ``MOTChallengeDataset``.
"""
import logging
import os.path as osp
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import tool_setup
from .mot_metrics import evaluate_mot, find_gt_files

log = logging.getLogger(__name__)

# EvalHook arguments in cfg.evaluation that dataset.evaluate does not take
EVAL_HOOK_ARGS = ('interval', 'tmpdir', 'start', 'gpu_collect', 'save_best', 'rule', 'by_epoch',
                  'metric')
HALF_SPLIT = re.compile(r'half-(train|val)')


def load_test_dataset(cfg):
    from mmtrack.datasets import build_dataset

    from .train import build_dataset_or_explain
    cfg.data.test.test_mode = True
    return build_dataset_or_explain(build_dataset, cfg.data.test, 'test')


def predict(cfg, family, dataset, checkpoint=None, device='cpu'):
    """The model's outputs on ``dataset``, in mmtrack's test-loop format
    (a dict of per-frame lists for video models, a list for detectors)."""
    if family == 'mmtrack':
        from mmtrack.apis import single_gpu_test
        from mmtrack.datasets import build_dataloader
    else:
        from mmdet.apis import single_gpu_test
        from mmdet.datasets import build_dataloader
    if checkpoint is None:
        warnings.warn('no checkpoint given: testing a model with random weights')
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        model = tool_setup.build_family_model(cfg, family, checkpoint)
    if not getattr(model, 'CLASSES', None):
        model.CLASSES = dataset.CLASSES
    if cfg.get('fp16') and device == 'cuda':
        from mmcv.runner import wrap_fp16_model
        wrap_fp16_model(model)
    loader = build_dataloader(dataset, samples_per_gpu=1,
                              workers_per_gpu=cfg.data.get('workers_per_gpu', 0),
                              dist=False, shuffle=False)
    model = tool_setup.data_parallel(model, device, [0])
    return single_gpu_test(model, loader)


def evaluate(dataset, outputs, metrics, cfg=None, gt_dir=None, eval_options=None,
             iou_thr=0.5):
    """``{'track': {seq: {metric: value}, 'OVERALL': ...}, <metric>: {...}}``
    for ``metrics``; ``'track'`` is ``evaluate_mot``'s result, the others
    what ``dataset.evaluate`` returns for them."""
    report = {}
    other = [m for m in metrics if m != 'track']
    if other:
        kwargs = {k: v for k, v in (cfg or {}).get('evaluation', {}).items()
                  if k not in EVAL_HOOK_ARGS}
        kwargs.update(eval_options or {})
        for metric in other:
            values = dataset.evaluate(outputs, metric=metric, **kwargs)
            report[metric] = {k: _plain(v) for k, v in values.items()}
    if 'track' in metrics:
        report['track'] = evaluate_tracks(dataset, outputs, gt_dir, iou_thr)
    return report


def evaluate_tracks(dataset, outputs, gt_dir=None, iou_thr=0.5):
    if not isinstance(outputs, dict) or 'track_bboxes' not in outputs:
        raise InputError("'track' needs a tracking model's results (with track_bboxes)")
    if not hasattr(dataset, 'vid_ids'):
        raise InputError(f"'track' needs a video dataset, not {type(dataset).__name__}")
    names, results = track_rows_by_video(dataset, outputs['track_bboxes'])
    gt, source = find_track_gt(dataset, names, gt_dir)
    log.info('tracking ground truth: %s', source)
    print(f'tracking ground truth: {source}')
    return evaluate_mot(gt, results, iou_thr=iou_thr)


def video_slices(dataset):
    """``[(video name, slice of dataset.data_infos)]`` in dataset order."""
    starts = [i for i, info in enumerate(dataset.data_infos) if info['frame_id'] == 0]
    ends = starts[1:] + [len(dataset.data_infos)]
    names = [video['name'] for video in dataset.coco.load_vids(dataset.vid_ids)]
    if len(names) != len(starts):
        raise InputError(f'{len(names)} videos but {len(starts)} first frames in the dataset')
    return [(name, slice(start, end)) for name, start, end in zip(names, starts, ends)]


def mot_frame_number(info):
    """The frame number used in MOT txt files: as MMTracking writes them."""
    return info['mot_frame_id'] if 'mot_frame_id' in info else info['frame_id'] + 1


def track_rows_by_video(dataset, track_bboxes):
    """``(names, {name: rows frame, id, x, y, w, h, score})`` from mmtrack's
    per-frame, per-class track arrays (id, x1, y1, x2, y2, score)."""
    from mmtrack.core import interpolate_tracks, results2outs
    if len(track_bboxes) != len(dataset.data_infos):
        raise InputError(f'{len(track_bboxes)} frames of results for a dataset of '
                         f'{len(dataset.data_infos)} frames')
    interpolation = getattr(dataset, 'interpolate_tracks_cfg', None)
    names, rows_by_video = [], {}
    for name, frames in video_slices(dataset):
        tracks = []  # frame index in the video, id, x1, y1, x2, y2, score
        for index, result in enumerate(track_bboxes[frames]):
            outs = results2outs(bbox_results=result)
            ids, boxes = outs['ids'].reshape(-1, 1), outs['bboxes'].reshape(-1, 5)
            tracks.append(np.hstack([np.full_like(ids, index), ids, boxes]))
        tracks = np.concatenate(tracks).astype(float) if tracks else np.zeros((0, 7))
        if interpolation is not None and len(tracks):  # it fails on no tracks
            tracks = interpolate_tracks(tracks, **interpolation)
        numbers = np.array([mot_frame_number(info) for info in dataset.data_infos[frames]])
        x1, y1, x2, y2 = tracks[:, 2], tracks[:, 3], tracks[:, 4], tracks[:, 5]
        rows_by_video[name] = np.stack(
            [numbers[tracks[:, 0].astype(int)], tracks[:, 1], x1, y1, x2 - x1, y2 - y1,
             tracks[:, 6]], axis=1)
        names.append(name)
    return names, rows_by_video


def find_track_gt(dataset, names, gt_dir=None):
    """``({name: gt}, where it came from)``, first found of:

    1. ``gt_dir``: ``GT_DIR/SEQ/gt/gt.txt`` or ``GT_DIR/SEQ/gt.txt``;
    2. where MMTracking reads it: ``IMG_PREFIX/SEQ/gt/gt.txt``, or
       ``gt_half-val.txt`` (``-train``) beside it for a ``half-val`` annotation file;
    3. where ``mmtrack-serve mot2coco`` writes the halves, beside the json:
       ``ANN_DIR/half-val/SEQ/gt/gt.txt``;
    4. the dataset's own annotations (ignore and crowd boxes as ignore regions).
    """
    if gt_dir is not None:
        found = find_gt_files(gt_dir)
        missing = [n for n in names if n not in found]
        if missing:
            raise InputError(f'no ground truth in {gt_dir} for: {", ".join(missing)}')
        return {n: found[n] for n in names}, str(gt_dir)
    ann_file, img_prefix = str(dataset.ann_file), str(dataset.img_prefix or '')
    half = HALF_SPLIT.search(osp.basename(ann_file))
    gt_name = f'gt_half-{half.group(1)}.txt' if half else 'gt.txt'
    candidates = [(Path(img_prefix), lambda n: Path(img_prefix) / n / 'gt' / gt_name)]
    if half:
        half_dir = Path(ann_file).parent / f'half-{half.group(1)}'
        candidates.append((half_dir, lambda n: half_dir / n / 'gt' / 'gt.txt'))
    for root, path_of in candidates:
        paths = {n: path_of(n) for n in names}
        if all(p.is_file() for p in paths.values()):
            return paths, f'{root}/SEQ/gt/{paths[names[0]].name}'
    return annotation_gt(dataset, names), f'the annotations of {ann_file}'


def annotation_gt(dataset, names):
    """MOT gt rows ``frame, id, x, y, w, h, conf, class, visibility`` per video
    from the dataset's json; ``conf`` 0 marks ignore regions."""
    by_video = {}
    for name, frames in video_slices(dataset):
        rows = []
        for info in dataset.data_infos[frames]:
            for ann in dataset.coco.imgToAnns.get(info['id'], []):
                ignored = ann.get('ignore', False) or ann.get('iscrowd', False)
                track_id = ann.get('mot_instance_id', ann.get('instance_id', -1))
                rows.append([mot_frame_number(info), track_id, *ann['bbox'], 0 if ignored else 1,
                             ann['category_id'], ann.get('visibility', 1.0)])
        by_video[name] = np.array(rows, dtype=float).reshape(-1, 9)
    return {n: by_video[n] for n in names}


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
