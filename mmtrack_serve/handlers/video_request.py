"""What a prediction request carries, read and checked: a whole video
(``VideoRequest``) or one chunk of a stream (``ChunkRequest``), each with its
options (headers or multipart fields; TorchServe 0.12 drops query
parameters). Kept apart from the handler module because TorchServe requires
that module to define exactly one class."""
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mmtrack_serve.detections import read_det_txt
from mmtrack_serve.errors import InputError
from mmtrack_serve.handlers import sequences as seqs
from mmtrack_serve.serving.protocol import (BODY_KEYS, CHUNK_HEADER, CHUNK_OPTION,
                                            DEFAULT_CHUNK_OUTPUT, DEFAULT_OUTPUT, DETECTIONS_KEY,
                                            HEADER_END, OUTPUT_TYPES)


@dataclass
class VideoRequest:
    """A whole video, written to ``video_path`` inside the request's ``workdir``."""
    idx: int
    workdir: Path
    video_path: Path
    score_thr: Optional[float]     # None: the task's default (TaskType.default_score_thr)
    output: str
    init_bbox: Optional[str]
    detections: Optional[dict] = None   # {frame_id: (N, 5)}, from the det.txt sent
    started: float = field(default_factory=time.perf_counter)


@dataclass
class ChunkRequest:
    """One chunk of a sequence (None for an end without a chunk), decoded once to check it."""
    idx: int
    sequence: seqs.SequenceRequest
    chunk: Optional[seqs.Chunk]
    score_thr: Optional[float]
    output: str
    init_bbox: Optional[str]
    detections: Optional[dict] = None   # frame numbers are the sequence's
    index: Optional[int] = None         # the chunk's index in its sequence, when sent
    started: float = field(default_factory=time.perf_counter)


def parse_video_request(idx, request, headers, workdir):
    """Writes the upload to ``workdir/input``; returns a VideoRequest."""
    body = find_body(request)
    if body is None:
        raise InputError('no video in the request: send it as the body '
                         '(curl -T video.mp4) or as form field "data" (-F data=@video.mp4)')
    if len(body) == 0:
        raise InputError('the video is empty (0 bytes)')
    score_thr = parse_score_thr(find_option(request, headers, 'score_thr'))
    output = parse_output(find_option(request, headers, 'output') or DEFAULT_OUTPUT)
    detections = parse_detections(request)
    video_path = Path(workdir) / 'input'
    video_path.write_bytes(body)
    return VideoRequest(idx, Path(workdir), video_path, score_thr, output,
                        find_option(request, headers, 'init_bbox') or None, detections)


def parse_chunk_request(idx, request, headers, sequence, end_header=HEADER_END, limits=None):
    """A ChunkRequest for a request that feeds ``sequence`` (``end_header``:
    the name in force of the header that ends one; ``limits``: per chunk)."""
    output = parse_output(find_option(request, headers, 'output') or DEFAULT_CHUNK_OUTPUT)
    score_thr = parse_score_thr(find_option(request, headers, 'score_thr'))
    init_bbox = find_option(request, headers, 'init_bbox') or None
    body = find_body(request)
    chunk = seqs.read_chunk(body, limits=limits) if body else None
    if chunk is None and not sequence.end:
        raise InputError('no chunk in the request: send a short video or one image as '
                         f'the body, or only {end_header}: true to end the sequence')
    return ChunkRequest(idx, sequence, chunk, score_thr, output, init_bbox,
                        parse_detections(request),
                        parse_chunk_index(find_option(request, headers, CHUNK_OPTION)))


def parse_chunk_index(value):
    """The chunk index sent (``x-sequence-chunk``: 0 for a sequence's first
    chunk), or None when not sent."""
    if value is None or str(value).strip() == '':
        return None
    try:
        index = int(str(value).strip())
    except ValueError:
        index = -1
    if index < 0:
        raise InputError(f'{CHUNK_HEADER} must be the chunk\'s index in its sequence (0, 1, ...), '
                         f'got {value!r}')
    return index


def parse_detections(request):
    """The ``detections`` form field (det.txt content) read, or None when not sent."""
    value = request.get(DETECTIONS_KEY)
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode('utf-8')     # content, never a path on the server
    if not isinstance(value, (bytes, bytearray)):
        raise InputError('the detections field must be MOTChallenge det.txt text')
    return read_det_txt(bytes(value), name='the detections field')


def find_body(request):
    for key in BODY_KEYS:
        value = request.get(key)
        if isinstance(value, (bytes, bytearray)):
            return value
    return None


def find_option(request, headers, key):
    """A form field (or query parameter, should TorchServe pass one), else a header (``score_thr``,
    ``score-thr`` or ``x-score-thr``, any case)."""
    value = request.get(key)
    if value is None:
        lowered = {str(k).lower(): v for k, v in headers.items()}
        dashed = key.replace('_', '-')
        value = lowered.get(key) or lowered.get(dashed) or lowered.get('x-' + dashed)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode('utf-8', errors='replace')
    return value


def parse_score_thr(value):
    """The threshold sent, or None (not sent: the task's default)."""
    if value is None or value == '':
        return None
    try:
        thr = float(value)
    except ValueError:
        raise InputError(f'score_thr must be a number between 0 and 1, got {value!r}') from None
    if not 0.0 <= thr <= 1.0:
        raise InputError(f'score_thr must be between 0 and 1, got {thr}')
    return thr


def parse_output(value):
    value = value.lower()
    if value not in OUTPUT_TYPES:
        raise InputError(f'output must be one of {", ".join(OUTPUT_TYPES)}, got {value!r}')
    return value
