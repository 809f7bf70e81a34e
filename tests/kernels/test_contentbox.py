"""`dedupd.kernels.contentbox`: the box left once uniform bars are cut from a picture's edges,
checked against a line-by-line reference (the rule `bench/reframe_probe.py` measured) and on
real photos given bars the way letterboxing and framing tools add them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedupd.kernels import fingerprint, hamming
from dedupd.kernels.contentbox import Box, content_box
from dedupd.kernels.errors import BadImage
from kernel_images import MAIN, PHOTOS, jpeg, photo, scaled


def reference_box(g: np.ndarray, spread: int = 6, at_least: float = 0.02):
    """The rule line by line, as the probe first wrote it, with whole-rank percentiles:
    the 2nd percentile is the value of rank floor(2 (n-1) / 100) of the sorted line, the
    98th of rank ceil(98 (n-1) / 100) (Python integers, no numpy percentile)."""
    h, w = g.shape

    def uniform(line) -> bool:
        v = sorted(int(x) for x in line)
        n = len(v)
        return v[(98 * (n - 1) + 99) // 100] - v[2 * (n - 1) // 100] <= spread

    def trim(n, line):
        first, last = 0, n
        while first < n // 3 and uniform(line(first)):
            first += 1
        while last > n - n // 3 and uniform(line(last - 1)):
            last -= 1
        return (0, n) if first + n - last < at_least * n else (first, last)

    top, bottom = trim(h, lambda i: g[i])
    left, right = trim(w, lambda j: g[:, j])
    return None if (top, bottom, left, right) == (0, h, 0, w) else (top, bottom, left, right)


def as_tuple(box: Box | None):
    return None if box is None else (box.top, box.bottom, box.left, box.right)


def framed(g: np.ndarray, top: int, bottom: int, left: int, right: int, level: int) -> np.ndarray:
    return cv2.copyMakeBorder(np.ascontiguousarray(g), top, bottom, left, right, cv2.BORDER_CONSTANT, value=level)


@given(st.data())
def test_matches_the_line_by_line_reference(data):
    """Random pictures: noise, flat areas and bars of random widths and levels at random
    edges (bars a few grey levels noisy, as after a JPEG), including bars past a third."""
    h = data.draw(st.integers(1, 60), label="h")
    w = data.draw(st.integers(1, 60), label="w")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 256, (h, w)).astype(np.uint8)
    if data.draw(st.booleans(), label="flat patch"):
        g[: h // 2] = rng.integers(0, 256)
    for side in range(4):
        n = data.draw(st.integers(0, (h if side < 2 else w) // 2), label=f"bar {side}")
        level, noise = int(rng.integers(0, 256)), data.draw(st.integers(0, 8), label=f"noise {side}")
        bar = np.clip(level + rng.integers(-noise, noise + 1, (n, w) if side < 2 else (h, n)), 0, 255)
        if side == 0:
            g[:n] = bar
        elif side == 1:
            g[h - n:] = bar
        elif side == 2:
            g[:, :n] = bar
        else:
            g[:, w - n:] = bar
    assert as_tuple(content_box(g)) == reference_box(g)


@pytest.mark.parametrize("name", PHOTOS)
def test_photos_without_bars_have_no_box_or_the_reference_one(name):
    g = photo(name)
    assert as_tuple(content_box(g)) == reference_box(g)


@pytest.mark.parametrize("name", MAIN)
@pytest.mark.parametrize("bars", [(64, 64, 0, 0), (0, 0, 80, 80), (20, 20, 20, 20), (0, 50, 0, 0)])
@pytest.mark.parametrize("level", [0, 255, 128])
def test_bars_added_to_a_photo_are_cut_off_after_a_jpeg(name, bars, level):
    """Letterbox (top + bottom), pillarbox, a frame, one bar; black, white and grey; the
    framed photo saved as a JPEG at quality 85: the box holds the photo, give or take the
    ringing of the 8x8 blocks next to the edge (at most 2 % of the side)."""
    g = photo(name)
    copy = jpeg(framed(g, *bars, level), 85)
    box = content_box(copy)
    assert box is not None
    h, w = g.shape
    top, bottom, left, right = bars
    assert abs(box.top - top) <= 0.02 * h and abs(box.bottom - (top + h)) <= 0.02 * h
    assert abs(box.left - left) <= 0.02 * w and abs(box.right - (left + w)) <= 0.02 * w


@pytest.mark.parametrize("name", MAIN)
def test_a_letterboxed_copy_hashes_like_its_original_once_boxed(name):
    """What the box is for: the whole-frame code of a letterboxed copy (bars of 12.5 % of the
    height, as bench/transforms.py makes them) is far from the original's, the box's is close."""
    g = photo(name)
    bar = round(g.shape[0] * 0.125)
    copy = jpeg(framed(g, bar, bar, 0, 0, 0), 85)
    original = fingerprint(g).code
    whole = hamming(fingerprint(copy).code, original)
    boxed = hamming(fingerprint(np.ascontiguousarray(content_box(copy).crop(copy))).code, original)
    assert boxed <= 12 < whole


def test_a_box_found_on_a_thumbnail_carries_to_the_full_picture():
    g = photo("astronaut")
    copy = framed(g, 64, 64, 0, 0, 0)  # 640 x 512
    small = scaled(copy, 0.25)  # 160 x 128
    box = content_box(small).scaled(*copy.shape)
    assert (box.top, box.bottom, box.left, box.right) == (64, 576, 0, 512)
    assert box.crop(copy).shape == g.shape


def test_scaling_never_makes_an_empty_box():
    box = Box(0, 1, 0, 1, 1000, 1000).scaled(10, 10)
    assert (box.bottom - box.top, box.right - box.left) == (1, 1)


def test_bad_input_is_refused():
    with pytest.raises(BadImage):
        content_box(np.zeros((0, 5), np.uint8))
    with pytest.raises(BadImage):
        content_box(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(BadImage):
        content_box(np.zeros((4, 4), np.float32))
    with pytest.raises(BadImage):
        Box(0, 2, 0, 2, 4, 4).crop(np.zeros((5, 4), np.uint8))
