"""Process-wide settings that whole-video tracking runs faster with, and
``threads``, which measurements and tests use to run on one thread.

glibc gives each new thread its own malloc arena, up to 8 per core. Video
frames decoded and encoded in the background threads of ``track_video`` (new
ones for every video) then come from ever more arenas, and a long-lived
process, a TorchServe worker above all, ran slower for it than the same code
in a fresh process (the latest `make bench` figures: BENCHMARKS.md).
"""
import contextlib
import ctypes
import ctypes.util
import logging

M_ARENA_MAX = -8        # glibc's mallopt parameter number
MALLOC_ARENAS = 2

logger = logging.getLogger(__name__)


def limit_malloc_arenas(arenas=MALLOC_ARENAS):
    """Caps glibc's malloc arenas for the threads created from now on; True
    when set (False on a C library without mallopt, e.g. musl or macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):
        logger.debug('mallopt unavailable: malloc arenas left as they are')
        return False


def _openblas_thread_setters():
    """(get, set) of each OpenBLAS loaded in this process (numpy's, scipy's),
    found as threadpoolctl finds them; none where that fails (not Linux)."""
    import scipy.linalg  # noqa: F401 - loads scipy's own OpenBLAS
    try:
        with open('/proc/self/maps') as maps:
            paths = {line.split()[-1] for line in maps if 'openblas' in line.lower() and '/' in line}
    except OSError:
        return []
    setters = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ('openblas_{}_num_threads', 'openblas_{}_num_threads64_',
                     'scipy_openblas_{}_num_threads'):              # scipy >= 1.13 prefixes
            get = getattr(lib, name.format('get'), None)
            set_ = getattr(lib, name.format('set'), None)
            if get is not None and set_ is not None:
                setters.append((get, set_))
                break
    return setters


@contextlib.contextmanager
def threads(n):
    """torch's and every loaded OpenBLAS's thread count set to ``n`` for the
    block, then put back: the trackers work on small arrays, where threads
    only cost, and on a busy machine OpenBLAS's threads make the stock Kalman
    filter's scipy calls take milliseconds each."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    blas = [(set_, get()) for get, set_ in _openblas_thread_setters()]
    for set_, _ in blas:
        set_(n)
    try:
        yield
    finally:
        for set_, count in blas:
            set_(count)
        torch.set_num_threads(before)
