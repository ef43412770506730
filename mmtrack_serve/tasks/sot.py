"""Single object tracking (SiamRPN++, STARK): one target, given as a box in
the first frame, followed in every frame after.

Every frame reports its one target whatever its score (threshold 0, as
``demo_sot.py``); a frame whose box is not finite (random-weight heads can
make one) reports none.
"""
import numpy as np

from .. import mmtrack_compat as compat
from ..results import TrackedObject
from .base import TaskType

CLASS_NAME = 'target'


class SOT(TaskType):
    name = 'sot'
    title = 'single object tracking'
    needs_init_bbox = True

    def build_pipeline(self, steps):
        # LoadImageFromFile and LoadAnnotations: the frame and box come in memory
        return compat.compose(steps[2:])

    def frame_data(self, frame, frame_id, init_bbox=None, detections=None):
        return dict(img=frame.astype(np.float32), gt_bboxes=np.array(init_bbox, np.float32),
                    img_info=dict(frame_id=frame_id))

    def class_names(self):
        return [CLASS_NAME]

    def forward(self, data):
        with compat.keep_finite_sot_box(self.module):
            return compat.forward(self.module, data)

    def to_objects(self, raw, classes, score_thr, frame_shape):
        box = np.asarray(raw['track_bboxes'], dtype=np.float64).reshape(-1)
        if box.size < 5 or not np.all(np.isfinite(box[:5])):
            return []
        return [TrackedObject(bbox=[float(v) for v in box[:4]], score=float(box[4]), label=0,
                              class_name=classes[0], track_id=0)]
