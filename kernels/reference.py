"""Slow, obviously-correct numpy versions of every kernel: the test oracle.

Written from the definitions (lbph.py, classic.py, docs/fingerprints.md), sharing no code
with the numba kernels in `_jit.py` / `hamming.py`: dense weight matrices built with
`fractions.Fraction`, integer matrix products, `np.pad`, explicit cosine matrices, float
bilinear interpolation with a `decimal` fallback for the near-ties, and `bin(x).count("1")`.
It must agree with the fast kernels bit for bit on codes (and to ~1e-9 on coefficients).
Never used in production.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from dedupd.kernels.dihedral import DIHEDRAL, apply

QUANTUM = 2.0**-16  # DCT coefficients are rounded to multiples of this before thresholding


# ---------------------------------------------------------------- area resize


def area_weights(src: int, dst: int) -> np.ndarray:
    """(dst, src) int64: dst * (length of output cell i's interval [i*src/dst, (i+1)*src/dst) inside source pixel [j, j+1))."""
    w = np.zeros((dst, src), dtype=np.int64)
    for i in range(dst):
        lo, hi = Fraction(i * src, dst), Fraction((i + 1) * src, dst)
        for j in range(math.floor(lo), math.ceil(hi)):
            overlap = min(hi, Fraction(j + 1)) - max(lo, Fraction(j))
            scaled = overlap * dst
            assert scaled.denominator == 1 and scaled > 0
            w[i, j] = int(scaled)
    return w


def area_sum(gray: np.ndarray, h: int, w: int) -> np.ndarray:
    """Integer N (h, w) with N / (H*W) = exact area average of gray over each output cell."""
    x = np.asarray(gray).astype(np.int64)
    return area_weights(x.shape[0], h) @ x @ area_weights(x.shape[1], w).T


def area_resize(gray: np.ndarray, h: int, w: int) -> np.ndarray:
    """Area-average resize as float64 (each value the correctly rounded exact average)."""
    return area_sum(gray, h, w) / float(gray.shape[0] * gray.shape[1])


# ---------------------------------------------------------------- LBPH pieces


def blurred(gray: np.ndarray) -> np.ndarray:
    """B: 64x64 area resize, [1,2,1]/4 blur on both axes (replicate border), rounded half up to 1/256."""
    n = np.pad(area_sum(gray, 64, 64), 1, mode="edge")
    k = np.array([1, 2, 1])
    blur = sum(k[dy] * k[dx] * n[dy : dy + 64, dx : dx + 64] for dy in range(3) for dx in range(3))
    denom = 16 * gray.shape[0] * gray.shape[1]
    out = np.empty((64, 64))
    for idx, value in np.ndenumerate(blur):
        out[idx] = math.floor(Fraction(int(value) * 256, denom) + Fraction(1, 2)) / 256
    return out


def _bilinear_minus_centre_decimal(p: np.ndarray, y: int, x: int, dy: float, dx: float) -> Decimal:
    """sample(y+dy, x+dx) - p[y, x] on the padded image, in 50-digit decimal, for the diagonal neighbours."""
    with localcontext() as ctx:
        ctx.prec = 50
        a = Decimal(2).sqrt() / 2
        oy, ox = (-a if dy < 0 else a), (-a if dx < 0 else a)
        y0, x0 = math.floor(dy), math.floor(dx)
        ty, tx = oy - y0, ox - x0
        c = Decimal(float(p[y, x]))
        total = Decimal(0)
        for cy, wy in ((y0, 1 - ty), (y0 + 1, ty)):
            for cx, wx in ((x0, 1 - tx), (x0 + 1, tx)):
                total += wy * wx * (Decimal(float(p[y + cy, x + cx])) - c)
        return total


def lbp_riu2(b: np.ndarray, tau: float = 0.0, border: str = "edge") -> np.ndarray:
    """riu2 code (0..9) of every pixel: P=8, R=1, bilinear neighbours, s_p = neighbour >= centre + tau.

    tau in grey levels (a multiple of 1/256); border: "edge" (replicate) or "reflect" (reflect-101).
    """
    assert border in ("edge", "reflect")
    h, w = b.shape
    p = np.pad(b, 1, mode=border)
    centre = p[1:-1, 1:-1]
    bits = np.zeros((8, h, w), dtype=np.int64)
    for k in range(8):
        dy, dx = -math.sin(2 * math.pi * k / 8), math.cos(2 * math.pi * k / 8)
        dy, dx = (float(round(v)) if abs(v - round(v)) < 1e-9 else v for v in (dy, dx))
        y0, x0 = math.floor(dy), math.floor(dx)
        ty, tx = dy - y0, dx - x0
        diff = np.zeros((h, w))
        for cy, wy in ((y0, 1 - ty), (y0 + 1, ty)):
            for cx, wx in ((x0, 1 - tx), (x0 + 1, tx)):
                if wy * wx != 0:
                    diff += wy * wx * (p[1 + cy : 1 + cy + h, 1 + cx : 1 + cx + w] - centre)
        diff -= tau
        ge = diff >= 0
        # The float error here is ~1e-13, and a true nonzero difference exceeds 1e-9 grey level:
        # it is ((sqrt2 - 1) S + T) / 512 for integers S, T (in 1/256 units, |S|, |T| < 2^18; tau,
        # a multiple of 1/256, only shifts T) and |sqrt2 S - R| = |2 S^2 - R^2| / (sqrt2 |S| + |R|)
        # >= 1 / 400000 unless S = R = 0. So only |diff| < 1e-6 needs the exact look, and a decimal
        # result below 1e-30 is a true 0.
        for y, x in zip(*np.nonzero(np.abs(diff) < 1e-6)):
            if ty or tx:
                exact = _bilinear_minus_centre_decimal(p, y + 1, x + 1, dy, dx) - Decimal(float(tau))
            else:
                exact = Decimal(diff[y, x])
            ge[y, x] = abs(exact) < Decimal("1e-30") or exact > 0
        bits[k] = ge
    ones = bits.sum(axis=0)
    transitions = (bits != np.roll(bits, -1, axis=0)).sum(axis=0)
    return np.where(transitions <= 2, ones, 9)


def pool2(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    return a.astype(np.float64).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: M[u, x] = s(u) cos(pi (2x+1) u / 2n), s(0) = sqrt(1/n), else sqrt(2/n)."""
    m = np.empty((n, n))
    for u in range(n):
        for x in range(n):
            m[u, x] = math.sqrt((1 if u == 0 else 2) / n) * math.cos(math.pi * (2 * x + 1) * u / (2 * n))
    return m


def dct2(img: np.ndarray) -> np.ndarray:
    m = dct_matrix(img.shape[0])
    assert img.shape[0] == img.shape[1]
    return m @ img @ m.T


def low_block(img: np.ndarray) -> np.ndarray:
    """C[0:8, 0:8] of the 2-D DCT, rounded to multiples of QUANTUM."""
    return np.round(dct2(img)[:8, :8] / QUANTUM) * QUANTUM


# The texture rule of each LBPH version, stated here again (not imported from lbph.py):
# tau in grey levels, the LBP border, and the LBP code-image pixels dropped on every side before pooling.
V1 = {"tau": 0.0, "border": "edge", "margin": 0}
V2 = {"tau": 3.0, "border": "edge", "margin": 2}  # with margin 2 the border mode never matters


def texture_image(b: np.ndarray, tau: float, border: str, margin: int) -> np.ndarray:
    """The riu2 code image that is pooled for word 1: the LBP of B without `margin` pixels on each side."""
    codes = lbp_riu2(b, tau, border)
    return codes[margin : codes.shape[0] - margin, margin : codes.shape[1] - margin]


def lbph_blocks(gray: np.ndarray, tau: float = V2["tau"], border: str = V2["border"], margin: int = V2["margin"]) -> np.ndarray:
    b = blurred(gray)
    return np.stack([low_block(pool2(b)), low_block(pool2(texture_image(b, tau, border, margin)))])


def _word_without_dc(block: np.ndarray) -> int:
    vals = block.ravel()
    med = np.median(vals[1:])
    return sum(1 << (k - 1) for k in range(1, 64) if vals[k] > med)


def lbph(gray: np.ndarray, tau: float = V2["tau"], border: str = V2["border"], margin: int = V2["margin"]) -> np.ndarray:
    """LBPH code; the defaults are the current version (V2); lbph(gray, **V1) is version 1."""
    b = blurred(gray)
    w0 = _word_without_dc(low_block(pool2(b))) | (int(b.mean() >= 128) << 63)
    w1 = _word_without_dc(low_block(pool2(texture_image(b, tau, border, margin))))
    return np.array([w0, w1], dtype=np.uint64)


def lbph_variants(gray: np.ndarray, **definition) -> np.ndarray:
    """Brute force: hash each of the eight rotated/mirrored images."""
    return np.stack([lbph(apply(gray, name), **definition) for name in DIHEDRAL])


def quality(gray: np.ndarray) -> float:
    return float(np.std(blurred(gray)))


# ---------------------------------------------------------------- classic hashes


def phash_block(gray: np.ndarray) -> np.ndarray:
    return low_block(area_resize(gray, 32, 32))


def phash(gray: np.ndarray) -> np.ndarray:
    vals = phash_block(gray).ravel()
    med = np.median(vals)
    return np.array([sum(1 << k for k in range(64) if vals[k] > med), 0], dtype=np.uint64)


def phash_variants(gray: np.ndarray) -> np.ndarray:
    return np.stack([phash(apply(gray, name)) for name in DIHEDRAL])


def _exact_resize(gray: np.ndarray, h: int, w: int) -> list[list[Fraction]]:
    n, denom = area_sum(gray, h, w), gray.shape[0] * gray.shape[1]
    return [[Fraction(int(v), denom) for v in row] for row in n]


def dhash(gray: np.ndarray) -> np.ndarray:
    px = _exact_resize(gray, 8, 9)
    word = sum(1 << (r * 8 + c) for r in range(8) for c in range(8) if px[r][c + 1] > px[r][c])
    return np.array([word, 0], dtype=np.uint64)


def ahash(gray: np.ndarray) -> np.ndarray:
    px = _exact_resize(gray, 8, 8)
    mean = sum(sum(row) for row in px) / 64
    word = sum(1 << (r * 8 + c) for r in range(8) for c in range(8) if px[r][c] > mean)
    return np.array([word, 0], dtype=np.uint64)


# ---------------------------------------------------------------- Hamming


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(a, b))


def hamming_many(q: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return np.array([hamming(q, c) for c in codes], dtype=np.int32)


def within_radius(q: np.ndarray, codes: np.ndarray, radius: int) -> np.ndarray:
    return np.array([i for i, c in enumerate(codes) if hamming(q, c) <= radius], dtype=np.int64)


def hamming_many_multi(qs: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return np.array([hamming_many(q, codes) for q in qs], dtype=np.int32).reshape(len(qs), len(codes))
