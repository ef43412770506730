"""`mmtrack-serve stream` on live sources: real streams on 127.0.0.1 (UDP
MPEG-TS and an HLS live playlist written by PyAV, RTSP from gst-rtsp-server),
fed from a real clip at real-time pace, against a real TorchServe with the
tiny random-weight MOT model (tests/live_sources.py builds the sources).

The sources send the clip's own H.264 packets and the client sends lossless
chunks, so the served frames are exactly the clip's decoded frames: a stream's
results are compared for equality with the clip sent whole."""
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import make_video
from live_sources import (HLS_OPTIONS, MPEGTS_OPTIONS, Sender, free_port, h264_clip, http_folder,
                          rtsp_available, rtsp_server, udp_url)
from mmtrack_serve.converters.mmtrack2torchserve import convert
from mmtrack_serve.serving.protocol import HEADER_END, HEADER_ID
from mmtrack_serve.serving.stream_client import encode_chunk
from mmtrack_serve.video import VideoReader, probe
from serving import put, running_server

server_test = pytest.mark.server
FPS = 12.5
CLIP_FRAMES = 30                  # 2.4 s at real time
MODEL = 'tiny_mot'
# the frame object of the whole-video schema; the rest of a jsonl line is the source's
RESULT_KEYS = ('frame_id', 'objects')


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """A real clip as H.264 (no B-frames, a keyframe every 5 frames) and its decoded frames."""
    folder = tmp_path_factory.mktemp('live_clip')
    made = make_video(folder / 'made.mp4', num_frames=CLIP_FRAMES * 2, fps=FPS, seed=3)
    path = h264_clip(folder / 'clip.mp4', list(VideoReader(made)), FPS)
    return path, list(VideoReader(path))


@pytest.fixture(scope='module')
def server(tiny_files, tmp_path_factory):
    store = tmp_path_factory.mktemp('live_store')
    config, ckpt = tiny_files['mot']
    # detector batch 1: chunks and whole videos step frame by frame, so they compare exactly
    convert(str(config), str(ckpt), output_folder=store, model_name=MODEL, max_sequences=4,
            detector_batch=1)
    with running_server(store, tmp_path_factory.mktemp('live_run')) as server:
        yield server


def whole(server, video):
    r = put(server, MODEL, video, {'output': 'json', 'score_thr': '0'})
    assert r.status_code == 200, r.text
    return r.json()['frames']


class Client:
    """`mmtrack-serve stream` in a subprocess; its stdout read as it comes."""

    def __init__(self, source, server, tmp_path, *extra, model=MODEL):
        self.jsonl, self.mot = tmp_path / 'out.jsonl', tmp_path / 'out.txt'
        self.output = tmp_path / 'out.mp4'
        cmd = [sys.executable, '-m', 'mmtrack_serve.cli', 'stream', source,
               '--url', f'127.0.0.1:{server.port_base}', '--model', model, '--score-thr', '0',
               '--chunk-frames', '4', '--jsonl', str(self.jsonl), '--mot', str(self.mot), *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(text in line for line in self.lines):
                return
            assert self.proc.poll() is None, self.finish()
            time.sleep(0.05)
        pytest.fail(f'no {text!r} from the client within {timeout} s: {self.lines}')

    def finish(self, timeout=120):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        self.stderr = self.proc.stderr.read()
        self.stdout = ''.join(self.lines)
        return f'rc {self.proc.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}'

    def records(self):
        return [json.loads(line) for line in self.jsonl.read_text().splitlines()]


def results(records):
    return [{key: r[key] for key in RESULT_KEYS} for r in records]


def assert_tracked(frames):
    ids = {o['track_id'] for f in frames for o in f['objects']}
    assert ids and None not in ids, 'the tiny model should produce tracks to compare'


# -- sources ------------------------------------------------------------------------
def stream_udp(clip_path, server, tmp_path, *extra, first=0, count=None):
    url = udp_url(free_port(socket.SOCK_DGRAM))
    client = Client(url, server, tmp_path, *extra)
    client.wait_for('opening')               # then it listens: a datagram before would be lost
    time.sleep(0.3)
    sender = Sender(clip_path, url, 'mpegts', options=MPEGTS_OPTIONS, first=first, count=count)
    return client, sender, url


# -- no server ----------------------------------------------------------------------
def test_a_source_that_does_not_open_fails_in_one_line(tmp_path):
    closed = free_port()
    for url, reason in ((f'rtsp://127.0.0.1:{closed}/cam', 'Connection refused'),
                        (udp_url(free_port(socket.SOCK_DGRAM)), 'nothing received within 1 s'),
                        (f'http://127.0.0.1:{closed}/live.m3u8', 'Connection refused')):
        r = subprocess.run([sys.executable, '-m', 'mmtrack_serve.cli', 'stream', url, '--model', MODEL,
                            '--url', '127.0.0.1:9', '--source-timeout', '1', '--quiet'],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
        errors = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith('mmtrack-serve stream: error: cannot open'), errors
        assert url in errors[0] and reason in errors[0], errors[0]


# -- against TorchServe -------------------------------------------------------------
def hls_source(clip_path, folder):
    """A live HLS playlist of the clip, written at real time; the test serves it."""
    playlist = folder / 'live.m3u8'
    sender = Sender(clip_path, playlist, 'hls', options=HLS_OPTIONS, count=CLIP_FRAMES)
    deadline = time.time() + 30
    while not playlist.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert playlist.exists(), sender.error
    return sender


@server_test
@pytest.mark.parametrize('kind', ['udp', 'hls', 'rtsp'])
def test_a_live_stream_has_every_frame_with_the_whole_video_results(kind, server, clip, tmp_path):
    clip_path, frames = clip
    short = tmp_path / 'short.mp4'            # the clip's first CLIP_FRAMES frames, as sent
    short.write_bytes(encode_chunk(frames[:CLIP_FRAMES], FPS, 'lossless'))
    reference = whole(server, short)
    assert_tracked(reference)
    common = ('--source-timeout', '3', '--reconnect-timeout', '0', '--output', str(tmp_path / 'out.mp4'))
    if kind == 'udp':
        client, sender, _ = stream_udp(clip_path, server, tmp_path, *common, count=CLIP_FRAMES)
        log = client.finish()
    elif kind == 'hls':
        folder = tmp_path / 'hls'
        folder.mkdir()
        with http_folder(folder) as base:
            sender = hls_source(clip_path, folder)
            client = Client(f'{base}/live.m3u8', server, tmp_path, *common,
                            '--source-option', 'live_start_index=0')
            log = client.finish()
    else:
        why_not = rtsp_available()
        if why_not:
            pytest.skip(why_not)
        trimmed = tmp_path / 'trimmed.mp4'    # the server plays a file: the clip's first frames
        h264_clip(trimmed, frames[:CLIP_FRAMES], FPS)
        reference = whole(server, trimmed)
        with rtsp_server(trimmed) as url:
            client = Client(url, server, tmp_path, *common)
            log = client.finish()
        sender = None
    assert client.proc.returncode == 0, log
    assert sender is None or (sender.join(10) and sender.error is None), sender.error
    records = client.records()
    assert results(records) == reference, log           # every frame, ids and boxes equal
    assert all('skipped' not in r and 'reconnect' not in r for r in records)
    assert [r['capture_index'] for r in records] == list(range(CLIP_FRAMES))
    assert all(r['captured_at'] <= r['tracked_at'] for r in records)
    assert f'streamed {CLIP_FRAMES} frames' in client.stdout and '0 dropped' in client.stdout
    assert 'fps in' in client.stdout and 'latency' in client.stdout       # the status lines
    assert probe(client.output)['num_frames'] == CLIP_FRAMES
    assert len(client.mot.read_text().splitlines()) == sum(len(f['objects']) for f in reference)


@server_test
def test_a_source_lost_and_back_continues_one_sequence(server, clip, tmp_path):
    """The camera stops after 15 frames and comes back 3 s later with the
    next ones: one sequence, frame ids continuing, the gap recorded, and the
    results those of the frames received sent as one video."""
    clip_path, frames = clip
    client, sender, url = stream_udp(clip_path, server, tmp_path, '--source-timeout', '1',
                                     '--reconnect-seconds', '0.2', '--reconnect-timeout', '8',
                                     count=15)
    assert sender.join(30) and sender.error is None, sender.error
    time.sleep(3)
    again = Sender(clip_path, url, 'mpegts', options=MPEGTS_OPTIONS, first=15, count=15)
    assert again.join(30) and again.error is None, again.error
    time.sleep(1.5)                          # the client notices the end...
    log = client.finish(timeout=60)          # ...and gives up 8 s later: the stream's end
    assert client.proc.returncode == 0, log
    records = client.records()
    assert [r['frame_id'] for r in records] == list(range(len(records))), log
    # which clip frame each line is: the sender keeps the clip's timestamps
    received = [round(r['source_time'] * FPS) for r in records]
    assert received[:15] == list(range(15)), received
    assert received[15:] and received[15:] == list(range(received[15], 30)), received
    gap = records[15]['reconnect']
    assert gap['gap_s'] >= 2.5 and gap['attempts'] >= 1 and gap['reason'], gap
    assert 'nothing received' in gap['reason']
    assert sum('reconnect' in r for r in records) == 1
    assert '1 reconnects' in client.stdout and 'not back within 8 s' in client.stdout
    sent = tmp_path / 'received.mp4'
    sent.write_bytes(encode_chunk([frames[i] for i in received], FPS, 'lossless'))
    assert results(records) == whole(server, sent)


@server_test
def test_sigint_ends_the_sequence_and_leaves_valid_outputs(server, clip, tmp_path):
    clip_path, frames = clip
    seq_id = f'live-sigint-{int(time.time())}'
    client, sender, _ = stream_udp(clip_path, server, tmp_path, '--sequence-id', seq_id,
                                   '--output', str(tmp_path / 'out.mp4'), '--segment-seconds', '0.8')
    deadline = time.time() + 60
    while time.time() < deadline and (not client.jsonl.exists() or
                                       len(client.jsonl.read_text().splitlines()) < 12):
        time.sleep(0.1)
    client.proc.send_signal(signal.SIGINT)
    log = client.finish(timeout=60)
    sender.stop()
    assert client.proc.returncode == 0, log
    assert 'stopped by a signal' in client.stdout and 'Traceback' not in client.stderr, log
    records = client.records()
    n = len(records)
    assert 12 <= n < len(frames) and [r['frame_id'] for r in records] == list(range(n))
    segments = sorted(tmp_path.glob('out-*.mp4'))
    assert len(segments) >= 2 and segments[0].name == 'out-00000.mp4'
    counts = [probe(path)['num_frames'] for path in segments]
    assert sum(counts) == n and all(c == 10 for c in counts[:-1]), counts
    # the worker no longer holds the sequence
    r = put(server, MODEL, encode_chunk(frames[:1], FPS, 'lossless'), {HEADER_ID: seq_id})
    assert r.status_code == 410 and 'has ended' in r.json()['message'], r.text


@server_test
def test_a_sequence_ended_server_side_stops_with_one_line_and_valid_outputs(server, clip, tmp_path):
    clip_path, frames = clip
    seq_id = f'live-410-{int(time.time())}'
    client, sender, _ = stream_udp(clip_path, server, tmp_path, '--sequence-id', seq_id)
    deadline = time.time() + 60
    while time.time() < deadline and (not client.jsonl.exists() or
                                       len(client.jsonl.read_text().splitlines()) < 8):
        time.sleep(0.1)
    assert put(server, MODEL, b'', {HEADER_ID: seq_id, HEADER_END: 'true'}).status_code == 200
    log = client.finish(timeout=60)
    sender.stop()
    assert client.proc.returncode == 1, log
    errors = [line for line in client.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and 'HTTP 410' in errors[0] and 'Traceback' not in client.stderr, log
    records = client.records()
    assert len(records) >= 8 and [r['frame_id'] for r in records] == list(range(len(records)))


@pytest.fixture(scope='module')
def slow_server(tmp_path_factory):
    """The demo model (a real YOLOX-tiny ByteTrack) on one torch thread: slower
    than a 640x480 25 fps source on this machine's CPUs."""
    from mmtrack_serve.training.demo_model import published_model
    store = tmp_path_factory.mktemp('slow_store')
    config, ckpt = published_model()
    convert(str(config), str(ckpt), output_folder=store, model_name='demo', torch_threads=1)
    with running_server(store, tmp_path_factory.mktemp('slow_run')) as server:
        yield server


@server_test
def test_a_slow_server_makes_the_client_drop_frames_and_keep_the_lag_bounded(slow_server, tmp_path):
    fps, seconds, max_lag = 25, 10, 1.0
    made = make_video(tmp_path / 'big.mp4', num_frames=fps * seconds, size=(640, 480), fps=fps, seed=7)
    big = h264_clip(tmp_path / 'big_h264.mp4', list(VideoReader(made)), fps, keyint=25)
    url = udp_url(free_port(socket.SOCK_DGRAM))
    client = Client(url, slow_server, tmp_path, '--source-timeout', '3', '--reconnect-timeout', '0',
                    '--max-lag-seconds', str(max_lag), model='demo')
    client.wait_for('opening')
    time.sleep(0.3)
    sender = Sender(big, url, 'mpegts', options=MPEGTS_OPTIONS)
    log = client.finish(timeout=180)
    assert client.proc.returncode == 0, log
    assert sender.join(10) and sender.error is None, sender.error
    records = client.records()
    skipped = [r['skipped'] for r in records if 'skipped' in r]
    dropped = sum(s['count'] for s in skipped)
    assert dropped > 0, log
    assert f', {dropped} dropped' in client.stdout, log
    # every capture frame is either sent or recorded as skipped, in order
    covered = []
    for r in records:
        if 'skipped' in r:
            covered += range(r['skipped']['first'], r['skipped']['last'] + 1)
        covered.append(r['capture_index'])
    assert covered == list(range(len(covered))) and len(covered) >= fps * seconds - fps, covered[-5:]
    # Bounded: while the source sends, a chunk goes out within max_lag of the
    # newest frame, so its results come at most max_lag + a chunk's server time
    # after capture; without drops the lag would grow by the server's shortfall
    # for the whole 10 s. (After the source's end nothing newer comes: the last
    # max_lag of frames is still sent, later, not dropped: left out here.)
    chunk_times = [b['tracked_at'] - a['tracked_at'] for a, b in zip(records, records[1:])
                   if b['tracked_at'] != a['tracked_at']]
    slowest_chunk = max(chunk_times)
    live = [r['tracked_at'] - r['captured_at'] for r in records
            if r['captured_at'] < sender.finished_at - max_lag - slowest_chunk]
    assert len(live) >= len(records) // 2
    assert max(live) <= max_lag + 2 * slowest_chunk + 0.5, (max(live), slowest_chunk)
