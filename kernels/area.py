"""The exact integer area resize in plain numpy, and `AreaInput`: all a fingerprint reads of an image.

Every fingerprint algorithm reads its grey image only through exact area resizes (LBPH
and every algorithm's `quality`: 64x64; pHash 32x32; dHash 8 high x 9 wide; aHash 8x8)
plus the pixel count. `AreaInput` carries exactly that, so a decode worker process can
hand the fingerprint's whole input to the scanning process in a few tens of KB instead
of the decoded picture (SAFETY.md rule 22), and `dedupd.kernels.fingerprint_area` turns
it into the same `Fingerprint` that `fingerprint(gray)` gives, bit for bit.

This module imports numpy and our errors only, never numba: the decode workers import it
without loading the numba kernels (`dedupd.daemon.decode_worker._without_kernels`).

Definition (the same as `_jit.area_numerators` and `reference.area_sum`): resizing
H x W to h x w, output cell (i, j) covers [i*H/h, (i+1)*H/h) x [j*W/w, (j+1)*W/w) of the
input; N[i, j] = (H*W) * (exact average of the input over the cell), an integer because
the overlap of output cell i with input pixel y along an axis, in units of 1/h pixel, is
an integer. N / (H*W) is the resized image; shrinking and enlarging use the one formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from dedupd.kernels.errors import BadImage, KernelError, UnknownAlgorithm

MAX_PIXELS = 1 << 40  # keeps the exact integer arithmetic of the resize and blur inside int64

LBPH_SIZE = (64, 64)  # LBPH (both versions) and every algorithm's quality
PHASH_SIZE = (32, 32)
DHASH_SIZE = (8, 9)  # 8 high, 9 wide: each bit compares horizontal neighbours
AHASH_SIZE = (8, 8)

# The area resizes each fingerprint algorithm reads (`dedupd.kernels.ALGORITHMS` holds the
# same names; a test keeps the two in step). LBPH_SIZE is in every entry: it gives quality.
SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "lbph": (LBPH_SIZE,),
    "lbph1": (LBPH_SIZE,),
    "phash": (LBPH_SIZE, PHASH_SIZE),
    "dhash": (LBPH_SIZE, DHASH_SIZE),
    "ahash": (LBPH_SIZE, AHASH_SIZE),
}

# int64 elements of one working tile (8 MiB); a tile's temporaries stay within a few times
# this whatever the image size, so a 10000x10000 image never becomes an 800 MB int64 array.
TILE_ELEMENTS = 1 << 20
TILE_COLUMNS = 1 << 15  # widest tile: a 1 x 10^8 picture is cut into columns too


_SUM_DTYPES = (np.dtype(np.int64), np.dtype(np.int32))  # what AreaInput takes; it stores int64


class MissingAreaSums(KernelError):
    """The area input lacks a resize the fingerprint algorithm needs."""


class BadAreaInput(KernelError, ValueError):
    """The area input is not a consistent set of exact area sums."""


def as_gray(gray: np.ndarray) -> np.ndarray:
    """`gray` as a C-contiguous 2-D uint8 array (no copy when it already is one), or BadImage."""
    arr = np.asarray(gray)
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise BadImage(f"expected a 2-D uint8 grey image, got a {arr.ndim}-D {arr.dtype} array")
    if arr.size == 0 or arr.size > MAX_PIXELS:
        raise BadImage(f"image of {arr.shape[0]}x{arr.shape[1]} pixels cannot be hashed")
    return np.ascontiguousarray(arr)


def sizes_for(algo: str) -> tuple[tuple[int, int], ...]:
    """The area resizes (h, w) that algorithm `algo` reads; UnknownAlgorithm if there is none."""
    try:
        return SIZES[algo]
    except KeyError:
        raise UnknownAlgorithm(f"unknown fingerprint algorithm {algo!r}; known: {', '.join(SIZES)}") from None


# ---------------------------------------------------------------- the resize


@lru_cache(maxsize=256)
def _axis_plan(count: int, start: int, src: int, dst: int) -> tuple:
    """The index arithmetic of `_axis_shares` (it depends on the sizes only, and a scan meets
    the same few sizes again and again): (i0, gather, at, hi, lo, small), read-only.

    Positions along the axis are in units of 1/dst pixel: input pixel j covers
    [j*dst, (j+1)*dst), output cell i covers [i*src, (i+1)*src). With t clamped to the
    slice and k = t // dst, the integral of the pixels up to t is dst * (sum of the whole
    pixels before k) + (t % dst) * pixel[k], so a cell's share is dst * (the whole pixels
    between its two ends) plus the partial pixel at its upper end minus the one at its
    lower end. All integers, the same formula for shrinking and enlarging.

    gather (cells, longest run): cell m's whole pixels, shorter runs padded with their first
    pixel (so one vectorized sum does every cell; numpy's `reduceat` was 5x slower); at: the
    pixels k; hi, lo: the weights of at[1:] (added) and at[:-1] (taken off: the lower end's
    partial pixel and the padding). small: whether uint8 input stays within int32.
    """
    i0 = start * dst // src
    i1 = ((start + count) * dst - 1) // src  # the last cell this slice overlaps
    ends = np.clip(np.arange(i0, i1 + 2, dtype=np.int64) * src, start * dst, (start + count) * dst)
    k, frac = ends // dst - start, ends % dst
    first, runs = k[:-1], k[1:] - k[:-1]  # cell m's whole pixels: first[m] .. first[m] + runs[m] - 1
    longest = int(runs.max())
    step = np.arange(longest, dtype=np.int64)
    gather = np.where(step < runs[:, None], first[:, None] + step, first[:, None])
    at = np.minimum(k, count - 1)  # frac is 0 where k == count
    hi, lo = frac[1:], frac[:-1] + dst * (longest - runs)
    # From uint8 pixels, no value exceeds 255 * dst * (longest + 1) (the padded run sum times
    # dst, plus or minus a partial pixel): when that fits, int32 halves the memory traffic.
    small = 255 * dst * (longest + 2) < 2**31
    for arr in (gather, at, hi, lo):
        arr.flags.writeable = False
    return i0, gather, at, hi, lo, small


def _axis_shares(a: np.ndarray, start: int, src: int, dst: int) -> tuple[int, np.ndarray]:
    """Resize axis 0 of the 2-D `a` (pixels start .. start + len(a) - 1 of an axis of `src`
    pixels, resized to `dst`): (i0, S), where row m of S is these pixels' share of the sums
    of output cell i0 + m (every cell they overlap), scaled as N is. The arithmetic is in
    `_axis_plan`."""
    i0, gather, at, hi, lo, small = _axis_plan(a.shape[0], start, src, dst)
    acc = np.int32 if small and a.dtype == np.uint8 else np.int64
    out = np.take(a, gather, axis=0).sum(axis=1, dtype=acc)
    out *= dst
    at_k = np.take(a, at, axis=0).astype(acc)
    out += hi.astype(acc)[:, None] * at_k[1:]
    out -= lo.astype(acc)[:, None] * at_k[:-1]
    return i0, out


def area_numerators(gray: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """N (out_h, out_w) int64 with N / (H*W) = the area resize of gray, exactly.

    Bit-identical to `_jit.area_numerators` (integer arithmetic, every size, up- and
    downscaling). The image is processed in tiles of at most TILE_ELEMENTS pixels (and
    TILE_COLUMNS columns): each tile's share of N is a vertical pass (`_axis_shares` over its
    rows, giving at most out_h + 1 rows) then a horizontal one; shares add up exactly. So
    the temporaries hold O(TILE_ELEMENTS + out_h * TILE_COLUMNS) int64 values, whatever
    the image size.
    """
    gray = as_gray(gray)
    out_h, out_w = int(out_h), int(out_w)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"cannot resize to {out_h}x{out_w}")
    sy, sx = gray.shape
    out = np.zeros((out_h, out_w), np.int64)
    cols = min(sx, TILE_COLUMNS)
    rows = max(1, TILE_ELEMENTS // cols)
    for r0 in range(0, sy, rows):
        for c0 in range(0, sx, cols):
            y0, vertical = _axis_shares(gray[r0 : r0 + rows, c0 : c0 + cols], r0, sy, out_h)
            # the horizontal pass on a contiguous transposed copy (out_h x cols: small) gathers
            # whole rows, ~1.5x faster than gathering strided columns
            x0, share = _axis_shares(np.ascontiguousarray(vertical.T), c0, sx, out_w)
            out[y0 : y0 + share.shape[1], x0 : x0 + share.shape[0]] += share.T
    return out


def _corner_weights(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For the dst + 1 cell boundaries of an axis of `src` pixels resized to `dst`: the
    summed-area indices k and k + 1 around each boundary and their integer weights dst - f
    and f.

    Boundary i lies at t = i*src in units of 1/dst pixel; with k = t // dst, f = t % dst, the
    integral of the pixels before t, in those units, is dst * P[k] + f * pixel[k] =
    (dst - f) * P[k] + f * P[k + 1], P being the prefix sums (P[k] = pixels 0 .. k-1). At the
    last boundary k = src and f = 0: index k + 1 is clamped (its weight is 0)."""
    t = np.arange(dst + 1, dtype=np.int64) * src
    k, f = t // dst, t % dst
    return k, np.minimum(k + 1, src), dst - f, f


def integral_numerators(integral: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """`area_numerators(gray, out_h, out_w)` from the summed-area table of gray:
    `integral` (H+1, W+1), integral[y, x] = the sum of gray[:y, :x] (row 0 and column 0
    zero; what OpenCV's `cv2.integral` returns), any integer dtype holding it exactly.

    Bit-identical to `area_numerators` (tests/kernels/test_area.py): the exact integral of
    the picture up to a corner (ty, tx) of the output grid (in units of 1/out_h and 1/out_w
    pixel) is the bilinear combination, with integer weights, of the four table entries
    around it (`_corner_weights` along each axis, multiplied), and N is the 2-D difference of
    those integrals over the (out_h + 1) x (out_w + 1) cell corners. The table is read at
    those 4 (out_h + 1)(out_w + 1) entries only, so the cost is building it (cv2.integral:
    ~20-40 us for 320x240) plus a few small array operations, where the two gather passes of
    `area_numerators` touch every pixel twice.

    Values: the table is at most 255*H*W, a corner integral at most out_h*out_w times that:
    within int64 for every size in SIZES and H*W <= MAX_PIXELS; a request that would not fit
    raises ValueError rather than wrap around.
    """
    sat = np.asarray(integral)
    if sat.ndim != 2 or sat.shape[0] < 2 or sat.shape[1] < 2 or sat.dtype.kind not in "iu":
        raise BadAreaInput(f"expected an (H+1, W+1) integer summed-area table, got a {sat.ndim}-D {sat.dtype} array")
    sy, sx = sat.shape[0] - 1, sat.shape[1] - 1
    out_h, out_w = int(out_h), int(out_w)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"cannot resize to {out_h}x{out_w}")
    if sy * sx > MAX_PIXELS or 255 * sy * sx * out_h * out_w >= 2**63:
        raise ValueError(f"{sy}x{sx} to {out_h}x{out_w} does not fit the int64 arithmetic; use area_numerators")
    at, weights = _integral_plan(sy, sx, out_h, out_w)
    entries = sat.ravel().take(at).astype(np.int64)  # (4, out_h + 1, out_w + 1): the only entries read
    entries *= weights
    corners = entries.sum(axis=0)  # the exact integral up to each cell corner
    down = corners[1:] - corners[:-1]
    return down[:, 1:] - down[:, :-1]


@lru_cache(maxsize=256)
def _integral_plan(sy: int, sx: int, out_h: int, out_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Where `integral_numerators` reads the flattened (sy+1, sx+1) table and with which
    weights: two read-only (4, out_h + 1, out_w + 1) int64 arrays, for the entries (k, k),
    (k, k + 1), (k + 1, k), (k + 1, k + 1) around each corner (row index first). Cached: a
    scan meets the same few sizes again and again."""
    ky, ky1, wy0, wy1 = _corner_weights(sy, out_h)
    kx, kx1, wx0, wx1 = _corner_weights(sx, out_w)
    stride = sx + 1
    at = np.stack([r[:, None] * stride + c[None, :] for r in (ky, ky1) for c in (kx, kx1)])
    weights = np.stack([np.outer(a, b) for a in (wy0, wy1) for b in (wx0, wx1)])
    for arr in (at, weights):
        arr.flags.writeable = False
    return at, weights


# ---------------------------------------------------------------- the value


@dataclass(frozen=True, eq=False)
class AreaInput:
    """What the fingerprint kernels read of an upright grey image of `shape` (H, W): for each
    size (h, w) in `sums`, N = `area_numerators(gray, h, w)`; N / (H*W) is that resize.

    Built through `__init__` only (unpickling too, see `__reduce__`), which checks that
    every array is an int64 or int32 (h, w) array of values in [0, 255*H*W] whose cells add
    up to the same pixel total at every size, and stores read-only C-contiguous int64 copies
    in a read-only mapping.

    Pickled (what a decode worker sends), the sums travel as int32 when 255*H*W < 2**31
    (pictures up to 8.4 MP: every small photo, every 1/8-decoded one): by the range check
    every value then fits int32 exactly, and an LBPH input is 16 KB instead of 32 KB.
    """

    shape: tuple[int, int]
    sums: Mapping[tuple[int, int], np.ndarray]

    def __post_init__(self) -> None:
        try:
            sy, sx = (int(v) for v in self.shape)
        except (TypeError, ValueError):
            raise BadAreaInput(f"shape must be (height, width), got {self.shape!r}") from None
        if sy < 1 or sx < 1 or sy * sx > MAX_PIXELS:
            raise BadAreaInput(f"an image of {sy}x{sx} pixels cannot be hashed")
        if not self.sums:
            raise BadAreaInput("an area input needs at least one resize")
        sums, totals = {}, set()
        for size, n in self.sums.items():
            h, w = (int(v) for v in size)
            arr = np.asarray(n)
            if arr.dtype not in _SUM_DTYPES or arr.shape != (h, w) or h < 1 or w < 1:
                raise BadAreaInput(f"the {h}x{w} sums must be a ({h}, {w}) int64 or int32 array, got {arr.shape} {arr.dtype}")
            if arr.min() < 0 or arr.max() > 255 * sy * sx:
                raise BadAreaInput(f"the {h}x{w} sums lie outside [0, 255*{sy}*{sx}]")
            total, rem = divmod(int(arr.sum(dtype=np.int64)), h * w)  # = the sum of all pixels, at every size
            if rem:
                raise BadAreaInput(f"the {h}x{w} sums do not add up to a whole pixel total")
            totals.add(total)
            arr = np.array(arr, dtype=np.int64, order="C")  # our own copy: nobody else can change it
            arr.flags.writeable = False
            sums[(h, w)] = arr
        if len(totals) != 1:
            raise BadAreaInput(f"the sums of {len(sums)} sizes disagree on the pixel total")
        object.__setattr__(self, "shape", (sy, sx))
        object.__setattr__(self, "sums", MappingProxyType(sums))

    def __reduce__(self):
        if 255 * self.denominator < 2**31:  # every value is in [0, 255*H*W] (checked): int32 holds it exactly
            return (AreaInput, (self.shape, {size: n.astype(np.int32) for size, n in self.sums.items()}))
        return (AreaInput, (self.shape, dict(self.sums)))

    @property
    def denominator(self) -> int:
        """H*W: every N divided by this is the resized image."""
        return self.shape[0] * self.shape[1]

    def numerators(self, size: tuple[int, int]) -> np.ndarray:
        """The read-only (h, w) int64 sums for `size`, or MissingAreaSums."""
        try:
            return self.sums[tuple(size)]
        except KeyError:
            have = ", ".join(f"{h}x{w}" for h, w in self.sums)
            raise MissingAreaSums(f"the area input has the {have} resize(s), not {size[0]}x{size[1]}") from None

    @property
    def nbytes(self) -> int:
        return sum(n.nbytes for n in self.sums.values())


Numerators = Callable[[np.ndarray, int, int], np.ndarray]


def area_input(gray: np.ndarray, sizes, numerators: Numerators = area_numerators) -> AreaInput:
    """The `AreaInput` of `gray` with the resizes `sizes` (BadImage if gray is not a grey image).

    `numerators` computes each N: this module's numpy version by default (the decode
    workers), or the identical numba kernel (`dedupd.kernels` in the scanning process).
    """
    gray = as_gray(gray)
    return AreaInput(gray.shape, {tuple(s): numerators(gray, s[0], s[1]) for s in sizes})


def area_input_for(gray: np.ndarray, algo: str, numerators: Numerators = area_numerators) -> AreaInput:
    """The `AreaInput` that fingerprint algorithm `algo` needs of `gray`."""
    return area_input(gray, sizes_for(algo), numerators)
