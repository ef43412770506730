"""Box arithmetic of mmtrack's trackers on numpy arrays, in the same dtype and
the same order of operations as the torch code it replaces, so that every
value is bit for bit the one mmtrack computes:

- ``xyxy_to_cxcyah`` / ``cxcyah_to_xyxy``: ``mmtrack.core.bbox.transforms``;
- ``iou_matrix``: ``mmdet.core.bbox_overlaps`` (mode 'iou', not aligned, eps 1e-6).

Element-wise IEEE float32 operations round the same in numpy as in torch,
which is what makes the fast trackers' costs, and so their matches, equal.
"""
import numpy as np

IOU_EPS = np.float32(1e-6)
HALF = np.float32(2.0)


def xyxy_to_cxcyah(boxes):
    """(N, 4) x1y1x2y2 -> (N, 4) cx, cy, w/h, h, float32 as the boxes."""
    cx = (boxes[:, 2] + boxes[:, 0]) / HALF
    cy = (boxes[:, 3] + boxes[:, 1]) / HALF
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack([cx, cy, w / h, h], -1)


def cxcyah_to_xyxy(boxes):
    """(N, 4) cx, cy, w/h, h -> (N, 4) x1y1x2y2."""
    cx, cy, ratio, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    w = ratio * h
    return np.stack([cx - w / HALF, cy - h / HALF, cx + w / HALF, cy + h / HALF], -1)


def iou_matrix(boxes1, boxes2):
    """(N, M) IoU of float32 x1y1x2y2 boxes, as ``bbox_overlaps``."""
    rows, cols = len(boxes1), len(boxes2)
    if rows * cols == 0:
        return np.zeros((rows, cols), np.float32)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = np.maximum(rb - lt, np.float32(0))
    overlap = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - overlap
    union = np.maximum(union, IOU_EPS)
    return overlap / union
