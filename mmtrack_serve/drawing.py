"""Draws a frame's objects: box, ``id class score`` label, and mask (VIS).

Colours are a function of the track id (or of the class when there is no id),
so one object keeps its colour across frames, requests and runs.
"""
import colorsys

import cv2
import numpy as np

GOLDEN_RATIO = 0.618033988749895


def colour_for(key):
    """A bright BGR colour, the same for the same integer key."""
    hue = (int(key) * GOLDEN_RATIO) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_objects(frame, objects, thickness=None):
    """Draws onto a copy of the BGR frame and returns it."""
    out = frame.copy()
    height, width = out.shape[:2]
    thickness = thickness or max(1, round(min(height, width) / 360))
    font_scale = max(0.35, min(height, width) / 900)
    for obj in objects:
        key = obj.track_id if obj.track_id is not None else obj.label
        colour = colour_for(key)
        if obj.mask is not None:
            region = obj.mask[:height, :width]
            out[region] = (0.5 * out[region] + 0.5 * np.array(colour)).astype(np.uint8)
        x1, y1, x2, y2 = (int(round(v)) for v in obj.bbox)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        parts = [] if obj.track_id is None else [str(obj.track_id)]
        parts += [obj.class_name, f'{obj.score:.2f}']
        _label(out, ' '.join(parts), (x1, y1), colour, font_scale, thickness)
    return out


def _label(img, text, corner, colour, font_scale, thickness):
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    x, y = max(corner[0], 0), max(corner[1], th + base)
    cv2.rectangle(img, (x, y - th - base), (x + tw, y), colour, -1)
    cv2.putText(img, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                (0, 0, 0), thickness, cv2.LINE_AA)
