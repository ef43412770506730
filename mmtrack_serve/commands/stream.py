"""`mmtrack-serve stream SOURCE`: send a video to a served model in chunks, as
one sequence, and write the results as they come back.

SOURCE is a file (or folder of frames), sent whole in chunks, nothing dropped;
or a live source FFmpeg opens (rtsp://, rtmp://, srt://, udp://, http(s)://,
/dev/videoN), read continuously in a thread (``live_source``), with frames
dropped at the source when the server falls behind, and reconnects. The
transport (and how chunks are encoded) is ``serving.stream_client``; the
annotated video is drawn here, by the core's drawing, from the results.
"""
import signal
import sys
import time
import uuid
from pathlib import Path

from ..defaults import SCORE_THR_HELP
from ..errors import InputError, MMTrackServeError
from ..live_source import RTSP_TRANSPORTS, is_live
from ..serving.stream_client import CHUNK_CODECS
from . import make_output_folders

FILE_CHUNK_FRAMES = 30
LIVE_CHUNK_SECONDS = 0.5


def add_arguments(p):
    p.add_argument('video', metavar='SOURCE',
                   help='a video file or folder of frames, or a live source FFmpeg opens: rtsp://, '
                        'rtmp://, srt://, udp:// (MPEG-TS), http(s):// (HLS, MJPEG), /dev/videoN')
    p.add_argument('--url', default='127.0.0.1:8080', help='inference address (default 127.0.0.1:8080)')
    p.add_argument('--model', required=True, help='model name on the server')
    size = p.add_mutually_exclusive_group()
    size.add_argument('--chunk-frames', type=int, metavar='N',
                      help=f'frames per chunk, i.e. per request (default {FILE_CHUNK_FRAMES} for files)')
    size.add_argument('--chunk-seconds', type=float, metavar='T',
                      help=f'seconds of video per chunk (default {LIVE_CHUNK_SECONDS:g} for live sources)')
    p.add_argument('--output', help='annotated H.264 mp4 of the stream, drawn here from the results '
                                    '(finalised when the stream stops)')
    p.add_argument('--segment-seconds', type=float, metavar='S',
                   help='with --output: rolling files NAME-00000.mp4, NAME-00001.mp4... of S seconds '
                        '(for endless sources)')
    p.add_argument('--json', help='joined results as JSON (the whole-video schema), written at the end')
    p.add_argument('--jsonl', help='one line per frame, flushed after every chunk: the frame\'s results '
                                   'plus capture index and time, skipped frames and reconnects')
    p.add_argument('--mot', help='results as MOTChallenge txt, appended after every chunk')
    p.add_argument('--score-thr', type=float, default=None, help=SCORE_THR_HELP)
    p.add_argument('--init-bbox', help='SOT: the target in the first frame, x1,y1,x2,y2 pixels')
    p.add_argument('--detections', metavar='DET_TXT',
                   help='public-detection MOT models (file sources): the video\'s boxes as '
                        'MOTChallenge det.txt; each chunk is sent with its frames\' lines (as '
                        'multipart: the chunk as field "data", its lines as field "detections")')
    p.add_argument('--sequence-id', help='sequence id (default: a new random one)')
    p.add_argument('--chunk-codec', choices=CHUNK_CODECS, default='lossless',
                   help='lossless (default: results equal the whole video sent at once) or h264 '
                        '(smaller, lossy)')
    p.add_argument('--timeout', type=float, default=600, help='seconds to wait for one chunk (default 600)')
    live = p.add_argument_group('live sources')
    live.add_argument('--max-lag-seconds', type=float, default=2.0, metavar='S',
                      help='when the frames waiting to be sent span more than S seconds (the '
                           'server falls behind), drop the oldest (default 2)')
    live.add_argument('--rtsp-transport', choices=RTSP_TRANSPORTS, default='tcp',
                      help='RTSP over tcp (default) or udp')
    live.add_argument('--source-timeout', type=float, default=10.0, metavar='S',
                      help='seconds without data before the source counts as lost (default 10)')
    live.add_argument('--reconnect-seconds', type=float, default=1.0, metavar='S',
                      help='first wait before reopening a lost source; doubles per try (default 1)')
    live.add_argument('--reconnect-timeout', type=float, default=30.0, metavar='S',
                      help='stop when the source is not back after S seconds (default 30; '
                           '0: the source\'s end or loss ends the stream)')
    live.add_argument('--source-option', action='append', default=[], metavar='KEY=VALUE',
                      help='an FFmpeg option for opening the source (repeatable), e.g. '
                           'live_start_index=0 for HLS')
    p.add_argument('--quiet', action='store_true', help='no progress bar or status lines')


def main(args):
    from ..serving.stream_client import SequenceClient

    _check(args)
    make_output_folders(args.output, args.json, args.jsonl, args.mot)
    live = is_live(args.video)
    det_lines = None
    if args.detections:
        if live:
            raise InputError('--detections needs a file source: its boxes are numbered by the file\'s frames')
        from ..detections import det_txt_lines
        det_lines = det_txt_lines(Path(args.detections))   # checked before anything is sent
    seq_id = args.sequence_id or f'mmtrack-serve-stream-{uuid.uuid4().hex[:16]}'
    start = time.perf_counter()
    source = LiveInput(args) if live else FileInput(args)
    try:
        streamer = SequenceClient(args.url, args.model, seq_id, score_thr=args.score_thr,
                                  init_bbox=args.init_bbox, timeout=args.timeout)
        ended = _stream(args, source, streamer, det_lines)
    finally:
        source.close()
    if not streamer.frames:
        raise InputError(f'{args.video} has no decodable frames')
    if args.json:
        from ..results import results_json, write_json
        info = dict(source.info, num_frames=len(streamer.frames))
        write_json(results_json(info, streamer.task, streamer.classes, streamer.frames), args.json)
    seconds = time.perf_counter() - start
    n = len(streamer.frames)
    objects = sum(len(f['objects']) for f in streamer.frames)
    line = (f'streamed {n} frames in {streamer.chunks} chunks as sequence {seq_id} in {seconds:.1f} s '
            f'({n / seconds:.2f} fps), {objects} objects')
    if live:
        line += f', {source.live.dropped} dropped, {source.live.reconnects} reconnects'
    print(line + (f'; {ended}' if ended else ''))
    for label, path in (('video', args.output), ('json', args.json), ('jsonl', args.jsonl),
                        ('mot', args.mot)):
        if path:
            print(f'{label}: {Path(path).resolve()}')
    if live and source.live.error:
        raise MMTrackServeError(source.live.error)
    return 0


def _check(args):
    if args.chunk_frames is not None and args.chunk_frames < 1:
        raise InputError(f'--chunk-frames must be 1 or more, got {args.chunk_frames}')
    for name in ('chunk_seconds', 'segment_seconds', 'max_lag_seconds', 'source_timeout',
                 'reconnect_seconds'):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise InputError(f'--{name.replace("_", "-")} must be above 0, got {value:g}')
    if args.reconnect_timeout < 0:
        raise InputError(f'--reconnect-timeout must be 0 or more, got {args.reconnect_timeout:g}')
    if args.score_thr is not None and not 0.0 <= args.score_thr <= 1.0:
        raise InputError(f'--score-thr must be between 0 and 1, got {args.score_thr}')
    if args.segment_seconds and not args.output:
        raise InputError('--segment-seconds needs --output (the name the segments are numbered from)')
    for option in args.source_option:
        if '=' not in option or option.startswith('='):
            raise InputError(f'--source-option takes KEY=VALUE, got {option!r}')


def _stream(args, source, streamer, det_lines):
    """Sends the source's chunks and writes what comes back; returns why the
    stream ended (for a live source), None for a file read to its end."""
    from ..serving.stream_client import chunk_det_txt, encode_chunk
    from ..stream_outputs import StreamOutputs
    outputs = StreamOutputs(width=source.width, height=source.height, fps=source.fps, jsonl=args.jsonl,
                            mot=args.mot, video=args.output, segment_seconds=args.segment_seconds)
    status = source.status(not args.quiet)
    drain = False
    with GracefulStop() as stop:
        try:
            for chunk, last in source.chunks(stop.requested):
                if not chunk:                    # stopped (or the source ended) between chunks
                    streamer.end()
                    break
                images = [getattr(item, 'image', item) for item in chunk]
                body = encode_chunk(images, source.fps, args.chunk_codec)
                detections = None if det_lines is None else \
                    chunk_det_txt(det_lines, len(streamer.frames), len(chunk))
                answer = streamer.send(body, len(chunk), last, detections)
                outputs.add(chunk, answer['frames'], time.time())
                status(chunk, answer['frames'])
                if last:
                    break
            drain = True
        except BaseException:
            streamer.abandon()
            raise
        finally:
            status.close()
            outputs.close(drain=drain)
    return source.ended_reason(stop.requested())


class GracefulStop:
    """SIGINT (Ctrl-C) and SIGTERM stop the stream after the chunk in flight:
    its last chunk goes out as the sequence's end, the outputs are finalised.
    A second signal interrupts at once (KeyboardInterrupt: the sequence is
    abandoned, the outputs still closed)."""
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self._count = 0
        self._previous = {}

    def _handle(self, signum, frame):
        self._count += 1
        if self._count > 1:
            raise KeyboardInterrupt
        print(f'mmtrack-serve stream: {signal.Signals(signum).name}: ending the sequence '
              '(again to abandon it)', file=sys.stderr, flush=True)

    def requested(self):
        return self._count > 0

    def __enter__(self):
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class FileInput:
    """A file, read as fast as the server takes it, every frame sent."""

    def __init__(self, args):
        from ..video import VideoReader
        self.reader = VideoReader(args.video)
        self.width, self.height, self.fps = self.reader.width, self.reader.height, self.reader.fps
        self.info = self.reader.info()
        self.size = args.chunk_frames or (max(1, round(args.chunk_seconds * float(self.fps)))
                                          if args.chunk_seconds else FILE_CHUNK_FRAMES)

    def chunks(self, stopping):
        """(frames, is_last) per chunk; reads one chunk ahead to know the last.
        A stop yields ([], True) in place of the next chunk."""
        pending = []
        for frame in self.reader:
            pending.append(frame)
            if len(pending) == self.size + 1:
                if stopping():
                    break
                yield pending[:self.size], False
                pending = pending[self.size:]
        if stopping():
            yield [], True
        elif pending:
            yield pending, True

    def status(self, enabled):
        from tqdm import tqdm
        bar = tqdm(total=self.reader.num_frames, unit='frame', disable=not enabled, dynamic_ncols=True)
        return _Status(lambda chunk, frames: bar.update(len(chunk)), bar.close)

    def ended_reason(self, stopped):
        return 'stopped by a signal' if stopped else None

    def close(self):
        self.reader.close()


class LiveInput:
    """A live source, read in a thread (``live_source.LiveSource``)."""

    def __init__(self, args):
        from ..live_source import LiveSource, lag_bound_error
        options = dict(option.split('=', 1) for option in args.source_option)
        if not args.quiet:
            print(f'opening {args.video}', flush=True)
        self.live = LiveSource(args.video, rtsp_transport=args.rtsp_transport, options=options,
                               timeout_s=args.source_timeout, max_lag_s=args.max_lag_seconds,
                               reconnect_s=args.reconnect_seconds,
                               reconnect_timeout_s=args.reconnect_timeout)
        self.width, self.height, self.fps = self.live.width, self.live.height, self.live.fps
        self.info = {'width': self.width, 'height': self.height, 'fps': float(self.fps),
                     'num_frames': None}
        self.frames = args.chunk_frames
        self.seconds = None if self.frames else (args.chunk_seconds or LIVE_CHUNK_SECONDS)
        problem = lag_bound_error(self.frames, self.seconds, self.fps, args.max_lag_seconds)
        if problem:
            self.live.close()
            raise InputError(problem)
        if not args.quiet:
            print(f'{args.video}: {self.width}x{self.height} at {float(self.fps):g} fps', flush=True)

    def chunks(self, stopping):
        while True:
            chunk, last = self.live.next_chunk(self.frames, self.seconds, stopping)
            yield chunk, last
            if last:
                return

    def status(self, enabled):
        return _LiveStatus(self.live) if enabled else _Status(lambda chunk, frames: None, lambda: None)

    def ended_reason(self, stopped):
        if stopped:
            return 'stopped by a signal'
        return f'source: {self.live.ended}' if self.live.ended else None

    def close(self):
        self.live.close()


class _Status:
    def __init__(self, update, close):
        self._update, self.close = update, close

    def __call__(self, chunk, frames):
        self._update(chunk, frames)


class _LiveStatus:
    """One line per chunk: frames/s in (captured) and tracked since the
    previous line, the chunk's capture-to-result latency (its newest and
    oldest frame), frames dropped so far, tracks in its last frame."""

    def __init__(self, live):
        self.live = live
        self.at, self.captured, self.chunks = time.time(), 0, 0

    def __call__(self, chunk, frames):
        now = time.time()
        elapsed = max(now - self.at, 1e-6)
        captured = self.live.captured
        tracks = {o['track_id'] for o in frames[-1]['objects']} - {None} if frames else set()
        print(f'chunk {self.chunks}: {(captured - self.captured) / elapsed:5.1f} fps in, '
              f'{len(chunk) / elapsed:5.1f} fps tracked, latency {now - chunk[-1].captured_at:.2f}-'
              f'{now - chunk[0].captured_at:.2f} s, {self.live.dropped} dropped, '
              f'{len(tracks)} tracks', flush=True)
        self.at, self.captured, self.chunks = now, captured, self.chunks + 1

    def close(self):
        pass
