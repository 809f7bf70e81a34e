"""Window codes: how a crop of a picture is found through the code index.

A crop moves a whole-frame code by ~50 bits (a 15 % off-centre crop; docs/accuracy.md §2):
no radius of a global hash finds it without taking in other photos. What a crop keeps is
the *content* of part of the picture at the same place relative to that content. So each
picture gets codes of windows anchored on its own content: around the strongest SIFT
keypoints of its verification thumbnail, a square of `WINDOW_SCALE` times the keypoint's
size (SIFT's scale is continuous and follows the content when the picture is resized or
cropped), fingerprinted with the index's own algorithm. A window that lies inside the part
a crop kept is the same square of pixels in both files, so its two codes are a few bits
apart, whatever was cut around it.

The index keeps the `STORED` strongest windows of every file (`FileRecord.crop_codes`,
alias rows: `dedupd.index.boxes`); a lookup searches with the `QUERIES` strongest, the
stored ones first, within `thresholds.crop`: a crop is found when one of its windows meets
one of the stored windows of its original, or the other way round, depending on which file
came first. Measured on 120 corpus photos (`bench/crop_codes.py`, docs/accuracy.md §12): a
15 % off-centre crop meets its original within 20 bits in 97.5 % of pairs when it is indexed
after it and 99.2 % before; no two distinct photos come within 24 bits (the closest: 26). Candidates are then confirmed pixel by pixel
(`dedupd.daemon.cropcheck`) before grouping counts them, and land in the report tier only.

Cost: SIFT on a 256 px thumbnail is ~5 ms, the 16 window codes ~1.4 ms (performance.md, Crops), so
crops are matched only when the configuration asks for it (`match_crops`).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from dedupd.kernels.algorithms import get as algorithm

WINDOW_SCALE = 8.0  # window side / keypoint size (SIFT's diameter): 4, 6 and 8 measured, 8 found the most crops
MIN_WINDOW = 24  # px on the thumbnail: a smaller window holds too few pixels to tell pictures apart
STORED = 6  # windows a record keeps: 4 found 93-95 % of 15 % crops in one order, 6 found 98-99 %
QUERIES = 16  # windows a lookup searches with (32 found no more crops than 16)
SAME_KEYPOINT_PX = 2.0  # SIFT reports a point once per dominant orientation: one window each

_local = threading.local()


def _detector():
    """One SIFT detector per thread (OpenCV's detectors are not documented as thread-safe)."""
    sift = getattr(_local, "sift", None)
    if sift is None:
        sift = _local.sift = cv2.SIFT_create()
    return sift


def windows(thumb: np.ndarray, limit: int = QUERIES) -> list[tuple[int, int, int]]:
    """(x, y, side) of up to `limit` square windows of an upright grey thumbnail, strongest
    keypoint first: each centred on a SIFT keypoint, `WINDOW_SCALE` times its size, at least
    `MIN_WINDOW` px and wholly inside the picture; one per place and size. Deterministic
    (ties of strength are broken by position and size)."""
    if thumb is None or thumb.ndim != 2 or min(thumb.shape) < MIN_WINDOW:
        return []
    h, w = thumb.shape
    points = _detector().detect(np.ascontiguousarray(thumb, np.uint8), None)
    points = sorted(points, key=lambda p: (-p.response, p.pt[1], p.pt[0], p.size))
    out: list[tuple[int, int, int]] = []
    kept: list[tuple[float, float, float]] = []
    for p in points:
        side, (x, y) = WINDOW_SCALE * p.size, p.pt
        if side < MIN_WINDOW:
            continue
        x0, y0, x1, y1 = round(x - side / 2), round(y - side / 2), round(x + side / 2), round(y + side / 2)
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            continue
        if any(abs(x - a) < SAME_KEYPOINT_PX and abs(y - b) < SAME_KEYPOINT_PX and abs(side - s) < 0.1 * side
               for a, b, s in kept):
            continue
        kept.append((x, y, side))
        out.append((x0, y0, x1 - x0))
        if len(out) == limit:
            break
    return out


def window_codes(thumb: np.ndarray | None, algo: str, limit: int = QUERIES) -> np.ndarray:
    """(k, 2) uint64 codes of the thumbnail's windows (`windows`), strongest first; k <= limit,
    0 for a picture without keypoints (flat, tiny). The first `STORED` are what a record keeps."""
    codes = np.zeros((0, 2), np.uint64)
    if thumb is None:
        return codes
    code_of = algorithm(algo).hash  # the upright code alone: `fingerprint` would add the 7 other variants (~25 % more)
    found = [code_of(np.ascontiguousarray(thumb[y:y + s, x:x + s])) for x, y, s in windows(thumb, limit)]
    return np.array(found, np.uint64).reshape(-1, 2) if found else codes


def stored(codes: np.ndarray) -> tuple[tuple[int, int], ...]:
    """The record's `crop_codes` of a file's window codes: the `STORED` strongest."""
    return tuple((int(c[0]), int(c[1])) for c in codes[:STORED])
