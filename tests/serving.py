"""Helpers for tests against a real TorchServe: free ports, a server fixture
factory, and HTTP calls as curl makes them."""
import random
from contextlib import contextmanager
from pathlib import Path

import requests

from mmtrack_serve.serving.launcher import Server, free_port_base, write_config

# A worker that tries to download anything hits this dead proxy and fails.
DEAD_PROXY = 'http://127.0.0.1:9'


NO_NETWORK = {k: DEAD_PROXY for k in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY')}


@contextmanager
def running_server(store, run_dir, models=None, workers=1, limit_bytes=None, env=None):
    """Starts TorchServe on ``store`` with no network for its workers (and
    ``env`` set for them); stops it after."""
    base = free_port_base(random.sample(range(20000, 40000, 10), 50))
    kwargs = {'limit_bytes': limit_bytes} if limit_bytes else {}
    write_config(run_dir, store, models or [], base, workers=workers, **kwargs)
    server = Server(run_dir, base, env=dict(NO_NETWORK, **(env or {})))
    server.start(store)
    try:
        server.wait_ready(timeout=300)
        yield server
    finally:
        server.stop()


def put(server, model, video, headers=None):
    """As `curl URL -T video`: a PUT of the raw file, no content type."""
    data = Path(video).read_bytes() if isinstance(video, (str, Path)) else video
    return requests.put(f'{server.inference_url}/predictions/{model}', data=data,
                        headers=headers or {}, timeout=600, proxies={'http': None})


def post_form(server, model, video, fields=None, headers=None):
    """As `curl URL -F data=@video`."""
    files = {'data': ('video.mp4', Path(video).read_bytes())}
    return requests.post(f'{server.inference_url}/predictions/{model}', files=files, data=fields or {},
                         headers=headers or {}, timeout=600)


def register(server, mar_name, workers=1):
    r = requests.post(f'{server.management_url}/models',
                      params={'url': mar_name, 'initial_workers': workers, 'synchronous': 'true'},
                      timeout=600)
    return r


def temp_leftovers(server):
    return sorted(p.name for p in (server.run_dir / 'tmp').glob('mmtrack-serve-*'))
