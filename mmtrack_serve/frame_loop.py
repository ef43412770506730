"""The one frame loop: decoded frames through a session, in detector-sized
batches, each frame drawn and encoded behind. Whole videos (``api.track_video``)
and the server's streamed chunks both run here, so both get detector batching
and background I/O, with results equal to frame by frame."""
import contextlib
import itertools

from .background import BackgroundCalls, prefetched
from .detections import for_frame
from .drawing import draw_objects

# Decoded frames waiting for the model, and annotated ones for the encoder.
QUEUED_FRAMES = 4


def track_frames(session, frames, *, writer=None, detections=None, detector_batch=None,
                 background_io=True, keep_frames=True, progress=None, deadline=None):
    """Tracks ``frames`` (an iterable of BGR arrays) in ``session``; returns
    (the frames' results as JSON dicts, the number of frames).

    ``writer``: a VideoWriter (or anything with ``write(frame)``) for the
    annotated frames, or None. ``detections``: ``{frame_id: (N, 5)}`` with the
    session's frame ids, for a public-detection model. ``detector_batch``:
    frames per detector pass (None or 0: by the model's input size; see
    ``TrackingModel.frames_per_pass``). ``keep_frames=False`` returns no
    per-frame results (a caller that only wants the video). ``progress``: a
    tqdm bar, updated per batch. ``deadline``: a ``limits.Deadline``, checked
    before each batch (past it, TimeBudgetExceeded stops the loop).
    """
    model = session.model
    results, count = [], 0
    decoded = prefetched(frames, depth=QUEUED_FRAMES) if background_io else iter(frames)
    with contextlib.closing(decoded), annotated(writer, background=background_io) as write:
        first = next(decoded, None)
        if first is None:
            return results, 0
        # frames held at once: the queues and one batch, sized by the first frame
        per_pass = model.frames_per_pass(first, detector_batch)
        for batch in _batches(itertools.chain([first], decoded), per_pass):
            if deadline is not None:
                deadline.check(count)
            boxes = None if detections is None else \
                [for_frame(detections, session.frame_id + i) for i in range(len(batch))]
            for frame, result in zip(batch, session.step_many(batch, per_pass, boxes)):
                if keep_frames:
                    results.append(result.to_json())
                write(frame, result.objects)
            count += len(batch)
            if progress is not None:
                progress.update(len(batch))
    return results, count


@contextlib.contextmanager
def annotated(writer, *, background=True):
    """A function ``(frame, objects)`` that draws the objects on the frame and
    writes it to ``writer``, here or (``background``) in a thread; with no
    writer, one that does nothing."""
    def draw_and_write(frame, objects):
        writer.write(draw_objects(frame, objects))

    if writer is None:
        yield lambda frame, objects: None
    elif not background:
        yield draw_and_write
    else:
        with BackgroundCalls(draw_and_write, depth=QUEUED_FRAMES) as calls:
            yield calls.submit


def _batches(frames, size):
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
