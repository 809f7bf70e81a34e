"""Turn one file into a `FileRecord`: read it once, hash its bytes, decode, fingerprint.

`fingerprint_file` is what a scan's fingerprinting threads run. The untrusted part (read,
sha256, decode, and the reduction of the picture to its exact area sums and verification
thumbnail: `dedupd.daemon.decode_job`) runs in a decode worker process when a `decoder`
is given (`dedupd.daemon.decode_pool`, SAFETY.md rule 22), else in this thread; the
fingerprint is computed here from the sums (`dedupd.kernels.fingerprint_area`, numba
kernels that release the GIL), so this process never holds a full-size decoded image.
It never raises for a per-file problem: a file that cannot be read or decoded becomes an
error record (state "error", the problem's kind), so it is counted, never acted on, and
not decoded again until it changes.

A picture with uniform bars at its edges (letterbox, pillarbox, a plain frame) gets a
second code, the fingerprint of its content box found on the verification thumbnail
(`box_code`, `dedupd.kernels.contentbox`): a letterboxed copy's box code is a few bits from
its original's code where the whole-frame codes are ~28 apart (docs/accuracy.md §10.9).
It is computed here, from the thumbnail the worker already sends: no change to the decode
worker or its wire. So are, when crops are matched (config `match_crops`), the codes of
windows around the picture's strongest keypoints (`dedupd.daemon.cropcodes`): the record
keeps the strongest few (`FileRecord.crop_codes`), a lookup searches with more
(`Fingerprinted.crop_queries`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dedupd.daemon import cropcodes
from dedupd.daemon.decode_job import DecodedFile, decode_file, read_whole  # noqa: F401 (read_whole: public here)
from dedupd.daemon.decode_job import load_thumb as _load_thumb
from dedupd.daemon.cropcheck import verify_crop
from dedupd.daemon.errors import FileProblem
from dedupd.daemon.verify import verify_pair
from dedupd.daemon.walk import FileRef
from dedupd.index.records import STATE_ERROR, FileRecord
from dedupd.kernels import fingerprint, fingerprint_area
from dedupd.kernels.contentbox import content_box

# Bars must take at least this share of the picture (both edges of an axis together) for a
# box code: a box that cuts a few percent off is the frame give or take a few bits, and only
# adds a way to meet a look-alike. On the 369 corpus photos, with contentbox's own 2 %, 40 get
# a box code and one (3 % of white margin cut off a clip-art plier) comes within 28 bits of
# another plier's code (their frames: 30); from 5 %, 34 do and the closest distinct pair through
# a box is 34 bits apart (`bench/box_codes.py`). A letterbox of the benchmark cuts 20 % (bars of
# 12.5 % of the original height).
BOX_MIN_TRIM = 0.05


@dataclass(frozen=True)
class Fingerprinted:
    record: FileRecord
    variants: np.ndarray | None  # (k, 2) uint64 codes of the dihedral variants; None for error records
    thumb: np.ndarray | None = None  # upright grey verification thumbnail (dedupd.daemon.verify)
    crop_queries: np.ndarray | None = None  # (k, 2) window codes a lookup searches with; None: crops not matched


def fingerprint_file(ref: FileRef, algo: str, pixel_limit: int, decoder=None, *, crops: bool = False) -> Fingerprinted:
    """The record of `ref`; `decoder` (a `decode_pool` decoder) reads and decodes it, by
    default in this thread. With `crops`, its window codes too (`cropcodes`)."""
    try:
        got = decoder.decode(ref.path, algo) if decoder is not None else decode_file(ref.path, pixel_limit, algo)
    except FileProblem as problem:
        return Fingerprinted(error_record(ref, problem.kind), None)
    if (got.dev, got.ino) != (ref.dev, ref.ino):
        # The name led to another file than the walk saw: replaced since, or a folder on the
        # way swapped for a symlink to somewhere outside the root. Its bytes are not recorded
        # under this name; the record matches no stat, so the next scan reads the name again.
        return Fingerprinted(error_record(ref, "changed", retry=True), None)
    return fingerprint_decoded(ref.path, got, algo, crops=crops)


def error_record(ref: FileRef, kind: str, *, retry: bool = False) -> FileRecord:
    """The record of a file that could not be fingerprinted. With `retry` its mtime is -1,
    which no stat has: the next scan does not take the file for unchanged."""
    mtime_ns = -1 if retry else ref.mtime_ns
    return FileRecord(0, ref.path, ref.dev, ref.ino, ref.size, mtime_ns, ref.ctime_ns, state=STATE_ERROR, error=kind)


def fingerprint_decoded(path: str, got: DecodedFile, algo: str, *, crops: bool = False) -> Fingerprinted:
    """Fingerprint, variants, thumbnail and record of a file read and decoded as `got`; with
    `crops`, its window codes (the record keeps the strongest `cropcodes.STORED`)."""
    fp = fingerprint_area(got.area, algo)
    windows = cropcodes.window_codes(got.thumb, algo) if crops else None
    info = got.info
    width, height = info.display_size
    record = FileRecord(
        file_id=0,
        path=path,
        dev=got.dev,
        ino=got.ino,
        size=got.size,
        mtime_ns=got.mtime_ns,
        ctime_ns=got.ctime_ns,
        width=width,
        height=height,
        format=info.format,
        content_hash=got.content_hash,
        code=(int(fp.code[0]), int(fp.code[1])),
        algo=fp.algo,
        algo_version=fp.version,
        quality=stored_measure(fp.quality),
        has_exif=info.has_exif,
        chroma=stored_measure(got.chroma),
        encoding=info.encoding,
        box_code=box_code(got.thumb, algo),
        crop_codes=cropcodes.stored(windows) if windows is not None else (),
    )
    return Fingerprinted(record, fp.variants, got.thumb, windows)


def stored_measure(value: float) -> float:
    """A measure of the picture (`quality`, `chroma`) as records keep it: rounded to the
    nearest float32. Both are compared only with thresholds (min_quality 4.0, greyscale
    below 3.0) and their 7 significant digits are far finer than either measure is; a
    float32 value is 4 bytes in a v4 record where an arbitrary float64 takes 8 (a real
    photo's record: 88 -> 80 bytes without its path, docs/performance.md "On disk")."""
    return float(np.float32(value))


def box_code(thumb: np.ndarray | None, algo: str) -> tuple[int, int] | None:
    """The code of the content box of an upright grey thumbnail, or None when it has no
    bars to cut, or too thin ones (`BOX_MIN_TRIM`; `content_box`: ~15-30 µs for a picture
    without them; a fingerprint of the crop, well under a millisecond, for the others)."""
    if thumb is None or thumb.ndim != 2 or thumb.size == 0:
        return None
    box = content_box(thumb, min_trim=BOX_MIN_TRIM)
    if box is None:
        return None
    code = fingerprint(np.ascontiguousarray(box.crop(thumb)), algo).code
    return int(code[0]), int(code[1])


def load_thumb(record: FileRecord, pixel_limit: int, decoder=None) -> np.ndarray | None:
    """The verification thumbnail of an indexed file, re-read from disk; None when the
    file is no longer exactly the bytes that were fingerprinted (changed, gone, unreadable):
    such a pair stays unverified and the next scan fingerprints the file again."""
    if decoder is not None:
        return decoder.thumb(record.path, record.size, record.mtime_ns, record.content_hash)
    return _load_thumb(record.path, record.size, record.mtime_ns, record.content_hash, pixel_limit)


def check_pair(a: FileRecord, b: FileRecord, thumb_a, thumb_b, pixel_limit: int, decoder=None) -> bool:
    """Whether two indexed files hold the same picture; a missing thumbnail is read from
    disk (through `decoder` when given). Runs in a worker thread."""
    thumbs = _thumbs(a, b, thumb_a, thumb_b, pixel_limit, decoder)
    return thumbs is not None and verify_pair(*thumbs, both_lossless_same_size=lossless_same_size(a, b)).same


def check_crop(a: FileRecord, b: FileRecord, thumb_a, thumb_b, pixel_limit: int, decoder=None) -> bool:
    """Whether one of two indexed files is a crop of the other (`cropcheck.verify_crop`),
    thumbnails as `check_pair` gets them. Runs in a worker thread."""
    thumbs = _thumbs(a, b, thumb_a, thumb_b, pixel_limit, decoder)
    return thumbs is not None and verify_crop(*thumbs, both_lossless_same_size=lossless_same_size(a, b)).same


def lossless_same_size(a: FileRecord, b: FileRecord) -> bool:
    """Two lossless files of one size: the same picture only if their pixels agree
    (`verify_pair`'s and `verify_crop`'s `both_lossless_same_size`)."""
    return a.lossless and b.lossless and (a.width, a.height) == (b.width, b.height)


def _thumbs(a: FileRecord, b: FileRecord, thumb_a, thumb_b, pixel_limit: int, decoder):
    """The two thumbnails, read from disk where not given; None if either file is no
    longer the bytes that were fingerprinted."""
    thumb_a = thumb_a if thumb_a is not None else load_thumb(a, pixel_limit, decoder)
    thumb_b = thumb_b if thumb_b is not None else load_thumb(b, pixel_limit, decoder)
    return None if thumb_a is None or thumb_b is None else (thumb_a, thumb_b)
