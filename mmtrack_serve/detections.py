"""Public detections: the boxes a MOTChallenge benchmark supplies beside each
video (``det/det.txt``), which MMTracking's "public" configs track instead of
running their own detector's proposals.

det.txt has one line per box, ``frame,id,x,y,w,h,score[,...]``, frames
1-based, ``id`` unused (-1). Read as MMTracking's converter reads it
(``tools/convert_datasets/mot/mot2coco.py --convert-det``, and
``mmtrack_serve.training.mot2coco``): ``x1, y1 = x, y`` and
``x2, y2 = x + w, y + h``, no shift.
"""
import math
from pathlib import Path

import numpy as np

from .errors import InputError

# x1, y1, x2, y2, score
EMPTY = np.zeros((0, 5), np.float32)
MIN_FIELDS = 7


def read_det_txt(source, name=None):
    """``{frame_id (0-based): float32 array (N, 5) x1, y1, x2, y2, score}``
    from a det.txt path, or its content as str or bytes.

    A str holding a comma or a line break is content, any other str a path.
    ``name`` stands for the source in error messages. Malformed content is an
    InputError naming the line.
    """
    rows = {}
    for frame_id, row, _ in _parse(source, name):
        rows.setdefault(frame_id, []).append(row)
    return {frame_id: np.array(boxes, np.float32).reshape(-1, 5) for frame_id, boxes in rows.items()}


def det_txt_lines(source, name=None):
    """``{frame_id (0-based): [its det.txt lines, as written]}``, checked as
    ``read_det_txt`` checks them (to send each chunk of a stream its own lines)."""
    lines = {}
    for frame_id, _, line in _parse(source, name):
        lines.setdefault(frame_id, []).append(line)
    return lines


def for_frame(detections, frame_id):
    """The (N, 5) array of one frame; a frame absent from ``detections`` has none."""
    boxes = detections.get(frame_id)
    return EMPTY if boxes is None else boxes


def _text(source, name):
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, str) and (',' in source or '\n' in source):
        return source, name or 'the detections'
    else:
        path = Path(source)
        name = name or str(path)
        if not path.is_file():
            raise InputError(f'no such detections file: {path}')
        data = path.read_bytes()
    name = name or 'the detections'
    try:
        return data.decode('utf-8-sig'), name
    except UnicodeDecodeError:
        raise InputError(f'{name} is not a text file (MOTChallenge det.txt: '
                         'frame,id,x,y,w,h,score per line)') from None


def _parse(source, name):
    """Yields (frame_id 0-based, [x1, y1, x2, y2, score], stripped line)."""
    text, name = _text(source, name)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        fields = [f.strip() for f in line.split(',')] if ',' in line else line.split()

        def bad(why):
            return InputError(f'{name} line {number}: {why} (MOTChallenge det.txt: '
                              f'frame,id,x,y,w,h,score; got {line[:80]!r})')
        if len(fields) < MIN_FIELDS:
            raise bad(f'{len(fields)} fields, expected at least {MIN_FIELDS}')
        try:
            frame = float(fields[0])
            x, y, w, h, score = (float(v) for v in fields[2:7])
        except ValueError:
            raise bad('not a number') from None
        if not frame.is_integer() or frame < 1:
            raise bad('the frame number must be a whole number from 1')
        if not all(math.isfinite(v) for v in (x, y, w, h, score)):
            raise bad('not a finite number')
        if w < 0 or h < 0:
            raise bad('negative width or height')
        yield int(frame) - 1, [x, y, x + w, y + h, score], line
