"""The stub format: a small text file `<name>.dedup` that takes a replaced file's
place (ARCHITECTURE.md section 6), modelled on the git-lfs pointer:

    version https://dedupd.dev/stub/v1
    keeper "/photos/2019/IMG_0001.jpg"
    keeper-sha256 <64 hex digits>
    sha256 <64 hex digits>
    size 123456
    mode 0644
    uid 1000
    gid 100
    atime-ns 1700000000000000000
    mtime-ns 1700000000000000000
    action 20261129T182400Z-3f2a9c1b

Keys come in exactly this order, once each, `key SP value LF`, ASCII only. The
keeper path is a JSON string so any name survives (non-UTF-8 bytes as surrogate
escapes, `\\udcXX`). `sha256` and `size` describe the replaced file; `keeper-sha256`
the keeper's bytes when the stub was written (a restore checks it first). The
parser is strict: anything else is a `StubError` that says what is wrong.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from .errors import StubError

VERSION_LINE = "version https://dedupd.dev/stub/v1"
MAX_BYTES = 4096
KEYS = ("keeper", "keeper-sha256", "sha256", "size", "mode", "uid", "gid", "atime-ns", "mtime-ns", "action")
_HEX = re.compile(r"[0-9a-f]{64}")
_INT = re.compile(r"0|[1-9][0-9]{0,19}")
_MODE = re.compile(r"[0-7]{4}")
ACTION_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}")


@dataclass(frozen=True)
class Stub:
    keeper: str
    keeper_sha256: bytes
    sha256: bytes
    size: int
    mode: int  # permission bits (stat.S_IMODE)
    uid: int
    gid: int
    atime_ns: int
    mtime_ns: int
    action: str


def render(stub: Stub) -> bytes:
    """The stub's bytes; `parse(render(s)) == s` for every valid stub."""
    _check(stub)
    values = (json.dumps(stub.keeper, ensure_ascii=True), stub.keeper_sha256.hex(), stub.sha256.hex(),
              str(stub.size), f"{stub.mode:04o}", str(stub.uid), str(stub.gid), str(stub.atime_ns),
              str(stub.mtime_ns), stub.action)
    text = "\n".join([VERSION_LINE] + [f"{k} {v}" for k, v in zip(KEYS, values)]) + "\n"
    data = text.encode("ascii")
    if len(data) > MAX_BYTES:
        raise StubError(f"the keeper path is too long for a stub ({len(data)} > {MAX_BYTES} bytes)")
    return data


def _check(stub: Stub) -> None:
    if len(stub.keeper_sha256) != 32 or len(stub.sha256) != 32:
        raise StubError("a stub needs 32-byte sha256 digests")
    if not 0 <= stub.mode <= 0o7777:
        raise StubError(f"mode {stub.mode:o} is not permission bits")
    if min(stub.size, stub.uid, stub.gid, stub.atime_ns, stub.mtime_ns) < 0:
        raise StubError("size, uid, gid and times of a stub must not be negative")
    if not ACTION_ID.fullmatch(stub.action):
        raise StubError(f"{stub.action!r} is not an action id")
    if not stub.keeper.startswith("/"):
        raise StubError(f"the keeper path {stub.keeper!r} must be absolute")
    if "\0" in stub.keeper:
        raise StubError(f"the keeper path {stub.keeper[:80]!r} holds a NUL byte: no file has that name")
    try:
        os.fsencode(stub.keeper)  # non-UTF-8 bytes come as \udc80-\udcff; any other lone surrogate is no name
    except UnicodeEncodeError:
        raise StubError(f"the keeper path {stub.keeper[:80]!r} holds a lone surrogate: no file has that name") from None


def parse(data: bytes) -> Stub:
    """Parse a stub strictly. Raises `StubError` with what is wrong and where."""
    if len(data) > MAX_BYTES:
        raise StubError(f"{len(data)} bytes is too large for a dedupd stub (at most {MAX_BYTES}); "
                        f"this is not a stub")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise StubError("a dedupd stub is ASCII text; this file is not a stub") from None
    if not text.endswith("\n"):
        raise StubError("the stub is truncated (no final newline)")
    lines = text[:-1].split("\n")
    if lines[0] != VERSION_LINE:
        raise StubError(f"unknown stub version line {lines[0][:80]!r} (expected {VERSION_LINE!r}); "
                        f"a newer dedupd may have written it")
    values = _pairs(lines[1:])
    return _build(values)


def _pairs(lines: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for n, line in enumerate(lines, start=2):
        key, sep, value = line.partition(" ")
        if not sep or not value:
            raise StubError(f"line {n}: expected 'key value', got {line[:80]!r}")
        if key not in KEYS:
            raise StubError(f"line {n}: unknown key {key!r}")
        if key in values:
            raise StubError(f"line {n}: duplicate key {key!r}")
        expected = KEYS[len(values)]
        if key != expected:
            raise StubError(f"line {n}: key {key!r} out of order (expected {expected!r})")
        values[key] = value
    missing = [k for k in KEYS if k not in values]
    if missing:
        raise StubError(f"missing key(s): {', '.join(missing)}")
    return values


def _build(v: dict[str, str]) -> Stub:
    try:  # RecursionError: "[[[[..." nests deeper than the JSON decoder recurses
        keeper = json.loads(v["keeper"])
    except (ValueError, RecursionError):
        raise StubError(f"keeper: {v['keeper'][:80]!r} is not a JSON string") from None
    if not isinstance(keeper, str) or json.dumps(keeper, ensure_ascii=True) != v["keeper"]:
        raise StubError("keeper: not a canonical JSON string")
    for key in ("keeper-sha256", "sha256"):
        if not _HEX.fullmatch(v[key]):
            raise StubError(f"{key}: expected 64 lowercase hex digits")
    for key in ("size", "uid", "gid", "atime-ns", "mtime-ns"):
        if not _INT.fullmatch(v[key]):
            raise StubError(f"{key}: {v[key][:40]!r} is not a non-negative integer")
    if not _MODE.fullmatch(v["mode"]):
        raise StubError(f"mode: {v['mode'][:40]!r} is not 4 octal digits")
    stub = Stub(keeper, bytes.fromhex(v["keeper-sha256"]), bytes.fromhex(v["sha256"]), int(v["size"]),
                int(v["mode"], 8), int(v["uid"]), int(v["gid"]), int(v["atime-ns"]), int(v["mtime-ns"]),
                v["action"])
    _check(stub)
    return stub
