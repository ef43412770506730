"""The HTTP client's reading of a server's error body (no server: fake responses)."""
import json

import pytest

from mmtrack_serve.serving.client import error_message


class FakeResponse:
    def __init__(self, content):
        self.content = content if isinstance(content, bytes) else content.encode()
        self.text = self.content.decode('utf-8', errors='replace')


@pytest.mark.parametrize('body, message', [
    (json.dumps({'code': 400, 'type': 'InputError', 'message': 'the video is empty'}), 'the video is empty'),
    (json.dumps({'code': 503}), '{"code": 503}'),
    (json.dumps(['not', 'an', 'object']), '["not", "an", "object"]'),
    (json.dumps('a JSON string'), '"a JSON string"'),
    ('null', 'null'),
    ('42', '42'),
    ('Internal Server Error', 'Internal Server Error'),
    ('', ''),
    (b'\xff\xfe not utf-8', '\ufffd\ufffd not utf-8'),
])
def test_error_message_reads_any_body(body, message):
    assert error_message(FakeResponse(body)) == message


def test_error_message_cuts_a_long_body():
    assert error_message(FakeResponse('x' * 1000)) == 'x' * 300
    assert error_message(FakeResponse(json.dumps(['y' * 1000]))) == '["' + 'y' * 298
