"""A whole video through a session: the few plain functions most users need."""
import contextlib
import itertools
import warnings

from .background import BackgroundCalls, prefetched
from .detections import for_frame, read_det_txt
from .drawing import draw_objects
from .errors import InputError
from .results import results_json, write_json, write_mot_txt
from .video import VideoReader, VideoWriter


def track_video(model, source, output=None, score_thr=None, init_bbox=None, fps=None,
                progress=False, session=None, source_name=None, detector_batch=None,
                background_io=True, keep_frames=True, detections=None):
    """Tracks every frame of ``source`` (path, bytes or image folder).

    ``output``: the path to write the annotated H.264 mp4 to, or None.
    ``score_thr``: objects scored lower are dropped; None is the task's default
    (``defaults.default_score_thr``: 0 for MOT/VIS/SOT, 0.5 for VID).
    ``source_name`` stands for the source in error messages.
    ``detector_batch``: frames whose detector runs in one pass (MOT models; the
    results are those of frame by frame, see ``TrackingSession.step_many``);
    None or 0 chooses by the model's input size (``TrackingModel.frames_per_pass``).
    ``background_io``: decode ahead and draw + encode behind in threads, beside inference.
    ``detections``: for a public-detection model (``model.needs_detections``),
    the boxes supplied with the video: ``{frame_id (0-based): (N, 5) array}`` as
    ``detections.read_det_txt`` returns, or the path of a MOTChallenge det.txt;
    a frame absent from it has no detections.
    Returns the results dict (schema in ``results``); with ``keep_frames=False``
    its ``frames`` list is empty (for callers that only want the mp4).
    Frames stream through: memory does not grow with the video's length, but
    for the per-frame results kept (a few KB a frame).
    """
    from .session import check_detections_given
    check_detections_given(model, detections is not None)
    if detections is not None and not isinstance(detections, dict):
        detections = read_det_txt(detections)
    session = session or model.session(init_bbox=init_bbox, score_thr=score_thr)
    with VideoReader(source, fps=fps, name=source_name) as reader:
        frames, count = [], 0
        writer = VideoWriter(output, reader.width, reader.height, reader.fps) if output else None
        try:
            bar = _progress(progress, reader.num_frames)
            decoded = prefetched(reader, depth=QUEUED_FRAMES) if background_io else iter(reader)
            with contextlib.closing(decoded), _encoder(writer, background_io) as encode:
                first = next(decoded, None)
                # frames held at once: the queues and one batch, sized by the first frame
                per_pass = 1 if first is None else model.frames_per_pass(first, detector_batch)
                for batch in _batches(itertools.chain([first] if first is not None else [], decoded),
                                      per_pass):
                    boxes = None if detections is None else \
                        [for_frame(detections, session.frame_id + i) for i in range(len(batch))]
                    for frame, result in zip(batch, session.step_many(batch, per_pass, boxes)):
                        if keep_frames:
                            frames.append(result.to_json())
                        encode(frame, result.objects)
                    count += len(batch)
                    bar.update(len(batch))
            bar.close()
        finally:
            if writer:
                writer.close()
        if not count:
            raise InputError('the video has no decodable frames')
        if reader.num_frames and count < reader.num_frames:
            # a cut-off upload decodes its first frames and then just ends
            raise InputError(f'the video is truncated or corrupt: {count} of the '
                             f'{reader.num_frames} frames its container lists could be decoded')
        info = reader.info()
    info['num_frames'] = count
    if detections and max(detections) >= session.frame_id:
        warnings.warn(f'the detections name frames up to {max(detections) + 1}, the video has '
                      f'{session.frame_id}: is it the det.txt of this video?')
    return results_json(info, model.task, model.classes, frames)


# Decoded frames waiting for the model, and annotated ones for the encoder.
QUEUED_FRAMES = 4


def _batches(frames, size):
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextlib.contextmanager
def _encoder(writer, background):
    """A function (frame, objects) that draws and writes, here or in a thread."""
    def draw_and_write(frame, objects):
        writer.write(draw_objects(frame, objects))

    if writer is None:
        yield lambda frame, objects: None
    elif not background:
        yield draw_and_write
    else:
        with BackgroundCalls(draw_and_write, depth=QUEUED_FRAMES) as calls:
            yield calls.submit


def save_results(results, json_path=None, mot_path=None):
    if json_path:
        write_json(results, json_path)
    if mot_path:
        write_mot_txt(results['frames'], mot_path)


def _progress(enabled, total):
    from tqdm import tqdm
    return tqdm(total=total, unit='frame', disable=not enabled, dynamic_ncols=True)
