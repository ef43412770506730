"""The tracker step alone (association, no detector): mmtrack 0.14's stock
trackers, mmtrack_serve's fast ones (``mmtrack_serve.trackers``) and a peer,
Roboflow's ``trackers`` ByteTrack, on the same synthetic detections, one
thread each, runs interleaved, medians.

The peer needs numpy 2 and never enters the runtime: it runs in .venv-peers
(scripts/setup_bench_peers.sh), through this very file as a script:

    .venv-peers/bin/python benchmarks/association.py --tracker OC-SORT --counts 10 50 200 --frames 100

which prints {count: seconds for all frames} as JSON. This file imports only
numpy at the top, so that venv needs neither torch nor mmtrack.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PEERS_PYTHON = REPO / '.venv-peers' / 'bin' / 'python'
ONE_THREAD = {k: '1' for k in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')}
PEER_NAME = 'Roboflow trackers {version} {kind}'
PEER_CLASSES = {'ByteTrack': 'ByteTrackTracker', 'OC-SORT': 'OCSORTTracker', 'SORT': 'SORTTracker'}
# configs/mot/ocsort/ocsort_yolox_x_crowdhuman_mot17-private-half.py's tracker:
# the bench runs it on the demo model's motion (a Kalman filter, as OC-SORT's)
OCSORT_TRACKER = dict(type='OCSORTTracker', obj_score_thr=0.3, init_track_thr=0.7,
                      weight_iou_with_det_scores=True, match_iou_thr=0.3, num_tentatives=3,
                      vel_consist_weight=0.2, vel_delta_t=3, num_frames_retain=30)


def synthetic_detections(count, frames, width=1920, height=1080, seed=0):
    """Per frame (boxes (N, 5) float32 x1, y1, x2, y2, score; labels (N,)
    int64): ``count`` boxes moving straight with a little noise, as a
    detector would report them (they cross; scores 0.3-1.0, so some go to
    ByteTrack's second association)."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(30, 120, (count, 2)) * (1, 2)
    position = rng.uniform(0, 1, (count, 2)) * ((width, height) - size)
    velocity = rng.uniform(-3, 3, (count, 2))
    scores = rng.uniform(0.3, 1.0, count)
    out = []
    for t in range(frames):
        xy = position + velocity * t + rng.normal(0, 1, (count, 2))
        boxes = np.concatenate([xy, xy + size, scores[:, None]], axis=1).astype(np.float32)
        out.append((boxes, np.zeros(count, np.int64)))
    return out


# -- the peer, in its own venv ----------------------------------------------------
def peer_seconds(kind, counts, frames):
    """{count: seconds} of Roboflow's tracker ``kind`` (a PEER_CLASSES key),
    ``update`` on each frame, with its defaults (for ByteTrack and OC-SORT,
    the thresholds of mmtrack's configs)."""
    import supervision as sv
    import trackers
    seconds = {}
    for count in counts:
        detections = [sv.Detections(xyxy=b[:, :4], confidence=b[:, 4], class_id=l)
                      for b, l in synthetic_detections(count, frames)]
        tracker = getattr(trackers, PEER_CLASSES[kind])()
        start = time.perf_counter()
        for frame in detections:
            tracker.update(frame)
        seconds[count] = time.perf_counter() - start
    return seconds


def peer_version():
    from importlib.metadata import version
    return version('trackers')


def run_peer(kind, counts, frames):
    """({count: seconds}, the peer's name) from a fresh peer process, or
    (None, why not) where .venv-peers is missing or fails."""
    if not PEERS_PYTHON.is_file():
        return None, f'{PEERS_PYTHON} missing (scripts/setup_bench_peers.sh makes it)'
    proc = subprocess.run([str(PEERS_PYTHON), __file__, '--tracker', kind, '--counts', *map(str, counts),
                           '--frames', str(frames)], capture_output=True, text=True,
                          env={**os.environ, **ONE_THREAD}, timeout=600)
    if proc.returncode != 0:
        return None, f'the peer failed: {proc.stderr.strip().splitlines()[-1:]}'
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    return ({int(k): v for k, v in answer['seconds'].items()},
            PEER_NAME.format(version=answer['version'], kind=kind))


# -- ours and mmtrack's, in this process -------------------------------------------
def _track_seconds(tracker, model, stream):
    import torch
    img = torch.zeros(1, 3, 32, 32)
    meta = dict(img_shape=(1080, 1920, 3), ori_shape=(1080, 1920, 3), pad_shape=(1088, 1920, 3),
                scale_factor=np.ones(4, np.float32), flip=False)
    tracker.reset()
    start = time.perf_counter()
    with torch.no_grad():
        for frame_id, (bboxes, labels) in enumerate(stream):
            tracker.track(img=img, img_metas=[dict(meta, frame_id=frame_id)], model=model,
                          bboxes=bboxes, labels=labels, frame_id=frame_id, rescale=False)
    return time.perf_counter() - start


def tracker_hz(model, counts=(10, 50, 200), frames=100, repeats=3, peer=None, tracker_cfg=None):
    """{tracker name: {N: {'hz', 'tracks'}}} for ``model``'s tracker (a
    TrackingModel), or ``tracker_cfg`` run on that model's motion, as
    mmtrack's stock class and, where one exists, as the fast one; with
    ``peer`` (a PEER_CLASSES key), Roboflow's tracker of that kind too. One
    torch and BLAS thread; ``repeats`` rounds, each running every tracker once
    in turn; medians."""
    from types import SimpleNamespace

    import torch
    from mmtrack.models import build_tracker
    from mmtrack_serve import trackers, tuning

    module = model.module
    tracker_cfg = tracker_cfg or model.cfg.model.tracker
    stock = build_tracker(tracker_cfg)
    holder = SimpleNamespace(tracker=build_tracker(tracker_cfg), motion=module.motion)
    candidates = {f'mmtrack 0.14 {type(stock).__name__}': stock}
    if trackers.install(holder) == 'fast':
        candidates[f'mmtrack-serve fast {type(stock).__name__}'] = holder.tracker
    streams = {n: [(torch.from_numpy(b), torch.from_numpy(l)) for b, l in synthetic_detections(n, frames)]
               for n in counts}
    runs, tracks, peer_name = {}, {}, None
    with tuning.threads(1):
        for _ in range(repeats):
            for name, tracker in candidates.items():
                for n in counts:
                    runs.setdefault(name, {}).setdefault(n, []).append(
                        _track_seconds(tracker, module, streams[n]))
                    tracks.setdefault(name, {})[n] = len(tracker.ids)
            if peer:
                seconds, peer_name = run_peer(peer, counts, frames)
                if seconds is None:
                    print(f'tracker step: no peer row: {peer_name}', file=sys.stderr, flush=True)
                    peer = None
                    continue
                for n in counts:
                    runs.setdefault(peer_name, {}).setdefault(n, []).append(seconds[n])
    return {name: {n: {'hz': frames / float(np.median(s)), 'tracks': tracks.get(name, {}).get(n)}
                   for n, s in by_count.items()}
            for name, by_count in runs.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description='the peer tracker alone (run in .venv-peers)')
    p.add_argument('--tracker', choices=PEER_CLASSES, default='ByteTrack')
    p.add_argument('--counts', type=int, nargs='+', default=[10, 50, 200])
    p.add_argument('--frames', type=int, default=100)
    args = p.parse_args(argv)
    seconds = peer_seconds(args.tracker, args.counts, args.frames)
    print(json.dumps({'version': peer_version(), 'seconds': seconds}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
