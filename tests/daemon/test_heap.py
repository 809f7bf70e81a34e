"""`dedupd.daemon.heap`: the free heap goes back to the system after a burst of work."""

from __future__ import annotations

import ctypes.util
import gc

import pytest

from dedupd.daemon import heap


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(heap._malloc_trim() is None, reason="the C library has no malloc_trim (not glibc)")
def test_free_pages_in_the_middle_of_the_heap_are_released():
    """48 MB of 1.5 KB buffers (malloc'd: above pymalloc's 512-byte limit), then all but one
    in 32 freed: the live ones pin the top of the heap, so glibc keeps the free pages below
    it until `release_free_memory` hands them back."""
    blocks = [bytearray(1536) for _ in range(32_768)]
    kept = blocks[::32]
    del blocks
    gc.collect()
    before = _rss_kib()
    assert heap.release_free_memory() is True
    after = _rss_kib()
    assert before - after > 16 * 1024, (before, after)
    assert len(kept) == 1024


def test_without_malloc_trim_it_does_nothing(monkeypatch):
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    assert heap.release_free_memory() is False


def test_a_c_library_that_cannot_be_loaded_means_no_trim(monkeypatch):
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "libdedupd-no-such-libc.so.6")
    try:
        assert heap._malloc_trim() is None
    finally:
        heap._malloc_trim.cache_clear()
