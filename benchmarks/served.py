"""Figures measured through a real TorchServe: a video posted as ``curl -T``
posts it, to mmtrack-serve's handler and to the MMTracking-style baseline;
worker peak memory; one worker against two."""
import concurrent.futures
import json
import time
import urllib.request
from pathlib import Path

import requests

from common import REPO, interleaved

BASELINE_HANDLER = REPO / 'benchmarks' / 'baseline_handler.py'


def archive_baseline(config, checkpoint, store, name):
    """A .mar of the baseline handler on the same config and checkpoint."""
    import tempfile
    from mmtrack_serve.converters.mmtrack2torchserve import archive
    from mmtrack_serve.mmtrack_compat import load_config, strip_pretrained
    with tempfile.TemporaryDirectory(prefix='mmtrack-serve-bench-') as staging:
        cfg = load_config(str(config))
        strip_pretrained(cfg.model)        # the checkpoint holds every weight
        cfg.dump(str(Path(staging) / 'config.py'))
        model_config = Path(staging) / 'model-config.yaml'
        model_config.write_text('minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\nresponseTimeout: 3600\n')
        archive(name, '1.0', checkpoint, staging, model_config, store, True, handler=BASELINE_HANDLER)
    return Path(store) / f'{name}.mar'


def post(server, name, video):
    """The response body of one whole-video request, as curl -T sends it."""
    response = requests.post(f'{server.inference_url}/predictions/{name}',
                             data=Path(video).read_bytes(), timeout=3600)
    if response.status_code != 200:
        raise RuntimeError(f'{name} answered HTTP {response.status_code}: {response.text[:300]}')
    return response.content


IN_PROCESS = 'in-process (default), beside the served runs'


def served_seconds(server, names, video, repeats, in_process=None):
    """{name: median seconds per request}, models interleaved, with the
    ``in_process()`` run as one more of them under IN_PROCESS."""
    runs = {name: (lambda n=name: post(server, n, video)) for name in names}
    if in_process is not None:
        runs[IN_PROCESS] = in_process
    return interleaved(runs, repeats)


def worker_pids(server, name):
    with urllib.request.urlopen(f'{server.management_url}/models/{name}', timeout=10) as r:
        return [int(w['pid']) for entry in json.load(r) for w in entry.get('workers', [])]


def _status_kib(pid, field):
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_mib(server, name, video):
    """The worker's peak resident memory (MiB) while it tracks ``video``:
    the kernel's high-water mark (VmHWM), reset just before the request."""
    pid, = worker_pids(server, name)
    Path(f'/proc/{pid}/clear_refs').write_text('5')
    post(server, name, video)
    return _status_kib(pid, 'VmHWM') / 1024


def concurrent_posts(server, name, video, count, clients):
    """Posts ``video`` ``count`` times, ``clients`` at a time; returns the seconds."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for body in pool.map(lambda _: post(server, name, video), range(count)):
            if not body:
                raise RuntimeError(f'{name} sent an empty response')
    return time.perf_counter() - start


def videos_per_minute(server, name, video, count, clients):
    """Aggregate videos per minute with ``count`` requests sent ``clients`` at a time."""
    return count / concurrent_posts(server, name, video, count, clients) * 60
