"""Real photographs for tests, made offline from the images scikit-image's wheel ships.

Everything here is deterministic: the same bytes on every machine with the same
OpenCV, so tests can pin results. Helpers write originals and the kinds of copies
dedupd must recognise (recompressed, resized, re-encoded, EXIF-rotated, rotated,
cropped) and a real pair of distinct shots of one scene (the stereo motorcycle).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np
from skimage import data


def photo(name: str) -> np.ndarray:
    """A BGR uint8 photo from skimage.data (grayscale ones are expanded to 3 channels)."""
    if name == "motorcycle_left":
        img = data.stereo_motorcycle()[0]
    elif name == "motorcycle_right":
        img = data.stereo_motorcycle()[1]
    else:
        img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "motorcycle_left", "motorcycle_right")


def encode(img: np.ndarray, ext: str, quality: int = 90) -> bytes:
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, quality], ".webp": [cv2.IMWRITE_WEBP_QUALITY, quality]}.get(ext, [])
    ok, buf = cv2.imencode(ext, img, params)
    assert ok, ext
    return buf.tobytes()


def with_exif_orientation(jpeg: bytes, orientation: int, camera: bool = False) -> bytes:
    """Insert an EXIF APP1 segment carrying the Orientation tag right after SOI; with
    `camera`, also a Make tag, as camera files have (metadata worth keeping)."""
    entries = [struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)]
    if camera:
        entries.insert(0, struct.pack("<HHI4s", 0x010F, 2, 4, b"Cam\x00"))  # Make, ASCII, inline
    ifd = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    seg = b"Exif\x00\x00" + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg + jpeg[2:]


def stored_for_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that `orientation` displays `img` upright."""
    return {
        1: img,
        3: img[::-1, ::-1],
        6: np.rot90(img, 1),  # displayed after a clockwise turn
        8: np.rot90(img, -1),
    }[orientation]


def resize(img: np.ndarray, factor: float) -> np.ndarray:
    h, w = img.shape[:2]
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=interp)


def write(path: Path, payload: bytes, mtime: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def make_tree(root: Path) -> dict[str, Path]:
    """A small photo library: originals, act-tier copies, report-tier copies, a distinct
    shot pair, an exact duplicate and a corrupt file. Returns name -> path."""
    astro, coffee, chelsea = photo("astronaut"), photo("coffee"), photo("chelsea")
    t = {}
    # a camera original: JPEG with an EXIF block (orientation 1)
    t["astro"] = write(root / "originals/astronaut.jpg", with_exif_orientation(encode(astro, ".jpg", 97), 1, camera=True), 1_600_000_000)
    t["astro_q75"] = write(root / "copies/astronaut_q75.jpg", encode(astro, ".jpg", 75), 1_700_000_000)
    t["astro_half"] = write(root / "copies/astronaut_half.jpg", encode(resize(astro, 0.5), ".jpg", 90))
    t["astro_exif6"] = write(root / "copies/astronaut_exif6.jpg",
                             with_exif_orientation(encode(stored_for_orientation(astro, 6), ".jpg", 92), 6, camera=True))
    t["astro_rot90"] = write(root / "copies/astronaut_rot90.jpg", encode(np.rot90(astro, -1).copy(), ".jpg", 90))
    grey = cv2.cvtColor(cv2.cvtColor(astro, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    t["astro_grey"] = write(root / "edits/astronaut_grey.jpg", encode(grey, ".jpg", 92))
    edited = astro.copy()
    edited[170:270, 200:300] = astro[170:270, 170:270]  # a region moved sideways
    t["astro_edit"] = write(root / "edits/astronaut_edit.jpg", encode(edited, ".jpg", 92))
    t["coffee"] = write(root / "originals/coffee.jpg", encode(coffee, ".jpg", 95), 1_600_000_000)
    t["coffee_webp"] = write(root / "copies/coffee.webp", encode(coffee, ".webp", 80))
    t["coffee_exact"] = write(root / "backup/coffee.jpg", encode(coffee, ".jpg", 95), 1_700_000_000)
    t["chelsea"] = write(root / "originals/chelsea.jpg", encode(chelsea, ".jpg", 92))
    t["moto_left"] = write(root / "stereo/left.jpg", encode(photo("motorcycle_left"), ".jpg", 90))
    t["moto_right"] = write(root / "stereo/right.jpg", encode(photo("motorcycle_right"), ".jpg", 90))
    t["corrupt"] = write(root / "broken/corrupt.jpg", encode(chelsea, ".jpg")[:3000])
    return t
