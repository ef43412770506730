"""A whole video through a session: the few plain functions most users need."""
import os
import warnings
from typing import TYPE_CHECKING, Optional, Sequence, Union

from .detections import read_det_txt
from .errors import InputError
from .frame_loop import track_frames
from .limits import Deadline, Limits, check_reader, guarded
from .results import results_json, write_json, write_mot_txt
from .video import VideoReader, VideoWriter

if TYPE_CHECKING:
    from .models import TrackingModel
    from .session import TrackingSession

# x1,y1,x2,y2: as a string "x1,y1,x2,y2" or four numbers
BBox = Union[str, Sequence[float]]


def track_video(model: 'TrackingModel', source: Union[str, os.PathLike, bytes],
                output: Optional[Union[str, os.PathLike]] = None, *,
                score_thr: Optional[float] = None, init_bbox: Optional[BBox] = None,
                fps: Optional[float] = None, progress: bool = False,
                session: Optional['TrackingSession'] = None, source_name: Optional[str] = None,
                detector_batch: Optional[int] = None, background_io: bool = True,
                keep_frames: bool = True,
                detections: Optional[Union[dict, str, os.PathLike]] = None,
                limits: Optional[Limits] = None) -> dict:
    """Tracks every frame of ``source`` (path, bytes or image folder).

    ``output``: the path to write the annotated H.264 mp4 to, or None.
    ``score_thr``: objects scored lower are dropped; None is the task's default
    (``TaskType.default_score_thr``).
    ``session``: a session to continue (default: a new one, with ``init_bbox``
    and ``score_thr``).
    ``source_name`` stands for the source in error messages.
    ``detector_batch``: frames whose detector runs in one pass (MOT models; the
    results are those of frame by frame, see ``TrackingSession.step_many``);
    None or 0 chooses by the model's input size (``TrackingModel.frames_per_pass``).
    ``background_io``: decode ahead and draw + encode behind in threads, beside inference.
    ``detections``: for a public-detection model (``model.needs_detections``),
    the boxes supplied with the video: ``{frame_id (0-based): (N, 5) array}`` as
    ``detections.read_det_txt`` returns, or the path of a MOTChallenge det.txt;
    a frame absent from it has no detections.
    ``limits``: bounds on the work (``limits.Limits``: frames, pixels,
    seconds, decoded pixels, time budget): checked from the header before any
    frame is tracked, then while decoding; past one, LimitExceeded or
    TimeBudgetExceeded, never a partial result. None: no bounds.
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
    deadline = Deadline(limits) if limits is not None else None
    with VideoReader(source, fps=fps, name=source_name) as reader:
        what = source_name or 'the video'
        check_reader(limits, reader, what)
        writer = VideoWriter(output, reader.width, reader.height, reader.fps) if output else None
        bar = _progress(progress, reader.num_frames)
        try:
            frames, count = track_frames(session, guarded(reader, limits, reader.fps, what),
                                         writer=writer, detections=detections,
                                         detector_batch=detector_batch,
                                         background_io=background_io, keep_frames=keep_frames,
                                         progress=bar, deadline=deadline)
        finally:
            bar.close()
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


def save_results(results, json_path=None, mot_path=None):
    if json_path:
        write_json(results, json_path)
    if mot_path:
        write_mot_txt(results['frames'], mot_path)


def _progress(enabled, total):
    from tqdm import tqdm
    return tqdm(total=total, unit='frame', disable=not enabled, dynamic_ncols=True)
