"""Durable streams: two real TorchServe servers on one real Redis
(``mmtrack-serve serve --state-store redis://...``), tiny MOT, SOT and VID
models. A sequence's chunks may go to either server, a killed worker's
sequence goes on, two chunks of one sequence at once never both run, and a
tampered store runs no code. The folder store (the default): test_streaming.py;
snapshots and stores alone: test_snapshot.py."""
import os
import pickle
import threading
import uuid

import pytest

from conftest import SOT_INIT_BBOX, make_video
from mmtrack_serve.converters.mmtrack2torchserve import convert
from mmtrack_serve.handlers.state_store import STATE_STORE_ENV
from mmtrack_serve.serving.protocol import CHUNK_HEADER, HEADER_END, HEADER_ID, HEADER_START
from mmtrack_serve.serving.stream_client import encode_chunk
from mmtrack_serve.video import VideoReader
from redis_server import RedisMissing, running_redis
from serving import put, running_server
from test_snapshot import Payload
from test_streaming import kill_worker

redis = pytest.importorskip('redis', reason='the redis Python package is missing (make setup)')
pytestmark = pytest.mark.server
MODELS = {'mot': 'tiny_mot', 'sot': 'tiny_sot', 'vid': 'tiny_vid'}
SMALL = 'tiny_mot_small'            # --max-state-mb 0.001: every snapshot is too large
BBOX = ','.join(str(v) for v in SOT_INIT_BBOX)


@pytest.fixture(scope='module')
def redis_url():
    try:
        with running_redis() as url:
            yield url
    except RedisMissing as e:
        pytest.skip(str(e))


@pytest.fixture(scope='module')
def servers(redis_url, tiny_files, tmp_path_factory):
    store = tmp_path_factory.mktemp('durable_store')
    for task, name in MODELS.items():
        config, ckpt = tiny_files[task]
        # frame by frame, so that chunked and whole results are equal exactly
        convert(str(config), str(ckpt), output_folder=store, model_name=name, detector_batch=1)
    config, ckpt = tiny_files['mot']
    convert(str(config), str(ckpt), output_folder=store, model_name=SMALL, detector_batch=1,
            max_state_mb=0.001)
    env = {STATE_STORE_ENV: redis_url}
    with running_server(store, tmp_path_factory.mktemp('durable_a'), env=env) as a, \
            running_server(store, tmp_path_factory.mktemp('durable_b'), env=env) as b:
        yield a, b


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    path = make_video(tmp_path_factory.mktemp('durable_videos') / 'clip.mp4', num_frames=8)
    return path, list(VideoReader(path))


def whole(server, model, video, task):
    headers = {'output': 'json', 'score_thr': '0'}
    if task == 'sot':
        headers['init_bbox'] = BBOX
    r = put(server, model, video, headers)
    assert r.status_code == 200, r.text
    return r.json()['frames']


def chunk(server, model, seq_id, frames, *, index=None, start=False, end=False, task='mot'):
    headers = {HEADER_ID: seq_id, 'score_thr': '0'}
    if start:
        headers[HEADER_START] = 'true'
        if task == 'sot':
            headers['init_bbox'] = BBOX
    if end:
        headers[HEADER_END] = 'true'
    if index is not None:
        headers[CHUNK_HEADER] = str(index)
    return put(server, model, encode_chunk(frames, 12.5, 'lossless') if frames else b'', headers)


def new_id(prefix):
    return f'{prefix}-{uuid.uuid4().hex[:8]}'


@pytest.mark.parametrize('task', list(MODELS))
def test_chunks_alternating_between_two_servers_equal_the_whole_video(servers, clip, task):
    video, frames = clip
    model, seq_id = MODELS[task], new_id(task)
    got = []
    for i, first in enumerate(range(0, 8, 2)):
        r = chunk(servers[i % 2], model, seq_id, frames[first:first + 2], index=i, start=i == 0,
                  end=first == 6, task=task)
        assert r.status_code == 200, r.text
        if first < 6:
            assert r.headers['x-sequence-state'] == 'saved'
        got += r.json()['frames']
    reference = whole(servers[0], model, video, task)
    assert got == reference                      # frame ids, track ids, boxes, scores
    assert any(f['objects'] for f in reference), 'the tiny model should find objects'
    if task == 'mot':
        assert len({o['track_id'] for f in reference for o in f['objects']}) > 1


def test_a_killed_worker_goes_on_from_redis(servers, clip):
    video, frames = clip
    a, b = servers
    seq_id = new_id('killed')
    assert chunk(a, 'tiny_mot', seq_id, frames[:3], index=0, start=True).status_code == 200
    first = chunk(a, 'tiny_mot', seq_id, frames[3:5], index=1)
    assert first.status_code == 200, first.text
    kill_worker(a, 'tiny_mot')
    rest = chunk(a, 'tiny_mot', seq_id, frames[5:], index=2, end=True)
    assert rest.status_code == 200, rest.text
    reference = whole(b, 'tiny_mot', video, 'mot')
    assert first.json()['frames'] + rest.json()['frames'] == reference[3:]


def test_two_chunks_of_one_sequence_at_once_one_runs_the_other_gets_409(servers, tmp_path):
    a, b = servers
    long_clip = make_video(tmp_path / 'long.mp4', num_frames=72, seed=3)
    frames = list(VideoReader(long_clip))
    seq_id = new_id('race')
    assert chunk(a, 'tiny_mot', seq_id, frames[:4], index=0, start=True).status_code == 200
    body = encode_chunk(frames[4:68], 12.5, 'lossless')
    headers = {HEADER_ID: seq_id, 'score_thr': '0', CHUNK_HEADER: '1'}
    answers, barrier = {}, threading.Barrier(2)

    def send(server):
        barrier.wait()
        answers[server.port_base] = put(server, 'tiny_mot', body, headers)
    threads = [threading.Thread(target=send, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in answers.values())
    assert codes == [200, 409], [r.text[:200] for r in answers.values()]
    busy = next(r for r in answers.values() if r.status_code == 409)
    assert 'being tracked right now' in busy.json()['message'] and int(busy.headers['Retry-After']) >= 1
    done = next(r for r in answers.values() if r.status_code == 200)
    last = chunk(b, 'tiny_mot', seq_id, frames[68:], index=2, end=True)
    assert last.status_code == 200, last.text
    reference = whole(a, 'tiny_mot', long_clip, 'mot')
    assert done.json()['frames'] + last.json()['frames'] == reference[4:]


def test_a_tampered_store_is_refused_runs_nothing_and_the_worker_stays_up(servers, clip, redis_url,
                                                                           tmp_path):
    video, frames = clip
    a, b = servers
    client = redis.Redis.from_url(redis_url)
    marker = tmp_path / 'pwned'
    for tamper in (os.urandom(2048), pickle.dumps(Payload(marker)), b'not json'):
        seq_id = new_id('tampered')
        assert chunk(a, 'tiny_mot', seq_id, frames[:2], start=True).status_code == 200
        part = 'meta' if tamper == b'not json' else 'state'
        key = f'mmtrack-serve:tiny_mot:{seq_id}:{part}'
        assert client.exists(key)
        client.set(key, tamper)
        r = chunk(b, 'tiny_mot', seq_id, frames[2:4])
        assert r.status_code == 500, r.text
        message = r.json()['message']
        assert f'stored state of sequence {seq_id} cannot be used' in message
        assert 'start a new sequence' in message
        assert not client.exists(key)                                # removed: the id may start again
        again = chunk(b, 'tiny_mot', seq_id, frames[:2], start=True, end=True)
        assert again.status_code == 200, again.text
    assert not marker.exists()
    for server in servers:
        assert put(server, 'tiny_mot', video).status_code == 200     # workers still up


def test_a_state_over_the_limit_stays_in_one_worker_and_says_so(servers, clip):
    video, frames = clip
    a, b = servers
    seq_id = new_id('big')
    r = chunk(a, SMALL, seq_id, frames[:2], start=True)
    assert r.status_code == 200, r.text
    assert r.headers['x-sequence-state'] == 'memory'
    assert 'over the state store\'s limit of 0.001 MB' in r.json()['state_note']
    elsewhere = chunk(b, SMALL, seq_id, frames[2:4])
    assert elsewhere.status_code == 507, elsewhere.text
    assert 'memory of one worker only' in elsewhere.json()['message']
    same = chunk(a, SMALL, seq_id, frames[2:8], end=True)     # its own worker goes on
    assert same.status_code == 200, same.text
    assert r.json()['frames'] + same.json()['frames'] == whole(a, SMALL, video, 'mot')
