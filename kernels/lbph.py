"""LBPH version 2: a 128-bit perceptual hash of a grey image (global DCT bits + LBP texture bits).

After the LBP + DCT hash of Chen, Xiang and Sun (KSII TIIS 15(4), 2021), made exactly
equivariant under the eight rotations/mirrors so that one hash computation yields the
codes of all eight variants. Definition (docs/fingerprints.md has the long form and the
measurements behind version 2):

1. Input `gray`: 2-D uint8, any size >= 1x1, already upright (EXIF orientation applied).
2. Area resize to 64x64: output cell (i, j) is the exact average of the input over the
   rectangle [i*H/64, (i+1)*H/64) x [j*W/64, (j+1)*W/64), pixels partially covered
   weighing by the covered fraction (OpenCV INTER_AREA when shrinking). The same rule is
   used when enlarging (a box filter: each output cell averages the one or two input
   pixels under it), so it is a single formula for every size.
3. Blur with [1,2,1]/4 along each axis, replicate border; round to a multiple of 1/256
   grey level (half up). Call the result B (64x64); all later steps read B.
4. Word 0, bits 0..62: 2x2 average of B -> 32x32, orthonormal 2-D DCT-II, the 8x8 block
   C[0:8, 0:8] without C[0, 0]; every coefficient rounded to a multiple of 2^-16, bit
   (u*8 + v - 1) = C[u, v] > median of the 63. Bit 63 = mean(B) >= 128.
5. Word 1, bits 0..62: circular LBP of B with P=8, R=1 (neighbour p at offset
   (dy, dx) = (-sin, cos)(2*pi*p/8), diagonal neighbours by exact bilinear interpolation),
   s_p = neighbour >= centre + 3 grey levels, mapped to riu2 (number of ones when the
   circular pattern has <= 2 transitions, else 9). Only the inner 60x60 codes are used
   (rows and columns 2..61: neither their LBP nor the blur under it reads a padded pixel);
   2x2 average -> 30x30, orthonormal 30-point 2-D DCT-II, 8x8 block, then as in 4.
   Bit 63 = 0 (reserved).
6. Code: np.array([word0, word1], dtype=np.uint64).

Version 1 differs only in step 5: s_p = neighbour >= centre (no tolerance), replicate
border, and all 64x64 codes pooled to 32x32 with a 32-point DCT. `V1` computes it (the
registry's "lbph1", for comparisons); `Definition` takes any (tau, border, margin).

Every step commutes with the dihedral group, and everything before the DCT is exact
integer arithmetic, so `lbph_variants(A)[k] == lbph(dihedral.apply(A, DIHEDRAL[k]))`
bit for bit, computed from the two coefficient blocks of A alone.
"""

from __future__ import annotations

import numpy as np

from dedupd.kernels import _jit
from dedupd.kernels.area import LBPH_SIZE, MAX_PIXELS, AreaInput, area_input, as_gray  # noqa: F401 (MAX_PIXELS, as_gray: public here)
from dedupd.kernels.dihedral import coefficient_tables

LBPH_VERSION = 2

_PERM, _SIGN = coefficient_tables(8)
_PERM_ID, _SIGN_ID = _PERM[:1].copy(), _SIGN[:1].copy()


def measure(gray: np.ndarray, *sizes: tuple[int, int]) -> AreaInput:
    """The `AreaInput` of `gray` at `sizes`, by the numba resize (what every kernel here reads of gray)."""
    return area_input(gray, sizes, _jit.area_numerators)


class Definition:
    """One LBPH definition: the texture rule's tolerance, border and pooled area (all else is fixed).

    tau: s_p = neighbour >= centre + tau / 256 grey level (tau an integer, in units of 1/256);
    reflect: reflect-101 border for the LBP instead of replicate; margin: LBP code-image pixels
    dropped on every side before pooling ((64 - 2 margin) / 2-point DCT for the texture word).

    Each method taking `gray` has an `_area` twin taking its `AreaInput` (with the 64x64
    sums) instead; the gray one measures the image and calls the twin, so both agree bit for bit.
    """

    def __init__(self, version: int, tau: int, reflect: bool = False, margin: int = 0):
        if not (0 <= margin <= 24 and 0 <= tau < 1 << 16):
            raise ValueError(f"bad LBPH parameters tau={tau} margin={margin}")
        self.version, self.tau, self.reflect, self.margin = version, int(tau), bool(reflect), int(margin)
        self._m = _jit.dct_rows(32, 8)
        self._mt = _jit.dct_rows(32 - self.margin, 8)

    def __repr__(self) -> str:
        return f"Definition(version={self.version}, tau={self.tau}, reflect={self.reflect}, margin={self.margin})"

    def blocks_area(self, area: AreaInput) -> tuple[np.ndarray, np.ndarray, float]:
        return _jit.lbph_blocks_area(area.numerators(LBPH_SIZE), area.denominator, self._m, self._mt,
                                     self.tau, self.reflect, self.margin)

    def blocks(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        return self.blocks_area(measure(gray, LBPH_SIZE))

    def hash(self, gray: np.ndarray) -> np.ndarray:
        blocks, top, _ = self.blocks(gray)
        return _jit.pack_variants(blocks, top, True, _PERM_ID, _SIGN_ID)[0]

    def variants(self, gray: np.ndarray) -> np.ndarray:
        return self.with_variants(gray)[0]

    def with_variants(self, gray: np.ndarray) -> tuple[np.ndarray, float]:
        return self.with_variants_area(measure(gray, LBPH_SIZE))

    def with_variants_area(self, area: AreaInput) -> tuple[np.ndarray, float]:
        """(the (8, 2) codes of the eight variants, quality) from the 64x64 area sums."""
        blocks, top, q = self.blocks_area(area)
        return _jit.pack_variants(blocks, top, True, _PERM, _SIGN), q


V1 = Definition(1, tau=0)
V2 = Definition(LBPH_VERSION, tau=3 * 256, margin=2)  # tau 3 grey levels, texture of the inner 60x60
CURRENT = V2


def lbph_blocks(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(blocks (2, 8, 8) float64: the quantized global and texture DCT blocks, bit-63 values (2,), quality)."""
    return CURRENT.blocks(gray)


def lbph(gray: np.ndarray) -> np.ndarray:
    """LBPH v2 code of `gray`: shape (2,) uint64."""
    return CURRENT.hash(gray)


def lbph_variants(gray: np.ndarray) -> np.ndarray:
    """(8, 2) uint64: row k is the code of dihedral.apply(gray, DIHEDRAL[k]); row 0 == lbph(gray)."""
    return CURRENT.variants(gray)


def lbph_with_variants(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """(lbph_variants(gray), quality(gray)) from one pass."""
    return CURRENT.with_variants(gray)


def lbph_with_variants_area(area: AreaInput) -> tuple[np.ndarray, float]:
    """`lbph_with_variants` of the image whose 64x64 area sums `area` holds: what `fingerprint` uses."""
    return CURRENT.with_variants_area(area)


def quality(gray: np.ndarray) -> float:
    """Standard deviation of the blurred 64x64 image B (0 = flat; a flat image's hash means nothing)."""
    return quality_area(measure(gray, LBPH_SIZE))


def quality_area(area: AreaInput) -> float:
    """`quality` from the 64x64 area sums."""
    return float(CURRENT.blocks_area(area)[2])
