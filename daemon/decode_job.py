"""The part of a file's fingerprinting that touches untrusted bytes: read, hash, decode.

This is what a decode worker process runs (`dedupd.daemon.decode_worker`, SAFETY.md
rule 22), so it imports no numba kernel and no index: a worker starts in ~0.4 s and
holds ~50 MB, and the fingerprint of the decoded pixels is computed by the caller
(`dedupd.daemon.fingerprinting`). Every per-file problem is raised as a typed
`FileProblem`; nothing here changes a file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass

import numpy as np

from dedupd.daemon.decode import Decoded, check_pixels, decode_image
from dedupd.daemon.errors import ChangedWhileReading, EmptyFile, FileProblem, Unreadable, Vanished
from dedupd.daemon.heif import is_heif
from dedupd.daemon.imageinfo import HEADER_BYTES, read_info
from dedupd.daemon.verify import thumbnail

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO swapped in must not hang us


@dataclass(frozen=True)
class DecodedFile:
    """One file read through one descriptor: its stat as read, sha256, and upright pixels."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    content_hash: bytes
    decoded: Decoded


def decode_file(path: str, pixel_limit: int) -> DecodedFile:
    """Read, hash and decode `path`. Raises a `FileProblem` for any per-file problem."""
    data, st = read_whole(path, pixel_limit)
    decoded = decode_image(data, path, pixel_limit)
    return DecodedFile(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                       hashlib.sha256(data).digest(), decoded)


def load_thumb(path: str, size: int, mtime_ns: int, content_hash: bytes, pixel_limit: int) -> np.ndarray | None:
    """The verification thumbnail of an indexed file, re-read from disk; None when the
    file is no longer exactly the bytes that were fingerprinted (changed, gone, unreadable,
    undecodable): such a pair stays unverified and the next scan fingerprints it again."""
    try:
        data, st = read_whole(path, pixel_limit)
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns) or hashlib.sha256(data).digest() != content_hash:
            return None
        return thumbnail(decode_image(data, path, pixel_limit).gray)
    except FileProblem:
        return None


def read_whole(path: str, pixel_limit: int) -> tuple[bytes, os.stat_result]:
    """Read a regular file through one descriptor opened without following symlinks.

    The header is checked against the pixel limit before the rest is read; a file whose
    size or mtime changes while we read it raises ChangedWhileReading.
    """
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
            check_pixels(read_info(head, path), pixel_limit, path)
        data = head + _read(fd, path, before.st_size - len(head))
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or len(data) != before.st_size:
        raise ChangedWhileReading(path, f"size {before.st_size} -> {after.st_size}")
    return data, after


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
