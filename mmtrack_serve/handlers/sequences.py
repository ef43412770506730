"""Streaming for the TorchServe handler: a live video sent in chunks keeps its
tracker state, frame ids and track ids, one session per sequence id.

What is here (kept apart from the handler module, which TorchServe requires to
define exactly one class):

- ``classify``: does a request feed a sequence, or is it a whole video?
- ``SequenceStore``: a worker's sessions, bounded (``max_sequences``), evicted
  after ``idle_s`` without a request, with a bounded memory of evicted and ended
  ids so that a returning id is answered precisely (restarted, or 410). With a
  state store (``state_store``) its sessions are copies of stored sequences,
  which any worker may take up.
- ``read_chunk``: one chunk (a short video, or one JPEG/PNG/... image), checked
  by decoding it once before any frame reaches the tracker.

Protocol (README, "Streaming"): headers ``ts_request_sequence_id``,
``ts_request_sequence_start: true`` on the first chunk, ``ts_request_sequence_end:
true`` on the last; ``stream: true`` without an id starts a sequence whose id the
server chooses (returned in the ``ts_request_sequence_id`` response header).
"""
import logging
import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mmtrack_serve.errors import InputError, MMTrackServeError
from mmtrack_serve.serving.protocol import (  # noqa: F401 - HEADER_ID re-exported
    HEADER_END, HEADER_ID, HEADER_START, SEQUENCE_HEADERS)

DEFAULT_MAX_SEQUENCES = 8
DEFAULT_IDLE_MS = 60_000
# Evicted, ended and failed ids remembered per worker (to answer a returning id).
TOMBSTONES = 4096
# Sequence ids: also what the logs and headers carry, so kept plain.
SEQUENCE_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$')
# What TorchServe's frontend assigns when sequence batching is on and a request
# has no id ("ts-seq-" + UUID, with ts_request_sequence_start: true).
FRONTEND_ID = re.compile(r'^ts-seq-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
TRUE = ('true', '1', 'yes', 'on')
# A chunk's frame rate when it is a single image and the sequence has none yet.
IMAGE_FPS = 30.0
# image signatures (a chunk that is one frame); anything else goes to PyAV
IMAGE_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'BM', b'II*\x00', b'MM\x00*')


class SequenceError(MMTrackServeError):
    """A request the sequence store cannot serve; ``status`` is its HTTP code."""
    status = 400


class SequenceGone(SequenceError):
    """Unknown to this worker (never started here, ended, failed, or the worker restarted)."""
    status = 410


class SequenceConflict(SequenceError):
    """A start for an id that is running."""
    status = 409


class SequencesFull(SequenceError):
    """Every slot is taken; ``retry_after`` seconds until the stalest may be evicted."""
    status = 503

    def __init__(self, message, retry_after):
        super().__init__(message)
        self.retry_after = retry_after


class ChunkOutOfOrder(SequenceError):
    """A chunk whose index (``x-sequence-chunk``) is not the sequence's next."""
    status = 409


class StreamingUnavailable(SequenceError):
    """This model was set up without streaming."""
    status = 501


def is_true(value):
    if isinstance(value, (bytes, bytearray)):
        value = value.decode('utf-8', 'replace')
    return value is not None and str(value).strip().lower() in TRUE


@dataclass
class SequenceRequest:
    seq_id: str
    start: bool
    end: bool
    chosen_by_server: bool = False


def classify(headers, stream=None, names=SEQUENCE_HEADERS):
    """A SequenceRequest, or None for a whole-video request.

    ``headers``: the request's headers (any case); ``stream``: the ``stream``
    option (header or form field); ``names``: the sequence header names in
    force (``protocol.SequenceHeaders``, from the worker's context). With sequence batching on, TorchServe gives
    every request without an id one of its own (``ts-seq-<uuid>``, plus
    ``ts_request_sequence_start: true``): such a request is a whole video unless
    it says ``stream: true``.
    """
    lowered = {str(k).lower(): v for k, v in headers.items()}
    seq_id = headers.get(names.id) or lowered.get(names.id.lower())
    if isinstance(seq_id, (bytes, bytearray)):
        seq_id = seq_id.decode('utf-8', 'replace')
    seq_id = seq_id.strip() if seq_id else None
    start = is_true(lowered.get(names.start.lower()))
    end = is_true(lowered.get(names.end.lower()))
    streaming = is_true(stream)
    assigned_by_frontend = bool(seq_id and start and FRONTEND_ID.match(seq_id))
    if not streaming and (seq_id is None or assigned_by_frontend):
        return None
    if seq_id is None:
        return SequenceRequest(f'seq-{uuid.uuid4().hex}', start=True, end=end, chosen_by_server=True)
    if not SEQUENCE_ID.match(seq_id):
        raise InputError(f'{names.id} must be 1-128 letters, digits and ". _ : -", '
                         f'starting with a letter or digit; got {seq_id[:140]!r}')
    if assigned_by_frontend:
        return SequenceRequest(seq_id, start=True, end=end, chosen_by_server=True)
    return SequenceRequest(seq_id, start=start, end=end)


@dataclass
class Sequence:
    seq_id: str
    session: object
    score_thr: float
    init_bbox: Optional[str]
    last_used: float
    chunks: int = 0                # chunks done
    frames: int = 0                # frames done (= the next frame id)
    width: Optional[int] = None
    height: Optional[int] = None
    fps: Optional[float] = None
    busy: bool = False
    version: Optional[str] = None  # the state store's snapshot this copy matches
    last_answer: Optional[dict] = None   # the last chunk's, for a retried chunk
    saved: bool = False            # the state store holds this copy's state


@dataclass
class Tombstone:
    reason: str                    # 'evicted', 'ended' or 'failed'
    at: float
    chunks: int
    frames: int
    score_thr: float
    idle_s: float = 0.0            # how long it had been idle (evicted)
    timeout_s: float = 0.0         # the idle timeout then
    detail: str = ''


@dataclass
class SequenceStore:
    """One worker's sequences. Thread-safe: the handler and the sweeper share it."""
    max_sequences: int = DEFAULT_MAX_SEQUENCES
    idle_s: float = DEFAULT_IDLE_MS / 1000
    clock: object = time.monotonic
    max_tombstones: int = TOMBSTONES
    _live: dict = field(default_factory=dict)
    _gone: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self):
        with self._lock:
            return len(self._live)

    # -- eviction ---------------------------------------------------------------
    def sweep(self):
        """Evicts every sequence idle for longer than ``idle_s``; returns their ids."""
        with self._lock:
            return self._sweep_locked(self.clock())

    def _sweep_locked(self, now):
        stale = [s for s in self._live.values()
                 if not s.busy and now - s.last_used > self.idle_s]
        for seq in stale:
            del self._live[seq.seq_id]
            self._bury(seq, 'evicted', now, idle_s=now - seq.last_used)
        return [s.seq_id for s in stale]

    def _bury(self, seq, reason, now, idle_s=0.0, detail=''):
        self._gone.pop(seq.seq_id, None)
        self._gone[seq.seq_id] = Tombstone(reason, now, seq.chunks, seq.frames, seq.score_thr,
                                           idle_s, self.idle_s, detail)
        while len(self._gone) > self.max_tombstones:
            self._gone.popitem(last=False)

    def start_sweeper(self, interval=None, also=None):
        """A daemon thread that evicts idle sequences, so that their memory (GPU
        included) is freed without waiting for the next request; and calls
        ``also`` (the state store's sweep) as often."""
        interval = interval or max(0.5, min(self.idle_s / 2, 30.0))

        def run():
            while True:
                time.sleep(interval)
                self.sweep()
                if also is not None:
                    try:
                        also()
                    except Exception:  # noqa: BLE001 - a sweep is retried at the next interval
                        logging.getLogger(__name__).exception('state store sweep failed')
        thread = threading.Thread(target=run, name='mmtrack-serve-sequence-sweeper', daemon=True)
        thread.start()
        return thread

    # -- lookups ----------------------------------------------------------------
    def acquire(self, seq_id):
        """The live sequence (marked busy: never evicted while in use), or None.
        Idle sequences are evicted first, so an expired one is never returned."""
        with self._lock:
            self._sweep_locked(self.clock())
            seq = self._live.get(seq_id)
            if seq is not None:
                seq.busy = True
            return seq

    def release(self, seq):
        """Done with a chunk: the idle clock restarts now."""
        with self._lock:
            seq.busy = False
            seq.last_used = self.clock()

    def tombstone(self, seq_id):
        with self._lock:
            return self._gone.get(seq_id)

    def is_live(self, seq_id):
        with self._lock:
            return seq_id in self._live

    def check_room(self):
        """Raises SequencesFull unless a new sequence fits."""
        with self._lock:
            now = self.clock()
            self._sweep_locked(now)
            if len(self._live) < self.max_sequences:
                return
            idle = [self.idle_s - (now - s.last_used) for s in self._live.values() if not s.busy]
            wait = max(0.0, min(idle)) if idle else self.idle_s
            raise SequencesFull(
                f'all {self.max_sequences} sequence slots of this worker are in use: end a '
                f'sequence ({HEADER_END}: true), or retry in {wait:.1f} s, when the least '
                f'recently used one may be evicted (idle timeout {self.idle_s:g} s)',
                retry_after=max(1, math.ceil(wait)))

    def make_room(self, spare):
        """Frees a slot, if every one is taken, by dropping the least recently
        used idle sequence for which ``spare(seq)`` is true (one whose state
        is in the state store: nothing is lost). Then ``check_room``."""
        with self._lock:
            if len(self._live) >= self.max_sequences:
                idle = [s for s in self._live.values() if not s.busy and spare(s)]
                if idle:
                    del self._live[min(idle, key=lambda s: s.last_used).seq_id]
        self.check_room()

    def discard(self, seq):
        """Forgets this worker's copy of a sequence (busy or not) without a
        tombstone: another worker went on with it (the state store has it)."""
        with self._lock:
            if self._live.get(seq.seq_id) is seq:
                del self._live[seq.seq_id]

    def add(self, seq):
        """Registers a started sequence (busy until released)."""
        with self._lock:
            if seq.seq_id in self._live:
                raise SequenceConflict(f'sequence {seq.seq_id} is already running')
            seq.busy = True
            self._live[seq.seq_id] = seq
            self._gone.pop(seq.seq_id, None)

    def close(self, seq, reason='ended', detail=''):
        """Ends a sequence (live or not yet registered) and remembers why."""
        with self._lock:
            if self._live.get(seq.seq_id) is seq:
                del self._live[seq.seq_id]
            self._bury(seq, reason, self.clock(), detail=detail)


def start_again():
    return (f'start a new sequence ({HEADER_START}: true, with this or another id); '
            'its frame and track ids start again from 0')


def gone_message(seq_id, tomb, durable=False):
    """Why a continuing chunk for ``seq_id`` cannot be served (410);
    ``durable``: sequences are kept in a state store."""
    fix = start_again()
    if tomb is None:
        if durable:
            return (f'unknown or expired sequence {seq_id}: neither this worker nor the state '
                    'store holds it (never started, or expired after the idle timeout): ' + fix)
        return (f'unknown or expired sequence {seq_id}: this worker holds no such sequence '
                f'(never started, or lost when the worker restarted): {fix}')
    if tomb.reason == 'ended':
        return f'sequence {seq_id} has ended ({tomb.chunks} chunks, {tomb.frames} frames): {fix}'
    if tomb.reason == 'failed':
        return f'sequence {seq_id} was dropped after a failed chunk ({tomb.detail}): {fix}'
    return f'sequence {seq_id} {eviction(tomb)}: {fix}'


def eviction(tomb):
    return (f'({tomb.chunks} chunks, {tomb.frames} frames) was evicted after {tomb.idle_s:.1f} s '
            f'without a request (idle timeout {tomb.timeout_s:g} s)')


# -- chunks ----------------------------------------------------------------------
def _is_image(data):
    head = bytes(data[:16])
    return head.startswith(IMAGE_MAGIC) or (head[:4] == b'RIFF' and head[8:12] == b'WEBP')


class Chunk:
    """One chunk's frames, decoded once by ``read_chunk`` to check them and
    again by ``frames()`` to track them (so memory holds one frame, not the chunk)."""

    def __init__(self, data, name='the chunk'):
        self.data = bytes(data)
        self.name = name
        self.is_image = _is_image(self.data)
        self.width = self.height = None
        self.fps = None
        self.num_frames = 0

    def frames(self):
        if self.is_image:
            yield _decode_image(self.data, self.name)
            return
        from mmtrack_serve.video import VideoReader
        with VideoReader(self.data, name=self.name) as reader:
            yield from reader


def read_chunk(data, name='the chunk', limits=None):
    """A checked Chunk: every frame decodes, all have one size, and the chunk
    is within ``limits`` (``limits.Limits``, per chunk: from its header, then
    while decoding)."""
    from mmtrack_serve.limits import check_header, check_reader, guarded
    chunk = Chunk(data, name)
    if chunk.is_image:
        frame = _decode_image(chunk.data, name)
        chunk.height, chunk.width = frame.shape[:2]
        chunk.num_frames = 1
        check_header(limits, width=chunk.width, height=chunk.height, num_frames=1, what=name)
        return chunk
    from mmtrack_serve.video import VideoReader
    with VideoReader(chunk.data, name=name) as reader:
        check_reader(limits, reader, name)
        chunk.width, chunk.height, chunk.fps = reader.width, reader.height, float(reader.fps)
        for frame in guarded(reader, limits, reader.fps, name):
            if frame.shape[:2] != (chunk.height, chunk.width):
                raise InputError(f'{name} changes frame size mid-stream')
            chunk.num_frames += 1
        listed = reader.num_frames
    if chunk.num_frames == 0:
        raise InputError(f'{name} has no decodable frames')
    if listed and chunk.num_frames < listed:
        raise InputError(f'{name} is truncated or corrupt: {chunk.num_frames} of the {listed} '
                         'frames its container lists could be decoded')
    return chunk


def _decode_image(data, name):
    import cv2
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise InputError(f'{name} looks like an image but does not decode')
    return frame
