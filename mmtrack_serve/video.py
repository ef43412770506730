"""Video in and out.

Frames are decoded lazily (one at a time, from a path, bytes or a folder of
images), so memory does not grow with the video's length. Output is H.264 in
mp4 (yuv420p, moov atom first) written with PyAV: OpenCV cannot write H.264, and
its `mp4v` does not play in browsers.
"""
import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
DEFAULT_FOLDER_FPS = Fraction(30)
# Keeps tiny or broken headers from producing absurd timestamps.
MAX_FPS = Fraction(1000)

av.logging.set_level(av.logging.PANIC)


class VideoReader:
    """Iterates BGR uint8 frames of a video file, a video in bytes, or a folder
    of images (sorted by name).

    ``width``, ``height`` and ``fps`` are known after construction;
    ``num_frames`` is the container's count and ``duration_s`` its duration
    (None when the container does not say; both may be wrong). Opening fails with InputError when the source holds no decodable video.
    """

    def __init__(self, source, fps=None, name=None):
        """``name`` replaces the path in error messages (e.g. 'the upload')."""
        self._source = source
        self._container = None
        self._images = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            if len(source) == 0:
                raise InputError('the video is empty (0 bytes)')
            self._open_container(io.BytesIO(bytes(source)), name or 'the uploaded data')
        else:
            path = Path(source)
            shown = name or str(path)
            if not path.exists():
                raise InputError(f'no such file or folder: {shown}')
            if path.is_dir():
                self._open_folder(path)
            elif path.stat().st_size == 0:
                raise InputError(f'the video is empty (0 bytes): {shown}')
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                self._open_images([path])
            else:
                self._open_container(str(path), shown)
        if fps is not None:
            self.fps = Fraction(fps).limit_denominator(1001)

    # -- opening -------------------------------------------------------------
    def _open_container(self, file, name):
        try:
            self._container = av.open(file, mode='r')
        except (av.error.FFmpegError, ValueError, OSError) as e:
            raise InputError(f'not a readable video: {name} ({_reason(e)})') from None
        streams = self._container.streams.video
        if not streams:
            self.close()
            raise InputError(f'no video stream in {name}')
        stream = self._stream = streams[0]
        stream.thread_type = 'AUTO'
        ctx = stream.codec_context
        self.width, self.height = ctx.width, ctx.height
        if not self.width or not self.height:
            self.close()
            raise InputError(f'the video stream in {name} has no frame size')
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = Fraction(rate) if rate and 0 < rate <= MAX_FPS else DEFAULT_FOLDER_FPS
        self.num_frames = stream.frames or None
        if stream.duration and stream.time_base:
            self.duration_s = float(stream.duration * stream.time_base)
        else:
            duration = self._container.duration       # microseconds
            self.duration_s = duration / 1e6 if duration and duration > 0 else None
        self._name = name

    def _open_folder(self, folder):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in folder {folder}')
        self._open_images(images)

    def _open_images(self, images):
        self._images = images
        first = _read_image(images[0])
        self.height, self.width = first.shape[:2]
        self.fps = DEFAULT_FOLDER_FPS
        self.num_frames = len(images)
        self.duration_s = None
        self._name = str(images[0].parent)

    # -- reading -------------------------------------------------------------
    def __iter__(self):
        if self._images is not None:
            for path in self._images:
                frame = _read_image(path)
                if frame.shape[:2] != (self.height, self.width):
                    raise InputError(f'{path} is {frame.shape[1]}x{frame.shape[0]}, '
                                     f'the first image is {self.width}x{self.height}')
                yield frame
            return
        try:
            for frame in self._container.decode(self._stream):
                yield frame.to_ndarray(format='bgr24')
        except av.error.FFmpegError as e:
            raise InputError(f'the video {self._name} is corrupt or truncated '
                             f'({_reason(e)})') from None

    def info(self):
        return {'width': self.width, 'height': self.height, 'fps': float(self.fps),
                'num_frames': self.num_frames}

    def close(self):
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoWriter:
    """Writes BGR uint8 frames as H.264 mp4 (yuv420p, faststart) at ``fps``.

    yuv420p needs even sides, so an odd width or height is padded by one
    black pixel column or row (the only case where output size != input size).
    ``target`` is a path: faststart rewrites the file to move its index to the
    front, which FFmpeg cannot do on a Python file object.
    """

    def __init__(self, target, width, height, fps, crf=23, preset='veryfast'):
        self.width, self.height = width, height
        self._pad = (height % 2, width % 2)
        self.fps = Fraction(fps).limit_denominator(1001)
        self._container = av.open(target, mode='w', format='mp4',
                                  options={'movflags': '+faststart'})
        stream = self._stream = self._container.add_stream('libx264', rate=self.fps)
        stream.width = width + self._pad[1]
        stream.height = height + self._pad[0]
        stream.pix_fmt = 'yuv420p'
        # the muxer rewrites stream.time_base once it starts: keep our own
        self._time_base = stream.time_base = 1 / self.fps
        stream.options = {'crf': str(crf), 'preset': preset}
        self.frames_written = 0

    def write(self, frame_bgr):
        if frame_bgr.shape[:2] != (self.height, self.width):
            raise ValueError(f'frame is {frame_bgr.shape[1]}x{frame_bgr.shape[0]}, '
                             f'writer is {self.width}x{self.height}')
        if any(self._pad):
            frame_bgr = np.pad(frame_bgr, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format='bgr24')
        frame.pts = self.frames_written
        frame.time_base = self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self):
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def probe(path_or_bytes):
    """Codec name, size, fps and decoded frame count of a video (for checks)."""
    file = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else os.fspath(path_or_bytes)
    with av.open(file) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return {'codec': stream.codec_context.name, 'width': stream.width,
                'height': stream.height, 'fps': Fraction(stream.average_rate),
                'pix_fmt': stream.codec_context.pix_fmt, 'num_frames': count}


def _read_image(path):
    import cv2
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise InputError(f'not a readable image: {path}')
    return frame


def _reason(error):
    return getattr(error, 'strerror', None) or str(error).splitlines()[0]
