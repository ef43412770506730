"""Per-frame results and the two file formats they are written in.

One JSON schema everywhere (CLI, server, parity check, streaming)::

    {"video": {"width", "height", "fps", "num_frames"},
     "task": "mot" | "sot" | "vid" | "vis" | "det"   (``tasks``),
     "classes": [...],
     "frames": [{"frame_id": 0,
                 "objects": [{"track_id", "label", "class_name",
                              "bbox": [x1, y1, x2, y2], "score"}]}]}

``track_id`` is null for VID and detection; VIS objects add ``mask`` as COCO RLE
(``{"size": [h, w], "counts": str}``). MOTChallenge txt has one line per object:
``frame,id,x,y,w,h,score,-1,-1,-1`` with 1-based frames.
"""
import json
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

@dataclass
class TrackedObject:
    bbox: List[float]            # x1, y1, x2, y2 in input pixels
    score: float
    label: int
    class_name: str
    track_id: Optional[int] = None
    mask: Optional[np.ndarray] = None   # HxW bool, VIS only

    def to_json(self):
        obj = {'track_id': self.track_id, 'label': self.label,
               'class_name': self.class_name, 'bbox': self.bbox, 'score': self.score}
        if self.mask is not None:
            obj['mask'] = encode_mask(self.mask)
        return obj

    @classmethod
    def from_json(cls, obj):
        """Back from ``to_json``'s dict (a mask decoded from its RLE)."""
        mask = obj.get('mask')
        return cls(bbox=list(obj['bbox']), score=obj['score'], label=obj['label'],
                   class_name=obj['class_name'], track_id=obj.get('track_id'),
                   mask=None if mask is None else decode_mask(mask))


@dataclass
class FrameResult:
    frame_id: int
    objects: List[TrackedObject] = field(default_factory=list)

    def to_json(self):
        return {'frame_id': self.frame_id, 'objects': [o.to_json() for o in self.objects]}

    @classmethod
    def from_json(cls, frame):
        """Back from ``to_json``'s dict."""
        return cls(frame_id=frame['frame_id'],
                   objects=[TrackedObject.from_json(o) for o in frame['objects']])


def encode_mask(mask):
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(s) for s in rle['size']], 'counts': rle['counts'].decode('ascii')}


def decode_mask(rle):
    from pycocotools import mask as mask_utils
    return mask_utils.decode({'size': rle['size'], 'counts': rle['counts'].encode('ascii')}).astype(bool)


def results_json(video_info, task, classes, frames):
    """The schema's dict; ``frames`` holds FrameResult or already-JSON dicts."""
    return {
        'video': dict(video_info),
        'task': task,
        'classes': list(classes),
        'frames': [f.to_json() if isinstance(f, FrameResult) else f for f in frames],
    }


def mot_lines(frames):
    """MOTChallenge lines for frames (FrameResult or JSON dicts)."""
    for frame in frames:
        frame = frame.to_json() if isinstance(frame, FrameResult) else frame
        for obj in frame['objects']:
            x1, y1, x2, y2 = obj['bbox']
            track_id = -1 if obj['track_id'] is None else obj['track_id']
            yield (f"{frame['frame_id'] + 1},{track_id},{x1:.3f},{y1:.3f},"
                   f"{x2 - x1:.3f},{y2 - y1:.3f},{obj['score']:.6f},-1,-1,-1\n")


def write_json(results, path):
    with open(path, 'w') as f:
        json.dump(results, f)


def write_mot_txt(frames, path):
    with open(path, 'w') as f:
        f.writelines(mot_lines(frames))


def read_mot_txt(path):
    """Back to {frame_id (0-based): [(track_id, [x1, y1, x2, y2], score)]}."""
    frames = {}
    for line in open(path):
        if not line.strip():
            continue
        f, i, x, y, w, h, s = (float(v) for v in line.split(',')[:7])
        frames.setdefault(int(f) - 1, []).append((int(i), [x, y, x + w, y + h], s))
    return frames
