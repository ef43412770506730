"""`mmtrack-serve train --launcher pytorch` under a real torchrun: 2 ranks on the
CPU (gloo), the shrunk demo model of test_train for one epoch of 4 iterations
per rank, with the distributed validation hook. What it must show: both ranks
joined and split the data, rank 0 alone logs (each loss once) and writes the
one checkpoint, and that checkpoint tracks like any other.

Not tested here: nccl on GPUs, several machines (no GPU, one machine)."""
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
import torch

from mmtrack_serve.api import track_video
from mmtrack_serve.models import load_model
from mmtrack_serve.training.demo_model import CONFIG, data_options

from .test_train import SHRINK, as_cli_options, worlds  # noqa: F401 - a fixture

FRAMES = 8
RANKS = 2
# 4 videos x 8 frames = 32 images, 4 a batch: 8 batches, 4 on each rank
ITERS_PER_RANK = 4
LOG_INTERVAL = 2
TIMEOUT_S = 300
# variables of an outer torchrun/launch that would confuse the one started here
LAUNCHER_VARIABLES = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'GROUP_RANK',
                      'MASTER_ADDR', 'MASTER_PORT', 'TORCHELASTIC_RUN_ID')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(argv, cwd, module=True):
    """``python -m torch.distributed.run`` on RANKS CPU processes, one thread
    each, of ``python -m mmtrack_serve.cli ARGV`` (or of the script ``ARGV``
    when not ``module``); returns ``(returncode, stdout, stderr)``."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE')
    if 'lo' in {name for _, name in socket.if_nameindex()}:
        env.setdefault('GLOO_SOCKET_IFNAME', 'lo')  # the ranks talk over loopback only
    command = [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1',
               '--nproc_per_node', str(RANKS), '--master_addr', '127.0.0.1',
               '--master_port', str(free_port()),
               *(['-m', 'mmtrack_serve.cli'] if module else []), *argv]
    # its own process group: a timeout ends torchrun and its ranks, nothing else
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f'torchrun did not finish in {TIMEOUT_S} s:\n{stderr[-3000:]}')
    return process.returncode, stdout, stderr


@pytest.fixture(scope='module')
def trained(worlds, tmp_path_factory):
    """``(work_dir, stdout, stderr)`` of the 2-rank training. The config says
    ``dist_params = dict(backend='nccl')``: on the CPU that becomes gloo."""
    work_dir = tmp_path_factory.mktemp('work')
    options = dict(data_options(worlds / 'train', worlds / 'val'), **SHRINK)
    options['log_config.interval'] = LOG_INTERVAL
    argv = ['train', str(CONFIG), '--launcher', 'pytorch', '--device', 'cpu',
            '--work-dir', str(work_dir), '--seed', '0',
            '--cfg-options', *as_cli_options(options)]
    code, stdout, stderr = torchrun(argv, cwd=tmp_path_factory.mktemp('cwd'))
    assert code == 0, stderr[-5000:]
    return work_dir, stdout, stderr


def test_both_ranks_train_with_gloo(trained):
    work_dir, _, _ = trained
    log = next(work_dir.glob('*.log')).read_text()
    assert f'Distributed training: True, device: cpu, backend: gloo, world size: {RANKS}' in log
    assert "dist_params.backend is 'nccl' in the config; training on the CPU uses 'gloo'" in log
    ranks = re.search(r'Ranks: (.*)', log).group(1).split('; ')
    assert [r.split(':')[0] for r in ranks] == ['0', '1']
    assert len({re.search(r'pid (\d+)', r).group(1) for r in ranks}) == RANKS
    # each rank trained on its half of the images: 4 iterations, not 8
    checkpoint = torch.load(work_dir / 'latest.pth', map_location='cpu', weights_only=False)
    assert checkpoint['meta']['epoch'] == 1
    assert checkpoint['meta']['iter'] == ITERS_PER_RANK


def test_rank_0_alone_logs_and_saves(trained):
    work_dir, stdout, stderr = trained
    log = next(work_dir.glob('*.log')).read_text()
    for it in range(LOG_INTERVAL, ITERS_PER_RANK + 1, LOG_INTERVAL):
        line = re.compile(rf'Epoch \[1\]\[{it}/{ITERS_PER_RANK}\].*loss: ')
        # once per interval, in the log file and on the console of all ranks together
        assert len(line.findall(log)) == 1, log[-3000:]
        assert len(line.findall(stderr)) == 1, stderr[-3000:]
    assert len(re.findall(r'Epoch \[1\]\[\d+/\d+\].*loss: ', log)) == \
        ITERS_PER_RANK // LOG_INTERVAL
    # exactly one checkpoint, latest.pth pointing at it, announced once
    written = sorted(p.name for p in work_dir.glob('*.pth') if not p.is_symlink())
    assert written == ['epoch_1.pth'], written
    assert (work_dir / 'latest.pth').resolve() == (work_dir / 'epoch_1.pth').resolve()
    assert stdout.count('last checkpoint: ') == 1, stdout
    assert f'last checkpoint: {work_dir / "epoch_1.pth"}' in stdout
    # the distributed validation hook ran: each rank tracked one video, rank 0 scored both
    records = [json.loads(line) for line in next(work_dir.glob('*.log.json')).open()][1:]
    assert any(r.get('mode') == 'val' and 'mAP' in r for r in records), records


def test_checkpoint_loads_and_tracks(trained, worlds):
    work_dir, _, _ = trained
    model = load_model(str(work_dir / f'{CONFIG.stem}.py'), str(work_dir / 'latest.pth'))
    assert model.classes == ['square', 'circle', 'triangle']
    results = track_video(model, str(worlds / 'val' / 'videos' / 'video_0000.mp4'),
                          score_thr=0.0)
    assert results['task'] == 'mot' and len(results['frames']) == FRAMES


# One step of a 3-weight model on each rank, on different data, through the
# wrapper that training uses: mmcv's DataContainer batches, train_step and forward.
WRAPPER_SCRIPT = """
import json, sys
import torch, torch.distributed as dist
from mmcv.parallel import DataContainer
from mmtrack_serve.training import distributed

class Model(torch.nn.Module):
    def __init__(self, rank):
        super().__init__()
        torch.manual_seed(rank)  # different weights on each rank until wrapped
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, img, img_metas, return_loss=True):
        assert isinstance(img, torch.Tensor) and isinstance(img_metas, list)
        out = self.linear(img).sum()
        return dict(loss=out) if return_loss else out.detach()

    def train_step(self, data, optimizer):
        return dict(loss=self(**data)['loss'], log_vars={}, num_samples=1)

dist.init_process_group('gloo')
rank = dist.get_rank()
model = distributed.wrap(Model(rank), 'cpu')
data = dict(img=DataContainer([torch.full((2, 3), rank + 1.0)], stack=True),
            img_metas=DataContainer([[dict(rank=rank)]], cpu_only=True))
model.train_step(data, None)['loss'].backward()
mine = dict(weight=model.module.linear.weight.tolist(),
            grad=model.module.linear.weight.grad.tolist(),
            test=model(return_loss=False, **data).item())
gathered = [None] * dist.get_world_size()
dist.all_gather_object(gathered, mine)
if rank == 0:
    with open(sys.argv[1], 'w') as f:
        json.dump(gathered, f)
dist.destroy_process_group()
"""


def test_gradients_are_averaged_across_ranks(tmp_path):
    script, out = tmp_path / 'wrapped_step.py', tmp_path / 'ranks.json'
    script.write_text(WRAPPER_SCRIPT)
    code, _, stderr = torchrun([str(script), str(out)], cwd=tmp_path, module=False)
    assert code == 0, stderr[-5000:]
    rank0, rank1 = json.loads(out.read_text())
    assert rank0['weight'] == rank1['weight']  # rank 0's weights, broadcast when wrapped
    # d(sum(w . x))/dw over 2 rows of x = 2x: 2 on rank 0, 4 on rank 1; each gets the mean
    assert rank0['grad'] == rank1['grad'] == [[3.0, 3.0, 3.0]]
    assert rank0['test'] != rank1['test']  # forward ran on each rank's own batch


@pytest.mark.parametrize('device, dist_params, backend, note', [
    ('cpu', {'backend': 'nccl'}, 'gloo', "dist_params.backend is 'nccl' in the config"),
    ('cpu', {'backend': 'gloo'}, 'gloo', None),
    ('cpu', None, 'gloo', None),
    ('cuda', {'backend': 'nccl'}, 'nccl', None),
    ('cuda', {}, 'nccl', None),
    ('cuda', {'backend': 'gloo'}, 'gloo', None),
])
def test_backend_follows_the_device(device, dist_params, backend, note, monkeypatch):
    """No process group is made: what would be asked of torch is recorded."""
    from mmtrack_serve.training import distributed
    calls = []
    monkeypatch.setattr(distributed.dist, 'init_process_group',
                        lambda **kwargs: calls.append(('init', kwargs)))
    monkeypatch.setattr(distributed.torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(distributed.torch.cuda, 'set_device',
                        lambda index: calls.append(('set_device', index)))
    monkeypatch.setenv('LOCAL_RANK', '1')
    chosen, said = distributed.init_process_group(device, dist_params)
    assert chosen == backend
    assert (said is None) if note is None else (note in said)
    # a GPU rank takes the GPU of its local rank (mmcv: global rank % GPU count); a CPU rank none
    expected = [('set_device', 1)] if device == 'cuda' else []
    assert calls == expected + [('init', {'backend': backend})]


def test_more_ranks_than_gpus_is_a_user_error(monkeypatch):
    from mmtrack_serve.errors import InputError
    from mmtrack_serve.training import distributed
    monkeypatch.setattr(distributed.torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setenv('LOCAL_RANK', '2')
    with pytest.raises(InputError, match='--nproc_per_node 2'):
        distributed.init_process_group('cuda', {'backend': 'nccl'})
