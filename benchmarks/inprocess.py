"""Figures measured inside this process: the model alone, the core session
(whole ``track_video``) and its variants, video I/O alone, and the tracker
step alone."""
import tempfile
from pathlib import Path

import numpy as np

from common import interleaved


# -- model alone vs the core session ---------------------------------------------
def decoded_frames(path):
    from mmtrack_serve.video import VideoReader
    with VideoReader(path) as reader:
        return list(reader)


def model_alone(model, frames):
    """mmtrack's own per-frame inference on frames already in memory: no
    decode, draw or encode (``inference_mot`` resets the tracker at frame 0)."""
    from mmtrack.apis import inference_mot
    for frame_id, frame in enumerate(frames):
        inference_mot(model.module, frame, frame_id)


ALONE = 'model alone (inference_mot per frame)'
PLAIN = 'in-process (frame by frame, inline I/O)'
BACKGROUND_ONLY = 'in-process (frame by frame, background I/O)'
BATCH4_ONLY = 'in-process (detector batch 4, inline I/O)'
DEFAULT = 'in-process (default: automatic detector batch, background I/O)'
BATCH4 = 'in-process (detector batch 4, background I/O)'
VARIANTS = {
    PLAIN: dict(detector_batch=1, background_io=False),
    BACKGROUND_ONLY: dict(detector_batch=1, background_io=True),
    BATCH4_ONLY: dict(detector_batch=4, background_io=False),
    DEFAULT: dict(detector_batch=None, background_io=True),
    BATCH4: dict(detector_batch=4, background_io=True),
}


def session_variants(model, video, workdir, names):
    """{name: fn}: the whole ``track_video`` (decode, track, draw, encode to an
    mp4) with each named variant's options."""
    from mmtrack_serve.api import track_video
    out = Path(workdir) / 'in_process.mp4'
    return {name: (lambda kw=VARIANTS[name]: track_video(model, video, output=out, **kw))
            for name in names}


def overhead(model, video, warmup_video, repeats, names):
    """{name: median seconds} of the model alone and each named session
    variant, interleaved, after one warm-up run of each on ``warmup_video``
    (the first pass at each input shape pays for oneDNN's kernel choice)."""
    frames, warmup_frames = decoded_frames(video), decoded_frames(warmup_video)
    with tempfile.TemporaryDirectory(prefix='mmtrack-serve-bench-') as workdir:
        model_alone(model, warmup_frames)
        for warm_up in session_variants(model, warmup_video, workdir, names).values():
            warm_up()
        runs = {ALONE: lambda: model_alone(model, frames)}
        runs.update(session_variants(model, video, workdir, names))
        return interleaved(runs, repeats)


def batching_identity(model, video):
    """Detector batch 4 against frame by frame on the same video, compared
    as the parity check compares served and local results."""
    from mmtrack_serve.api import track_video
    from mmtrack_serve.serving.parity import compare
    one = track_video(model, video, score_thr=0.0, detector_batch=1, background_io=False)
    four = track_video(model, video, score_thr=0.0, detector_batch=4)
    report = compare(four, one)
    return {'frames': len(one['frames']), 'objects': sum(f.local_objects for f in report.frames),
            'max_box_diff_px': report.max_box_diff,
            'id_mismatches': report.id_mismatches + report.count_mismatches}


# -- video I/O alone ----------------------------------------------------------------
def fake_objects(width, height, count=6):
    from mmtrack_serve.results import TrackedObject
    rng = np.random.default_rng(0)
    objects = []
    for i in range(count):
        x, y = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        w, h = width * 0.1, height * 0.15
        objects.append(TrackedObject(bbox=[x, y, x + w, y + h], score=0.9, label=0,
                                     class_name='object', track_id=i + 1))
    return objects


def video_io(video, repeats=2):
    """Frames per second of decoding, drawing, encoding, all three inline and
    all three with the background threads ``track_video`` uses; and of
    OpenCV decode + mp4v encode (the baseline's I/O) for comparison."""
    import cv2
    from mmtrack_serve.background import BackgroundCalls, prefetched
    from mmtrack_serve.drawing import draw_objects
    from mmtrack_serve.video import VideoReader, VideoWriter
    frames = decoded_frames(video)
    n = len(frames)
    height, width = frames[0].shape[:2]
    objects = fake_objects(width, height)
    with VideoReader(video) as reader:
        fps = reader.fps

    with tempfile.TemporaryDirectory(prefix='mmtrack-serve-bench-') as workdir:
        out = str(Path(workdir) / 'out.mp4')

        def decode():
            with VideoReader(video) as reader:
                for _ in reader:
                    pass

        def draw():
            for frame in frames:
                draw_objects(frame, objects)

        def encode():
            with VideoWriter(out, width, height, fps) as writer:
                for frame in frames:
                    writer.write(frame)

        def inline():
            with VideoReader(video) as reader, VideoWriter(out, width, height, fps) as writer:
                for frame in reader:
                    writer.write(draw_objects(frame, objects))

        def background():
            with VideoReader(video) as reader, VideoWriter(out, width, height, fps) as writer:
                with BackgroundCalls(lambda f: writer.write(draw_objects(f, objects))) as calls:
                    for frame in prefetched(reader):
                        calls.submit(frame)

        def opencv_mp4v():
            cap = cv2.VideoCapture(str(video))
            writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*'mp4v'), float(fps), (width, height))
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                writer.write(draw_objects(frame, objects))
            cap.release()
            writer.release()

        seconds = interleaved({
            'decode (PyAV)': decode, 'draw': draw, 'encode (H.264, libx264 veryfast)': encode,
            'decode + draw + encode, inline': inline,
            'decode + draw + encode, background threads': background,
            'baseline: OpenCV decode + draw + mp4v encode': opencv_mp4v,
        }, repeats)
    return {'frames': n, 'size': f'{width}x{height}',
            'fps': {name: n / s for name, s in seconds.items()}}


