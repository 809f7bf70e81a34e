"""numba kernels of the in-RAM search: a fused scan of many queries, and multi-index hashing.

Codes are held as two uint64 arrays (structure of arrays): `w0[i]`, `w1[i]` are the words
of row i. The scan reads each word array once per call and checks every query against each
block of 2048 codes while the block sits in L1, so that 8 dihedral variants cost one pass
over memory (a plain loop over (n, 2) rows does not vectorise; this one does, with a vector
popcount where the CPU has one). Multi-index hashing keeps, per table, a CSR bucket index
(`offsets`, `rows`) over a substring of the codes; a substring is the bits of a 128-bit
mask (two words) packed together (`pext`), so tables may skip bits that never vary.

These kernels live in the index package, not in `dedupd.kernels`, because they work on the
index's own row layout; they follow the same rules (explicit signatures, nogil, cache).
The kernels return fresh arrays or counts; they write only to an `out` argument.
"""

from __future__ import annotations

import numpy as np
from numba import int64, njit, types, uint32, uint64, void

_OPTS = {"nogil": True, "cache": True}
_WORDS = types.Array(uint64, 1, "C", readonly=True)
_ROWS = types.Array(int64, 1, "C", readonly=True)
_U32 = types.Array(uint32, 1, "C", readonly=True)
_SUBS = types.Array(uint64, 2, "C", readonly=True)  # (queries, tables) substrings
_RANGES = types.Array(int64, 2, "C", readonly=True)  # (queries, tables) mask counts
_TABLES = types.Array(int64, 1, "C", readonly=True)

SCAN_BLOCK = 2048  # codes per block: 2 x 16 KiB of words stay in L1 while every query runs
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@njit(uint64(uint64), inline="always", **_OPTS)
def _pc(x):
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


@njit(inline="always", **_OPTS)
def _block_min(x0, x1, q0, q1, dist):
    """dist[i] = the smallest distance from code (x0[i], x1[i]) to any query.

    Queries go four at a time: each code is loaded once per four queries and the running
    minimum is read and written once, so the vector loop spends its time in the popcounts
    (two per pair) rather than in loads and stores (~30 % faster for 8 variants than one
    query per pass). Distances are at most 128, so 255 stands for "no query yet"."""
    for i in range(x0.shape[0]):
        dist[i] = np.uint64(255)
    k = 0
    while k + 4 <= q0.shape[0]:
        a0, b0, a1, b1 = q0[k], q1[k], q0[k + 1], q1[k + 1]
        a2, b2, a3, b3 = q0[k + 2], q1[k + 2], q0[k + 3], q1[k + 3]
        for i in range(x0.shape[0]):
            u = x0[i]
            v = x1[i]
            d = min(min(_pc(u ^ a0) + _pc(v ^ b0), _pc(u ^ a1) + _pc(v ^ b1)),
                    min(_pc(u ^ a2) + _pc(v ^ b2), _pc(u ^ a3) + _pc(v ^ b3)))
            dist[i] = min(dist[i], d)
        k += 4
    while k < q0.shape[0]:
        a = q0[k]
        b = q1[k]
        for i in range(x0.shape[0]):
            dist[i] = min(dist[i], _pc(x0[i] ^ a) + _pc(x1[i] ^ b))
        k += 1


@njit(int64[::1](_WORDS, _WORDS, int64, int64, _WORDS, _WORDS, int64), **_OPTS)
def scan_rows(w0, w1, lo, hi, q0, q1, radius):
    """Rows i in [lo, hi) (ascending) whose distance to at least one query (q0[k], q1[k]) is <= radius.

    Written so that LLVM vectorises the block loops (slices, a helper, no growing buffer)."""
    out = np.empty(max(hi - lo, 0), np.int64)
    if radius < 0 or q0.shape[0] == 0 or hi <= lo:
        return out[:0].copy()
    dist = np.empty(SCAN_BLOCK, np.uint64)
    limit = np.uint64(radius)
    count = 0
    for s in range(lo, hi, SCAN_BLOCK):
        e = min(hi, s + SCAN_BLOCK)
        _block_min(w0[s:e], w1[s:e], q0, q1, dist)
        for i in range(e - s):
            if dist[i] <= limit:
                out[count] = s + i
                count += 1
    return out[:count].copy()


@njit(int64[::1](_WORDS, _WORDS, _ROWS, _WORDS, _WORDS, int64), **_OPTS)
def scan_listed(w0, w1, rows, q0, q1, radius):
    """The rows of `rows` within radius of at least one query (for a few scattered rows)."""
    out = np.empty(max(1, rows.shape[0]), np.int64)
    count = 0
    if radius < 0:
        return out[:0].copy()
    limit = np.uint64(radius)
    for row in rows:
        for k in range(q0.shape[0]):
            if _pc(w0[row] ^ q0[k]) + _pc(w1[row] ^ q1[k]) <= limit:
                out[count] = row
                count += 1
                break
    return out[:count].copy()


@njit(uint64(uint64, uint64), inline="always", **_OPTS)
def _pext(x, mask):
    """The bits of x under mask, packed to the low end (software PEXT; a shift for runs)."""
    if mask == 0:
        return np.uint64(0)
    low = mask & (~mask + np.uint64(1))
    run = mask + low  # a contiguous run of ones leaves a power of two (or 0 at the top)
    if run & (run - np.uint64(1)) == 0:
        return (x & mask) >> _pc(low - np.uint64(1))
    out = np.uint64(0)
    bit = np.uint64(1)
    while mask:
        low = mask & (~mask + np.uint64(1))
        if x & low:
            out |= bit
        bit <<= np.uint64(1)
        mask ^= low
    return out


@njit(uint64[::1](_WORDS, _WORDS, uint64, uint64), **_OPTS)
def substrings(w0, w1, m0, m1):
    """The substring under the 128-bit mask (m0, m1) of every code: pext(w0, m0) | pext(w1, m1) << popcount(m0)."""
    n = w0.shape[0]
    out = np.empty(n, np.uint64)
    shift = _pc(m0)
    for i in range(n):
        high = _pext(w1[i], m1)
        out[i] = _pext(w0[i], m0) | ((high << shift) if shift < 64 else np.uint64(0))
    return out


@njit(uint32[::1](_WORDS, _WORDS, uint64, uint64, int64), **_OPTS)
def bucket_keys(w0, w1, m0, m1, kbits):
    """The low `kbits` (<= 32) bits of every code's substring under the mask (m0, m1)."""
    n = w0.shape[0]
    out = np.empty(n, np.uint32)
    shift = _pc(m0)
    low = (np.uint64(1) << np.uint64(kbits)) - np.uint64(1)
    for i in range(n):
        high = _pext(w1[i], m1)
        sub = _pext(w0[i], m0) | ((high << shift) if shift < 64 else np.uint64(0))
        out[i] = np.uint32(sub & low)
    return out


@njit(void(_U32, uint32[::1], uint32[::1]), **_OPTS)
def csr_fill(keys, offsets, rows):
    """Bucket index over `keys` (each < len(offsets) - 1), written into `offsets` (zeroed by the
    caller) and `rows`: the rows of bucket k are rows[offsets[k]:offsets[k+1]], ascending."""
    nb = offsets.shape[0] - 1
    for k in keys:
        offsets[int64(k) + 1] += 1
    for b in range(nb):
        offsets[b + 1] += offsets[b]
    fill = offsets[:nb].copy()
    for i in range(keys.shape[0]):
        k = int64(keys[i])
        rows[fill[k]] = i
        fill[k] += 1


@njit(uint64(_U32), **_OPTS)
def collision_sum(offsets):
    """Sum of squared bucket sizes (a query drawn from the data meets sum(c^2)/n rows on average)."""
    total = np.uint64(0)
    for b in range(offsets.shape[0] - 1):
        c = np.uint64(offsets[b + 1] - offsets[b])
        total += c * c
    return total


_FLAGS = types.Array(types.boolean, 1, "C", readonly=True)


@njit(int64(_U32, _TABLES, _U32, _WORDS, _FLAGS, _TABLES, _WORDS, _WORDS, _SUBS, _WORDS, _TABLES, _RANGES,
             _WORDS, _WORDS, _WORDS, int64, int64[::1]), **_OPTS)
def mih_probe(offsets, off_base, rows, words, inline_w1, row_base, w0, w1, qsubs, masks, mask_base, mask_count,
              bucket_mask, q0, q1, radius, out):
    """Count of rows (possibly repeated) within `radius` of a query, found through the tables;
    the first len(out) of them are written to `out` (call again with a bigger `out` if short).

    For query k and table j, every key `(qsubs[k, j] ^ masks[mask_base[j] + t]) & bucket_mask[j]`
    for t < mask_count[k, j] is looked up in table j (offsets from off_base[j]; rows and words
    from row_base[j]) and each row under it is verified with the full distance. `words[p]` is
    one word of the code of `rows[p]`: word 1 where `inline_w1[j]`, else word 0 (the word that
    holds fewer of the table's own bits, so it tells most about the rest of the code). It is
    checked first, from the bucket itself; the other word is fetched (a cache miss: the
    row's code is anywhere in RAM) only for the few candidates that pass.
    """
    count = 0
    cap = out.shape[0]
    for j in range(qsubs.shape[1]):
        other = w0 if inline_w1[j] else w1
        ob = off_base[j]
        rb = row_base[j]
        mb = mask_base[j]
        bm = bucket_mask[j]
        for k in range(qsubs.shape[0]):
            a = q1[k] if inline_w1[j] else q0[k]  # the query's word matching words[]
            b = q0[k] if inline_w1[j] else q1[k]
            qs = qsubs[k, j]
            for t in range(mask_count[k, j]):
                key = ob + int64((qs ^ masks[mb + t]) & bm)
                for p in range(rb + int64(offsets[key]), rb + int64(offsets[key + 1])):
                    d = int64(_pc(words[p] ^ a))
                    if d <= radius:
                        row = int64(rows[p])
                        if d + int64(_pc(other[row] ^ b)) <= radius:
                            if count < cap:
                                out[count] = row
                            count += 1
    return count


def warm() -> None:
    """Load every kernel (from the numba cache) on a tiny input."""
    w = np.arange(4, dtype=np.uint64)
    q = w[:2].copy()
    scan_rows(w, w, 0, 4, q, q, 1)
    scan_listed(w, w, np.arange(2, dtype=np.int64), q, q, 1)
    substrings(w, w, np.uint64(3), np.uint64(0))
    keys = bucket_keys(w, w, np.uint64(3), np.uint64(0), 2)
    offsets, rows = np.zeros(5, np.uint32), np.empty(4, np.uint32)
    csr_fill(keys, offsets, rows)
    collision_sum(offsets)
    mih_probe(offsets, np.zeros(1, np.int64), rows, w, np.zeros(1, np.bool_), np.zeros(1, np.int64), w, w,
              np.zeros((1, 1), np.uint64), w, np.zeros(1, np.int64), np.ones((1, 1), np.int64),
              np.full(1, 3, np.uint64), q[:1], q[:1], 1, np.empty(4, np.int64))
