"""The multi-index hashing tables over the first n rows of a `CodeTable`, in RAM.

Per table a CSR bucket index: `offsets` (2**bucket_bits + 1 uint32), `rows` (n uint32,
ascending within a bucket) and beside each row one word of its code (`words`, uint64: the
word with fewer of the table's own bits), so that a probe rejects almost every candidate
from the bucket itself instead of fetching its code from anywhere in RAM (40 % faster at
the act radius, 1M and 10M codes, docs/performance.md "Index at scale"): the distance on
that word's bits outside the table plus the key's own distance is a lower bound. 12 bytes per row
and table plus the offsets: at 1M codes and the layout `mih.make_layout` picks (7 tables of
18-19 bits) 84 + 9 MB; at 10M (6 tables of 21-22 bits) 720 + 50 MB. Built in one pass per
table (`search_kernels.csr_fill`); never updated in place: the `CodeTable` scans the rows
added or changed since the build and rebuilds the tables when those grow too many.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import mih
from .search_kernels import bucket_keys, collision_sum, csr_fill, mih_probe, substrings

MAX_PROBE_KEYS = 2_000_000  # keys of one query beyond which a probe takes longer than any scan: it is scanned


class MihTables:
    """Tables over rows [0, n) of the words w0, w1 (which must not change underneath)."""

    def __init__(self, w0: np.ndarray, w1: np.ndarray, m: int = 0):
        n = len(w0)
        self.n = n
        live0, live1 = mih.live_masks(w0, w1)
        self.layout = layout = mih.make_layout(live0, live1, n, m)
        self.ref = (int(w0[0]), int(w1[0])) if n else (0, 0)
        sizes = [2**b + 1 for b in layout.bucket_bits]
        self.off_base = np.cumsum([0] + sizes[:-1], dtype=np.int64)
        self.row_base = np.arange(layout.m, dtype=np.int64) * n
        self.offsets = np.zeros(sum(sizes) or 1, np.uint32)  # filled in place: no second copy at build
        self.rows = np.empty(layout.m * n, np.uint32)
        self.words = np.empty(layout.m * n, np.uint64)
        self.inline_w1 = inline_word_1(layout)
        self.outside = np.array([~(m1 if w1 else m0) & mih.WORD for m0, m1, w1 in zip(layout.mask0, layout.mask1, self.inline_w1)],
                                dtype=np.uint64).reshape(-1)  # per table: the kept word's bits outside the table
        self.occupancy = []
        for j, kb in enumerate(layout.bucket_bits):
            keys = bucket_keys(w0, w1, np.uint64(layout.mask0[j]), np.uint64(layout.mask1[j]), kb)
            offsets = self.offsets[self.off_base[j]:self.off_base[j] + sizes[j]]
            rows = self.rows[j * n:(j + 1) * n]
            csr_fill(keys, offsets, rows)
            np.take(w1 if self.inline_w1[j] else w0, rows, out=self.words[j * n:(j + 1) * n])
            self.occupancy.append(float(collision_sum(offsets)) / max(n, 1))
        self.sizes = mih.sizes_table(layout.widths)

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.rows.nbytes + self.words.nbytes

    @property
    def usable(self) -> bool:
        """False when no bit varies (all codes equal): there is nothing to hash on."""
        return self.layout.m > 0

    def radii(self, q0: np.ndarray, q1: np.ndarray, limits: np.ndarray) -> np.ndarray:
        """(k, m) per-table radii of the queries, each searched within its own limit."""
        return mih.query_radii(self.layout, q0, q1, self.ref, limits)

    def query_costs(self, radii: np.ndarray) -> np.ndarray:
        """(k,) estimated nanoseconds of each query's probe with these (k, m) per-table radii
        (inf for a query with too many keys)."""
        keys = mih.keys_per_query(self.sizes, radii)
        costs = mih.query_costs(keys, np.asarray(self.occupancy))
        costs[keys.sum(axis=1) > MAX_PROBE_KEYS] = float("inf")
        return costs

    def probe(self, w0: np.ndarray, w1: np.ndarray, q0: np.ndarray, q1: np.ndarray, limits: np.ndarray,
              radii: np.ndarray) -> np.ndarray:
        """Rows < n within limits[k] (int64) of some query k (unsorted, possibly repeated);
        `radii`: the queries' per-table radii from `radii`."""
        layout = self.layout
        masks, mask_base = _masks(layout.widths, tuple(radii.max(axis=0).tolist()))
        count = mih.keys_per_query(self.sizes, radii).astype(np.int64)
        qsubs = np.empty(radii.shape, dtype=np.uint64)
        for j in range(layout.m):
            qsubs[:, j] = substrings(q0, q1, np.uint64(layout.mask0[j]), np.uint64(layout.mask1[j]))
        bucket_mask = np.array([(1 << b) - 1 for b in layout.bucket_bits], dtype=np.uint64)
        out = np.empty(1024, np.int64)
        while True:
            found = mih_probe(self.offsets, self.off_base, self.rows, self.words, self.inline_w1, self.outside,
                              self.row_base, w0, w1, qsubs, masks, mask_base, count, bucket_mask, q0, q1, limits, out)
            if found <= len(out):
                return out[:found]
            out = np.empty(found, np.int64)


def inline_word_1(layout: mih.Layout) -> np.ndarray:
    """Per table, whether the word kept beside its rows is word 1 (else word 0): the word holding
    fewer of the table's own bits, among the words that have live bits at all (64-bit codes: 0)."""
    word1_live = layout.dead1 != mih.WORD
    return np.array([word1_live and bin(m0).count("1") >= bin(m1).count("1")
                     for m0, m1 in zip(layout.mask0, layout.mask1)], dtype=np.bool_)


@lru_cache(maxsize=64)
def _masks(widths: tuple[int, ...], radii: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The layered xor masks of every table for its largest radius, concatenated, and where each starts."""
    parts = [mih.layered_masks(w, s) if s >= 0 else np.zeros(0, np.uint64) for w, s in zip(widths, radii)]
    base = np.cumsum([0] + [len(p) for p in parts[:-1]], dtype=np.int64)
    out = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    out.flags.writeable = False
    base.flags.writeable = False
    return out, base
