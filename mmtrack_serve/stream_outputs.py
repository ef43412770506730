"""A stream's outputs, written as its chunks come back, so a consumer can tail
them and a stop at any moment leaves them valid up to the last chunk:

- jsonl: one line per frame, the whole-video schema's frame object plus what
  the source said of it (``live_source.Captured.record``: capture index and
  wall-clock time, skipped capture frames, reconnects) and ``tracked_at``;
- MOTChallenge txt, appended;
- the annotated H.264 mp4, finalised on ``close()``; with ``segment_seconds``,
  rolling files ``NAME-00000.mp4``, ``NAME-00001.mp4``... each final once the
  next starts (an endless source never finalises one file).

Each file is flushed after every chunk.
"""
import json
from pathlib import Path

from .background import BackgroundCalls
from .drawing import draw_objects
from .frame_loop import QUEUED_FRAMES
from .results import FrameResult, mot_lines
from .video import VideoWriter


class StreamOutputs:
    def __init__(self, *, width, height, fps, jsonl=None, mot=None, video=None, segment_seconds=None):
        self.width, self.height, self.fps = width, height, fps
        self._jsonl = open(jsonl, 'w') if jsonl else None
        self._mot = open(mot, 'w') if mot else None
        self._video = Path(video) if video else None
        self._segment_frames = max(1, round(segment_seconds * float(fps))) if segment_seconds else None
        self.segments = []           # the mp4 files written, in order
        self._writer = None
        self._draw = BackgroundCalls(self._write_frame, depth=QUEUED_FRAMES) if video else None

    def add(self, captured, frames, tracked_at):
        """One chunk: ``captured`` (``Captured`` items, or images alone) and
        the answer's frames, in order."""
        if self._jsonl is not None:
            for item, frame in zip(captured, frames):
                record = dict(frame)
                if hasattr(item, 'record'):
                    record.update(item.record())
                record['tracked_at'] = round(tracked_at, 6)
                self._jsonl.write(json.dumps(record) + '\n')
            self._jsonl.flush()
        if self._mot is not None:
            self._mot.writelines(mot_lines(frames))
            self._mot.flush()
        if self._draw is not None:
            for item, frame in zip(captured, frames):
                image = getattr(item, 'image', item)
                self._draw.submit(image, FrameResult.from_json(frame).objects)

    def _write_frame(self, image, objects):
        # runs in the drawing thread, so a segment also rolls over there
        if self._writer is not None and self._segment_frames is not None \
                and self._writer.frames_written >= self._segment_frames:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            path = self._video if self._segment_frames is None else \
                self._video.with_name(f'{self._video.stem}-{len(self.segments):05d}{self._video.suffix}')
            self._writer = VideoWriter(path, self.width, self.height, self.fps)
            self.segments.append(path)
        self._writer.write(draw_objects(image, objects))

    def close(self, drain=True):
        """Finalises every file; ``drain=False`` (an abandoned stream) drops
        the frames still waiting to be drawn instead of encoding them."""
        try:
            if self._draw is not None:
                if drain:
                    self._draw.close()
                else:
                    self._draw.abort()
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            for f in (self._jsonl, self._mot):
                if f is not None:
                    f.close()
            self._jsonl = self._mot = None
