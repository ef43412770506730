"""Bounds on the work one video (or one streamed chunk) may ask for.

Bytes say little about the work in a video: a 5 MB mp4 can hold 200,000
frames, a 4.5 MB MJPEG two 12000x12000 ones. So what is bounded is the work:

- ``max_frames``: frames per request;
- ``max_pixels``: pixels per frame (width x height);
- ``max_seconds``: seconds of video per request;
- ``max_decoded_pixels``: frames x pixels, what decoding and the model cost;
- ``time_budget_s``: wall-clock seconds for the request, checked between frames.

Checked twice: from the container's header before any frame is decoded (an
over-limit upload is answered at once), and again while decoding, since
headers lie or say nothing (raw H.264, MJPEG). A video over a limit raises
``LimitExceeded`` (HTTP 413), a request past its budget ``TimeBudgetExceeded``
(HTTP 503 with Retry-After); neither returns a partial result. None turns a
bound off. The server's defaults (``SERVER_DEFAULTS``) are sized so that no
ordinary video meets them; the local CLI has none unless asked.
"""
import time
from dataclasses import dataclass, fields, replace
from typing import Iterable, Iterator, Optional

import numpy as np

from .errors import MMTrackServeError

# what `mmtrack-serve serve --limit` passes to the workers: JSON,
# {"*" or a model name: {limit name: value}}
LIMITS_ENV = 'MMTRACK_SERVE_LIMITS'
FPS_30_HOUR = 30 * 3600
PIXELS_8K = 7680 * 4320
PIXELS_1080P = 1920 * 1080


@dataclass(frozen=True)
class Limits:
    max_frames: Optional[int] = None
    max_pixels: Optional[int] = None
    max_seconds: Optional[float] = None
    max_decoded_pixels: Optional[int] = None
    time_budget_s: Optional[float] = None
    # how a user raises a limit, in messages: {flag} is the CLI flag (max-frames),
    # {name} the setting (max_frames)
    how_to_raise: str = 'raise it with --{flag}'

    def raise_hint(self, name):
        return self.how_to_raise.format(name=name, flag=name.replace('_', '-'))

    def with_values(self, values):
        """A copy with the settings in ``values`` (name: value; None or 0 turns one off)."""
        clean = {}
        for name, value in values.items():
            if name not in NAMES:
                raise KeyError(name)
            clean[name] = None if value in (None, 0, '0', '') else _number(name, value)
        return replace(self, **clean)

    def as_dict(self):
        return {name: getattr(self, name) for name in NAMES}


NAMES = tuple(f.name for f in fields(Limits) if f.name != 'how_to_raise')
# What each bounds, for messages.
UNITS = {'max_frames': 'frames', 'max_pixels': 'pixels per frame', 'max_seconds': 'seconds of video',
         'max_decoded_pixels': 'decoded pixels (frames x pixels)',
         'time_budget_s': 'seconds of tracking'}

# A served model's: an hour of 30 fps video, an 8K frame, an hour, and an hour
# of 1080p at 30 fps. The time budget is the response timeout's, less a
# margin, set where that timeout is known (the converter and the handler).
SERVER_DEFAULTS = Limits(max_frames=FPS_30_HOUR, max_pixels=PIXELS_8K, max_seconds=3600,
                         max_decoded_pixels=FPS_30_HOUR * PIXELS_1080P)


HELP = {
    'max_frames': 'frames per request',
    'max_pixels': 'pixels per frame, width x height',
    'max_seconds': 'seconds of video per request',
    'max_decoded_pixels': 'frames x pixels per request (what decoding and the model cost)',
    'time_budget_s': 'seconds a request may track before it is stopped (HTTP 503 when served)',
}


def add_arguments(parser, defaults=None):
    """``--max-frames`` ... ``--time-budget-s`` on ``parser``, one per limit;
    ``defaults``: a Limits whose values they default to (None: every one off)."""
    group = parser.add_argument_group('request limits (0: no limit)')
    for name in NAMES:
        default = getattr(defaults, name) if defaults is not None else None
        kind = float if name in ('max_seconds', 'time_budget_s') else int
        shown = 'none' if default is None else _show(default)
        group.add_argument(f'--{name.replace("_", "-")}', type=kind, default=default,
                           metavar='N', help=f'{HELP[name]} (default: {shown})')


def from_arguments(args, base=None):
    """The Limits the ``add_arguments`` flags in ``args`` give (on ``base``'s)."""
    return (base or Limits()).with_values({name: getattr(args, name) for name in NAMES})


def parse_override(text):
    """``[MODEL:]NAME=VALUE`` (``mmtrack-serve serve --limit``) as (model or
    "*", name, value)."""
    target, sep, value = text.partition('=')
    model, colon, name = target.rpartition(':')
    name = name.strip().replace('-', '_')
    if not sep or name not in NAMES:
        raise ValueError(f'--limit takes [MODEL:]NAME=VALUE with NAME one of {", ".join(NAMES)}, '
                         f'got {text!r}')
    Limits().with_values({name: value})                # a number, or ValueError
    return (model if colon else '*') or '*', name, value


def time_budget_for(response_timeout_s):
    """The default time budget under a response timeout: a margin left for the
    answer to be written and sent (a tenth, at most a minute)."""
    return max(1.0, response_timeout_s - min(60.0, response_timeout_s / 10))


def _number(name, value):
    number = float(value)
    if not np.isfinite(number) or number < 0:
        raise ValueError(f'{name} must be a positive number, got {value!r}')
    return int(number) if name != 'max_seconds' and name != 'time_budget_s' else number


class LimitExceeded(MMTrackServeError):
    """The video asks for more work than a limit allows. ``cut``: found while
    decoding (the request had started), rather than from the header."""
    status = 413

    def __init__(self, limits, name, found, what, cut=False):
        allowed = getattr(limits, name)
        super().__init__(f'{what} has {_show(found)} {UNITS[name]}, over the limit of '
                         f'{_show(allowed)} ({name}){" (stopped there while decoding)" if cut else ""}: '
                         f'send less, or {limits.raise_hint(name)}')
        self.limit, self.found, self.allowed, self.cut = name, found, allowed, cut

    def details(self):
        return {'limit': self.limit, 'value': self.found, 'allowed': self.allowed}


class TimeBudgetExceeded(MMTrackServeError):
    """The request ran past its time budget and was stopped, freeing the worker."""
    status = 503
    cut = True

    def __init__(self, limits, seconds, frames_done, retry_after):
        super().__init__(f'the request was stopped after {seconds:.1f} s and {frames_done} frames, '
                         f'past its time budget of {_show(limits.time_budget_s)} s '
                         f'(time_budget_s): send a shorter video, retry when the server is less '
                         f'busy, or {limits.raise_hint("time_budget_s")}')
        self.limit, self.found, self.allowed = 'time_budget_s', round(seconds, 3), limits.time_budget_s
        self.retry_after = retry_after

    def details(self):
        return {'limit': self.limit, 'value': self.found, 'allowed': self.allowed}


def _show(value):
    if isinstance(value, float) and not value.is_integer():
        return f'{value:.2f}'
    return f'{int(value):,}' if value >= 10_000 else str(int(value))


def check_header(limits, *, width, height, num_frames=None, seconds=None, what='the video'):
    """LimitExceeded when what the container says is already over a limit."""
    if limits is None:
        return
    pixels = int(width) * int(height)
    if limits.max_pixels is not None and pixels > limits.max_pixels:
        raise LimitExceeded(limits, 'max_pixels', pixels, f'{what} ({width}x{height})')
    if num_frames and limits.max_frames is not None and num_frames > limits.max_frames:
        raise LimitExceeded(limits, 'max_frames', int(num_frames), what)
    if seconds and limits.max_seconds is not None and seconds > limits.max_seconds:
        raise LimitExceeded(limits, 'max_seconds', float(seconds), what)
    if num_frames and limits.max_decoded_pixels is not None \
            and num_frames * pixels > limits.max_decoded_pixels:
        raise LimitExceeded(limits, 'max_decoded_pixels', int(num_frames) * pixels, what)


def check_reader(limits, reader, what='the video'):
    """``check_header`` on an open VideoReader."""
    check_header(limits, width=reader.width, height=reader.height, num_frames=reader.num_frames,
                 seconds=reader.duration_s, what=what)


def guarded(frames: Iterable, limits, fps, what='the video') -> Iterator:
    """``frames`` as they decode, stopped with LimitExceeded at the first frame
    over a limit (a header that said less, or nothing)."""
    if limits is None or all(getattr(limits, n) is None for n in NAMES if n != 'time_budget_s'):
        yield from frames
        return
    count = decoded = 0
    for frame in frames:
        height, width = frame.shape[:2]
        pixels = width * height
        count += 1
        decoded += pixels
        if limits.max_pixels is not None and pixels > limits.max_pixels:
            raise LimitExceeded(limits, 'max_pixels', pixels, f'{what} (a {width}x{height} frame)',
                                cut=True)
        if limits.max_frames is not None and count > limits.max_frames:
            raise LimitExceeded(limits, 'max_frames', count, f'{what} (at least)', cut=True)
        if limits.max_seconds is not None and fps and count / float(fps) > limits.max_seconds:
            raise LimitExceeded(limits, 'max_seconds', round(count / float(fps), 3),
                                f'{what} (at least)', cut=True)
        if limits.max_decoded_pixels is not None and decoded > limits.max_decoded_pixels:
            raise LimitExceeded(limits, 'max_decoded_pixels', decoded, f'{what} (at least)',
                                cut=True)
        yield frame


class Deadline:
    """The time budget of one request, from its start; ``check`` between frames."""

    def __init__(self, limits, started=None):
        self.limits = limits
        self.started = time.monotonic() if started is None else started
        self.frames_done = 0

    def check(self, frames_done=None):
        budget = self.limits.time_budget_s if self.limits is not None else None
        if budget is None:
            return
        elapsed = time.monotonic() - self.started
        if elapsed > budget:
            # a retry is worth it once this request's worth of time has passed
            raise TimeBudgetExceeded(self.limits, elapsed,
                                     self.frames_done if frames_done is None else frames_done,
                                     retry_after=max(1, int(round(min(budget, 60)))))
