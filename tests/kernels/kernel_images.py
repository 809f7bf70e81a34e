"""Real test pictures (skimage.data photographs) and the edits a duplicate finder must see through.

Everything here is deterministic: a fixed grey formula, fixed crops, OpenCV's JPEG codec
(tests only; the kernels never import cv2).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import skimage.data

# photographs and scans shipped inside the scikit-image wheel (no download needed)
PHOTOS: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
# four everyday photos for the golden values and the slower tests
MAIN: tuple[str, ...] = ("camera", "astronaut", "coffee", "rocket")


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma in integers: (299 R + 587 G + 114 B + 500) // 1000, as uint8."""
    if rgb.ndim == 2:
        return rgb.astype(np.uint8)
    c = rgb[..., :3].astype(np.int64)
    return ((299 * c[..., 0] + 587 * c[..., 1] + 114 * c[..., 2] + 500) // 1000).astype(np.uint8)


@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """The named skimage.data picture in grey (read-only, C-contiguous uint8)."""
    gray = np.ascontiguousarray(to_gray(getattr(skimage.data, name)()))
    gray.setflags(write=False)
    return gray


def jpeg(gray: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(gray), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def scaled(gray: np.ndarray, factor: float) -> np.ndarray:
    """Resized by factor: INTER_AREA to shrink, bicubic to enlarge (what photo tools do)."""
    h, w = gray.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(gray), size, interpolation=interp)


def brightness(gray: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(np.rint(gray.astype(np.float64) * factor), 0, 255).astype(np.uint8)


def crops(gray: np.ndarray, count: int, seed: int, min_frac: float = 0.5) -> list[np.ndarray]:
    """`count` random axis-aligned crops keeping at least min_frac of each side."""
    rng = np.random.default_rng(seed)
    h, w = gray.shape
    out = []
    for _ in range(count):
        ch = int(rng.integers(int(h * min_frac), h + 1))
        cw = int(rng.integers(int(w * min_frac), w + 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(gray[y : y + ch, x : x + cw])
    return out


EDITS = {
    "jpeg40": lambda g: jpeg(g, 40),
    "jpeg75": lambda g: jpeg(g, 75),
    "scale50": lambda g: scaled(g, 0.5),
    "scale150": lambda g: scaled(g, 1.5),
    "bright+8": lambda g: brightness(g, 1.08),
    "bright-8": lambda g: brightness(g, 0.92),
}
