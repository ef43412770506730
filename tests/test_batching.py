"""Detector batching and background video I/O: both must leave the results
exactly as frame-by-frame, in-line tracking gives them."""
import threading

import numpy as np
import pytest

from conftest import make_video, session_kwargs
from mmtrack_serve import frame_loop
from mmtrack_serve.api import track_video
from mmtrack_serve.background import BackgroundCalls, prefetched
from mmtrack_serve.errors import InputError
from mmtrack_serve.serving.parity import compare
from mmtrack_serve.video import VideoReader

@pytest.fixture(scope='module')
def long_video(tmp_path_factory):
    # 11 frames: batches of 4 leave a partial one at the end
    return make_video(tmp_path_factory.mktemp('batching') / 'clip.mp4', num_frames=11)


@pytest.fixture(scope='module')
def tiny_deepsort():
    """A random-weight two-stage MOT model (Faster R-CNN + ReID)."""
    import warnings
    from tiny_models import TINY_DEEPSORT
    from mmtrack_serve.mmtrack_compat import load_config
    from mmtrack_serve.models import load_model
    import torch
    torch.manual_seed(0)
    name, options = TINY_DEEPSORT
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load_model(load_config(name, options))


def assert_same_tracks(got, reference):
    """Same frames, objects and track ids; boxes and scores within parity's tolerances."""
    report = compare(got, reference)
    assert report.ok, report.table()


def count_objects(results):
    return sum(len(f['objects']) for f in results['frames'])


@pytest.mark.parametrize('model_name', ['bytetrack', 'deepsort'])
def test_detector_batch_gives_frame_by_frame_tracks(model_name, tiny_model, tiny_deepsort, long_video):
    model = tiny_model('mot') if model_name == 'bytetrack' else tiny_deepsort
    assert model.can_batch_frames
    one = track_video(model, long_video, score_thr=0.0, detector_batch=1, background_io=False)
    assert count_objects(one) > 0 and any(o['track_id'] for f in one['frames'] for o in f['objects'])
    for batch in (4, 11, 16):
        assert_same_tracks(track_video(model, long_video, score_thr=0.0, detector_batch=batch), one)


@pytest.fixture
def detector_passes(tiny_model, monkeypatch):
    """The batch size of each real ``extract_feat`` pass of the tiny MOT model's detector."""
    detector_class = type(tiny_model('mot').module.detector)
    real = detector_class.extract_feat
    batch_sizes = []

    def spy(self, img):
        batch_sizes.append(img.shape[0])
        return real(self, img)
    monkeypatch.setattr(detector_class, 'extract_feat', spy)
    return batch_sizes


def test_detector_runs_once_per_batch(tiny_model, long_video, detector_passes):
    model = tiny_model('mot')
    track_video(model, long_video, detector_batch=4)
    assert detector_passes == [4, 4, 3]
    assert 'extract_feat' not in vars(model.module.detector)    # the per-frame shim is gone
    assert 'extract_feat' not in vars(model.module.detector)    # the per-frame shim is gone


def test_automatic_batch_fills_passes_by_input_size(tiny_model, long_video, detector_passes):
    import torch
    from mmtrack_serve.mmtrack_compat import frames_per_pass
    assert frames_per_pass(torch.zeros(1, 3, 256, 320)) == 4          # the demo model's input
    assert frames_per_pass(torch.zeros(1, 3, 608, 1088)) == 1         # Faster R-CNN on 1080p
    assert frames_per_pass(torch.zeros(1, 3, 96, 128)) == 8           # capped
    assert frames_per_pass(torch.zeros(1, 3, 608, 1088), wanted=3) == 3
    track_video(tiny_model('mot'), long_video)                         # 128x96 inputs
    assert detector_passes == [8, 3]


@pytest.mark.parametrize('task', ['sot', 'vid', 'vis'])
def test_other_tasks_step_frame_by_frame_with_a_batch(task, tiny_model, long_video):
    model = tiny_model(task)
    assert not model.can_batch_frames
    kwargs = dict(score_thr=0.0, **session_kwargs(task))
    one = track_video(model, long_video, detector_batch=1, background_io=False, **kwargs)
    four = track_video(model, long_video, detector_batch=4, **kwargs)
    assert one['frames'] == four['frames']


def decoded(path):
    with VideoReader(path) as reader:
        return [frame for frame in reader]


def test_background_io_writes_the_same_video(tiny_model, long_video, tmp_path):
    inline, background = tmp_path / 'inline.mp4', tmp_path / 'background.mp4'
    a = track_video(tiny_model('mot'), long_video, output=inline, score_thr=0.0,
                    detector_batch=1, background_io=False)
    b = track_video(tiny_model('mot'), long_video, output=background, score_thr=0.0,
                    detector_batch=1, background_io=True)
    assert a['frames'] == b['frames']
    frames_a, frames_b = decoded(inline), decoded(background)
    assert len(frames_a) == 11
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))


def test_an_encoding_error_is_raised_and_no_thread_is_left(tiny_model, long_video, tmp_path,
                                                           monkeypatch):
    before = threading.active_count()

    def broken_draw(frame, objects):
        raise RuntimeError('disk full while encoding')
    monkeypatch.setattr(frame_loop, 'draw_objects', broken_draw)
    with pytest.raises(RuntimeError, match='disk full'):
        track_video(tiny_model('mot'), long_video, output=tmp_path / 'out.mp4')
    assert threading.active_count() == before


def test_a_truncated_upload_is_still_an_input_error(tiny_model, long_video, tmp_path):
    # an H.264 mp4 with its index first, so the cut-off file still opens
    faststart = tmp_path / 'faststart.mp4'
    track_video(tiny_model('mot'), long_video, output=faststart)
    data = faststart.read_bytes()
    before = threading.active_count()
    with pytest.raises(InputError, match='truncated|corrupt'):
        track_video(tiny_model('mot'), data[:len(data) * 2 // 3])
    assert threading.active_count() == before


def test_prefetched_keeps_order_raises_and_stops_early():
    assert list(prefetched(range(100), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError('bad frame')
    items = prefetched(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match='bad frame'):
        next(items)

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1
    before = threading.active_count()
    items = prefetched(endless(), depth=2)
    assert next(items) == 0
    items.close()
    assert threading.active_count() == before
    assert len(produced) <= 5     # it stopped, a bounded distance ahead


def test_background_calls_run_in_order_and_report_the_first_error():
    seen = []
    with BackgroundCalls(seen.append, depth=2) as calls:
        for i in range(50):
            calls.submit(i)
    assert seen == list(range(50))

    def fail_on_three(i):
        if i == 3:
            raise OSError('no space left')
        seen.append(i)
    seen.clear()
    calls = BackgroundCalls(fail_on_three)
    with pytest.raises(OSError, match='no space'):
        for i in range(1000):
            calls.submit(i)
        calls.close()
    calls.abort()
    assert seen == [0, 1, 2]
