"""Seeded synthetic detection streams and mmtrack's trackers without a
detector, shared by the tracker tests (test_track_memory, test_trackers).

- ``synthetic_stream``: a few objects for a long time (periodic; tracks that
  never leave);
- ``crowd_stream``: N objects at a time on a 1080p frame, born and dying,
  crossing, hidden for a while, with false positives and several classes.
"""
import math
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from mmtrack_serve import mmtrack_compat as compat

W, H = 640, 360
IMG_METAS = [dict(img_shape=(H, W, 3), ori_shape=(H, W, 3), scale_factor=np.ones(4, np.float32))]

CONFIGS = {
    'ByteTracker': 'bytetrack_yolox_x_crowdhuman_mot17-private-half',
    'OCSORTTracker': 'ocsort_yolox_x_crowdhuman_mot17-private-half',
    'SortTracker': 'sort_faster-rcnn_fpn_4e_mot17-private-half',
    'DeepSORT': 'deepsort_faster-rcnn_fpn_4e_mot17-private-half',
}


# -- a synthetic detection stream ---------------------------------------------------
def _box(cx, cy, w, h):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _intervals(rng, count, length, start, end):
    frames = set()
    for _ in range(count):
        first = rng.randint(start, end)
        frames.update(range(first, first + rng.randint(1, length + 1)))
    return frames


def synthetic_stream(num_frames, seed=0, persistent=4, transients=None, calm=150):
    """``num_frames`` frames of detections, as a list of (bboxes (N, 5) float32,
    labels (N,) int64) tensors. Periodic: played again from its first frame,
    the stream continues smoothly, and its last ``calm`` frames have only the
    ``persistent`` objects, always detected (so a tracker's state after each
    period is alike).

    - persistent objects follow closed Lissajous paths over the middle of the
      frame, crossing one another, missed for 1-8 frames at a time;
    - transient objects are born, move in a straight line (across the
      persistent ones) and leave, some missed for a while;
    - 10 % of detections score low (ByteTrack's second association), some
      objects start below the threshold that starts a track;
    - false positives (a random box, a random score) and a few empty frames.
    """
    rng = np.random.RandomState(seed)
    busy_end = num_frames - calm
    transients = transients if transients is not None else max(4, num_frames // 60)
    frames = [[] for _ in range(num_frames)]        # (box, score, label) per frame

    for k in range(persistent):
        cx, cy = rng.uniform(0.35, 0.65) * W, rng.uniform(0.35, 0.65) * H
        ax, ay = rng.uniform(0.15, 0.3) * W, rng.uniform(0.15, 0.3) * H
        fx, fy = rng.choice([1, 2]), rng.choice([1, 2, 3])
        px, py = rng.uniform(0, 2 * math.pi, 2)
        w, h = rng.uniform(22, 34), rng.uniform(50, 75)
        # half of them missed now and then, scored low at times; the others
        # always seen, and well: SORT, which cannot bridge a miss, keeps those
        steady = k % 2 == 1
        missed = set() if steady else _intervals(rng, num_frames // 400 + 1, 8, 50,
                                                  max(51, busy_end - 20))
        for t in range(num_frames):
            if t in missed:
                continue
            a = 2 * math.pi * t / num_frames
            frames[t].append((_box(cx + ax * math.sin(fx * a + px), cy + ay * math.sin(fy * a + py),
                                   w, h), 0.9 if steady else None, k % 2))

    for _ in range(transients):
        born = rng.randint(20, max(21, busy_end - 220))
        life = rng.randint(5, 200)
        x, y = rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H
        vx, vy = rng.uniform(-2.5, 2.5), rng.uniform(-1.5, 1.5)
        w, h = rng.uniform(20, 36), rng.uniform(45, 80)
        label = rng.randint(2)
        weak = rng.rand() < 0.2                    # scores under the init threshold
        missed = _intervals(rng, 1, 12, born + 3, born + life) if rng.rand() < 0.5 else set()
        for t in range(born, min(born + life, busy_end)):
            if t not in missed:
                s = t - born
                frames[t].append((_box(x + vx * s, y + vy * s, w, h),
                                  rng.uniform(0.35, 0.6) if weak else None, label))

    empty = _intervals(rng, num_frames // 500 + 1, 2, 30, max(31, busy_end - 10))
    stream = []
    for t in range(num_frames):
        dets = [] if t in empty else list(frames[t])
        busy = t < busy_end
        if busy and rng.rand() < 0.15:                        # a false positive
            x, y = rng.uniform(0, W - 30), rng.uniform(0, H - 60)
            dets.append(([x, y, x + rng.uniform(15, 40), y + rng.uniform(30, 80)],
                         rng.uniform(0.1, 0.95), rng.randint(2)))
        boxes, scores, labels = [], [], []
        for box, score, label in dets:
            if score is None:
                score = rng.uniform(0.15, 0.55) if busy and rng.rand() < 0.1 else rng.uniform(0.72, 0.97)
            box = np.clip(np.asarray(box) + rng.normal(0, 0.8, 4), 0, [W - 1, H - 1, W - 1, H - 1])
            if box[2] - box[0] < 8 or box[3] - box[1] < 16:     # out of the frame
                continue
            boxes.append(box)
            scores.append(score)
            labels.append(label)
        order = rng.permutation(len(boxes))
        bboxes = np.zeros((len(boxes), 5), np.float32)
        if len(boxes):
            bboxes[:, :4] = np.asarray(boxes)[order]
            bboxes[:, 4] = np.asarray(scores)[order]
        stream.append((torch.from_numpy(bboxes), torch.as_tensor(np.asarray(labels, np.int64)[order])))
    return stream


# -- mmtrack's trackers, no detector ----------------------------------------------
class FakeReID:
    """An image-dependent embedding in place of a ReID network: the crop's
    colours pooled on a 4x2 grid (distances ~ DeepSORT's match_score_thr)."""

    def simple_test(self, crops):
        if crops.dim() < 4:                                   # no boxes
            return crops.new_zeros((0, 8))
        return F.adaptive_avg_pool2d(crops, (4, 2)).flatten(1) * 20


def build_tracker(kind):
    """(tracker, the model argument its ``track`` takes, an image) from the
    wheel's config for ``kind``."""
    from mmtrack.models import build_motion, build_tracker as build
    cfg = compat.load_config(CONFIGS[kind])
    if kind == 'DeepSORT':
        cfg.model.tracker.reid.img_scale = (32, 16)          # small crops: fast, same logic
    tracker = build(cfg.model.tracker)
    model = SimpleNamespace(motion=build_motion(cfg.model.motion), with_motion=True,
                            reid=FakeReID(), with_linear_motion=False)
    image = torch.from_numpy(np.random.RandomState(7).rand(1, 3, H, W).astype(np.float32))
    return tracker, model, image


def step(tracker, model, image, frame_id, dets):
    bboxes, labels = dets
    return tracker.track(img=image, img_metas=IMG_METAS, model=model, bboxes=bboxes.clone(),
                         labels=labels.clone(), frame_id=frame_id, rescale=False)



def crowd_stream(seed, count, num_frames, classes=1, width=1920, height=1080):
    """``num_frames`` frames of about ``count`` detections, as (bboxes (N, 5)
    float32, labels (N,) int64) tensors: objects born at random and replaced
    when they die, moving straight with noise (so they cross and leave the
    frame, where their boxes are clipped, then dropped), hidden for
    1-14 frames now and then (3 % a frame), scores spread over ByteTrack's low
    and high thresholds, 5 % false positives, shuffled order."""
    rng = np.random.default_rng(seed)

    def born():
        w, h = rng.uniform(20, 120), rng.uniform(40, 240)
        return dict(p=rng.uniform([0, 0], [width - w, height - h]), v=rng.uniform(-6, 6, 2),
                    s=np.array([w, h]), life=int(rng.integers(5, num_frames)),
                    score=rng.uniform(0.05, 1), label=int(rng.integers(classes)), hidden=0)

    objects = [born() for _ in range(count)]
    stream = []
    for _ in range(num_frames):
        boxes, labels = [], []
        for o in objects:
            o['p'] = o['p'] + o['v'] + rng.normal(0, 1.5, 2)
            o['life'] -= 1
            if o['hidden'] > 0:
                o['hidden'] -= 1
                continue
            if rng.random() < 0.03:
                o['hidden'] = int(rng.integers(1, 15))
            score = float(np.clip(o['score'] + rng.normal(0, 0.15), 0.01, 1))
            jitter = rng.normal(0, 2, 4)
            box = np.clip([*(o['p'] + jitter[:2]), *(o['p'] + o['s'] + jitter[2:])], 0,
                          [width - 1, height - 1, width - 1, height - 1])
            if box[2] - box[0] < 4 or box[3] - box[1] < 4:         # out of the frame
                continue
            boxes.append([*box, score])
            labels.append(o['label'])
        for _ in range(int(rng.poisson(count * 0.05))):
            x, y = rng.uniform(0, width - 50), rng.uniform(0, height - 100)
            boxes.append([x, y, x + rng.uniform(10, 60), y + rng.uniform(20, 120), rng.uniform(0, 0.6)])
            labels.append(int(rng.integers(classes)))
        objects = [o for o in objects if o['life'] > 0]
        objects += [born() for _ in range(count - len(objects))]
        order = rng.permutation(len(boxes))
        bboxes = np.asarray(boxes, np.float32).reshape(-1, 5)[order]
        stream.append((torch.from_numpy(bboxes), torch.from_numpy(np.asarray(labels, np.int64)[order])))
    return stream
