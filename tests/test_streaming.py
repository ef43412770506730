"""Streaming: a live video sent in chunks, one sequence per source, against a
real TorchServe (a tiny random-weight MOT model, short clips, two sequences per
worker set through the converter; the --sequence-batching archive also gets a
2 s idle timeout), plus the sequence store and request classification alone.
``tiny_mot`` keeps its streams' state in the default state store (the run
dir's folder); ``tiny_mot_mem`` in its worker's memory only (--state-store
none). Redis and several servers: test_durable_streams.py."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import cv2
import pytest
import requests

from conftest import make_video
from mmtrack_serve.serving.stream_client import encode_chunk
from mmtrack_serve.converters.mmtrack2torchserve import convert
from mmtrack_serve.errors import InputError
from mmtrack_serve.handlers import sequences as seqs
from mmtrack_serve.video import VideoReader, probe
from serving import put, running_server, temp_leftovers

server_test = pytest.mark.server
MAX_SEQUENCES = 2
IDLE_MS = 2000              # tiny_mot_sb's; tiny_mot keeps the default (60 s): no test races it
ID, START, END = seqs.HEADER_ID, seqs.HEADER_START, seqs.HEADER_END


# -- the sequence store and request classification, no server ------------------------
class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def sequence(seq_id, clock):
    return seqs.Sequence(seq_id, session=object(), score_thr=0.5, init_bbox=None, last_used=clock())


def test_store_evicts_idle_sequences_and_remembers_them():
    clock = FakeClock()
    store = seqs.SequenceStore(max_sequences=2, idle_s=10, clock=clock)
    a, b = sequence('a', clock), sequence('b', clock)
    for seq in (a, b):
        store.add(seq)
        store.release(seq)
    clock.now += 6
    assert store.acquire('b') is b            # in use: busy, never evicted meanwhile
    clock.now += 6
    assert store.sweep() == ['a']
    assert store.acquire('a') is None and store.is_live('b')
    tomb = store.tombstone('a')
    assert tomb.reason == 'evicted' and tomb.idle_s == pytest.approx(12) and tomb.timeout_s == 10
    store.release(b)
    clock.now += 10.5
    assert store.sweep() == ['b'] and len(store) == 0


def test_store_full_says_when_to_retry_and_forgets_old_ids():
    clock = FakeClock()
    store = seqs.SequenceStore(max_sequences=2, idle_s=10, clock=clock, max_tombstones=3)
    for name in 'ab':
        seq = sequence(name, clock)
        store.add(seq)
        store.release(seq)
        clock.now += 4
    with pytest.raises(seqs.SequencesFull, match='all 2 sequence slots') as full:
        store.check_room()
    assert full.value.status == 503 and full.value.retry_after == 2     # 'a' idles out in 2 s
    clock.now += 2.5
    store.check_room()                                                   # 'a' evicted: room
    for name in 'cdef':
        store.close(sequence(name, clock), 'ended')
    assert store.tombstone('a') is None and store.tombstone('f').reason == 'ended'


@pytest.mark.parametrize('headers, stream, expected', [
    ({}, None, None),                                                    # a whole video
    ({ID: 'ts-seq-0f8e2c3a-1b2c-4d5e-8f90-a1b2c3d4e5f6', START: 'true'}, None, None),
    ({ID: 'ts-seq-0f8e2c3a-1b2c-4d5e-8f90-a1b2c3d4e5f6', START: 'true'}, 'true',
     ('ts-seq-0f8e2c3a-1b2c-4d5e-8f90-a1b2c3d4e5f6', True, False)),
    ({ID: 'ts-seq-0f8e2c3a-1b2c-4d5e-8f90-a1b2c3d4e5f6'}, None,         # its next chunk
     ('ts-seq-0f8e2c3a-1b2c-4d5e-8f90-a1b2c3d4e5f6', False, False)),
    ({ID: 'cam-1', START: 'true'}, None, ('cam-1', True, False)),
    ({'TS_REQUEST_SEQUENCE_ID': 'cam-1', 'Ts_Request_Sequence_End': '1'}, None, ('cam-1', False, True)),
])
def test_classify(headers, stream, expected):
    got = seqs.classify(headers, stream)
    assert (got if got is None else (got.seq_id, got.start, got.end)) == expected


def test_classify_stream_without_id_gets_one_and_bad_ids_are_refused():
    got = seqs.classify({}, 'true')
    assert got.start and got.chosen_by_server and seqs.SEQUENCE_ID.match(got.seq_id)
    with pytest.raises(InputError, match='ts_request_sequence_id must be'):
        seqs.classify({ID: 'a b'})


# -- against TorchServe --------------------------------------------------------------
@pytest.fixture(scope='module')
def store(tiny_files, tmp_path_factory):
    store = tmp_path_factory.mktemp('stream_store')
    config, ckpt = tiny_files['mot']
    # Chunks step frame by frame; whole videos here do too (detector batch 1), so
    # streamed and whole results can be compared for exact equality. (Batching's
    # own float-rounding-level equality is tested in test_batching.)
    convert(str(config), str(ckpt), output_folder=store, model_name='tiny_mot',
            max_sequences=MAX_SEQUENCES, detector_batch=1)
    convert(str(config), str(ckpt), output_folder=store, model_name='tiny_mot_mem',
            max_sequences=MAX_SEQUENCES, detector_batch=1, state_store='none')
    convert(str(config), str(ckpt), output_folder=store, model_name='tiny_mot_sb',
            max_sequences=MAX_SEQUENCES, sequence_idle_ms=IDLE_MS, sequence_batching=True,
            detector_batch=1)
    return store


@pytest.fixture(scope='module')
def server(store, tmp_path_factory):
    with running_server(store, tmp_path_factory.mktemp('stream_run')) as server:
        yield server


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    """Two different 8-frame clips and their decoded frames."""
    folder = tmp_path_factory.mktemp('stream_videos')
    paths = [make_video(folder / f'clip{seed}.mp4', seed=seed) for seed in (0, 5)]
    return [(path, list(VideoReader(path))) for path in paths]


STARTED = set()


@pytest.fixture(autouse=True)
def end_started_sequences(request):
    """Ends what a test started (so a failing test holds no slot for the next)."""
    yield
    if STARTED and 'server' in request.fixturenames:
        server = request.getfixturevalue('server')
        for model, seq_id in sorted(STARTED):
            put(server, model, b'', {ID: seq_id, END: 'true'})
    STARTED.clear()


def whole(server, video, model='tiny_mot'):
    r = put(server, model, video, {'output': 'json', 'score_thr': '0'})
    assert r.status_code == 200, r.text
    return r.json()


def chunk(server, seq_id, body, model='tiny_mot', **headers):
    """One chunk of sequence ``seq_id``; start=/end= keyword flags, other keywords as headers."""
    all_headers = {ID: seq_id, 'score_thr': '0'}
    for flag, header in (('start', START), ('end', END)):
        if headers.pop(flag, False):
            all_headers[header] = 'true'
    all_headers.update(headers)
    STARTED.add((model, seq_id))
    return put(server, model, body, all_headers)


def png(frame):
    return cv2.imencode('.png', frame)[1].tobytes()


def new_id(prefix='seq'):
    return f'{prefix}-{uuid.uuid4().hex[:8]}'


def assert_tracked(result):
    ids = {o['track_id'] for f in result['frames'] for o in f['objects']}
    assert ids and None not in ids, 'the tiny model should produce tracks to compare'


@server_test
def test_a_video_streamed_in_chunks_equals_the_whole_video(server, clips, tmp_path):
    video = clips[0][0]
    out, js, mot = tmp_path / 'stream.mp4', tmp_path / 'stream.json', tmp_path / 'stream.txt'
    r = subprocess.run([sys.executable, '-m', 'mmtrack_serve.cli', 'stream', str(video),
                        '--url', f'127.0.0.1:{server.port_base}', '--model', 'tiny_mot',
                        '--chunk-frames', '3', '--score-thr', '0', '--output', str(out),
                        '--json', str(js), '--mot', str(mot)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'streamed 8 frames in 3 chunks' in r.stdout
    streamed, reference = json.loads(js.read_text()), whole(server, video)
    assert streamed == reference          # ids, boxes, scores, video info: all of it
    assert_tracked(streamed)
    info = probe(out)
    assert (info['codec'], info['num_frames'], info['width'], info['height']) == ('h264', 8, 160, 120)
    assert len(mot.read_text().splitlines()) == sum(len(f['objects']) for f in reference['frames'])


@server_test
def test_stream_command_lossy_chunks_and_a_one_line_error(server, clips, tmp_path):
    base = [sys.executable, '-m', 'mmtrack_serve.cli', 'stream', str(clips[1][0]),
            '--url', f'127.0.0.1:{server.port_base}', '--chunk-frames', '5', '--quiet']
    js = tmp_path / 'lossy.json'
    ok = subprocess.run(base + ['--model', 'tiny_mot', '--chunk-codec', 'h264', '--json', str(js)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert [f['frame_id'] for f in json.loads(js.read_text())['frames']] == list(range(8))
    bad = subprocess.run(base + ['--model', 'no_such_model'], capture_output=True, text=True)
    assert bad.returncode == 1 and 'Traceback' not in bad.stderr
    assert bad.stderr.count('error:') == 1 and 'HTTP 404' in bad.stderr


@server_test
def test_two_sequences_interleaved_do_not_mix(server, clips):
    (video_a, frames_a), (video_b, frames_b) = clips
    a, b = new_id('a'), new_id('b')
    chunks_a = [encode_chunk(frames_a[i:i + 3], 12.5, 'lossless') for i in range(0, 8, 3)]
    got = {a: [], b: []}
    for i in range(8):                     # b: one PNG per request; a: 3-frame mp4s
        if i < len(chunks_a):
            r = chunk(server, a, chunks_a[i], start=i == 0, end=i == len(chunks_a) - 1)
            assert r.status_code == 200, r.text
            got[a] += r.json()['frames']
        r = chunk(server, b, png(frames_b[i]), start=i == 0, end=i == 7)
        assert r.status_code == 200, r.text
        assert (r.json()['chunk'], r.json()['frames'][0]['frame_id']) == (i, i), r.text[:300]
        got[b] += r.json()['frames']
    assert got[a] == whole(server, video_a)['frames']
    assert got[b] == whole(server, video_b)['frames']


@server_test
def test_a_chunk_as_annotated_mp4_or_mot_lines(server, clips):
    frames = clips[0][1]
    seq_id = new_id()
    r = chunk(server, seq_id, encode_chunk(frames[:5], 12.5, 'lossless'), start=True, output='mp4')
    assert r.status_code == 200 and r.headers['content-type'] == 'video/mp4'
    assert (r.headers[ID], r.headers['x-sequence-chunk'], r.headers['x-sequence-first-frame']) == \
        (seq_id, '0', '0')
    info = probe(r.content)
    assert (info['codec'], info['num_frames'], float(info['fps'])) == ('h264', 5, 12.5)
    r = chunk(server, seq_id, png(frames[5]), end=True, output='mot')
    assert r.status_code == 200 and r.headers['content-type'].startswith('text/plain')
    assert {line.split(',')[0] for line in r.text.splitlines()} == {'6'}    # frame 5, 1-based
    assert r.headers[END] == seq_id
    assert temp_leftovers(server) == []


@server_test
def test_an_idle_sequence_is_evicted_and_its_id_starts_fresh(server, clips):
    frames = clips[0][1]
    seq_id, fresh = new_id('idle'), new_id('fresh')
    for i in range(3):
        r = chunk(server, seq_id, png(frames[i]), model='tiny_mot_sb', start=i == 0)
        assert r.status_code == 200, r.text
    time.sleep(IDLE_MS / 1000 + 0.8)
    r = chunk(server, seq_id, png(frames[3]), model='tiny_mot_sb')
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer['restarted'] is True and r.headers['x-sequence-restarted'] == 'true'
    assert 'evicted after' in answer['restart_reason'] and '3 frames' in answer['restart_reason']
    assert answer['chunk'] == 0 and answer['frames'][0]['frame_id'] == 0
    control = chunk(server, fresh, png(frames[3]), model='tiny_mot_sb', start=True, end=True)
    assert answer['frames'] == control.json()['frames']       # a fresh tracker: nothing carried over
    ended = chunk(server, seq_id, b'', model='tiny_mot_sb', end=True)
    assert ended.status_code == 200 and ended.json()['ended'] and ended.json()['frames'] == []


@server_test
def test_a_full_worker_answers_503_and_whole_videos_still_go_through(server, clips):
    """Memory only (--state-store none): a worker holds MAX_SEQUENCES streams."""
    video, frames = clips[0]
    first, second, third = new_id('one'), new_id('two'), new_id('three')
    mem = 'tiny_mot_mem'
    for seq_id in (first, second):
        r = chunk(server, seq_id, png(frames[0]), model=mem, start=True)
        assert r.status_code == 200, r.text
        assert 'x-sequence-state' not in r.headers and 'state' not in r.json()
    full = chunk(server, third, png(frames[0]), model=mem, start=True)
    assert full.status_code == 503, full.text
    error = full.json()
    assert error['code'] == 503 and error['type'] == 'SequencesFull'
    assert f'all {MAX_SEQUENCES} sequence slots' in error['message']
    assert int(full.headers['Retry-After']) >= 1
    assert put(server, mem, video).status_code == 200          # whole videos need no slot
    assert chunk(server, first, png(frames[1]), model=mem, end=True).status_code == 200
    assert chunk(server, third, png(frames[0]), model=mem, start=True, end=True).status_code == 200
    assert chunk(server, second, b'', model=mem, end=True).status_code == 200


@server_test
def test_with_a_state_store_a_full_worker_makes_room_and_loses_nothing(server, clips):
    """The default state store: a worker's slots hold copies of stored
    sequences, so a new one drops the least recently used copy, which the next
    chunk of that sequence takes up from the store with the same ids."""
    video, frames = clips[0]
    ids = [new_id('room') for _ in range(MAX_SEQUENCES + 1)]
    answers = {seq_id: [] for seq_id in ids}
    for i in range(4):
        for seq_id in ids:
            r = chunk(server, seq_id, png(frames[i]), start=i == 0, end=i == 3)
            assert r.status_code == 200, r.text
            assert r.headers.get('x-sequence-state') == ('saved' if i < 3 else None)
            answers[seq_id] += r.json()['frames']
    reference = whole(server, encode_chunk(frames[:4], 12.5, 'lossless'))['frames']
    assert all(answers[seq_id] == reference for seq_id in ids)


@server_test
def test_chunk_indexes_refuse_gaps_and_answer_a_retry_again(server, clips):
    frames = clips[0][1]
    seq_id = new_id('index')
    first = chunk(server, seq_id, png(frames[0]), start=True, **{'x-sequence-chunk': '0'})
    assert first.status_code == 200 and first.headers['x-sequence-chunk'] == '0'
    gap = chunk(server, seq_id, png(frames[2]), **{'x-sequence-chunk': '2'})
    assert gap.status_code == 409 and 'its next chunk is 1' in gap.json()['message']
    second = chunk(server, seq_id, png(frames[1]), **{'x-sequence-chunk': '1'})
    assert second.status_code == 200 and second.json()['frames'][0]['frame_id'] == 1
    retry = chunk(server, seq_id, png(frames[1]), **{'x-sequence-chunk': '1'})
    assert retry.status_code == 200 and retry.headers['x-sequence-replayed'] == 'true'
    assert retry.content == second.content                       # tracked once, answered twice
    old = chunk(server, seq_id, png(frames[0]), **{'x-sequence-chunk': '0'})
    assert old.status_code == 409 and 'was tracked already' in old.json()['message']
    bad = chunk(server, seq_id, png(frames[2]), **{'x-sequence-chunk': 'two'})
    assert bad.status_code == 400 and 'x-sequence-chunk' in bad.json()['message']
    third = chunk(server, seq_id, png(frames[2]), end=True)       # an index is optional
    assert third.status_code == 200 and third.json()['frames'][0]['frame_id'] == 2


@server_test
def test_protocol_errors_are_clear_and_keep_the_sequence(server, clips):
    frames = clips[0][1]
    seq_id = new_id()
    assert chunk(server, seq_id, png(frames[0]), start=True).status_code == 200
    again = chunk(server, seq_id, png(frames[1]), start=True)
    assert again.status_code == 409 and 'already running' in again.json()['message']
    small = chunk(server, seq_id, png(frames[1][:60, :80]))
    assert small.status_code == 400 and '80x60' in small.json()['message']
    empty = chunk(server, seq_id, b'')
    assert empty.status_code == 400 and 'no chunk' in empty.json()['message']
    junk = chunk(server, seq_id, b'not a video' * 20)
    assert junk.status_code == 400
    bad_id = chunk(server, 'no spaces allowed', png(frames[1]))
    assert bad_id.status_code == 400 and 'ts_request_sequence_id' in bad_id.json()['message']
    r = chunk(server, seq_id, png(frames[1]), end=True)      # none of that touched the sequence
    assert r.status_code == 200 and r.json()['frames'][0]['frame_id'] == 1 and r.json()['ended']
    ended = chunk(server, seq_id, png(frames[2]))
    assert ended.status_code == 410 and 'has ended' in ended.json()['message']
    unknown = chunk(server, new_id('never'), png(frames[0]))
    assert unknown.status_code == 410 and 'unknown or expired sequence' in unknown.json()['message']
    assert unknown.headers[END] == unknown.headers[ID]
    # stream: true without an id: the server chooses one and says which
    chosen = put(server, 'tiny_mot', png(frames[0]), {'stream': 'true'})
    assert chosen.status_code == 200, chosen.text
    chosen_id = chosen.headers[ID]
    assert chosen.json()['sequence_id'] == chosen_id
    assert chunk(server, chosen_id, png(frames[1]), end=True).json()['frames'][0]['frame_id'] == 1


@server_test
def test_with_torchserve_sequence_batching_whole_videos_hold_no_slot(server, clips):
    """--sequence-batching: TorchServe gives every request without an id a
    sequence of its own (ts-seq-<uuid>) and caps them (maxNumSequence = 2 + 16
    here); the handler ends each at once, so whole videos never run out."""
    video, frames = clips[0]
    image = png(frames[0])                  # a one-frame whole video: quick
    reference = whole(server, image)
    for _ in range(MAX_SEQUENCES + 16 + 2):
        r = put(server, 'tiny_mot_sb', image, {'output': 'json', 'score_thr': '0'})
        assert r.status_code == 200, r.text
        assert r.json() == reference and r.headers[END].startswith('ts-seq-')
    started = put(server, 'tiny_mot_sb', image, {'stream': 'true', 'score_thr': '0'})
    assert started.status_code == 200, started.text
    seq_id = started.headers[ID]
    assert seq_id.startswith('ts-seq-') and END not in started.headers
    r = chunk(server, seq_id, encode_chunk(frames[1:8], 12.5, 'lossless'), model='tiny_mot_sb', end=True)
    assert r.status_code == 200, r.text
    assert started.json()['frames'] + r.json()['frames'] == whole(server, video)['frames']


def kill_worker(server, model):
    """SIGKILLs ``model``'s worker; returns once TorchServe has a new one READY."""
    old_pid = worker(server, model)['pid']
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.time() + 180
    while time.time() < deadline:
        current = worker(server, model)
        if current['status'] == 'READY' and current['pid'] != old_pid:
            return
        time.sleep(0.5)
    pytest.fail(f'no new worker after killing {old_pid}: {worker(server, model)}')


@server_test
def test_after_a_worker_restart_a_stored_sequence_goes_on_with_its_ids(server, clips):
    """Kills the tiny_mot worker between two chunks: the restarted worker
    takes the sequence up from the default state store (the run dir)."""
    video, frames = clips[0]
    seq_id = new_id('durable')
    first = chunk(server, seq_id, encode_chunk(frames[:4], 12.5, 'lossless'), start=True)
    assert first.status_code == 200 and first.headers['x-sequence-state'] == 'saved', first.text
    assert list((server.run_dir / 'state' / 'tiny_mot').glob(f'{seq_id}.state'))
    kill_worker(server, 'tiny_mot')
    rest = chunk(server, seq_id, encode_chunk(frames[4:], 12.5, 'lossless'), end=True)
    assert rest.status_code == 200, rest.text
    assert first.json()['frames'] + rest.json()['frames'] == whole(server, video)['frames']
    assert_tracked(rest.json())


@server_test
def test_after_a_worker_restart_lost_sequences_get_410(server, clips):
    """Memory only (--state-store none): the sequences a killed worker held
    are gone, and say so instead of restarting their ids."""
    video, frames = clips[0]
    seq_id, mem = new_id('lost'), 'tiny_mot_mem'
    assert chunk(server, seq_id, png(frames[0]), model=mem, start=True).status_code == 200
    kill_worker(server, mem)
    lost = chunk(server, seq_id, png(frames[1]), model=mem)
    assert lost.status_code == 410, lost.text
    assert 'unknown or expired sequence' in lost.json()['message']
    assert 'worker restarted' in lost.json()['message']
    restarted = chunk(server, seq_id, png(frames[0]), model=mem, start=True, end=True)
    assert restarted.status_code == 200 and restarted.json()['frames'][0]['frame_id'] == 0
    assert put(server, mem, video).status_code == 200


def worker(server, model='tiny_mot'):
    r = requests.get(f'{server.management_url}/models/{model}', timeout=10)
    return r.json()[0]['workers'][0]
