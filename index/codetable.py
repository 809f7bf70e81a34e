"""All searchable codes of an index in RAM, and exact range search over them.

Rows hold (file id, word 0, word 1) in three arrays (structure of arrays: the scan reads
16 bytes per code) plus an `alive` flag; 25 bytes per row. Rows [0, n_sorted) are sorted by
id; an id that arrives out of order (an old record gaining a code) goes to an unsorted tail
found through a small dict. Deletes clear `alive`; changed codes are rewritten in place.

A search has one radius per query (the daemon looks the upright code up at the report
radius and its rotated variants at the rotated radius). Each query either goes into one
scan of every row (`search_kernels.scan_rows`, one pass for all the queries it takes) or
probes the multi-index hashing tables (`MihTables`) built over rows [0, mih.n), which also
scans the rows added or changed since then; `mih.choose_probed` decides from the estimated
cost of each query's probe against the scan's, unless a mode is forced. The tables are rebuilt, together with a compaction that drops dead rows
and sorts the tail in, once a sixteenth of the rows is new or changed since the last build.
Below `MIH_MIN_ROWS` rows the "auto" mode scans and builds no tables (memory; see there).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import mih
from .base import check_radii
from .hamming import popcount
from .mih_tables import MihTables
from .search_kernels import scan_listed, scan_rows

Change = tuple[int, "tuple[int, int] | None"]  # (file id, its searchable code or None)
Hits = list[list[tuple[int, int]]]
MODES = ("auto", "scan", "mih")
STALE_MIN = 8192  # rows new or changed since the tables were built, before a rebuild is due
MAX_TAIL = 4096  # out-of-order ids before the rows are sorted again
# Below this many rows "auto" never builds MIH tables: they cost ~88 B a code (88 MB at 1M,
# most of what a daemon holds at that size), and at 1M the vector scan answers the daemon's
# lookup (upright at the report radius, 7 variants at the rotated one) in 1.6-2.0 ms against
# 1.2-1.8 ms with the tables (docs/performance.md, "Index at scale"); at 10M the tables make
# it 3x faster (7-11 vs 21-23 ms). Below it, "auto" scans even if a forced "mih" built tables.
MIH_MIN_ROWS = 2_000_000


class CodeTable:
    def __init__(self, ids: np.ndarray, w0: np.ndarray, w1: np.ndarray, m: int = 0):
        """Rows of `ids` (n,) int64 ascending with words `w0`, `w1` (n,) uint64, which the table
        takes over (pass fresh arrays: it writes to them); `m`: MIH tables (0: chosen from n)."""
        n = len(ids)
        self.m = m
        self._ids = np.ascontiguousarray(ids, dtype=np.int64)
        self._w0 = np.ascontiguousarray(w0, dtype=np.uint64)
        self._w1 = np.ascontiguousarray(w1, dtype=np.uint64)
        self._alive = np.ones(n, dtype=bool)
        self._n = self._n_sorted = n
        self._dead = 0
        self._tail: dict[int, int] = {}
        self._mih: MihTables | None = None
        self._dirty: set[int] = set()  # rows < mih.n whose code changed since the build
        self.last_plan = ""  # "scan" or "mih": the path of the last search (diagnostics, benchmarks)
        self.mih_min_rows = MIH_MIN_ROWS  # "auto" builds tables from this many rows on
        self._ref = (int(self._w0[0]), int(self._w1[0])) if n else None
        self._live = mih.live_masks(self._w0, self._w1)  # bits that vary (kept up to date by apply)

    @classmethod
    def from_codes(cls, ids: np.ndarray, codes: np.ndarray, m: int = 0) -> "CodeTable":
        """A table over copies of `ids` and the (n, 2) uint64 `codes`."""
        codes = np.asarray(codes, dtype=np.uint64).reshape(-1, 2)
        return cls(np.array(ids, dtype=np.int64), codes[:, 0].copy(), codes[:, 1].copy(), m)

    def __len__(self) -> int:
        return self._n - self._dead

    @property
    def nbytes(self) -> int:
        """RAM held: row arrays (with their spare capacity) and the MIH tables."""
        rows = self._ids.nbytes + self._w0.nbytes + self._w1.nbytes + self._alive.nbytes
        return rows + (self._mih.nbytes if self._mih else 0)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (ids int64, codes (n,2) uint64) of the live rows, sorted by id."""
        ids, w0, w1 = self._live_rows()
        return ids, np.stack([w0, w1], axis=1)

    def _live_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fresh (ids, w0, w1) of the live rows, sorted by id."""
        sel = np.flatnonzero(self._alive[: self._n])
        if self._tail:
            sel = sel[np.argsort(self._ids[sel], kind="stable")]
        return self._ids[sel], self._w0[sel], self._w1[sel]

    # -- changes -------------------------------------------------------------------------
    def apply(self, changes: list[Change]) -> None:
        """Apply one commit's changes, in order."""
        for fid, code in changes:
            row = self._find(fid)
            if code is None:
                if row is not None and self._alive[row]:
                    self._alive[row] = False
                    self._dead += 1
            elif row is None:
                self._append(fid, code)
            else:
                self._dead -= int(not self._alive[row])
                self._alive[row] = True
                self._w0[row], self._w1[row] = code
                self._note_bits(code)
                if self._mih is not None and row < self._mih.n:
                    self._dirty.add(row)
        if self._dead * 4 > self._n or len(self._tail) > MAX_TAIL:
            self._compact()

    def _find(self, fid: int) -> int | None:
        pos = int(np.searchsorted(self._ids[: self._n_sorted], fid))
        if pos < self._n_sorted and self._ids[pos] == fid:
            return pos
        return self._tail.get(fid)

    def _append(self, fid: int, code: tuple[int, int]) -> None:
        if self._n == len(self._ids):
            self._grow()
        row = self._n
        self._ids[row], self._w0[row], self._w1[row], self._alive[row] = fid, code[0], code[1], True
        self._note_bits(code)
        if self._n_sorted == row and (row == 0 or self._ids[row - 1] < fid):
            self._n_sorted += 1
        else:
            self._tail[fid] = row
        self._n += 1

    def _note_bits(self, code: tuple[int, int]) -> None:
        if self._ref is None:
            self._ref = (int(code[0]), int(code[1]))
        self._live = (self._live[0] | (int(code[0]) ^ self._ref[0]), self._live[1] | (int(code[1]) ^ self._ref[1]))

    def _grow(self) -> None:
        cap = max(1024, len(self._ids) + len(self._ids) // 4)
        for name in ("_ids", "_w0", "_w1", "_alive"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def _compact(self) -> None:
        """Drop dead rows, sort by id (rows renumber: the MIH tables go)."""
        self.__init__(*self._live_rows(), self.m)

    # -- search --------------------------------------------------------------------------
    def search(self, queries: np.ndarray, radius: "int | Sequence[int] | np.ndarray", mode: str = "auto",
               build_weight: float = 0.0) -> Hits:
        """Every live (id, distance) within the radius of each query, sorted by (distance, id).

        `radius`: one int >= 0 for every query, or one per query (a sequence of len(queries)).
        mode "scan" or "mih" forces a path ("mih" scans the queries no table can serve: all
        codes equal, or a neighbourhood too large to enumerate). `build_weight`: how much
        building missing tables counts in the choice (0 for the writer, whose tables outlive
        the query; 1 for a reader that loads a table per snapshot).
        """
        limits = check_radii(radius, len(queries))
        q0 = np.ascontiguousarray(queries[:, 0], dtype=np.uint64)
        q1 = np.ascontiguousarray(queries[:, 1], dtype=np.uint64)
        if len(self) == 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        tables, probed, radii = self._plan(q0, q1, limits, mode, build_weight)
        scanned = ~probed
        parts = []
        if scanned.any():  # one pass over every row for all the queries not probed
            parts.append(scan_rows(self._w0, self._w1, 0, self._n, q0[scanned], q1[scanned], limits[scanned]))
        if probed.any():
            p0, p1, plim = q0[probed], q1[probed], limits[probed]
            parts.append(tables.probe(self._w0, self._w1, p0, p1, plim, radii[probed]))
            if self._n > tables.n or self._dirty:  # rows added or changed since the build
                dirty = np.fromiter(self._dirty, np.int64, len(self._dirty))
                parts += [scan_rows(self._w0, self._w1, tables.n, self._n, p0, p1, plim),
                          scan_listed(self._w0, self._w1, dirty, p0, p1, plim)]
        self.last_plan = "scan" if not probed.any() else "mih" if probed.all() else "mih+scan"
        rows = parts[0] if len(parts) == 1 and not probed.any() else np.unique(np.concatenate(parts))
        return self._results(rows, q0, q1, limits)

    def _plan(self, q0, q1, limits: np.ndarray, mode: str, build_weight: float
              ) -> tuple[MihTables | None, np.ndarray, np.ndarray | None]:
        """(tables, probed, radii): the MIH tables (built or rebuilt now if worth it), which
        queries to probe them with (bool (k,); the others are scanned) and the per-table radii
        of every query (k, m), or (None, all False, None) to scan every query."""
        if mode not in MODES:
            raise ValueError(f"search mode must be one of {MODES}, not {mode!r}")
        scan_all = None, np.zeros(len(q0), dtype=bool), None
        if mode == "scan":
            return scan_all
        if mode == "auto" and self._n < self.mih_min_rows:
            return scan_all
        stale = self._mih is None or (self._n - self._mih.n + len(self._dirty)) > max(STALE_MIN, self._n // 16)
        if stale and mode == "auto":
            guess = mih.make_layout(*self._live, self._n, self.m)
            if guess.m == 0:
                return scan_all
            occupancy = 1.0 + self._n / 2.0 ** np.array(guess.bucket_bits)  # uniform codes; the build measures
            keys = mih.keys_per_query(mih.sizes_table(guess.widths), mih.query_radii(guess, q0, q1, self._ref, limits))
            probed, cost = mih.choose_probed(mih.query_costs(keys, occupancy), self._n, 0)
            if not probed.any() or cost + build_weight * mih.build_cost(self._n, guess) >= mih.scan_cost(self._n, len(q0)):
                return scan_all
        if stale:
            self._rebuild()
        tables = self._mih
        if not tables.usable:
            return scan_all
        radii = tables.radii(q0, q1, limits)
        costs = tables.query_costs(radii)
        if mode == "auto":
            probed, _ = mih.choose_probed(costs, self._n, self._n - tables.n + len(self._dirty))
        else:
            probed = np.isfinite(costs)
        return tables, probed, radii

    def _rebuild(self) -> None:
        if self._dead or self._tail:
            self._compact()
        self._mih = MihTables(self._w0[: self._n], self._w1[: self._n], self.m)
        self._dirty = set()

    def _results(self, rows: np.ndarray, q0: np.ndarray, q1: np.ndarray, limits: np.ndarray) -> Hits:
        """Per query, the (id, distance) of the candidate rows that are alive and within its limit."""
        rows = rows[self._alive[rows]]
        d = (popcount(q0[:, None] ^ self._w0[rows][None, :]).astype(np.int64)
             + popcount(q1[:, None] ^ self._w1[rows][None, :]))  # (queries, rows)
        qk, at = np.nonzero(d <= limits[:, None])
        ids, dist = self._ids[rows[at]], d[qk, at]
        order = np.lexsort((ids, dist, qk))
        bounds = np.searchsorted(qk[order], np.arange(len(q0) + 1))
        pairs = list(zip(ids[order].tolist(), dist[order].tolist()))
        return [pairs[bounds[k]:bounds[k + 1]] for k in range(len(q0))]
