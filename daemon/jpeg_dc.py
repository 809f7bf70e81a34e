"""A progressive JPEG cut down to what a 1/8-scale decode reads: its DC scans.

At 1/8 scale libjpeg's IDCT of a block is its DC coefficient alone, and in a progressive
JPEG the DC coefficients are the first scan(s) (usually ~10 % of the file): the other
~90 % are AC scans whose entropy decoding dominates the decode (docs/performance.md,
Pipeline) and whose coefficients a 1/8 decode then throws away. No decoder we can use
stops after the DC scans (OpenCV and Pillow read every scan; libjpeg's buffered-image
mode is not exposed), so `dc_stream` rewrites the file instead:

    headers + the DC scans (first and refinement) + for each component whose AC is
    not needed, one synthetic AC scan that codes "all zero" as end-of-band runs + EOI

The synthetic scans are what make the output *identical*, not just close: libjpeg
smooths blocks whose AC coefficients are unknown (it then even changes the DC), but
never blocks whose AC is known, here known to be zero. A chroma component that libjpeg
upscales through its IDCT instead of the upsampler (4:2:0 at 1/8 gets a 2x2 IDCT, which
reads AC coefficients) keeps its real AC scans. tests/daemon/test_jpeg_dc.py checks that
the output equals the whole file's 1/8 decode bit for bit, for 4:4:4, 4:2:2, 4:2:0, grey
and restart intervals.

`dc_stream` never raises: anything it does not fully understand returns None and the
caller decodes the original bytes; so does a file whose scans stop before every
coefficient got its last bit (a cut file: its decoder's guesses would differ from ours).
"""

from __future__ import annotations

import re
import struct

_SOF2 = 0xC2  # progressive, Huffman: the only kind rewritten
_SOS, _EOI = 0xDA, 0xD9
_OTHER_CODINGS = frozenset({0xC0, 0xC1, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCC, 0xCD, 0xCE, 0xCF})  # SOFn, DAC
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # ends entropy-coded data (stuffed 00 and RSTn do not)
_NO_RESTARTS = b"\xff\xdd\x00\x04\x00\x00"
# AC table 0 holding the 15 end-of-band-run symbols EOB0..EOB14 (0x00, 0x10, ..., 0xE0), every
# one 4 bits long: canonical codes give EOBr the code r, and 1111 stays unused as required.
_EOB_TABLE = b"\xff\xc4\x00\x22\x10" + bytes([0, 0, 0, 15] + [0] * 12) + bytes(r << 4 for r in range(15))  # length 2+1+16+15
_MAX_EOB_RUN = 32767


def dc_stream(data: bytes) -> bytes | None:
    """The DC-only equivalent of progressive JPEG `data` for a 1/8-scale decode, or None
    when `data` is not a progressive Huffman JPEG this function fully understands."""
    try:
        return _rewrite(data)
    except (IndexError, ValueError, struct.error):
        return None


def _rewrite(data: bytes) -> bytes | None:
    out, frame, keep_ac = [data[:2]], None, set()
    final: dict[int, set[int]] = {}  # component -> coefficients whose last bit (Al = 0) a scan carries
    for marker, start, end in _segments(data):
        if marker == _EOI:
            break
        if marker in _OTHER_CODINGS:
            return None  # baseline (one scan: nothing to drop), lossless, arithmetic, hierarchical
        if marker == _SOF2:
            frame = _frame(data[start + 4:end])
            if frame is None:
                return None
            keep_ac = _components_needing_ac(frame)
        if marker == _SOS:
            if frame is None:
                return None
            components, ss, se, al = _scan(data, start)
            if al == 0:
                for c in components:
                    final.setdefault(c, set()).update(range(ss, se + 1))
            if ss != 0 and not set(components) <= keep_ac:
                continue  # an AC scan of a component that the 1/8 decode reads only the DC of
        out.append(data[start:end])
    else:
        return None  # no end-of-image marker: let the decoder judge the original
    if frame is None or any(len(final.get(c[0], ())) < 64 for c in frame[2]):
        return None  # a scan script that stops early: a cut file, whose decoder guesses differ from ours
    out += [_NO_RESTARTS, _EOB_TABLE]
    width, height, components = frame
    hmax, vmax = max(c[1] for c in components), max(c[2] for c in components)
    for cid, h, v in components:
        if cid not in keep_ac:
            blocks = -(-width * h // (hmax * 8)) * -(-height * v // (vmax * 8))
            out.append(_zero_ac_scan(cid, blocks))
    out.append(b"\xff\xd9")
    return b"".join(out)


def _segments(data: bytes):
    """(marker, start, end) of every marker segment after SOI; a scan's end includes its
    entropy-coded data."""
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise ValueError("expected a marker")
        while data[pos] == 0xFF:
            pos += 1
        marker, start = data[pos], pos - 1
        pos += 1
        if marker == _EOI:
            yield marker, start, pos
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            raise ValueError("restart marker outside a scan")
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        end = pos + length
        if marker == _SOS:
            found = _NEXT_MARKER.search(data, end)
            end = found.start() if found else n
        yield marker, start, end
        pos = end


def _frame(body: bytes) -> tuple[int, int, list[tuple[int, int, int]]] | None:
    precision, height, width, count = body[0], *struct.unpack(">HH", body[1:5]), body[5]
    components = [(body[6 + 3 * i], body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(count)]
    if precision != 8 or count not in (1, 3) or not width or not height:
        return None
    if any(h not in (1, 2, 4) or v not in (1, 2, 4) for _, h, v in components):
        return None
    return width, height, components


def _components_needing_ac(frame) -> set[int]:
    """Components whose 1/8-scale IDCT is larger than 1x1, as libjpeg chooses it
    (jdmaster.c: chroma is upscaled through the IDCT rather than the upsampler when the
    sampling ratios allow it), so that their AC coefficients are read."""
    _, _, components = frame
    hmax, vmax = max(c[1] for c in components), max(c[2] for c in components)
    return {cid for cid, h, v in components if hmax % (2 * h) == 0 and vmax % (2 * v) == 0}


def _scan(data: bytes, start: int) -> tuple[list[int], int, int, int]:
    """(component ids, Ss, Se, Al) of the scan header at `start`."""
    count = data[start + 4]
    components = [data[start + 5 + 2 * i] for i in range(count)]
    ss, se, a = data[start + 5 + 2 * count], data[start + 6 + 2 * count], data[start + 7 + 2 * count]
    if (ss == 0) != (se == 0) or se > 63 or ss > se:
        raise ValueError("not a valid progressive scan")
    return components, ss, se, a & 15


def _zero_ac_scan(component: int, blocks: int) -> bytes:
    """An AC first scan (Ss=1, Se=63, Ah=Al=0) of one component in which every block is
    all zero: end-of-band runs covering `blocks` blocks."""
    header = b"\xff\xda\x00\x08\x01" + bytes([component, 0x00, 1, 63, 0])
    acc = nbits = 0
    out = bytearray()
    while blocks:
        run = min(blocks, _MAX_EOB_RUN)
        r = run.bit_length() - 1
        acc, nbits = (acc << (4 + r)) | (r << r) | (run - (1 << r)), nbits + 4 + r
        blocks -= run
        while nbits >= 8:
            nbits -= 8
            _put(out, (acc >> nbits) & 0xFF)
        acc &= (1 << nbits) - 1
    if nbits:
        _put(out, ((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) & 0xFF)  # pad with 1 bits
    return header + bytes(out)


def _put(out: bytearray, byte: int) -> None:
    out.append(byte)
    if byte == 0xFF:
        out.append(0)  # byte stuffing
