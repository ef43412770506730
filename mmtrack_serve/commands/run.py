"""`mmtrack-serve run`: MMTracking's demo_mot_vis.py, demo_vid.py and demo_sot.py in one."""
import time
from pathlib import Path

from .. import limits
from ..defaults import SCORE_THR_HELP
from ..errors import InputError
from ..trackers import TRACKER_IMPL_HELP, TRACKER_IMPLS
from . import make_output_folders



def add_arguments(p):
    p.add_argument('config', help='config file, or the name of a config shipped in mmtrack')
    p.add_argument('--checkpoint', help='checkpoint file (default: random weights, with a warning)')
    p.add_argument('--input', required=True, help='video file or folder of frames')
    p.add_argument('--output', help='annotated H.264 mp4 to write')
    p.add_argument('--json', help='results as JSON')
    p.add_argument('--mot', help='results as MOTChallenge txt')
    p.add_argument('--score-thr', type=float, default=None, help=SCORE_THR_HELP)
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda:0'")
    p.add_argument('--init-bbox', help='SOT: the target in the first frame, x1,y1,x2,y2 pixels')
    p.add_argument('--detections', metavar='DET_TXT',
                   help='public-detection MOT configs (*-public*): the boxes supplied with the '
                        'video, as MOTChallenge det.txt (frame,id,x,y,w,h,score; frames from 1)')
    p.add_argument('--fps', type=float, help='frame rate of a frame folder (default 30) or override')
    p.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE',
                   help='override config settings, e.g. model.tracker.match_iou_thr=0.3')
    p.add_argument('--detector-batch', type=int, default=None, metavar='N',
                   help='MOT: frames whose detector runs in one pass; results are those of frame '
                        'by frame (default: by input size, up to 8 small inputs and 1 large one; '
                        '1 turns it off)')
    p.add_argument('--tracker-impl', choices=TRACKER_IMPLS, default=None, help=TRACKER_IMPL_HELP)
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    limits.add_arguments(p)


def main(args):
    from ..api import save_results, track_video
    from ..detections import read_det_txt
    from ..mmtrack_compat import parse_cfg_options
    from ..models import load_model
    from ..video import VideoReader

    if args.detector_batch is not None and args.detector_batch < 1:
        raise InputError(f'--detector-batch must be 1 or more, got {args.detector_batch}')
    if not (args.output or args.json or args.mot):
        raise InputError('nothing to write: give --output, --json and/or --mot')
    try:
        request_limits = limits.from_arguments(args)
    except ValueError as e:
        raise InputError(str(e)) from None
    if all(value is None for value in request_limits.as_dict().values()):
        request_limits = None
    make_output_folders(args.output, args.json, args.mot)
    # Check the input before the slow model load.
    VideoReader(args.input).close()
    detections = read_det_txt(Path(args.detections)) if args.detections else None
    cfg_options = parse_cfg_options(args.cfg_options)
    model = load_model(args.config, args.checkpoint, args.device, cfg_options,
                       tracker_impl=args.tracker_impl)
    tracker = getattr(model.module, 'tracker', None)
    print(f'loaded {model.task.upper()} model {model.module.__class__.__name__} on {args.device} '
          f'({len(model.classes)} classes'
          + (f', tracker {type(tracker).__name__} ({model.tracker_impl})' if tracker is not None else '')
          + ')')
    start = time.perf_counter()
    results = track_video(model, args.input, output=args.output, score_thr=args.score_thr,
                          init_bbox=args.init_bbox, fps=args.fps, progress=not args.quiet,
                          detector_batch=args.detector_batch, detections=detections,
                          limits=request_limits)
    seconds = time.perf_counter() - start
    save_results(results, args.json, args.mot)
    n = results['video']['num_frames']
    objects = sum(len(f['objects']) for f in results['frames'])
    print(f'tracked {n} frames in {seconds:.1f} s ({n / seconds:.2f} fps), {objects} objects')
    for label, path in (('video', args.output), ('json', args.json), ('mot', args.mot)):
        if path:
            print(f'{label}: {Path(path).resolve()}')
    return 0

