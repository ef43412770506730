"""`mmtrack-serve train`: train a model from a config, as MMTracking's tools/train.py.

Single process, CPU or one GPU:

    mmtrack-serve train CONFIG --work-dir work_dirs/x [--device cpu]

Several GPUs or nodes: one process per GPU under torchrun, as MMTracking's
tools/dist_train.sh (which used torch.distributed.launch):

    torchrun --nnodes=1 --node_rank=0 --nproc_per_node=8 \\
        --master_addr=127.0.0.1 --master_port=29500 \\
        -m mmtrack_serve.cli train CONFIG --launcher pytorch --work-dir DIR

(on N nodes: --nnodes=N and --node_rank=0..N-1, the same --master_addr). The
batch size is per GPU: the config's data.samples_per_gpu.
"""
import argparse
import os

from ...errors import InputError
from ...mmtrack_compat import parse_cfg_options


def add_arguments(parser):
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split('\n', 2)[2]  # the usage examples
    parser.add_argument('config', help='config file, or the name of a config shipped in mmtrack')
    parser.add_argument('--work-dir', help='where checkpoints and logs go '
                                           '(default: the config\'s, else work_dirs/CONFIG)')
    parser.add_argument('--seed', type=int,
                        help='random seed (default: the config\'s, else random)')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic cuDNN algorithms')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override config entries, e.g. data.samples_per_gpu=4 '
                             'optimizer.lr=0.005')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help='pytorch: distributed, one process per GPU under torchrun '
                             '(see below); none: a single process')
    parser.add_argument('--resume-from', help='checkpoint to resume from (weights, optimizer, '
                                              'epoch/iteration)')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        help='default: cuda when a GPU is available, else cpu')
    parser.add_argument('--gpu-id', type=int, default=0,
                        help='GPU to use without a launcher (default: 0)')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip the evaluation during training that the config asks for')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)


def main(args):
    if args.launcher != 'none' and 'RANK' not in os.environ:
        raise InputError('--launcher pytorch must run under torchrun (RANK, WORLD_SIZE, '
                         'MASTER_ADDR are unset); see `mmtrack-serve train --help`')
    # torch.distributed.launch passes --local_rank; torchrun sets LOCAL_RANK.
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    from ..train import train
    checkpoint = train(args.config, work_dir=args.work_dir, seed=args.seed,
                       cfg_options=parse_cfg_options(args.cfg_options), launcher=args.launcher,
                       resume_from=args.resume_from, device=args.device,
                       validate=not args.no_validate, deterministic=args.deterministic,
                       gpu_id=args.gpu_id)
    if checkpoint is not None:
        print(f'last checkpoint: {checkpoint}')
    return 0
