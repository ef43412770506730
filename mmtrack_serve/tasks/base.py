"""What every task type answers, with the answers most share.

A ``TaskType`` subclass is one task type (MOT, SOT, VID, VIS...). The class
says how the task is recognised from a config and what it needs from a user
(``needs_init_bbox``, ``default_score_thr``); an instance, made per loaded
model, prepares that model's frames and turns its raw output into objects.
The mmtrack internals all of them share (pipelines, scatter, forward, state
swapping, batched features) stay in ``mmtrack_compat``.
"""
from typing import ClassVar, List

import numpy as np

from .. import mmtrack_compat as compat
from ..results import TrackedObject


class TaskType:
    name: ClassVar[str]                    # 'mot': in results, logs and the registry
    title: ClassVar[str]                   # 'multiple object tracking', for messages
    # Objects scored lower are dropped unless the user says otherwise: the
    # value MMTracking's own demo for this task uses.
    default_score_thr: ClassVar[float] = 0.0
    # SOT: the target's box in the first frame is part of the input.
    needs_init_bbox: ClassVar[bool] = False
    # Frames reported with a track id (VID and detectors report none).
    has_track_ids: ClassVar[bool] = True

    # -- recognising a config ---------------------------------------------------------
    @classmethod
    def recognises(cls, model_class) -> bool:
        """True when ``model_class`` (the class ``cfg.model.type`` names, or
        None) is a model of this task. Default: a class defined in
        ``mmtrack.models.<name>``."""
        module = getattr(model_class, '__module__', '') or ''
        return module.startswith(f'mmtrack.models.{cls.name}.') or module == f'mmtrack.models.{cls.name}'

    # -- one loaded model -------------------------------------------------------------
    def __init__(self, module, cfg):
        self.module = module
        self.cfg = cfg
        self.device = next(module.parameters()).device
        # a "public detections" config: each frame's boxes come with the video
        self.needs_detections = compat.needs_detections(cfg)
        self.pipeline = self.build_pipeline(compat.test_pipeline(cfg))
        if getattr(module, 'tracker', None) is not None:
            # trackers keep every frame's history: flat memory on endless streams
            compat.bound_track_history(module)

    def build_pipeline(self, steps):
        """The test pipeline for in-memory frames (``steps``: a copy of the
        config's); default: its loading step takes an array (as ``inference_mot``)."""
        return compat.compose(compat.webcam_pipeline(steps))

    def frame_data(self, frame, frame_id, init_bbox=None, detections=None):
        """The pipeline's input for one BGR frame."""
        return dict(img=frame, img_info=dict(frame_id=frame_id), img_prefix=None)

    def prepare(self, frame, frame_id, init_bbox=None, detections=None):
        """The model's input batch for one frame, as ``mmtrack.apis.inference_*`` makes it."""
        data = self.frame_data(frame, frame_id, init_bbox, detections)
        return compat.collate_and_scatter(self.pipeline(data), self.device)

    def class_names(self) -> List[str]:
        return compat.class_names(self.cfg, self.module)

    # -- running ----------------------------------------------------------------------
    @property
    def can_batch_frames(self) -> bool:
        """True when a detector pass may run over several frames at once
        (``mmtrack_compat.forward_batch``)."""
        return False

    def forward(self, data):
        return compat.forward(self.module, data)

    def to_objects(self, raw, classes, score_thr, frame_shape) -> List[TrackedObject]:
        """The raw result of one frame as objects scored ``score_thr`` or more."""
        raise NotImplementedError


def objects_from_arrays(outs, classes, score_thr, ids=None) -> List[TrackedObject]:
    """``results2outs``-style arrays (``bboxes`` (N, 5), ``labels``, optional
    ``masks``) as TrackedObjects; non-finite boxes (random weights make them)
    and boxes scored under ``score_thr`` are dropped."""
    masks = outs.get('masks')
    ids = ids if ids is not None else [None] * len(outs['labels'])
    objects = []
    for i, (box, label) in enumerate(zip(outs['bboxes'], outs['labels'])):
        if not np.all(np.isfinite(box)) or box[4] < score_thr:
            continue
        objects.append(TrackedObject(
            bbox=[float(v) for v in box[:4]], score=float(box[4]), label=int(label),
            class_name=classes[label] if label < len(classes) else str(label),
            track_id=None if ids[i] is None else int(ids[i]),
            mask=None if masks is None else np.asarray(masks[i]).astype(bool)))
    return objects
