"""Binary encodings of what the index stores: records, ids, table keys and edge values.

Records are written in encoding v4 (`codec_v4`: varints, one-byte texts, the code of a
searchable record kept in the `codes` table only); v2 and v3 records (a version byte, a
fixed struct header, then the variable fields), written by schema-3 indexes, still decode
until the writer's migration (`migrate`) rewrites them. The file id is the LMDB key and is
not repeated in the value. `decode_record` of anything that is not a record raises
`IndexCorrupt`.
"""

from __future__ import annotations

import hashlib
import os
import struct

from . import codec_v4
from .errors import IndexCorrupt, IndexFailure, InvalidRecord
from .records import FileRecord

RECORD_V2 = 2  # v2 added chroma
RECORD_V3 = 3  # v3 added encoding (v2 records still decode, with encoding 0)
RECORD_V4 = codec_v4.RECORD_V4
# v2/v3 (read only): version, flags, dev, ino, size, mtime_ns, ctime_ns, width, height, algo_version,
# quality, chroma, code word 0, code word 1, then lengths: path, format, content_hash, algo, state, error
_HEAD_V2 = struct.Struct("<BBQQQqqIIIddQQIBBBBH")
# v3: the same with encoding (u32) after code word 1; the lengths stay last, the path first after them
_HEAD = struct.Struct("<BBQQQqqIIIddQQIIBBBBH")
_HAS_CODE, _HAS_EXIF = 1, 2
_ID = struct.Struct(">Q")


def encode_record(rec: FileRecord) -> bytes:
    """The stored bytes of `rec` (without its file id), encoding v4. Raises `InvalidRecord`.
    A searchable record's code is not among them: it goes to the `codes` table."""
    return codec_v4.encode(rec)


def code_in_table(raw: bytes) -> bool:
    """Whether the stored record `raw` leaves its code to the `codes` table (v4, searchable):
    its decoder then needs that code. False for anything else, garbage included."""
    if len(raw) < 2 or raw[0] != RECORD_V4:
        return False
    flags = raw[1]
    if flags & 0x80:
        try:
            flags = codec_v4.read_uvarint(raw, 1)[0]
        except (IndexError, ValueError):
            return False
    return bool(flags & codec_v4._CODE_IN_TABLE)


def decode_record(data: bytes, file_id: int, code: "tuple[int, int] | None" = None) -> FileRecord:
    """The record stored as `data` under `file_id`; `code` is its row of the `codes` table
    when `code_in_table(data)` (else unused). Raises `IndexCorrupt` on anything else, and
    for a record that needs a code when none is given."""
    data = bytes(data)
    if data[:1] == b"\x04":
        return codec_v4.decode(data, file_id, code)
    return _decode_v3(data, file_id)


def short_path(data: bytes) -> bytes | None:
    """The path of a v4 record whose flags and path length take a byte each (paths under 128
    bytes: most), read with no call; None for any other record (`record_path` reads those)."""
    if len(data) > 2 and data[0] == 4 and data[1] < 128 and data[2] < 128 and len(data) >= 3 + data[2]:
        return data[3:3 + data[2]]
    return None


def record_path(data: bytes, file_id: int) -> bytes:
    """The path bytes of a stored record, without decoding the rest of a v4 or v3 one.
    Raises `IndexCorrupt` for anything that is not a record."""
    data = bytes(data)
    if data[:1] == b"\x04":
        try:
            return codec_v4.path_of(data)
        except (IndexError, ValueError):
            raise IndexCorrupt(f"record {file_id}: bad v4 record (path)") from None
    if data[:1] == b"\x03" and len(data) >= _HEAD.size:
        n = _PATH_LEN.unpack_from(data, _HEAD.size - 10)[0]
        if _HEAD.size + n <= len(data):
            return data[_HEAD.size:_HEAD.size + n]
    return os.fsencode(_decode_v3(data, file_id).path)


_PATH_LEN = struct.Struct("<I")  # v3: the path length, 10 bytes before the header's end
_DECODED: dict[bytes, str] = {}  # v2/v3: the few short texts every record repeats, decoded once each


def _decoded_text(raw: bytes) -> str:
    text = _DECODED.get(raw)
    if text is None:
        text = raw.decode("utf-8", "surrogatepass")
        if len(raw) <= 16 and len(_DECODED) < 256:
            _DECODED[raw] = text
    return text


def _decode_v3(data: bytes, file_id: int) -> FileRecord:
    """A v2 or v3 record (schema 3, before the migration to v4), its code held inline."""
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


# -- the lookup tables (`by_inode`, `by_content`): one LMDB key each, its values packed and sorted
# (dupsort + dupfixed: LMDB keeps them in pages of bare 11-byte values, no per-entry header).
# A value is a 6-byte prefix then the file id (5 bytes, big-endian: values sort by prefix, then id).
LOOKUP_KEY = b"\x00"
PREFIX_BYTES, LOOKUP_ID_BYTES = 6, 5
LOOKUP_VALUE_BYTES = PREFIX_BYTES + LOOKUP_ID_BYTES
LOOKUP_ID_MAX = (1 << 8 * LOOKUP_ID_BYTES) - 1  # 1.1e12 ids: `lookup_value` refuses more
_PREFIX_MOD = 1 << 8 * PREFIX_BYTES
_DEV_OFFSET: dict[int, int] = {}


def content_prefix(content_hash: bytes) -> bytes:
    """Lookup prefix of a content hash: its first 6 bytes. A prefix, not the hash: every
    caller compares the record's whole hash (48 bits: at 10M files one lookup in 28 million
    reads a record that does not match). A hash shorter than that is padded with zeros."""
    return bytes(content_hash[:PREFIX_BYTES]).ljust(PREFIX_BYTES, b"\0")


def inode_prefix(dev: int, ino: int) -> bytes:
    """Lookup prefix of (dev, ino): (ino + a 48-bit hash of dev) mod 2^48, big-endian. Lossy
    (inodes above 2^48, devices whose offsets meet): every caller compares the record's own
    dev and ino. The inodes of one device keep their order, so that files stored in inode
    order append to the table (full pages) instead of splitting pages in the middle."""
    dev, ino = int(dev), int(ino)
    offset = _DEV_OFFSET.get(dev)
    if offset is None:
        offset = int.from_bytes(hashlib.blake2b(dev.to_bytes(8, "big"), digest_size=PREFIX_BYTES).digest(), "big")
        if len(_DEV_OFFSET) < 4096:
            _DEV_OFFSET[dev] = offset
    return ((ino + offset) % _PREFIX_MOD).to_bytes(PREFIX_BYTES, "big")


def lookup_value(prefix: bytes, file_id: int) -> bytes:
    if not 0 <= file_id <= LOOKUP_ID_MAX:
        raise IndexFailure(f"file id {file_id} does not fit the lookup tables ({LOOKUP_ID_MAX}); reindex to renumber")
    return prefix + file_id.to_bytes(LOOKUP_ID_BYTES, "big")


def lookup_id(value: bytes) -> int:
    if len(value) != LOOKUP_VALUE_BYTES:
        raise IndexCorrupt(f"bad lookup entry of {len(value)} bytes")
    return int.from_bytes(value[PREFIX_BYTES:], "big")


EDGE_VALUE_BYTES = 11  # other id (u64, big-endian so dups sort by id), distance, variant, verified (u8 each)


def edge_value(other: int, distance: int, variant: int, verified: bool) -> bytes:
    return _ID.pack(other) + bytes((distance, variant, int(verified)))


def parse_edge_value(value: bytes) -> tuple[int, int, int, bool]:
    """(other id, distance, variant, verified) of one `edges` entry."""
    if len(value) != EDGE_VALUE_BYTES or value[10] > 1:
        raise IndexCorrupt(f"bad edge entry {bytes(value)!r}")
    return _ID.unpack(value[:8])[0], value[8], value[9], bool(value[10])
