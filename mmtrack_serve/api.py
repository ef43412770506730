"""A whole video through a session: the few plain functions most users need."""
from .drawing import draw_objects
from .errors import InputError
from .results import results_json, write_json, write_mot_txt
from .video import VideoReader, VideoWriter


def track_video(model, source, output=None, score_thr=0.5, init_bbox=None, fps=None,
                progress=False, session=None, source_name=None):
    """Tracks every frame of ``source`` (path, bytes or image folder).

    ``output``: the path to write the annotated H.264 mp4 to, or None. ``source_name`` stands for the source in error messages.
    Returns the results dict (schema in ``results``).
    Frames stream through: memory does not grow with the video's length.
    """
    session = session or model.session(init_bbox=init_bbox, score_thr=score_thr)
    with VideoReader(source, fps=fps, name=source_name) as reader:
        frames = []
        writer = VideoWriter(output, reader.width, reader.height, reader.fps) if output else None
        try:
            bar = _progress(progress, reader.num_frames)
            for frame in reader:
                result = session.step(frame)
                frames.append(result.to_json())
                if writer:
                    writer.write(draw_objects(frame, result.objects))
                bar.update(1)
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


def save_results(results, json_path=None, mot_path=None):
    if json_path:
        write_json(results, json_path)
    if mot_path:
        write_mot_txt(results['frames'], mot_path)


def _progress(enabled, total):
    from tqdm import tqdm
    return tqdm(total=total, unit='frame', disable=not enabled, dynamic_ncols=True)
