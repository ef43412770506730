"""Bad inputs, concurrency and worker faults against a real TorchServe with
two workers per model and a small request limit (8 MiB)."""
import concurrent.futures
import json
import os
import signal
import threading
import time

import av
import cv2
import numpy as np
import pytest
import requests

from conftest import make_video
from mmtrack_serve.converters.mmtrack2torchserve import convert
from mmtrack_serve.video import VideoReader, VideoWriter, probe
from serving import put, register, running_server, temp_leftovers

pytestmark = pytest.mark.server
LIMIT = 8 * 2**20


@pytest.fixture(scope='module')
def store(tiny_files, tmp_path_factory):
    store = tmp_path_factory.mktemp('hard-store')
    for task in ('mot', 'sot'):
        config, ckpt = tiny_files[task]
        convert(str(config), str(ckpt), output_folder=store, model_name=f'tiny_{task}')
    return store


@pytest.fixture(scope='module')
def server(store, tmp_path_factory):
    with running_server(store, tmp_path_factory.mktemp('hard-run'), workers=2, limit_bytes=LIMIT) as s:
        yield s


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """The bad-input matrix's files."""
    root = tmp_path_factory.mktemp('bad')
    video = make_video(root / 'ok.mp4', num_frames=30)
    frames = list(VideoReader(video))
    with VideoWriter(root / 'faststart.mp4', 160, 120, 25) as writer:   # moov first, then frames
        for frame in frames:
            writer.write(frame)
    data = (root / 'faststart.mp4').read_bytes()
    (root / 'truncated.mp4').write_bytes(data[:len(data) // 2])
    cv2.imwrite(str(root / 'frame.jpg'), frames[0])
    (root / 'random.bin').write_bytes(np.random.RandomState(0).bytes(50_000))
    with av.open(str(root / 'audio.m4a'), 'w') as c:
        stream = c.add_stream('aac', rate=16000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp', layout='mono')
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    with av.open(str(root / 'one_pixel.mov'), 'w') as c:     # png in mov: any size, even 1x1
        stream = c.add_stream('png', rate=10)
        stream.width, stream.height, stream.pix_fmt = 1, 1, 'rgb24'
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((1, 1, 3), 200, np.uint8), format='rgb24')
            frame.pts = i
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    with VideoWriter(root / 'huge.mp4', 7680, 4320, 5) as writer:
        for shade in (40, 90):
            writer.write(np.full((4320, 7680, 3), shade, np.uint8))
    return root


# name, file, headers, status, words in the message
MATRIX = [
    ('empty body', None, {}, 400, 'empty'),
    ('random bytes', 'random.bin', {}, 400, 'not a readable video'),
    ('truncated mp4', 'truncated.mp4', {}, 400, 'truncated'),
    ('audio only', 'audio.m4a', {}, 400, 'no video stream'),
    ('score_thr not a number', 'ok.mp4', {'score_thr': 'abc'}, 400, 'score_thr must be a number'),
    ('score_thr out of range', 'ok.mp4', {'score_thr': '-0.1'}, 400, 'between 0 and 1'),
    ('unknown output', 'ok.mp4', {'output': 'avi'}, 400, 'output must be one of'),
]


@pytest.mark.parametrize('name, file, headers, status, words', MATRIX, ids=[m[0] for m in MATRIX])
def test_bad_input_matrix(name, file, headers, status, words, server, files):
    r = put(server, 'tiny_mot', b'' if file is None else files / file, headers)
    assert r.status_code == status, r.text[:300]
    assert words in r.json()['message']
    assert put(server, 'tiny_mot', files / 'ok.mp4', {'output': 'json'}).status_code == 200
    assert temp_leftovers(server) == []


@pytest.mark.parametrize('init_bbox, words', [('10,10,abc,40', 'must be four'),
                                              ('10,10', 'four'),
                                              ('100,100,400,300', 'outside the 160x120 frame'),
                                              ('50,50,20,20', 'empty')])
def test_bad_init_bbox(init_bbox, words, server, files):
    r = put(server, 'tiny_sot', files / 'ok.mp4', {'init_bbox': init_bbox})
    assert r.status_code == 400 and words in r.json()['message']


def test_multipart_without_a_file(server):
    r = requests.post(f'{server.inference_url}/predictions/tiny_mot', files={'output': (None, 'json')},
                      timeout=60)
    assert r.status_code == 400 and 'no video in the request' in r.json()['message']


def test_upload_over_the_limit_is_a_413(server, files):
    r = put(server, 'tiny_mot', b'\0' * (LIMIT + 1024))
    # TorchServe's frontend refuses it before any handler runs, with no body
    assert r.status_code == 413
    assert put(server, 'tiny_mot', files / 'ok.mp4').status_code == 200


def test_a_jpeg_is_a_one_frame_video(server, files):
    r = put(server, 'tiny_mot', files / 'frame.jpg', {'output': 'json'})
    assert r.status_code == 200
    assert r.json()['video']['num_frames'] == 1


def test_one_pixel_video(server, files):
    r = put(server, 'tiny_mot', files / 'one_pixel.mov')
    assert r.status_code == 200, r.text
    info = probe(r.content)      # yuv420p needs even sides: padded to 2x2
    assert (info['num_frames'], info['width'], info['height']) == (3, 2, 2)


def test_8k_frames(server, files):
    r = put(server, 'tiny_mot', files / 'huge.mp4', {'output': 'json'})
    assert r.status_code == 200, r.text
    assert r.json()['video'] == {'width': 7680, 'height': 4320, 'fps': 5.0, 'num_frames': 2}


def test_parallel_requests_equal_their_sequential_references(server, tmp_path):
    videos = [make_video(tmp_path / f'v{i}.mp4', num_frames=10, seed=10 + i) for i in range(4)]
    headers = {'output': 'json', 'score_thr': '0'}
    reference = [put(server, 'tiny_mot', v, headers).json() for v in videos]
    assert len({json.dumps(r['frames']) for r in reference}) == 4
    jobs = [videos[i % 4] for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda v: put(server, 'tiny_mot', v, headers), jobs))
    for i, r in enumerate(results):
        assert r.status_code == 200
        assert r.json() == reference[i % 4]


def worker_pids(server, model):
    r = requests.get(f'{server.management_url}/models/{model}', timeout=10).json()
    return [w['pid'] for w in r[0]['workers'] if w['status'] == 'READY' and w.get('pid', -1) > 0]


def test_worker_killed_mid_request_gives_a_5xx_and_recovers(store, tmp_path):
    # a server of its own: the workers of the shared one stay untouched
    with running_server(store, tmp_path / 'run', models=['tiny_mot=tiny_mot.mar'], workers=2) as server:
        check_worker_kill(server, tmp_path)


def check_worker_kill(server, tmp_path):
    long = make_video(tmp_path / 'long.mp4', num_frames=1500, size=(320, 240))
    pids_before = worker_pids(server, 'tiny_mot')
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(r=put(server, 'tiny_mot', long)))
    thread.start()
    # killed while it tracks: the request's private temp dir exists only then
    deadline = time.time() + 60
    while time.time() < deadline and not temp_leftovers(server):
        time.sleep(0.05)
    assert temp_leftovers(server) and thread.is_alive(), 'the request ended before the kill'
    for pid in pids_before:          # both workers: whichever took the request dies
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive(), 'the client hangs'
    assert 500 <= outcome['r'].status_code < 600
    deadline = time.time() + 120
    # the archive's model-config.yaml (1 worker) wins over the server's default
    while time.time() < deadline and len(worker_pids(server, 'tiny_mot')) < len(pids_before):
        time.sleep(1)
    assert set(worker_pids(server, 'tiny_mot')).isdisjoint(pids_before)
    assert put(server, 'tiny_mot', make_video(tmp_path / 's.mp4')).status_code == 200


def test_corrupt_mar_fails_to_register_and_others_keep_serving(server, store, files):
    data = (store / 'tiny_mot.mar').read_bytes()
    (store / 'broken.mar').write_bytes(data[:len(data) // 3])
    r = register(server, 'broken.mar')
    assert 400 <= r.status_code < 600
    assert r.json().get('message')
    assert put(server, 'tiny_mot', files / 'ok.mp4').status_code == 200


def test_server_restarted_on_the_same_store_serves_again(store, tmp_path, files):
    run_dir = tmp_path / 'run'
    for _ in range(2):
        with running_server(store, run_dir, models=['tiny_mot=tiny_mot.mar']) as server:
            assert put(server, 'tiny_mot', files / 'ok.mp4').status_code == 200
