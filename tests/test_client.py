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


class Scripted:
    """A local HTTP server answering POSTs from a script of (status, headers, body);
    it records each request's headers."""

    def __init__(self, script):
        import http.server
        import threading
        self.script, self.seen = list(script), []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get('Content-Length') or 0))
                owner.seen.append(dict(self.headers))
                status, headers, body = owner.script.pop(0)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                data = json.dumps(body).encode()
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f'127.0.0.1:{self.server.server_address[1]}'

    def close(self):
        self.server.shutdown()


ANSWER = {'task': 'mot', 'classes': ['p'], 'frames': [{'frame_id': 0, 'objects': []}]}


def test_a_chunk_is_sent_again_only_when_the_server_says_it_may_go_through():
    from mmtrack_serve.errors import MMTrackServeError
    from mmtrack_serve.serving.stream_client import SequenceClient
    busy = (409, {'Retry-After': '0'}, {'code': 409, 'type': 'StoreBusy', 'message': 'busy'})
    server = Scripted([busy, busy, (200, {}, ANSWER)])
    try:
        client = SequenceClient(server.url, 'm', 'cam-1')
        assert client.send(b'chunk', 1, last=False)['frames'] == ANSWER['frames']
        assert [h['x-sequence-chunk'] for h in server.seen] == ['0', '0', '0']
    finally:
        server.close()
    # past its time budget: tracking it again would take as long, so no retry
    cut = (503, {'Retry-After': '0'}, {'code': 503, 'type': 'TimeBudgetExceeded', 'message': 'cut'})
    server = Scripted([cut, (200, {}, ANSWER)])
    try:
        with pytest.raises(MMTrackServeError, match='HTTP 503 to chunk 0: cut'):
            SequenceClient(server.url, 'm', 'cam-2').send(b'chunk', 1, last=False)
        assert len(server.seen) == 1
    finally:
        server.close()
