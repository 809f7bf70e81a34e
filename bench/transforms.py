"""The transformed copies the accuracy and index benchmarks make from original photos.

Each transform takes an upright BGR uint8 image and returns the bytes of a whole image file
and its extension. `expect` is the tier a dedup tool should put the copy in relative to its
original: "act" (the same picture in other bytes: re-encode, resize, format change, EXIF
rotation, trivial trim, slight exposure change) or "report" (related copies: crops, edits,
real rotations, mirrors, grayscale, captions, ...). Everything is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

JPEG_Q = 92  # quality of the JPEGs written for non-JPEG-quality transforms (the corpus photos are q92)


@dataclass(frozen=True)
class Transform:
    name: str
    expect: str  # "act" or "report"
    fn: Callable[[np.ndarray], tuple[bytes, str]]
    what: str


def jpeg(img: np.ndarray, q: int = JPEG_Q) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
    assert ok
    return buf.tobytes()


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok
    return buf.tobytes()


def _webp(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 80])
    assert ok
    return buf.tobytes()


# -- EXIF orientation: our own APP1 segment ---------------------------------------------------

def exif_app1(orientation: int) -> bytes:
    """A minimal big-endian EXIF APP1 segment holding only IFD0 tag 0x0112 (Orientation)."""
    tiff = b"MM\x00\x2a" + (8).to_bytes(4, "big")
    ifd = ((1).to_bytes(2, "big")                      # one entry
           + (0x0112).to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big")  # tag, SHORT, count 1
           + int(orientation).to_bytes(2, "big") + b"\x00\x00"  # value, left-justified in 4 bytes
           + (0).to_bytes(4, "big"))                   # no next IFD
    payload = b"Exif\x00\x00" + tiff + ifd
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def with_orientation(jpeg_bytes: bytes, orientation: int) -> bytes:
    """The JPEG with an EXIF Orientation tag right after SOI (a JFIF APP0, if any, is dropped)."""
    assert jpeg_bytes[:2] == b"\xff\xd8", "not a JPEG"
    rest = jpeg_bytes[2:]
    if rest[:2] == b"\xff\xe0":
        rest = rest[2 + int.from_bytes(rest[2:4], "big"):]
    return b"\xff\xd8" + exif_app1(orientation) + rest


def _exif_rot(orientation: int):
    # Orientation 6: the viewer rotates the stored pixels 90 deg clockwise, so we store the picture
    # rotated 90 deg counter-clockwise. Orientation 8: the other way round.
    k = {6: 1, 8: -1}[orientation]
    return lambda img: (with_orientation(jpeg(np.ascontiguousarray(np.rot90(img, k))), orientation), ".jpg")


# -- geometry and tone ---------------------------------------------------------------------------

def _resize(img: np.ndarray, pct: int) -> np.ndarray:
    h, w = img.shape[:2]
    size = (max(1, round(w * pct / 100)), max(1, round(h * pct / 100)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if pct < 100 else cv2.INTER_CUBIC)


def _trim(img: np.ndarray, pct: float) -> np.ndarray:
    """Cut pct % of the width and of the height, half on each side (the aspect ratio is kept)."""
    h, w = img.shape[:2]
    dy, dx = round(h * pct / 200), round(w * pct / 200)
    return img[dy:h - dy or h, dx:w - dx or w]


def _crop(img: np.ndarray, pct: float) -> np.ndarray:
    """Keep (100 - pct) % of the width and of the height, off centre: cut from the left and the bottom."""
    h, w = img.shape[:2]
    return img[: max(1, round(h * (1 - pct / 100))), w - max(1, round(w * (1 - pct / 100))):]


def _crop_sides(img: np.ndarray, left: float, right: float, top: float, bottom: float) -> np.ndarray:
    """Cut these fractions of the width (left, right) and height (top, bottom) off."""
    h, w = img.shape[:2]
    return img[round(h * top): h - round(h * bottom), round(w * left): w - round(w * right)]


def _resized(img: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(img, (max(1, round(img.shape[1] * factor)), max(1, round(img.shape[0] * factor))),
                      interpolation=cv2.INTER_AREA)


def _scale_values(img: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(img.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


def _gamma(img: np.ndarray, g: float) -> np.ndarray:
    lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def _small_rotation(img: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the centre and zoom just enough that no border shows (a 'straighten' edit)."""
    h, w = img.shape[:2]
    t = math.radians(abs(degrees))
    scale = math.cos(t) + max(w / h, h / w) * math.sin(t)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _grayscale(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _caption(img: np.ndarray) -> np.ndarray:
    """A black bar over the bottom 14 % of the picture with a line of white text."""
    out = img.copy()
    h, w = out.shape[:2]
    bar = max(8, round(h * 0.14))
    out[h - bar:] = 0
    scale = bar / 40.0
    cv2.putText(out, "Summer 2019 - best day ever!", (max(2, w // 30), h - bar // 3), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), max(1, round(scale * 2)), cv2.LINE_AA)
    return out


def _blur(img: np.ndarray) -> np.ndarray:
    sigma = max(1.0, min(img.shape[:2]) / 250.0)
    return cv2.GaussianBlur(img, (0, 0), sigma)


def _noise(img: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(img.shape[0] * 7919 + img.shape[1])
    return np.clip(img.astype(np.float32) + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


def _letterbox(img: np.ndarray) -> np.ndarray:
    """Black bars of 12.5 % of the height above and below (the picture is not scaled)."""
    h = img.shape[0]
    bar = max(1, round(h * 0.125))
    return cv2.copyMakeBorder(img, bar, bar, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def _j(fn):
    return lambda img: (jpeg(fn(img)), ".jpg")


TRANSFORMS: list[Transform] = [
    Transform("jpeg_q40", "act", lambda img: (jpeg(img, 40), ".jpg"), "JPEG re-encode at quality 40"),
    Transform("jpeg_q75", "act", lambda img: (jpeg(img, 75), ".jpg"), "JPEG re-encode at quality 75"),
    Transform("resize_25", "act", _j(lambda i: _resize(i, 25)), "resize to 25 % (area), JPEG q92"),
    Transform("resize_50", "act", _j(lambda i: _resize(i, 50)), "resize to 50 % (area), JPEG q92"),
    Transform("resize_150", "act", _j(lambda i: _resize(i, 150)), "resize to 150 % (bicubic), JPEG q92"),
    Transform("png", "act", lambda img: (_png(img), ".png"), "PNG re-encode (lossless)"),
    Transform("webp", "act", lambda img: (_webp(img), ".webp"), "WebP re-encode, quality 80"),
    Transform("exif_rot6", "act", _exif_rot(6), "pixels turned 90 deg CCW + EXIF Orientation 6 (displays upright)"),
    Transform("exif_rot8", "act", _exif_rot(8), "pixels turned 90 deg CW + EXIF Orientation 8 (displays upright)"),
    Transform("trim_3", "act", _j(lambda i: _trim(i, 3)), "3 % trim: 1.5 % off every side"),
    Transform("bright_p8", "act", _j(lambda i: _scale_values(i, 1.08)), "brightness +8 % (values x1.08)"),
    Transform("bright_m8", "act", _j(lambda i: _scale_values(i, 0.92)), "brightness -8 % (values x0.92)"),
    Transform("crop_15", "report", _j(lambda i: _crop(i, 15)), "crop to 85 % of width and height, off centre"),
    Transform("crop_30", "report", _j(lambda i: _crop(i, 30)), "crop to 70 % of width and height, off centre"),
    Transform("crop_10_tr", "report", _j(lambda i: _crop_sides(i, 0, 0.10, 0.10, 0)),
              "cut 10 % of the width and height from the top and the right"),
    Transform("crop_20_centre", "report", _j(lambda i: _crop_sides(i, 0.10, 0.10, 0.10, 0.10)),
              "keep the centre 80 % of width and height"),
    Transform("crop_15_half", "report", _j(lambda i: _resized(_crop(i, 15), 0.5)),
              "crop_15, then resized to half its width and height"),
    Transform("rot90", "report", _j(lambda i: np.ascontiguousarray(np.rot90(i, -1))), "pixels rotated 90 deg CW, no EXIF"),
    Transform("rot180", "report", _j(lambda i: np.ascontiguousarray(i[::-1, ::-1])), "pixels rotated 180 deg"),
    Transform("mirror", "report", _j(lambda i: np.ascontiguousarray(i[:, ::-1])), "horizontal mirror"),
    Transform("rot3", "report", _j(lambda i: _small_rotation(i, 3.0)), "3 deg rotation, zoomed to fill"),
    Transform("grayscale", "report", _j(_grayscale), "grayscale"),
    Transform("caption", "report", _j(_caption), "black text bar over the bottom 14 %"),
    Transform("blur", "report", _j(_blur), "Gaussian blur, sigma = short side / 250"),
    Transform("noise", "report", _j(_noise), "Gaussian noise, sigma 10 grey levels"),
    Transform("gamma_0.8", "report", _j(lambda i: _gamma(i, 0.8)), "gamma 0.8"),
    Transform("letterbox", "report", _j(_letterbox), "black bars of 12.5 % of the height above and below"),
]

BY_NAME = {t.name: t for t in TRANSFORMS}
ACT_TRANSFORMS = [t.name for t in TRANSFORMS if t.expect == "act"]


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels (grey or colour) upright for an EXIF orientation 1..8."""
    t = (1, 0, 2) if img.ndim == 3 else (1, 0)
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(t), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).transpose(t),
           8: lambda a: np.rot90(a, 1)}
    return ops.get(orientation, lambda a: a)(img)


def load_original(path: str, max_side: int | None = None) -> np.ndarray:
    """The upright BGR pixels of an original (EXIF orientation applied, as displayed).

    With `max_side`, a large JPEG is decoded at a reduced DCT scale and shrunk so that its
    long side is at most `max_side` (for benchmarks that only need codes, not fidelity).
    """
    from dedupd.daemon.imageinfo import HEADER_BYTES, read_info

    with open(path, "rb") as f:
        data = f.read()
    info = read_info(data[:HEADER_BYTES], path)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    if max_side and info.format == "jpeg":
        long = max(info.width, info.height)
        for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if long // factor >= max_side:
                flags = flag | cv2.IMREAD_IGNORE_ORIENTATION
                break
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ValueError(f"{path}: cannot decode")
    img = np.ascontiguousarray(orient(img, info.orientation))
    if max_side and max(img.shape[:2]) > max_side:
        s = max_side / max(img.shape[:2])
        img = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))), interpolation=cv2.INTER_AREA)
    return img
