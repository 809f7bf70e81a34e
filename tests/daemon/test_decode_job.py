"""`dedupd.daemon.decode_job`: what a decode worker computes is what the in-process code computes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dedupd.daemon import decode as decode_module
from dedupd.daemon import decode_job
from dedupd.daemon.decode_job import area_sums
from dedupd.kernels import ALGORITHMS, _jit
from dedupd.kernels.area import area_input_for
from testimages import encode, photo, with_exif_orientation, write

side = st.one_of(st.integers(1, 9), st.integers(10, 400), st.sampled_from([63, 64, 65, 127, 129, 240, 320, 513]))
images = st.tuples(side, side).flatmap(lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 255)))


def same(a, b) -> bool:
    return a.shape == b.shape and a.sums.keys() == b.sums.keys() and all(
        np.array_equal(a.sums[s], b.sums[s]) and a.sums[s].dtype == b.sums[s].dtype for s in a.sums)


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(images, st.sampled_from(sorted(ALGORITHMS)))
def test_area_sums_through_the_opencv_table_are_the_numpy_and_numba_sums(gray, algo):
    got = area_sums(gray, algo)
    assert same(got, area_input_for(gray, algo))
    for (h, w), n in got.sums.items():
        assert np.array_equal(n, _jit.area_numerators(gray, h, w))


def test_a_white_picture_at_the_table_limit_is_exact():
    """All white, as many pixels as the int32 table holds: every table entry at its largest."""
    gray = np.full((2898, decode_job.INTEGRAL_MAX_PIXELS // 2898), 255, np.uint8)
    assert gray.size <= decode_job.INTEGRAL_MAX_PIXELS < gray.size + 2898  # one more column would not fit
    got = area_sums(gray, "phash")
    for size, n in got.sums.items():
        assert np.array_equal(n, np.full(size, 255 * gray.size, np.int64))


@pytest.mark.parametrize("shape", [(1, 1), (3, 4000), (300, 200)])
def test_larger_pictures_take_the_tiled_resize(monkeypatch, shape):
    """Above INTEGRAL_MAX_PIXELS no table is built (memory stays bounded); the sums are the same."""
    gray = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    monkeypatch.setattr(decode_job, "INTEGRAL_MAX_PIXELS", 0)
    monkeypatch.setattr(decode_job.cv2, "integral", lambda *a, **k: pytest.fail("built a table"))
    assert same(area_sums(gray, "lbph"), area_input_for(gray, "lbph"))


@pytest.mark.parametrize("ext", ["jpg", "png", "webp"])
def test_a_file_is_decoded_with_the_header_it_was_checked_with(tmp_path, monkeypatch, ext):
    """decode_file parses the header once, while reading (the pixel-limit check), and hands it
    to the decoder: the same facts and pixels as decoding the bytes from scratch."""
    data = encode(photo("coffee"), f".{ext}")
    if ext == "jpg":
        data = with_exif_orientation(data, 6)
    path = write(tmp_path / f"a.{ext}", data)
    calls = []
    real = decode_job.read_info
    monkeypatch.setattr(decode_job, "read_info", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(decode_module, "read_info", lambda *a: calls.append(a) or real(*a))
    got = decode_job.decode_file(str(path), 100_000_000, "lbph")
    assert len(calls) == 1
    monkeypatch.undo()
    fresh = decode_module.decode_image(data, str(path))
    assert got.info == fresh.info and got.chroma == fresh.chroma
    assert same(got.area, area_input_for(fresh.gray, "lbph"))
