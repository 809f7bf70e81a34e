"""Multi-index hashing (Norouzi, Punjani, Fleet; CVPR 2012, TPAMI 2014): the math, no storage.

The bits of a code are cut into m disjoint substrings. If two codes are within Hamming
distance r = s·m + a (0 <= a < m), then one of the first a+1 substrings is within s, or one
of the other m-a-1 substrings is within s-1 (otherwise the distance would be at least
(a+1)(s+1) + (m-a-1)s = r+1). So a range search looks up, in table j, every key within the
per-table radius of the query's substring j and verifies the rows found there.

Which bits: a `Layout` is chosen from the stored codes. Bits that are the same in every
stored code ("dead": LBPH's reserved bit 127, word 1 of 64-bit algorithms) are left out of
every table; a query's distance to *every* stored code then includes the same e bits, the
query's mismatches on the dead bits, so the tables are searched with radius r - e (exact).
The live bits, in order, are cut into m runs of near-equal width; m follows from the number
of codes (about log2(n) bits per table, `m_for`), unless the index was created with an
explicit m.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import ceil, comb, log2

import numpy as np

from .hamming import popcount

MAX_BUCKET_BITS = 24  # 2**24 offsets (64 MiB) per table at most; wider substrings are folded
WORD = 2**64 - 1


@dataclass(frozen=True)
class Layout:
    """Table j covers the bits of the 128-bit mask (mask0[j], mask1[j]); `dead` bits are in no table.

    A table's bucket is the low `bucket_bits[j]` bits of its substring (all of them unless the
    substring is wider than the index needs: then rows of several substrings share a bucket)."""

    mask0: tuple[int, ...]
    mask1: tuple[int, ...]
    dead0: int
    dead1: int
    bucket_bits: tuple[int, ...]
    widths: tuple[int, ...]  # bits per table (popcount of its mask)

    @property
    def m(self) -> int:
        return len(self.mask0)


def live_masks(w0: np.ndarray, w1: np.ndarray) -> tuple[int, int]:
    """(mask0, mask1) of the bits that differ between at least two of the codes."""
    if len(w0) == 0:
        return 0, 0
    return int(np.bitwise_or.reduce(w0 ^ w0[0])), int(np.bitwise_or.reduce(w1 ^ w1[0]))


def m_for(live_bits: int, n: int) -> int:
    """Tables for n codes: about log2(n) bits each (Norouzi: m ≈ b / log2 n), 8 to 24 bits."""
    per_table = min(MAX_BUCKET_BITS, max(8, ceil(log2(max(n, 2)))))
    return max(1, ceil(live_bits / per_table))


def make_layout(live0: int, live1: int, n: int, m: int = 0) -> Layout:
    """Cut the live bits (in bit order) into m (0: `m_for`) runs of near-equal width."""
    bits = [b for b in range(64) if live0 >> b & 1] + [64 + b for b in range(64) if live1 >> b & 1]
    m = min(m or m_for(len(bits), n), len(bits))
    dead0, dead1 = ~live0 & WORD, ~live1 & WORD
    if m == 0:
        return Layout((), (), dead0, dead1, (), ())
    base, extra = divmod(len(bits), m)
    sizes = [base + (1 if j >= m - extra else 0) for j in range(m)]  # narrower tables first
    mask0, mask1, pos = [], [], 0
    for size in sizes:
        group = bits[pos:pos + size]
        pos += size
        mask0.append(sum(1 << b for b in group if b < 64))
        mask1.append(sum(1 << (b - 64) for b in group if b >= 64))
    cap = min(MAX_BUCKET_BITS, max(8, int(n).bit_length() + 1))
    return Layout(tuple(mask0), tuple(mask1), dead0, dead1, tuple(min(w, cap) for w in sizes), tuple(sizes))


def table_radii(radius: int, m: int) -> list[int]:
    """Per-substring search radius for table 0..m-1; -1 means skip the table."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, not {radius}")
    s, a = divmod(radius, m)
    return [s] * (a + 1) + [s - 1] * (m - a - 1)


@lru_cache(maxsize=4096)
def neighbourhood_size(width: int, s: int) -> int:
    """How many width-bit keys lie within Hamming distance s of a given key."""
    if s < 0:
        return 0
    return sum(comb(width, k) for k in range(min(s, width) + 1))


@lru_cache(maxsize=128)
def layered_masks(width: int, s: int) -> np.ndarray:
    """Every width-bit value with at most s bits set, by number of bits set (read-only uint64).

    The first `neighbourhood_size(width, t)` entries are those within t, for every t <= s.
    Layer k comes from layer k-1: each value gains one bit above its highest set bit."""
    layers = [np.zeros(1, dtype=np.uint64)]
    for _ in range(min(s, width)):
        prev = layers[-1]  # ascending, so the values below 2**b are a prefix
        parts = [prev[: np.searchsorted(prev, np.uint64(1) << np.uint64(b))] | (np.uint64(1) << np.uint64(b))
                 for b in range(width)]
        layers.append(np.sort(np.concatenate(parts)))
    out = np.concatenate(layers)
    out.flags.writeable = False
    return out


def query_radii(layout: Layout, q0: np.ndarray, q1: np.ndarray, ref: tuple[int, int], radius) -> np.ndarray:
    """(k, m) per-table radii for each query: its search radius (`radius`: an int for all, or
    int64 (k,) one per query) less the query's dead-bit mismatches.

    `ref` is a stored code (all stored codes agree on the dead bits); -1 skips a table."""
    dead = (popcount((q0 ^ np.uint64(ref[0])) & np.uint64(layout.dead0)).astype(np.int64)
            + popcount((q1 ^ np.uint64(ref[1])) & np.uint64(layout.dead1)))
    left = radius - dead  # the radius that remains for the live bits, per query
    if layout.m == 0:
        return np.zeros((len(q0), 0), dtype=np.int64)
    s, a = np.divmod(np.maximum(left, 0), layout.m)
    out = s[:, None] - (np.arange(layout.m)[None, :] > a[:, None])  # table_radii, one row per query
    out[left < 0] = -1
    return out


@lru_cache(maxsize=64)
def sizes_table(widths: tuple[int, ...], max_radius: int = 128) -> np.ndarray:
    """(m, max_radius + 2) float: [j, s + 1] = keys within s of a key of table j (column 0: s = -1)."""
    out = np.array([[0.0] + [float(neighbourhood_size(w, s)) for s in range(max_radius + 1)] for w in widths])
    out = out.reshape(len(widths), max_radius + 2)
    out.flags.writeable = False
    return out


def keys_per_query(sizes: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(k, m) keys each query looks up in each table, from `sizes_table` and (k, m) radii."""
    return sizes[np.arange(radii.shape[1])[None, :], np.minimum(radii, sizes.shape[1] - 2) + 1]


def keys_to_probe(layout: Layout, radii: np.ndarray) -> int:
    """How many keys a probe with these (k, m) per-table radii looks up."""
    return int(keys_per_query(sizes_table(layout.widths), radii).sum())


# -- cost model ------------------------------------------------------------------------------
# Nanoseconds, measured on the 2-core test VM (AVX-512) at 1M and 10M codes (docs/performance.md,
# "Index at scale"). The scan (`search_kernels.scan_rows`, 512-bit vectors, prefetching) is
# bound by memory with few queries (~0.85 ns per code from L3 at 1M, ~1-1.2 ns from RAM at
# 10M) and by its vector popcounts with many (~0.21-0.24 ns per code and query); the two
# overlap, so a scan costs the larger of the two. A probe looks up its keys with their misses
# overlapped (prefetches), reads the rows under each with the code word kept beside them
# (`mih_tables`) and fetches a row's other word only when a lower bound passes: fitted on
# 8 queries at radii 16-28, 1M and 10M, random and LBPH-like codes, ~30 ns per key and 8 ns
# per row (72-96 ns per key with its rows, within 15 % across those runs).
SCAN_ROW_NS, SCAN_PAIR_NS = 1.0, 0.22
KEY_NS, ROW_NS, PROBE_FIXED_NS = 30.0, 8.0, 20_000.0
BUILD_NS = 15.0  # per row and table


def scan_cost(rows: int, queries: int) -> float:
    """One pass of `scan_rows` over `rows` codes for `queries` queries (0 for no queries)."""
    return rows * max(SCAN_ROW_NS, SCAN_PAIR_NS * queries) if queries else 0.0


def query_costs(keys: np.ndarray, occupancy: np.ndarray) -> np.ndarray:
    """(k,) probe cost of each query: keys looked up ((k, m) from `keys_per_query`) times (one
    offset + the rows expected under a key, `occupancy` (m,) per table)."""
    return (keys * (KEY_NS + np.asarray(occupancy)[None, :] * ROW_NS)).sum(axis=1)


def choose_probed(costs: np.ndarray, rows: int, fresh: int) -> tuple[np.ndarray, float]:
    """Which queries to probe (bool (k,)) so that probing them and scanning the others once
    costs least, and that cost. `costs`: each query's probe (inf: cannot probe); `rows`: the
    rows a scan reads; `fresh`: rows the tables do not cover, scanned for the probed queries.
    The scan's price does not grow per query until it is compute bound, so the cheapest
    probes are the ones worth taking out of it: the best plan probes a cheapest prefix."""
    k = len(costs)
    order = np.argsort(costs, kind="stable")
    s = np.arange(k + 1)  # plan s: probe the s cheapest queries, scan the others
    probes = np.concatenate([[0.0], PROBE_FIXED_NS + np.cumsum(costs[order])])
    total = probes + _scan_costs(fresh, s) + _scan_costs(rows, k - s)
    best = int(np.argmin(total))  # the first of equals: plan 0 (scan all) wins ties
    probed = np.zeros(k, dtype=bool)
    probed[order[:best]] = True
    return probed, float(total[best])


def _scan_costs(rows: int, queries: np.ndarray) -> np.ndarray:
    """`scan_cost` for each count of queries."""
    return np.where(queries > 0, rows * np.maximum(SCAN_ROW_NS, SCAN_PAIR_NS * queries), 0.0)


def build_cost(rows: int, layout: Layout) -> float:
    return BUILD_NS * rows * layout.m + sum(2**b for b in layout.bucket_bits)
