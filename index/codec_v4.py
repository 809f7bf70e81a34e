"""Record encoding v4: compact, canonical and extensible (what `codec.encode_record` writes).

Layout, after the version byte (4): a varint of flags, then the path, then the fields::

    flags     varint: which optional fields follow, how the floats and the code are held
    path      varint length + bytes (`os.fsencode`: undecodable names round-trip)
    mtime_ns  8 bytes, signed little-endian (a varint of a time since 1970 in ns takes 9)
    dev, ino, size                          unsigned LEB128 varints
    ctime_ns - mtime_ns                     zigzag varint (a byte or a few: they are usually close)
    width, height, algo_version, encoding   unsigned varints
    quality, chroma   absent when +0.0 (`_Q_ZERO`, `_C_ZERO`), float32 when that holds the
                      value exactly, float64 when not (`_Q_F64`, `_C_F64`): bit-exact always
    code      16 bytes (two u64 LE) only with `_CODE_HERE`: a record that is not searchable
              (state not "ok") keeps its code here; a searchable one (`_CODE_IN_TABLE`) does
              not, its code is in the `codes` table (`codeblocks`) and is passed to the decoder
    format, algo, state, error   one byte for the four when they are one of the `COMMON`
                                 combinations (128 + its index), else one byte each: an index
                                 into `TEXTS`, or 255 then a varint length and UTF-8
                                 (surrogatepass) bytes for any other text
    content_hash                 varint length + bytes (the whole sha256: 32 bytes)
    box_code  16 bytes (two u64 LE) only with `_BOX`: the code of the picture's content box
              (`FileRecord.box_code`; the index also keeps it as an alias row, `boxes`)
    crop_codes  only with `_CROPS`: a count byte n (1..255), then n codes of 16 bytes
              (`FileRecord.crop_codes`; alias rows too)

The path comes first so that a pass over every record for a path prefix reads only it
(`path_of`). Every record has exactly one encoding (the decoder refuses any other: overlong
varints, a float64 that float32 holds, a literal of a text in `TEXTS`, unknown flags), so
that a record read back and written again is the same bytes.

Extending: a new optional field gets the next flag bit and is appended after the content
hash; records without the bit decode with the field's default, so old records need no
rewrite and the version stays 4. A decoder that meets a flag it does not know refuses the
record (`IndexCorrupt`): it cannot know the field's length. Bit 7 (`_BOX`) is the box code,
bit 8 (`_CROPS`) the crop window codes; the next field would be bit 9 (`_NEXT_FLAG`). The box code is kept in the record even when
the record is searchable: its alias row in `codes` is a second copy (16 bytes more for the
few files with bars), so that decoding a record never needs a second row of `codes`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import os
import struct

from .base import is_searchable
from .errors import IndexCorrupt, InvalidRecord
from .records import STATE_OK, FileRecord

RECORD_V4 = 4
_CODE_HERE, _CODE_IN_TABLE, _EXIF = 1, 2, 4
_Q_ZERO, _Q_F64, _C_ZERO, _C_F64 = 8, 16, 32, 64
_BOX = 128  # a box code follows the content hash
_CROPS = 256  # crop window codes follow (after the box code)
_KNOWN_FLAGS = 511
_NEXT_FLAG = 512  # the first free bit (see the module doc)
U64_MAX, U32_MAX = (1 << 64) - 1, (1 << 32) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
_F32, _F64, _CODE, _I64 = struct.Struct("<f"), struct.Struct("<d"), struct.Struct("<QQ"), struct.Struct("<q")
_TEXT_MAX = {"format": 255, "algo": 255, "state": 255, "error": 65535}  # as v3's length fields allowed

# Texts stored as one byte: append only (a stored byte must keep its meaning). 255 = literal follows.
TEXTS = ("", "ok", "error", "jpeg", "png", "gif", "bmp", "webp", "tiff", "heif",
         "lbph", "lbph1", "phash", "dhash", "ahash",
         "changed", "corrupt", "decode_crash", "decode_memory", "decode_timeout", "empty", "not_regular",
         "too_large", "truncated", "unreadable", "unsupported_format", "vanished")
_LITERAL = 255
_TEXT_BYTE = {t: bytes((i,)) for i, t in enumerate(TEXTS)}
# (format, algo, state, error) of nearly every record, one byte for the four: 128 + the index
# (at most 127 entries: 255 is the literal mark). Append only, like TEXTS. A fingerprinted
# file of each format and algorithm, and an error record (no format, no algorithm) of each kind.
_FORMATS = ("jpeg", "png", "webp", "tiff", "bmp", "gif", "heif")
_ERRORS = ("changed", "corrupt", "decode_crash", "decode_memory", "decode_timeout", "empty", "not_regular",
           "too_large", "truncated", "unreadable", "unsupported_format", "vanished")
COMMON: tuple[tuple[str, str, str, str], ...] = (
    tuple((f, a, "ok", "") for f in _FORMATS for a in ("lbph", "lbph1", "phash", "dhash", "ahash"))
    + tuple(("", "", "error", e) for e in _ERRORS))
_COMMON_FIRST = 128
assert _COMMON_FIRST + len(COMMON) < _LITERAL and all(t in TEXTS for c in COMMON for t in c)
_COMMON_BYTE = {c: bytes((_COMMON_FIRST + i,)) for i, c in enumerate(COMMON)}
_TEXTS4: dict[bytes, tuple[str, str, str, str]] = {}  # (format, algo, state, error) codes seen -> their texts
_FLOAT_FLAGS = _Q_ZERO | _Q_F64 | _C_ZERO | _C_F64
_F32X2 = struct.Struct("<ff")
_BYTE = [bytes((i,)) for i in range(128)]


def uvarint(n: int) -> bytes:
    """Unsigned LEB128 of n >= 0."""
    if n < 128:
        return _BYTE[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 127) | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at `pos`. Raises IndexError when the data ends
    inside it and ValueError for an overlong encoding (a last byte 0 after the first)."""
    b = data[pos]
    if b < 128:
        return b, pos + 1
    value, shift = b & 127, 7
    while True:
        pos += 1
        b = data[pos]
        value |= (b & 127) << shift
        if b < 128:
            if b == 0:
                raise ValueError("overlong varint")
            return value, pos + 1
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def read_uvarints(data: bytes, pos: int, count: int) -> tuple[list[int], int]:
    """`count` varints from `pos` on (as `read_uvarint`, in one loop: a record has eight in a row)."""
    out = []
    append = out.append
    for _ in range(count):
        b = data[pos]
        pos += 1
        if b < 128:
            append(b)
            continue
        value, shift = b & 127, 7
        while True:
            b = data[pos]
            pos += 1
            value |= (b & 127) << shift
            if b < 128:
                break
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")
        if b == 0:
            raise ValueError("overlong varint")
        append(value)
    return out, pos


def _unzigzag(z: int) -> int:
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


def _float(x: float, zero: int, f64: int) -> tuple[int, bytes]:
    """(flag, bytes) of a float: nothing for +0.0, float32 when it holds x exactly, else float64."""
    if x == 0.0 and math.copysign(1.0, x) > 0:
        return zero, b""
    try:
        small = _F32.pack(x)
        if _F32.unpack(small)[0] == x:
            return 0, small
    except OverflowError:
        pass
    return f64, _F64.pack(x)


def _text(s: str, what: str) -> bytes:
    known = _TEXT_BYTE.get(s) if type(s) is str else None
    if known is not None:
        return known
    try:
        raw = s.encode("utf-8", "surrogatepass")
    except (UnicodeError, AttributeError) as e:
        raise InvalidRecord(f"cannot encode {what} {s!r}: {e}") from None
    if len(raw) > _TEXT_MAX[what]:
        raise InvalidRecord(f"{what} of {len(raw)} bytes is longer than {_TEXT_MAX[what]}")
    return b"\xff" + uvarint(len(raw)) + raw


def _unsigned(value: int, limit: int, what: str) -> int:
    """`value` as an int in 0..limit (numpy integers and bools accepted, as v3's struct did); `InvalidRecord` if not."""
    if type(value) is not int:
        try:
            value = operator.index(value)  # numpy integers, bools; not floats (v3's struct refused them too)
        except TypeError:
            raise InvalidRecord(f"{what} must be an integer, not {value!r}") from None
    if not 0 <= value <= limit:
        raise InvalidRecord(f"{what} {value} is out of range (0..{limit})")
    return value


def encode(rec: FileRecord) -> bytes:
    """The v4 bytes of `rec`. Raises `InvalidRecord` for a field v3 could not hold either."""
    try:
        path = os.fsencode(rec.path)
        if len(path) > U32_MAX:
            raise ValueError("longer than 4 GiB")
    except (UnicodeError, TypeError, ValueError) as e:
        raise InvalidRecord(f"cannot encode path {rec.path!r}: {e}") from None
    mtime, ctime = rec.mtime_ns, rec.ctime_ns
    if not (type(mtime) is int and type(ctime) is int and I64_MIN <= mtime <= I64_MAX and I64_MIN <= ctime <= I64_MAX):
        try:
            mtime, ctime = int(mtime), int(ctime)
        except (TypeError, ValueError):
            raise InvalidRecord(f"{rec.path!r}: mtime and ctime must be integers") from None
        if not (I64_MIN <= mtime <= I64_MAX and I64_MIN <= ctime <= I64_MAX):
            raise InvalidRecord(f"{rec.path!r}: mtime or ctime out of the 64-bit range")
    try:
        if isinstance(rec.quality, (str, bytes)) or isinstance(rec.chroma, (str, bytes)):
            raise TypeError("a text")  # float() would parse it; struct's 'd' of v3 refused it
        qflag, qraw = _float(float(rec.quality), _Q_ZERO, _Q_F64)
        cflag, craw = _float(float(rec.chroma), _C_ZERO, _C_F64)
    except (TypeError, ValueError) as e:
        raise InvalidRecord(f"{rec.path!r}: quality and chroma must be numbers ({e})") from None
    flags = qflag | cflag | (_EXIF if rec.has_exif else 0)
    box = b""
    if rec.box_code is not None:
        flags |= _BOX
        try:
            box = _CODE.pack(int(rec.box_code[0]), int(rec.box_code[1]))
        except (struct.error, TypeError, ValueError, IndexError) as e:
            raise InvalidRecord(f"{rec.path!r}: bad box code {rec.box_code!r}: {e}") from None
    if rec.crop_codes:
        flags |= _CROPS
        box += _crop_bytes(rec)
    code = b""
    if rec.code is not None:
        if is_searchable(rec):  # its code is in the `codes` table
            flags |= _CODE_IN_TABLE
        else:
            flags |= _CODE_HERE
            try:
                code = _CODE.pack(int(rec.code[0]), int(rec.code[1]))
            except (struct.error, TypeError, ValueError, IndexError) as e:
                raise InvalidRecord(f"{rec.path!r}: bad code {rec.code!r}: {e}") from None
    chash = bytes(rec.content_hash)
    if len(chash) > 255:
        raise InvalidRecord(f"{rec.path!r}: content hash of {len(chash)} bytes")
    dev, ino, size, width, height = rec.dev, rec.ino, rec.size, rec.width, rec.height
    algo_version, encoding = rec.algo_version, rec.encoding
    if not (type(dev) is int and type(ino) is int and type(size) is int and 0 <= dev <= U64_MAX
            and 0 <= ino <= U64_MAX and 0 <= size <= U64_MAX and type(width) is int and type(height) is int
            and type(algo_version) is int and type(encoding) is int and 0 <= width <= U32_MAX
            and 0 <= height <= U32_MAX and 0 <= algo_version <= U32_MAX and 0 <= encoding <= U32_MAX):
        dev, ino, size = (_unsigned(v, U64_MAX, what) for v, what in ((dev, "dev"), (ino, "ino"), (size, "size")))
        width, height, algo_version, encoding = (
            _unsigned(v, U32_MAX, what) for v, what in
            ((width, "width"), (height, "height"), (algo_version, "algo_version"), (encoding, "encoding")))
    out = bytearray(b"\x04")
    if flags < 128 and len(path) < 128:
        out += bytes((flags, len(path)))
    else:
        _put_uvarints(out, (flags, len(path)))
    out += path
    out += _I64.pack(mtime)
    _put_uvarints(out, (dev, ino, size, (ctime - mtime) * 2 if ctime >= mtime else (mtime - ctime) * 2 - 1,
                        width, height, algo_version, encoding))
    out += qraw
    out += craw
    out += code
    common = _COMMON_BYTE.get((rec.format, rec.algo, rec.state, rec.error))
    if common is not None:
        out += common
    else:
        out += _text(rec.format, "format")
        out += _text(rec.algo, "algo")
        out += _text(rec.state, "state")
        out += _text(rec.error, "error")
    _put_uvarints(out, (len(chash),))
    out += chash
    out += box
    return bytes(out)


def _crop_bytes(rec: FileRecord) -> bytes:
    crops = rec.crop_codes
    try:
        if not isinstance(crops, tuple) or not 0 < len(crops) <= 255:
            raise ValueError(f"{len(crops) if isinstance(crops, tuple) else type(crops).__name__} codes")
        return bytes((len(crops),)) + b"".join(_CODE.pack(int(c[0]), int(c[1])) for c in crops)
    except (struct.error, TypeError, ValueError, IndexError) as e:
        raise InvalidRecord(f"{rec.path!r}: bad crop codes: {e}") from None


def _put_uvarints(out: bytearray, values) -> None:
    """Append each value (ints >= 0) as an unsigned LEB128 varint (`uvarint`, without a bytes object each)."""
    for n in values:
        while n >= 128:
            out.append((n & 127) | 128)
            n >>= 7
        out.append(n)


_DECODED: dict[bytes, str] = {}  # literal texts decoded once (a few values every record repeats)


def _read_text(data: bytes, pos: int, what: str) -> tuple[str, int]:
    b = data[pos]
    if b < len(TEXTS):
        return TEXTS[b], pos + 1
    if b != _LITERAL:
        raise ValueError(f"unknown {what} code {b}")
    n, pos = read_uvarint(data, pos + 1)
    raw = data[pos:pos + n]
    if len(raw) != n or n > _TEXT_MAX[what]:
        raise ValueError(f"bad {what} length")
    text = _DECODED.get(raw)
    if text is None:
        text = raw.decode("utf-8", "surrogatepass")
        if text in _TEXT_BYTE:
            raise ValueError(f"{what} {text!r} stored as a literal")
        if n <= 16 and len(_DECODED) < 256:
            _DECODED[raw] = text
    return text, pos + n


def _read_float(data: bytes, pos: int, flags: int, zero: int, f64: int) -> tuple[float, int]:
    if flags & zero:
        if flags & f64:
            raise ValueError("a float both zero and float64")
        return 0.0, pos
    if flags & f64:
        if pos + 8 > len(data):
            raise IndexError
        x = _F64.unpack_from(data, pos)[0]
        if _float(x, zero, f64)[0] != f64:
            raise ValueError("a float64 that float32 holds")
        return x, pos + 8
    if pos + 4 > len(data):
        raise IndexError
    x = _F32.unpack_from(data, pos)[0]
    if x == 0.0 and math.copysign(1.0, x) > 0:
        raise ValueError("+0.0 stored as float32")
    return x, pos + 4


def path_of(data: bytes) -> bytes:
    """The path bytes of a v4 record, nothing else decoded. Raises IndexError/ValueError on garbage."""
    _, pos = read_uvarint(data, 1)
    n, pos = read_uvarint(data, pos)
    path = data[pos:pos + n]
    if len(path) != n:
        raise IndexError
    return path


def decode(data: bytes, file_id: int, code: "tuple[int, int] | None") -> FileRecord:
    """The record `data` (v4) holds; `code` is its code from the `codes` table, used when the
    record says its code is there. Raises `IndexCorrupt` on anything that `encode` would not write."""
    try:
        return _decode(data, file_id, code)
    except (IndexError, ValueError, UnicodeDecodeError, struct.error) as e:
        raise IndexCorrupt(f"record {file_id}: bad v4 record ({e or 'truncated'})") from None


def _decode(data: bytes, file_id: int, code: "tuple[int, int] | None") -> FileRecord:
    flags, pos = read_uvarint(data, 1)
    if flags & ~_KNOWN_FLAGS:
        raise ValueError(f"unknown flags {flags:#x} (written by a newer dedupd?)")
    n, pos = read_uvarint(data, pos)
    path = data[pos:pos + n]
    if len(path) != n or n > U32_MAX:
        raise IndexError
    pos += n
    mtime = _I64.unpack_from(data, pos)[0]
    (dev, ino, size, zd, width, height, algo_version, encoding), pos = read_uvarints(data, pos + 8, 8)
    ctime = mtime + _unzigzag(zd)
    if (max(dev, ino, size) > U64_MAX or max(width, height, algo_version, encoding) > U32_MAX
            or not (I64_MIN <= mtime <= I64_MAX and I64_MIN <= ctime <= I64_MAX)):
        raise ValueError("a field out of range")
    if not flags & _FLOAT_FLAGS and pos + 8 <= len(data):  # the usual case: two float32
        quality, chroma = _F32X2.unpack_from(data, pos)
        if not (quality and chroma) and (_is_plus_zero(quality) or _is_plus_zero(chroma)):
            raise ValueError("+0.0 stored as float32")
        pos += 8
    else:
        quality, pos = _read_float(data, pos, flags, _Q_ZERO, _Q_F64)
        chroma, pos = _read_float(data, pos, flags, _C_ZERO, _C_F64)
    if flags & _CODE_HERE:
        if flags & _CODE_IN_TABLE or pos + 16 > len(data):
            raise ValueError("bad code flags or truncated code")
        rec_code = _CODE.unpack_from(data, pos)
        pos += 16
    elif flags & _CODE_IN_TABLE:
        if code is None:
            raise ValueError("searchable, but its code is not in the codes table")
        rec_code = code if type(code) is tuple and type(code[0]) is int and type(code[1]) is int else (int(code[0]), int(code[1]))
    else:
        rec_code = None
    first = data[pos]
    if _COMMON_FIRST <= first < _LITERAL:  # the usual case: one byte for the four texts
        fmt, algo, state, error = COMMON[first - _COMMON_FIRST]
        pos += 1
    else:
        texts = _TEXTS4.get(data[pos:pos + 4])  # four table texts, one lookup
        if texts is not None:
            fmt, algo, state, error = texts
            pos += 4
        else:
            fmt, pos = _read_text(data, pos, "format")
            algo, pos = _read_text(data, pos, "algo")
            state, pos = _read_text(data, pos, "state")
            error, pos = _read_text(data, pos, "error")
            if (fmt, algo, state, error) in _COMMON_BYTE:
                raise ValueError("a common combination of texts stored as four")
            if len(_TEXTS4) < 4096 and all(t in _TEXT_BYTE for t in (fmt, algo, state, error)):
                _TEXTS4[b"".join(_TEXT_BYTE[t] for t in (fmt, algo, state, error))] = (fmt, algo, state, error)
    if bool(flags & _CODE_IN_TABLE) != (rec_code is not None and state == STATE_OK):
        raise ValueError("the code is kept where a record of this state does not keep it")
    n, pos = read_uvarint(data, pos)
    chash = data[pos:pos + n]
    pos += n
    box = None
    if flags & _BOX:
        if pos + 16 > len(data):
            raise ValueError("truncated box code")
        box = _CODE.unpack_from(data, pos)
        pos += 16
    crops = ()
    if flags & _CROPS:
        k = data[pos]
        if k == 0 or pos + 1 + 16 * k > len(data):
            raise ValueError("no or truncated crop codes")
        crops = tuple(_CODE.unpack_from(data, pos + 1 + 16 * i) for i in range(k))
        pos += 1 + 16 * k
    if len(chash) != n or pos != len(data):
        raise ValueError("bad content hash length or trailing bytes")
    out = _new_record()
    for set_field, value in zip(_SETTERS, (
            file_id, os.fsdecode(path), dev, ino, size, mtime, ctime, width, height, fmt, chash, rec_code, algo,
            algo_version, quality, bool(flags & _EXIF), state, error, chroma, encoding, box, crops)):
        set_field(out, value)
    return out


def _is_plus_zero(x: float) -> bool:
    return x == 0.0 and math.copysign(1.0, x) > 0


# decoding builds records through the slots' setters: a frozen dataclass's __init__ costs 2-3x as much
_FIELDS = [f.name for f in dataclasses.fields(FileRecord)]
assert _FIELDS == ["file_id", "path", "dev", "ino", "size", "mtime_ns", "ctime_ns", "width", "height", "format",
                   "content_hash", "code", "algo", "algo_version", "quality", "has_exif", "state", "error", "chroma",
                   "encoding", "box_code", "crop_codes"], "codec_v4._decode lists FileRecord's fields in this order"
_SETTERS = tuple(getattr(FileRecord, name).__set__ for name in _FIELDS)
_new_record = functools.partial(object.__new__, FileRecord)
