"""Hamming distances between codes stored as two uint64 words.

The index computes distances through `hamming_many`, the numba kernel of
`dedupd.kernels.hamming` (nogil, ~1 ns per code). `hamming_many_numpy` is a
plain numpy equivalent kept as an independent oracle for tests.
"""

from __future__ import annotations

import numpy as np

from dedupd.kernels.hamming import hamming_many as _kernel

if hasattr(np, "bitwise_count"):  # numpy >= 2.0

    def popcount(words: np.ndarray) -> np.ndarray:
        """Number of set bits of each uint64 word (uint8 result)."""
        return np.bitwise_count(words)

else:  # pragma: no cover - numpy 1.x

    _M1, _M2, _M4 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
    _H01, _S56 = np.uint64(0x0101010101010101), np.uint64(56)

    def popcount(words: np.ndarray) -> np.ndarray:
        x = np.asarray(words, dtype=np.uint64)
        x = x - ((x >> np.uint64(1)) & _M1)
        x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
        x = (x + (x >> np.uint64(4))) & _M4
        return ((x * _H01) >> _S56).astype(np.uint8)


def hamming_many(q: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Distances from one code q (2,) uint64 to each row of codes (n, 2) uint64, as int32 (n,)."""
    return _kernel(q, np.ascontiguousarray(codes, dtype=np.uint64))


def hamming_many_numpy(q: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The same distances in plain numpy (the test oracle)."""
    p = popcount(np.bitwise_xor(codes, q))
    return p[:, 0].astype(np.int32) + p[:, 1]  # 3x faster than .sum(axis=1)
