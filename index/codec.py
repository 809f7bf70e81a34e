"""Binary encodings of what the index stores: records, ids, table keys and edge values.

A record is encoded as a version byte, a fixed struct header and the variable
fields (path bytes via `os.fsencode`, so undecodable names round-trip through
surrogateescape; other strings UTF-8 with surrogatepass). The file id is the
LMDB key and is not repeated in the value. `decode_record` of anything that is
not a record raises `IndexCorrupt`.
"""

from __future__ import annotations

import hashlib
import os
import struct

from .errors import IndexCorrupt, InvalidRecord
from .records import FileRecord

RECORD_V2 = 2  # v2 added chroma
RECORD_V3 = 3  # v3 added encoding (v2 records still decode, with encoding 0)
# version, flags, dev, ino, size, mtime_ns, ctime_ns, width, height, algo_version,
# quality, chroma, code word 0, code word 1, then lengths: path, format, content_hash, algo, state, error
_HEAD_V2 = struct.Struct("<BBQQQqqIIIddQQIBBBBH")
# v3: the same with encoding (u32) after code word 1; the lengths stay last, the path first after them
_HEAD = struct.Struct("<BBQQQqqIIIddQQIIBBBBH")
_HAS_CODE, _HAS_EXIF = 1, 2
_ID = struct.Struct(">Q")
_INODE = struct.Struct(">QQ")


_SHORT: dict[str, bytes] = {}  # encodings of the few short strings every record repeats (format, algo, state)


def _text(s: str, what: str) -> bytes:
    if type(s) is str and (known := _SHORT.get(s)) is not None:
        return known
    try:
        raw = s.encode("utf-8", "surrogatepass")
    except (UnicodeError, AttributeError) as e:
        raise InvalidRecord(f"cannot encode {what} {s!r}: {e}") from None
    if len(raw) <= 16 and len(_SHORT) < 256:
        _SHORT[s] = raw
    return raw


_DECODED: dict[bytes, str] = {}  # the same few short texts decoded: one str object each


def _decoded_text(raw: bytes) -> str:
    """`raw` as text, the short ones (format, algo, state, error kind: a few values every
    record repeats) as one shared object: 3 x ~55 bytes less per decoded record, and a
    dict lookup instead of a decode."""
    text = _DECODED.get(raw)
    if text is None:
        text = raw.decode("utf-8", "surrogatepass")
        if len(raw) <= 16 and len(_DECODED) < 256:
            _DECODED[raw] = text
    return text


def encode_record(rec: FileRecord) -> bytes:
    """The stored bytes of `rec` (without its file id). Raises `InvalidRecord`."""
    try:
        path = os.fsencode(rec.path)
    except (UnicodeError, TypeError) as e:
        raise InvalidRecord(f"cannot encode path {rec.path!r}: {e}") from None
    fmt, chash, algo = _text(rec.format, "format"), bytes(rec.content_hash), _text(rec.algo, "algo")
    state, error = _text(rec.state, "state"), _text(rec.error, "error")
    flags = (_HAS_CODE if rec.code is not None else 0) | (_HAS_EXIF if rec.has_exif else 0)
    w0, w1 = rec.code if rec.code is not None else (0, 0)
    try:
        head = _HEAD.pack(RECORD_V3, flags, rec.dev, rec.ino, rec.size, rec.mtime_ns, rec.ctime_ns,
                          rec.width, rec.height, rec.algo_version, rec.quality, rec.chroma, int(w0), int(w1),
                          rec.encoding, len(path), len(fmt), len(chash), len(algo), len(state), len(error))
    except (struct.error, TypeError, ValueError) as e:
        raise InvalidRecord(f"cannot encode record for {rec.path!r}: {e}") from None
    return b"".join((head, path, fmt, chash, algo, state, error))


def decode_record(data: bytes, file_id: int) -> FileRecord:
    """The record stored as `data` under `file_id`. Raises `IndexCorrupt` on anything else."""
    data = bytes(data)
    head = {RECORD_V3: _HEAD, RECORD_V2: _HEAD_V2}.get(data[0]) if data else None
    if head is None:
        raise IndexCorrupt(f"record {file_id}: unknown record version {data[:1]!r}")
    if len(data) < head.size:
        raise IndexCorrupt(f"record {file_id}: truncated ({len(data)} bytes)")
    (_, flags, dev, ino, size, mtime, ctime, width, height, algo_version, quality, chroma, w0, w1,
     *lens) = head.unpack_from(data)
    encoding = lens.pop(0) if head is _HEAD else 0
    if sum(lens) != len(data) - head.size or flags & ~(_HAS_CODE | _HAS_EXIF):
        raise IndexCorrupt(f"record {file_id}: bad lengths or flags")
    if not flags & _HAS_CODE and (w0 or w1):
        raise IndexCorrupt(f"record {file_id}: code words without a code")
    fields, pos = [], head.size
    for n in lens:
        fields.append(data[pos:pos + n])
        pos += n
    path, fmt, chash, algo, state, error = fields
    try:
        texts = [_decoded_text(b) for b in (fmt, algo, state, error)]
    except UnicodeDecodeError as e:
        raise IndexCorrupt(f"record {file_id}: bad text field ({e})") from None
    return FileRecord(
        file_id=file_id, path=os.fsdecode(path), dev=dev, ino=ino, size=size, mtime_ns=mtime,
        ctime_ns=ctime, width=width, height=height, format=texts[0], content_hash=chash,
        code=(w0, w1) if flags & _HAS_CODE else None, algo=texts[1], algo_version=algo_version,
        quality=quality, chroma=chroma, has_exif=bool(flags & _HAS_EXIF), state=texts[2], error=texts[3],
        encoding=encoding,
    )


def id_key(file_id: int) -> bytes:
    return _ID.pack(file_id)


def key_id(key: bytes) -> int:
    if len(key) != _ID.size:
        raise IndexCorrupt(f"bad id of {len(key)} bytes")
    return _ID.unpack(key)[0]


def path_key(path: str) -> bytes:
    """Key of the `paths` table: 8 bytes of sha256 of the directory, then 8 of the name.

    Files of one directory get neighbouring keys, so a batch of a directory walk dirties
    a few B-tree pages instead of one per file (128 bits of hash keep collisions out of reach)."""
    raw = os.fsencode(path)
    cut = raw.rfind(b"/") + 1
    return hashlib.sha256(raw[:cut]).digest()[:8] + hashlib.sha256(raw[cut:]).digest()[:8]


def content_key(content_hash: bytes) -> bytes:
    """Key of the `content` table: the first 16 bytes of the content hash (records keep all of it)."""
    return bytes(content_hash[:16])


def inode_key(dev: int, ino: int) -> bytes:
    return _INODE.pack(dev, ino)


EDGE_VALUE_BYTES = 11  # other id (u64, big-endian so dups sort by id), distance, variant, verified (u8 each)


def edge_value(other: int, distance: int, variant: int, verified: bool) -> bytes:
    return _ID.pack(other) + bytes((distance, variant, int(verified)))


def parse_edge_value(value: bytes) -> tuple[int, int, int, bool]:
    """(other id, distance, variant, verified) of one `edges` entry."""
    if len(value) != EDGE_VALUE_BYTES or value[10] > 1:
        raise IndexCorrupt(f"bad edge entry {bytes(value)!r}")
    return _ID.unpack(value[:8])[0], value[8], value[9], bool(value[10])
