"""Multi-index hashing (Norouzi, Punjani, Fleet; CVPR 2012, TPAMI 2014), storage-free.

A b-bit code is cut into m contiguous substrings of w = b/m bits; bit i belongs
to substring i // w. If two codes are within Hamming distance r = s·m + a
(0 <= a < m), then one of the first a+1 substrings is within s, or one of the
other m-a-1 substrings is within s-1 (otherwise the distance would be at least
(a+1)(s+1) + (m-a-1)s = r+1). So a range search looks up, in table j, every key
within the per-table radius of the query's substring j, collects the candidates
and verifies them with the full distance. `search` does that over any store
that can answer "all (id, code) under these keys of table j".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from math import comb
from typing import Callable

import numpy as np

from .hamming import hamming_many, popcount

Lookup = Callable[[int, np.ndarray], "tuple[np.ndarray, np.ndarray]"]
Scan = Callable[[np.ndarray, int], "list[list[tuple[int, int]]]"]
EMPTY_IDS = np.zeros(0, dtype=np.int64)
EMPTY_CODES = np.zeros((0, 2), dtype=np.uint64)


@dataclass(frozen=True)
class Layout:
    """How codes of `code_bits` bits are cut into `m` substrings (width must be <= 64)."""

    code_bits: int
    m: int

    @property
    def width(self) -> int:
        return self.code_bits // self.m

    @property
    def key_bytes(self) -> int:
        return (self.width + 7) // 8

    def substrings(self, codes: np.ndarray) -> np.ndarray:
        """(k, 2) uint64 codes -> (k, m) uint64 substrings; column j is substring j."""
        starts = np.arange(self.m) * self.width
        words = codes[:, starts // 64]
        shifted = words >> (starts % 64).astype(np.uint64)
        return shifted & np.uint64(_mask(self.width))

    def key(self, sub: int) -> bytes:
        """The big-endian key bytes of one substring value."""
        return int(sub).to_bytes(self.key_bytes, "big")

    def code_keys(self, w0: int, w1: int) -> list[bytes]:
        """The m key bytes of one code given as two ints (fast path for single records)."""
        v, w, mask, kb = int(w0) | (int(w1) << 64), self.width, _mask(self.width), self.key_bytes
        return [((v >> (j * w)) & mask).to_bytes(kb, "big") for j in range(self.m)]

    def keys(self, subs: np.ndarray) -> list[bytes]:
        """Big-endian key bytes for an array of substring values."""
        kb = self.key_bytes
        buf = np.asarray(subs, dtype=">u8").view(np.uint8).reshape(-1, 8)[:, 8 - kb:].tobytes()
        return [buf[i:i + kb] for i in range(0, len(buf), kb)]


def _mask(width: int) -> int:
    return (1 << width) - 1


def table_radii(radius: int, m: int) -> list[int]:
    """Per-substring search radius for table 0..m-1; -1 means skip the table."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, not {radius}")
    s, a = divmod(radius, m)
    return [s] * (a + 1) + [s - 1] * (m - a - 1)


def neighbourhood_size(width: int, s: int) -> int:
    """How many width-bit keys lie within Hamming distance s of a given key."""
    if s < 0:
        return 0
    return sum(comb(width, k) for k in range(min(s, width) + 1))


@lru_cache(maxsize=64)
def xor_masks(width: int, s: int) -> np.ndarray:
    """All width-bit values with at most s bits set, sorted (read-only uint64)."""
    if width <= 20:
        allv = np.arange(1 << width, dtype=np.uint64)
        out = allv[popcount(allv) <= s]
    else:
        parts = [np.zeros(1, dtype=np.uint64)]
        bits = np.uint64(1) << np.arange(width, dtype=np.uint64)
        for k in range(1, min(s, width) + 1):
            idx = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(width), k)),
                              dtype=np.int64).reshape(-1, k)
            parts.append(np.bitwise_or.reduce(bits[idx], axis=1))
        out = np.sort(np.concatenate(parts))
    out.flags.writeable = False
    return out


def neighbours(subs: np.ndarray, width: int, s: int) -> np.ndarray:
    """Sorted unique keys within s of any of the substring values `subs`."""
    masks = xor_masks(width, s)
    return np.unique(np.bitwise_xor(np.asarray(subs, dtype=np.uint64)[:, None], masks[None, :]).ravel())


def plan(layout: Layout, radius: int, n_queries: int, n_entries: int, load_cost: float = 1.0,
         check_cost: float = 0.0, probe_cost: float = 0.0) -> list[tuple[int, int]] | None:
    """[(table, per-table radius), ...] to probe, or None when a full scan is cheaper.

    Costs are in units of one key lookup. Multi-index hashing costs one unit per
    key plus `probe_cost` per table probed; a scan costs `load_cost` per stored
    code to get the codes into RAM plus `check_cost` per code and query. With the
    defaults a scan happens when the keys to look up would outnumber the stored
    codes (huge radii, or an index smaller than the neighbourhood); a store whose
    codes are already in RAM passes load_cost=0.
    """
    probes = [(j, s) for j, s in enumerate(table_radii(radius, layout.m)) if s >= 0]
    if radius >= layout.code_bits:
        return None
    n_keys = n_queries * sum(neighbourhood_size(layout.width, s) for _, s in probes)
    mih_cost = n_keys + probe_cost * len(probes)
    return None if mih_cost > n_entries * (load_cost + n_queries * check_cost) else probes


def verify(queries: np.ndarray, ids: np.ndarray, codes: np.ndarray, radius: int,
           alive: np.ndarray | None = None) -> list[list[tuple[int, int]]]:
    """For each query, every (id, distance) with distance <= radius, sorted by (distance, id).

    `alive`, when given, masks out rows (tombstones of a cache)."""
    out = []
    for q in queries:
        d = hamming_many(q, codes)
        within = d <= radius
        hit = np.flatnonzero(within & alive if alive is not None else within)
        hid, hd = ids[hit], d[hit]
        order = np.lexsort((hid, hd))
        out.append(list(zip(hid[order].tolist(), hd[order].tolist())))
    return out


def dedupe(ids: list[np.ndarray], codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate candidate chunks and keep one row per id."""
    if not ids:
        return EMPTY_IDS, EMPTY_CODES
    all_ids = np.concatenate(ids)
    uniq, first = np.unique(all_ids, return_index=True)
    return uniq, np.concatenate(codes)[first]


def search(layout: Layout, queries: np.ndarray, radius: int, n_entries: int, lookup: Lookup,
           scan: Scan, costs: tuple[float, ...] = ()) -> list[list[tuple[int, int]]]:
    """Exact range search of (k, 2) uint64 `queries` over a store of `n_entries` codes.

    `lookup(j, keys)` returns (ids int64, codes (n,2) uint64) of every entry of
    table j whose substring is in the sorted uint64 array `keys`; `scan(queries,
    radius)` answers by checking every stored code. `costs` are passed to `plan`
    after the first four arguments. Candidates are shared by all queries and
    verified exactly.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, not {radius}")
    if n_entries == 0 or len(queries) == 0:
        return [[] for _ in range(len(queries))]
    probes = plan(layout, radius, len(queries), n_entries, *costs)
    if probes is None:
        return scan(queries, radius)
    subs = layout.substrings(queries)
    chunks = [lookup(j, neighbours(subs[:, j], layout.width, s)) for j, s in probes]
    ids, codes = dedupe([c[0] for c in chunks], [c[1] for c in chunks])
    return verify(queries, ids, codes, radius)


def brute_force(queries: np.ndarray, ids: np.ndarray, codes: np.ndarray, radius: int) -> list[list[tuple[int, int]]]:
    """The oracle: verify every stored code (same output format as `search`)."""
    return verify(queries, np.asarray(ids, dtype=np.int64), np.asarray(codes, dtype=np.uint64).reshape(-1, 2), radius)
