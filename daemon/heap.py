"""Give the heap's free pages back to the system after a burst of work.

A full scan, a regroup or storing the groups allocates and frees hundreds of MB of small
Python objects and numpy buffers in the daemon's threads. glibc keeps freed memory in its
arenas (one per thread that allocated) for reuse, so the daemon's resident set after a
burst stays near the burst's peak although the memory is free: 10-15 MB at a 1M-file index
(docs/performance.md, "The daemon with a 1,000,000-file index"). `malloc_trim(0)` returns
the free pages of every arena (glibc >= 2.8 also releases whole free pages in the middle of
a heap, not only at its top). It costs a walk over the arenas' free lists (a few ms at a
few hundred MB), so the daemon calls it once per burst, never per file.

Anything but glibc (musl, other libcs) has no `malloc_trim`: then this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; True when some memory was released
    (glibc's answer), False when none was or the C library cannot do it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    return bool(trim(0))
