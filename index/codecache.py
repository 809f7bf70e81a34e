"""The in-RAM `CodeTable` of an LMDB index and the rules for when it may be used.

The writer keeps one table in step with its own commits (it is the only writer, so
a commit moves the snapshot from txn id t to t+1 and the table replays the same
changes); its multi-index hashing tables outlive queries, so building them is
free in the planner's eyes. Read-only instances load one table per snapshot (any
commit by the daemon retires it) and count the build against the queries at hand.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from .codetable import Change, CodeTable, Hits

Loader = Callable[[], "tuple[np.ndarray, np.ndarray, np.ndarray]"]  # fresh (ids, w0, w1), by id


class CacheSlot:
    """All access is under one lock: searches are short, and a commit must not be
    replayed while a search runs."""

    def __init__(self, maintain: bool, m: int = 0):
        self.maintain = maintain
        self.m = m
        self._table: CodeTable | None = None
        self._txnid = -1
        self._lock = threading.Lock()

    def _at(self, txnid: int, load: Loader) -> CodeTable:
        if self._table is None or self._txnid != txnid:
            self._table, self._txnid = CodeTable(*load(), self.m), txnid
        return self._table

    def search(self, txnid: int, load: Loader, queries: np.ndarray, radius: "int | np.ndarray", mode: str) -> Hits:
        with self._lock:
            table = self._at(txnid, load)
            return table.search(queries, radius, mode, build_weight=0.0 if self.maintain else 1.0)

    def arrays(self, txnid: int, load: Loader) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            return self._at(txnid, load).arrays()

    def nbytes(self) -> int:
        """RAM held by the table (0 when none is loaded)."""
        with self._lock:
            return self._table.nbytes if self._table is not None else 0

    def committed(self, write_txnid: int, last_txnid: int, changes: list[Change]) -> None:
        """After a write transaction of this process: carry the table forward or retire it."""
        with self._lock:
            if self._table is None or self._txnid == last_txnid:  # nothing loaded, or nothing committed
                return
            if self.maintain and self._txnid == write_txnid - 1 and last_txnid == write_txnid:
                self._table.apply(changes)
                self._txnid = last_txnid
            else:
                self._table = None

    def clear(self) -> None:
        with self._lock:
            self._table = None
