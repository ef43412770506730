"""`mmtrack-serve stream`: send a video to a served model in chunks, as one
sequence (as a live source would), and join the chunks' results into one result
with the whole-video schema. The transport (and how chunks are encoded) is
``serving.stream_client``; the annotated video is drawn here, by the core's
drawing, from the results.
"""
import time
import uuid
from pathlib import Path

from ..defaults import SCORE_THR_HELP
from ..errors import InputError
from ..serving.stream_client import CHUNK_CODECS
from . import make_output_folders


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
    p.add_argument('--chunk-codec', choices=CHUNK_CODECS, default='lossless',
                   help='lossless (default: results equal the whole video sent at once) or h264 '
                        '(smaller, lossy)')
    p.add_argument('--timeout', type=float, default=600, help='seconds to wait for one chunk (default 600)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')


def main(args):
    from ..frame_loop import annotated
    from ..results import FrameResult, results_json, write_json, write_mot_txt
    from ..serving.stream_client import SequenceClient, chunk_det_txt, encode_chunk
    from ..video import VideoReader, VideoWriter

    if args.chunk_frames < 1:
        raise InputError(f'--chunk-frames must be 1 or more, got {args.chunk_frames}')
    if args.score_thr is not None and not 0.0 <= args.score_thr <= 1.0:
        raise InputError(f'--score-thr must be between 0 and 1, got {args.score_thr}')
    make_output_folders(args.output, args.json, args.mot)
    det_lines = None
    if args.detections:
        from ..detections import det_txt_lines
        det_lines = det_txt_lines(Path(args.detections))   # checked before anything is sent
    seq_id = args.sequence_id or f'mmtrack-serve-stream-{uuid.uuid4().hex[:16]}'
    start = time.perf_counter()
    with VideoReader(args.video) as reader:
        info = reader.info()
        streamer = SequenceClient(args.url, args.model, seq_id, score_thr=args.score_thr,
                                  init_bbox=args.init_bbox, timeout=args.timeout)
        writer = VideoWriter(args.output, reader.width, reader.height, reader.fps) \
            if args.output else None
        bar = _progress(not args.quiet, reader.num_frames)
        try:
            with annotated(writer) as write:
                for frames, last in _chunks(reader, args.chunk_frames):
                    body = encode_chunk(frames, reader.fps, args.chunk_codec)
                    detections = None if det_lines is None else \
                        chunk_det_txt(det_lines, len(streamer.frames), len(frames))
                    answer = streamer.send(body, len(frames), last, detections)
                    for frame, result in zip(frames, answer['frames']):
                        write(frame, FrameResult.from_json(result).objects)
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


def _progress(enabled, total):
    from tqdm import tqdm
    return tqdm(total=total, unit='frame', disable=not enabled, dynamic_ncols=True)
