"""The synthetic tracking world: short videos of moving shapes, with exact ground truth.

Each video is decided by ``(seed, index)`` alone, so video 3 of seed 0 is the
same whether a world has 5 videos or 500. A few flat-coloured shapes
('square', 'circle', 'triangle', 20-60 px, random colour, a darker outline)
move over a textured background at 1-4 px/frame with a random jitter on their
velocity. Some are in the frame from the start, others enter across a border
heading for the middle, so tracks cross; each has a fixed depth, and nearer
shapes are drawn over farther ones. Every frame gets a little sensor noise.

Ground-truth rules, fixed here and documented as the MOT devkit does:

- A box is the shape's full extent (occluded parts included) clipped to the
  frame: integer pixels, ``x, y`` its 0-based top-left, ``w, h`` its size.
- ``visibility`` = the shape's pixels that show (inside the frame and not
  under a nearer shape) / all its pixels, rounded to 3 decimals. Being cut by
  the border and being occluded both lower it.
- ``visibility < MIN_VISIBILITY`` (0.3): the box is an ignore region, kept in
  the ground truth but flagged: conf 0 in MOTChallenge gt.txt, iscrowd 1 in
  CocoVID. ``mot_metrics.evaluate_mot`` neither rewards nor punishes a tracker
  for such a box, as the devkit does for its ignored boxes.
- A clipped box under ``MIN_BOX_SIZE`` (4) px wide or high is dropped.
- ids (``instance_id``, 1-based within a video) are never reused: a shape
  that has left the frame is gone, and a newcomer gets a new id.
- Category ids are 1-based positions in ``config.shapes``; with ``one_class``
  every shape is category 1, 'object'.
"""
from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

from ..errors import InputError

SHAPES = ('square', 'circle', 'triangle')
ONE_CLASS_NAME = 'object'
MIN_VISIBILITY = 0.3
MIN_BOX_SIZE = 4
SIZE_RANGE = (20, 60)  # px, side of the shape's square footprint
SPEED_RANGE = (1.0, 4.0)  # px/frame
VELOCITY_JITTER = 0.3  # px/frame, std of the per-frame velocity change
INITIAL_SHAPES = (2, 5)  # in the frame at the start, inclusive
BIRTH_PROBABILITY = 0.1  # per frame, of a shape entering across a border
MAX_ALIVE = 8
SENSOR_NOISE = 4  # grey levels, +-


@dataclass(frozen=True)
class SynthConfig:
    """What every video of a world shares."""
    width: int = 320
    height: int = 240
    frames: int = 30
    shapes: Tuple[str, ...] = SHAPES
    one_class: bool = False
    fps: int = 10

    def validate(self):
        unknown = sorted(set(self.shapes) - set(SHAPES))
        if unknown or not self.shapes:
            raise InputError(f'shapes must be some of {", ".join(SHAPES)}, got {self.shapes}')
        if self.width % 2 or self.height % 2:
            raise InputError(f'width and height must be even (H.264 4:2:0), '
                             f'got {self.width}x{self.height}')
        if min(self.width, self.height) < 2 * SIZE_RANGE[1]:
            raise InputError(f'frames must be at least {2 * SIZE_RANGE[1]} px on each side')
        if self.frames < 1 or self.fps < 1:
            raise InputError('frames and fps must be positive')
        return self


def categories(config):
    """CocoVID categories of a world made with ``config``."""
    names = (ONE_CLASS_NAME,) if config.one_class else config.shapes
    return [dict(id=i, name=name) for i, name in enumerate(names, 1)]


@dataclass(frozen=True)
class GtBox:
    instance_id: int  # 1-based, unique within the video
    category_id: int
    bbox: Tuple[int, int, int, int]  # x, y, w, h in the frame
    visibility: float
    ignore: bool  # visibility < MIN_VISIBILITY


@dataclass
class SynthFrame:
    image: np.ndarray  # H x W x 3 BGR uint8
    boxes: List[GtBox]  # sorted by instance_id


@dataclass
class _Shape:
    instance_id: int
    category_id: int
    mask: np.ndarray  # bool, cropped tight to the shape
    pixels: np.ndarray  # BGR uint8, same size as mask
    depth: float  # larger is nearer
    position: np.ndarray  # float x, y of the mask's top-left
    velocity: np.ndarray


def generate_video(seed, index=0, config=SynthConfig()):
    """Yield a ``SynthFrame`` for each of ``config.frames`` frames of video ``index``."""
    config.validate()
    # Separate streams: motion and ground truth do not depend on frame texture.
    motion_seed, texture_seed = np.random.SeedSequence([seed, index]).spawn(2)
    rng, texture_rng = np.random.default_rng(motion_seed), np.random.default_rng(texture_seed)
    background = _background(texture_rng, config.width, config.height)
    shapes = []
    next_id = 1
    for _ in range(rng.integers(INITIAL_SHAPES[0], INITIAL_SHAPES[1] + 1)):
        shapes.append(_new_shape(rng, config, next_id, entering=False))
        next_id += 1

    for frame_index in range(config.frames):
        if frame_index > 0:
            for shape in shapes:
                _move(rng, shape)
            if len(shapes) < MAX_ALIVE and rng.random() < BIRTH_PROBABILITY:
                shapes.append(_new_shape(rng, config, next_id, entering=True))
                next_id += 1
            shapes = [s for s in shapes if _in_frame(s, config)]
        image, boxes = _render(background, shapes, config)
        noise = texture_rng.integers(-SENSOR_NOISE, SENSOR_NOISE + 1, image.shape, dtype=np.int16)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        yield SynthFrame(image=image, boxes=boxes)


def _background(rng, width, height):
    """A smooth colour gradient with soft grey blotches and a fine static grain."""
    corners = rng.uniform(40, 200, (2, 2, 3)).astype(np.float32)
    gradient = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    blotches = rng.normal(0, 25, (height // 40 + 2, width // 40 + 2, 1)).astype(np.float32)
    blotches = cv2.resize(blotches, (width, height), interpolation=cv2.INTER_CUBIC)[..., None]
    grain = rng.normal(0, 6, (height, width, 1))
    return np.clip(gradient + blotches + grain, 0, 255).astype(np.int16)


def _new_shape(rng, config, instance_id, entering):
    shape_index = rng.integers(len(config.shapes))
    mask = _shape_mask(config.shapes[shape_index], rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1),
                       rng)
    h, w = mask.shape
    speed = rng.uniform(*SPEED_RANGE)
    if entering:
        position = _border_position(rng, config, w, h)
        # Aim at the middle of the frame, so newcomers cross the others' paths.
        target = rng.uniform(0.2, 0.8, 2) * (config.width, config.height) - (w / 2, h / 2)
        direction = target - position
    else:
        position = rng.uniform((-w / 2, -h / 2), (config.width - w / 2, config.height - h / 2))
        direction = rng.normal(size=2)
    return _Shape(
        instance_id=instance_id,
        category_id=1 if config.one_class else int(shape_index) + 1,
        mask=mask, pixels=_paint(rng, mask), depth=rng.random(), position=position,
        velocity=direction / max(np.linalg.norm(direction), 1e-6) * speed)


def _border_position(rng, config, w, h):
    """A top-left that leaves the shape partly across a random border."""
    inside = rng.uniform(0.05, 0.5)  # fraction already over the border
    edge = rng.integers(4)
    if edge < 2:  # left, right
        x = -w * (1 - inside) if edge == 0 else config.width - w * inside
        return np.array([x, rng.uniform(0, config.height - h)])
    y = -h * (1 - inside) if edge == 2 else config.height - h * inside
    return np.array([rng.uniform(0, config.width - w), y])


def _shape_mask(name, size, rng):
    mask = np.zeros((size, size), np.uint8)
    if name == 'square':
        mask[:] = 1
    elif name == 'circle':
        yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
        mask[xx ** 2 + yy ** 2 <= (size / 2) ** 2] = 1
    else:  # triangle, pointing up, right, down or left
        corners = np.array([[0, size - 1], [size - 1, size - 1], [(size - 1) // 2, 0]])
        cv2.fillPoly(mask, [corners.astype(np.int32)], 1)
        mask = np.rot90(mask, rng.integers(4))
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(bool)


def _paint(rng, mask):
    """A saturated random colour, with a darker 1 px outline for a crisp edge."""
    hsv = np.array([[[rng.integers(180), rng.integers(120, 256), rng.integers(120, 256)]]],
                   np.uint8)
    colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    pixels = np.broadcast_to(colour, mask.shape + (3,)).copy()
    outline = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    pixels[outline] = (colour * 0.55).astype(np.uint8)
    return pixels


def _move(rng, shape):
    velocity = shape.velocity + rng.normal(0, VELOCITY_JITTER, 2)
    speed = np.linalg.norm(velocity)
    shape.velocity = velocity * np.clip(speed, *SPEED_RANGE) / max(speed, 1e-6)
    shape.position = shape.position + shape.velocity


def _footprint(shape):
    """x0, y0, x1, y1 of the whole shape in frame pixels (may stick out of it)."""
    x0, y0 = np.round(shape.position).astype(int)
    h, w = shape.mask.shape
    return x0, y0, x0 + w, y0 + h


def _in_frame(shape, config):
    x0, y0, x1, y1 = _footprint(shape)
    return x1 > 0 and y1 > 0 and x0 < config.width and y0 < config.height


def _render(background, shapes, config):
    image = background.copy()
    # Which shape each pixel shows, nearest last, to count visible pixels.
    owner = np.zeros((config.height, config.width), np.uint8)
    drawn = sorted(shapes, key=lambda s: s.depth)
    clipped = {}
    for label, shape in enumerate(drawn, 1):
        x0, y0, x1, y1 = _footprint(shape)
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x1, config.width), min(y1, config.height)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        clipped[label] = (cx0, cy0, cx1 - cx0, cy1 - cy0)
        local = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        mask = shape.mask[local]
        image[cy0:cy1, cx0:cx1][mask] = shape.pixels[local][mask]
        owner[cy0:cy1, cx0:cx1][mask] = label

    visible = np.bincount(owner.ravel(), minlength=len(drawn) + 1)
    boxes = []
    for label, bbox in clipped.items():
        if min(bbox[2:]) < MIN_BOX_SIZE:
            continue
        shape = drawn[label - 1]
        visibility = round(float(visible[label]) / int(shape.mask.sum()), 3)
        boxes.append(GtBox(instance_id=shape.instance_id, category_id=shape.category_id,
                           bbox=tuple(int(v) for v in bbox), visibility=visibility,
                           ignore=visibility < MIN_VISIBILITY))
    return image, sorted(boxes, key=lambda b: b.instance_id)
