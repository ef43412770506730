"""Distributed training under ``torchrun``, on GPUs (nccl) or CPUs (gloo).

What mmcv 1.7 does for ``--launcher pytorch``, and why it is not used as is:

- ``mmcv.runner.init_dist('pytorch')`` calls ``torch.cuda.set_device(rank %
  GPU count)`` before anything else: on a host without a GPU that is a
  division by zero, and on several nodes ``rank % count`` is only the local
  rank when every node runs as many processes as it has GPUs. Here: CUDA binds
  each process to the GPU of its ``LOCAL_RANK`` (torchrun's), the CPU binds to
  nothing, and the backend follows the device: nccl on GPUs (or what the
  config's ``dist_params`` say), gloo on the CPU whatever they say (nccl has
  no CPU path; the switch is logged).
- ``mmcv.parallel.MMDistributedDataParallel`` was written for torch 1.x: its
  ``forward`` reads an attribute torch 2 no longer has (the distributed
  validation hook calls it), its ``train_step`` skips the steps torch 2's
  ``DistributedDataParallel.forward`` takes before and after the module runs,
  and on the CPU (no ``device_ids``) it hands mmcv's ``DataContainer`` batches
  to the model unopened. ``DistributedModel`` runs ``train_step``,
  ``val_step`` and ``forward`` through torch's own ``forward``, with the
  batches opened as ``MMDataParallel`` opens them.

What mmcv and mmdet already do right on several processes, used as is: the
samplers split the data between ranks (mmdet's ``DistributedSampler`` puts its
seed on the device of ``mmdet.utils.get_device``, the CPU without a GPU); the
logger, the log hooks and the checkpoint hook write on rank 0 only (other
ranks log errors only); the distributed evaluation hook collects results
through files in ``WORK_DIR/.eval_hook`` (the GPU collection,
``evaluation.gpu_collect``, is switched off on the CPU).
"""
import inspect
import os
import socket

import torch
import torch.distributed as dist
from mmcv.parallel import MMDistributedDataParallel, scatter_kwargs
from torch.nn.parallel import DistributedDataParallel

from ..errors import InputError

def init_process_group(device, dist_params=None):
    """Joins the process group torchrun set up; returns ``(backend, note)``,
    ``note`` a line to log when the config's backend was not used (or None)."""
    params = dict(dist_params or {})
    wanted = params.pop('backend', None)
    note = None
    if device == 'cuda':
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise InputError(f'LOCAL_RANK {local_rank} but {count} GPU(s) visible: run at most '
                             f'one process per GPU (--nproc_per_node {count})')
        torch.cuda.set_device(local_rank)
        backend = wanted or 'nccl'
    else:
        backend = 'gloo'
        if wanted not in (None, 'gloo'):
            note = (f"dist_params.backend is {wanted!r} in the config; training on the CPU "
                    "uses 'gloo' instead")
    dist.init_process_group(backend=backend, **params)
    return backend, note


def members(device):
    """Every rank's ``'RANK: HOST pid PID DEVICE'``, gathered on every rank
    (a collective: all ranks call it)."""
    where = f'cuda:{torch.cuda.current_device()}' if device == 'cuda' else 'cpu'
    mine = f'{dist.get_rank()}: {socket.gethostname()} pid {os.getpid()} {where}'
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return gathered


def finish():
    """Leaves the process group (training waits for every rank at its end)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model, device, find_unused_parameters=False):
    """``model`` in a ``DistributedModel``: on this process' GPU, or on the CPU.
    Buffers (BatchNorm statistics) are not synced at each forward, as in
    mmtrack's ``train_model`` (``broadcast_buffers=False``, deprecated in torch
    2.13 for ``forward_sync_buffers=False``, which still syncs them once here)."""
    options = dict(find_unused_parameters=find_unused_parameters)
    if 'forward_sync_buffers' in inspect.signature(DistributedDataParallel).parameters:
        options['forward_sync_buffers'] = False
    else:
        options['broadcast_buffers'] = False
    if device == 'cuda':
        index = torch.cuda.current_device()
        return DistributedModel(model.cuda(index), device_ids=[index], **options)
    # CPU modules take no device_ids
    return DistributedModel(model.cpu(), **options)


class DistributedModel(MMDistributedDataParallel):
    """mmcv's ``MMDistributedDataParallel`` for torch 2, on GPUs or the CPU
    (see the module doc). Still an ``MMDistributedDataParallel`` and a
    ``DistributedDataParallel``: mmcv's hooks and checkpoints see a module
    wrapper and save ``.module``."""

    _mm_step = None  # the module's method that the next forward runs (None: forward)

    def forward(self, *inputs, **kwargs):
        inputs, kwargs = self._open_batch(inputs, kwargs)
        return DistributedDataParallel.forward(self, *inputs, **kwargs)

    def train_step(self, *inputs, **kwargs):
        return self._run_step('train_step', inputs, kwargs)

    def val_step(self, *inputs, **kwargs):
        return self._run_step('val_step', inputs, kwargs)

    def _run_step(self, name, inputs, kwargs):
        # through torch's forward, so that its reducer knows about this step
        self._mm_step = name
        try:
            return self(*inputs, **kwargs)
        finally:
            self._mm_step = None

    def _run_ddp_forward(self, *inputs, **kwargs):
        if self._mm_step is None:
            return self.module(*inputs, **kwargs)
        return getattr(self.module, self._mm_step)(*inputs, **kwargs)

    def _open_batch(self, inputs, kwargs):
        """``DataContainer``s opened and their tensors on this process'
        device (-1: mmcv's CPU scatter, as ``MMDataParallel`` on the CPU)."""
        target = self.device_ids[0] if self.device_ids else -1
        inputs, kwargs = scatter_kwargs(inputs, kwargs, [target], dim=self.dim)
        return (inputs[0] if inputs else ()), (kwargs[0] if kwargs else {})
