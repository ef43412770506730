"""`mmtrack-serve parity` (and tools/torchserve/test_torchserve.py): served
results against a local PyTorch run, frame by frame. Exit 0 only when they agree."""
from pathlib import Path

from ..defaults import SCORE_THR_HELP
from ..errors import InputError


def add_arguments(p):
    p.add_argument('video', help='video file')
    p.add_argument('config', help='config the .mar was made from')
    p.add_argument('checkpoint', nargs='?', help='checkpoint the .mar was made from')
    p.add_argument('model_name', help='model name on the server')
    p.add_argument('--inference-addr', default='127.0.0.1:8080', help='server address (default 127.0.0.1:8080)')
    p.add_argument('--result-video', help='also save the served annotated mp4 here')
    p.add_argument('--device', default='cpu', help="local device, 'cpu' or 'cuda:0'")
    p.add_argument('--score-thr', type=float, default=None, help=SCORE_THR_HELP)
    p.add_argument('--init-bbox', help='SOT: x1,y1,x2,y2 in the first frame')
    p.add_argument('--detections', metavar='DET_TXT',
                   help='public-detection MOT models: the video\'s boxes as MOTChallenge det.txt')


def main(args):
    from ..api import track_video
    from ..serving.client import predict
    from ..models import load_model
    from ..serving.parity import BOX_TOLERANCE_PX, SCORE_TOLERANCE, compare

    options = {'score_thr': args.score_thr, 'init_bbox': args.init_bbox}
    detections = Path(args.detections) if args.detections else None
    if detections is not None and not detections.is_file():
        raise InputError(f'no such detections file: {detections}')
    served = predict(args.inference_addr, args.model_name, args.video, 'json', options,
                     detections=detections)
    model = load_model(args.config, args.checkpoint, args.device)
    local = track_video(model, args.video, score_thr=args.score_thr, init_bbox=args.init_bbox,
                        detections=detections)
    report = compare(served, local)
    print(report.table())
    if args.result_video:
        Path(args.result_video).write_bytes(
            predict(args.inference_addr, args.model_name, args.video, 'mp4', options,
                    detections=detections))
        print(f'served video: {Path(args.result_video).resolve()}')
    verdict = 'AGREE' if report.ok else 'DIFFER'
    print(f'{verdict}: {len(report.frames)} frames (served {len(served["frames"])}, local '
          f'{len(local["frames"])}), {report.count_mismatches} frames with other object counts, '
          f'{report.id_mismatches} id/label mismatches, max box diff {report.max_box_diff:.2e} px '
          f'(tolerance {BOX_TOLERANCE_PX}), max score diff {report.max_score_diff:.2e} (tolerance {SCORE_TOLERANCE})')
    return 0 if report.ok else 1
