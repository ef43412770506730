"""Strip a training checkpoint for release, as MMDet/MMTracking's publish_model.

The optimizer state and EMA copies of the weights (state_dict keys starting with
'ema_', written by mmdet's EMA hooks) are dropped, tensors are loaded onto the
CPU, and the file is named ``PREFIX-HASH.pth`` with the first 8 hex digits of
its sha256, the form ``mmcv.runner.load_checkpoint`` and the model zoo expect.
Unlike MMDet's script it writes torch's zip format, not the legacy one: the
legacy pickle keys storages by memory address, so the same weights gave a new
hash on every run; torch >= 1.6 reads the zip format.
"""
import hashlib
import io
import os
from pathlib import Path

import torch

from ..errors import InputError

EMA_PREFIX = 'ema_'


def publish_checkpoint(in_file, out_prefix):
    """Write the stripped checkpoint; returns its path ``out_prefix-HASH.pth``."""
    in_file = Path(in_file)
    if not in_file.is_file():
        raise InputError(f'checkpoint not found: {in_file}')
    checkpoint = strip_checkpoint(_load(in_file))

    prefix = str(out_prefix)
    prefix = prefix[:-len('.pth')] if prefix.endswith('.pth') else prefix
    # Serialized in memory: a zip written to a path embeds the file's name,
    # so the same weights would hash differently under another prefix.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getvalue()
    final_file = Path(f'{prefix}-{hashlib.sha256(data).hexdigest()[:8]}.pth')
    final_file.parent.mkdir(parents=True, exist_ok=True)
    tmp_file = final_file.with_name(final_file.name + '.tmp')
    tmp_file.write_bytes(data)
    os.replace(tmp_file, final_file)  # never a half-written release file
    return final_file


def strip_checkpoint(checkpoint):
    """The checkpoint without 'optimizer' and without 'ema_*' state_dict keys."""
    checkpoint = dict(checkpoint)
    checkpoint.pop('optimizer', None)
    if isinstance(checkpoint.get('state_dict'), dict):
        checkpoint['state_dict'] = _without_ema(checkpoint['state_dict'])
    elif all(torch.is_tensor(v) for v in checkpoint.values()):
        checkpoint = _without_ema(checkpoint)  # a bare state_dict
    return checkpoint


def _without_ema(state_dict):
    return type(state_dict)(
        (k, v) for k, v in state_dict.items() if not k.startswith(EMA_PREFIX))


def _load(path):
    try:
        # The user's own training output: its 'meta' holds plain Python
        # objects (config text, class names) the weights-only loader refuses.
        checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as e:  # torch raises many types for a corrupt file
        raise InputError(f'cannot load {path} as a torch checkpoint: {e}') from e
    if not isinstance(checkpoint, dict):
        raise InputError(f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict')
    return checkpoint
