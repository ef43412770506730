"""Where a stream's state lives between chunks, so that any worker of any
server can take a sequence's next chunk: a folder (one host; survives a worker
restart) or a Redis server (many servers behind any load balancer).

Per sequence, keyed by model name and sequence id, two parts:

- ``state``: one snapshot (``mmtrack_serve.snapshot``: data, never code) of
  the sequence after its last chunk: counts and sizes, the session, and that
  chunk's answer (returned again to a retried chunk); read only by a worker
  whose own copy is not the latest;
- ``meta``: small JSON (status ``live``, ``ended`` or ``memory``, the version
  of the snapshot, which changes with every chunk), read on every chunk.

``state`` is written before ``meta``: a worker that dies between the two
leaves a snapshot one chunk ahead of ``meta``, and both are consistent states
(the chunk that had no answer is tracked again, or answered from the snapshot).

A lease (``lease``) makes one writer per sequence: a folder store uses
``flock`` (freed by the kernel when a worker dies), Redis a key set with NX and
an expiry. Every part expires with the sequence's idle timeout.

URLs (``--state-store``): ``dir:PATH``, ``redis://HOST:PORT/DB``, or ``none``
(each worker keeps its sequences in memory only, as before).
"""
import errno
import fcntl
import json
import math
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from mmtrack_serve.handlers.sequences import SequenceError

# the server's choice (mmtrack-serve serve --state-store), over each model's
STATE_STORE_ENV = 'MMTRACK_SERVE_STATE_STORE'
# the folder "default" means (the launcher's run dir/state; else the temp dir's)
STATE_DIR_ENV = 'MMTRACK_SERVE_STATE_DIR'
MAX_STATE_MB_ENV = 'MMTRACK_SERVE_MAX_STATE_MB'
DEFAULT_MAX_STATE_MB = 64
PARTS = ('meta', 'state')
# how long a Redis lease outlives a worker that died holding it
REDIS_TIMEOUT_S = 5.0


class StoreBusy(SequenceError):
    """Another chunk of the sequence is being tracked (here or on another worker)."""
    status = 409

    def __init__(self, message, retry_after=1):
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(SequenceError):
    """The state store cannot be read or written."""
    status = 503

    def __init__(self, message, retry_after=1):
        super().__init__(message)
        self.retry_after = retry_after


class StateTooLarge(SequenceError):
    """The sequence's state exceeds --max-state-mb: it lives in one worker's memory only."""
    status = 507


def parse_url(url):
    """(kind, where) for a store URL (see the module): ('none', None),
    ('dir', Path) or ('redis', url); ValueError for anything else."""
    url = (url or '').strip()
    if url.lower() in ('', 'none', 'off', 'memory'):
        return 'none', None
    if url.startswith('dir:'):
        if not url[len('dir:'):]:
            raise ValueError('dir: needs a folder, e.g. dir:/var/lib/mmtrack-serve/state')
        return 'dir', Path(url[len('dir:'):]).expanduser()
    if url.startswith(('redis://', 'rediss://', 'unix://')):
        return 'redis', url
    raise ValueError(f'{url!r} is not a state store: expected dir:PATH, redis://HOST:PORT/DB '
                     'or none')


def open_store(url, *, model_name):
    """The store for ``url`` (see the module), or None for ``none``."""
    kind, where = parse_url(url)
    if kind == 'dir':
        return DirStore(where / model_name)
    if kind == 'redis':
        return RedisStore(where, prefix=f'mmtrack-serve:{model_name}:')
    return None


def check_store(url):
    """ValueError unless ``url`` names a store that can be used from here: a
    folder that can be made, or a Redis server that answers."""
    kind, where = parse_url(url)
    if kind == 'dir':
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f'cannot make the folder ({e.strerror})') from None
    elif kind == 'redis':
        try:
            RedisStore(where, prefix='').client.ping()
        except Exception as e:  # noqa: BLE001 - any failure to reach it is the same answer
            raise ValueError(f'cannot reach it ({type(e).__name__}: {e})') from None


class DirStore:
    """One folder per model; files ``SEQ.meta``, ``SEQ.state`` and ``SEQ.lock``."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __str__(self):
        return f'dir:{self.root}'

    def _path(self, seq_id, part):
        return self.root / f'{seq_id}.{part}'

    @contextmanager
    def lease(self, seq_id, ttl_s):
        """Held while one chunk runs; StoreBusy when another holds it. ``ttl_s``
        is unused: the kernel frees an flock when its holder dies."""
        path = self._path(seq_id, 'lock')
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    raise StoreBusy(_busy_message(seq_id)) from None
                raise
            # the sweeper may have removed the file between open and flock
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            yield
        finally:
            os.close(fd)

    def meta(self, seq_id):
        meta = _parse_meta(self._read(seq_id, 'meta'))
        if meta is not None and _expired(meta, time.time()):
            self.delete(seq_id)
            return None
        return meta

    def read(self, seq_id, part):
        return self._read(seq_id, part)

    def _read(self, seq_id, part):
        try:
            return self._path(seq_id, part).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, seq_id, parts, ttl_s):
        """Writes ``parts`` ({part: bytes, or None to delete}), ``meta`` last."""
        for part in sorted(parts, key=lambda p: p == 'meta'):
            path = self._path(seq_id, part)
            if parts[part] is None:
                path.unlink(missing_ok=True)
                continue
            tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex}')
            try:
                tmp.write_bytes(parts[part])
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def delete(self, seq_id):
        for part in PARTS:
            self._path(seq_id, part).unlink(missing_ok=True)

    def sweep(self):
        """Removes expired sequences (and their lock files when nobody holds them)."""
        removed = []
        now = time.time()
        for meta_path in self.root.glob('*.meta'):
            seq_id = meta_path.name[:-len('.meta')]
            try:
                meta = _parse_meta(meta_path.read_bytes())
            except OSError:
                continue
            if not _expired(meta, now):
                continue
            try:
                with self.lease(seq_id, 0):
                    self.delete(seq_id)
                    self._path(seq_id, 'lock').unlink(missing_ok=True)
                removed.append(seq_id)
            except StoreBusy:
                pass
        return removed


class RedisStore:
    """Keys ``PREFIX SEQ:meta``, ``:state`` and ``:lock``, each with an expiry."""

    def __init__(self, url, prefix):
        import redis
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                           socket_connect_timeout=REDIS_TIMEOUT_S)

    def __str__(self):
        return self.url

    def _key(self, seq_id, part):
        return f'{self.prefix}{seq_id}:{part}'

    @contextmanager
    def _errors(self):
        import redis
        try:
            yield
        except redis.RedisError as e:
            raise StoreUnavailable(f'the state store {self.url} is unavailable '
                                   f'({type(e).__name__}: {e}); retry shortly') from None

    @contextmanager
    def lease(self, seq_id, ttl_s):
        key, token = self._key(seq_id, 'lock'), uuid.uuid4().hex
        with self._errors():
            if not self.client.set(key, token, nx=True, px=max(1, int(ttl_s * 1000))):
                left = self.client.pttl(key)
                raise StoreBusy(_busy_message(seq_id),
                                retry_after=max(1, math.ceil(max(left, 0) / 1000)) if left else 1)
        try:
            yield
        finally:
            with self._errors():
                # only our own lease: it may have expired and been taken meanwhile
                self.client.eval("if redis.call('get', KEYS[1]) == ARGV[1] then "
                                 "return redis.call('del', KEYS[1]) end return 0", 1, key, token)

    def meta(self, seq_id):
        return _parse_meta(self.read(seq_id, 'meta'))

    def read(self, seq_id, part):
        with self._errors():
            return self.client.get(self._key(seq_id, part))

    def write(self, seq_id, parts, ttl_s):
        ms = max(1, int(ttl_s * 1000))
        with self._errors():
            pipe = self.client.pipeline(transaction=True)
            for part, data in parts.items():
                if data is None:
                    pipe.delete(self._key(seq_id, part))
                else:
                    pipe.set(self._key(seq_id, part), data, px=ms)
            pipe.execute()

    def delete(self, seq_id):
        with self._errors():
            self.client.delete(*(self._key(seq_id, p) for p in PARTS))

    def sweep(self):
        return []                      # Redis expires keys itself


def _parse_meta(data):
    """A meta record (a dict), None when there is none, or {'status': 'corrupt'}."""
    if data is None:
        return None
    try:
        meta = json.loads(data)
    except ValueError:
        return {'status': 'corrupt'}
    return meta if isinstance(meta, dict) else {'status': 'corrupt'}


def _expired(meta, now):
    expires = meta.get('expires_at')
    return isinstance(expires, (int, float)) and expires < now


def _busy_message(seq_id):
    return (f'another chunk of sequence {seq_id} is being tracked right now: send a '
            'sequence\'s chunks one at a time, each after the previous one\'s answer '
            '(retry this one when that answer has come)')
