"""A whole video through a session: the few plain functions most users need."""
import contextlib

from .background import BackgroundCalls, prefetched
from .drawing import draw_objects
from .errors import InputError
from .mmtrack_compat import MAX_AUTO_BATCH
from .results import results_json, write_json, write_mot_txt
from .video import VideoReader, VideoWriter


def track_video(model, source, output=None, score_thr=0.5, init_bbox=None, fps=None,
                progress=False, session=None, source_name=None, detector_batch=None, background_io=True):
    """Tracks every frame of ``source`` (path, bytes or image folder).

    ``output``: the path to write the annotated H.264 mp4 to, or None. ``source_name`` stands for the source in error messages.
    ``detector_batch``: frames whose detector runs in one pass (MOT models; the
    results are those of frame by frame, see ``TrackingSession.step_many``);
    None or 0 chooses by the model's input size (``mmtrack_compat.frames_per_pass``). ``background_io``:
    decode ahead and draw + encode behind in threads, beside inference.
    Returns the results dict (schema in ``results``).
    Frames stream through: memory does not grow with the video's length.
    """
    session = session or model.session(init_bbox=init_bbox, score_thr=score_thr)
    per_pass = int(detector_batch) if detector_batch else None
    batch_size = per_pass or MAX_AUTO_BATCH
    with VideoReader(source, fps=fps, name=source_name) as reader:
        frames = []
        writer = VideoWriter(output, reader.width, reader.height, reader.fps) if output else None
        try:
            bar = _progress(progress, reader.num_frames)
            source_frames = prefetched(reader, depth=2 * batch_size + 2) if background_io else iter(reader)
            with contextlib.closing(source_frames), _encoder(writer, background_io) as encode:
                for batch in _batches(source_frames, batch_size):
                    for frame, result in zip(batch, session.step_many(batch, per_pass)):
                        frames.append(result.to_json())
                        encode(frame, result.objects)
                    bar.update(len(batch))
            bar.close()
        finally:
            if writer:
                writer.close()
        if not frames:
            raise InputError('the video has no decodable frames')
        if reader.num_frames and len(frames) < reader.num_frames:
            # a cut-off upload decodes its first frames and then just ends
            raise InputError(f'the video is truncated or corrupt: {len(frames)} of the '
                             f'{reader.num_frames} frames its container lists could be decoded')
        info = reader.info()
    info['num_frames'] = len(frames)
    return results_json(info, model.task, model.classes, frames)


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
        with BackgroundCalls(draw_and_write) as calls:
            yield calls.submit


def save_results(results, json_path=None, mot_path=None):
    if json_path:
        write_json(results, json_path)
    if mot_path:
        write_mot_txt(results['frames'], mot_path)


def _progress(enabled, total):
    from tqdm import tqdm
    return tqdm(total=total, unit='frame', disable=not enabled, dynamic_ncols=True)
