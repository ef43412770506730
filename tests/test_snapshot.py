"""Session snapshots (``mmtrack_serve.snapshot``) and the state stores
(``handlers/state_store.py``) without TorchServe: a session saved mid-video and
restored into a fresh one gives exactly the results of an uninterrupted one,
for every task type; a tampered snapshot is refused and runs nothing; the
stores' leases, expiry and sweep."""
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import OrderedDict

import numpy as np
import pytest
import torch
from addict import Dict

from conftest import TASKS, session_kwargs
from mmtrack_serve import snapshot
from mmtrack_serve.handlers.state_store import DirStore, StoreBusy, open_store, parse_url
from mmtrack_serve.session import TrackingSession
from mmtrack_serve.video import VideoReader


def test_data_round_trips_with_its_types():
    value = {
        'tracks': {3: Dict(bboxes=[torch.arange(8.).view(2, 4)[1]], mean=np.arange(8.),
                           tentative=False, obs=[None, torch.ones(4)])},
        'ordered': OrderedDict(a=1), 'tuple': (1, 'x', 2.5), 'scalar': np.float32(0.25),
        'flag': np.bool_(True), 'bytes': b'\x00\x01', 'memo': Dict(),
    }
    value['memo'].img_metas = [{'ori_shape': (2, 3)}]         # a plain dict inside a Dict
    back = snapshot.loads(snapshot.dumps(value))
    track = back['tracks'][3]
    assert type(back['tracks']) is dict and type(track) is Dict and list(back['tracks']) == [3]
    assert torch.equal(track.bboxes[0], torch.tensor([4., 5., 6., 7.]))
    assert track.mean.dtype == np.float64 and np.array_equal(track.mean, np.arange(8.))
    assert track.obs[0] is None and track.tentative is False
    assert type(back['ordered']) is OrderedDict and back['tuple'] == (1, 'x', 2.5)
    assert type(back['scalar']) is np.float32 and back['scalar'] == np.float32(0.25)
    assert type(back['flag']) is np.bool_ and back['bytes'] == b'\x00\x01'
    assert type(back['memo'].img_metas[0]) is dict and back['memo'].img_metas[0]['ori_shape'] == (2, 3)


def test_a_view_is_saved_without_its_whole_storage():
    big = torch.zeros(1000, 1000)
    assert len(snapshot.dumps({'box': big[0, :4]})) < 10_000


@pytest.mark.parametrize('value', [object(), {'f': len}, np.array(['a']), {1: {2: threading.Lock()}}])
def test_what_is_not_data_is_refused_when_saved(value):
    with pytest.raises(snapshot.SnapshotError, match='snapshot does not hold|not numbers'):
        snapshot.dumps(value)


class Payload:
    """Pickled, runs a command when loaded by an unrestricted unpickler."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.call, (['touch', str(self.marker)],))


def test_a_tampered_snapshot_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / 'pwned'
    evil = [pickle.dumps(Payload(marker)),                       # a plain pickle
            _torch_save({'format': snapshot.FORMAT, 'value': Payload(marker)}),
            os.urandom(4096), b'', snapshot.dumps([1])[:-20]]
    for data in evil:
        with pytest.raises(snapshot.SnapshotError, match='not a valid snapshot|not a snapshot'):
            snapshot.loads(data)
    assert not marker.exists()
    # well-formed, but not what a snapshot writes
    for value in ({'format': 99, 'value': 1}, {'format': snapshot.FORMAT,
                                               'value': {snapshot.TAG: 'set', 'items': []}}):
        with pytest.raises(snapshot.SnapshotError):
            snapshot.loads(_torch_save(value))


def _torch_save(value):
    import io
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize('task', TASKS)
def test_a_restored_session_goes_on_exactly_as_one_never_stopped(task, tiny_model, video):
    """Frames 0-3 in one session, its snapshot through bytes into a new one,
    frames 4-7 there: every result equals the uninterrupted session's."""
    model = tiny_model(task)
    frames = list(VideoReader(video))
    whole = model.session(score_thr=0, **session_kwargs(task))
    expected = [whole.step(frame).to_json() for frame in frames]
    first = model.session(score_thr=0, **session_kwargs(task))
    got = [first.step(frame).to_json() for frame in frames[:4]]
    data = snapshot.dumps(first.snapshot())
    del first
    second = TrackingSession.restore(model, snapshot.loads(data, device=model.device))
    assert second.frame_id == 4 and second.score_thr == 0
    got += [second.step(frame).to_json() for frame in frames[4:]]
    assert got == expected
    assert any(o for r in expected for o in r['objects']), 'the tiny model should find objects'


def test_a_snapshot_of_another_task_is_refused(tiny_model, video):
    frame = next(iter(VideoReader(video)))
    mot = tiny_model('mot').session(score_thr=0)
    mot.step(frame)
    data = snapshot.loads(snapshot.dumps(mot.snapshot()))
    with pytest.raises(snapshot.SnapshotError, match='mot session'):
        TrackingSession.restore(tiny_model('vid'), data)
    data['state']['tracker']['_forward_hooks'] = {}
    with pytest.raises(snapshot.SnapshotError, match='not one a snapshot sets'):
        TrackingSession.restore(tiny_model('mot'), data)


# -- stores --------------------------------------------------------------------------
def test_store_urls():
    assert parse_url('none') == ('none', None) and open_store('none', model_name='m') is None
    assert parse_url('dir:/x/y')[0] == 'dir' and parse_url('redis://h:1/0') == ('redis', 'redis://h:1/0')
    for bad in ('dir:', 'http://x', '/just/a/path'):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_dir_store_lease_expiry_and_sweep(tmp_path):
    store = DirStore(tmp_path / 'm')
    with store.lease('cam-1', 10):
        with pytest.raises(StoreBusy, match='one at a time'):
            with store.lease('cam-1', 10):
                pass
        # held by another process too
        code = ('import sys; from mmtrack_serve.handlers.state_store import DirStore, StoreBusy\n'
                f'try:\n with DirStore({str(tmp_path / "m")!r}).lease("cam-1", 10): sys.exit(0)\n'
                'except StoreBusy: sys.exit(3)')
        assert subprocess.run([sys.executable, '-c', code]).returncode == 3
        with store.lease('cam-2', 10):
            pass                                                # other ids are free
        store.write('cam-1', {'state': b'S', 'meta': b'{"status": "live", "expires_at": %f}'
                              % (time.time() + 60)}, ttl_s=60)
    assert store.meta('cam-1')['status'] == 'live' and store.read('cam-1', 'state') == b'S'
    store.write('cam-2', {'state': b'S', 'meta': b'{"status": "live", "expires_at": %f}'
                          % (time.time() - 1)}, ttl_s=60)
    assert store.sweep() == ['cam-2']
    assert store.meta('cam-2') is None and store.read('cam-2', 'state') is None
    assert sorted(p.name for p in (tmp_path / 'm').iterdir()) == ['cam-1.lock', 'cam-1.meta',
                                                                   'cam-1.state']
    store.write('cam-1', {'state': None}, ttl_s=60)
    assert store.read('cam-1', 'state') is None
