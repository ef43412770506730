"""Durable streams' cost (docs/scaling.md): per model, the size of one
sequence's snapshot and the time to write and read it through each state
store; and, through TorchServe, a chunk's latency with the state store against
memory only.

Snapshots: each model tracks the first ``frames`` frames of MOT17-05 (640x480,
real frames) in one session, then its snapshot is made (``snapshot.dumps`` of
``session.snapshot()``), written to the store, read back and restored into a
new session (``TrackingSession.restore``), medians of ``repeats``. ByteTrack is
the real COCO person detector of ../shared/data/weights (real tracks); the
others are MMTracking's real-size configs with seeded random weights (their
template and reference memories are full size; their tracks are whatever
random weights find, counted in the table).
"""
import statistics
import tempfile
import time
import uuid

import common
from common import REPO

SEQUENCE = REPO.parent / 'shared' / 'data' / 'MOT17-mini' / 'train' / 'MOT17-05-FRCNN'
REAL_WEIGHTS = REPO.parent / 'shared' / 'data' / 'weights' / 'bytetrack_yolox_nano_person'
RANDOM_CONFIGS = {
    'DeepSORT (Faster R-CNN R50-FPN + ReID R50)': 'deepsort_faster-rcnn_fpn_4e_mot17-private-half',
    'QDTrack (Faster R-CNN R50-FPN)': 'qdtrack_faster-rcnn_r50_fpn_4e_mot17-private-half',
    'SiamRPN++ (R50)': 'siamese_rpn_r50_20e_lasot',
    'SELSA (Faster R-CNN R50-DC5)': 'selsa_faster_rcnn_r50_dc5_1x_imagenetvid',
}
SOT_BOX = (300, 150, 360, 330)        # a pedestrian in MOT17-05's first frame
CHUNK_FRAMES = 15


def frames(count):
    import cv2
    images = sorted((SEQUENCE / 'img1').glob('*.jpg'))[:count]
    return [cv2.imread(str(p)) for p in images]


def models():
    """{label: (config, checkpoint)}: the real-weights ByteTrack, then random ones."""
    found = {}
    config, checkpoint = REAL_WEIGHTS.with_suffix('.py'), REAL_WEIGHTS.with_suffix('.pth')
    if config.is_file() and checkpoint.is_file():
        found['ByteTrack (YOLOX-nano, real weights)'] = (config, checkpoint)
    for label, name in RANDOM_CONFIGS.items():
        found[label] = common.random_weights(name)
    return found


def snapshot_figures(redis_url=None, num_frames=8, repeats=3):
    """{model label: {frames, tracks, mib, dumps_ms, {store}: {save_ms, load_ms}}}."""
    from mmtrack_serve import snapshot
    from mmtrack_serve.handlers.state_store import open_store
    from mmtrack_serve.models import load_model
    from mmtrack_serve.session import TrackingSession
    images = frames(num_frames)
    figures = {}
    with tempfile.TemporaryDirectory(prefix='mmtrack-serve-bench-state-') as folder:
        stores = {'folder': open_store(f'dir:{folder}', model_name='bench')}
        if redis_url:
            stores['Redis'] = open_store(redis_url, model_name='bench')
        for label, (config, checkpoint) in models().items():
            model = load_model(str(config), str(checkpoint))
            kwargs = {'init_bbox': SOT_BOX} if model.task_type.needs_init_bbox else {}
            session = model.session(**kwargs)
            for image in images:
                session.step(image)
            tracker = session._state.get('tracker')
            row = {'task': model.task, 'frames': num_frames,
                   'tracks': len(getattr(tracker, 'tracks', {}) or {}) if tracker is not None else None}
            dumps = []
            for _ in range(repeats):
                start = time.perf_counter()
                data = snapshot.dumps(session.snapshot())
                dumps.append(time.perf_counter() - start)
            row['mib'] = len(data) / 2 ** 20
            row['dumps_ms'] = 1000 * statistics.median(dumps)
            for name, store in stores.items():
                saves, loads = [], []
                for _ in range(repeats):
                    seq_id = f'bench-{uuid.uuid4().hex[:8]}'
                    start = time.perf_counter()
                    with store.lease(seq_id, 60):
                        store.write(seq_id, {'state': snapshot.dumps(session.snapshot()),
                                             'meta': b'{}'}, ttl_s=60)
                    saves.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    with store.lease(seq_id, 60):
                        restored = TrackingSession.restore(model, snapshot.loads(
                            store.read(seq_id, 'state'), device=model.device))
                    loads.append(time.perf_counter() - start)
                    store.delete(seq_id)
                    assert restored.frame_id == session.frame_id
                row[name] = {'save_ms': 1000 * statistics.median(saves),
                             'load_ms': 1000 * statistics.median(loads)}
            figures[label] = row
            del model, session
    return figures


def chunk_latency(server, names, video, chunk_frames=CHUNK_FRAMES, repeats=3):
    """{model name: median seconds per chunk}: ``video`` streamed in
    ``chunk_frames`` chunks (lossless, as `mmtrack-serve stream` sends them)
    to each model, the models taking turns stream by stream."""
    from mmtrack_serve.serving.stream_client import SequenceClient, encode_chunk
    from mmtrack_serve.video import VideoReader
    with VideoReader(video) as reader:
        fps, all_frames = reader.fps, list(reader)
    chunks = [encode_chunk(all_frames[i:i + chunk_frames], fps, 'lossless')
              for i in range(0, len(all_frames), chunk_frames)]
    sizes = [len(all_frames[i:i + chunk_frames]) for i in range(0, len(all_frames), chunk_frames)]
    seconds = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            client = SequenceClient(server.inference_url, name, f'bench-{uuid.uuid4().hex[:8]}')
            for i, (body, size) in enumerate(zip(chunks, sizes)):
                start = time.perf_counter()
                client.send(body, size, last=i == len(chunks) - 1)
                seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}


def redis_for_bench():
    """A context manager yielding a Redis URL, or None (with the reason) when
    there is no redis-server here."""
    import contextlib
    import sys
    sys.path.insert(0, str(REPO / 'tests'))
    from redis_server import RedisMissing, running_redis

    @contextlib.contextmanager
    def run():
        try:
            with running_redis() as url:
                yield url, None
        except RedisMissing as e:
            yield None, str(e)
    return run()
