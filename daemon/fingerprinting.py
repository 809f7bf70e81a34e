"""Turn one file into a `FileRecord`: read it once, hash its bytes, decode, fingerprint.

`fingerprint_file` is what the worker pool runs. It never raises for a per-file
problem: a file that cannot be read or decoded becomes an error record (state
"error", the problem's kind), so it is counted, never acted on, and not decoded
again until it changes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass

import numpy as np

from dedupd.daemon.decode import check_pixels, decode_image
from dedupd.daemon.errors import ChangedWhileReading, EmptyFile, FileProblem, Unreadable, Vanished
from dedupd.daemon.heif import is_heif
from dedupd.daemon.imageinfo import HEADER_BYTES, read_info
from dedupd.daemon.verify import thumbnail, verify_pair
from dedupd.daemon.walk import FileRef
from dedupd.index.records import STATE_ERROR, FileRecord
from dedupd.kernels import fingerprint

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO swapped in must not hang us


@dataclass(frozen=True)
class Fingerprinted:
    record: FileRecord
    variants: np.ndarray | None  # (k, 2) uint64 codes of the dihedral variants; None for error records
    thumb: np.ndarray | None = None  # upright grey verification thumbnail (dedupd.daemon.verify)


def fingerprint_file(ref: FileRef, algo: str, pixel_limit: int) -> Fingerprinted:
    try:
        return _fingerprint(ref, algo, pixel_limit)
    except FileProblem as problem:
        return Fingerprinted(error_record(ref, problem.kind), None)


def error_record(ref: FileRef, kind: str) -> FileRecord:
    return FileRecord(0, ref.path, ref.dev, ref.ino, ref.size, ref.mtime_ns, ref.ctime_ns, state=STATE_ERROR, error=kind)


def _fingerprint(ref: FileRef, algo: str, pixel_limit: int) -> Fingerprinted:
    data, st = read_whole(ref.path, pixel_limit)
    decoded = decode_image(data, ref.path, pixel_limit)
    fp = fingerprint(decoded.gray, algo)
    width, height = decoded.info.display_size
    record = FileRecord(
        file_id=0,
        path=ref.path,
        dev=st.st_dev,
        ino=st.st_ino,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        width=width,
        height=height,
        format=decoded.info.format,
        content_hash=hashlib.sha256(data).digest(),
        code=(int(fp.code[0]), int(fp.code[1])),
        algo=fp.algo,
        algo_version=fp.version,
        quality=float(fp.quality),
        has_exif=decoded.info.has_exif,
        chroma=decoded.chroma,
    )
    return Fingerprinted(record, fp.variants, thumbnail(decoded.gray))


def load_thumb(record: FileRecord, pixel_limit: int) -> np.ndarray | None:
    """The verification thumbnail of an indexed file, re-read from disk; None when the
    file is no longer exactly the bytes that were fingerprinted (changed, gone, unreadable):
    such a pair stays unverified and the next scan fingerprints the file again."""
    try:
        data, st = read_whole(record.path, pixel_limit)
        if (st.st_size, st.st_mtime_ns) != (record.size, record.mtime_ns):
            return None
        if hashlib.sha256(data).digest() != record.content_hash:
            return None
        return thumbnail(decode_image(data, record.path, pixel_limit).gray)
    except FileProblem:
        return None


def check_pair(a: FileRecord, b: FileRecord, thumb_a, thumb_b, pixel_limit: int) -> bool:
    """Whether two indexed files hold the same picture; a missing thumbnail is read from
    disk. Runs in a worker thread."""
    thumb_a = thumb_a if thumb_a is not None else load_thumb(a, pixel_limit)
    thumb_b = thumb_b if thumb_b is not None else load_thumb(b, pixel_limit)
    if thumb_a is None or thumb_b is None:
        return False
    exact = a.lossless and b.lossless and (a.width, a.height) == (b.width, b.height)
    return verify_pair(thumb_a, thumb_b, both_lossless_same_size=exact).same


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
