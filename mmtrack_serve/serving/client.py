"""A small HTTP client for a served model (used by parity, stream and demo)."""
import json
from pathlib import Path

import requests

from ..errors import MMTrackServeError
from .protocol import BINARY, DETECTIONS_KEY, VIDEO_FIELD


def predict(url, model, video, output='json', headers=None, timeout=3600, detections=None):
    """Posts a video (path or bytes) as the raw body, or, with ``detections``
    (a det.txt path or its content, for public-detection models), as multipart
    fields ``data`` and ``detections``; returns the response body (parsed JSON
    for output=json). Errors raise MMTrackServeError with the server's message."""
    body = Path(video).read_bytes() if isinstance(video, (str, Path)) else video
    all_headers = {'output': output}
    all_headers.update({k: str(v) for k, v in (headers or {}).items() if v is not None})
    files = None
    if detections is not None:
        det = Path(detections).read_bytes() if isinstance(detections, Path) else detections
        files = {VIDEO_FIELD: ('video', body, BINARY),
                 DETECTIONS_KEY: ('det.txt', det, 'text/plain')}
    response = post(url, model, body=None if files else body, files=files, headers=all_headers,
                    timeout=timeout)
    return response.json() if output == 'json' else response.content


class ServerError(MMTrackServeError):
    """The server answered with an error; ``http_status`` is its status."""

    def __init__(self, message, http_status, retry_after=None, error_type=None):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after      # seconds, when the server said to retry
        self.error_type = error_type        # the JSON body's "type", when it has one


def post(url, model, *, body=None, files=None, headers=None, timeout=3600, http=None, what=None):
    """POSTs to ``model``'s /predictions at ``url``: ``body`` raw (as
    application/octet-stream, which TorchServe's frontend needs to pass bytes
    unchanged) or ``files`` as multipart. Returns the 200 response; raises
    MMTrackServeError when the server cannot be reached, ServerError with the
    server's message for any other status. ``http``: a requests.Session to
    reuse; ``what``: what was sent, for the message ("chunk 3")."""
    all_headers = dict(headers or {})
    if files is None:
        all_headers.setdefault('Content-Type', BINARY)
    try:
        response = (http or requests).post(predictions_url(url, model), data=body, files=files,
                                           headers=all_headers, timeout=timeout)
    except requests.RequestException as e:
        raise MMTrackServeError(f'cannot reach {url}: {e}') from None
    if response.status_code != 200:
        to = f' to {what}' if what else ''
        raise ServerError(f'{model} answered HTTP {response.status_code}{to}: '
                          f'{error_message(response)}', response.status_code,
                          _seconds(response.headers.get('Retry-After')), _error_type(response))
    return response


def _seconds(value):
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def predictions_url(url, model):
    return f'{normalise_url(url)}/predictions/{model}'


def normalise_url(url):
    url = url.rstrip('/')
    return url if '://' in url else f'http://{url}'


def _error_type(response):
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body.get('type') if isinstance(body, dict) else None


def error_message(response):
    """The server's error text: the ``message`` of a JSON object body, else
    the body as text (a JSON list or string included), cut at 300 characters."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get('message', response.text))
    return response.text[:300]
