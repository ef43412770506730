"""One video's tracking session: frames in, in order; one FrameResult out per frame.

A session owns all per-video state (tracker, reference-frame memory, SOT
template), so two sessions on one TrackingModel never mix, interleaved or not.
Steps on one model are serialised by the model's lock: sessions in several
threads are safe, but they take turns on the model rather than run in parallel
(for parallelism, load one model per thread or process, as TorchServe workers do).
"""
import math
from typing import Optional, Sequence, Union

import numpy as np

from .defaults import resolve_score_thr
from .errors import InputError
from .results import FrameResult


def parse_bbox(value):
    """``'x1,y1,x2,y2'`` (or a 4-sequence) as four floats, or InputError."""
    if isinstance(value, str):
        parts = [p for p in value.replace(' ', ',').split(',') if p]
    else:
        parts = list(value)
    try:
        box = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise InputError(f'init_bbox must be four numbers x1,y1,x2,y2, got {value!r}') from None
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise InputError(f'init_bbox must be four finite numbers x1,y1,x2,y2, got {value!r}')
    return box


def check_bbox_in_frame(box, width, height):
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise InputError(f'init_bbox {box} is empty: it needs x2 > x1 and y2 > y1')
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise InputError(f'init_bbox {box} is outside the {width}x{height} frame')


def check_detections_given(model, given):
    """InputError unless public detections come exactly to a model that takes them."""
    if model.needs_detections and not given:
        raise InputError(model.missing_detections_message())
    if given and not model.needs_detections:
        raise InputError('detections were given, but this model detects objects itself (its '
                         'config\'s test pipeline loads no public detections): send the video '
                         'alone, or use a public-detection config')


def frame_detections(boxes):
    """One frame's public boxes as a float32 (N, 5) array x1, y1, x2, y2, score."""
    array = np.asarray(boxes, np.float32)
    if array.size == 0:
        return array.reshape(0, 5)
    if array.ndim != 2 or array.shape[1] != 5 or not np.all(np.isfinite(array)):
        raise InputError(f'a frame\'s detections must be finite rows x1,y1,x2,y2,score, '
                         f'got an array of shape {array.shape}')
    return array


class TrackingSession:
    def __init__(self, model, *, init_bbox: Optional[Union[str, Sequence[float]]] = None,
                 score_thr: Optional[float] = None):
        """``init_bbox``: the target in the first frame, for a task that
        ``needs_init_bbox`` (SOT); ``score_thr``: None is the task's default."""
        self.model = model
        self.task_type = model.task_type
        self.score_thr = resolve_score_thr(model.task, score_thr)
        self.init_bbox = None if init_bbox is None else parse_bbox(init_bbox)
        if self.task_type.needs_init_bbox and self.init_bbox is None:
            raise InputError('single object tracking needs init_bbox=x1,y1,x2,y2 '
                             '(the target in the first frame, in pixels)')
        self.frame_id = 0
        self._state = model.new_state()

    @property
    def task(self):
        return self.model.task

    def snapshot(self):
        """This session as plain data, for ``snapshot.dumps``: what a session
        restored from it (``TrackingSession.restore``) needs to go on with the
        same frame ids and track ids."""
        return {'task': self.task, 'frame_id': self.frame_id, 'score_thr': self.score_thr,
                'init_bbox': self.init_bbox, 'state': self.model.state_to_data(self._state)}

    @classmethod
    def restore(cls, model, data):
        """The session ``snapshot`` saved (read back by ``snapshot.loads``), on
        ``model``; SnapshotError when it does not fit this model."""
        from .snapshot import SnapshotError
        try:
            task, frame_id, score_thr = data['task'], data['frame_id'], data['score_thr']
            init_bbox, state = data['init_bbox'], data['state']
        except (KeyError, TypeError):
            raise SnapshotError('it holds no session') from None
        if task != model.task:
            raise SnapshotError(f'it is a {task} session, and this model is {model.task}')
        if not isinstance(frame_id, int) or frame_id < 0 or not isinstance(score_thr, (int, float)):
            raise SnapshotError('its frame id or score threshold is not valid')
        session = cls(model, init_bbox=init_bbox, score_thr=score_thr)
        session.frame_id = frame_id
        session._state = model.state_from_data(state)
        return session

    def step(self, frame, detections=None):
        """Tracks one BGR uint8 frame; returns its FrameResult. ``detections``:
        the frame's public boxes, (N, 5) x1, y1, x2, y2, score in its pixels,
        for a model that ``needs_detections`` (and for no other)."""
        check_detections_given(self.model, detections is not None)
        if self.frame_id == 0 and self.init_bbox is not None and self.task_type.needs_init_bbox:
            check_bbox_in_frame(self.init_bbox, frame.shape[1], frame.shape[0])
        boxes = None if detections is None else frame_detections(detections)
        raw, self._state = self.model.step(self._state, frame, self.frame_id, self.init_bbox, boxes)
        return self._result(raw, frame.shape)

    def step_many(self, frames, per_pass=None, detections=None):
        """Tracks consecutive frames; returns their FrameResults, the same as
        ``step`` on each in turn. MOT detectors run over ``per_pass`` of them at
        once (None: automatic; see ``TrackingModel.step_many``); other tasks go
        frame by frame. ``detections``: a list, one (N, 5) array per frame."""
        check_detections_given(self.model, detections is not None)
        if detections is not None:
            if len(detections) != len(frames):
                raise InputError(f'{len(frames)} frames came with {len(detections)} '
                                 'detection arrays: one per frame')
            detections = [frame_detections(d) for d in detections]
        if not self.model.can_batch_frames or len(frames) < 2 or per_pass == 1:
            return [self.step(frame, None if detections is None else detections[i])
                    for i, frame in enumerate(frames)]
        raws, self._state = self.model.step_many(self._state, frames, self.frame_id, per_pass,
                                                 detections)
        return [self._result(raw, frame.shape) for raw, frame in zip(raws, frames)]

    def _result(self, raw, shape):
        objects = self.task_type.to_objects(raw, self.model.classes, self.score_thr, shape)
        result = FrameResult(frame_id=self.frame_id, objects=objects)
        self.frame_id += 1
        return result
