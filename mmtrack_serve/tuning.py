"""Process-wide settings that whole-video tracking runs faster with
(``tune_malloc``, called first by every entry point: the CLI, a served worker,
the benchmarks), and ``threads``, which measurements and tests use to run on
one thread.

glibc's malloc, left to its defaults, costs a video model dearly in two ways:
- each new thread gets its own arena, up to 8 per core. Video frames decoded
  and encoded in the background threads of ``track_video`` (new ones for every
  video) then come from ever more arenas, and a long-lived process, a
  TorchServe worker above all, ran slower for it than a fresh one;
- blocks from 128 KiB up are mmap'ed and given back on free, so every frame's
  activations (megabytes each) are page-faulted in afresh, zeroed by the
  kernel. glibc raises that threshold as blocks are freed, so a warm process
  suffers less than a fresh one: the CLI, and a worker's first videos, ran up
  to 1.4x slower than the same model long warmed up in one process.
Fixed thresholds (``MALLOC_SETTINGS``) keep those blocks in the heap. The
figures behind the choice, against glibc's defaults and jemalloc: README.md,
"Benchmarks", and BENCHMARKS.md section 3b (benchmarks/allocator.py).
"""
import contextlib
import ctypes
import ctypes.util
import logging
import os

# glibc's mallopt parameters: (number, the environment variable that sets the
# same at start-up, value). A variable set by the user wins over ours.
MALLOC_SETTINGS = {
    'arena_max': (-8, 'MALLOC_ARENA_MAX', 2),
    # blocks below 32 MiB (glibc's largest allowed) come from the heap, not mmap
    'mmap_threshold': (-3, 'MALLOC_MMAP_THRESHOLD_', 32 * 2 ** 20),
    # and freed heap memory stays (up to 1 GiB) for the next frame
    'trim_threshold': (-1, 'MALLOC_TRIM_THRESHOLD_', 2 ** 30),
    # M_TOP_PAD stays glibc's 128 KiB: a pad over a thread arena's 64 MiB heap
    # size keeps that arena from ever giving a heap back (arena.c, heap_trim),
    # and a 256 MiB pad, 2-8 % faster on most models, put DeepSORT's peak RSS
    # 10-19 % over glibc's defaults (README.md, "Benchmarks").
}
# '0' leaves glibc's defaults, for comparison (the bench's "glibc defaults" row)
MALLOC_TUNING_ENV = 'MMTRACK_SERVE_MALLOC_TUNING'

logger = logging.getLogger(__name__)


def tune_malloc():
    """Applies ``MALLOC_SETTINGS`` to this process's glibc malloc, except those
    the environment sets itself; returns {name: value} of those applied: none
    with MMTRACK_SERVE_MALLOC_TUNING=0, or on a C library without mallopt
    (musl, macOS), where nothing changes."""
    if os.environ.get(MALLOC_TUNING_ENV, '1') == '0':
        return {}
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').mallopt
    except (OSError, AttributeError):
        logger.debug('mallopt unavailable: malloc left as it is')
        return {}
    applied = {}
    for name, (number, env, value) in MALLOC_SETTINGS.items():
        if env not in os.environ and mallopt(number, int(value)):
            applied[name] = value
    return applied


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
