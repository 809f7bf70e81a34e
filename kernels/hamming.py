"""Hamming distances between 128-bit codes stored as two uint64 words (numba, nogil).

Codes are (2,) uint64 arrays; a table of n codes is an (n, 2) C-contiguous uint64 array.
64-bit algorithms keep word 1 = 0, so the same kernels serve them. The popcount is the
SWAR bit trick, which LLVM turns into a single POPCNT instruction where the CPU has one.
These are numba dispatchers compiled for exactly the signatures below: pass uint64 arrays
(np.ascontiguousarray(x, dtype=np.uint64) when unsure); they can be called from other
numba code too.
"""

from __future__ import annotations

import numpy as np
from numba import int32, int64, njit, types, uint64

_OPTS = {"nogil": True, "cache": True}

# Array arguments are typed read-only: numba accepts writable arrays there as well, so the
# one signature also serves codes that live in read-only buffers (np.frombuffer over LMDB).
_CODE = types.Array(uint64, 1, "A", readonly=True)  # one code, (2,)
_TABLE = types.Array(uint64, 2, "C", readonly=True)  # n codes, (n, 2) C-contiguous
_QUERIES = types.Array(uint64, 2, "A", readonly=True)  # k codes, (k, 2)

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@njit(int64(uint64), **_OPTS)
def popcount(x):
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return int64((x * _H01) >> np.uint64(56))


@njit(int64(_CODE, _CODE), **_OPTS)
def hamming(a, b):
    """Distance between two codes a, b of shape (2,)."""
    return popcount(a[0] ^ b[0]) + popcount(a[1] ^ b[1])


@njit(int32[::1](_CODE, _TABLE), **_OPTS)
def hamming_many(q, codes):
    """Distances (n,) int32 from q (2,) to every row of codes (n, 2)."""
    n = codes.shape[0]
    out = np.empty(n, np.int32)
    q0 = q[0]
    q1 = q[1]
    for i in range(n):
        out[i] = popcount(codes[i, 0] ^ q0) + popcount(codes[i, 1] ^ q1)
    return out


@njit(int64[::1](_CODE, _TABLE, int64), **_OPTS)
def within_radius(q, codes, radius):
    """Indices (ascending, int64) of the rows of codes within Hamming distance <= radius of q."""
    n = codes.shape[0]
    hits = np.empty(n, np.int64)
    count = 0
    q0 = q[0]
    q1 = q[1]
    for i in range(n):
        if popcount(codes[i, 0] ^ q0) + popcount(codes[i, 1] ^ q1) <= radius:
            hits[count] = i
            count += 1
    return hits[:count].copy()


@njit(int32[:, ::1](_QUERIES, _TABLE), **_OPTS)
def hamming_many_multi(qs, codes):
    """Distance matrix (k, n) int32 between k query codes qs (k, 2) and codes (n, 2); no minimum taken."""
    k = qs.shape[0]
    n = codes.shape[0]
    out = np.empty((k, n), np.int32)
    for j in range(k):  # one pass over codes per query: k sequential output streams
        q0 = qs[j, 0]
        q1 = qs[j, 1]
        row = out[j]
        for i in range(n):
            row[i] = popcount(codes[i, 0] ^ q0) + popcount(codes[i, 1] ^ q1)
    return out
