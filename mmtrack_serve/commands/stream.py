"""`mmtrack-serve stream`: send a video to a served model in chunks, as one
sequence (as a live source would), and join the chunks' results into one result
with the whole-video schema.

Chunks are encoded losslessly by default (H.264 RGB, qp 0): the server decodes
exactly the frames this command read, so the joined result equals the result of
the same video sent whole. ``--chunk-codec h264`` sends smaller, lossy chunks
(yuv420p, as VideoWriter writes them): the tracks then follow the re-encoded
frames.
"""
import io
import tempfile
import time
import uuid
from fractions import Fraction
from pathlib import Path

from ..defaults import SCORE_THR_HELP
from ..errors import InputError, MMTrackServeError
from . import make_output_folders

HEADER_ID, HEADER_START, HEADER_END = ('ts_request_sequence_id', 'ts_request_sequence_start',
                                       'ts_request_sequence_end')


def add_arguments(p):
    p.add_argument('video', help='video file (or folder of frames) to stream')
    p.add_argument('--url', default='127.0.0.1:8080', help='inference address (default 127.0.0.1:8080)')
    p.add_argument('--model', required=True, help='model name on the server')
    p.add_argument('--chunk-frames', type=int, default=30, metavar='N',
                   help='frames per chunk, i.e. per request (default 30)')
    p.add_argument('--output', help='annotated H.264 mp4 of the whole stream, drawn here from the results')
    p.add_argument('--json', help='joined results as JSON (the whole-video schema)')
    p.add_argument('--mot', help='joined results as MOTChallenge txt')
    p.add_argument('--score-thr', type=float, default=None, help=SCORE_THR_HELP)
    p.add_argument('--init-bbox', help='SOT: the target in the first frame, x1,y1,x2,y2 pixels')
    p.add_argument('--detections', metavar='DET_TXT',
                   help='public-detection MOT models: the video\'s boxes as MOTChallenge det.txt; '
                        'each chunk is sent with its frames\' lines (as multipart: the chunk as '
                        'field "data", its lines as field "detections")')
    p.add_argument('--sequence-id', help='sequence id (default: a new random one)')
    p.add_argument('--chunk-codec', choices=('lossless', 'h264'), default='lossless',
                   help='lossless (default: results equal the whole video sent at once) or h264 '
                        '(smaller, lossy)')
    p.add_argument('--timeout', type=float, default=600, help='seconds to wait for one chunk (default 600)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')


def main(args):
    from ..client import normalise_url
    from ..results import results_json, write_json, write_mot_txt
    from ..video import VideoReader

    if args.chunk_frames < 1:
        raise InputError(f'--chunk-frames must be 1 or more, got {args.chunk_frames}')
    if args.score_thr is not None and not 0.0 <= args.score_thr <= 1.0:
        raise InputError(f'--score-thr must be between 0 and 1, got {args.score_thr}')
    make_output_folders(args.output, args.json, args.mot)
    det_lines = None
    if args.detections:
        from ..detections import det_txt_lines
        det_lines = det_txt_lines(Path(args.detections))   # checked before anything is sent
    url = f'{normalise_url(args.url)}/predictions/{args.model}'
    seq_id = args.sequence_id or f'mmtrack-serve-stream-{uuid.uuid4().hex[:16]}'
    start = time.perf_counter()
    with VideoReader(args.video) as reader:
        info = reader.info()
        streamer = _Streamer(url, seq_id, args)
        writer = _annotated_writer(args.output, reader)
        bar = _progress(not args.quiet, reader.num_frames)
        try:
            for frames, last in _chunks(reader, args.chunk_frames):
                body = _encode(frames, reader.fps, args.chunk_codec)
                detections = None if det_lines is None else \
                    _chunk_det_txt(det_lines, len(streamer.frames), len(frames))
                answer = streamer.send(body, len(frames), last, detections)
                if writer is not None:
                    _draw(writer, frames, answer['frames'])
                bar.update(len(frames))
        except BaseException:
            streamer.abandon()
            raise
        finally:
            bar.close()
            if writer is not None:
                writer.close()
    if not streamer.frames:
        raise InputError(f'{args.video} has no decodable frames')
    info['num_frames'] = len(streamer.frames)
    results = results_json(info, streamer.task, streamer.classes, streamer.frames)
    if args.json:
        write_json(results, args.json)
    if args.mot:
        write_mot_txt(results['frames'], args.mot)
    seconds = time.perf_counter() - start
    n = len(streamer.frames)
    objects = sum(len(f['objects']) for f in streamer.frames)
    print(f'streamed {n} frames in {streamer.chunks} chunks as sequence {seq_id} in {seconds:.1f} s '
          f'({n / seconds:.2f} fps), {objects} objects')
    for label, path in (('video', args.output), ('json', args.json), ('mot', args.mot)):
        if path:
            print(f'{label}: {Path(path).resolve()}')
    return 0


class _Streamer:
    """Sends chunks as one sequence and checks that each answer continues it."""

    def __init__(self, url, seq_id, args):
        import requests
        self.http = requests.Session()
        self.url, self.seq_id, self.args = url, seq_id, args
        self.frames, self.chunks = [], 0
        self.task = self.classes = None
        self.open = False

    def send(self, body, num_frames, last, detections=None):
        """Posts one chunk (with its det.txt lines as multipart, when given)."""
        headers = {'Content-Type': 'application/octet-stream', 'output': 'json', HEADER_ID: self.seq_id}
        if self.args.score_thr is not None:
            headers['score_thr'] = str(self.args.score_thr)
        if self.chunks == 0:
            headers[HEADER_START] = 'true'
            if self.args.init_bbox:
                headers['init_bbox'] = self.args.init_bbox
        if last:
            headers[HEADER_END] = 'true'
        files = None
        if detections is not None:
            # multipart: requests sets its own Content-Type with the boundary
            del headers['Content-Type']
            files = {'data': ('chunk.mp4', body, 'application/octet-stream'),
                     'detections': ('det.txt', detections.encode(), 'text/plain')}
        answer = self._post(body, headers, files)
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

    def abandon(self):
        """After a failure: end the sequence (best effort) so it holds no slot."""
        if self.open:
            try:
                self.http.post(self.url, data=b'', headers={HEADER_ID: self.seq_id, HEADER_END: 'true'},
                               timeout=10)
            except Exception:  # noqa: BLE001 - already failing; the idle timeout frees it anyway
                pass
            self.open = False

    def _post(self, body, headers, files=None):
        import requests
        from ..client import error_message
        try:
            if files is not None:
                response = self.http.post(self.url, files=files, headers=headers,
                                          timeout=self.args.timeout)
            else:
                response = self.http.post(self.url, data=body, headers=headers,
                                          timeout=self.args.timeout)
        except requests.RequestException as e:
            raise MMTrackServeError(f'cannot reach {self.args.url}: {e}') from None
        if response.status_code != 200:
            self.open = self.open and response.status_code not in (404, 410)
            raise MMTrackServeError(f'{self.args.model} answered HTTP {response.status_code} to chunk '
                                    f'{self.chunks}: {error_message(response)}')
        try:
            return response.json()
        except ValueError:
            raise MMTrackServeError(f'{self.args.model} answered chunk {self.chunks} with something '
                                    f'other than JSON: {response.text[:200]!r}') from None


def _chunks(frames, size):
    """(list of frames, is_last) per chunk; reads one chunk ahead to know the last."""
    pending = []
    for frame in frames:
        pending.append(frame)
        if len(pending) == size + 1:
            yield pending[:size], False
            pending = pending[size:]
    if pending:
        yield pending, True


def _chunk_det_txt(det_lines, first, count):
    """The det.txt lines of frames ``first`` .. ``first + count - 1`` (0-based),
    as written: their frame numbers stay the sequence's. A chunk whose frames
    have no box still says it has detections (none): a comment line, as an
    empty form field may not reach the handler."""
    lines = [line for i in range(first, first + count) for line in det_lines.get(i, ())]
    return ''.join(f'{line}\n' for line in lines) or \
        f'# no detections in frames {first + 1}-{first + count}\n'


def _encode(frames, fps, codec):
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


def _annotated_writer(path, reader):
    if not path:
        return None
    from ..video import VideoWriter
    return VideoWriter(path, reader.width, reader.height, reader.fps)


def _draw(writer, frames, frame_results):
    from ..drawing import draw_objects
    from ..results import TrackedObject, decode_mask
    for frame, result in zip(frames, frame_results):
        objects = [TrackedObject(bbox=o['bbox'], score=o['score'], label=o['label'],
                                 class_name=o['class_name'], track_id=o['track_id'],
                                 mask=decode_mask(o['mask']) if o.get('mask') else None)
                   for o in result['objects']]
        writer.write(draw_objects(frame, objects))


def _span(ids):
    return f'{ids[0]}-{ids[-1]}' if ids else 'none'


def _progress(enabled, total):
    from tqdm import tqdm
    return tqdm(total=total, unit='frame', disable=not enabled, dynamic_ncols=True)
