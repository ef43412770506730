"""The core library: a session per task type on a real (synthetic) mp4."""
import os
import platform
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from conftest import TASKS, TESTS, make_video, session_kwargs
from mmtrack_serve.api import track_video
from mmtrack_serve.results import read_mot_txt, write_json, write_mot_txt
from mmtrack_serve.video import VideoReader, probe


def opencv_decode(path):
    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    info = (frames, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            cap.get(cv2.CAP_PROP_FPS))
    cap.release()
    return info


@pytest.mark.parametrize('task', TASKS)
def test_annotated_video_is_h264_with_input_frames_size_fps(task, tiny_model, video, tmp_path):
    out = tmp_path / 'out.mp4'
    results = track_video(tiny_model(task), video, output=out, score_thr=0.0, **session_kwargs(task))
    assert results['task'] == task
    assert results['video'] == {'width': 160, 'height': 120, 'fps': 12.5, 'num_frames': 8}
    frames, width, height, fps = opencv_decode(out)       # a second decoder
    assert (frames, width, height) == (8, 160, 120)
    assert fps == pytest.approx(12.5)
    info = probe(out)
    assert info['codec'] == 'h264' and info['pix_fmt'] == 'yuv420p'
    data = out.read_bytes()
    assert data.index(b'moov') < data.index(b'mdat'), 'not faststart'
    objects = [o for f in results['frames'] for o in f['objects']]
    assert objects, 'the tiny model should produce objects to draw'
    if task == 'vid':
        assert all(o['track_id'] is None for o in objects)
    else:
        assert all(isinstance(o['track_id'], int) for o in objects)
    if task == 'vis':
        assert all(o['mask']['size'] == [120, 160] for o in objects)


def test_annotations_are_drawn(tiny_model, video, tmp_path):
    out = tmp_path / 'out.mp4'
    results = track_video(tiny_model('sot'), video, output=out, score_thr=0.0, **session_kwargs('sot'))
    first_in = next(iter(VideoReader(video)))
    first_out = next(iter(VideoReader(out)))
    x1, y1, x2, y2 = (int(v) for v in results['frames'][0]['objects'][0]['bbox'])
    # the box edge differs from the input there, and far from it the frames agree
    assert abs(first_out[y1, x1 + 5].astype(int) - first_in[y1, x1 + 5]).sum() > 60
    assert abs(first_out[110, 150].astype(int) - first_in[110, 150]).sum() < 40


@pytest.mark.parametrize('task', TASKS)
def test_json_and_mot_txt_agree(task, tiny_model, video, tmp_path):
    results = track_video(tiny_model(task), video, score_thr=0.0, **session_kwargs(task))
    write_json(results, tmp_path / 'r.json')
    write_mot_txt(results['frames'], tmp_path / 'r.txt')
    from_txt = read_mot_txt(tmp_path / 'r.txt')
    for frame in results['frames']:
        rows = from_txt.get(frame['frame_id'], [])
        assert len(rows) == len(frame['objects'])
        for (track_id, box, score), obj in zip(rows, frame['objects']):
            assert track_id == (-1 if obj['track_id'] is None else obj['track_id'])
            assert box == pytest.approx(obj['bbox'], abs=2e-3)
            assert score == pytest.approx(obj['score'], abs=1e-6)


@pytest.mark.parametrize('task', TASKS)
def test_interleaved_sessions_equal_sequential_runs(task, tiny_model, tmp_path):
    model = tiny_model(task)
    videos = [list(VideoReader(make_video(tmp_path / f'{s}.mp4', seed=s))) for s in (1, 2)]

    # SOT: a different target per video, so states that mixed would show
    boxes = [(40, 30, 80, 70), (60, 40, 110, 90)]

    def run(order):
        sessions = [model.session(score_thr=0.0, init_bbox=boxes[i] if task == 'sot' else None)
                    for i in range(len(videos))]
        out = [[], []]
        for v, i in order:
            out[v].append(sessions[v].step(videos[v][i]).to_json())
        return out

    n = len(videos[0])
    sequential = run([(0, i) for i in range(n)] + [(1, i) for i in range(n)])
    interleaved = run([(v, i) for i in range(n) for v in (0, 1)])
    assert sequential == interleaved
    assert sequential[0] != sequential[1]


# VmHWM, not ru_maxrss: a process exec'ed from pytest inherits pytest's peak
# as its ru_maxrss (Linux keeps the larger across exec), which would hide both
MEMORY_SCRIPT = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[4])
    from conftest import make_video
    from mmtrack_serve.api import track_video
    from mmtrack_serve.models import load_model
    video = make_video(sys.argv[3], num_frames=int(sys.argv[5]), size=(320, 240))
    model = load_model(sys.argv[1], sys.argv[2])
    track_video(model, video, output=sys.argv[3] + '.out.mp4', score_thr=0.0)
    with open('/proc/self/status') as status:
        print(next(line.split()[1] for line in status if line.startswith('VmHWM:')))
''')


def test_memory_stays_flat_for_a_five_times_longer_video(tiny_files, tmp_path):
    config, ckpt = tiny_files['mot']

    def peak_kib(frames):
        out = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT, str(config), str(ckpt),
                              str(tmp_path / f'v{frames}.mp4'), str(TESTS), str(frames)],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    short, long = peak_kib(30), peak_kib(150)
    # generous: 150 frames of 320x240 held in memory would add > 30 MiB
    assert long < short * 1.1 + 20 * 1024, (short, long)


def test_frame_folder_input(tiny_model, video, tmp_path):
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i, frame in enumerate(VideoReader(video)):
        cv2.imwrite(str(folder / f'{i:06d}.png'), frame)
    from_folder = track_video(tiny_model('mot'), folder, score_thr=0.0, fps=12.5)
    assert from_folder['video'] == {'width': 160, 'height': 120, 'fps': 12.5, 'num_frames': 8}
    from_video = track_video(tiny_model('mot'), video, score_thr=0.0)
    assert from_folder['frames'] == from_video['frames']


def test_reader_is_lazy(video, monkeypatch):
    """Opening decodes no frame; each step of the iteration decodes one."""
    import av
    decoded = []
    real_open = av.open

    class CountingContainer:
        def __init__(self, container):
            self._container = container

        def __getattr__(self, name):
            return getattr(self._container, name)

        def decode(self, *args, **kwargs):
            for frame in self._container.decode(*args, **kwargs):
                decoded.append(frame.pts)
                yield frame

    monkeypatch.setattr(av, 'open', lambda *a, **k: CountingContainer(real_open(*a, **k)))
    reader = VideoReader(video)
    assert reader._container is not None and reader.num_frames == 8
    frames = iter(reader)
    assert decoded == []
    next(frames)
    assert len(decoded) == 1
    next(frames)
    assert len(decoded) == 2
    reader.close()


def test_folder_reader_reads_one_image_per_frame(tmp_path, monkeypatch):
    from mmtrack_serve import video as video_module
    for i in range(4):
        cv2.imwrite(str(tmp_path / f'{i:03d}.png'), np.full((12, 16, 3), i * 40, np.uint8))
    read = []
    real_read = video_module._read_image
    monkeypatch.setattr(video_module, '_read_image',
                        lambda path: read.append(path) or real_read(path))
    reader = VideoReader(tmp_path)
    assert (reader.width, reader.height, reader.num_frames) == (16, 12, 4)
    assert len(read) == 1                   # the first image, for the frame size
    frames = iter(reader)
    first = next(frames)
    assert len(read) == 2 and first[0, 0, 0] == 0
    assert next(frames)[0, 0, 0] == 40 and len(read) == 3


@pytest.mark.parametrize('make, message', [
    (lambda p: p.write_bytes(b'not a video at all' * 100) and p, 'not a readable video'),
    (lambda p: p.write_bytes(b'') is not None and p, 'empty'),
    (lambda p: p / 'missing.mp4', 'no such file'),
])
def test_bad_inputs_raise_input_errors(make, message, tmp_path):
    from mmtrack_serve.errors import InputError
    path = make(tmp_path / 'bad.mp4')
    with pytest.raises(InputError, match=message):
        VideoReader(path)


def test_sot_needs_an_init_bbox_inside_the_frame(tiny_model, video):
    from mmtrack_serve.errors import InputError
    with pytest.raises(InputError, match='init_bbox'):
        tiny_model('sot').session()
    with pytest.raises(InputError, match='outside'):
        track_video(tiny_model('sot'), video, init_bbox='100,100,200,200')
    with pytest.raises(InputError, match='four'):
        tiny_model('sot').session(init_bbox='1,2,3')


def test_non_tracking_config_is_refused():
    from mmtrack_serve.errors import ConfigError
    from mmtrack_serve.models import load_model
    with pytest.raises(ConfigError, match=r"detector \(FasterRCNN\).*not an MMTracking video model"):
        load_model('faster-rcnn_r50_fpn_4e_mot17-half')
    with pytest.raises(ConfigError, match="'ResNet' is not an MMTracking video model"):
        load_model('faster-rcnn_r50_fpn_4e_mot17-half', cfg_options={'model.type': 'ResNet'})
    with pytest.raises(ConfigError, match='no such config'):
        load_model('no_such_config_anywhere')


def test_config_urls_are_never_downloaded():
    """The full-size SiamRPN++ config names its backbone by URL: loading
    without a checkpoint warns and stays offline (no_network guards it)."""
    from mmtrack_serve.models import load_model
    with pytest.warns(UserWarning, match='not downloading 1 pretrained weight'):
        model = load_model('siamese_rpn_r50_20e_lasot')
    assert model.task == 'sot'


def test_keep_frames_false_writes_the_video_without_per_frame_results(tiny_model, video, tmp_path):
    out = tmp_path / 'out.mp4'
    results = track_video(tiny_model('mot'), video, output=out, score_thr=0.0, keep_frames=False)
    assert results['frames'] == [] and results['video']['num_frames'] == 8
    assert probe(out)['num_frames'] == 8


MALLOC_PROBE = """
import ctypes, json, sys
from mmtrack_serve.tuning import tune_malloc
libc = ctypes.CDLL('libc.so.6')
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                'arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost'.split()]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
applied = tune_malloc()
before = libc.mallinfo2().hblks
block = libc.malloc(4 * 2 ** 20)
print(json.dumps({'applied': applied, 'mmapped': libc.mallinfo2().hblks - before}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='glibc malloc only')
@pytest.mark.parametrize('env, applied, mmapped', [
    ({}, {'arena_max', 'mmap_threshold', 'trim_threshold'}, 0),
    ({'MALLOC_TRIM_THRESHOLD_': '131072'}, {'arena_max', 'mmap_threshold'}, 0),
    ({'MMTRACK_SERVE_MALLOC_TUNING': '0'}, set(), 1),
])
def test_malloc_tuning_keeps_frame_sized_blocks_off_mmap(env, applied, mmapped):
    """A 4 MiB block (an activation's size) comes from the heap once tuned;
    glibc's default mmaps it; the user's own MALLOC_* variable wins."""
    import json
    out = subprocess.run([sys.executable, '-c', MALLOC_PROBE], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True).stdout
    probe = json.loads(out)
    assert set(probe['applied']) == applied
    assert probe['mmapped'] == mmapped


def test_allocator_bench_variant_runs_tuned_with_only_its_own_malloc_variables(monkeypatch):
    """`benchmarks/allocator.py --variant` (how a setting is tried before it
    goes into MALLOC_SETTINGS): glibc tuned, plus the variant's variables and
    none of the caller's."""
    monkeypatch.syspath_prepend(str(TESTS.parent / 'benchmarks'))
    import allocator
    from mmtrack_serve.tuning import MALLOC_TUNING_ENV
    monkeypatch.setenv('MALLOC_ARENA_MAX', '7')
    variants = dict([allocator.parse_variant('pad256:MALLOC_TOP_PAD_=268435456,MALLOC_TRIM_THRESHOLD_=1')])
    env = allocator.allocator_env('pad256', variants)
    assert {k: v for k, v in env.items() if k.startswith('MALLOC_')} == {
        'MALLOC_TOP_PAD_': '268435456', 'MALLOC_TRIM_THRESHOLD_': '1'}
    assert MALLOC_TUNING_ENV not in env
    assert allocator.allocator_env(allocator.GLIBC)[MALLOC_TUNING_ENV] == '0'
    for spec in ('pad256', 'pad256:', 'pad256:TOP_PAD=1', 'pad256:MALLOC_TOP_PAD_='):
        with pytest.raises(Exception, match='expected LABEL'):
            allocator.parse_variant(spec)


def test_default_score_thr_is_the_tasks(tiny_model, video):
    """score_thr=None (every default) is MMTracking's: every object a MOT/VIS
    tracker reports, 0.5 for VID detections."""
    from mmtrack_serve.defaults import default_score_thr
    assert [default_score_thr(t) for t in ('mot', 'vis', 'sot', 'vid')] == [0.0, 0.0, 0.0, 0.5]
    model = tiny_model('mot')
    assert model.session().score_thr == 0.0
    assert track_video(model, video) == track_video(model, video, score_thr=0.0)
    assert tiny_model('vid').session().score_thr == 0.5
