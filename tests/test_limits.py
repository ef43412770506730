"""Request limits: a small upload must not hold a worker for an hour. Bounds on
frames, pixels, seconds, decoded pixels and time, checked from the header and
again while decoding, alone and against a real TorchServe (tiny MOT models)."""
import json
import time

import av
import numpy as np
import pytest
import requests

from conftest import make_video
from mmtrack_serve import limits
from mmtrack_serve.converters.mmtrack2torchserve import convert
from mmtrack_serve.limits import Deadline, LimitExceeded, Limits, TimeBudgetExceeded
from mmtrack_serve.serving.protocol import HEADER_END, HEADER_ID, HEADER_START
from serving import put, running_server, temp_leftovers
from test_cli import assert_one_line_error, cli

MANY_FRAMES = 200_000
SMALL_MAX_FRAMES = 5
BUDGET_S = 1.0
LONG_FRAMES = 600


def encode(path, frames, codec='libx264', fmt=None, rate=30, pix_fmt='yuv420p', options=None):
    """Frames (BGR arrays, or one array repeated ``frames[1]`` times) written with PyAV."""
    container = av.open(str(path), 'w', format=fmt)
    stream = container.add_stream(codec, rate=rate)
    first, count = frames if isinstance(frames, tuple) else (frames[0], len(frames))
    stream.height, stream.width = first.shape[:2]
    stream.pix_fmt = pix_fmt
    stream.options = options or {}
    for i in range(count):
        image = first if isinstance(frames, tuple) else frames[i]
        frame = av.VideoFrame.from_ndarray(image, format='bgr24')
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


# -- the checks alone ----------------------------------------------------------------
def test_header_checks_name_the_limit_the_value_and_how_to_raise_it():
    bounds = Limits(max_frames=100, max_pixels=640 * 480, max_seconds=10, max_decoded_pixels=10**7)
    limits.check_header(bounds, width=640, height=480, num_frames=30, seconds=1.0)
    cases = [(dict(width=641, height=480), 'max_pixels', 641 * 480),
             (dict(width=64, height=48, num_frames=101), 'max_frames', 101),
             (dict(width=64, height=48, seconds=10.5), 'max_seconds', 10.5),
             (dict(width=640, height=480, num_frames=40), 'max_decoded_pixels', 40 * 640 * 480)]
    for kwargs, name, found in cases:
        with pytest.raises(LimitExceeded) as error:
            limits.check_header(bounds, **kwargs)
        assert error.value.status == 413 and not error.value.cut
        assert error.value.details() == {'limit': name, 'value': found,
                                         'allowed': getattr(bounds, name)}
        assert name in str(error.value) and f'--{name.replace("_", "-")}' in str(error.value)


def test_decoding_is_cut_at_the_limit_a_header_hid():
    frames = (np.zeros((4, 4, 3), np.uint8) for _ in range(1000))
    seen = []
    with pytest.raises(LimitExceeded, match='max_frames') as error:
        for frame in limits.guarded(frames, Limits(max_frames=5), fps=30):
            seen.append(frame)
    assert len(seen) == 5 and error.value.cut and error.value.found == 6
    with pytest.raises(LimitExceeded, match='max_seconds'):
        list(limits.guarded((np.zeros((4, 4, 3)) for _ in range(100)), Limits(max_seconds=1), fps=30))
    assert len(list(limits.guarded(iter([np.zeros((4, 4, 3))] * 3), None, fps=30))) == 3


def test_a_deadline_stops_between_frames_with_retry_after():
    deadline = Deadline(Limits(time_budget_s=0.05), started=time.monotonic() - 1)
    with pytest.raises(TimeBudgetExceeded) as error:
        deadline.check(7)
    assert error.value.status == 503 and error.value.retry_after >= 1
    assert '7 frames' in str(error.value) and 'time_budget_s' in str(error.value)
    Deadline(Limits()).check()                      # no budget: never


def test_server_overrides_parse():
    assert limits.parse_override('max_frames=10') == ('*', 'max_frames', '10')
    assert limits.parse_override('cam:time-budget-s=2.5') == ('cam', 'time_budget_s', '2.5')
    for bad in ('frames=10', 'max_frames', 'max_frames=lots', 'max_frames=-1'):
        with pytest.raises(ValueError):
            limits.parse_override(bad)


def test_track_video_takes_limits(tiny_model, video):
    from mmtrack_serve import track_video
    with pytest.raises(LimitExceeded, match='max_frames'):
        track_video(tiny_model('mot'), video, limits=Limits(max_frames=3))
    with pytest.raises(TimeBudgetExceeded):
        track_video(tiny_model('mot'), video, limits=Limits(time_budget_s=1e-9))
    assert len(track_video(tiny_model('mot'), video, limits=Limits(max_frames=8))['frames']) == 8


def test_cli_limits_are_off_by_default_and_one_line_when_met(tiny_files, video, tmp_path):
    config, ckpt = tiny_files['mot']
    out = tmp_path / 'out.json'
    ok = cli('run', config, '--checkpoint', ckpt, '--input', video, '--json', out, '--quiet')
    assert ok.returncode == 0, ok.stderr
    met = cli('run', config, '--checkpoint', ckpt, '--input', video, '--json', tmp_path / 'cut.json',
              '--quiet', '--max-frames', 4)
    assert_one_line_error(met, 'max_frames', '--max-frames')
    assert not (tmp_path / 'cut.json').exists()
    bad = cli('serve', '--model-store', tmp_path, '--limit', 'frames=3')
    assert_one_line_error(bad, '--limit takes')


# -- against TorchServe --------------------------------------------------------------
@pytest.fixture(scope='module')
def store(tiny_files, tmp_path_factory):
    store = tmp_path_factory.mktemp('limits_store')
    config, ckpt = str(tiny_files['mot'][0]), str(tiny_files['mot'][1])
    convert(config, ckpt, output_folder=store, model_name='tiny_mot')            # the defaults
    convert(config, ckpt, output_folder=store, model_name='tiny_mot_small',
            request_limits={'max_frames': SMALL_MAX_FRAMES})
    convert(config, ckpt, output_folder=store, model_name='tiny_mot_budget')
    return store


@pytest.fixture(scope='module')
def server(store, tmp_path_factory):
    # as `mmtrack-serve serve --limit tiny_mot_budget:time_budget_s=1` passes it
    env = {limits.LIMITS_ENV: json.dumps({'tiny_mot_budget': {'time_budget_s': BUDGET_S}})}
    with running_server(store, tmp_path_factory.mktemp('limits_run'), env=env) as server:
        yield server


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp('limits_videos')
    black = np.zeros((64, 64, 3), np.uint8)
    # 200,000 frames at 64x64: about 3 MB, an hour and 51 minutes at 30 fps
    many = encode(folder / 'many.mp4', (black, MANY_FRAMES),
                  options={'preset': 'ultrafast', 'g': '100000', 'bf': '0'})
    # raw H.264: no container, so no frame count
    clip = list(av_frames(make_video(folder / 'clip.mp4')))
    raw = encode(folder / 'clip.h264', clip, fmt='h264')
    huge = encode(folder / 'huge.avi', (np.zeros((12000, 12000, 3), np.uint8), 2), codec='mjpeg',
                  pix_fmt='yuvj420p')
    long = make_video(folder / 'long.mp4', num_frames=LONG_FRAMES)
    return {'many': many, 'raw': raw, 'huge': huge, 'long': long, 'clip': folder / 'clip.mp4'}


def av_frames(path):
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format='bgr24')


def metric(server, name, model):
    text = requests.get(f'{server.metrics_url}/metrics', timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(f'{name}{{') and f'"{model}"' in line]
    return values[0] if values else 0.0


def worker_pids(server, model):
    described = requests.get(f'{server.management_url}/models/{model}', timeout=10).json()
    return [w['pid'] for w in described[0]['workers']]


def refusal(response, limit):
    assert response.status_code == 413, response.text[:300]
    body = response.json()
    assert body['code'] == 413 and body['type'] == 'LimitExceeded' and body['limit'] == limit
    assert limit in body['message'] and 'mmtrack2torchserve --' in body['message']
    return body


@pytest.mark.server
def test_a_200000_frame_upload_is_refused_at_once(server, videos):
    with av.open(str(videos['many'])) as container:
        assert container.streams.video[0].frames == MANY_FRAMES
    refused_before = metric(server, 'RequestsRefused', 'tiny_mot')
    start = time.perf_counter()
    r = put(server, 'tiny_mot', videos['many'], {'output': 'json'})
    seconds = time.perf_counter() - start
    body = refusal(r, 'max_frames')
    assert body['value'] == MANY_FRAMES and body['allowed'] == 108_000
    assert seconds < 2, f'the refusal took {seconds:.1f} s'
    assert metric(server, 'RequestsRefused', 'tiny_mot') == refused_before + 1
    ok = put(server, 'tiny_mot', videos['clip'], {'output': 'json'})
    assert ok.status_code == 200 and len(ok.json()['frames']) == 8


@pytest.mark.server
def test_a_video_without_a_frame_count_is_cut_while_decoding(server, videos):
    with av.open(str(videos['raw'])) as container:
        assert not container.streams.video[0].frames           # the header says nothing
    r = put(server, 'tiny_mot_small', videos['raw'], {'output': 'json'})
    body = refusal(r, 'max_frames')
    assert body['value'] == SMALL_MAX_FRAMES + 1 and 'while decoding' in body['message']
    assert metric(server, 'RequestsCut', 'tiny_mot_small') >= 1
    # a streamed chunk counts toward the same limit
    chunk = put(server, 'tiny_mot_small', videos['raw'],
                {HEADER_ID: 'over-limit', HEADER_START: 'true', HEADER_END: 'true'})
    refusal(chunk, 'max_frames')
    ok = put(server, 'tiny_mot', videos['raw'], {'output': 'json'})       # within the defaults
    assert ok.status_code == 200 and len(ok.json()['frames']) == 8


@pytest.mark.server
def test_a_frame_over_the_pixel_limit_is_refused_before_the_model(server, videos):
    frames_before = metric(server, 'FramesProcessed', 'tiny_mot')
    r = put(server, 'tiny_mot', videos['huge'], {'output': 'json'})
    body = refusal(r, 'max_pixels')
    assert body['value'] == 12000 * 12000 and '12000x12000' in body['message']
    assert 'while decoding' not in body['message']              # from the header
    assert metric(server, 'FramesProcessed', 'tiny_mot') == frames_before


@pytest.mark.server
def test_past_its_time_budget_a_request_is_stopped_and_the_worker_goes_on(server, videos):
    pids = worker_pids(server, 'tiny_mot_budget')
    start = time.perf_counter()
    r = put(server, 'tiny_mot_budget', videos['long'], {'output': 'json'})
    assert r.status_code == 503, r.text[:300]
    body = r.json()
    assert body['type'] == 'TimeBudgetExceeded' and body['limit'] == 'time_budget_s'
    assert body['allowed'] == BUDGET_S and int(r.headers['Retry-After']) >= 1
    assert time.perf_counter() - start < 60
    assert metric(server, 'RequestsCut', 'tiny_mot_budget') >= 1
    ok = put(server, 'tiny_mot_budget', videos['clip'], {'output': 'json'})
    assert ok.status_code == 200, ok.text[:300]
    assert worker_pids(server, 'tiny_mot_budget') == pids         # the same worker, not a new one


@pytest.mark.server
def test_refusals_leave_no_temp_file(server):
    assert temp_leftovers(server) == []
