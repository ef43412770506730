"""A throwaway Redis server on 127.0.0.1 for the state-store tests and the
bench: Debian's ``redis-server`` (installed by ``make setup`` as root), no
persistence, a free port; ``running_redis()`` yields its URL, or raises
RedisMissing with the reason to skip."""
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager

from live_sources import stop_process


class RedisMissing(Exception):
    pass


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextmanager
def running_redis():
    exe = shutil.which('redis-server')
    if exe is None:
        raise RedisMissing('redis-server is not installed (Debian: apt-get install redis-server; '
                           'make setup installs it when run as root)')
    try:
        import redis
    except ImportError:
        raise RedisMissing('the redis Python package is missing (make setup)') from None
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix='mmtrack-serve-redis-') as folder:
        proc = subprocess.Popen([exe, '--port', str(port), '--bind', '127.0.0.1', '--save', '',
                                 '--appendonly', 'no', '--dir', folder, '--protected-mode', 'yes'],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f'redis://127.0.0.1:{port}/0'
        try:
            client = redis.Redis.from_url(url)
            deadline = time.time() + 20
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RedisMissing(f'redis-server did not start on port {port}') from None
                    time.sleep(0.1)
            yield url
        finally:
            stop_process(proc)
