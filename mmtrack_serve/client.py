"""A small HTTP client for a served model (used by parity, stream and demo)."""
import json
from pathlib import Path

import requests

from .errors import MMTrackServeError


def predict(url, model, video, output='json', headers=None, timeout=3600, detections=None):
    """Posts a video (path or bytes) as the raw body, or, with ``detections``
    (a det.txt path or its content, for public-detection models), as multipart
    fields ``data`` and ``detections``; returns the response body (parsed JSON
    for output=json). Errors raise MMTrackServeError with the server's message."""
    body = Path(video).read_bytes() if isinstance(video, (str, Path)) else video
    all_headers = {'Content-Type': 'application/octet-stream', 'output': output}
    all_headers.update({k: str(v) for k, v in (headers or {}).items() if v is not None})
    files = None
    if detections is not None:
        del all_headers['Content-Type']    # requests writes multipart's, with its boundary
        det = Path(detections).read_bytes() if isinstance(detections, Path) else detections
        files = {'data': ('video', body, 'application/octet-stream'),
                 'detections': ('det.txt', det, 'text/plain')}
    try:
        response = requests.post(f'{normalise_url(url)}/predictions/{model}',
                                 data=None if files else body, files=files,
                                 headers=all_headers, timeout=timeout)
    except requests.RequestException as e:
        raise MMTrackServeError(f'cannot reach {url}: {e}') from None
    if response.status_code != 200:
        raise MMTrackServeError(f'{model} answered HTTP {response.status_code}: {error_message(response)}')
    return response.json() if output == 'json' else response.content


def normalise_url(url):
    url = url.rstrip('/')
    return url if '://' in url else f'http://{url}'


def error_message(response):
    try:
        return json.loads(response.content).get('message', response.text)
    except ValueError:
        return response.text[:300]
