"""Video object detection (DFF, FGFA, SELSA): per-frame detections helped by
earlier frames' features; no track ids.

VID models report every box above their own low test threshold; MMTracking's
``demo_vid.py`` and ``tools/torchserve/test_torchserve.py`` show them at 0.5,
the default here.
"""
import numpy as np

from .. import mmtrack_compat as compat
from ..errors import ConfigError
from .base import TaskType, objects_from_arrays

# The online reference-frame buffer of mmtrack.apis.inference_vid.
DEFAULT_REF_IMG_SAMPLER = dict(frame_stride=10, num_left_ref_imgs=10)
LOADING_STEPS = ('LoadImageFromFile', 'LoadMultiImagesFromFile')


class VID(TaskType):
    name = 'vid'
    title = 'video object detection'
    default_score_thr = 0.5
    has_track_ids = False

    def build_pipeline(self, steps):
        if steps[0].type not in LOADING_STEPS:
            raise ConfigError(f'unsupported VID loading step {steps[0].type}')
        self.multi_image = steps[0].type == 'LoadMultiImagesFromFile'
        sampler = self.cfg.get('ref_img_sampler') or DEFAULT_REF_IMG_SAMPLER
        self.frame_stride = sampler.get('frame_stride', DEFAULT_REF_IMG_SAMPLER['frame_stride'])
        self.num_left_ref_imgs = sampler.get('num_left_ref_imgs',
                                             DEFAULT_REF_IMG_SAMPLER['num_left_ref_imgs'])
        return compat.compose(steps[1:])

    def frame_data(self, frame, frame_id, init_bbox=None, detections=None):
        def one():
            return dict(img=frame.astype(np.float32), img_info=dict(frame_id=frame_id))
        if not self.multi_image:
            return one()
        # as inference_vid: the first frame fills the reference buffer, then
        # every frame_stride-th frame joins it
        data = [one()]
        if frame_id == 0:
            data += [one() for _ in range(self.num_left_ref_imgs)]
        elif frame_id % self.frame_stride == 0:
            data.append(one())
        return data

    def to_objects(self, raw, classes, score_thr, frame_shape):
        from mmtrack.core import results2outs
        return objects_from_arrays(results2outs(bbox_results=raw['det_bboxes']), classes, score_thr)
