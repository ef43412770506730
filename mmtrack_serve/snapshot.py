"""A session's state as bytes that are data, never code: nested dicts, lists,
tuples, numbers, strings, numpy arrays and torch tensors, written with
``torch.save`` and read with ``torch.load(weights_only=True)``, which refuses
any pickled class or callable. A tampered snapshot is a ``SnapshotError``,
and no code in it runs.

Containers are tagged (``{TAG: kind, ...}``) so that what comes back has the
types that went in: mmtrack reads its state through ``addict.Dict``
attributes, keys tracks by int id, and keeps Kalman states as numpy float64.
"""
import io
from collections import OrderedDict

import numpy as np
import torch

from .errors import MMTrackServeError

FORMAT = 1
TAG = '__snapshot_type__'
_DICT_KINDS = ('dict', 'addict', 'odict')
_PRIMITIVES = (type(None), bool, int, float, str, bytes)


class SnapshotError(MMTrackServeError):
    """State that cannot be written as data, or bytes that are not a snapshot."""
    status = 500


def dumps(value):
    """``value`` (data only: see the module) as bytes."""
    buffer = io.BytesIO()
    torch.save({'format': FORMAT, 'value': encode(value)}, buffer)
    return buffer.getvalue()


def loads(data, *, device='cpu', what='the snapshot'):
    """The value ``dumps`` wrote, tensors on ``device``; SnapshotError for
    anything else (random bytes, another format, a pickled object)."""
    try:
        payload = torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read is the same answer
        raise SnapshotError(f'{what} is not a valid snapshot ({type(e).__name__}: '
                            f'{str(e).splitlines()[0][:160] if str(e) else "unreadable"})') from None
    if not isinstance(payload, dict) or payload.get('format') != FORMAT or 'value' not in payload:
        raise SnapshotError(f'{what} is not a snapshot of format {FORMAT}')
    try:
        return decode(payload['value'], device)
    except SnapshotError as e:
        raise SnapshotError(f'{what} is not a valid snapshot: {e}') from None


def is_data_type(value):
    """True when ``value`` is of a type ``encode`` writes (its contents are
    checked when it is written: a cheap test, not a second walk)."""
    if isinstance(value, dict):
        try:
            _dict_kind(value, 'value')      # a ConfigDict is configuration, not state
            return True
        except SnapshotError:
            return False
    return isinstance(value, (torch.Tensor, np.ndarray, np.generic, list, tuple) + _PRIMITIVES)


def encode(value, path='state'):
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        # a view would carry its whole storage (e.g. every detection of a frame)
        if tensor.untyped_storage().nbytes() > tensor.nbytes or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        return tensor
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject or value.dtype.kind in 'USV':
            raise SnapshotError(f'{path} is a numpy array of {value.dtype}, not numbers')
        return {TAG: 'ndarray', 'value': torch.from_numpy(np.array(value, copy=True))}
    if isinstance(value, np.generic):
        if not isinstance(value, (np.number, np.bool_)):
            raise SnapshotError(f'{path} is a numpy {type(value).__name__}, not a number')
        return {TAG: 'npscalar', 'value': torch.from_numpy(np.array(value))}
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, dict):
        kind = _dict_kind(value, path)
        return {TAG: kind, 'items': [[encode(k, f'{path} key'), encode(v, f'{path}[{k!r}]')]
                                     for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [encode(v, f'{path}[{i}]') for i, v in enumerate(value)]
        return items if type(value) is list else {TAG: 'tuple', 'items': items}
    raise SnapshotError(f'{path} is a {type(value).__module__}.{type(value).__name__}, '
                        'which a snapshot does not hold (data only)')


def _dict_kind(value, path):
    from addict import Dict
    if type(value) is dict:
        return 'dict'
    if type(value) is Dict:
        return 'addict'
    if type(value) is OrderedDict:
        return 'odict'
    raise SnapshotError(f'{path} is a {type(value).__name__}, which a snapshot does not hold')


def decode(value, device='cpu'):
    if isinstance(value, torch.Tensor):
        return value.to(device) if str(device) != 'cpu' else value
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, list):
        return [decode(v, device) for v in value]
    if not isinstance(value, dict) or value.get(TAG) is None:
        raise SnapshotError(f'unexpected {type(value).__name__} in its data')
    kind = value[TAG]
    if kind in ('ndarray', 'npscalar'):
        tensor = value.get('value')
        if not isinstance(tensor, torch.Tensor):
            raise SnapshotError(f'a {kind} without its numbers')
        array = tensor.numpy()
        return array[()] if kind == 'npscalar' else array
    items = value.get('items')
    if not isinstance(items, list):
        raise SnapshotError(f'a {kind} without its items')
    if kind == 'tuple':
        return tuple(decode(v, device) for v in items)
    if kind not in _DICT_KINDS or not all(isinstance(i, list) and len(i) == 2 for i in items):
        raise SnapshotError(f'unknown entry {kind!r}')
    pairs = [(_key(decode(k, device)), decode(v, device)) for k, v in items]
    if kind == 'addict':
        from addict import Dict
        result = Dict()
        for k, v in pairs:
            # addict.Dict(...) would turn nested plain dicts into Dicts: set as they were
            dict.__setitem__(result, k, v)
        return result
    return OrderedDict(pairs) if kind == 'odict' else dict(pairs)


def _key(key):
    if isinstance(key, (list, dict, torch.Tensor, np.ndarray)):
        raise SnapshotError(f'a dict key of type {type(key).__name__}')
    return key
