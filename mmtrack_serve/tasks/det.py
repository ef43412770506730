"""Image detection (any mmdet detector config, e.g. YOLOX or Faster R-CNN):
each frame detected on its own, no track ids. Serves a plain detector with
the same videos, outputs and protocol as the trackers. Score threshold 0.3,
as mmdet's ``image_demo.py``."""
from .base import TaskType, objects_from_arrays


class Detection(TaskType):
    name = 'det'
    title = 'image detection'
    default_score_thr = 0.3
    has_track_ids = False

    @classmethod
    def recognises(cls, model_class):
        from mmdet.models.detectors import BaseDetector
        return isinstance(model_class, type) and issubclass(model_class, BaseDetector)

    def to_objects(self, raw, classes, score_thr, frame_shape):
        from mmtrack.core import results2outs
        result = raw[0]                                  # one image per forward
        bbox_result = result[0] if isinstance(result, tuple) else result    # (boxes, masks)
        return objects_from_arrays(results2outs(bbox_results=bbox_result), classes, score_thr)
