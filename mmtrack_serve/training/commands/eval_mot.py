"""`mmtrack-serve eval-mot`: MOTChallenge metrics from gt and result txt files."""
import json
from pathlib import Path

from ...errors import InputError
from ..mot_metrics import evaluate_mot_dirs, format_table


def add_arguments(parser):
    parser.add_argument('--gt-dir', required=True,
                        help='ground truth: GT_DIR/SEQ/gt/gt.txt or GT_DIR/SEQ/gt.txt')
    parser.add_argument('--res-dir', required=True,
                        help='tracker results: RES_DIR/SEQ.txt for every gt sequence')
    parser.add_argument('--out', help='also write the metrics to this JSON file')
    parser.add_argument('--iou-thr', type=float, default=0.5,
                        help='minimum IoU for a match (default: 0.5)')


def main(args):
    if not 0.0 < args.iou_thr <= 1.0:
        raise InputError(f'--iou-thr must be in (0, 1], got {args.iou_thr}')
    metrics = evaluate_mot_dirs(args.gt_dir, args.res_dir, iou_thr=args.iou_thr)
    print(format_table(metrics))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2) + '\n')
        print(f'metrics written to {out}')
    return 0
