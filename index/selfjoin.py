"""Exact batch Hamming join: every (query, code) pair within a radius, for many queries at once.

What a first scan needs to link its files (docs/performance.md, "A first scan's edge finding
at 1M"): instead of one range search per new file (~1,000–2,000 random bucket look-ups per
code and per table at 1M codes), all new files are joined against all stored codes in one
pass per multi-index-hashing table.

Method (`range_join`). The live bits are cut into m substrings (`mih.make_layout`); by the
pigeonhole bound of `mih.table_radii`, a pair within `radius` is within the table radius r_j
in at least one table j. Per table, both sides are sorted by their substring (a CSR bucket
index over the 2^b keys, `search_kernels.csr_fill`). For each bucket x of the larger side
(A), the codes of the other side (B) in every bucket x ^ mask with popcount(mask) <= r_j are
copied into one run, and x's codes are checked against the run four at a time on the full
code: one long branch-free loop that LLVM vectorises (vector popcount), where a loop per
pair of buckets (15-60 codes each) spent most of its time outside the vector part. A pair is
reported by the first table whose substring is within its radius (checked on the hit, so
each pair comes out once). The candidate checks are the cost, ~n_q * n_c *
sum_j |ball(b_j, r_j)| / 2^b_j of them; m is chosen so that a bucket holds ~45 codes of the
larger side (`default_m`: fewer, wider tables check fewer candidates but in runs too short
to pay for).

Which pairs: a pair (q, c) within the radius is reported iff
    c_rank[c] < q_rank[q]  and  c_batch[c] != q_rank[q]  and  c != q_self[q];
with the defaults (q_rank 0, c_rank -1, c_batch -1, q_self -1) that is every pair. The scan
uses them to look only at the codes a per-file lookup would have seen (`daemon/linking.py`).

The kernel runs in `workers` threads (nogil), each on its own range of query buckets.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import int64, njit, types, uint32, uint64

from . import mih
from .hamming import popcount
from .search_kernels import bucket_keys, csr_fill, popcount64

_OPTS = {"nogil": True, "cache": True}
# A tile of four rows whose run holds a code within the radius is searched again row by row,
# in blocks of HIT_BLOCK codes (a vectorised minimum each), code by code only in a block with
# a hit; a query's own bucket, when the queries are among the codes, in blocks of SAME_BLOCK
# (its own code is there: a tile over it would always hit).
HIT_BLOCK = 64
SAME_BLOCK = 16
_U64 = types.Array(uint64, 1, "C", readonly=True)
_U32 = types.Array(uint32, 1, "C", readonly=True)
_I64 = types.Array(int64, 1, "C", readonly=True)

@njit(inline="always", **_OPTS)
def _first_table(u, v, sub0, sub1, sub_r, table):
    """Whether `table` is the first table whose substring of the difference (u, v) is within
    its radius: the one table that reports the pair (a folded table's bucket may match
    without its substring being within the radius)."""
    for k in range(table + 1):
        within = int64(popcount64(u & sub0[k]) + popcount64(v & sub1[k])) <= sub_r[k]
        if within:
            return k == table
    return False


@njit(inline="always", **_OPTS)
def _block_min(pa, pb, run0, run1, jb, je):
    """The smallest distance from (pa, pb) to the run's codes jb..je-1 (a vectorised reduction)."""
    best = np.uint64(255)
    for j in range(jb, je):
        best = min(best, popcount64(pa ^ run0[j]) + popcount64(pb ^ run1[j]))
    return best


@njit(inline="always", **_OPTS)
def _grow(arr, cap):
    out = np.empty(cap, np.int64)
    out[:arr.shape[0]] = arr
    return out


@njit(types.Tuple((int64[::1], int64[::1], int64[::1]))(
    _U32, _U64, _U64, _I64, _U32, _U64, _U64, _I64, types.boolean,
    _U64, int64, int64, int64,
    _U64, _U64, _I64, int64, _I64, _I64, _I64, _I64, types.boolean), **_OPTS)
def _join_table(aoff, a0, a1, aorig, boff, b0, b1, borig, swap, masks, x_start, x_stop, radius,
                sub0, sub1, sub_r, table, q_rank, c_rank, c_batch, q_self, apart):
    """Hits (q, c, distance) of one table for the buckets x in [x_start, x_stop) of side A.

    A and B are the two sides sorted by bucket key: `aoff`/`boff` their CSR offsets over the
    2^b keys, a0/a1, b0/b1 their words in that order, aorig/borig their original rows; A is
    the queries and B the codes, or the other way round (`swap`). For each bucket x of A,
    the codes of B in every bucket x ^ mask (`masks`: every key within the table radius)
    are copied into one run, and the rows of x are checked against the whole run four at a
    time: one long branch-free loop that LLVM vectorises (vector popcount), where a loop
    per pair of buckets (15-60 codes each) spent most of its time outside the vector part.
    A hit is kept if the visibility arrays allow it and `table` is the first whose
    substring (sub0[j], sub1[j]) is within sub_r[j] (`_first_table`). With `apart` (the
    queries are among the codes), bucket x of B is searched row by row instead: each
    query's own code lies there and would make every tile a hit."""
    cap = 1024
    out_q = np.empty(cap, np.int64)
    out_c = np.empty(cap, np.int64)
    out_d = np.empty(cap, np.int64)
    count = 0
    run_cap = 4096
    run0 = np.empty(run_cap, np.uint64)
    run1 = np.empty(run_cap, np.uint64)
    run_row = np.empty(run_cap, np.int64)
    lim = np.uint64(radius)
    for x in range(x_start, x_stop):
        xa = int64(aoff[x])
        xb = int64(aoff[x + 1])
        if xa == xb:
            continue
        n = 0
        n_same = 0
        for t in range(masks.shape[0]):
            y = x ^ int64(masks[t])
            ya = int64(boff[y])
            yb = int64(boff[y + 1])
            if ya == yb:
                continue
            if n + yb - ya > run_cap:
                while n + yb - ya > run_cap:
                    run_cap *= 2
                g0 = np.empty(run_cap, np.uint64)
                g1 = np.empty(run_cap, np.uint64)
                gr = np.empty(run_cap, np.int64)
                g0[:n] = run0[:n]
                g1[:n] = run1[:n]
                gr[:n] = run_row[:n]
                run0, run1, run_row = g0, g1, gr
            for k in range(ya, yb):  # an explicit loop: slice assignments cost more than these few codes
                run0[n] = b0[k]
                run1[n] = b1[k]
                run_row[n] = borig[k]
                n += 1
            if t == 0 and apart:
                n_same = n  # masks[0] == 0: bucket x of B comes first
        if n == 0:
            continue
        i = xa
        while i < xb:
            # four rows of A per pass over the run (the last one repeated to fill a short
            # group): each code of the run is loaded once per four rows
            rows = min(4, xb - i)
            i1 = min(i + 1, xb - 1)
            i2 = min(i + 2, xb - 1)
            i3 = min(i + 3, xb - 1)
            p0, r0, p1, r1 = a0[i], a1[i], a0[i1], a1[i1]
            p2, r2, p3, r3 = a0[i2], a1[i2], a0[i3], a1[i3]
            best = np.uint64(255)
            for j in range(n_same, n):
                u = run0[j]
                v = run1[j]
                d = min(min(popcount64(u ^ p0) + popcount64(v ^ r0), popcount64(u ^ p1) + popcount64(v ^ r1)),
                        min(popcount64(u ^ p2) + popcount64(v ^ r2), popcount64(u ^ p3) + popcount64(v ^ r3)))
                best = min(best, d)
            # Row by row, block by block: the codes of bucket x itself always (a query's own
            # code lies there when the queries are among the codes: every tile would hit), in
            # small blocks; the rest only when the tile's minimum says a pair is within the radius.
            end = n if best <= lim else n_same
            for ii in range(i, i + rows):
                pa = a0[ii]
                pb = a1[ii]
                jb = 0
                while jb < end:
                    je = min(jb + (SAME_BLOCK if jb < n_same else HIT_BLOCK), n_same if jb < n_same else end)
                    if _block_min(pa, pb, run0, run1, jb, je) > lim:
                        jb = je
                        continue
                    for j in range(jb, je):
                        u = pa ^ run0[j]
                        v = pb ^ run1[j]
                        dist = int64(popcount64(u) + popcount64(v))
                        if dist > radius:
                            continue
                        if swap:
                            qi = run_row[j]
                            ci = aorig[ii]
                        else:
                            qi = aorig[ii]
                            ci = run_row[j]
                        if not (c_rank[ci] < q_rank[qi] and c_batch[ci] != q_rank[qi] and ci != q_self[qi]):
                            continue
                        if not _first_table(u, v, sub0, sub1, sub_r, table):
                            continue
                        if count == cap:
                            cap *= 2
                            out_q, out_c, out_d = _grow(out_q, cap), _grow(out_c, cap), _grow(out_d, cap)
                        out_q[count] = qi
                        out_c[count] = ci
                        out_d[count] = dist
                        count += 1
                    jb = je
            i += rows
    return out_q[:count].copy(), out_c[:count].copy(), out_d[:count].copy()


@dataclass(frozen=True)
class JoinHits:
    """Pairs found by `range_join`, each once: query row, code row, Hamming distance (int64 arrays)."""

    q: np.ndarray
    c: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.q)


def _words(codes: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    arr = np.ascontiguousarray(codes, dtype=np.uint64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (k, 2) (two uint64 words per code), not {arr.shape}")
    return np.ascontiguousarray(arr[:, 0]), np.ascontiguousarray(arr[:, 1])


def _int_array(values, n: int, default: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, default, np.int64)
    arr = np.ascontiguousarray(values, dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), not {arr.shape}")
    return arr


def live_bits(live0: int, live1: int) -> int:
    return bin(live0).count("1") + bin(live1).count("1")


def default_m(n_queries: int, n_codes: int, live: int) -> int:
    """Tables for a join: buckets of ~45 rows of the larger side (2^b ~ n / 45), so that a
    bucket's tiles of four share one run of candidates; fewer, wider tables check fewer
    candidates, but each bucket's rows are then too few for its run (1M codes, upright join
    of 250k: 16-bit tables 1.6 ns per candidate, 2.3x slower in all than 14-bit ones at 0.47;
    docs/performance.md)."""
    bits = max(8, min(mih.MAX_BUCKET_BITS, round(np.log2(max(n_queries, n_codes, 2)) - 5.5)))
    return max(1, min(live, round(live / bits)))


def join_layout(queries: np.ndarray, codes: np.ndarray, m: int = 0) -> mih.Layout:
    """The tables `range_join` uses for these sides: the live bits of the codes
    (`mih.live_masks`) cut into m substrings (0: `default_m`)."""
    c0, c1 = _words(codes, "codes")
    live0, live1 = mih.live_masks(c0, c1)
    nq = len(queries)
    return mih.make_layout(live0, live1, max(len(c0), nq, 2), m or default_m(nq, len(c0), live_bits(live0, live1)))


def range_join(queries: np.ndarray, codes: np.ndarray, radius: int, *, q_rank=None, c_rank=None, c_batch=None,
               q_self=None, m: int = 0, workers: int = 1) -> JoinHits:
    """Every pair (q, c) with popcount(queries[q] ^ codes[c]) <= radius that the visibility
    arrays allow (module docstring), each once, in no particular order; exactly the pairs a
    brute-force comparison of every query with every code finds.

    `queries` (k, 2) and `codes` (n, 2) are uint64 codes; `m` the number of tables (0: chosen
    from the sizes); `workers` threads run the kernel."""
    radius = int(radius)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, not {radius}")
    q0, q1 = _words(queries, "queries")
    c0, c1 = _words(codes, "codes")
    nq, nc = len(q0), len(c0)
    q_rank = _int_array(q_rank, nq, 0, "q_rank")
    q_self = _int_array(q_self, nq, -1, "q_self")
    c_rank = _int_array(c_rank, nc, -1, "c_rank")
    c_batch = _int_array(c_batch, nc, -1, "c_batch")
    empty = JoinHits(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))
    if nq == 0 or nc == 0:
        return empty
    layout = join_layout(queries, codes, m)
    # Bits dead in the codes count for every pair alike (e = the query's mismatches on them);
    # the tables are searched with the radius left for the live bits (`mih.query_radii`),
    # grouped by e so that each group is one join.
    dead = (popcount((q0 ^ c0[0]) & np.uint64(layout.dead0)).astype(np.int64)
            + popcount((q1 ^ c1[0]) & np.uint64(layout.dead1)))
    parts = []
    for e in np.unique(dead):
        left = radius - int(e)
        if left < 0:
            continue
        rows = np.flatnonzero(dead == e)
        if layout.m == 0:  # every code is the same: each query within the radius pairs with all of them
            qi = np.repeat(rows, nc)
            ci = np.tile(np.arange(nc), len(rows))
            dist = np.full(len(qi), int(e), np.int64)
            ok = (c_rank[ci] < q_rank[qi]) & (c_batch[ci] != q_rank[qi]) & (ci != q_self[qi])
            parts.append(JoinHits(qi[ok], ci[ok], dist[ok]))
            continue
        sub = _join_live(q0[rows], q1[rows], c0, c1, left + int(e), layout, mih.table_radii(left, layout.m),
                         q_rank[rows], c_rank, c_batch, q_self[rows], workers)
        parts.append(JoinHits(rows[sub.q], sub.c, sub.distance))
    if not parts:
        return empty
    return JoinHits(np.concatenate([p.q for p in parts]), np.concatenate([p.c for p in parts]),
                    np.concatenate([p.distance for p in parts]))


def _join_live(q0, q1, c0, c1, radius, layout, radii, q_rank, c_rank, c_batch, q_self, workers) -> JoinHits:
    own = q_self >= 0
    # the queries are the codes' own (a scan's upright join): their own buckets go apart
    apart = bool(own.any()) and float(np.mean((q0[own] == c0[q_self[own]]) & (q1[own] == c1[q_self[own]]))) > 0.5
    sub0 = np.array(layout.mask0, np.uint64)
    sub1 = np.array(layout.mask1, np.uint64)
    sub_r = np.array(radii, np.int64)
    swap = len(c0) > len(q0)  # A, whose buckets share one run of B's candidates, is the larger side
    out_q, out_c, out_d = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for j, kb in enumerate(layout.bucket_bits):
            r_j = radii[j]
            if r_j < 0:
                continue
            qoff, q_rows = _csr(q0, q1, layout, j, kb)
            coff, c_rows = _csr(c0, c1, layout, j, kb)
            q_side = (qoff, q0[q_rows], q1[q_rows], q_rows)
            c_side = (coff, c0[c_rows], c1[c_rows], c_rows)
            a, b = (c_side, q_side) if swap else (q_side, c_side)
            masks = mih.layered_masks(kb, r_j)
            # tasks of consecutive buckets, several per thread: skewed codes fill buckets unevenly
            bounds = np.unique(np.linspace(0, 1 << kb, 8 * max(1, workers) + 1).astype(np.int64))
            jobs = [pool.submit(_join_table, *a, *b, swap, masks, int(lo), int(hi), radius,
                                sub0, sub1, sub_r, j, q_rank, c_rank, c_batch, q_self, apart)
                    for lo, hi in zip(bounds[:-1], bounds[1:])]
            for job in jobs:
                hq, hc, hd = job.result()
                out_q.append(hq)
                out_c.append(hc)
                out_d.append(hd)
    return JoinHits(np.concatenate(out_q), np.concatenate(out_c), np.concatenate(out_d))


def _csr(w0: np.ndarray, w1: np.ndarray, layout: mih.Layout, j: int, kb: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets over the 2^kb bucket keys, rows sorted by key, int64) of table j."""
    keys = bucket_keys(w0, w1, np.uint64(layout.mask0[j]), np.uint64(layout.mask1[j]), kb)
    offsets = np.zeros((1 << kb) + 1, np.uint32)
    rows = np.empty(len(w0), np.uint32)
    csr_fill(keys, offsets, rows)
    return offsets, rows.astype(np.int64)


@dataclass(frozen=True)
class VariantHits:
    """Pairs of a `variant_join`: file row (of `variants`), code row, distance, variant number."""

    file: np.ndarray
    code: np.ndarray
    distance: np.ndarray
    variant: np.ndarray

    def __len__(self) -> int:
        return len(self.file)


def variant_join(variants: np.ndarray, codes: np.ndarray, upright_radius: int, rotated_radius: int, *,
                 q_rank=None, q_self=None, c_rank=None, c_batch=None, chunks: int = 1, workers: int = 1,
                 m_upright: int = 0, m_rotated: int = 0) -> VariantHits:
    """Every (file, code, variant) with variant 0 of the file (its upright code) within
    `upright_radius` of the code, or variant k >= 1 within `rotated_radius` (-1: none), that
    the visibility arrays allow (`range_join`; q_rank and q_self are per file). What a
    per-file lookup of each file's variants finds (`daemon/scan.py` `_find_edges`).

    `variants`: (n, k, 2) uint64, row 0 of each file its upright code. `chunks` > 1 splits
    the files by q_rank into that many runs and joins each only with the codes whose
    c_rank is below the run's largest q_rank: the same pairs, with the codes a run cannot see
    left out (a first scan's files see only those stored before them: ~half the work)."""
    variants = np.ascontiguousarray(variants, dtype=np.uint64)
    if variants.ndim != 3 or variants.shape[2] != 2:
        raise ValueError(f"variants must have shape (n, k, 2), not {variants.shape}")
    n, k = variants.shape[:2]
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    q_rank = _int_array(q_rank, n, 0, "q_rank")
    q_self = _int_array(q_self, n, -1, "q_self")
    c_rank = _int_array(c_rank, len(codes), -1, "c_rank")
    c_batch = _int_array(c_batch, len(codes), -1, "c_batch")
    order = np.argsort(q_rank, kind="stable")
    parts = []
    for run in np.array_split(order, max(1, min(chunks, n))):
        if len(run) == 0:
            continue
        visible = np.flatnonzero(c_rank < q_rank[run].max())
        c_sub = codes[visible]
        back = np.full(len(codes), -1, np.int64)
        back[visible] = np.arange(len(visible))
        self_sub = np.where(q_self[run] >= 0, back[np.maximum(q_self[run], 0)], -1)
        common = dict(c_rank=c_rank[visible], c_batch=c_batch[visible], workers=workers)
        up = range_join(variants[run, 0], c_sub, upright_radius, q_rank=q_rank[run], q_self=self_sub,
                        m=m_upright, **common)
        parts.append((run[up.q], visible[up.c], up.distance, np.zeros(len(up), np.int64)))
        if k > 1 and rotated_radius >= 0:
            rot = range_join(variants[run, 1:].reshape(-1, 2), c_sub, rotated_radius,
                             q_rank=np.repeat(q_rank[run], k - 1), q_self=np.repeat(self_sub, k - 1),
                             m=m_rotated, **common)
            parts.append((run[rot.q // (k - 1)], visible[rot.c], rot.distance, rot.q % (k - 1) + 1))
    if not parts:
        e = np.empty(0, np.int64)
        return VariantHits(e, e, e, e)
    return VariantHits(*(np.concatenate([p[i] for p in parts]) for i in range(4)))
