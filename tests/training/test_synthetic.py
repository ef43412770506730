from collections import defaultdict
from itertools import combinations

import numpy as np
import pytest

from mmtrack_serve.errors import InputError
from mmtrack_serve.training.synthetic import (MIN_BOX_SIZE, MIN_VISIBILITY, SynthConfig,
                                              categories, generate_video)

SMALL = SynthConfig(width=160, height=128, frames=12)


def _world(seed, videos, config):
    return [list(generate_video(seed, i, config)) for i in range(videos)]


def test_same_seed_same_video_other_seed_other_video():
    first, again = list(generate_video(3, 1, SMALL)), list(generate_video(3, 1, SMALL))
    assert all(np.array_equal(a.image, b.image) and a.boxes == b.boxes
               for a, b in zip(first, again))
    other = list(generate_video(4, 1, SMALL))
    assert not np.array_equal(first[0].image, other[0].image)
    assert [f.boxes for f in first] != [f.boxes for f in other]


def test_frames_are_bgr_uint8_of_the_configured_size():
    frames = list(generate_video(0, 0, SMALL))
    assert len(frames) == SMALL.frames
    assert {(f.image.shape, f.image.dtype.name) for f in frames} == {((128, 160, 3), 'uint8')}


def test_boxes_inside_frame_and_ignore_rule():
    config = SynthConfig(frames=40)
    boxes = [b for video in _world(0, 6, config) for f in video for b in f.boxes]
    xywh = np.array([b.bbox for b in boxes])
    assert (xywh[:, :2] >= 0).all()
    assert (xywh[:, 0] + xywh[:, 2] <= config.width).all()
    assert (xywh[:, 1] + xywh[:, 3] <= config.height).all()
    assert (xywh[:, 2:] >= MIN_BOX_SIZE).all()
    assert all(b.ignore == (b.visibility < MIN_VISIBILITY) for b in boxes)
    assert all(0.0 <= b.visibility <= 1.0 for b in boxes)
    # The world does what it is for: ignored, partial and whole boxes all occur.
    visibility = np.array([b.visibility for b in boxes])
    assert (visibility < MIN_VISIBILITY).any()
    assert ((visibility > MIN_VISIBILITY) & (visibility < 1)).any()
    assert (visibility == 1).mean() > 0.3


def test_square_visibility_is_exact_at_borders_and_overlaps():
    """Squares fill their box, so visibility can be checked with box arithmetic.

    A square's side is its largest box side over the video: each is whole at some point.
    A shape whose clipped box is under MIN_BOX_SIZE is drawn but has no box, so
    it may hide a few pixels of a box at the border: those show up as less
    visible than the arithmetic says, never more.
    """
    config = SynthConfig(shapes=('square',), frames=40)
    border_checks, overlap_checks = [], []
    for video in _world(1, 8, config):
        side = defaultdict(int)
        for frame in video:
            for b in frame.boxes:
                side[b.instance_id] = max(side[b.instance_id], b.bbox[2], b.bbox[3])
        for frame in video:
            for b in frame.boxes:
                others = [o for o in frame.boxes if o is not b and _overlap(b.bbox, o.bbox)]
                full = side[b.instance_id] ** 2
                if not others and _area(b.bbox) < full:  # cut by the border only
                    expected = round(_area(b.bbox) / full, 3)
                    assert b.visibility <= expected
                    border_checks.append(b.visibility == expected)
            for a, b in combinations(frame.boxes, 2):
                lonely = not any(_overlap(o.bbox, x.bbox) for o in frame.boxes
                                 if o not in (a, b) for x in (a, b))
                if _overlap(a.bbox, b.bbox) and lonely:
                    # Just these two overlap: the nearer shows its whole box, the
                    # other loses the intersection.
                    overlap_checks.append(
                        _visibility_if_on_top(a, b, side) or _visibility_if_on_top(b, a, side))
    assert len(border_checks) > 20 and np.mean(border_checks) > 0.95
    assert len(overlap_checks) > 5 and np.mean(overlap_checks) > 0.95


def _area(bbox):
    return bbox[2] * bbox[3]


def _overlap(p, q):
    w = min(p[0] + p[2], q[0] + q[2]) - max(p[0], q[0])
    h = min(p[1] + p[3], q[1] + q[3]) - max(p[1], q[1])
    return max(w, 0) * max(h, 0)


def _visibility_if_on_top(top, below, side):
    expected = {top: _area(top.bbox), below: _area(below.bbox) - _overlap(top.bbox, below.bbox)}
    return all(b.visibility == round(pixels / side[b.instance_id] ** 2, 3)
               for b, pixels in expected.items())


def test_shapes_enter_leave_and_move_at_the_set_speed():
    config = SynthConfig(frames=60)
    entered = left = 0
    for video in _world(2, 6, config):
        ids_per_frame = [{b.instance_id for b in f.boxes} for f in video]
        entered += len(set().union(*ids_per_frame[1:]) - ids_per_frame[0])
        left += len(set().union(*ids_per_frame[:-1]) - ids_per_frame[-1])
        boxes = {}
        for frame in video:
            for b in frame.boxes:
                previous = boxes.get(b.instance_id)
                if previous and _inside(previous, config) and _inside(b.bbox, config):
                    step = np.hypot(b.bbox[0] - previous[0], b.bbox[1] - previous[1])
                    assert step <= 4 + 1.5  # 4 px/frame at most, plus pixel rounding
                boxes[b.instance_id] = b.bbox
    assert entered > 3 and left > 3


def _inside(bbox, config):
    x, y, w, h = bbox
    return x > 0 and y > 0 and x + w < config.width and y + h < config.height


def test_categories_and_one_class():
    config = SynthConfig(frames=20)
    assert [c['name'] for c in categories(config)] == ['square', 'circle', 'triangle']
    seen = {b.category_id for v in _world(0, 4, config) for f in v for b in f.boxes}
    assert seen == {1, 2, 3}
    one = SynthConfig(frames=20, one_class=True)
    assert categories(one) == [dict(id=1, name='object')]
    assert {b.category_id for v in _world(0, 4, one) for f in v for b in f.boxes} == {1}


@pytest.mark.parametrize('config, message', [
    (SynthConfig(width=321), 'even'),
    (SynthConfig(shapes=('hexagon',)), 'shapes must be'),
    (SynthConfig(width=100, height=100), 'at least'),
    (SynthConfig(frames=0), 'positive'),
])
def test_bad_config(config, message):
    with pytest.raises(InputError, match=message):
        next(generate_video(0, 0, config))
