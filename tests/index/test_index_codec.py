"""Record codec: Hypothesis round-trips (v4, and v2/v3 records of schema-3 indexes), canonical
encodings, and garbage decodes to IndexCorrupt (never anything else)."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.index import FileRecord, IndexCorrupt, InvalidRecord, codec_v4
from dedupd.index.base import is_searchable
from dedupd.index.codec import code_in_table, decode_record, encode_record, path_key

from schema3_legacy import encode_v2, encode_v3

U64 = st.integers(0, 2**64 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
U32 = st.integers(0, 2**32 - 1)
# Paths as the OS gives them: arbitrary bytes (no NUL) decoded with surrogateescape.
PATHS = st.binary(min_size=1, max_size=120).map(lambda b: os.fsdecode(b.replace(b"\0", b"_")))
TEXT = st.text(max_size=40)  # lone surrogates included: stored with surrogatepass


@st.composite
def records(draw) -> FileRecord:
    error = draw(st.booleans())
    return FileRecord(
        file_id=draw(st.integers(1, 2**64 - 1)), path=draw(PATHS), dev=draw(U64), ino=draw(U64),
        size=draw(U64), mtime_ns=draw(I64), ctime_ns=draw(I64), width=draw(U32), height=draw(U32),
        format=draw(st.sampled_from(["jpeg", "png", "", "webp"]) | TEXT),
        content_hash=draw(st.binary(max_size=32) | st.binary(min_size=120, max_size=255)),
        code=None if error else draw(st.none() | st.tuples(U64, U64)),
        algo=draw(st.sampled_from(["lbph", "phash", ""])), algo_version=draw(U32),
        quality=draw(FLOATS), chroma=draw(FLOATS), has_exif=draw(st.booleans()),
        state="error" if error else "ok", error=draw(TEXT | st.sampled_from(["truncated", "changed"])) if error else "",
        encoding=draw(U32),
        box_code=draw(st.none() | st.tuples(U64, U64)),  # any record may carry one; only searchable ones index it
        crop_codes=tuple(draw(st.lists(st.tuples(U64, U64), max_size=7))),
    )


# float edge cases: float32-exact values, values float32 rounds, -0.0, subnormals, infinities
FLOATS = (st.floats(allow_nan=False) | st.floats(width=32, allow_nan=False)
          | st.sampled_from([0.0, -0.0, 40.0, 0.1, 5e-324, 1e-45, 3.4028234663852886e38, 3.5e38, float("inf"), -float("inf")]))


def decoded(raw: bytes, rec: FileRecord) -> FileRecord:
    """`raw` decoded as the index does: a searchable record's code comes from the `codes` table."""
    return decode_record(raw, rec.file_id, rec.code if code_in_table(raw) else None)


def same(a: FileRecord, b: FileRecord) -> bool:
    """Equal, floats compared bit for bit (-0.0 is not 0.0)."""
    bits = lambda r: (struct.pack("<dd", r.quality, r.chroma))  # noqa: E731
    return a == b and bits(a) == bits(b)


@given(records())
def test_round_trip(rec):
    raw = encode_record(rec)
    assert raw[0] == 4 and code_in_table(raw) == is_searchable(rec)
    assert same(decoded(raw, rec), rec)


@given(records())
def test_a_searchable_record_does_not_repeat_its_code_and_needs_it_to_decode(rec):
    rec = rec.with_(box_code=None, crop_codes=())  # box and crop codes are kept in the record (they may equal the code)
    raw = encode_record(rec)
    if not is_searchable(rec):
        return
    assert (rec.code[0] or rec.code[1]) == 0 or struct.pack("<QQ", *rec.code) not in raw[-50:] or len(raw) < 60
    with pytest.raises(IndexCorrupt, match="not in the codes table"):
        decode_record(raw, rec.file_id)
    assert decode_record(raw, rec.file_id, (7, 9)).code == (7, 9)


@given(records())
def test_a_v3_record_of_a_schema_3_index_decodes(rec):
    """...with no box code (v3 had none)."""
    assert same(decode_record(encode_v3(rec), rec.file_id), rec.with_(box_code=None, crop_codes=()))


@given(records(), st.integers(1, 2**64 - 1))
def test_with_id_is_the_record_with_another_id(rec, file_id):
    from dedupd.index.lmdb_tables import with_id

    assert with_id(rec, file_id) == rec.with_(file_id=file_id) and with_id(rec, file_id).file_id == file_id


def test_short_texts_decode_to_one_object():
    """The format, algo, state and error kind of a decoded record are shared between records
    (memory: ~55 bytes each per record), and equal to what was stored."""
    a, b = (FileRecord(0, f"/p/{i}.jpg", 1, i, 10, 0, 0, format="jpeg", algo="lbph", state="error", error="truncated")
            for i in (1, 2))
    ra, rb = decode_record(encode_record(a), 1), decode_record(encode_record(b), 2)
    assert (ra.format, ra.algo, ra.state, ra.error) == ("jpeg", "lbph", "error", "truncated")
    assert all(getattr(ra, f) is getattr(rb, f) for f in ("format", "algo", "state", "error"))


@given(records())
def test_a_version_2_record_decodes_with_encoding_unknown(rec):
    """Records written before `encoding` existed (v2: the same header without it) still read."""
    assert same(decode_record(encode_v2(rec), rec.file_id), rec.with_(encoding=0, box_code=None, crop_codes=()))


@given(records())
def test_the_box_code_is_an_optional_field_after_the_content_hash(rec):
    """A record with a box code is the one without it plus flag bit 7 and 16 bytes at the end
    (`codec_v4`: optional fields are appended, no version bump); without it, the bytes are
    those a dedupd before box codes wrote."""
    box, rec = rec.box_code or (5, 6), rec.with_(crop_codes=())
    plain, boxed = encode_record(rec.with_(box_code=None)), encode_record(rec.with_(box_code=box))
    assert boxed.endswith(struct.pack("<QQ", *box)) and not plain[1] & 0x80
    assert decoded(plain, rec).box_code is None and decoded(boxed, rec).box_code == box
    flags = codec_v4.read_uvarint(boxed, 1)[0]
    assert flags & 128 and flags & ~128 == codec_v4.read_uvarint(plain, 1)[0]


@given(records())
def test_crop_codes_are_an_optional_field_after_the_box_code(rec):
    """Crop window codes: flag bit 8, a count byte and 16 bytes a code, appended after the box
    code; a record without them is the bytes a dedupd before crop codes wrote."""
    crops = rec.crop_codes or ((1, 2), (3, 4))
    plain, cropped = encode_record(rec.with_(crop_codes=())), encode_record(rec.with_(crop_codes=crops))
    assert cropped.endswith(bytes((len(crops),)) + b"".join(struct.pack("<QQ", *c) for c in crops))
    assert decoded(plain, rec).crop_codes == () and decoded(cropped, rec).crop_codes == crops
    flags = codec_v4.read_uvarint(cropped, 1)[0]
    assert flags & 256 and flags & ~256 == codec_v4.read_uvarint(plain, 1)[0]


@pytest.mark.parametrize("bad", [(), ((1, 2),) * 256, [(1, 2)], ((1, -1),), ((1,),)])
def test_bad_crop_codes_are_refused_with_the_path(bad):
    rec = FileRecord(1, "/a.jpg", 1, 2, 3, 4, 5, format="jpeg", algo="lbph", code=(1, 2))
    if bad == ():
        assert decode_record(encode_record(rec.with_(crop_codes=bad)), 1, (1, 2)).crop_codes == ()
        return
    with pytest.raises(InvalidRecord, match="/a.jpg"):
        encode_record(rec.with_(crop_codes=bad))


def test_a_truncated_crop_field_is_corrupt():
    rec = FileRecord(1, "/a.jpg", 1, 2, 3, 4, 5, format="jpeg", algo="lbph", code=(1, 2), crop_codes=((7, 8),))
    raw = encode_record(rec)
    with pytest.raises(IndexCorrupt):
        decode_record(raw[:-1], 1, (1, 2))
    with pytest.raises(IndexCorrupt):
        decode_record(raw[:-17] + b"\x00", 1, (1, 2))  # a count of 0 is not how "none" is written


def test_a_typical_record_is_small():
    """What a record costs (issue 5): a JPEG's record without its path is 64 bytes (v3: 142);
    its format, algorithm, state and error kind take one byte together (`codec_v4.COMMON`)."""
    rec = FileRecord(1, "/p/IMG_1.jpg", 2049, 1_001_234, 2_000_123, 1_600_000_000_123_456_789, 1_600_000_000_123_456_789,
                     4000, 3000, "jpeg", bytes(32), (123, 456), "lbph", 1, 40.0)
    assert len(encode_record(rec)) - len("/p/IMG_1.jpg") == 64
    assert len(encode_v3(rec)) - len("/p/IMG_1.jpg") == 142
    rare = rec.with_(format="jpeg", algo="lbph", state="error", error="truncated")  # not a common combination
    assert len(encode_record(rare)) - len(encode_record(rec)) == 3 + 16  # four text bytes; the code kept inline


def test_a_common_combination_of_texts_has_one_encoding():
    """Four text bytes that form a `COMMON` combination are not how encode writes it: corrupt."""
    rec = FileRecord(1, "/a.jpg", 1, 2, 3, 4, 5, format="png", algo="lbph", state="ok", code=(1, 2))
    raw = encode_record(rec)
    one = codec_v4._COMMON_BYTE[("png", "lbph", "ok", "")]
    at = raw.index(one, len(raw) - 34)  # the text byte sits before the hash's length byte
    four = b"".join(codec_v4._TEXT_BYTE[t] for t in ("png", "lbph", "ok", ""))
    assert decode_record(raw, 1, (1, 2)) == rec
    with pytest.raises(IndexCorrupt, match="common combination"):
        decode_record(raw[:at] + four + raw[at + 1:], 1, (1, 2))


@pytest.mark.parametrize("value, width", [(0.0, 0), (40.0, 4), (0.1, 8), (-0.0, 4), (float("inf"), 4), (1e300, 8),
                                          (float("nan"), 8)])
def test_floats_take_the_fewest_bytes_that_hold_them_exactly(value, width):
    base = FileRecord(1, "/a", 1, 2, 3, 4, 5, state="error", error="x")
    raw = encode_record(base.with_(quality=value))
    assert len(raw) - len(encode_record(base)) == width
    back = decode_record(raw, 1).quality
    assert struct.pack("<d", back) == struct.pack("<d", value)  # bit-exact, the sign of -0.0 and NaN included


def test_a_record_with_an_unknown_flag_is_corrupt_and_says_why():
    raw = bytearray(encode_record(FileRecord(1, "/a", 1, 2, 3, 4, 5)))
    raw[1] |= 0x40 << 1  # bit 7: no v4 field yet (and a varint continuation: the flags grow to 2 bytes)
    with pytest.raises(IndexCorrupt):
        decode_record(bytes(raw[:2]) + b"\x01" + bytes(raw[2:]), 1)


@given(records(), st.data())
def test_truncated_or_extended_is_corrupt(rec, data):
    raw = encode_record(rec)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(IndexCorrupt):
        decode_record(raw[:cut], 1, rec.code)
    with pytest.raises(IndexCorrupt):
        decode_record(raw + b"x", 1, rec.code)


@settings(max_examples=500)
@given(st.binary(max_size=200) | st.binary(max_size=120).map(lambda b: b"\x04" + b))
def test_garbage_is_corrupt_or_a_record(raw):
    try:
        rec = decode_record(raw, 1, (3, 4))
    except IndexCorrupt:
        return
    if raw[0] == 4:
        assert encode_record(rec) == raw  # one encoding per record: it decodes back to the same bytes
    else:
        assert decode_record(encode_v3(rec), 1) == rec


@settings(deadline=None)  # the shared 2-core VM stalls now and then; exactness, not speed, is tested
@given(records(), st.data())
def test_flipped_byte_never_raises_anything_but_corrupt(rec, data):
    raw = bytearray(encode_record(rec))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    try:
        decode_record(bytes(raw), 1, rec.code)
    except IndexCorrupt:
        pass


def test_unknown_version_is_corrupt():
    raw = encode_record(FileRecord(1, "/a", 1, 2, 3, 4, 5))
    with pytest.raises(IndexCorrupt, match="version"):
        decode_record(b"\x09" + raw[1:], 1)


@pytest.mark.parametrize("bad", [dict(size=-1), dict(width=2**32), dict(content_hash=b"x" * 256),
                                 dict(path="/bad\ud800"), dict(dev=2**64), dict(mtime_ns=2**63), dict(ctime_ns=-2**63 - 1),
                                 dict(format="x" * 256), dict(error="e" * 65536), dict(quality="1.5"), dict(width=3.5), dict(ino=None),
                                 dict(code=(2**64, 0), state="error")])
def test_unencodable_fields_raise_invalid_record(bad):
    fields = dict(file_id=1, path="/a", dev=1, ino=2, size=3, mtime_ns=4, ctime_ns=5)
    with pytest.raises(InvalidRecord):
        encode_record(FileRecord(**{**fields, **bad}))


def test_path_key_uses_os_bytes():
    assert path_key("/a\udcff") == path_key(os.fsdecode(b"/a\xff")) != path_key("/a\u00ff")
    assert len(path_key("/x")) == 16
