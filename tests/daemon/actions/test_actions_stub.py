"""The stub format: exact round trip, strict parsing with actionable messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.daemon.actions.errors import StubError
from dedupd.daemon.actions.stub import KEYS, MAX_BYTES, VERSION_LINE, Stub, parse, render

GOOD = Stub(keeper="/photos/2019/IMG_0001.jpg", keeper_sha256=bytes(range(32)), sha256=bytes(range(1, 33)),
            size=123456, mode=0o644, uid=1000, gid=100, atime_ns=1_700_000_000_123456789,
            mtime_ns=1_600_000_000_000000001, action="20261129T182400Z-3f2a9c1b")


def test_render_is_exact():
    lines = render(GOOD).decode().splitlines()
    assert lines[0] == VERSION_LINE
    assert [line.split(" ", 1)[0] for line in lines[1:]] == list(KEYS)
    assert lines[1] == 'keeper "/photos/2019/IMG_0001.jpg"'
    assert lines[5] == "mode 0644" and lines[-1] == "action 20261129T182400Z-3f2a9c1b"
    assert parse(render(GOOD)) == GOOD


def test_odd_names_survive():
    odd = b"/photos/caf\xe9\n \"quoted\" \\ \xff.jpg".decode("utf-8", "surrogateescape")
    stub = Stub(**{**GOOD.__dict__, "keeper": odd})
    data = render(stub)
    assert data.isascii() and data.count(b"\n") == len(KEYS) + 1
    assert parse(data).keeper == odd


# No NUL: no file name holds one, and the parser refuses it.
paths = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=60).map(lambda s: "/" + s) | \
    st.binary(max_size=60).map(lambda b: "/" + b.replace(b"\0", b"").decode("utf-8", "surrogateescape"))
digests = st.binary(min_size=32, max_size=32)
u64 = st.integers(0, 2**63)


@settings(max_examples=300, deadline=None)
@given(paths, digests, digests, u64, st.integers(0, 0o7777), st.integers(0, 2**32), st.integers(0, 2**32),
       u64, u64, st.from_regex(r"\A[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}\Z"))
def test_round_trip(keeper, kh, h, size, mode, uid, gid, atime, mtime, action):
    stub = Stub(keeper, kh, h, size, mode, uid, gid, atime, mtime, action)
    assert parse(render(stub)) == stub


def _lines() -> list[str]:
    return render(GOOD).decode().splitlines()


def _join(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("edit, message", [
    (lambda ls: ["version https://dedupd.dev/stub/v2"] + ls[1:], "unknown stub version"),
    (lambda ls: ls[:3] + ls[4:], "out of order"),
    (lambda ls: ls[:-1], "missing key"),
    (lambda ls: ls + [ls[-1]], "duplicate key"),
    (lambda ls: ls + ["colour red"], "unknown key"),
    (lambda ls: ls[:3] + ["sha256 ABC"] + ls[4:], "64 lowercase hex"),
    (lambda ls: ls[:4] + ["size -1"] + ls[5:], "not a non-negative integer"),
    (lambda ls: ls[:4] + ["size 007"] + ls[5:], "not a non-negative integer"),
    (lambda ls: ls[:5] + ["mode 644"] + ls[6:], "4 octal digits"),
    (lambda ls: ls[:5] + ["mode 0648"] + ls[6:], "4 octal digits"),
    (lambda ls: ls[:1] + ['keeper photos/x.jpg'] + ls[2:], "not a JSON string"),
    (lambda ls: ls[:1] + ['keeper "relative.jpg"'] + ls[2:], "must be absolute"),
    (lambda ls: ls[:1] + ['keeper "\\u002fx.jpg"'] + ls[2:], "canonical"),
    (lambda ls: ls[:-1] + ["action yesterday"], "not an action id"),
    (lambda ls: ls[:2] + ["keeper-sha256"] + ls[3:], "expected 'key value'"),
])
def test_strict_parse(edit, message):
    with pytest.raises(StubError, match=message):
        parse(_join(edit(_lines())))


def test_size_encoding_and_truncation():
    with pytest.raises(StubError, match="too large"):
        parse(render(GOOD) + b"x" * MAX_BYTES)
    with pytest.raises(StubError, match="ASCII"):
        parse("version é\n".encode())
    with pytest.raises(StubError, match="truncated"):
        parse(render(GOOD)[:-1])
    with pytest.raises(StubError, match="not a stub"):
        parse(b"\xff\xd8\xff\xe0 a JPEG, not a stub\n")


def test_render_refuses_what_parse_would_refuse():
    with pytest.raises(StubError, match="too long"):
        render(Stub(**{**GOOD.__dict__, "keeper": "/" + "a" * MAX_BYTES}))
    with pytest.raises(StubError, match="action id"):
        render(Stub(**{**GOOD.__dict__, "action": "x"}))
