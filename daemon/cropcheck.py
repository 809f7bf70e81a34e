"""Pixel-level crop verification: is one picture's content a sub-rectangle of the other's?

The report tier groups *crops* of a photo with it (a copy keeping, say, 85 % of the width
and height, maybe resized or recompressed afterwards). Candidate pairs come from the index;
this module confirms or rejects one candidate from the two upright greyscale verification
thumbnails (`dedupd.daemon.verify.thumbnail`, long side <= 256), as `verify.verify_pair`
does for the act tier. A verdict never enters the act tier: a crop is a different file's
worth of picture, never replaced by its original.

The decision, in order (the first failing step names the verdict's `reason`):

1. both thumbnails must be large enough to hold features (`too_small`) and must have
   enough ORB keypoints (`too_few_features`: a flat or nearly flat picture);
2. keypoints are matched (Lowe's ratio test), matches whose keypoint orientation turned
   are dropped, and a similarity transform (scale, rotation, translation) is fitted with
   RANSAC (`cv2.estimateAffinePartial2D`, whose sampler has its own fixed seed, whatever
   the state of OpenCV's global RNG: the verdict is deterministic, a test checks it);
   too few inliers is `no_transform`;
3. the transform must be upright (`rotation`: rotated copies are matched by the rotated
   variants of the fingerprint, not here); the scale and translation are refitted to the
   inliers with the rotation forced to 0;
4. one picture's frame, mapped into the other's, must lie inside it up to a small
   tolerance (`not_contained`: two overlapping shots of a panorama are not a crop), at a
   sane scale (`scale`), covering at least `min_overlap` of it (`too_small`: a detail is
   not a crop);
5. the *pixel check* decides: the higher-resolution picture is area-resampled into the
   lower-resolution one's frame, a global gain and offset are fitted over the common
   rectangle (`exposure` outside verify.py's [MIN_GAIN, MAX_GAIN]), and the residual with
   a one-pixel spatial tolerance must stay under verify.py's limits for the worst block
   of a grid and for the mean (`local_difference`: a moved person, a retouched region,
   another shot of the same scene). When it fails, the alignment is refined once (corners
   tracked by Lucas-Kanade, scale and translation refitted) and measured again: the
   features' fit can be 1-2 % off in scale when they sit on a small object.

Features say *where* the crop lies; only the pixel check says that the pixels there are
the same, which is what keeps precision on distinct shots of one scene. A verdict is as
strict as the act tier's verification (the same residual measure and limits): a retouch
too small for verify_pair to see passes here too.

The verdict is symmetric: the pair is put in a canonical order (by shape, then a digest of
the pixels) before anything is measured, so `verify_crop(a, b)` and `verify_crop(b, a)`
return the same verdict. Odd inputs (flat, 1xN, tiny) return `same=False` with a reason;
only a caller's type error (not a 2-D uint8 array) raises. About half the cost is finding
the keypoints: a caller verifying one file against several computes `crop_features` once.

Measured with `bench/crop_verify.py` on the shared corpus (docs/accuracy.md): on 120 originals,
crops of 10-30 % from one, two or four sides, width only, or resized afterwards pass 99.2-100 %
(97.8-99.2 % on all 369: textureless pictures, smooth skies cropped hard and periodic patterns
give no transform); 0 false passes over the 67,896 pairs of distinct originals and
corpus/natural's 172 distinct-shot and 4,455 unrelated pairs; the worst block residual of a
true pair was 5.74 (limit 6.0), 24.6 the median of the false pairs that reached the pixel
check. 8-14 ms a call on the shared 2-core machine, 2.2-5 ms with both files' `crop_features`
given.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import cv2
import numpy as np

from dedupd.daemon.verify import VerifyParams, local_residual

# The reasons a verdict can carry; "crop" is the only one with same=True.
REASONS = ("crop", "too_small", "too_few_features", "no_transform", "rotation", "scale",
           "not_contained", "exposure", "local_difference")


@dataclass(frozen=True)
class CropParams:
    """The limits of a crop verdict. Values measured with `bench/crop_verify.py`."""

    # px: a thumbnail side below this leaves no room for 15 px patches inside a 15 px border
    # at two pyramid levels (tiny pictures fail as "too_small", not as a bad match)
    min_side: int = 32
    # ORB keypoints per thumbnail (bench, 120 originals: crop_30 passes 0.958 with 300,
    # 0.992 with 500, at ~1.5x the time)
    features: int = 500
    # FAST threshold, grey levels: OpenCV's default 20 finds no corner in a dark or hazy
    # thumbnail (bench: crop_30 0.83 with 20 and 31 px patches; 0.99 with 10, 0.98 with 5
    # and the 15 px patch below)
    fast_threshold: int = 10
    # ORB patch and border, px: the default 31 px border is a quarter of a small thumbnail
    patch_size: int = 15
    # Lowe's ratio test on Hamming distances (0.8 is Lowe's own value for SIFT)
    ratio: float = 0.8
    # RANSAC inliers needed (a similarity has 4 degrees of freedom: 2 points). Not what
    # separates true from false: true pairs had >= 14 (p5 46), yet 3,657 of 73,630 false
    # pairs reached 12 (near misses, turned or overlapping pictures); geometry and the pixel
    # check reject those. 12 keeps RANSAC from answering on a handful of chance matches.
    min_inliers: int = 12
    # RANSAC reprojection threshold in pixels of the second thumbnail
    ransac_threshold: float = 3.0
    # degrees a matched keypoint's orientation may turn (ORB's angle noise: module `_transform`)
    max_keypoint_turn: float = 30.0
    # degrees; a crop is upright, RANSAC's fit of one wobbles by a fraction of a degree
    max_rotation_deg: float = 2.0
    # container pixels per contained pixel: a crop keeping 45 % of each side of a 256 px
    # thumbnail is 0.45; a tiny file's thumbnail against a large one can be up to ~4
    min_scale: float = 0.2
    max_scale: float = 5.0
    # how far (fraction of the container's side, plus 2 px) the contained frame may stick out
    containment_tolerance: float = 0.03
    # fraction of the container's area the contained picture must cover (0.2 ~ 45 % per side)
    min_overlap: float = 0.2
    # compared region must have at least this many pixels on its short side
    min_compare_side: int = 24
    # overlap from which a pair is the same frame, not a crop (`both_lossless_same_size`
    # applies): a crop of 1 % of the width and height covers 0.98
    same_frame_overlap: float = 0.985
    # pixel check, grey levels: verify.py's limits for the same picture in other bytes
    max_block_residual: float = 6.0
    max_mean_residual: float = 1.5


@dataclass(frozen=True)
class CropVerdict:
    """same: the pair is a crop (or the same picture). reason: one of REASONS.
    scale: container pixels per contained pixel (nan before a transform is found; for
    "not_contained", pixels of one picture per pixel of the other, as fitted).
    overlap: fraction of the container's area covered by the contained picture.
    inliers: RANSAC inliers (0 before matching). block_residual / mean_residual: the
    pixel check's worst block and mean, grey levels (inf when it did not run)."""

    same: bool
    reason: str
    scale: float = math.nan
    overlap: float = 0.0
    inliers: int = 0
    block_residual: float = math.inf
    mean_residual: float = math.inf


@dataclass(frozen=True)
class CropFeatures:
    """The ORB keypoints of one thumbnail, as plain arrays (picklable, ~20 KB for 500):
    `points` N x 2 float32 (x, y; pixel centres at integers), `angles` N float32 degrees,
    `descriptors` N x 32 uint8. Computing them is about half of a `verify_crop` call, so a
    caller verifying one file against several candidates computes them once
    (`crop_features`) and passes them in."""

    points: np.ndarray
    angles: np.ndarray
    descriptors: np.ndarray


def crop_features(thumb: np.ndarray, params: CropParams = CropParams()) -> CropFeatures:
    """The keypoints `verify_crop` matches, for one upright grey uint8 thumbnail (any size:
    a picture too small or too flat for ORB gets none)."""
    _check_thumb("thumb", thumb)
    if min(thumb.shape) < params.min_side:
        return _NO_FEATURES
    orb = cv2.ORB_create(nfeatures=params.features, fastThreshold=params.fast_threshold,
                         edgeThreshold=params.patch_size, patchSize=params.patch_size)
    keypoints, descriptors = orb.detectAndCompute(np.ascontiguousarray(thumb), None)
    if descriptors is None or not keypoints:
        return _NO_FEATURES
    return CropFeatures(np.float32([k.pt for k in keypoints]).reshape(-1, 2),
                        np.float32([k.angle for k in keypoints]), descriptors)


_NO_FEATURES = CropFeatures(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros((0, 32), np.uint8))


def verify_crop(a: np.ndarray, b: np.ndarray, params: CropParams = CropParams(), *,
                features: tuple[CropFeatures, CropFeatures] | None = None,
                both_lossless_same_size: bool = False) -> CropVerdict:
    """Is one of two upright grey uint8 thumbnails a crop of the other (module doc)?

    `features`, when given, are `crop_features(a, params)` and `crop_features(b, params)`
    (in that order), computed once by a caller that verifies a file against many.
    `both_lossless_same_size`, as for `verify.verify_pair`: when the two files are lossless
    and of one size and the transform found is no crop at all (same frame), their pixels
    must agree as verify_pair requires; a thumbnail-scale residual cannot tell adjacent
    video frames apart (corpus/natural's rubberwhale frames pass without it).
    Symmetric and deterministic; raises TypeError only for arrays that are not 2-D uint8."""
    _check_thumb("a", a)
    _check_thumb("b", b)
    if min(a.shape + b.shape) < params.min_side:
        return CropVerdict(False, "too_small")
    fa, fb = features if features is not None else (crop_features(a, params), crop_features(b, params))
    (first, f1), (second, f2) = sorted(((a, fa), (b, fb)), key=lambda pair: _order_key(pair[0]))
    if min(len(f1.points), len(f2.points)) < params.min_inliers:
        return CropVerdict(False, "too_few_features")
    found = _transform(f1, f2, params)
    if isinstance(found, CropVerdict):
        return found
    s, t, inliers = found  # second = s * first + t
    placed = _place(first.shape, second.shape, s, t, params.containment_tolerance)
    if placed is None:
        return CropVerdict(False, "not_contained", scale=s, inliers=inliers)
    contained, container, scale, shift = (
        (first, second, s, t) if placed == "first" else (second, first, 1.0 / s, -t / s))
    if not params.min_scale <= scale <= params.max_scale:
        return CropVerdict(False, "scale", scale=scale, inliers=inliers)
    overlap = _overlap(contained.shape, container.shape, scale, shift)
    if overlap < params.min_overlap:
        return CropVerdict(False, "too_small", scale=scale, overlap=overlap, inliers=inliers)
    reason, block, mean, scale = _pixel_check(np.ascontiguousarray(contained), np.ascontiguousarray(container),
                                              scale, shift, params)
    if (reason == "crop" and both_lossless_same_size and a.shape == b.shape
            and overlap >= params.same_frame_overlap):
        worst = int(np.abs(a.astype(np.int16) - b).max())
        if worst > VerifyParams().max_lossless_difference:
            reason = "local_difference"
    return CropVerdict(reason == "crop", reason, scale, overlap, inliers, block, mean)


def _check_thumb(name: str, img) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 2 or img.dtype != np.uint8:
        raise TypeError(f"verify_crop: {name} must be a 2-D uint8 grey thumbnail "
                        f"(dedupd.daemon.verify.thumbnail), got {type(img).__name__} "
                        f"{getattr(img, 'shape', '')} {getattr(img, 'dtype', '')}")


def _order_key(img: np.ndarray) -> tuple:
    """A total order on thumbnails, so that the verdict does not depend on argument order."""
    return img.shape, hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).digest()


def _transform(f1: CropFeatures, f2: CropFeatures, params: CropParams):
    """(s, t, inliers) with second ~ s * first + t fitted to the upright matches, or the
    failing CropVerdict ("no_transform", "rotation")."""
    src, dst, turn = _matches(f1, f2, params.ratio)
    # a crop keeps every keypoint's orientation: matches turned by more than ORB's own
    # angle noise are wrong (true inliers: p99 13.5 deg, p99.9 20.6 deg), and dropping
    # them first lets RANSAC find a crop among few good matches
    upright = np.abs(turn) <= params.max_keypoint_turn
    fit = _ransac(src[upright], dst[upright], params)
    if fit is None:
        # no upright transform: say "rotation" when the matches agree on a turned one
        turned = _ransac(src, dst, params)
        if turned is not None and abs(turned[1]) > params.max_rotation_deg:
            return CropVerdict(False, "rotation", inliers=int(turned[2].sum()))
        return CropVerdict(False, "no_transform", inliers=int(upright.sum()))
    _, angle, keep = fit
    if abs(angle) > params.max_rotation_deg:
        return CropVerdict(False, "rotation", inliers=int(keep.sum()))
    s, t = _scale_translation(src[upright][keep], dst[upright][keep])  # rotation forced to 0
    if s <= 0:
        return CropVerdict(False, "no_transform", inliers=int(keep.sum()))
    return s, t, int(keep.sum())


def _ransac(src: np.ndarray, dst: np.ndarray, params: CropParams):
    """cv2's similarity RANSAC: (matrix, angle in degrees, inlier mask) or None."""
    if len(src) < params.min_inliers:
        return None
    m, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                          ransacReprojThreshold=params.ransac_threshold,
                                          maxIters=2000, confidence=0.995, refineIters=10)
    if m is None or mask is None or int(mask.sum()) < params.min_inliers:
        return None
    return m, math.degrees(math.atan2(m[1, 0], m[0, 0])), mask.ravel().astype(bool)


def _matches(f1: CropFeatures, f2: CropFeatures, ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first points, second points, keypoint turn in degrees) of the matches whose nearest
    neighbour passes the ratio test. cv2.batchDistance keeps the two nearest neighbours in
    arrays (no DMatch objects): 1.7 ms against knnMatch's 2.5 ms for 500 x 500 descriptors."""
    dist, idx = cv2.batchDistance(f1.descriptors, f2.descriptors, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2)
    good = np.nonzero((idx[:, 1] >= 0) & (dist[:, 0] < ratio * dist[:, 1]))[0]
    other = idx[good, 0]
    turn = (f2.angles[other] - f1.angles[good] + 180.0) % 360.0 - 180.0
    return f1.points[good], f2.points[other], turn


def _scale_translation(p: np.ndarray, q: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares q ~ s * p + t (uniform scale, translation, no rotation)."""
    p, q = p.astype(np.float64), q.astype(np.float64)
    pm, qm = p.mean(axis=0), q.mean(axis=0)
    var = float(((p - pm) ** 2).sum())
    s = float(((p - pm) * (q - qm)).sum() / var) if var > 1e-9 else 0.0
    return s, qm - s * pm


def _frame(shape: tuple[int, int], s: float, t: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of an image's pixel area mapped by x -> s * x + t (pixel centres at integers)."""
    h, w = shape
    return (s * -0.5 + t[0], s * -0.5 + t[1], s * (w - 0.5) + t[0], s * (h - 0.5) + t[1])


def _inside(frame, shape, tolerance: float) -> float:
    """How far (px, <= 0 when inside) the frame sticks out of an image of `shape` beyond the tolerance."""
    h, w = shape
    x0, y0, x1, y1 = frame
    tx, ty = tolerance * w + 2.0, tolerance * h + 2.0
    return max(-0.5 - tx - x0, -0.5 - ty - y0, x1 - (w - 0.5) - tx, y1 - (h - 0.5) - ty)


def _place(shape1, shape2, s: float, t: np.ndarray, tolerance: float) -> str | None:
    """Which picture lies inside the other: "first", "second" or None. When both do (the
    same frame), the one that sticks out less is the contained one."""
    out1 = _inside(_frame(shape1, s, t), shape2, tolerance)
    out2 = _inside(_frame(shape2, 1.0 / s, -t / s), shape1, tolerance)
    if out1 > 0 and out2 > 0:
        return None
    return "first" if out1 <= out2 else "second"


def _overlap(contained, container, scale: float, shift: np.ndarray) -> float:
    """Fraction of the container's area covered by the contained picture's mapped frame."""
    h, w = container
    x0, y0, x1, y1 = _frame(contained, scale, shift)
    ix = max(0.0, min(x1, w - 0.5) - max(x0, -0.5))
    iy = max(0.0, min(y1, h - 0.5) - max(y0, -0.5))
    return float(ix * iy / (w * h))


def _pixel_check(contained: np.ndarray, container: np.ndarray, scale: float, shift: np.ndarray,
                 params: CropParams) -> tuple[str, float, float, float]:
    """Resample the higher-resolution picture into the other's frame and measure the residual
    over their common rectangle. Returns (reason, worst block, mean, scale as refined).

    The features' fit can be off by 1-2 % in scale when the keypoints sit in a small part
    of the picture (an object on a plain background: 3 px at the far edge, enough to fail
    the residual), so a failing first measure is retried once after `_refine`."""
    if scale <= 1.0:  # the contained picture has the finer pixels: bring it into the container's frame
        moving, fixed, k, t = contained, container, scale, shift
    else:
        moving, fixed, k, t = container, contained, 1.0 / scale, -shift / scale
    first = _measure(moving, fixed, k, t, params)
    if first[0] == "local_difference":
        refined = _refine(moving, fixed, k, t)
        if refined is not None:
            second = _measure(moving, fixed, *refined, params)
            if second[0] == "crop" or second[1] < first[1]:
                k, first = refined[0], second
    return (*first, k if scale <= 1.0 else 1.0 / k)


def _measure(moving: np.ndarray, fixed: np.ndarray, k: float, t: np.ndarray,
             params: CropParams) -> tuple[str, float, float]:
    warped, valid = _resample(moving, fixed.shape, k, t)
    if valid is None:
        return "too_small", math.inf, math.inf
    y0, y1, x0, x1 = valid
    if min(y1 - y0, x1 - x0) < params.min_compare_side:
        return "too_small", math.inf, math.inf
    x = warped[y0:y1, x0:x1]
    y = fixed[y0:y1, x0:x1].astype(np.float32)
    # both directions of the exposure fit: an edit that clipped highlights is explained one way only
    results = []
    for p, q in ((x, y), (y, x)):
        results.append(_residual(p, q, params))
        if results[-1][0] == "crop":
            return results[-1]
    measured = [r for r in results if r[0] == "local_difference"]
    return min(measured, key=lambda r: r[1]) if measured else results[0]


def _refine(moving: np.ndarray, fixed: np.ndarray, k: float, t: np.ndarray):
    """A better (k, t) from the residual motion between `fixed` and `moving` warped by the
    current one: corners of `fixed` tracked into the warp (pyramidal Lucas-Kanade), and a
    least-squares scale and translation fitted to the tracks, twice with the worst third
    dropped. Only the global scale and translation change, so a different picture cannot be
    bent into a match. None when too little can be tracked."""
    warped, valid = _resample(moving, fixed.shape, k, t)
    if valid is None:
        return None
    y0, y1, x0, x1 = valid
    mask = np.zeros(fixed.shape, np.uint8)
    mask[y0:y1, x0:x1] = 255
    corners = cv2.goodFeaturesToTrack(fixed, maxCorners=200, qualityLevel=0.01, minDistance=5, mask=mask)
    if corners is None or len(corners) < 8:
        return None
    image = np.clip(warped + 0.5, 0, 255).astype(np.uint8)
    tracked, status, _ = cv2.calcOpticalFlowPyrLK(fixed, image, corners, None, winSize=(15, 15), maxLevel=2)
    ok = status.ravel() == 1
    if ok.sum() < 8:
        return None
    p, q = corners.reshape(-1, 2)[ok], tracked.reshape(-1, 2)[ok]
    # fixed point p shows what the warp shows at q: correct the map by p ~ c * q + d
    c, d = _scale_translation(q, p)
    for _ in range(2):
        err = np.linalg.norm(c * q + d - p, axis=1)
        keep = err <= np.quantile(err, 0.67)
        if keep.sum() < 8:
            return None
        c, d = _scale_translation(q[keep], p[keep])
    if not 0.9 < c < 1.1:
        return None
    return c * k, c * t + d


def _resample(moving: np.ndarray, shape: tuple[int, int], k: float, t: np.ndarray):
    """`moving` area-resized by k (<= 1) and translated by t into an image of `shape`;
    returns (float32 image, (y0, y1, x0, x1) of the rectangle it fully covers, inset by 2 px
    against interpolation at its edges), or (None, None) when nothing is covered."""
    h, w = moving.shape
    size = (max(1, round(w * k)), max(1, round(h * k)))
    small = cv2.resize(moving, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    kx, ky = size[0] / w, size[1] / h  # the resize's true factors (sizes are rounded)
    # a moving pixel p lies at u = (p + 0.5) * kx - 0.5 in `small`, and at k * p + t in the
    # fixed frame: fixed = (k / kx) * u + k * (0.5 / kx - 0.5) + t (likewise for y)
    ax, ay = k / kx, k / ky
    bx, by = k * (0.5 / kx - 0.5) + t[0], k * (0.5 / ky - 0.5) + t[1]
    m = np.float32([[ax, 0, bx], [0, ay, by]])
    out = cv2.warpAffine(small.astype(np.float32), m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    fx0, fy0, fx1, fy1 = _frame(moving.shape, k, t)
    x0, y0 = max(0, math.ceil(fx0 + 0.5) + 2), max(0, math.ceil(fy0 + 0.5) + 2)
    x1, y1 = min(shape[1], math.floor(fx1 + 0.5) - 2), min(shape[0], math.floor(fy1 + 0.5) - 2)
    if x1 <= x0 or y1 <= y0:
        return None, None
    return out, (y0, y1, x0, x1)


def _residual(x: np.ndarray, y: np.ndarray, params: CropParams) -> tuple[str, float, float]:
    """verify.py's measure on one rectangle: predict y from x by gain and offset (clipped as
    an edit clips), blur both, residual with a one-pixel spatial tolerance, worst block and mean."""
    _, block, mean = local_residual(x, y)
    if math.isinf(block):
        return "exposure", math.inf, math.inf
    ok = block <= params.max_block_residual and mean <= params.max_mean_residual
    return ("crop" if ok else "local_difference"), block, mean
