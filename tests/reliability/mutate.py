"""Hypothesis strategies that mutate real, valid inputs (issue 6, part 2: fuzzing).

A mutation-based fuzzer finds parser bugs on inputs that are *almost* valid, which
random bytes never reach: `mutated(seeds)` draws a real seed (a JPEG of a photo, a
rendered stub, a journal record, the shipped config) and applies a few edits that
favour its header: byte flips, interesting values (0, 0xFF, 0x7FFF..., lengths),
inserted and deleted runs, repeated chunks, truncation. Hypothesis shrinks a crash to
a small list of edits, which is easy to turn into a regression test.
"""

from __future__ import annotations

from hypothesis import strategies as st

INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\x7f\xff", b"\x80\x00",
               b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x01\x00\x00\x00",
               b"\xff\xd8", b"\xff\xd9", b"\xff\xc0", b"\xff\xda", b"IEND", b"IDAT", b"\n", b"\r\n",
               b" ", b'"', b"\\", b"[", b"{", b"-", b"0", b"9" * 30, b"\xed\xb2\x80", b"\xc0\x80")


@st.composite
def edits(draw, size: int, header: int = 64):
    """One edit (op, position, payload) for a buffer of `size` bytes, biased to the header."""
    op = draw(st.sampled_from(("flip", "set", "insert", "delete", "repeat", "truncate", "splice")))
    hot = st.integers(0, max(0, min(size, header) - 1))
    anywhere = st.integers(0, max(0, size - 1))
    pos = draw(st.one_of(hot, hot, anywhere))
    if op == "flip":
        return op, pos, draw(st.integers(1, 255))
    if op in ("set", "insert"):
        return op, pos, draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=8))
    if op in ("delete", "repeat"):
        return op, pos, draw(st.integers(1, 64))
    if op == "truncate":
        return op, draw(anywhere), 0
    return op, pos, draw(anywhere)  # splice: copy 16 bytes from another place here


def apply(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, arg in ops:
        pos = min(pos, len(b))
        if op == "flip" and pos < len(b):
            b[pos] ^= arg
        elif op == "set":
            b[pos : pos + len(arg)] = arg
        elif op == "insert":
            b[pos:pos] = arg
        elif op == "delete":
            del b[pos : pos + arg]
        elif op == "repeat":
            b[pos:pos] = b[pos : pos + arg] * 3
        elif op == "truncate":
            del b[pos:]
        elif op == "splice":
            b[pos : pos + 16] = b[min(arg, len(b)) : min(arg, len(b)) + 16]
    return bytes(b)


@st.composite
def mutated(draw, seeds: dict[str, bytes], max_edits: int = 6, header: int = 64):
    """(seed name, mutated bytes) from one of `seeds`."""
    name = draw(st.sampled_from(sorted(seeds)))
    data = seeds[name]
    ops = draw(st.lists(edits(len(data), header), min_size=1, max_size=max_edits))
    return name, apply(data, ops)
