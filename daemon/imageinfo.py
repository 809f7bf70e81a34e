"""Read an image's format, dimensions and EXIF orientation from its first bytes.

This runs *before* any decoder sees the file, so that a header claiming 60000x60000
pixels is refused without allocating anything (SAFETY.md rule 22), and so that the
format comes from the magic bytes, not the name (a JPEG named .png is still a JPEG).
Only the header is parsed; pixel data is never touched here.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from dedupd.daemon.errors import CorruptImage, TruncatedImage, UnsupportedFormat
from dedupd.daemon.heif import exif_block, is_heif, open_heif

HEADER_BYTES = 256 * 1024  # enough for JPEG APP segments with EXIF before SOF in practice


@dataclass(frozen=True)
class ImageInfo:
    format: str  # jpeg, png, gif, bmp, webp, tiff
    width: int  # as stored
    height: int
    orientation: int = 1  # EXIF orientation 1..8 (1 = upright)
    has_exif: bool = False
    # JPEG only: a 32-bit fingerprint of how the file was quantized (its quantization tables
    # and the components' sampling factors); 0 = unknown or not a JPEG. Two JPEGs with the
    # same value were encoded at the same fidelity, so a difference in their sizes says
    # something about their content (noise, an edit), not about their quality: the keep
    # policy does not let the bigger one win on bytes per pixel (dedupd.daemon.keep).
    encoding: int = 0

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after EXIF orientation (5..8 swap the axes)."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


def sniff_format(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if is_heif(head):
        return "heif"
    return None


def read_info(head: bytes, path: str = "") -> ImageInfo:
    """Parse the header in `head` (the file's first bytes). Raises a FileProblem subclass.
    HEIF keeps its header in a box tree that may sit anywhere: pass the whole file."""
    fmt = sniff_format(head)
    if fmt is None:
        raise UnsupportedFormat(path, "unknown magic bytes")
    if fmt == "heif":
        return _heif(head, path)
    try:
        info = _PARSERS[fmt](head)
    except (struct.error, IndexError, ValueError) as exc:
        raise TruncatedImage(path, f"{fmt} header is incomplete: {exc}") from exc
    if info.width <= 0 or info.height <= 0:
        raise CorruptImage(path, f"{fmt} header gives a size of {info.width}x{info.height}")
    return info


def _heif(b: bytes, path: str) -> ImageInfo:
    heif_file = open_heif(b, path)
    width, height = heif_file.size  # as displayed: libheif applies irot/imir
    _, has_exif = _exif_summary(exif_block(heif_file)) if exif_block(heif_file) else (1, False)
    return ImageInfo("heif", width, height, 1, has_exif)


def _jpeg(b: bytes) -> ImageInfo:
    pos, orientation, has_exif = 2, 1, False
    tables = []  # DQT payloads before the frame header, in file order
    while True:
        while b[pos] != 0xFF:  # tolerate fill bytes between segments
            pos += 1
        while b[pos] == 0xFF:
            pos += 1
        marker = b[pos]
        pos += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length
        (length,) = struct.unpack(">H", b[pos : pos + 2])
        if length < 2:
            raise ValueError("segment length < 2")
        segment = b[pos + 2 : pos + length]
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            orientation, has_exif = _exif_summary(segment[6:])
        if marker == 0xDB:
            tables.append(segment)
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", segment[1:5])
            return ImageInfo("jpeg", width, height, orientation, has_exif, _encoding(tables, segment))
        if marker in (0xDA, 0xD9):
            raise ValueError("no frame header before scan data")
        pos += length


def _encoding(tables: list[bytes], frame: bytes) -> int:
    """CRC-32 of the quantization tables and, per component, its sampling factors and
    table number (never 0: 0 means unknown). The Huffman tables and baseline/progressive
    are left out on purpose: they change the size of the same pixels, not the pixels."""
    if not tables:
        return 0
    count = frame[5]
    components = b"".join(frame[6 + 3 * i + 1 : 6 + 3 * i + 3] for i in range(count))
    return zlib.crc32(components, zlib.crc32(b"".join(tables))) or 1


def _png(b: bytes) -> ImageInfo:
    if b[12:16] != b"IHDR":
        raise ValueError("first chunk is not IHDR")
    width, height = struct.unpack(">II", b[16:24])
    at = b.find(b"eXIf", 0, HEADER_BYTES)
    orientation, has_exif = _exif_summary(b[at + 4:]) if at >= 0 else (1, False)
    return ImageInfo("png", width, height, orientation, has_exif)


def _gif(b: bytes) -> ImageInfo:
    width, height = struct.unpack("<HH", b[6:10])
    return ImageInfo("gif", width, height)


def _bmp(b: bytes) -> ImageInfo:
    (header_size,) = struct.unpack("<I", b[14:18])
    if header_size == 12:
        width, height = struct.unpack("<HH", b[18:22])
    else:
        width, height = struct.unpack("<ii", b[18:26])
    return ImageInfo("bmp", abs(width), abs(height))


def _webp(b: bytes) -> ImageInfo:
    chunk = b[12:16]
    if chunk == b"VP8 ":
        if b[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        w, h = struct.unpack("<HH", b[26:30])
        return ImageInfo("webp", w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L":
        bits = int.from_bytes(b[21:25], "little")
        return ImageInfo("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        flags = b[20]
        w = int.from_bytes(b[24:27], "little") + 1
        h = int.from_bytes(b[27:30], "little") + 1
        return ImageInfo("webp", w, h, 1, bool(flags & 0x08))
    raise ValueError(f"unknown WebP chunk {chunk!r}")


def _tiff(b: bytes) -> ImageInfo:
    tags = _tiff_ifd0(b)
    orientation = tags.get(274) or 1
    return ImageInfo("tiff", tags.get(256) or 0, tags.get(257) or 0, orientation if 1 <= orientation <= 8 else 1)


# IFD0 tags that any encoder writes and that describe no photograph: orientation,
# resolution and YCbCr positioning. An EXIF block holding only these is not metadata
# worth keeping (the fidelity rule protects camera, date and GPS tags).
_STRUCTURAL_TAGS = frozenset({274, 282, 283, 296, 531})


def _exif_summary(b: bytes) -> tuple[int, bool]:
    """(orientation, has meaningful EXIF) of a TIFF-structured EXIF block."""
    try:
        tags = _tiff_ifd0(b)
    except (struct.error, IndexError, ValueError):
        return 1, False  # a broken EXIF block must not make the image unreadable
    orientation = tags.get(274) or 1
    return (orientation if 1 <= orientation <= 8 else 1), bool(set(tags) - _STRUCTURAL_TAGS)


def _tiff_ifd0(b: bytes) -> dict[int, int | None]:
    """Tags of the first IFD of a TIFF structure (as in EXIF APP1): single SHORT/LONG
    values as ints, every other tag present with the value None."""
    endian = {b"II": "<", b"MM": ">"}.get(b[:2])
    if endian is None:
        raise ValueError("bad TIFF byte order")
    (offset,) = struct.unpack(endian + "I", b[4:8])
    (count,) = struct.unpack(endian + "H", b[offset : offset + 2])
    tags: dict[int, int] = {}
    for i in range(count):
        entry = b[offset + 2 + 12 * i : offset + 14 + 12 * i]
        tag, typ, n = struct.unpack(endian + "HHI", entry[:8])
        tags[tag] = None
        if n != 1:
            continue
        if typ == 3:  # SHORT
            (tags[tag],) = struct.unpack(endian + "H", entry[8:10])
        elif typ == 4:  # LONG
            (tags[tag],) = struct.unpack(endian + "I", entry[8:12])
    return tags


_PARSERS = {"jpeg": _jpeg, "png": _png, "gif": _gif, "bmp": _bmp, "webp": _webp, "tiff": _tiff}
