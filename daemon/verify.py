"""Pixel-level verification of a candidate pair: is it the same picture in other bytes?

A small Hamming distance says two images *look* alike at 32x32; it cannot tell a
recompressed copy from the next frame of a video or the other half of a stereo pair.
Before a pair may enter the `act` tier, the two upright greyscale thumbnails are compared:

1. the aspect ratios must match (a crop is not the same picture);
2. two *lossless* files of the same size must hold the same pixels: a lossless
   re-encode cannot change them, so any difference is a different picture (this is
   what tells adjacent video frames apart, whose differences are sub-pixel motions
   no thumbnail-scale measure separates from resampling noise);
3. otherwise both are area-resized to a common size of at most COMPARE_SIDE px, a
   global gain and offset are fitted (a +-8 % brightness edit passes; a gain outside
   [MIN_GAIN, MAX_GAIN] is another exposure and fails), small symmetric trims of
   either image are tried (a trivial trim passes), and the residual is measured with a
   one-pixel spatial tolerance (resampling misregistration passes);
4. the *local* difference decides: the worst block of a BLOCKS x BLOCKS grid and the
   mean residual must stay under their limits, so a moved person or a changed region
   fails even when the rest of the picture is identical.

The limits come from measurements on the shared corpus (`bench/accuracy.py`, its
verify_pair table; docs/accuracy.md): over the 1,440 act-type (original, copy) pairs of
120 originals at 6e3f22c the worst block residual is at most 5.63 grey levels (a 3 % trim;
median 0.02-1.51 per transform), under the 6.0 limit, and one +8 % brightened copy
(6.68) fails; blur, noise and gamma 0.8 edits reach at most 5.86, 3.69 and 11.66.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

THUMB_SIDE = 256  # verification thumbnails are kept at most this large (long side)
COMPARE_SIDE = 256
BLOCKS = 16
MIN_GAIN, MAX_GAIN = 0.8, 1.25
MIN_FIT_PIXELS = 256  # unclipped pixels needed to fit the exposure on them alone
TRIMS = (0.005, 0.01, 0.015, 0.02)  # fraction cut off every side while searching alignment
_TOLERANCE_KERNEL = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class VerifyParams:
    max_block_residual: float = 6.0  # grey levels, mean over the worst block
    max_mean_residual: float = 1.5  # grey levels, mean over the whole image
    max_lossless_difference: int = 2  # grey levels, any pixel, for two lossless files of one size
    aspect_tolerance: float = 0.03  # |log(aspect_a / aspect_b)|


@dataclass(frozen=True)
class Verdict:
    same: bool
    reason: str  # "same", "aspect", "pixels_differ", "exposure", "local_difference", "too_small"
    block_residual: float = math.inf
    mean_residual: float = math.inf
    gain: float = 1.0


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """The verification thumbnail of an upright grey image: long side <= THUMB_SIDE, never upscaled."""
    h, w = gray.shape
    scale = THUMB_SIDE / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(gray)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def verify_pair(a: np.ndarray, b: np.ndarray, *, both_lossless_same_size: bool = False,
                params: VerifyParams = VerifyParams()) -> Verdict:
    """Compare two upright grey thumbnails (see the module doc). Symmetric in a and b:
    the exposure fit predicts one image from the other, and an edit that clipped
    highlights can only be explained in one direction, so both are tried."""
    first = _verify_ordered(a, b, both_lossless_same_size, params)
    if first.same or first.reason not in ("local_difference", "exposure"):
        return first
    second = _verify_ordered(b, a, both_lossless_same_size, params)
    return second if second.same else first


def _verify_ordered(a: np.ndarray, b: np.ndarray, both_lossless_same_size: bool, params: VerifyParams) -> Verdict:
    (ha, wa), (hb, wb) = a.shape, b.shape
    if abs(math.log((wa / ha) / (wb / hb))) > params.aspect_tolerance:
        return Verdict(False, "aspect")
    if both_lossless_same_size:
        if a.shape != b.shape:
            return Verdict(False, "pixels_differ")
        worst = int(np.abs(a.astype(np.int16) - b).max())
        same = worst <= params.max_lossless_difference
        return Verdict(same, "same" if same else "pixels_differ", float(worst), float(worst))
    long_side = min(COMPARE_SIDE, max(ha, wa), max(hb, wb))
    if long_side < 16:
        return Verdict(False, "too_small")
    best: Verdict | None = None
    for trim_a, trim_b in _trim_pairs():
        verdict = _compare(_trim(a, trim_a), _trim(b, trim_b), long_side, params)
        if best is None or verdict.block_residual < best.block_residual:
            best = verdict
        if best.same:
            break
    return best


def _trim_pairs():
    yield 0.0, 0.0
    for t in TRIMS:
        yield t, 0.0
        yield 0.0, t


def _trim(img: np.ndarray, fraction: float) -> np.ndarray:
    if not fraction:
        return img
    h, w = img.shape
    dy, dx = round(h * fraction), round(w * fraction)
    return img[dy : h - dy or h, dx : w - dx or w]


def _compare(a: np.ndarray, b: np.ndarray, long_side: int, params: VerifyParams) -> Verdict:
    ha, wa = a.shape
    size = (long_side, max(8, round(long_side * ha / wa))) if wa >= ha else (max(8, round(long_side * wa / ha)), long_side)
    x = cv2.resize(a, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    y = cv2.resize(b, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    gain, block, mean = local_residual(x, y)
    if math.isinf(block):
        return Verdict(False, "exposure", gain=gain)
    same = block <= params.max_block_residual and mean <= params.max_mean_residual
    return Verdict(same, "same" if same else "local_difference", block, mean, gain)


def local_residual(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(gain, worst block, mean) of the local difference between two aligned float32 images
    of one size: y predicted from x by a fitted gain and offset, both blurred, the residual
    taken with a one-pixel spatial tolerance, averaged per block of a BLOCKS grid (worst
    block) and over the image (mean). Block and mean are inf when the gain lies outside
    [MIN_GAIN, MAX_GAIN]: another exposure, not measured further. Shared by the act tier's
    check and the crop check (`dedupd.daemon.cropcheck`), so both judge pixels alike."""
    gain, offset = _fit(x, y)
    if not MIN_GAIN <= gain <= MAX_GAIN:
        return gain, math.inf, math.inf
    # clip the prediction as the edit itself clipped: a brightened copy saturates at 255
    px = _blur(np.clip(x * gain + offset, 0.0, 255.0))
    py = _blur(y)
    residual = np.maximum(_outside(px, py), _outside(py, px))
    return gain, _worst_block(residual), float(residual.mean())


def _outside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How far each pixel of y lies outside the range of x over its 3x3 neighbourhood."""
    low, high = cv2.erode(x, _TOLERANCE_KERNEL), cv2.dilate(x, _TOLERANCE_KERNEL)
    return np.maximum(0.0, np.maximum(low - y, y - high))


def _blur(img: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares y ~ gain * x + offset over pixels clipped in neither image."""
    mask = (x > 3) & (x < 252) & (y > 3) & (y < 252)
    if mask.sum() < max(MIN_FIT_PIXELS, 0.02 * x.size):
        mask = np.ones_like(x, dtype=bool)
    xm, ym = x[mask], y[mask]
    var = float(xm.var())
    if var < 1e-6:
        return 1.0, float(ym.mean() - xm.mean())
    gain = float(((xm - xm.mean()) * (ym - ym.mean())).mean() / var)
    return gain, float(ym.mean() - gain * xm.mean())


def _worst_block(residual: np.ndarray) -> float:
    h, w = residual.shape
    side = max(h, w) / BLOCKS
    rows, cols = max(1, round(h / side)), max(1, round(w / side))
    ys = np.linspace(0, h, rows + 1).astype(int)
    xs = np.linspace(0, w, cols + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(residual, ys[:-1], axis=0), xs[:-1], axis=1)
    counts = np.outer(np.diff(ys), np.diff(xs))
    return float((sums / counts).max())
