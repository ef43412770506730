"""`mmtrack-serve test`: evaluate a model on a dataset, as MMTracking's tools/test.py.

    mmtrack-serve test CONFIG --checkpoint CKPT --eval bbox track [--out results.pkl]
    mmtrack-serve test CONFIG --results results.pkl --eval bbox     # no model run

The dataset is the config's data.test (point it elsewhere with --cfg-options
data.test.ann_file=... data.test.img_prefix=...). One process, CPU or one GPU.
"""
import json
from pathlib import Path

from ...errors import InputError
from ...mmtrack_compat import parse_cfg_options
from ..mot_metrics import format_table

EVAL_CHOICES = ('bbox', 'segm', 'track')


def add_arguments(parser):
    parser.add_argument('config', help='config file, or the name of a config shipped in mmtrack')
    parser.add_argument('--checkpoint', help='model weights (without: random weights)')
    parser.add_argument('--results', metavar='PKL',
                        help='evaluate these saved results (from --out) instead of running '
                             'the model')
    parser.add_argument('--eval', nargs='+', choices=EVAL_CHOICES, default=[],
                        help='metrics: bbox (detection mAP), segm (mask mAP), '
                             'track (MOTChallenge: MOTA, IDF1...)')
    parser.add_argument('--out', metavar='PKL', help='save the raw results as a pickle')
    parser.add_argument('--out-json', metavar='JSON', help='write the metrics as JSON')
    parser.add_argument('--gt-dir',
                        help="MOT ground truth for 'track': GT_DIR/SEQ/gt/gt.txt (default: "
                             "found next to the images or the annotations, else taken from "
                             "the annotations)")
    parser.add_argument('--iou-thr', type=float, default=0.5,
                        help="minimum IoU of a match for 'track' (default: 0.5)")
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override config entries')
    parser.add_argument('--eval-options', nargs='+', metavar='KEY=VALUE',
                        help='keyword arguments for dataset.evaluate')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        help='default: cuda when a GPU is available, else cpu')


def main(args):
    if not (args.eval or args.out):
        raise InputError('nothing to do: give --eval METRIC... and/or --out results.pkl')
    if args.out and not args.out.endswith(('.pkl', '.pickle')):
        raise InputError(f'--out must be a .pkl file, got {args.out}')
    if args.results and args.checkpoint:
        raise InputError('--results evaluates saved results: it takes no --checkpoint')
    if args.results and not Path(args.results).is_file():
        raise InputError(f'results file not found: {args.results}')

    import mmcv

    from .. import evaluation, tool_setup
    cfg, family = tool_setup.load_tool_config(args.config, parse_cfg_options(args.cfg_options))
    tool_setup.setup_multi_processes(cfg)
    dataset = evaluation.load_test_dataset(cfg)
    if args.results:
        outputs = mmcv.load(args.results)
    else:
        device = args.device or tool_setup.default_device()
        tool_setup.check_device(device)
        outputs = evaluation.predict(cfg, family, dataset, args.checkpoint, device)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        mmcv.dump(outputs, args.out)
        print(f'results written to {args.out}')
    if not args.eval:
        return 0

    report = evaluation.evaluate(dataset, outputs, args.eval, cfg, gt_dir=args.gt_dir,
                                 eval_options=parse_cfg_options(args.eval_options),
                                 iou_thr=args.iou_thr)
    print(format_report(report))
    if args.out_json:
        out = Path(args.out_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + '\n')
        print(f'metrics written to {out}')
    return 0


def format_report(report):
    lines = []
    for metric, values in report.items():
        lines.append(f'== {metric}')
        if metric == 'track':
            lines.append(format_table(values))
        else:
            lines += [f'{key}: {_cell(value)}' for key, value in values.items()]
    return '\n'.join(lines)


def _cell(value):
    return f'{value:.4f}' if isinstance(value, float) else str(value)
