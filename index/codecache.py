"""The in-RAM `CodeTable`s of an LMDB index and the rules for when they may be used.

The `codes` table holds the records' codes and, under alias ids, their box codes and crop
window codes (`boxes`); in RAM they are two tables, the records' and the alias rows'
(`BoxedTables`: "box" holds both kinds of alias row), so
that a search of the records' codes never meets a box row and box rows, sorting after every
record id, never make a new record's id arrive out of order.

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

from . import boxes
from .codetable import Change, CodeTable, Hits

Loader = Callable[[], "tuple[np.ndarray, np.ndarray, np.ndarray]"]  # fresh (ids, w0, w1), by id


class BoxedTables:
    """The records' codes and the box codes of one snapshot, each in its own `CodeTable`."""

    def __init__(self, ids: np.ndarray, w0: np.ndarray, w1: np.ndarray, m: int = 0):
        """Every row of `codes` (fresh arrays, ids ascending: the box rows last)."""
        cut = boxes.split_at(ids)
        # the records' rows stay in the loaded arrays (views, no second copy of a large index);
        # the box rows, a few percent of them, are copied out
        self.own = CodeTable(ids[:cut], w0[:cut], w1[:cut], m)
        self.box = CodeTable(ids[cut:].copy(), w0[cut:].copy(), w1[cut:].copy(), m)

    @classmethod
    def empty(cls, m: int = 0) -> "BoxedTables":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.uint64), m)

    def search(self, queries: np.ndarray, radius: np.ndarray, mode: str, build_weight: float = 0.0,
               with_boxes: "bool | np.ndarray" = False) -> Hits:
        """Per query its (row id, distance) hits among the records' codes, and for the queries
        `with_boxes` selects (True: all; or a bool per query) among the box rows too (their ids
        carry `boxes.BOX_ALIAS`), sorted by (distance, id). `radius`: int64 (k,)."""
        hits = self.own.search(queries, radius, mode, build_weight)
        pick = boxes.query_mask(with_boxes, len(queries))
        if len(self.box) == 0 or not pick.any():
            return hits
        chosen = np.flatnonzero(pick)
        more = self.box.search(queries[chosen], radius[chosen], mode, build_weight)
        for k, extra in zip(chosen.tolist(), more):
            if extra:
                hits[k] = sorted(hits[k] + extra, key=_by_distance)
        return hits

    def apply(self, changes: list[Change]) -> None:
        own, box = boxes.split_changes(changes)
        if own:
            self.own.apply(own)
        if box:
            self.box.apply(box)

    @property
    def nbytes(self) -> int:
        return self.own.nbytes + self.box.nbytes


def _by_distance(hit: tuple[int, int]) -> tuple[int, int]:
    return hit[1], hit[0]


class CacheSlot:
    """All access is under one lock: searches are short, and a commit must not be
    replayed while a search runs."""

    def __init__(self, maintain: bool, m: int = 0):
        self.maintain = maintain
        self.m = m
        self._table: BoxedTables | None = None
        self._txnid = -1
        self._lock = threading.Lock()

    def _at(self, txnid: int, load: Loader) -> BoxedTables:
        if self._table is None or self._txnid != txnid:
            self._table, self._txnid = BoxedTables(*load(), self.m), txnid
        return self._table

    def search(self, txnid: int, load: Loader, queries: np.ndarray, radius: np.ndarray, mode: str,
               with_boxes: "bool | np.ndarray" = False) -> Hits:
        with self._lock:
            table = self._at(txnid, load)
            return table.search(queries, radius, mode, 0.0 if self.maintain else 1.0, with_boxes)

    def arrays(self, txnid: int, load: Loader, rows: str = "own") -> tuple[np.ndarray, np.ndarray]:
        """(ids, codes) of the records' codes ("own"), of the box rows ("box") or of the window
        rows ("window"; alias ids for both)."""
        with self._lock:
            tables = self._at(txnid, load)
            if rows == "own":
                return tables.own.arrays()
            ids, codes = tables.box.arrays()
            cut = boxes.split_windows(ids)
            return (ids[:cut], codes[:cut]) if rows == "box" else (ids[cut:], codes[cut:])

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
