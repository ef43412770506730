"""`mmtrack-serve COMMAND ...`: one entry point, one module per command.

Command modules are imported only when their command runs, so `--help` is fast
and the core's commands never load serving or training code.
Each module defines ``add_arguments(parser)`` and ``main(args) -> int``.
"""
import argparse
import importlib
import sys

from .errors import MMTrackServeError
from .quiet import quiet_warnings
from .tuning import tune_malloc

# name: (module, one-line help)
COMMANDS = {
    'run': ('mmtrack_serve.commands.run',
            'track a video (or frame folder) locally: annotated mp4, JSON, MOT txt'),
    'serve': ('mmtrack_serve.commands.serve',
              'start TorchServe on a model store and wait until models are READY'),
    'stop': ('mmtrack_serve.commands.stop', 'stop the TorchServe started by `serve`'),
    'parity': ('mmtrack_serve.commands.parity',
               'compare served results with a local run, frame by frame (test_torchserve.py)'),
    'stream': ('mmtrack_serve.commands.stream',
               'send a video to a server in chunks as one sequence and join the results'),
    'train': ('mmtrack_serve.training.commands.train', 'train a model from a config'),
    'test': ('mmtrack_serve.training.commands.test', 'evaluate a model on a dataset'),
    'eval-mot': ('mmtrack_serve.training.commands.eval_mot',
                 'MOTChallenge metrics from gt and result txt files'),
    'publish': ('mmtrack_serve.training.commands.publish',
                'strip a checkpoint for release, hash in its name'),
    'mot2coco': ('mmtrack_serve.training.commands.mot2coco',
                 'convert a MOTChallenge folder to CocoVID json'),
    'demo-model': ('mmtrack_serve.training.commands.demo_model',
                   'synthesize, train, publish and score the demo model'),
    'synth': ('mmtrack_serve.training.commands.synth',
              'write the synthetic tracking world (videos, CocoVID, MOT gt)'),
}


def build_parser(load=None):
    """Parser with every command; ``load`` names the one whose arguments to add."""
    parser = argparse.ArgumentParser(
        prog='mmtrack-serve',
        description='Serve MMTracking models with TorchServe, and track videos locally.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == load:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    quiet_warnings()
    tune_malloc()
    name = next((a for a in argv if not a.startswith('-')), None)
    parser = build_parser(load=name if name in COMMANDS else None)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return module.main(args) or 0
    except MMTrackServeError as e:
        print(f'mmtrack-serve {args.command}: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'mmtrack-serve {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
