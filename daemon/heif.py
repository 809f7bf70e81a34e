"""HEIC/HEIF through the optional `pillow-heif` package (libheif with libde265).

`pip install 'dedupd[heif]'` enables it; without it, HEIC files are counted under the
`unsupported_format` error kind with a message saying how to enable them. libheif
applies the container's rotation and mirror boxes (irot/imir) itself, so the decoded
pixels are already upright; the EXIF Orientation inside a HEIC is informational and
must not be applied a second time.
"""

from __future__ import annotations

import io

import numpy as np

from dedupd.daemon.errors import CorruptImage, UnsupportedFormat

try:
    import pillow_heif
except ImportError:  # optional
    pillow_heif = None

# pillow-heif maps libheif's errors onto built-in exceptions (its HeifFile docstring):
# SyntaxError for "unsupported feature", EOFError for corrupt data, ValueError,
# RuntimeError, OSError; IndexError for a container without images. Any of them means
# the file does not decode (SyntaxError was found by tests/reliability/test_fuzz.py).
_DECODER_ERRORS = (ValueError, RuntimeError, OSError, SyntaxError, EOFError, IndexError)

BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})


def is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in BRANDS


def available() -> bool:
    return pillow_heif is not None


def open_heif(data: bytes, path: str = ""):
    """The primary image of a HEIF file, parsed but not yet decoded."""
    if pillow_heif is None:
        raise UnsupportedFormat(path, "HEIC/HEIF needs the optional pillow-heif package: pip install 'dedupd[heif]'")
    try:
        heif_file = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        heif_file.size  # noqa: B018 - IndexError here, not later, when the container holds no image
        return heif_file
    except _DECODER_ERRORS as exc:
        raise CorruptImage(path, f"HEIF container: {exc}") from exc


def exif_block(heif_file) -> bytes:
    """The TIFF-structured EXIF bytes of a HEIF image ('' when there are none)."""
    exif = heif_file.info.get("exif") or b""
    return exif[6:] if exif.startswith(b"Exif\x00\x00") else exif


def decode_heif(heif_file, path: str = "") -> np.ndarray:
    """BGR pixels of the primary image, upright."""
    try:
        rgb = np.asarray(heif_file)
    except _DECODER_ERRORS as exc:
        raise CorruptImage(path, f"HEIF decoder: {exc}") from exc
    return np.ascontiguousarray(rgb[:, :, 2::-1]) if rgb.ndim == 3 else rgb
