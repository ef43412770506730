"""What a prediction request carries: the video (raw body or a multipart
field) and options (headers or multipart fields; TorchServe 0.12 drops query
parameters), checked. Kept apart from
the handler module because TorchServe requires that module to define exactly
one class."""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mmtrack_serve.detections import read_det_txt
from mmtrack_serve.errors import InputError

OUTPUT_TYPES = {'mp4': 'video/mp4', 'json': 'application/json', 'mot': 'text/plain'}
# form fields and body keys that may carry the video, in order of preference
BODY_KEYS = ('data', 'body', 'file', 'video')
OPTION_KEYS = ('score_thr', 'output', 'init_bbox')
# the multipart field with a public-detection model's boxes (MOTChallenge det.txt)
DETECTIONS_KEY = 'detections'


@dataclass
class VideoRequest:
    video_path: Path
    score_thr: Optional[float]     # None: the task's default (mmtrack_serve.defaults)
    output: str
    init_bbox: Optional[str]
    detections: Optional[dict] = None   # {frame_id: (N, 5)}, from the det.txt sent


def parse_request(request, headers, video_path):
    """Writes the upload to ``video_path``; returns a VideoRequest."""
    body = find_body(request)
    if body is None:
        raise InputError('no video in the request: send it as the body '
                         '(curl -T video.mp4) or as form field "data" (-F data=@video.mp4)')
    if len(body) == 0:
        raise InputError('the video is empty (0 bytes)')
    options = {key: find_option(request, headers, key) for key in OPTION_KEYS}
    score_thr = parse_score_thr(options['score_thr'])
    output = parse_output(options['output'])
    detections = parse_detections(request)
    Path(video_path).write_bytes(body)
    return VideoRequest(Path(video_path), score_thr, output, options['init_bbox'] or None,
                        detections)


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
    value = (value or 'mp4').lower()
    if value not in OUTPUT_TYPES:
        raise InputError(f'output must be one of {", ".join(OUTPUT_TYPES)}, got {value!r}')
    return value
