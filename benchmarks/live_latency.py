"""Live streaming figures through a real TorchServe: `mmtrack-serve stream`
on a live 640x480 25 fps UDP MPEG-TS source on 127.0.0.1 (sent at real time
by tests/live_sources.py's PyAV remuxer, as tests/test_live.py does), per chunk
size: capture-to-result latency p50/p95 from the stream's jsonl
(``tracked_at - captured_at``), sustained tracked fps against the source's,
frames dropped; and a file streamed in 30-frame chunks against the same file
posted whole (throughput ratio)."""
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO

sys.path.insert(0, str(REPO / 'tests'))
CHUNK_SIZES = (1, 5, 15, 30)


def _client(server, model, source, folder, *extra):
    jsonl = Path(folder) / 'out.jsonl'
    cmd = [sys.executable, '-m', 'mmtrack_serve.cli', 'stream', str(source), '--model', model,
           '--url', f'127.0.0.1:{server.port_base}', '--jsonl', str(jsonl), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), jsonl


def _wait_for_line(proc, text, timeout=120):
    """Reads the client's stdout until ``text``; the rest is drained in a thread."""
    deadline = time.time() + timeout
    for line in proc.stdout:
        if text in line:
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return
        if time.time() > deadline:
            break
    raise RuntimeError(f'the stream client never said {text!r}: {proc.stderr.read()[-500:]}')


def live_latency(server, model, video, chunk_sizes=CHUNK_SIZES):
    """{chunk size: {p50_s, p95_s, tracked_fps, source_fps, dropped, frames}}
    for ``video`` (H.264, no B-frames) streamed live by UDP at real time."""
    from live_sources import MPEGTS_OPTIONS, Sender, free_port, udp_url
    from mmtrack_serve.video import VideoReader
    with VideoReader(video) as reader:
        source_fps = float(reader.fps)
    figures = {}
    for size in chunk_sizes:
        url = udp_url(free_port(socket.SOCK_DGRAM))
        with tempfile.TemporaryDirectory(prefix='mmtrack-serve-bench-live-') as folder:
            proc, jsonl = _client(server, model, url, folder, '--chunk-frames', str(size),
                                  '--source-timeout', '3', '--reconnect-timeout', '0',
                                  '--max-lag-seconds', str(max(2.0, 2 * size / source_fps)))
            _wait_for_line(proc, 'opening')
            time.sleep(0.3)                       # listening: the first datagrams are not lost
            sender = Sender(video, url, 'mpegts', options=MPEGTS_OPTIONS)
            sender.join()
            if proc.wait(600) != 0 or sender.error:
                raise RuntimeError(f'live stream at chunk {size} failed: '
                                   f'{sender.error or proc.stderr.read()[-500:]}')
            records = [json.loads(line) for line in jsonl.read_text().splitlines()]
        # frames captured after the source's end came in a parser flush: not live
        live = [r for r in records if r['captured_at'] <= sender.finished_at]
        latencies = sorted(r['tracked_at'] - r['captured_at'] for r in live)
        span = live[-1]['tracked_at'] - live[0]['captured_at']
        figures[size] = {
            'p50_s': statistics.median(latencies),
            'p95_s': latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            'tracked_fps': len(live) / span,
            'source_fps': source_fps,
            'dropped': sum(r['skipped']['count'] for r in records if 'skipped' in r),
            'frames': len(records)}
    return figures


def streamed_over_whole(server, model, video, post, chunk_frames=30):
    """Throughput of ``video`` streamed as a file in ``chunk_frames`` chunks
    over that of the same file posted whole (``post(server, model, video)``)."""
    start = time.perf_counter()
    post(server, model, video)
    whole_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix='mmtrack-serve-bench-stream-') as folder:
        start = time.perf_counter()
        proc, _ = _client(server, model, video, folder, '--chunk-frames', str(chunk_frames), '--quiet')
        _, err = proc.communicate(timeout=3600)
        streamed_s = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f'streaming {video} failed: {err[-500:]}')
    return {'whole_s': whole_s, 'streamed_s': streamed_s, 'ratio': whole_s / streamed_s,
            'chunk_frames': chunk_frames}
