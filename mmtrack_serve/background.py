"""Decoding ahead and encoding behind, in threads beside inference.

Decoding (PyAV), drawing (OpenCV) and encoding (libx264) release the GIL for
their heavy parts, as torch does, so a video's I/O overlaps with the model
instead of adding to it. Queues are bounded: memory holds a few frames, never
the video. An error in a thread is raised again in the caller, and stopping
early (an exception, a ``break``) ends the threads.
"""
import queue
import threading

_DONE = object()
_POLL_S = 0.1


def prefetched(iterable, depth=8):
    """Iterates ``iterable`` in a background thread, up to ``depth`` items ahead."""
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in iterable:
                if not _put(items, (item, None), stop):
                    return
            _put(items, (_DONE, None), stop)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            _put(items, (_DONE, e), stop)

    thread = threading.Thread(target=produce, name='mmtrack-serve-decode', daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundCalls:
    """Calls ``fn(*args)`` for each ``submit(*args)``, in order, in one thread;
    at most ``depth`` calls wait. ``close()`` waits for all of them and raises
    the first error; ``submit`` raises it too, as soon as it is known."""

    def __init__(self, fn, depth=8, name='mmtrack-serve-encode'):
        self._fn = fn
        self._calls = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            args = self._calls.get()
            if args is _DONE or self._stop.is_set():
                return
            if self._error is None:
                try:
                    self._fn(*args)
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    self._error = e

    def submit(self, *args):
        self._raise()
        if not _put(self._calls, args, self._stop, self._thread):
            self._raise()

    def close(self):
        """Waits for every submitted call; raises the first error."""
        if self._thread.is_alive():
            _put(self._calls, _DONE, self._stop, self._thread)
            self._thread.join()
        self._raise()

    def abort(self):
        """Drops the calls still waiting and ends the thread."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._calls.put(_DONE, timeout=_POLL_S)
            except queue.Full:
                try:
                    self._calls.get_nowait()
                except queue.Empty:
                    pass
        self._thread.join()

    def _raise(self):
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _put(q, item, stop, thread=None):
    """Puts unless ``stop`` is set or ``thread`` (the consumer) has ended."""
    while not stop.is_set() and (thread is None or thread.is_alive()):
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False
