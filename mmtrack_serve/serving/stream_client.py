"""The client side of streaming: one video's chunks sent to a served model as
one sequence (README, "Streaming"), each answer checked to continue it.

Chunks are encoded losslessly by default (H.264 RGB, qp 0): the server decodes
exactly the frames the client read, so the joined result equals the result of
the same video sent whole. ``h264`` sends smaller, lossy chunks (yuv420p, as
VideoWriter writes them): the tracks then follow the re-encoded frames.
"""
import io
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from ..errors import MMTrackServeError
from .client import ServerError, post, predictions_url
from .protocol import (BINARY, CHUNK_HEADER, DETECTIONS_KEY, HEADER_END, HEADER_ID, HEADER_START,
                       RETRY_ERRORS, VIDEO_FIELD)

CHUNK_CODECS = ('lossless', 'h264')
# a chunk is sent again this many times when the server says to retry
# (protocol.RETRY_ERRORS, after Retry-After: the sequence is busy, the state
# store is unreachable, slots are full) or cannot be reached; each chunk carries its index, so a chunk the
# server had already tracked is answered from its stored answer, never twice
RETRIES = 3
MAX_RETRY_WAIT_S = 10.0


class SequenceClient:
    """Sends chunks as one sequence; ``frames`` gathers the answers' frames."""

    def __init__(self, url, model, seq_id, *, score_thr=None, init_bbox=None, timeout=600.0,
                 retries=RETRIES):
        import requests
        self.http = requests.Session()
        self.url, self.model, self.seq_id = url, model, seq_id
        self.score_thr, self.init_bbox, self.timeout = score_thr, init_bbox, timeout
        self.frames, self.chunks = [], 0
        self.task = self.classes = None
        self.open = False
        self.retries = retries

    def send(self, body, num_frames, last, detections=None):
        """Posts one chunk (with its det.txt lines as multipart, when given);
        returns the answer."""
        headers = {'output': 'json', HEADER_ID: self.seq_id, CHUNK_HEADER: str(self.chunks)}
        if self.score_thr is not None:
            headers['score_thr'] = str(self.score_thr)
        if self.chunks == 0:
            headers[HEADER_START] = 'true'
            if self.init_bbox:
                headers['init_bbox'] = self.init_bbox
        if last:
            headers[HEADER_END] = 'true'
        files = None
        if detections is not None:
            files = {VIDEO_FIELD: ('chunk.mp4', body, BINARY),
                     DETECTIONS_KEY: ('det.txt', detections.encode(), 'text/plain')}
        for attempt in range(self.retries + 1):
            try:
                response = post(self.url, self.model, body=None if files else body, files=files,
                                headers=headers, timeout=self.timeout, http=self.http,
                                what=f'chunk {self.chunks}')
                break
            except MMTrackServeError as e:
                status = getattr(e, 'http_status', None)
                wait = (e.retry_after if e.error_type in RETRY_ERRORS else None) \
                    if isinstance(e, ServerError) else 1.0
                if attempt < self.retries and wait is not None:
                    time.sleep(min(wait, MAX_RETRY_WAIT_S))
                    continue
                self.open = self.open and status not in (404, 410)
                raise
        answer = _json(response, self.model, self.chunks)
        self.open = not last
        if answer.get('restarted'):
            raise MMTrackServeError(f'the server restarted sequence {self.seq_id} at chunk '
                                    f'{self.chunks}: {answer.get("restart_reason", "")}')
        got = [f['frame_id'] for f in answer['frames']]
        expected = list(range(len(self.frames), len(self.frames) + num_frames))
        if got != expected:
            raise MMTrackServeError(f'chunk {self.chunks} of sequence {self.seq_id} came back with '
                                    f'frames {_span(got)}, expected {_span(expected)}')
        self.task, self.classes = answer['task'], answer['classes']
        self.frames += answer['frames']
        self.chunks += 1
        return answer

    def end(self):
        """Ends a sequence whose frames have all been sent (a stop between
        chunks): an empty last chunk, which the server answers with no frames."""
        if not self.open:
            return
        post(self.url, self.model, body=b'', headers={'output': 'json', HEADER_ID: self.seq_id,
                                                      HEADER_END: 'true'},
             timeout=self.timeout, http=self.http, what=f'the end of sequence {self.seq_id}')
        self.open = False

    def abandon(self):
        """After a failure: end the sequence (best effort) so it holds no slot."""
        if self.open:
            try:
                self.http.post(predictions_url(self.url, self.model), data=b'',
                               headers={HEADER_ID: self.seq_id, HEADER_END: 'true'}, timeout=10)
            except Exception:  # noqa: BLE001 - already failing; the idle timeout frees it anyway
                pass
            self.open = False


def _json(response, model, chunk):
    try:
        return response.json()
    except ValueError:
        raise MMTrackServeError(f'{model} answered chunk {chunk} with something '
                                f'other than JSON: {response.text[:200]!r}') from None


def chunk_det_txt(det_lines, first, count):
    """The det.txt lines of frames ``first`` .. ``first + count - 1`` (0-based),
    as written: their frame numbers stay the sequence's. A chunk whose frames
    have no box still says it has detections (none): a comment line, as an
    empty form field may not reach the handler."""
    lines = [line for i in range(first, first + count) for line in det_lines.get(i, ())]
    return ''.join(f'{line}\n' for line in lines) or \
        f'# no detections in frames {first + 1}-{first + count}\n'


def encode_chunk(frames, fps, codec):
    """One chunk as mp4 bytes: lossless H.264 RGB, or VideoWriter's lossy H.264."""
    from ..video import VideoWriter
    height, width = frames[0].shape[:2]
    if codec == 'h264':
        # a path, not a buffer: VideoWriter's faststart rewrites the file
        with tempfile.TemporaryDirectory(prefix='mmtrack-serve-stream-') as folder:
            path = Path(folder) / 'chunk.mp4'
            with VideoWriter(path, width, height, fps, crf=18) as writer:
                for frame in frames:
                    writer.write(frame)
            return path.read_bytes()
    import av
    buffer = io.BytesIO()
    rate = Fraction(fps).limit_denominator(1001)
    container = av.open(buffer, mode='w', format='mp4')
    try:
        stream = container.add_stream('libx264rgb', rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, 'bgr24'
        time_base = stream.time_base = 1 / rate
        stream.options = {'qp': '0', 'preset': 'ultrafast'}
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format='bgr24')
            video_frame.pts, video_frame.time_base = i, time_base
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return buffer.getvalue()


def _span(ids):
    return f'{ids[0]}-{ids[-1]}' if ids else 'none'
