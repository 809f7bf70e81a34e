"""Record codec: Hypothesis round-trips, and garbage decodes to IndexCorrupt (never anything else)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.index import FileRecord, IndexCorrupt, InvalidRecord
from dedupd.index.codec import decode_record, encode_record, path_key

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
        content_hash=draw(st.binary(max_size=32)),
        code=None if error else draw(st.none() | st.tuples(U64, U64)),
        algo=draw(st.sampled_from(["lbph", "phash", ""])), algo_version=draw(U32),
        quality=draw(st.floats(allow_nan=False)), chroma=draw(st.floats(allow_nan=False)), has_exif=draw(st.booleans()),
        state="error" if error else "ok", error=draw(TEXT) if error else "", encoding=draw(U32),
    )


@given(records())
def test_round_trip(rec):
    assert decode_record(encode_record(rec), rec.file_id) == rec


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
    from dedupd.index.codec import _HEAD, _HEAD_V2, RECORD_V2

    raw = encode_record(rec)
    fields = list(_HEAD.unpack_from(raw))
    del fields[14]  # encoding
    fields[0] = RECORD_V2
    old = _HEAD_V2.pack(*fields) + raw[_HEAD.size:]
    assert decode_record(old, rec.file_id) == rec.with_(encoding=0)


@given(records(), st.data())
def test_truncated_or_extended_is_corrupt(rec, data):
    raw = encode_record(rec)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(IndexCorrupt):
        decode_record(raw[:cut], 1)
    with pytest.raises(IndexCorrupt):
        decode_record(raw + b"x", 1)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_is_corrupt_or_a_record(raw):
    try:
        rec = decode_record(raw, 1)
    except IndexCorrupt:
        return
    assert encode_record(rec) == raw  # a valid encoding: decodes back to the same bytes


@settings(deadline=None)  # the shared 2-core VM stalls now and then; exactness, not speed, is tested
@given(records(), st.data())
def test_flipped_byte_never_raises_anything_but_corrupt(rec, data):
    raw = bytearray(encode_record(rec))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    try:
        decode_record(bytes(raw), 1)
    except IndexCorrupt:
        pass


def test_unknown_version_is_corrupt():
    raw = encode_record(FileRecord(1, "/a", 1, 2, 3, 4, 5))
    with pytest.raises(IndexCorrupt, match="version"):
        decode_record(b"\x09" + raw[1:], 1)


@pytest.mark.parametrize("bad", [dict(size=-1), dict(width=2**32), dict(content_hash=b"x" * 256),
                                 dict(path="/bad\ud800")])
def test_unencodable_fields_raise_invalid_record(bad):
    fields = dict(file_id=1, path="/a", dev=1, ino=2, size=3, mtime_ns=4, ctime_ns=5)
    with pytest.raises(InvalidRecord):
        encode_record(FileRecord(**{**fields, **bad}))


def test_path_key_uses_os_bytes():
    assert path_key("/a\udcff") == path_key(os.fsdecode(b"/a\xff")) != path_key("/a\u00ff")
    assert len(path_key("/x")) == 16
