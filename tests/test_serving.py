"""Against a real TorchServe on 127.0.0.1: .mar files made by mmtrack2torchserve
from tiny random-weight models of each task type, real mp4 files posted as curl
posts them, responses decoded."""
import json
import subprocess
import sys
import time
import zipfile

import cv2
import numpy as np
import pytest
import requests
import yaml

from conftest import REPO, SHARED_DATA, SOT_INIT_BBOX, TASKS
from mmtrack_serve.api import track_video
from mmtrack_serve.converters.mmtrack2torchserve import convert
from mmtrack_serve.video import probe
from serving import post_form, put, register, running_server, temp_leftovers

pytestmark = pytest.mark.server
SOT_HEADER = {'init_bbox': ','.join(map(str, SOT_INIT_BBOX))}


def task_headers(task, **extra):
    headers = dict(SOT_HEADER) if task == 'sot' else {}
    headers.update({k: str(v) for k, v in extra.items()})
    return headers


@pytest.fixture(scope='module')
def store(tiny_files, tmp_path_factory):
    store = tmp_path_factory.mktemp('store')
    for task in TASKS:
        config, ckpt = tiny_files[task]
        convert(str(config), str(ckpt), output_folder=store, model_name=f'tiny_{task}')
    return store


@pytest.fixture(scope='module')
def server(store, tmp_path_factory):
    with running_server(store, tmp_path_factory.mktemp('run')) as server:
        yield server


@pytest.mark.parametrize('task', TASKS)
def test_raw_body_gives_h264_mp4_with_input_frames_size_fps(task, server, video):
    r = put(server, f'tiny_{task}', video, task_headers(task, score_thr=0))
    assert r.status_code == 200, r.text
    assert r.headers['content-type'] == 'video/mp4'
    info = probe(r.content)
    assert (info['codec'], info['num_frames'], info['width'], info['height']) == ('h264', 8, 160, 120)
    assert float(info['fps']) == pytest.approx(12.5)


def test_multipart_upload_with_form_options(server, video):
    r = post_form(server, 'tiny_mot', video, fields={'output': 'json', 'score_thr': '0'})
    assert r.status_code == 200, r.text
    assert r.json()['video']['num_frames'] == 8


@pytest.mark.parametrize('task', TASKS)
def test_served_json_equals_local_session(task, server, video, tiny_model):
    r = put(server, f'tiny_{task}', video, task_headers(task, output='json', score_thr=0))
    assert r.status_code == 200, r.text
    local = track_video(tiny_model(task), video, score_thr=0.0,
                        init_bbox=SOT_INIT_BBOX if task == 'sot' else None)
    served = r.json()
    assert served['frames'] == json.loads(json.dumps(local['frames']))
    assert served['video'] == local['video'] and served['task'] == task
    assert sum(len(f['objects']) for f in served['frames']) > 0


def test_mot_txt_output(server, video):
    r = put(server, 'tiny_mot', video, {'output': 'mot', 'score_thr': '0'})
    assert r.status_code == 200 and r.headers['content-type'].startswith('text/plain')
    rows = [line.split(',') for line in r.text.splitlines()]
    assert rows and all(len(row) == 10 for row in rows)
    assert {int(row[0]) for row in rows} <= set(range(1, 9))


def test_repeated_requests_do_not_share_tracker_state(server, video):
    first = put(server, 'tiny_mot', video, {'output': 'json', 'score_thr': '0'}).json()
    second = put(server, 'tiny_mot', video, {'output': 'json', 'score_thr': '0'}).json()
    assert first['frames'] == second['frames']


def test_parity_command_agrees_and_catches_other_weights(server, store, tiny_files, video, tmp_path):
    from tiny_models import make_tiny_checkpoint
    config, ckpt = tiny_files['mot']
    other = tmp_path / 'other.pth'
    make_tiny_checkpoint('mot', other, seed=1)
    convert(str(config), str(other), output_folder=store, model_name='tiny_mot_other')
    assert register(server, 'tiny_mot_other.mar').status_code == 200

    def parity(model, *extra):
        return subprocess.run(
            [sys.executable, 'tools/torchserve/test_torchserve.py', str(video), str(config), str(ckpt), model,
             '--inference-addr', f'127.0.0.1:{server.port_base}', '--score-thr', '0', *extra],
            capture_output=True, text=True, cwd=str(REPO))

    same = parity('tiny_mot', '--result-video', str(tmp_path / 'served.mp4'))
    assert same.returncode == 0, same.stdout + same.stderr
    assert 'AGREE' in same.stdout and 'max |dbox| px' in same.stdout
    assert probe(tmp_path / 'served.mp4')['codec'] == 'h264'
    differ = parity('tiny_mot_other')
    assert differ.returncode == 1, differ.stdout + differ.stderr
    assert 'DIFFER' in differ.stdout


def write_noise_video(path, frames, size=(1920, 1080)):
    rng = np.random.RandomState(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 25, size)
    for _ in range(frames):
        writer.write((rng.rand(size[1], size[0], 3) * 255).astype(np.uint8))
    writer.release()
    return path.stat().st_size


def test_a_20_mb_video_goes_through(server, tmp_path):
    # noise does not compress: about a megabyte per full-HD frame
    path, frames, target = tmp_path / 'big.mp4', 16, 20 * 2**20
    while (size := write_noise_video(path, frames)) <= target:
        frames = int(frames * 1.05 * target / size) + 1
    r = put(server, 'tiny_mot', path)
    assert r.status_code == 200, r.text[:300]
    info = probe(r.content)
    assert info['num_frames'] == frames and (info['width'], info['height']) == (1920, 1080)


@pytest.mark.skipif(not (SHARED_DATA / 'videos' / 'demo.mp4').is_file(), reason='../shared/data absent')
def test_mmtracking_demo_clip(server):
    r = put(server, 'tiny_mot', SHARED_DATA / 'videos' / 'demo.mp4')
    assert r.status_code == 200, r.text
    info = probe(r.content)
    assert (info['codec'], info['num_frames'], info['width'], info['height']) == ('h264', 8, 1920, 1080)


@pytest.mark.parametrize('model, body, headers, message', [
    ('tiny_mot', b'', {}, 'empty'),
    ('tiny_mot', b'definitely not a video' * 50, {}, 'not a readable video'),
    ('tiny_sot', None, {}, 'init_bbox'),
    ('tiny_sot', None, {'init_bbox': '1,2,3'}, 'four'),
    ('tiny_sot', None, {'init_bbox': '100,100,900,900'}, 'outside'),
    ('tiny_mot', None, {'score_thr': 'high'}, 'score_thr'),
    ('tiny_mot', None, {'score_thr': '1.5'}, 'between 0 and 1'),
    ('tiny_mot', None, {'output': 'gif'}, 'output must be one of'),
])
def test_bad_input_is_a_400_with_a_json_message_and_the_worker_stays_up(
        model, body, headers, message, server, video):
    r = put(server, model, video if body is None else body, headers)
    assert r.status_code == 400, r.text
    error = r.json()
    assert error['code'] == 400 and message in error['message']
    assert 'mmtrack-serve-' not in error['message'], 'temp paths leak into messages'
    ok = put(server, model, video, task_headers(model[5:], output='json'))
    assert ok.status_code == 200
    assert temp_leftovers(server) == []


def test_zero_frame_video_is_a_400(server, tmp_path):
    import av
    path = tmp_path / 'empty.mp4'
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('libx264', rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, 'yuv420p'
        container.start_encoding()      # header and trailer, no frame
    r = put(server, 'tiny_mot', path)
    assert r.status_code == 400
    assert any(m in r.json()['message'] for m in ('no decodable frames', 'no video stream'))


def test_metrics_endpoint_shows_frames(server, video):
    import requests
    put(server, 'tiny_vid', video)
    text = requests.get(f'{server.metrics_url}/metrics', timeout=10).text
    counts = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith('FramesProcessed{') and 'tiny_vid' in line]
    assert counts and counts[0] >= 8
    assert any(line.startswith('FramesPerSecond{') for line in text.splitlines())


def test_no_temp_files_remain(server):
    assert temp_leftovers(server) == []


def test_mar_holds_resolved_config_and_no_urls(store):
    with zipfile.ZipFile(store / 'tiny_mot.mar') as mar:
        names = set(mar.namelist())
        config = mar.read('config.py').decode()
    assert {'config.py', 'tiny_mot.pth', 'mmtrack_handler.py', 'model-config.yaml'} <= names
    assert '_base_' not in config and 'https://' not in config


def test_model_assembled_from_init_cfg_weights_serves_offline(server, store, tmp_path, video):
    """MMTracking's zoo DeepSORT: detector and ReID through init_cfg, no
    checkpoint. The worker runs with a dead proxy: any download would fail."""
    from mmtrack_serve.mmtrack_compat import load_config
    from mmtrack_serve.models import load_model
    from tiny_models import make_tiny_deepsort_parts
    cfg, det, reid = make_tiny_deepsort_parts(tmp_path)
    config = tmp_path / 'deepsort.py'
    cfg.dump(str(config))
    convert(str(config), None, output_folder=store, model_name='tiny_deepsort',
            weights=[f'detector={det}', f'reid={reid}'])
    assert register(server, 'tiny_deepsort.mar').status_code == 200
    r = put(server, 'tiny_deepsort', video, {'output': 'json', 'score_thr': '0'})
    assert r.status_code == 200, r.text
    local_cfg = load_config(str(config), {'model.detector.init_cfg.checkpoint': str(det),
                                          'model.reid.init_cfg.checkpoint': str(reid)})
    local = track_video(load_model(local_cfg), video, score_thr=0.0)
    assert r.json()['frames'] == json.loads(json.dumps(local['frames']))
    assert sum(len(f['objects']) for f in local['frames']) > 0


def test_the_converter_chooses_the_tracker_implementation(server, store, tiny_files):
    """mmtrack2torchserve --tracker-impl mmtrack: model-config.yaml's
    handler.tracker_impl, read by the worker, which runs mmtrack's own tracker
    (the default, fast, is in the log lines of the test below)."""
    config, ckpt = tiny_files['mot']
    mar = convert(str(config), str(ckpt), output_folder=store, model_name='tiny_mot_stock',
                  tracker_impl='mmtrack')
    with zipfile.ZipFile(mar) as archive:
        settings = yaml.safe_load(archive.read('model-config.yaml'))
    assert settings['handler']['tracker_impl'] == 'mmtrack'
    try:
        assert register(server, 'tiny_mot_stock.mar').status_code == 200
        line = 'tiny_mot_stock (ByteTrack) on cpu ('
        deadline = time.time() + 30
        while time.time() < deadline:
            log = (server.log_dir / 'model_log.log').read_text()
            if line in log:
                break
            time.sleep(0.5)
        logged = [l for l in log.splitlines() if line in l]
        assert logged and logged[-1].endswith('tracker ByteTracker: mmtrack)'), logged
    finally:
        requests.delete(f'{server.management_url}/models/tiny_mot_stock', timeout=60)


def test_workers_share_the_cpu_cores_among_their_torch_threads(server, store, tiny_files):
    import os
    config, ckpt = tiny_files['mot']
    convert(str(config), str(ckpt), output_folder=store, model_name='tiny_mot_2w', workers=2)
    convert(str(config), str(ckpt), output_folder=store, model_name='tiny_mot_2w_3t', workers=2,
            torch_threads=3)
    shared = max(1, len(os.sched_getaffinity(0)) // 2)
    try:
        for name in ('tiny_mot_2w', 'tiny_mot_2w_3t'):
            assert register(server, f'{name}.mar', workers=2).status_code == 200
        lines = [f'tiny_mot_2w (ByteTrack) on cpu ({shared} torch threads, detector batch auto, '
                 'tracker FastByteTracker: fast)',
                 'tiny_mot_2w_3t (ByteTrack) on cpu (3 torch threads, detector batch auto, '
                 'tracker FastByteTracker: fast)']
        # TorchServe copies a worker's output into model_log.log a little after READY
        deadline = time.time() + 30
        while time.time() < deadline:
            log = (server.log_dir / 'model_log.log').read_text()
            if all(log.count(line) >= 2 for line in lines):
                break
            time.sleep(0.5)
        assert [log.count(line) for line in lines] == [2, 2]
    finally:
        for name in ('tiny_mot_2w', 'tiny_mot_2w_3t'):
            requests.delete(f'{server.management_url}/models/{name}', timeout=60)
