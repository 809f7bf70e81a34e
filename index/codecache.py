"""All searchable codes of an LMDB index in RAM, sorted by id, for numba scans.

The writer keeps one `CodeCache` in step with its own commits (it is the only
writer, so a commit moves the snapshot from txn id t to t+1 and the cache
applies the same changes). Read-only instances rebuild it per snapshot.
Deleted slots are tombstoned and compacted once a quarter of the slots is dead.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from .mih import verify

Change = tuple[int, "tuple[int, int] | None"]  # (file id, its searchable code or None)


class CodeCache:
    def __init__(self, txnid: int, ids: np.ndarray, codes: np.ndarray):
        self.txnid = txnid
        self._n = len(ids)
        cap = max(1024, 2 * self._n)
        self._ids = np.zeros(cap, dtype=np.int64)
        self._codes = np.zeros((cap, 2), dtype=np.uint64)
        self._alive = np.zeros(cap, dtype=bool)
        self._ids[: self._n], self._codes[: self._n], self._alive[: self._n] = ids, codes, True
        self._dead = 0

    def __len__(self) -> int:
        return self._n - self._dead

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (ids int64, codes (n,2) uint64) of the live entries, sorted by id."""
        alive = self._alive[: self._n]
        return self._ids[: self._n][alive].copy(), self._codes[: self._n][alive].copy()

    def search(self, queries: np.ndarray, radius: int) -> list[list[tuple[int, int]]]:
        """Exact range search by a scan of every live code (the `mih.verify` output format)."""
        n = self._n
        return verify(queries, self._ids[:n], self._codes[:n], radius, self._alive[:n])

    def apply(self, changes: list[Change], txnid: int) -> None:
        """Apply one commit's changes, in order; the cache then reflects snapshot `txnid`."""
        for fid, code in changes:
            pos = int(np.searchsorted(self._ids[: self._n], fid))
            present = pos < self._n and self._ids[pos] == fid
            if code is None:
                if present and self._alive[pos]:
                    self._alive[pos] = False
                    self._dead += 1
            elif present:
                self._dead -= int(not self._alive[pos])
                self._codes[pos], self._alive[pos] = code, True
            else:
                self._insert(pos, fid, code)
        if self._dead * 4 > self._n:
            self._compact()
        self.txnid = txnid

    def _insert(self, pos: int, fid: int, code: tuple[int, int]) -> None:
        if self._n == len(self._ids):
            self._grow()
        if pos < self._n:  # an old id gaining a code: shift the tail (rare)
            sl, dst = slice(pos, self._n), slice(pos + 1, self._n + 1)
            self._ids[dst], self._codes[dst], self._alive[dst] = (
                self._ids[sl].copy(), self._codes[sl].copy(), self._alive[sl].copy())
        self._ids[pos], self._codes[pos], self._alive[pos] = fid, code, True
        self._n += 1

    def _grow(self) -> None:
        cap = 2 * len(self._ids)
        for name, shape in (("_ids", (cap,)), ("_codes", (cap, 2)), ("_alive", (cap,))):
            old = getattr(self, name)
            new = np.zeros(shape, dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def _compact(self) -> None:
        ids, codes = self.arrays()
        self._n, self._dead = len(ids), 0
        self._ids[: self._n], self._codes[: self._n], self._alive[: self._n] = ids, codes, True
        self._alive[self._n:] = False


Loader = Callable[[], "tuple[np.ndarray, np.ndarray]"]


class CacheSlot:
    """The `CodeCache` of one LmdbIndex and the rules for when it may be used.

    A cache is only used for the snapshot it reflects (`txnid`). With `maintain`
    (the writer), commits carry it forward; otherwise any commit retires it.
    All access is under one lock: scans are short, and apply must not run
    during a scan.
    """

    def __init__(self, maintain: bool):
        self.maintain = maintain
        self._cache: CodeCache | None = None
        self._lock = threading.Lock()

    def warm(self, txnid: int) -> bool:
        """Whether a scan at this snapshot is cheap (cache current, or the writer keeps one)."""
        cache = self._cache
        return self.maintain or (cache is not None and cache.txnid == txnid)

    def _at(self, txnid: int, load: Loader) -> CodeCache:
        if self._cache is None or self._cache.txnid != txnid:
            self._cache = CodeCache(txnid, *load())
        return self._cache

    def search(self, txnid: int, load: Loader, queries: np.ndarray, radius: int) -> list[list[tuple[int, int]]]:
        with self._lock:
            return self._at(txnid, load).search(queries, radius)

    def arrays(self, txnid: int, load: Loader) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            return self._at(txnid, load).arrays()

    def committed(self, write_txnid: int, last_txnid: int, changes: list[Change]) -> None:
        """After a write transaction of this process: carry the cache forward or retire it."""
        with self._lock:
            cache = self._cache
            if cache is None or cache.txnid == last_txnid:  # nothing cached, or nothing committed
                return
            if self.maintain and cache.txnid == write_txnid - 1 and last_txnid == write_txnid:
                cache.apply(changes, last_txnid)
            else:
                self._cache = None

    def clear(self) -> None:
        with self._lock:
            self._cache = None
