"""The part of a file's fingerprinting that touches untrusted bytes: read, hash, decode,
and reduce the picture to what the scanning process needs.

This is what a decode worker process runs (`dedupd.daemon.decode_worker`, SAFETY.md
rule 22), so it imports no numba kernel and no index: a worker starts in ~0.4 s and
holds ~50 MB. The decoded picture never leaves it: `decode_file` returns the exact area
sums the fingerprint reads (`dedupd.kernels.area.AreaInput`, 16 KB for LBPH on the wire) and the
verification thumbnail (at most 256 px), whatever the size of the image, and the
scanning process computes the fingerprint from the sums (`dedupd.daemon.fingerprinting`).
Every per-file problem is raised as a typed `FileProblem`; nothing here changes a file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass

import cv2
import numpy as np

from dedupd.daemon.decode import check_pixels, decode_image
from dedupd.daemon.errors import ChangedWhileReading, EmptyFile, FileProblem, Unreadable, Vanished
from dedupd.daemon.heif import is_heif
from dedupd.daemon.imageinfo import HEADER_BYTES, ImageInfo, read_info
from dedupd.daemon.verify import thumbnail
from dedupd.kernels.area import AreaInput, area_input_for, integral_numerators, sizes_for

# Pictures up to this many pixels are measured through OpenCV's summed-area table
# (`area_sums`): int32 holds it exactly while 255 * pixels < 2**31 (8.4 MP; the table is
# then at most 34 MB, within the worker's memory cap: the file's bytes are gone by then).
INTEGRAL_MAX_PIXELS = (2**31 - 1) // 255
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO swapped in must not hang us


@dataclass(frozen=True)
class DecodedFile:
    """One file read through one descriptor: its stat as read, sha256, header facts, and
    what the scanning process needs of its upright pixels, never the pixels themselves:
    `area`, the exact area sums of the fingerprint algorithm it was decoded for, and
    `thumb`, its upright grey verification thumbnail (`dedupd.daemon.verify.thumbnail`)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    content_hash: bytes
    info: ImageInfo
    chroma: float  # `decode.Decoded.chroma`: ~0 for a greyscale picture
    area: AreaInput
    thumb: np.ndarray


def decode_file(path: str, pixel_limit: int, algo: str) -> DecodedFile:
    """Read, hash and decode `path`, and measure it for fingerprint algorithm `algo`.

    Raises a `FileProblem` for any per-file problem; UnknownAlgorithm (not a per-file
    problem) for an `algo` without area sizes, before anything is read."""
    sizes_for(algo)
    data, st, info = _read_checked(path, pixel_limit)
    decoded = decode_image(data, path, pixel_limit, info)  # the header is parsed once (~0.08 ms a small photo)
    content_hash = hashlib.sha256(data).digest()
    del data  # the bytes can go before the sums and the thumbnail are made
    return DecodedFile(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, content_hash,
                       decoded.info, decoded.chroma, area_sums(decoded.gray, algo), thumbnail(decoded.gray))


def area_sums(gray: np.ndarray, algo: str) -> AreaInput:
    """`area_input_for(gray, algo)`, the same sums bit for bit, computed the cheapest way:
    up to INTEGRAL_MAX_PIXELS from one `cv2.integral` table (`integral_numerators`; the
    small set's pictures: 120 us a file with the AreaInput, against 169 us by the tiled
    numpy resize), larger pictures by the tiled numpy resize (bounded memory whatever the
    size)."""
    if gray.size > INTEGRAL_MAX_PIXELS:
        return area_input_for(gray, algo)
    table = cv2.integral(gray, sdepth=cv2.CV_32S)
    return area_input_for(gray, algo, lambda _gray, h, w: integral_numerators(table, h, w))


def load_thumb(path: str, size: int, mtime_ns: int, content_hash: bytes, pixel_limit: int) -> np.ndarray | None:
    """The verification thumbnail of an indexed file, re-read from disk; None when the
    file is no longer exactly the bytes that were fingerprinted (changed, gone, unreadable,
    undecodable): such a pair stays unverified and the next scan fingerprints it again."""
    try:
        data, st, info = _read_checked(path, pixel_limit)
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns) or hashlib.sha256(data).digest() != content_hash:
            return None
        return thumbnail(decode_image(data, path, pixel_limit, info).gray)
    except FileProblem:
        return None


def read_whole(path: str, pixel_limit: int) -> tuple[bytes, os.stat_result]:
    """Read a regular file through one descriptor opened without following symlinks.

    The header is checked against the pixel limit before the rest is read; a file whose
    size or mtime changes while we read it raises ChangedWhileReading.
    """
    data, st, _info = _read_checked(path, pixel_limit)
    return data, st


def _read_checked(path: str, pixel_limit: int) -> tuple[bytes, os.stat_result, ImageInfo | None]:
    """`read_whole`, plus the header facts it checked (None for HEIF, whose size lives in a
    box tree that needs the whole file: `decode_image` reads those itself). They are what
    `decode_image` would parse from the same first HEADER_BYTES bytes."""
    info = None
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _problem(path, exc) from exc
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise ChangedWhileReading(path, "no longer a regular file")
        if before.st_size == 0:
            raise EmptyFile(path)
        head = _read(fd, path, min(before.st_size, HEADER_BYTES))
        if not is_heif(head):  # HEIF's size lives in a box tree that needs the whole file
            info = read_info(head, path)
            check_pixels(info, pixel_limit, path)
        data = head + _read(fd, path, before.st_size - len(head))
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or len(data) != before.st_size:
        raise ChangedWhileReading(path, f"size {before.st_size} -> {after.st_size}")
    return data, after, info


def _read(fd: int, path: str, count: int) -> bytes:
    chunks, remaining = [], count
    while remaining > 0:
        try:
            chunk = os.read(fd, min(remaining, 1 << 24))
        except OSError as exc:
            raise _problem(path, exc) from exc
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _problem(path: str, exc: OSError) -> FileProblem:
    if exc.errno == errno.ENOENT:
        return Vanished(path)
    if exc.errno == errno.ELOOP:
        return ChangedWhileReading(path, "replaced by a symlink")
    return Unreadable(path, exc.strerror or str(exc))
