"""The classic 64-bit comparison hashes: pHash, dHash, aHash, each as a (2,) uint64 code with word 1 = 0.

They follow imagehash's definitions (hash_size 8) with two deliberate differences: the
resize is our exact area average (`_jit.area_numerators`, `area.area_numerators`) instead of Pillow's Lanczos,
and the bits are packed least-significant first (bit k = row-major element k), whereas
imagehash's hex string puts element 0 in the most significant bit. So a code equals an
imagehash value only up to that bit reversal and the ~1 bit of 64 the resize changes.

- phash: 32x32 area resize, orthonormal 2-D DCT-II, 8x8 low block including DC (rounded to
  a multiple of 2^-16 like LBPH), bit u*8+v = C[u, v] > median of the 64 (the mean of the
  two middle values).
- dhash: 8 high x 9 wide area resize, bit row*8+col = px[row, col+1] > px[row, col].
- ahash: 8x8 area resize, bit row*8+col = px > mean.
dhash and ahash compare the exact area averages (integers scaled by H*W), so ties are ties.
"""

from __future__ import annotations

import numpy as np

from dedupd.kernels import _jit
from dedupd.kernels.area import AHASH_SIZE, DHASH_SIZE, PHASH_SIZE, AreaInput
from dedupd.kernels.dihedral import coefficient_tables
from dedupd.kernels.lbph import measure

_DCT8 = _jit.dct_rows(32, 8)
_PERM, _SIGN = coefficient_tables(8)
_PERM_ID, _SIGN_ID = _PERM[:1].copy(), _SIGN[:1].copy()
_NO_TOP = np.zeros(1, dtype=np.int64)

# Each hash of a grey image measures it (the numba area resize) and calls its `_area` twin,
# which reads only the `AreaInput`: a fingerprint from either is the same, bit for bit.


def phash_block_area(area: AreaInput) -> np.ndarray:
    """The quantized 8x8 DCT block pHash thresholds, shape (1, 8, 8) float64, from the 32x32 sums."""
    return _jit.phash_block_area(area.numerators(PHASH_SIZE), area.denominator, _DCT8)


def phash_block(gray: np.ndarray) -> np.ndarray:
    """The quantized 8x8 DCT block pHash thresholds, shape (8, 8) float64."""
    return phash_block_area(measure(gray, PHASH_SIZE))[0]


def phash_variants_area(area: AreaInput) -> np.ndarray:
    """(8, 2) uint64 pHash codes of the eight variants, from one DCT of the 32x32 sums."""
    return _jit.pack_variants(phash_block_area(area), _NO_TOP, False, _PERM, _SIGN)


def phash(gray: np.ndarray) -> np.ndarray:
    return _jit.pack_variants(phash_block_area(measure(gray, PHASH_SIZE)), _NO_TOP, False, _PERM_ID, _SIGN_ID)[0]


def phash_variants(gray: np.ndarray) -> np.ndarray:
    """(8, 2) uint64: row k is phash(dihedral.apply(gray, DIHEDRAL[k])), from one DCT."""
    return phash_variants_area(measure(gray, PHASH_SIZE))


def dhash_area(area: AreaInput) -> np.ndarray:
    return _jit.dhash_code_area(area.numerators(DHASH_SIZE))


def dhash(gray: np.ndarray) -> np.ndarray:
    return dhash_area(measure(gray, DHASH_SIZE))


def ahash_area(area: AreaInput) -> np.ndarray:
    return _jit.ahash_code_area(area.numerators(AHASH_SIZE))


def ahash(gray: np.ndarray) -> np.ndarray:
    return ahash_area(measure(gray, AHASH_SIZE))
