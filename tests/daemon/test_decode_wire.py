"""`dedupd.daemon.decode_wire`: a decode worker's answers round-trip exactly, and anything that
is not exactly an answer is a MalformedAnswer (never another exception, never a wrong value)."""

from __future__ import annotations

import os
import struct
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.daemon import decode_wire as wire
from dedupd.daemon.decode_job import DecodedFile, decode_file
from dedupd.daemon.imageinfo import ImageInfo
from dedupd.kernels.area import AreaInput
from testimages import encode, photo, with_exif_orientation, write

LIMIT = 100_000_000


def body(frame: bytes) -> tuple[int, int, memoryview]:
    length, job_id, tag = wire.FRAME.unpack_from(frame)
    assert length == len(frame) - wire.FRAME.size
    return job_id, tag, memoryview(frame)[wire.FRAME.size:]


def same_decoded(a: DecodedFile, b: DecodedFile) -> bool:
    plain = ("dev", "ino", "size", "mtime_ns", "ctime_ns", "content_hash", "info", "chroma")
    return (all(getattr(a, f) == getattr(b, f) for f in plain) and a.area.shape == b.area.shape
            and a.area.sums.keys() == b.area.sums.keys()
            and all(np.array_equal(a.area.sums[k], b.area.sums[k]) and b.area.sums[k].dtype == np.int64 for k in a.area.sums)
            and a.thumb.dtype == b.thumb.dtype and np.array_equal(a.thumb, b.thumb))


def round_trip(frame: bytes):
    _, tag, view = body(frame)
    return wire.parse(tag, view)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory) -> list[DecodedFile]:
    """Real answers: JPEG (EXIF-rotated), PNG, WebP, a square photo (256x256 thumbnail), for every algorithm."""
    d = tmp_path_factory.mktemp("wire")
    files = [write(d / "a.jpg", with_exif_orientation(encode(photo("astronaut"), ".jpg"), 6)),
             write(d / "b.png", encode(photo("coffee"), ".png")),
             write(d / "c.webp", encode(photo("chelsea"), ".webp")),
             write(d / "d.png", encode(np.ascontiguousarray(photo("coffee")[:400, :400]), ".png"))]
    return [decode_file(str(p), LIMIT, algo) for p in files for algo in ("lbph", "phash", "dhash", "ahash")]


def test_a_decoded_file_round_trips_exactly(decoded):
    for got in decoded:
        frame = wire.decoded(7, got)
        assert body(frame)[:2] == (7, wire.TAG_DECODED)
        assert same_decoded(got, round_trip(frame))


def test_sums_travel_as_int32_when_they_fit_and_as_int64_when_not():
    small = AreaInput((240, 320), {(64, 64): np.full((64, 64), 255 * 240 * 320, np.int64)})
    large = AreaInput((3000, 3000), {(64, 64): np.full((64, 64), 255 * 9_000_000, np.int64)})  # 255*H*W > 2**31
    sizes = {}
    for area in (small, large):
        got = DecodedFile(1, 2, 3, 4, 5, bytes(32), ImageInfo("png", area.shape[1], area.shape[0]), 0.0, area,
                          np.zeros((2, 3), np.uint8))
        frame = wire.decoded(0, got)
        sizes[area.shape] = len(frame)
        assert same_decoded(got, round_trip(frame))
    assert sizes[(3000, 3000)] - sizes[(240, 320)] == 64 * 64 * 4


def test_stat_values_at_their_extremes_round_trip():
    area = AreaInput((1, 1), {(64, 64): np.zeros((64, 64), np.int64)})
    got = DecodedFile(2**64 - 1, 2**64 - 1, 2**63 - 1, -(2**63), -1, bytes(range(32)),
                      ImageInfo("tiff", 2**31, 1, orientation=8, has_exif=True, encoding=2**32 - 1), -0.5, area,
                      np.full((1, 1), 255, np.uint8))
    assert same_decoded(got, round_trip(wire.decoded(2**32 - 1, got)))


def test_thumbnails_problems_and_ready_round_trip():
    thumb = np.arange(256 * 17, dtype=np.uint32).astype(np.uint8).reshape(17, 256)
    assert np.array_equal(round_trip(wire.thumb(3, thumb)), thumb)
    assert round_trip(wire.thumb(3, None)) is None
    path = os.fsdecode(b"/photos/caf\xe9/\xff.jpg")  # not UTF-8: surrogate escapes
    assert round_trip(wire.problem(1, "truncated", path, "ends after 2000 of 9000 bytes \u2014 \u00e9")) == (
        "problem", "truncated", path, "ends after 2000 of 9000 bytes \u2014 \u00e9")
    assert round_trip(wire.ready(1234, 5 << 30)) == ("ready", 1234, 5 << 30)


def test_the_worker_side_refuses_what_is_not_a_thumbnail():
    for bad in (np.zeros((2, 257), np.uint8), np.zeros((2, 2), np.int16), np.zeros((2, 2, 3), np.uint8)):
        with pytest.raises(ValueError):
            wire.thumb(0, bad)


def test_every_cut_and_every_extra_byte_is_malformed(decoded):
    frames = [wire.decoded(0, decoded[0]), wire.thumb(0, decoded[0].thumb), wire.thumb(0, None),
              wire.problem(0, "corrupt", "/a", "b"), wire.ready(1, 2)]
    for frame in frames:
        _, tag, view = body(frame)
        cuts = {0, 1, 2, 3, 4, len(view) // 2, len(view) - 1} | set(range(0, min(len(view), 200), 7))
        for cut in sorted(c for c in cuts if 0 <= c < len(view)):
            with pytest.raises(wire.MalformedAnswer):
                wire.parse(tag, view[:cut])
        with pytest.raises(wire.MalformedAnswer):
            wire.parse(tag, memoryview(bytes(view) + b"\0"))


def _patched(frame: bytes, offset: int, fmt: str, value) -> memoryview:
    raw = bytearray(frame[wire.FRAME.size:])
    struct.pack_into(fmt, raw, offset, value)
    return memoryview(raw)


def test_inconsistent_values_are_malformed(decoded):
    got = decoded[0]
    frame = wire.decoded(0, got)
    head = wire.DECODED.size + len(got.info.format)
    bad = {
        "sums that do not add up": _patched(frame, head + wire.SUMS_HEAD.size, "=i", 1),
        "a negative sum": _patched(frame, head + wire.SUMS_HEAD.size, "=i", -5),
        "6 bytes per value": _patched(frame, head + 4, "=B", 6),
        "a shape the sums do not fit": _patched(frame, wire.DECODED.size - 13, "=q", 10**12),
        "a thumbnail wider than 256": _patched(frame, wire.DECODED.size - 2, "=H", 300),
        "a format name that is not ASCII": _patched(frame, wire.DECODED.size, "=B", 0xE9),
    }
    for what, view in bad.items():
        with pytest.raises(wire.MalformedAnswer):
            wire.parse(wire.TAG_DECODED, view)
            pytest.fail(what)
    with pytest.raises(wire.MalformedAnswer):
        wire.parse(99, memoryview(b""))
    thumb = wire.thumb(0, np.zeros((4, 4), np.uint8))
    with pytest.raises(wire.MalformedAnswer):
        wire.parse(wire.TAG_THUMB, _patched(thumb, 0, "=H", 0))  # 0 rows


@settings(max_examples=300, derandomize=True, database=None)
@given(st.sampled_from([wire.TAG_READY, wire.TAG_DECODED, wire.TAG_THUMB, wire.TAG_NO_THUMB, wire.TAG_PROBLEM, 0, 200]),
       st.binary(max_size=300), st.data())
def test_arbitrary_bytes_parse_to_an_answer_or_a_malformed_answer(tag, junk, data):
    """What a compromised worker could write: any bytes, under any tag, and valid frames with
    bytes changed: parse returns a value of the tag's type or raises MalformedAnswer."""
    views = [memoryview(junk)]
    real = bytearray(wire.decoded(0, DecodedFile(1, 2, 3, 4, 5, bytes(32), ImageInfo("jpeg", 8, 8), 0.25,
                                                 AreaInput((8, 8), {(64, 64): np.full((64, 64), 64 * 40, np.int64)}),
                                                 np.full((8, 8), 40, np.uint8)))[wire.FRAME.size:])
    for _ in range(data.draw(st.integers(1, 4))):
        real[data.draw(st.integers(0, len(real) - 1))] = data.draw(st.integers(0, 255))
    views.append(memoryview(bytes(real)))
    for view in views:
        try:
            value = wire.parse(tag, view)
        except wire.MalformedAnswer:
            continue
        if tag == wire.TAG_DECODED:
            assert isinstance(value, DecodedFile) and value.thumb.ndim == 2 and max(value.thumb.shape) <= 256
        elif tag == wire.TAG_THUMB:
            assert value.dtype == np.uint8 and value.ndim == 2
        elif tag == wire.TAG_NO_THUMB:
            assert value is None
        else:
            assert value[0] == {wire.TAG_READY: "ready", wire.TAG_PROBLEM: "problem"}[tag]


# ------------------------------------------------------------------ AnswerReader


def _pipe_reader(capacity: int = wire.BUFFER_BYTES):
    r, w = os.pipe()
    return wire.AnswerReader(r, capacity), w


def _write_slowly(w: int, data: bytes, chunks: list[int]) -> threading.Thread:
    def run():
        at = 0
        for n in chunks:
            os.write(w, data[at:at + n])
            at += n
        os.write(w, data[at:])
    t = threading.Thread(target=run)
    t.start()
    return t


@settings(max_examples=60, derandomize=True, database=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=12), st.lists(st.integers(1, 200), max_size=30),
       st.sampled_from([64, 600, wire.BUFFER_BYTES]))
def test_the_reader_returns_each_frame_whole_however_the_bytes_arrive(bodies, chunks, capacity):
    """Frames split across writes, several in one write, a small buffer that must move a
    partial frame to its front: each frame comes back whole and in order."""
    bodies = [b[:capacity - wire.FRAME.size] for b in bodies]
    stream = b"".join(wire.frame(n, wire.TAG_PROBLEM, b) for n, b in enumerate(bodies))
    reader, w = _pipe_reader(capacity)
    try:
        writer = _write_slowly(w, stream, chunks)
        for n, b in enumerate(bodies):
            job_id, tag, view = reader.next(10)
            assert (job_id, tag, bytes(view)) == (n, wire.TAG_PROBLEM, b)
        writer.join()
    finally:
        reader.close()
        os.close(w)


def test_the_reader_times_out_then_sees_the_end():
    reader, w = _pipe_reader()
    try:
        os.write(w, wire.ready(5, 6)[:5])  # half a frame, then nothing
        with pytest.raises(wire.AnswerTimeout):
            reader.next(0.05)
        os.close(w)
        with pytest.raises(EOFError):
            reader.next(5)
    finally:
        reader.close()
        reader.close()  # closing twice never closes a descriptor number reused since


def test_a_frame_longer_than_the_buffer_is_malformed_before_it_is_read():
    reader, w = _pipe_reader(4096)
    try:
        os.write(w, wire.FRAME.pack(4096, 0, wire.TAG_DECODED))
        with pytest.raises(wire.MalformedAnswer):
            reader.next(5)
    finally:
        reader.close()
        os.close(w)


# ------------------------------------------------------------------ jobs


def test_job_lists_arrive_whole_and_in_order_then_end_of_input():
    r, w = os.pipe()
    pipe = wire.JobPipe(w)
    batches = [[(0, "decode", ("/a.jpg", LIMIT, "lbph"))],
               [(n, "thumb", (f"/{n}\udcff.png", n, -n, bytes(32), LIMIT)) for n in range(4)],
               [(0, "decode", ("/" + "x" * 70_000, LIMIT, "phash"))]]  # longer than a pipe's default 64 KB
    got = []
    reader = threading.Thread(target=lambda: got.extend(iter(lambda: wire.read_jobs(r), None)))
    reader.start()
    try:
        for batch in batches:
            pipe.send(batch)
    finally:
        pipe.close()
        pipe.close()
    reader.join(10)
    os.close(r)
    assert got == batches
