"""numba kernels behind `lbph` and `classic` (private; the public wrappers validate input).

Every image kernel and all of its helpers live in this one module on purpose: numba's
on-disk cache (`cache=True`) is invalidated by edits to the module that holds a kernel,
not by edits to modules it calls into.

Every image kernel reads the picture only through `area_numerators` (the exact area
resize): `lbph_blocks_area`, `phash_block_area`, `dhash_code_area` and `ahash_code_area`
take its result N and the pixel count, so the numpy twin `dedupd.kernels.area` can compute
N in a decode worker process without numba, and the codes cannot tell the difference.

Exactness. Everything up to the DCT is integer arithmetic, so a picture and its rotated
or mirrored copy go through bit-identical intermediate values and the numpy reference can
reproduce them bit for bit:
- `area_numerators` returns N = Sy*Sx * (exact area average); integers, no rounding.
- `_blur_quantize` applies the [1,2,1]x[1,2,1]/16 blur to N and rounds the result to
  1/256 grey level (round half up), giving integers Q in [0, 65280].
- `_lbp_riu2` compares integers (neighbour - centre against the tolerance tau, itself in
  1/256 grey level); the bilinear diagonal neighbour is decided exactly (see `_diag_ge`).
- The DCT is float64; its coefficients are rounded to a multiple of QUANTUM = 2^-16 so that
  coefficients that are equal in exact arithmetic (the zeros of a flat or mirror-symmetric
  picture, C[u, v] == C[v, u] of a transpose-symmetric one) compare equal whatever the
  summation order. The rounding error of the DCT itself is ~1e-11, far below QUANTUM.
No fastmath anywhere: it would let LLVM reorder sums and break the match with the reference.
"""

from __future__ import annotations

import math

import numpy as np
from numba import boolean, float64, int64, njit, types, uint8, uint64

_OPTS = {"nogil": True, "cache": True}
GRAY = types.Array(uint8, 2, "C", readonly=True)  # also accepts writable arrays
SUMS = types.Array(int64, 2, "C", readonly=True)  # area sums N (an `area.AreaInput` keeps them read-only)

QUANTUM_SCALE = 65536.0  # coefficients are rounded to multiples of 1 / QUANTUM_SCALE
BLUR_LEVELS = 256  # the blurred image is kept in units of 1 / BLUR_LEVELS grey level
SIDE = 64  # LBPH works on a SIDE x SIDE image


def dct_rows(n: int, k: int) -> np.ndarray:
    """First k rows of the orthonormal n-point DCT-II matrix, C-contiguous float64 (k, n)."""
    x = np.arange(n, dtype=np.float64)
    m = np.empty((k, n), dtype=np.float64)
    for u in range(k):
        scale = math.sqrt((1.0 if u == 0 else 2.0) / n)
        m[u] = scale * np.cos(math.pi * (2.0 * x + 1.0) * u / (2.0 * n))
    return m


# ---------------------------------------------------------------- area resize (exact integers)


@njit(types.UniTuple(int64[::1], 3)(int64, int64), **_OPTS)
def _area_table(src, dst):
    """Sparse weights of an area resize src -> dst along one axis.

    Output cell i covers [i*src, (i+1)*src) and source pixel j covers [j*dst, (j+1)*dst),
    both in units of 1/dst source pixel, so every overlap is an integer. Output i reads
    source pixels first[i], first[i]+1, ... with weights[starts[i]:starts[i+1]]; the
    weights of one output sum to src. Works for up- and downscaling alike.
    """
    first = np.empty(dst, np.int64)
    starts = np.empty(dst + 1, np.int64)
    total = 0
    for i in range(dst):
        lo = i * src
        j0 = lo // dst
        j1 = (lo + src - 1) // dst
        first[i] = j0
        starts[i] = total
        total += j1 - j0 + 1
    starts[dst] = total
    weights = np.empty(total, np.int64)
    for i in range(dst):
        lo = i * src
        hi = lo + src
        j = first[i]
        for k in range(starts[i], starts[i + 1]):
            weights[k] = min(hi, (j + 1) * dst) - max(lo, j * dst)
            j += 1
    return first, starts, weights


@njit(int64[:, ::1](GRAY, int64, int64), **_OPTS)
def area_numerators(img, out_h, out_w):
    """N with N / (Sy*Sx) = the area-average resize of img to out_h x out_w, exactly.

    Vertical pass first: it runs over whole contiguous input rows, which LLVM vectorizes;
    the horizontal pass then only sees out_h rows.
    """
    sy, sx = img.shape
    fx, sxs, wx = _area_table(sx, out_w)
    fy, sys_, wy = _area_table(sy, out_h)
    cols = np.zeros((out_h, sx), np.int64)
    for i in range(out_h):
        acc = cols[i]
        a = fy[i]
        for k in range(sys_[i], sys_[i + 1]):
            w = wy[k]
            src = img[a]
            for b in range(sx):
                acc[b] += w * src[b]
            a += 1
    out = np.empty((out_h, out_w), np.int64)
    for i in range(out_h):
        for c in range(out_w):
            acc2 = 0
            j = fx[c]
            for k in range(sxs[c], sxs[c + 1]):
                acc2 += wx[k] * cols[i, j]
                j += 1
            out[i, c] = acc2
    return out


# ---------------------------------------------------------------- blur, LBP, pooling


@njit(int64[:, ::1](SUMS, int64), **_OPTS)
def _blur_quantize(n, denom):
    """round_half_up(BLUR_LEVELS * blur(n / denom)); blur = [1,2,1]/4 on both axes, replicate border."""
    h, w = n.shape
    tmp = np.empty((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            tmp[y, x] = n[y, max(x - 1, 0)] + 2 * n[y, x] + n[y, min(x + 1, w - 1)]
    k = 16 * denom
    out = np.empty((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            nb = tmp[max(y - 1, 0), x] + 2 * tmp[y, x] + tmp[min(y + 1, h - 1), x]
            out[y, x] = (2 * BLUR_LEVELS * nb + k) // (2 * k)
    return out


@njit(boolean(int64, int64, int64), **_OPTS)
def _diag_ge(d1, d2, dd):
    """Is the bilinear sample at a diagonal neighbour >= the centre? Exact.

    With a = sqrt(2)/2 the sample at (y - a, x + a) (and its mirror images) weighs the two
    axis neighbours a(1-a) each, the diagonal pixel a^2 = 1/2 and the centre (1-a)^2, so
    2 * (sample - centre) = (sqrt(2) - 1) * (d1 + d2) + dd, where d1, d2, dd are the axis
    and diagonal neighbours minus the centre. Sign test of sqrt(2)*s - r with integers
    s = d1 + d2, r = s - dd, by comparing squares (|values| < 2^19, squares fit easily).
    """
    s = d1 + d2
    r = s - dd
    if s >= 0:
        return r <= 0 or 2 * s * s >= r * r
    return r < 0 and 2 * s * s <= r * r


@njit(int64[::1](int64, boolean), **_OPTS)
def _neighbour_rows(n, reflect):
    """(prev, next) index tables of one axis, packed as [prev_0..prev_{n-1}, next_0..next_{n-1}].

    Inside, prev[i] = i - 1 and next[i] = i + 1. At the ends the missing neighbour is the
    edge pixel itself (replicate: the outside neighbour equals the pixel) or, with reflect,
    the pixel one step inside (reflect-101: ...2 1 | 0 1 2...). Both are mirror-symmetric,
    so either keeps the LBP image exactly equivariant under the dihedral group.
    """
    out = np.empty(2 * n, np.int64)
    for i in range(n):
        out[i] = i - 1
        out[n + i] = i + 1
    out[0] = min(1, n - 1) if reflect else 0
    out[2 * n - 1] = max(n - 2, 0) if reflect else n - 1
    return out


@njit(int64[:, ::1](int64[:, ::1], int64, boolean), **_OPTS)
def _lbp_riu2(q, tau, reflect):
    """Rotation-invariant uniform LBP (P=8, R=1): set-bit count if <= 2 transitions, else 9.

    s_p = neighbour >= centre + tau (tau in the units of q, 1/256 grey level); the border is
    replicate, or reflect-101 when `reflect`.
    """
    h, w = q.shape
    ry = _neighbour_rows(h, reflect)
    rx = _neighbour_rows(w, reflect)
    out = np.empty((h, w), np.int64)
    bits = np.empty(8, np.int64)
    tau2 = 2 * tau
    for y in range(h):
        yn = ry[y]
        ys = ry[h + y]
        for x in range(w):
            xw = rx[x]
            xe = rx[w + x]
            c = q[y, x]
            de = q[y, xe] - c
            dn = q[yn, x] - c
            dw = q[y, xw] - c
            ds = q[ys, x] - c
            # neighbour p at angle 2*pi*p/8: E, NE, N, NW, W, SW, S, SE.
            # Diagonal: sample - c >= tau  <=>  (sqrt2 - 1)(d1 + d2) + dd - 2 tau >= 0 (see _diag_ge).
            bits[0] = de >= tau
            bits[1] = _diag_ge(dn, de, q[yn, xe] - c - tau2)
            bits[2] = dn >= tau
            bits[3] = _diag_ge(dn, dw, q[yn, xw] - c - tau2)
            bits[4] = dw >= tau
            bits[5] = _diag_ge(ds, dw, q[ys, xw] - c - tau2)
            bits[6] = ds >= tau
            bits[7] = _diag_ge(ds, de, q[ys, xe] - c - tau2)
            ones = 0
            changes = 0
            for p in range(8):
                ones += bits[p]
                changes += bits[p] != bits[(p + 1) % 8]
            out[y, x] = ones if changes <= 2 else 9
    return out


@njit(float64[:, ::1](int64[:, ::1], int64, float64), **_OPTS)
def _pool2(a, margin, scale):
    """scale * (sum of each 2x2 cell) of a without `margin` pixels on every side; exact for the power-of-two scales used here."""
    h = (a.shape[0] - 2 * margin) // 2
    w = (a.shape[1] - 2 * margin) // 2
    out = np.empty((h, w), np.float64)
    for y in range(h):
        y0 = margin + 2 * y
        for x in range(w):
            x0 = margin + 2 * x
            s = a[y0, x0] + a[y0, x0 + 1] + a[y0 + 1, x0] + a[y0 + 1, x0 + 1]
            out[y, x] = s * scale
    return out


# ---------------------------------------------------------------- DCT and bits


@njit(float64[:, ::1](float64[:, ::1], float64[:, ::1]), **_OPTS)
def _dct_block(p, m):
    """Low-frequency k x k corner of the orthonormal 2-D DCT-II of p (m = first k DCT rows), quantized."""
    k, n = m.shape
    tmp = np.zeros((k, n), np.float64)
    for u in range(k):
        for y in range(n):
            muy = m[u, y]
            for x in range(n):
                tmp[u, x] += muy * p[y, x]
    out = np.empty((k, k), np.float64)
    for u in range(k):
        for v in range(k):
            acc = 0.0
            for x in range(n):
                acc += tmp[u, x] * m[v, x]
            out[u, v] = np.rint(acc * QUANTUM_SCALE) / QUANTUM_SCALE
    return out


@njit(uint64(float64[::1], boolean), **_OPTS)
def _threshold_word(vals, skip_dc):
    """64 coefficients (row-major 8x8) -> word, bit = coefficient > median.

    skip_dc: the median of vals[1:] (63 values, so one of them) and vals[k] goes to bit k-1.
    Otherwise: the median of all 64 (mean of the two middle ones) and vals[k] goes to bit k.
    """
    word = np.uint64(0)
    one = np.uint64(1)
    if skip_dc:
        med = np.sort(vals[1:])[31]
        for i in range(1, 64):
            if vals[i] > med:
                word |= one << np.uint64(i - 1)
    else:
        s = np.sort(vals)
        med = (s[31] + s[32]) / 2.0
        for i in range(64):
            if vals[i] > med:
                word |= one << np.uint64(i)
    return word


@njit(uint64[:, ::1](float64[:, :, ::1], int64[::1], boolean, int64[:, ::1], float64[:, ::1]), **_OPTS)
def pack_variants(blocks, top_bits, skip_dc, perm, sign):
    """Codes (k, 2) of the k variants given by (perm, sign); word b from blocks[b], bit 63 = top_bits[b] if skip_dc."""
    nv = perm.shape[0]
    nb = blocks.shape[0]
    out = np.zeros((nv, 2), np.uint64)
    vals = np.empty(64, np.float64)
    for v in range(nv):
        for b in range(nb):
            for i in range(64):
                j = perm[v, i]
                vals[i] = sign[v, i] * blocks[b, j // 8, j % 8]
            word = _threshold_word(vals, skip_dc)
            if skip_dc and top_bits[b] != 0:
                word |= np.uint64(1) << np.uint64(63)
            out[v, b] = word
    return out


# ---------------------------------------------------------------- LBPH


@njit(
    types.Tuple((float64[:, :, ::1], int64[::1], float64))(SUMS, int64, float64[:, ::1], float64[:, ::1], int64, boolean, int64),
    **_OPTS,
)
def lbph_blocks_area(n, denom, m, mt, tau, reflect, margin):
    """(quantized 8x8 DCT blocks [global, texture], bit-63 values [brightness, 0], quality).

    n: the 64x64 area sums of the image (`area_numerators(gray, 64, 64)`), denom: its pixel
    count (n / denom is the resized image). m: the first 8 rows of the 32-point DCT (global
    part). Texture part: LBP with s_p = neighbour >= centre + tau (tau in 1/256 grey level),
    replicate or reflect-101 border, `margin` pixels of the 64x64 code image dropped on every
    side before the 2x2 pooling; mt: the first 8 rows of the (32 - margin)-point DCT. LBPH v1
    is (tau, reflect, margin) = (0, False, 0).
    """
    if m.shape[1] != SIDE // 2 or mt.shape[1] != SIDE // 2 - margin or margin < 0:
        raise ValueError("DCT matrix sizes do not match the pooled images")
    if n.shape[0] != SIDE or n.shape[1] != SIDE or denom < 1:
        raise ValueError("LBPH needs the 64x64 area sums and a positive pixel count")
    q = _blur_quantize(n, denom)
    blocks = np.empty((2, 8, 8), np.float64)
    blocks[0] = _dct_block(_pool2(q, 0, 1.0 / (4 * BLUR_LEVELS)), m)
    blocks[1] = _dct_block(_pool2(_lbp_riu2(q, tau, reflect), margin, 0.25), mt)
    total = q.sum()
    top = np.zeros(2, np.int64)
    top[0] = 1 if total >= 128 * BLUR_LEVELS * SIDE * SIDE else 0
    mean = total / (SIDE * SIDE * BLUR_LEVELS)
    var = 0.0
    for y in range(SIDE):
        for x in range(SIDE):
            d = q[y, x] / BLUR_LEVELS - mean
            var += d * d
    return blocks, top, math.sqrt(var / (SIDE * SIDE))


# ---------------------------------------------------------------- classic 64-bit hashes


@njit(float64[:, :, ::1](SUMS, int64, float64[:, ::1]), **_OPTS)
def phash_block_area(n, denom, m):
    """Quantized 8x8 DCT block (with DC) of the 32x32 area resize n / denom, shape (1, 8, 8)."""
    if n.shape[0] != 32 or n.shape[1] != 32 or denom < 1:
        raise ValueError("pHash needs the 32x32 area sums and a positive pixel count")
    px = np.empty((32, 32), np.float64)
    for y in range(32):
        for x in range(32):
            px[y, x] = n[y, x] / denom
    out = np.empty((1, 8, 8), np.float64)
    out[0] = _dct_block(px, m)
    return out


@njit(uint64[::1](SUMS), **_OPTS)
def dhash_code_area(n):
    """Bit row*8+col = px[row, col+1] > px[row, col] on the 8 high x 9 wide area sums n."""
    if n.shape[0] != 8 or n.shape[1] != 9:
        raise ValueError("dHash needs the 8x9 area sums")
    word = np.uint64(0)
    for r in range(8):
        for c in range(8):
            if n[r, c + 1] > n[r, c]:
                word |= np.uint64(1) << np.uint64(r * 8 + c)
    out = np.zeros(2, np.uint64)
    out[0] = word
    return out


@njit(uint64[::1](SUMS), **_OPTS)
def ahash_code_area(n):
    """Bit row*8+col = px > mean on the 8x8 area sums n (compared exactly as 64*N > sum N)."""
    if n.shape[0] != 8 or n.shape[1] != 8:
        raise ValueError("aHash needs the 8x8 area sums")
    total = n.sum()
    word = np.uint64(0)
    for r in range(8):
        for c in range(8):
            if 64 * n[r, c] > total:
                word |= np.uint64(1) << np.uint64(r * 8 + c)
    out = np.zeros(2, np.uint64)
    out[0] = word
    return out
