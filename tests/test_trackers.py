"""The fast trackers (``mmtrack_serve.trackers``, issue #16) against mmtrack's own.

The Kalman filter and box arithmetic are compared value by value (bit for bit);
the trackers frame by frame on seeded synthetic detection streams: the same
boxes, labels and ids, in the same order. The real-weights tests
(test_real_weights.py) compare the served default, which runs the fast
tracker, with mmtrack's own ``inference_mot`` on real frames.
"""
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from detection_streams import H, W, build_tracker, crowd_stream, step, synthetic_stream
from mmtrack_serve import trackers, tuning
from mmtrack_serve.errors import ConfigError
from mmtrack_serve.trackers.byte_tracker import FastByteTracker
from mmtrack_serve.trackers.ocsort_tracker import FastOCSORTTracker
from mmtrack_serve.trackers.sort_tracker import FastSortTracker
from mmtrack_serve.trackers.kalman import HEIGHT_PRODUCT, KalmanArrays
from real_weights import CHECKPOINT, CONFIG, MISSING, MOT17, QUIET_OMP, SKIP_REASON


@pytest.fixture(autouse=True)
def one_thread():
    """As the bench measures trackers: one thread (torch and OpenBLAS)."""
    with tuning.threads(1):
        yield


# -- the parts, bit for bit ------------------------------------------------------
@pytest.mark.parametrize('center_only', [False, True])
def test_kalman_arrays_are_mmtracks_filter_bit_for_bit(center_only):
    """Every step on every track, fresh ones (mmtrack's mean still float32:
    born, then updated or predicted first) among them."""
    from mmtrack.models.motion import KalmanFilter
    kf = KalmanFilter(center_only=center_only)
    arrays = KalmanArrays(kf)
    assert KalmanArrays.supports(kf)
    rng = np.random.default_rng(0)
    n = 64

    def measure(count):
        boxes = rng.uniform(10, 500, (count, 4)).astype(np.float32)
        boxes[:, 2] = rng.uniform(0.2, 0.8, count)
        return boxes

    boxes = measure(n)
    means, blocks = arrays.initiate(boxes)
    fresh = np.ones(n, bool)
    reference = [kf.initiate(b) for b in boxes]
    for frame in range(40):
        if frame % 5 == 4:                      # births
            born = rng.random(n) < 0.2
            boxes[born] = measure(int(born.sum()))
            means[born], blocks[born] = arrays.initiate(boxes[born])
            fresh[born] = True
            for i in np.nonzero(born)[0]:
                reference[i] = kf.initiate(boxes[i])
        if frame % 7 == 3:                      # a lost track: mmtrack zeroes the height's velocity
            means[::5, 7] = 0
            for r in reference[::5]:
                r[0][7] = 0
        predicted = rng.random(n) < 0.8         # ByteTrack predicts only confirmed tracks
        means[predicted], blocks[predicted] = arrays.predict(means[predicted], blocks[predicted],
                                                             fresh[predicted])
        fresh[predicted] = False
        reference = [kf.predict(*r) if predicted[i] else r for i, r in enumerate(reference)]
        measured = (boxes + rng.normal(0, 3, (n, 4)) * [1, 1, 0.01, 1]).astype(np.float32)
        gating = arrays.gating_distance(means, blocks, measured[:20], fresh)
        expected = np.stack([kf.gating_distance(m, c, measured[:20], center_only) for m, c in reference])
        assert np.array_equal(gating, expected), frame
        updated = rng.random(n) < 0.7           # some tracks are not matched this frame
        means[updated], blocks[updated] = arrays.update(means[updated], blocks[updated],
                                                        measured[updated], fresh[updated])
        fresh[updated] = False
        reference = [kf.update(m, c, measured[i]) if updated[i] else (m, c)
                     for i, (m, c) in enumerate(reference)]
        full = KalmanArrays.full(blocks)
        for i, (m, c) in enumerate(reference):
            assert np.array_equal(means[i], m) and np.array_equal(full[i], c), (frame, i)
            assert fresh[i] == (m.dtype == np.float32), (frame, i)


def test_box_arithmetic_is_torchs_bit_for_bit():
    from mmdet.core import bbox_overlaps
    from mmtrack.core.bbox import bbox_cxcyah_to_xyxy, bbox_xyxy_to_cxcyah
    from mmtrack_serve.trackers.geometry import cxcyah_to_xyxy, iou_matrix, xyxy_to_cxcyah
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1000, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 200, (300, 2))], 1).astype(np.float32)
    boxes[:10, 2:] = boxes[:10, :2]             # empty boxes
    a, b = boxes[:120], boxes[120:]
    assert np.array_equal(iou_matrix(a, b), bbox_overlaps(torch.from_numpy(a), torch.from_numpy(b)).numpy())
    assert iou_matrix(a[:0], b).shape == (0, 180)
    valid = boxes[10:]
    xyah = xyxy_to_cxcyah(valid)
    assert np.array_equal(xyah, bbox_xyxy_to_cxcyah(torch.from_numpy(valid)).numpy())
    assert np.array_equal(cxcyah_to_xyxy(xyah), bbox_cxcyah_to_xyxy(torch.from_numpy(xyah)).numpy())


# -- the trackers, frame by frame ------------------------------------------------------
def tracker_pair(kind='ByteTracker', **settings):
    """(mmtrack's tracker, the fast one, the model argument, an image), both
    built from the wheel's config for ``kind`` with ``settings`` changed."""
    stock, model, image = build_tracker(kind)
    candidate, _, _ = build_tracker(kind)
    for key, value in settings.items():
        setattr(stock, key, value)
        setattr(candidate, key, value)
    holder = SimpleNamespace(tracker=candidate, motion=model.motion)
    assert trackers.install(holder) == 'fast'
    return stock, holder.tracker, model, image


def assert_same_tracks(stock, fast, model, image, stream, label='', after_frame=None):
    """Both trackers on ``stream``: every frame's boxes, labels and ids equal
    (and ``after_frame(frame_id)``'s checks, where given)."""
    reported = 0
    for frame_id, dets in enumerate(stream):
        expected = step(stock, model, image, frame_id, dets)
        got = step(fast, model, image, frame_id, dets)
        for name, e, g in zip(('boxes', 'labels', 'ids'), expected, got):
            assert e.dtype == g.dtype and torch.equal(e, g), (
                f'{label} frame {frame_id}: {name} differ\nmmtrack {e.tolist()}\nfast    {g.tolist()}')
        if after_frame is not None:
            after_frame(frame_id)
        reported += len(expected[2])
    assert sorted(stock.ids) == sorted(fast.ids)
    assert int(stock.num_tracks) == fast.num_tracks
    return reported


@pytest.mark.parametrize('count,classes,frames', [(10, 1, 1500), (50, 3, 1000), (200, 1, 300)])
def test_fast_bytetracker_equals_mmtracks_on_crowds(count, classes, frames):
    stock, fast, model, image = tracker_pair()
    assert isinstance(fast, FastByteTracker)
    stream = crowd_stream(seed=count, count=count, num_frames=frames, classes=classes)
    reported = assert_same_tracks(stock, fast, model, image, stream, f'{count} dets')
    # the stream exercised the tracker: many tracks born, many boxes tracked
    assert fast.num_tracks > count * 2
    assert reported > 0.3 * sum(len(d[0]) for d in stream)


@pytest.mark.parametrize('kind', ['SortTracker', 'DeepSORT'])
def test_fast_sorttracker_equals_mmtracks(kind):
    """SORT (IoU only) and DeepSORT (ReID embeddings gated by the Kalman
    filter, then IoU): a crowd on the 640x360 frame the fake ReID crops, and
    the periodic stream."""
    frames = 400 if kind == 'SortTracker' else 200
    streams = {'crowd': crowd_stream(seed=7, count=30, num_frames=frames, classes=2, width=W, height=H),
               'periodic': synthetic_stream(frames * 2, seed=4)}
    for name, stream in streams.items():
        stock, fast, model, image = tracker_pair(kind)
        assert isinstance(fast, FastSortTracker)
        reported = assert_same_tracks(stock, fast, model, image, stream, f'{kind} {name}')
        assert reported > 0.3 * sum(len(d[0]) for d in stream) and fast.num_tracks > 20


def test_fast_bytetracker_equals_mmtracks_on_the_periodic_stream():
    """Tracks that never leave, low scores, misses, empty frames (test_track_memory's stream)."""
    stock, fast, model, image = tracker_pair()
    assert_same_tracks(stock, fast, model, image, synthetic_stream(2000, seed=3))


def test_fast_bytetracker_equals_mmtracks_over_many_seeds_and_settings():
    rng = np.random.default_rng(16)
    for seed in range(30):
        settings = dict(
            obj_score_thrs=dict(high=float(rng.uniform(0.4, 0.8)), low=float(rng.uniform(0.05, 0.3))),
            init_track_thr=float(rng.uniform(0.5, 0.9)),
            weight_iou_with_det_scores=bool(rng.integers(2)),
            match_iou_thrs=dict(high=float(rng.uniform(0.05, 0.4)), low=float(rng.uniform(0.3, 0.7)),
                                tentative=float(rng.uniform(0.2, 0.5))),
            num_tentatives=int(rng.integers(1, 5)),
            num_frames_retain=int(rng.integers(1, 40)))
        stock, fast, model, image = tracker_pair(**settings)
        stream = crowd_stream(seed=seed, count=int(rng.integers(1, 60)), num_frames=120,
                              classes=int(rng.integers(1, 4)))
        assert_same_tracks(stock, fast, model, image, stream, f'seed {seed} {settings}')


@pytest.mark.parametrize('kind', ['ByteTracker', 'OCSORTTracker'])
def test_fast_tracker_memory_is_flat(kind):
    """A fast tracker's whole state is its arrays: the same size after
    10,000 frames (TRACK_MEMORY_FRAMES: 100,000 for the issue's figure) as
    after 1,000, on a periodic stream whose tracks never leave."""
    frames = int(os.environ.get('TRACK_MEMORY_FRAMES', '10000'))
    period = synthetic_stream(1000, seed=2)
    _, fast, model, image = tracker_pair(kind)
    sizes = {}
    for frame_id in range(frames):
        step(fast, model, image, frame_id, period[frame_id % len(period)])
        if frame_id + 1 in (1000, frames):
            sizes[frame_id + 1] = (len(pickle.dumps(fast.table)), len(fast.ids))
            if frame_id + 1 == 1000:
                first_ids = set(fast.ids)
    assert sizes[frames][1] == sizes[1000][1] >= 2
    assert sizes[frames][0] <= 1.05 * sizes[1000][0], sizes
    assert len(first_ids & set(fast.ids)) >= 2          # the same tracks, still alive


def test_fast_bytetracker_is_faster():
    """Not a timing gate (make bench measures): a sanity check that the fast
    tracker is not slower than mmtrack's on 50 detections a frame."""
    stock, fast, model, image = tracker_pair()
    stream = crowd_stream(seed=5, count=50, num_frames=60)
    seconds = {}
    for name, tracker in (('mmtrack', stock), ('fast', fast)):
        start = time.process_time()
        for frame_id, dets in enumerate(stream):
            step(tracker, model, image, frame_id, dets)
        seconds[name] = time.process_time() - start
    assert seconds['fast'] < seconds['mmtrack'], seconds


# -- OC-SORT ----------------------------------------------------------------------------
# Its boxes are the detections: the Kalman states, which ORU rewrites, are
# compared too, track by track, and the streams must have made ORU run.
def ocsort_pair(**settings):
    """``tracker_pair('OCSORTTracker')`` plus an ``after_frame`` for
    ``assert_same_tracks`` that checks every track's Kalman mean and
    covariance against mmtrack's, bit for bit, and counts in ``refound`` the
    tracks matched again after missing 2 frames or more (ORU's virtual path)."""
    stock, fast, model, image = tracker_pair('OCSORTTracker', **settings)
    assert isinstance(fast, FastOCSORTTracker)
    refound = []

    def after_frame(frame_id):
        view = fast.tracks
        for i, track in stock.tracks.items():
            assert np.array_equal(track.mean, view[i]['mean']), f'frame {frame_id}: track {i} mean'
            assert np.array_equal(track.covariance, view[i]['covariance']), f'frame {frame_id}: track {i} cov'
            obs = track.obs
            if int(track.frame_ids[-1]) == frame_id and len(obs) > 2 and obs[-2] is None and obs[-3] is None:
                refound.append((frame_id, i))
    return stock, fast, model, image, after_frame, refound


@pytest.mark.parametrize('count,classes,frames', [(10, 1, 1000), (50, 3, 300), (200, 1, 100)])
def test_fast_ocsorttracker_equals_mmtracks_on_crowds(count, classes, frames):
    stock, fast, model, image, after_frame, refound = ocsort_pair()
    stream = crowd_stream(seed=count, count=count, num_frames=frames, classes=classes)
    reported = assert_same_tracks(stock, fast, model, image, stream, f'{count} dets', after_frame)
    assert fast.num_tracks > count * 2
    assert reported > 0.3 * sum(len(d[0]) for d in stream)
    assert len(refound) >= 3, refound


def test_fast_ocsorttracker_equals_mmtracks_on_the_periodic_stream():
    """Tracks that never leave, misses, low scores and empty frames (which
    OC-SORT skips: no prediction, no miss recorded)."""
    stock, fast, model, image, after_frame, refound = ocsort_pair()
    stream = synthetic_stream(1500, seed=3)
    assert any(len(d[0]) == 0 for d in stream)
    assert_same_tracks(stock, fast, model, image, stream, 'periodic', after_frame)
    assert refound


def test_fast_ocsorttracker_equals_mmtracks_over_many_seeds_and_settings():
    """Random settings; some streams moved up-left of the image's origin, so
    that boxes summing below 0 give OC-SORT's placeholder velocities and
    their invalid direction terms."""
    rng = np.random.default_rng(17)
    refound = 0
    for seed in range(16):
        settings = dict(
            obj_score_thr=float(rng.uniform(0.05, 0.5)), init_track_thr=float(rng.uniform(0.3, 0.9)),
            weight_iou_with_det_scores=bool(rng.integers(2)), match_iou_thr=float(rng.uniform(0.05, 0.5)),
            num_tentatives=int(rng.integers(1, 5)), vel_consist_weight=float(rng.uniform(0, 1)),
            vel_delta_t=int(rng.integers(0, 7)), num_frames_retain=int(rng.integers(1, 40)))
        stock, fast, model, image, after_frame, found = ocsort_pair(**settings)
        stream = crowd_stream(seed=seed, count=int(rng.integers(1, 30)), num_frames=100,
                              classes=int(rng.integers(1, 3)))
        if seed % 3 == 0:
            shift = torch.tensor([*rng.uniform(0, [1200, 700]), 0], dtype=torch.float32)[[0, 1, 0, 1, 2]]
            stream = [(boxes - shift, labels) for boxes, labels in stream]
        assert_same_tracks(stock, fast, model, image, stream, f'seed {seed} {settings}', after_frame)
        assert fast.table['obs'].shape[1] == settings['vel_delta_t'] + 1
        refound += len(found)
    assert refound > 0


# -- the switch ---------------------------------------------------------------------
def test_load_model_runs_the_fast_tracker_by_default_and_mmtracks_on_request(tmp_path):
    from mmtrack.models.trackers import ByteTracker
    from mmtrack_serve import snapshot
    from mmtrack_serve.models import load_model
    from mmtrack_serve.session import TrackingSession
    from tiny_models import make_tiny_checkpoint, tiny_config
    config, checkpoint = tiny_config('mot'), tmp_path / 'mot.pth'
    make_tiny_checkpoint('mot', checkpoint)
    fast = load_model(config, str(checkpoint))
    stock = load_model(config, str(checkpoint), tracker_impl='mmtrack')
    assert fast.tracker_impl == 'fast' and type(fast.module.tracker) is FastByteTracker
    assert stock.tracker_impl == 'mmtrack' and type(stock.module.tracker) is ByteTracker
    with pytest.raises(ConfigError, match="unknown tracker implementation 'numba': choose one of fast, mmtrack"):
        load_model(config, str(checkpoint), tracker_impl='numba')

    # a stream's snapshot names the tracker that wrote it: a server with the
    # other implementation on the same store refuses it in words
    frames = np.random.default_rng(0).integers(0, 255, (3, 96, 128, 3), dtype=np.uint8)
    session = fast.session()
    for frame in frames[:2]:
        session.step(frame)
    data = snapshot.loads(snapshot.dumps(session.snapshot()))
    resumed = TrackingSession.restore(fast, data)
    assert resumed.step(frames[2]) == session.step(frames[2])
    with pytest.raises(snapshot.SnapshotError, match='written by a FastByteTracker, and this worker runs a ByteTracker'):
        TrackingSession.restore(stock, data)
    # a snapshot from before snapshots named their tracker came from mmtrack's own
    stock_session = stock.session()
    stock_session.step(frames[0])
    legacy = snapshot.loads(snapshot.dumps(stock_session.snapshot()))
    del legacy['state']['tracker_class']
    TrackingSession.restore(stock, legacy)
    with pytest.raises(snapshot.SnapshotError, match='written by a ByteTracker, and this worker runs a FastByteTracker'):
        TrackingSession.restore(fast, legacy)


def test_load_model_runs_the_fast_ocsort_tracker_by_default(tmp_path):
    """A tiny OC-SORT (OC-SORT's config with the tiny MOT model's YOLOX and
    weights): the fast tracker by default, mmtrack's on request, the same
    results; a snapshot of its stream, restored, goes on as the stream does."""
    from mmtrack.models.trackers import OCSORTTracker
    from mmtrack_serve import snapshot
    from mmtrack_serve.mmtrack_compat import load_config
    from mmtrack_serve.models import load_model
    from mmtrack_serve.session import TrackingSession
    from tiny_models import TINY_MOT, make_tiny_checkpoint
    checkpoint = tmp_path / 'mot.pth'
    make_tiny_checkpoint('mot', checkpoint)             # ByteTrack's YOLOX: OC-SORT's detector too
    options = {k: v for k, v in TINY_MOT[1].items() if not k.startswith('model.tracker.')}
    config = load_config('ocsort_yolox_x_crowdhuman_mot17-private-half',
                         dict(options, **{'model.tracker.init_track_thr': 0.5}))
    fast = load_model(config, str(checkpoint))
    stock = load_model(config, str(checkpoint), tracker_impl='mmtrack')
    assert fast.tracker_impl == 'fast' and type(fast.module.tracker) is FastOCSORTTracker
    assert stock.tracker_impl == 'mmtrack' and type(stock.module.tracker) is OCSORTTracker

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (96, 128, 3))
    frames = [np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8) for _ in range(10)]
    session, stock_session = fast.session(), stock.session()
    results = [session.step(frame) for frame in frames[:6]]
    assert results == [stock_session.step(frame) for frame in frames[:6]]
    data = snapshot.loads(snapshot.dumps(session.snapshot()))
    assert data['state']['tracker_class'] == 'FastOCSORTTracker'
    resumed = TrackingSession.restore(fast, data)
    # a snapshot written before the tables had their fresh flags goes on too
    older = snapshot.loads(snapshot.dumps(session.snapshot()))
    for key in FastOCSORTTracker.LATER_FLAGS:
        del older['state']['tracker']['table'][key]
    older = TrackingSession.restore(fast, older)
    for frame in frames[6:]:
        result = resumed.step(frame)
        assert result == session.step(frame) == stock_session.step(frame)
        after_upgrade = older.step(frame)
        if HEIGHT_PRODUCT is np.float64:        # numpy 1.x: the flags change no rounding
            assert after_upgrade == result
        results.append(result)
    ids = [o.track_id for r in results for o in r.objects]
    assert max(ids.count(i) for i in set(ids)) >= 5            # tracks that lasted
    with pytest.raises(snapshot.SnapshotError, match='written by a FastOCSORTTracker, and this worker runs an? OCSORTTracker'):
        TrackingSession.restore(stock, data)


def test_trackers_without_a_fast_version_keep_mmtracks():
    """QDTrack has none, nor a subclass of a tracker that has one; a motion
    model other than mmtrack's KalmanFilter keeps the stock one."""
    from mmtrack.models import build_tracker as build
    from mmtrack.models.trackers import OCSORTTracker, QuasiDenseTracker
    _, model, _ = build_tracker('OCSORTTracker')
    holder = SimpleNamespace(tracker=build(dict(type='QuasiDenseTracker')), motion=model.motion)
    assert trackers.install(holder) == 'mmtrack' and type(holder.tracker) is QuasiDenseTracker

    class Subclass(OCSORTTracker):
        pass
    holder = SimpleNamespace(tracker=Subclass(), motion=model.motion)
    assert trackers.install(holder) == 'mmtrack' and type(holder.tracker) is Subclass
    holder.tracker = OCSORTTracker(momentums=dict(bboxes=0.5))   # not the lists OC-SORT reads
    assert trackers.install(holder) == 'mmtrack'
    tracker, model, _ = build_tracker('ByteTracker')
    holder = SimpleNamespace(tracker=tracker, motion=model.motion)
    assert trackers.install(holder, 'mmtrack') == 'mmtrack'
    holder.motion = None                         # not mmtrack's KalmanFilter: keeps the stock one
    assert trackers.install(holder) == 'mmtrack'


@pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)
def test_run_with_either_tracker_gives_the_same_json_on_real_weights(tmp_path):
    """`mmtrack-serve run --tracker-impl fast|mmtrack` on real frames (the
    shared YOLOX-nano ByteTrack, 25 frames of MOT17-05): the same results, and
    the log says which tracker ran."""
    frames = tmp_path / 'frames'
    frames.mkdir()
    for image in sorted((MOT17 / 'MOT17-05-FRCNN' / 'img1').glob('*.jpg'))[:25]:
        shutil.copy(image, frames / image.name)
    results = {}
    for impl in ('fast', 'mmtrack'):
        out = tmp_path / f'{impl}.json'
        proc = subprocess.run(
            [sys.executable, '-m', 'mmtrack_serve.cli', 'run', str(CONFIG), '--checkpoint',
             str(CHECKPOINT), '--input', str(frames), '--json', str(out), '--quiet',
             '--tracker-impl', impl], capture_output=True, text=True, env=dict(os.environ, **QUIET_OMP))
        assert proc.returncode == 0, proc.stderr[-2000:]
        expected = 'FastByteTracker (fast)' if impl == 'fast' else 'ByteTracker (mmtrack)'
        assert f'tracker {expected}' in proc.stdout
        results[impl] = json.loads(out.read_text())['frames']
    assert results['fast'] == results['mmtrack']
    assert sum(len(f['objects']) for f in results['fast']) >= 10       # people were tracked

    proc = subprocess.run([sys.executable, '-m', 'mmtrack_serve.cli', 'run', str(CONFIG),
                           '--input', str(frames), '--json', str(tmp_path / 'x.json'),
                           '--tracker-impl', 'numba'], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'numba'" in proc.stderr
