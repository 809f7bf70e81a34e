"""Broken and lying image bytes, made from real encoded photos: cuts, flipped bytes,
headers that claim another size, and a zlib bomb (tests/reliability/hostile.py uses them).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from testimages import photo


def gif_bytes(img: np.ndarray) -> bytes:
    """A single-frame GIF of a BGR photo (Pillow; OpenCV writes GIF only in newer builds)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img[:, :, ::-1]).convert("P", palette=Image.ADAPTIVE).save(buf, format="GIF")
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def zlib_bomb_png(width: int, height: int) -> bytes:
    """A valid greyscale PNG of `width` x `height` zero pixels: ~1000x smaller than its pixels."""
    row = b"\x00" * (1 + width)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def claim_size(data: bytes, fmt: str, width: int, height: int) -> bytes:
    """`data` (a real image) with its header rewritten to claim `width` x `height`."""
    b = bytearray(data)
    if fmt == "png":
        b[16:24] = struct.pack(">II", width, height)
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))  # a consistent IHDR
    elif fmt == "jpeg":
        sof = next(i for i in range(2, len(b) - 1) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC2))
        b[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    elif fmt == "gif":
        b[6:10] = struct.pack("<HH", width, height)
    elif fmt == "bmp":
        b[18:26] = struct.pack("<ii", width, height)
    elif fmt == "webp":  # VP8X: a canvas header (24-bit sizes) in front of the real bitstream
        vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        body = vp8x + bytes(b[12:])
        return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body
    elif fmt == "tiff":
        return _tiff_claim(bytes(b), width, height)
    return bytes(b)


def _tiff_claim(data: bytes, width: int, height: int) -> bytes:
    end = "<" if data[:2] == b"II" else ">"
    b = bytearray(data)
    (ifd,) = struct.unpack(end + "I", b[4:8])
    (count,) = struct.unpack(end + "H", b[ifd : ifd + 2])
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag, typ = struct.unpack(end + "HH", b[at : at + 4])
        if tag in (256, 257):
            value = width if tag == 256 else height
            b[at + 8 : at + 12] = struct.pack(end + ("HH" if typ == 3 else "I"), *((value, 0) if typ == 3 else (value,)))
    return bytes(b)


def flip(data: bytes, start: int, stop: int) -> bytes:
    """Every byte in [start, stop) inverted."""
    b = bytearray(data)
    for i in range(start, min(stop, len(b))):
        b[i] ^= 0xFF
    return bytes(b)


def cut(data: bytes, point: int | float) -> bytes:
    return data[: point if isinstance(point, int) else int(len(data) * point)]


def crop(name: str, part: int, side: int = 200) -> np.ndarray:
    """A distinct real picture: square `part` (0, 1, ...) along the photo's diagonal."""
    img = photo(name)
    h, w = img.shape[:2]
    step = max(1, (min(h, w) - side) // 3)
    y = x = min(part * step, min(h, w) - side)
    return np.ascontiguousarray(img[y : y + side, x : x + side])
