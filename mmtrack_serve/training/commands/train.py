"""`mmtrack-serve train`: train a model from a config, as MMTracking's tools/train.py.

Single process, CPU or one GPU:

    mmtrack-serve train CONFIG --work-dir work_dirs/x [--device cpu]

Several processes under torchrun (as MMTracking's tools/dist_train.sh, which
used torch.distributed.launch): one per GPU (backend nccl), or several on the
CPU (--device cpu, or no GPU: backend gloo, whatever the config's dist_params
say). On one machine:

    torchrun --nnodes 1 --nproc_per_node 8 --master_port 29500 \\
        -m mmtrack_serve.cli train CONFIG --launcher pytorch --work-dir DIR

On N machines, the same command on each, HOST:29500 being a port of one of
them that the others reach (c10d numbers the machines itself):

    torchrun --nnodes N --nproc_per_node 8 \\
        --rdzv-backend c10d --rdzv-endpoint HOST:29500 --rdzv-id JOB \\
        -m mmtrack_serve.cli train CONFIG --launcher pytorch --work-dir DIR

(or numbered by hand: --node_rank 0..N-1 --master_addr HOST --master_port 29500
in place of the --rdzv-* options; HOST is then the machine of --node_rank 0).

The batch size is per process: the config's data.samples_per_gpu. Rank 0 logs
and writes the checkpoints, into DIR on its machine; validation collects the
ranks' results through files in DIR, so on several machines DIR must be a
shared folder.
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
                        help='pytorch: distributed under torchrun, one process per GPU or '
                             'several on the CPU (see below); none: a single process')
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
    # torchrun sets these; torch.distributed.launch too (with --local_rank, below)
    missing = [name for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if name not in os.environ]
    if args.launcher != 'none' and missing:
        raise InputError(f'--launcher pytorch must run under torchrun ({", ".join(missing)} '
                         f'{"is" if len(missing) == 1 else "are"} unset); '
                         'see `mmtrack-serve train --help`')
    if args.launcher == 'none' and 'TORCHELASTIC_RUN_ID' in os.environ \
            and int(os.environ.get('WORLD_SIZE', 1)) > 1:
        # each process would train alone, all into the same work dir
        raise InputError('running under torchrun with WORLD_SIZE '
                         f'{os.environ["WORLD_SIZE"]}: add --launcher pytorch')
    # torch.distributed.launch passes --local_rank; torchrun sets LOCAL_RANK.
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    from ..train import train
    checkpoint = train(args.config, work_dir=args.work_dir, seed=args.seed,
                       cfg_options=parse_cfg_options(args.cfg_options), launcher=args.launcher,
                       resume_from=args.resume_from, device=args.device,
                       validate=not args.no_validate, deterministic=args.deterministic,
                       gpu_id=args.gpu_id)
    if checkpoint is not None and (args.launcher == 'none' or os.environ['RANK'] == '0'):
        print(f'last checkpoint: {checkpoint}')
    return 0
