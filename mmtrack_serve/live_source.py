"""Live video sources: a camera or network stream (anything FFmpeg opens:
rtsp://, rtmp://, srt://, udp:// MPEG-TS, http(s):// HLS or MJPEG, /dev/videoN),
read continuously in a thread and handed out in chunks.

A live source does not wait for its reader. The reader thread decodes every
frame as it arrives, so a slow consumer (a server that falls behind) never
stalls capture (which would lose packets or make the camera drop the
connection); instead, while the consumer is busy and the frames waiting span
more than ``max_lag_s``, the oldest are dropped at the source, each drop
recorded on the next frame kept. When the source fails or ends, the reader
reopens it with backoff for ``reconnect_timeout_s``, and records the gap on the
first frame after it.

Files are not read here: ``stream`` reads them with ``VideoReader``, as fast as
the server takes them, and drops nothing.
"""
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Tuple

import av
import numpy as np

from .errors import InputError

RTSP_TRANSPORTS = ('tcp', 'udp')
# the FFmpeg device format for /dev/videoN
V4L2_FORMAT = 'v4l2'
# a source that does not say its frame rate (some RTSP cameras, MJPEG over http)
DEFAULT_LIVE_FPS = Fraction(25)
MAX_FPS = Fraction(1000)
# backoff between reconnect attempts doubles up to this
MAX_BACKOFF_S = 10.0
# why the reader stopped when the source itself ended (EOF)
ENDED = 'the source ended'
# the longest the consumer sleeps before looking at the stop flag again
_POLL_S = 0.1


def is_live(source):
    """A URL or a device is live; anything else is a file (or a folder of frames)."""
    source = str(source)
    return '://' in source or source.startswith('/dev/')


@dataclass
class Captured:
    """One frame as the source gave it."""
    image: np.ndarray
    index: int                            # capture index: frames read, from 0, across reconnects
    captured_at: float                    # wall clock (time.time()) when it was decoded
    source_time: Optional[float] = None   # its timestamp in the source, seconds (as the source says)
    skipped: Optional[Tuple[int, int]] = None   # capture indexes dropped just before it (first, last)
    reconnect: Optional[dict] = None      # the source was lost just before it: when, why, for how long

    def record(self):
        """What the jsonl says of this frame besides its results."""
        out = {'capture_index': self.index, 'captured_at': round(self.captured_at, 6)}
        if self.source_time is not None:
            out['source_time'] = round(self.source_time, 6)
        if self.skipped is not None:
            out['skipped'] = {'first': self.skipped[0], 'last': self.skipped[1],
                              'count': self.skipped[1] - self.skipped[0] + 1}
        if self.reconnect is not None:
            out['reconnect'] = self.reconnect
        return out


def open_options(url, rtsp_transport='tcp', extra=None):
    """FFmpeg options for ``url``: RTSP over TCP unless asked otherwise (UDP
    loses packets on any busy network), UDP overruns not fatal (a late reader
    loses datagrams, it should not stop), then the caller's own."""
    options = {}
    if url.startswith(('rtsp://', 'rtsps://')):
        options['rtsp_transport'] = rtsp_transport
    elif url.startswith('udp://'):
        options['overrun_nonfatal'] = '1'
    options.update(extra or {})
    return options


class LiveSource:
    """Opens ``url`` (one-line InputError naming it and FFmpeg's reason when it
    cannot) and reads it in a thread until ``close()``.

    ``width``, ``height`` and ``fps`` are the first opening's; ``captured``,
    ``dropped`` and ``reconnects`` count as the reader goes; ``ended`` is the
    reason the reader stopped (None while it runs) and ``error`` is set when
    that reason is a failure of the stream rather than its end.
    """

    def __init__(self, url, *, rtsp_transport='tcp', options=None, timeout_s=10.0, max_lag_s=2.0,
                 reconnect_s=1.0, reconnect_timeout_s=30.0, clock=time.time):
        self.url = str(url)
        self._format = V4L2_FORMAT if self.url.startswith('/dev/') else None
        self._options = open_options(self.url, rtsp_transport, options)
        self.timeout_s, self.max_lag_s = timeout_s, max_lag_s
        self.reconnect_s, self.reconnect_timeout_s = reconnect_s, reconnect_timeout_s
        self._clock = clock
        self._cond = threading.Condition()
        self._buffer = deque()
        self._pending_skip = None       # drops with no kept frame after them yet
        self._pending_reconnect = None
        self._last_at = None
        self._consumer_waiting = False
        self._stop = threading.Event()
        self.captured = self.dropped = self.reconnects = 0
        self.ended = self.error = None
        container = self._open()
        stream = container.streams.video[0]
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate
        self.fps = Fraction(rate) if rate and 0 < rate <= MAX_FPS else DEFAULT_LIVE_FPS
        self._thread = threading.Thread(target=self._run, args=(container,),
                                        name='mmtrack-serve-live', daemon=True)
        self._thread.start()

    # -- the reader thread ----------------------------------------------------
    def _open(self):
        try:
            container = av.open(self.url, format=self._format, options=self._options,
                                timeout=(self.timeout_s, self.timeout_s))
        except av.error.ExitError:
            # PyAV's timeout interrupts FFmpeg, which then only says "Immediate exit requested"
            raise InputError(f'cannot open {self.url}: nothing received within '
                             f'{self.timeout_s:g} s') from None
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise InputError(f'cannot open {self.url}: {_reason(e)}') from None
        if not container.streams.video or not container.streams.video[0].codec_context.width:
            container.close()
            raise InputError(f'cannot open {self.url}: no video stream with a frame size')
        # slice threads only: frame threads hold frames back, adding their
        # count to the latency (and keeping the last ones until a flush)
        container.streams.video[0].thread_type = 'SLICE'
        return container

    def _run(self, container):
        reason, error = 'stopped', None
        try:
            while not self._stop.is_set():
                reason, ended = self._read(container)
                container.close()
                container = None
                if self._stop.is_set():
                    reason = 'stopped'
                    break
                if ended:
                    break
                container = self._reconnect(reason)
                if container is None:
                    reason = (f'{reason}; not back within {self.reconnect_timeout_s:g} s'
                              if self.reconnect_timeout_s > 0 else reason)
                    break
        except SourceChanged as e:
            reason = error = str(e)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer as the reason
            reason = error = f'reading {self.url} failed: {e!r}'
        finally:
            if container is not None:
                container.close()
            with self._cond:
                self.ended, self.error = reason, error
                self._cond.notify_all()

    def _read(self, container):
        """Decodes until the source fails or ends: (why, whether that is its end)."""
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return 'stopped', True
                try:
                    frames = stream.decode(packet)
                except av.error.InvalidDataError:
                    # a damaged packet (lost datagrams, joined mid-GOP): the decoder resyncs
                    continue
                for frame in frames:
                    self._push(frame)
        except av.error.ExitError:
            self._flush(stream)
            return f'nothing received for {self.timeout_s:g} s', False
        except (av.error.FFmpegError, OSError) as e:
            self._flush(stream)
            return _reason(e), False
        # A recording (an HLS VOD playlist, a file over http) has a duration:
        # its end is the stream's end, and reopening it would play it again.
        if container.duration and container.duration > 0:
            return ENDED, True
        return ENDED, self.reconnect_timeout_s <= 0

    def _flush(self, stream):
        """The frames the decoder (or parser) still holds, before the source is
        reopened. Their data came before the source went quiet: they count as
        captured with the last frame, not now."""
        try:
            for frame in stream.decode(None):
                self._push(frame, at=self._last_at)
        except av.error.FFmpegError:
            pass

    def _reconnect(self, reason):
        """Reopens with backoff until ``reconnect_timeout_s`` after the loss;
        None when it does not come back (or on stop)."""
        lost_at = self._clock()
        delay, attempts = self.reconnect_s, 0
        while not self._stop.is_set():
            remaining = lost_at + self.reconnect_timeout_s - self._clock()
            if remaining <= 0:
                return None
            if self._stop.wait(min(delay, remaining)):
                return None
            attempts += 1
            try:
                container = self._open()
            except InputError:
                # the loss's own reason is the one recorded, not each retry's
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            if self._stop.is_set():
                container.close()
                return None
            ctx = container.streams.video[0].codec_context
            if (ctx.width, ctx.height) != (self.width, self.height):
                container.close()
                raise SourceChanged(f'{self.url} came back at {ctx.width}x{ctx.height}, '
                                    f'the stream is {self.width}x{self.height}')
            # a container reopened after an end that now says it has a duration
            # is a finished recording: not a reconnect, its replay
            if reason == ENDED and container.duration and container.duration > 0:
                container.close()
                return None
            with self._cond:
                self.reconnects += 1
                self._pending_reconnect = {'lost_at': round(lost_at, 6), 'reason': reason,
                                           'attempts': attempts}
            return container
        return None

    def _push(self, frame, at=None):
        image = frame.to_ndarray(format='bgr24')
        now = at or self._clock()
        with self._cond:
            item = Captured(image, self.captured, now, frame.time)
            self.captured += 1
            if self._pending_reconnect is not None:
                gap = self._pending_reconnect
                # from the last frame before the loss: what the stream is missing
                gap['gap_s'] = round(now - (self._last_at or gap['lost_at']), 3)
                item.reconnect, self._pending_reconnect = gap, None
            self._last_at = now
            if self._pending_skip is not None:
                item.skipped, self._pending_skip = self._pending_skip, None
            self._buffer.append(item)
            # Only while the consumer is busy (sending, i.e. the server is
            # behind): while it waits for frames, the frames it waits with are
            # not late, however long the source paused or reconnected.
            if not self._consumer_waiting:
                self._drop_stale()
            self._cond.notify_all()

    # -- the consumer's side -------------------------------------------------
    def _drop_stale(self):
        """Drops frames captured more than ``max_lag_s`` before the newest,
        oldest first; the drop (and any record the frame carried) moves to the
        next frame. Measured from the newest frame, not the clock: a source
        that stalls (or ends) is not the server falling behind, and its last
        frames wait for their chunk rather than being dropped."""
        buffer = self._buffer
        while buffer and buffer[-1].captured_at - buffer[0].captured_at > self.max_lag_s:
            old = buffer.popleft()
            self.dropped += 1
            skipped = _merge(old.skipped, (old.index, old.index))
            if buffer:
                buffer[0].skipped = _merge(skipped, buffer[0].skipped)
                buffer[0].reconnect = buffer[0].reconnect or old.reconnect
            else:
                self._pending_skip = _merge(self._pending_skip, skipped)
                self._pending_reconnect = self._pending_reconnect or old.reconnect

    def next_chunk(self, frames=None, seconds=None, stopping=lambda: False):
        """Waits for the next chunk: ``frames`` frames, or the frames captured
        over ``seconds``; returns ``(frames, last)``. ``last`` is true once the
        reader has ended (or ``stopping()`` says so) and nothing is left; the
        frames may then be fewer, or none."""
        with self._cond:
            try:
                while True:
                    buffer = self._buffer
                    done = self.ended is not None or stopping()
                    if frames is not None:
                        ready = len(buffer) >= frames
                    else:
                        ready = bool(buffer) and self._clock() - buffer[0].captured_at >= seconds
                    if ready or done:
                        count = frames or _count_within(buffer, buffer[0].captured_at + seconds) \
                            if buffer else 0
                        chunk = [buffer.popleft() for _ in range(min(count, len(buffer)))]
                        return chunk, done and not buffer
                    self._consumer_waiting = True
                    self._cond.wait(_POLL_S)
            finally:
                self._consumer_waiting = False

    def stop(self):
        self._stop.set()

    def close(self):
        """Stops the reader; waits for it as long as one read may block."""
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SourceChanged(Exception):
    """The source came back with another frame size than the stream's."""


def lag_bound_error(chunk_frames, chunk_seconds, fps, max_lag_s):
    """Why this chunk size cannot keep ``max_lag_s`` (None when it can): a
    chunk's first frame waits for its last, so a chunk must span less."""
    span = chunk_seconds if chunk_seconds is not None else chunk_frames / float(fps)
    if span < max_lag_s:
        return None
    what = f'--chunk-seconds {chunk_seconds:g}' if chunk_seconds is not None else \
        f'--chunk-frames {chunk_frames} at {float(fps):g} fps'
    return (f'{what} spans {span:.2f} s, not under --max-lag-seconds {max_lag_s:g}: '
            f'every frame would be dropped; send smaller chunks or allow more lag')


def _count_within(buffer, until):
    return sum(1 for item in buffer if item.captured_at < until) or 1


def _merge(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), max(a[1], b[1]))


def _reason(error):
    return getattr(error, 'strerror', None) or str(error).splitlines()[0]
