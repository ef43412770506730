"""Video instance segmentation (MaskTrack R-CNN): MOT with a mask per object.
Score threshold 0, as ``demo_mot_vis.py``."""
from .base import TaskType, objects_from_arrays


class VIS(TaskType):
    name = 'vis'
    title = 'video instance segmentation'

    def to_objects(self, raw, classes, score_thr, frame_shape):
        from mmtrack.core import results2outs
        outs = results2outs(bbox_results=raw['track_bboxes'], mask_results=raw['track_masks'],
                            mask_shape=frame_shape[:2])
        return objects_from_arrays(outs, classes, score_thr, ids=outs['ids'])
