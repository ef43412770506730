"""Multiple object tracking (ByteTrack, OC-SORT, SORT/DeepSORT, Tracktor, QDTrack).

The score threshold defaults to 0: the tracker already decided what to report.
ByteTrack keeps low-score boxes that continue a track (its reason to exist), so
a cut at 0.5 drops real tracks; MMTracking's ``demo_mot_vis.py`` defaults to 0.
"""
import numpy as np

from .. import mmtrack_compat as compat
from .base import TaskType, objects_from_arrays


class MOT(TaskType):
    name = 'mot'
    title = 'multiple object tracking'

    def frame_data(self, frame, frame_id, init_bbox=None, detections=None):
        data = super().frame_data(frame, frame_id)
        if self.needs_detections:
            # as MOTChallengeDataset.prepare_results: one array per class
            # (MOTChallenge's one, pedestrian); LoadDetections adds
            # public_bboxes to bbox_fields, so Resize scales them with the image
            boxes = np.zeros((0, 5), np.float32) if detections is None else detections
            data.update(detections=[np.asarray(boxes, np.float32).reshape(-1, 5)], bbox_fields=[])
        return data

    @property
    def can_batch_frames(self):
        return compat.has_batchable_detector(self.module)

    def to_objects(self, raw, classes, score_thr, frame_shape):
        from mmtrack.core import results2outs
        outs = results2outs(bbox_results=raw['track_bboxes'])
        return objects_from_arrays(outs, classes, score_thr, ids=outs['ids'])
