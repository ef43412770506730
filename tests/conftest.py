"""Shared test material: synthetic videos (written by OpenCV, so the decoder
and encoder under test are not used to make their own inputs), tiny models of
each task type saved as config + checkpoint, and a guard that fails any test
that tries to reach the network."""
import os
import socket
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / 'shared' / 'data'
sys.path.insert(0, str(TESTS))

TASKS = ('mot', 'sot', 'vid', 'vis')
# where the tiny models run: scripts/gpu_check.sh sets cuda:0
DEVICE = os.environ.get('MMTRACK_SERVE_TEST_DEVICE', 'cpu')
SOT_INIT_BBOX = (40, 30, 80, 70)


def make_video(path, num_frames=8, size=(160, 120), fps=12.5, seed=0):
    """Moving coloured shapes on a noisy background, as mp4v via OpenCV."""
    width, height = size
    rng = np.random.RandomState(seed)
    background = (rng.rand(height, width, 3) * 60 + 60).astype(np.uint8)
    shapes = [(rng.randint(0, width - 30), rng.randint(0, height - 30), rng.randint(-4, 5),
               rng.randint(-3, 4), tuple(int(c) for c in rng.randint(0, 255, 3))) for _ in range(4)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    assert writer.isOpened()
    for t in range(num_frames):
        frame = background.copy()
        for x, y, dx, dy, colour in shapes:
            x0, y0 = (x + dx * t) % (width - 30), (y + dy * t) % (height - 30)
            cv2.rectangle(frame, (x0, y0), (x0 + 28, y0 + 28), colour, -1)
        writer.write(frame)
    writer.release()
    return Path(path)


@pytest.fixture(scope='session')
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp('videos') / 'clip.mp4')


@pytest.fixture(scope='session')
def tiny_files(tmp_path_factory):
    """{task: (config.py, checkpoint.pth)} for the tiny random-weight models."""
    from tiny_models import make_tiny_checkpoint
    root = tmp_path_factory.mktemp('models')
    files = {}
    for task in TASKS:
        config, ckpt = root / f'tiny_{task}.py', root / f'tiny_{task}.pth'
        cfg = make_tiny_checkpoint(task, ckpt)
        cfg.dump(str(config))
        files[task] = (config, ckpt)
    return files


@pytest.fixture(scope='session')
def tiny_model(tiny_files):
    """Loads (once) and returns the tiny model of a task."""
    from mmtrack_serve.models import load_model
    cache = {}

    def get(task):
        if task not in cache:
            cache[task] = load_model(str(tiny_files[task][0]), str(tiny_files[task][1]),
                                     device=DEVICE)
        return cache[task]
    return get


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Nothing may be downloaded: only loopback connections are allowed."""
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ('127.0.0.1', 'localhost', '::1') \
                and not host.startswith('/'):
            raise AssertionError(f'test tried to reach the network: {address}')
        return real_connect(self, address)
    monkeypatch.setattr(socket.socket, 'connect', connect)


def session_kwargs(task):
    return {'init_bbox': SOT_INIT_BBOX} if task == 'sot' else {}
