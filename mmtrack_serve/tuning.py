"""Process-wide settings that whole-video tracking runs faster with.

glibc gives each new thread its own malloc arena, up to 8 per core. Video
frames decoded and encoded in the background threads of ``track_video`` (new
ones for every video) then come from ever more arenas, and a long-lived
process, a TorchServe worker above all, ran slower for it than the same code
in a fresh process (the latest `make bench` figures: BENCHMARKS.md).
"""
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
