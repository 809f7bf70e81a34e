"""Decode image bytes to an upright grayscale array, as cheaply as the format allows.

JPEG is decoded in the DCT domain at 1/2, 1/4 or 1/8 scale (the largest reduction that
keeps the short side >= MIN_SIDE pixels); at 1/8 a progressive JPEG is decoded from its DC
scans alone (`dedupd.daemon.jpeg_dc`: bit-identical pixels, 3-8x faster). MIN_SIDE is 128, not the 64 a 64x64 hash
would need: the pixel-level verification compares pairs at up to 256 px, and a reduced
decode whose short side falls below 128 px is far from an area-downscaled full decode
(99th percentile of |difference|, median over the corpus JPEGs: 14 grey levels at 1/8 and
10 at 1/4 below 128 px, against 1 grey level for every reduction that keeps >= 128 px;
`bench/decode_scale.py`). On >= 4 MP photos 1/8 still keeps the short side >= 187 px, so
their decode cost is unchanged.

Colour is decoded too (in libjpeg it costs the same as greyscale: entropy decoding
dominates, measured 0.98-1.03x on the wallpapers) so that `chroma` can tell a greyscale
copy from its colour original. EXIF orientation is applied here, from our own
header parse, rather than left to OpenCV: its handling has changed between versions,
and a fingerprint must not change with it. The pixel limit is checked from the header
before any decoder runs.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

# OpenCV reads this once, at import: a second line of defence behind our header check.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(2**30))
import cv2  # noqa: E402

from dedupd.daemon.errors import CorruptImage, ImageTooLarge, TruncatedImage  # noqa: E402
from dedupd.daemon.heif import decode_heif, is_heif, open_heif  # noqa: E402
from dedupd.daemon.imageinfo import HEADER_BYTES, ImageInfo, read_info  # noqa: E402
from dedupd.daemon.jpeg_dc import dc_stream  # noqa: E402

MIN_SIDE = 128
CHROMA_SIDE = 64  # chroma is measured on a rendering this small
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}

try:  # OpenCV's complaints about odd files go to our error counts, not stderr: imdecode
    # logs every undecodable file at ERROR level, and the typed error carries its reason
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_FATAL)
except AttributeError:  # pragma: no cover - older builds without the logging module
    pass


@dataclass(frozen=True)
class Decoded:
    gray: np.ndarray  # uint8, 2-D, upright (EXIF orientation applied)
    info: ImageInfo
    reduction: int  # 1, 2, 4 or 8
    chroma: float = 0.0  # mean (max - min) of B, G, R over a small rendering; ~0 for greyscale


def reduction_for(info: ImageInfo) -> int:
    """The largest JPEG DCT-domain reduction that keeps the short side >= MIN_SIDE."""
    if info.format != "jpeg":
        return 1
    short = min(info.width, info.height)
    for factor in (8, 4, 2):
        if short // factor >= MIN_SIDE:
            return factor
    return 1


def check_pixels(info: ImageInfo, pixel_limit: int, path: str = "") -> None:
    if info.pixels > pixel_limit:
        raise ImageTooLarge(path, f"{info.width}x{info.height} = {info.pixels:,} pixels > pixel_limit {pixel_limit:,}")


def decode_image(data: bytes, path: str = "", pixel_limit: int = 100_000_000, info: ImageInfo | None = None) -> Decoded:
    """Decode `data` (a whole image file). Raises a FileProblem subclass, never returns None."""
    info = info or read_info(data if is_heif(data) else data[:HEADER_BYTES], path)
    check_pixels(info, pixel_limit, path)
    if info.format == "heif":
        return from_pixels(decode_heif(open_heif(data, path), path), info)
    check_container(data, info.format, path)
    reduction = reduction_for(info)
    flags = _REDUCED.get(reduction, cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    if reduction == 8:  # a progressive JPEG's AC scans are dropped: the same pixels, 3-8x faster
        data = dc_stream(data) or data
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as exc:
        raise CorruptImage(path, f"decoder error: {str(exc).strip().splitlines()[-1]}") from exc
    if img is None or img.size == 0:
        if info.format == "gif" and not data.endswith(b"\x3b"):
            raise TruncatedImage(path, "GIF without its trailer byte, and it does not decode")
        raise CorruptImage(path, f"the {info.format} decoder rejected the data")
    return from_pixels(img, info, reduction)


def check_container(data: bytes, fmt: str, path: str = "") -> None:
    """Refuse a file whose container says it is cut (a decoder would fill the missing part
    with grey: never fingerprint that) or whose structure lies about its own sizes (a
    decoder would allocate what a length field claims: OpenCV's PNG reader allocated
    1 GiB for a 43 KB file whose IDAT length said 1.1 GB; tests/reliability/test_fuzz.py)."""
    if fmt == "jpeg" and data.rfind(b"\xff\xd9") < 0:
        raise TruncatedImage(path, "JPEG without an end-of-image marker")
    if fmt == "png":
        _check_png_chunks(data, path)
    if fmt == "webp" and len(data) < 8 + int.from_bytes(data[4:8], "little"):
        raise TruncatedImage(path, f"WebP of {len(data):,} bytes; its RIFF header says {8 + int.from_bytes(data[4:8], 'little'):,}")


_PNG_END = b"\x00\x00\x00\x00IEND"


def _check_png_chunks(data: bytes, path: str) -> None:
    """Every chunk (length, type, data, CRC) must fit in the file, up to IEND."""
    pos, size = 8, len(data)
    while pos + 12 <= size:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > size:
            where = f"PNG chunk {kind.decode('latin-1')!r} at byte {pos:,} claims {length:,} bytes"
            if data[-12:-4] == _PNG_END:  # the file ends properly: the length field lies
                raise CorruptImage(path, f"{where}, past the end of the file")
            raise TruncatedImage(path, f"{where}; the file ends first")
        if kind == b"IEND":
            return
        pos += 12 + length
    raise TruncatedImage(path, "PNG without its complete IEND chunk")


def from_pixels(img: np.ndarray, info: ImageInfo, reduction: int = 1) -> Decoded:
    """A `Decoded` from stored pixels (BGR or grey, 8 or 16 bit): upright grey plus chroma."""
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, int(np.iinfo(img.dtype).max)))
    if img.ndim == 3 and img.shape[2] == 1:  # defensive: some builds return (h, w, 1)
        img = img[:, :, 0]
    if img.ndim == 2:
        gray, chroma = img, 0.0
    else:
        gray, chroma = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY), colourfulness(img[:, :, :3])
    return Decoded(np.ascontiguousarray(apply_orientation(gray, info.orientation)), info, reduction, chroma)


def colourfulness(bgr: np.ndarray) -> float:
    """Mean of max(B,G,R) - min(B,G,R) over an area-downscaled copy: 0 for grey pixels."""
    h, w = bgr.shape[:2]
    scale = CHROMA_SIDE / max(h, w)
    if scale < 1.0:
        bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    spread = bgr.max(axis=2).astype(np.int16) - bgr.min(axis=2)
    return float(spread.mean())


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored image upright according to its EXIF orientation tag (1..8)."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1, :]
    if orientation == 5:
        return img.T
    if orientation == 6:
        return np.rot90(img, -1)
    if orientation == 7:
        return np.rot90(img, 2).T
    if orientation == 8:
        return np.rot90(img, 1)
    return img
