"""Loading a tracking model: ``load_model`` returns a ``TrackingModel``, the
loaded mmtrack model plus what every session on it needs (its task type, which
prepares frames and reads results; class names; the per-video state swapper)."""
import threading
import warnings

from . import mmtrack_compat as compat
from . import trackers
from .tasks import TaskType, task_type_for


class TrackingModel:
    """One loaded model. Sessions (``model.session()``) share it; their steps
    run one at a time under ``lock``, each with its own state swapped in.
    ``task_type`` (``tasks``) knows what differs between MOT, SOT, VID, VIS;
    ``task`` is its name."""

    def __init__(self, module, cfg, task_type: TaskType, device, tracker_impl='mmtrack'):
        self.module = module
        # 'fast' (mmtrack_serve.trackers) or 'mmtrack': the tracker that runs
        self.tracker_impl = tracker_impl
        self.cfg = cfg
        self.task_type = task_type
        self.task = task_type.name
        self.classes = task_type.class_names()
        self.device = device
        self.lock = threading.Lock()
        self._state = compat.ModelState(module)
        self.can_batch_frames = task_type.can_batch_frames
        # a "public detections" config: each frame's boxes come with the video
        self.needs_detections = task_type.needs_detections
        # forward passes of the model's detector (one per frame, or one per
        # batch where frames batch): what batching saves, for metrics and tests
        self.detector_passes = 0

    def missing_detections_message(self):
        """What to do when a model that ``needs_detections`` got none (names
        the matching private-detection config)."""
        return compat.missing_detections_message(self.cfg)

    def session(self, *, init_bbox=None, score_thr=None):
        """A new TrackingSession; ``score_thr`` None is the task's default
        (``TaskType.default_score_thr``)."""
        from .session import TrackingSession
        return TrackingSession(self, init_bbox=init_bbox, score_thr=score_thr)

    def new_state(self):
        return self._state.new()

    def state_to_data(self, state):
        """A session's ``state`` as data, for its snapshot (``ModelState.to_data``)."""
        return self._state.to_data(state)

    def state_from_data(self, data):
        """A session state from its snapshot's data, tensors on this model's device."""
        return self._state.from_data(data)

    def step(self, state, frame, frame_id, init_bbox=None, detections=None):
        """Runs one frame with ``state`` swapped in; returns (raw result, new state).
        ``detections``: the frame's public boxes (N, 5), for ``needs_detections``."""
        with self.lock:
            self._state.swap_in(state)
            try:
                data = self.task_type.prepare(frame, frame_id, init_bbox, detections)
                result = self.task_type.forward(data)
                self.detector_passes += 1
            finally:
                state = self._state.swap_out()
        return result, state

    def frames_per_pass(self, frame, wanted=None):
        """How many frames like ``frame`` one detector pass takes in
        ``step_many``: 1 where the model cannot batch, else ``wanted``, else
        the automatic choice by the model's input size
        (``mmtrack_compat.frames_per_pass``)."""
        if not self.can_batch_frames:
            return 1
        if wanted:
            return max(1, int(wanted))
        image = self.task_type.prepare(frame, 0)['img'][0]
        return compat.frames_per_pass(image)

    def step_many(self, state, frames, first_frame_id, per_pass=None, detections=None):
        """Runs consecutive frames with ``state`` swapped in, the detector
        batched over them where the model allows (``can_batch_frames``),
        ``per_pass`` frames at a time (None: automatic, by input size; see
        ``mmtrack_compat.frames_per_pass``); returns (raw results, new state).
        Other models step frame by frame. ``detections``: one (N, 5) array per
        frame, for ``needs_detections``."""
        detections = detections if detections is not None else [None] * len(frames)
        if not self.can_batch_frames or len(frames) < 2:
            results = []
            for i, frame in enumerate(frames):
                result, state = self.step(state, frame, first_frame_id + i, detections=detections[i])
                results.append(result)
            return results, state
        with self.lock:
            self._state.swap_in(state)
            try:
                batch = [self.task_type.prepare(frame, first_frame_id + i, detections=detections[i])
                         for i, frame in enumerate(frames)]
                results, passes = compat.forward_batch(self.module, batch, per_pass)
                self.detector_passes += passes
            finally:
                state = self._state.swap_out()
        return results, state


def load_model(config, checkpoint=None, device='cpu', cfg_options=None, tracker_impl=None):
    """A TrackingModel from a config (path, mmtrack config name or mmcv Config)
    and an optional local checkpoint. Nothing is ever downloaded: without a
    checkpoint the model has random weights (with a warning), except parts whose
    ``init_cfg`` names a local file. ``tracker_impl``: 'fast' (None: the
    default) runs the drop-in vectorised tracker where one exists for the
    config's (``mmtrack_serve.trackers``), 'mmtrack' mmtrack's own."""
    tracker_impl = trackers.check_impl(tracker_impl)
    cfg = compat.load_config(config, cfg_options)
    task_type = task_type_for(cfg)
    compat.check_runnable(cfg)         # a base or search config fails here, before the slow build
    for note in compat.adapt_for_inference(cfg):
        warnings.warn(note)
    with warnings.catch_warnings():
        # mmcv/mmdet deprecation chatter, not the user's concern
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', message='.*(deprecated|init_cfg|DeprecationWarning).*')
        module = compat.build_model(cfg, checkpoint, device)
    running = trackers.install(module, tracker_impl)
    return TrackingModel(module, cfg, task_type(module, cfg), device, running)
