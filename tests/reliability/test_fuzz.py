"""Fuzzing the parsers that read untrusted or damaged bytes (issue 6, part 2).

Targets: the decode wrapper (`read_info`, `decode_image`) on mutated real JPEG, PNG,
WebP, TIFF, GIF, BMP and HEIC files; the stub parser; the journal record parser; the
config loader on mutated YAML. The contract for each: only its typed error escapes
(`FileProblem`, `StubError`, `JournalCorrupt`, `ConfigError`), and whatever it accepts
is well formed (a decoded image no larger than its header said; a stub or journal
record that renders back to the same bytes; a config whose paths are absolute).

CI runs a short derandomized pass (the whole file in well under 30 s). A longer run:

    DEDUPD_FUZZ=long python -m pytest -q tests/reliability/test_fuzz.py --hypothesis-show-statistics

(`DEDUPD_FUZZ_EXAMPLES=N` sets the examples per target; docs/reliability.md has the counts.)
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedupd.daemon.actions.errors import JournalCorrupt, StubError
from dedupd.daemon.actions.journal import parse_record
from dedupd.daemon.actions.stub import Stub, parse, render
from dedupd.daemon.config import parse_config
from dedupd.daemon.decode import decode_image
from dedupd.daemon.errors import ConfigError, FileProblem
from dedupd.daemon.imageinfo import HEADER_BYTES, read_info
from badbytes import gif_bytes
from mutate import mutated
from testimages import encode, photo, resize, with_exif_orientation

LONG = os.environ.get("DEDUPD_FUZZ") == "long"
EXAMPLES = int(os.environ.get("DEDUPD_FUZZ_EXAMPLES", "20000" if LONG else "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PIXEL_LIMIT = 4_000_000  # small, so that a mutated size field cannot make one example slow
REPO = Path(__file__).resolve().parents[2]


# -- seeds: real files --------------------------------------------------------------------


def _image_seeds() -> dict[str, bytes]:
    small = resize(photo("chelsea"), 0.4)  # 180 x 120
    grey = small[:, :, 0].copy()
    seeds = {
        "jpeg": encode(small, ".jpg", 90),
        "jpeg_exif6": with_exif_orientation(encode(np.rot90(small).copy(), ".jpg", 90), 6, camera=True),
        "jpeg_progressive": _encode(small, ".jpg", [1, 90, 2, 1]),  # IMWRITE_JPEG_QUALITY, IMWRITE_JPEG_PROGRESSIVE
        # short side >= 1024: decoded at 1/8 through jpeg_dc.dc_stream, which rewrites the scans
        "jpeg_progressive_1_8": _encode(resize(photo("astronaut"), 2.0), ".jpg", [1, 80, 2, 1]),
        "png": encode(small, ".png"),
        "png_grey16": encode((grey.astype(np.uint16) * 257), ".png"),
        "webp": encode(small, ".webp", 80),
        "webp_lossless": encode(small, ".webp", 101),
        "tiff": encode(small, ".tif"),
        "bmp": encode(small, ".bmp"),
        "gif": gif_bytes(small),
    }
    try:
        import pillow_heif

        out = io.BytesIO()
        pillow_heif.from_bytes("RGB", (small.shape[1], small.shape[0]), small[:, :, ::-1].tobytes()).save(out, quality=60)
        seeds["heic"] = out.getvalue()
    except ImportError:  # optional: HEIC is fuzzed where pillow-heif is installed
        pass
    return seeds


def _encode(img, ext, params) -> bytes:
    import cv2

    ok, buf = cv2.imencode(ext, img, params)
    assert ok
    return buf.tobytes()


IMAGES = _image_seeds()


# -- the decode wrapper ---------------------------------------------------------------------


DECODE_GROWTH_MIB = 256  # a decode under PIXEL_LIMIT needs ~30 MiB; a length field must not buy more


def _peak_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def _reset_peak() -> int:
    """Reset the peak-RSS mark (Linux); returns the current RSS in KiB, 0 where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _peak_kib()
    except OSError:
        return 0


@FUZZ
@given(mutated(IMAGES, header=512))
def test_decode_raises_only_file_problems_and_honours_the_header(case):
    """Whatever the bytes: a FileProblem or an upright uint8 image no larger than the
    header claimed (so the pixel limit checked on the header bounds the decoder), and
    no decoder allocation beyond what the pixel limit allows."""
    _, data = case
    try:
        read_info(data[:HEADER_BYTES], "fuzz")
    except FileProblem:
        pass
    base = _reset_peak()
    try:
        d = decode_image(data, "fuzz", pixel_limit=PIXEL_LIMIT)
    except FileProblem:
        return
    finally:
        growth = (_peak_kib() - base) / 1024 if base else 0
        assert growth < DECODE_GROWTH_MIB, f"decoding {len(data):,} bytes grew the peak RSS by {growth:.0f} MiB"
    assert d.gray.dtype == np.uint8 and d.gray.ndim == 2 and d.gray.size > 0
    assert d.info.pixels <= PIXEL_LIMIT and math.isfinite(d.chroma)
    width, height = d.info.display_size
    assert d.gray.shape[0] <= math.ceil(height / d.reduction) and d.gray.shape[1] <= math.ceil(width / d.reduction)


# -- the stub parser ---------------------------------------------------------------------------

STUB = render(Stub(keeper="/photos/2019/caf\u00e9 \"x\".jpg", keeper_sha256=bytes(range(32)), sha256=bytes(range(1, 33)),
                   size=123456, mode=0o644, uid=1000, gid=100, atime_ns=1_700_000_000_123456789,
                   mtime_ns=1_600_000_000_000000001, action="20261129T182400Z-3f2a9c1b"))


@FUZZ
@given(mutated({"stub": STUB}, max_edits=4, header=len(STUB)))
def test_stub_parser_raises_only_stub_errors_and_accepts_only_canonical_stubs(case):
    _, data = case
    try:
        stub = parse(data)
    except StubError:
        return
    assert render(stub) == data  # strict: one stub, one spelling
    os.fsencode(stub.keeper)  # a keeper every path call can take


# -- the journal record parser -----------------------------------------------------------------

STATE = {"path": "/r/a/1.jpg", "dev": 1, "ino": 101, "size": 1000, "mtime_ns": 10, "ctime_ns": 11, "nlink": 1,
         "uid": 0, "gid": 0, "mode": 0o100644, "content_hash": bytes(range(32)).hex()}
RECORD = {"v": 1, "action_id": "20261129T000000Z-00000001", "kind": "hardlink", "tier": "exact", "root": "/r",
          "target": STATE, "keeper": dict(STATE, path="/r/b/1.jpg", ino=501),
          "quarantine_path": "/r/.dedupd-quarantine/20261129T000000Z-00000001/1.jpg",
          "temp_path": "/r/a/.dedupd-tmp-20261129T000000Z-00000001", "final_path": "/r/a/1.jpg", "state": "intent",
          "reason": "", "detail": "", "result_ino": 0, "temp_ino": 0, "quarantine_kept": False,
          "created": 1.5, "updated": 1.5, "bytes": 1000}
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.just([]) | st.just({})
# min_size=1: an extension that can ignore its argument makes Hypothesis warn (empty containers come from SCALARS)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, min_size=1, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, min_size=1, max_size=3), max_leaves=6)


@st.composite
def journal_records(draw) -> bytes:
    """A stored record with some fields replaced, removed or added, then maybe byte-mutated."""
    rec = json.loads(json.dumps(RECORD))
    for _ in range(draw(st.integers(0, 3))):
        side = rec.get(draw(st.sampled_from(("target", "keeper"))))
        where = side if isinstance(side, dict) and side and draw(st.booleans()) else rec
        key = draw(st.sampled_from(sorted(where)) | st.text(max_size=6))
        if draw(st.integers(0, 4)) == 0:
            where.pop(key, None)
        else:
            where[key] = draw(JSON_VALUES)
    raw = json.dumps(rec, sort_keys=True).encode()
    if draw(st.booleans()):
        raw = draw(mutated({"r": raw}, max_edits=3, header=len(raw)))[1]
    return raw


@FUZZ
@given(journal_records())
def test_journal_parser_raises_only_journal_corrupt_and_round_trips(raw):
    try:
        entry = parse_record(7, raw)
    except JournalCorrupt as e:
        assert e.seq == 7
        return
    again = parse_record(7, json.dumps(entry.to_record()).encode())
    assert again == entry


# -- the config loader -----------------------------------------------------------------------------

SHIPPED = (REPO / "config.yaml").read_text()
YAML_SCALARS = st.sampled_from(["0", "-1", "1e999", ".nan", ".inf", "~", "yes", "no", "0660", "0o777", "0x1F",
                                "2001-13-45", "2024-01-01", "'\\0'", "\"\\0\"", "[]", "{}", "*x", "&x 1",
                                "!!binary aGk=", "!!python/none", "\"\\udc80\"", "9" * 5000, "<<: 1"]) | st.text(max_size=8)


@st.composite
def yaml_texts(draw) -> str:
    """The shipped config with values swapped for odd scalars, then maybe text-mutated."""
    lines = SHIPPED.splitlines()
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        key, sep, _ = lines[i].partition(":")
        lines[i] = f"{key}{sep} {draw(YAML_SCALARS)}" if sep else draw(YAML_SCALARS)
    text = "\n".join(lines)
    if draw(st.booleans()):
        data = draw(mutated({"c": text.encode()}, max_edits=3, header=len(text)))[1]
        text = data.decode("utf-8", "replace")
    return text


@FUZZ
@given(yaml_texts())
def test_config_loader_raises_only_config_errors(text):
    try:
        config = parse_config(text, source="fuzz.yaml", base_dir=Path("/etc/dedupd"))
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) for p in e.problems)
        return
    assert os.path.isabs(config.state_dir) and all(os.path.isabs(r.path) for r in config.roots)
    for path in (config.state_dir, config.socket_path, *(r.path for r in config.roots)):
        os.fsencode(path)
        assert "\0" not in path
    assert all(math.isfinite(x) for x in (config.min_quality, config.settle_seconds, config.poll_seconds,
                                          config.retention_days))


@FUZZ
@given(st.recursive(SCALARS, lambda inner: st.lists(inner, min_size=1, max_size=4) | st.dictionaries(
    st.sampled_from(["roots", "path", "mode", "state_dir", "thresholds", "act", "report", "daemon", "control",
                     "keep", "workers", "x"]) | st.text(max_size=4), inner, min_size=1, max_size=4), max_leaves=12))
def test_config_loader_on_any_yaml_document(doc):
    """Any YAML document (as `yaml.safe_dump` writes it): a Config or a ConfigError."""
    try:
        parse_config(yaml.safe_dump(doc), source="fuzz.yaml", base_dir=Path("/etc/dedupd"))
    except ConfigError:
        pass


# -- crashes the fuzzers found, pinned ----------------------------------------------------------


@pytest.mark.parametrize("text, problem", [
    ("state_dir: 2001-13-45\n", "cannot be read"),  # PyYAML: ValueError from datetime.date
    ("workers: " + "9" * 5000 + "\n", "cannot be read"),  # int() refuses more than 4300 digits
    ("roots: " + "[" * 600 + "]" * 600 + "\n", "cannot be read"),  # RecursionError in the composer
    ("workers: 0x" + "f" * 4000 + "\n", "too large to show"),  # a valid int whose str() raises
    ("min_quality: .nan\n", "finite"),  # NaN passed every minimum/maximum comparison
    ("daemon: {settle_seconds: .inf}\n", "finite"),
    ('state_dir: "/var/lib/\\0dedupd"\n', "NUL"),  # accepted, then every os call raised ValueError
    ('roots: [{path: "/photos/\\ud800"}]\n', "lone surrogate"),  # accepted, then os.fsencode raised
    ("workers: &a [*a]\nkeep: [*a, *a]\n", "must be"),  # a self-referencing alias in messages
])
def test_config_inputs_that_crashed_the_loader(text, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_config(text, source="regression.yaml", base_dir=Path("/etc/dedupd"))


def test_stub_and_journal_inputs_that_crashed_the_parsers():
    deep = STUB.replace(b'keeper "', b"keeper " + b"[" * 3000 + b'"', 1)
    with pytest.raises(StubError, match="not a JSON string"):  # RecursionError in json.loads
        parse(deep)
    with pytest.raises(StubError, match="lone surrogate"):  # accepted, then restore's os calls raised
        parse(STUB.replace(b'"/photos/2019/', b'"/photos/\\ud800/', 1))
    for raw in (b"[" * 100_000, b'{"v": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        with pytest.raises(JournalCorrupt, match="not JSON"):  # RecursionError in json.loads
            parse_record(3, raw)


def test_heic_with_an_unsupported_box_version_is_corrupt():
    """pillow-heif raises SyntaxError ("unsupported feature") for a meta box of version 109."""
    if "heic" not in IMAGES:
        pytest.skip("HEIC needs the optional pillow-heif package")
    data = bytearray(IMAGES["heic"])
    at = data.find(b"meta") + 4
    data[at] = 109  # the FullBox version byte
    with pytest.raises(FileProblem) as err:
        decode_image(bytes(data), "x.heic")
    assert err.value.kind == "corrupt"


def test_png_chunk_length_past_the_end_is_refused_before_decoding():
    """OpenCV's PNG reader allocates what an IDAT length claims: 1 GiB for a 43 KB file."""
    png = bytearray(IMAGES["png"])
    png[33:37] = (0x43A8715B).to_bytes(4, "big")  # the first IDAT's length field
    base = _reset_peak()
    with pytest.raises(FileProblem) as err:
        decode_image(bytes(png), "lying.png")
    assert err.value.kind == "corrupt" and "past the end of the file" in str(err.value)
    assert not base or (_peak_kib() - base) / 1024 < 16


@pytest.mark.parametrize("fmt", ["png", "webp", "gif"])
def test_cut_files_are_truncated_not_corrupt(fmt):
    """A cut PNG, WebP or GIF says so (missing IEND, short RIFF, missing trailer)."""
    data = IMAGES[fmt]
    for keep in (0.5, 0.9, len(data) - 1):
        with pytest.raises(FileProblem) as err:
            decode_image(data[: keep if isinstance(keep, int) else int(len(data) * keep)], "cut")
        assert err.value.kind == "truncated", (keep, err.value)
