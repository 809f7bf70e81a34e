"""Crop verification on real photographs (skimage.data): crops pass, other pictures fail."""

import itertools

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.daemon.cropcheck import REASONS, CropParams, crop_features, verify_crop
from dedupd.daemon.decode import decode_image
from dedupd.daemon.verify import thumbnail
from testimages import encode, photo, resize

NAMES = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def thumb(data: bytes) -> np.ndarray:
    """The product's verification thumbnail of an encoded file."""
    return thumbnail(decode_image(data).gray)


def cut(img, top=0.0, bottom=0.0, left=0.0, right=0.0):
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[round(h * top): h - round(h * bottom), round(w * left): w - round(w * right)])


# name -> (copy, fraction of the original's area the copy keeps)
CROPS = {
    "left_bottom_15": (lambda i: cut(i, bottom=0.15, left=0.15), 0.85 ** 2),  # bench/transforms.py crop_15
    "left_bottom_30": (lambda i: cut(i, bottom=0.30, left=0.30), 0.70 ** 2),
    "top_left_10": (lambda i: cut(i, top=0.10, left=0.10), 0.90 ** 2),
    "centred_20": (lambda i: cut(i, 0.10, 0.10, 0.10, 0.10), 0.80 ** 2),
    "right_25_width_only": (lambda i: cut(i, right=0.25), 0.75),
    "top_20_height_only": (lambda i: cut(i, top=0.20), 0.80),
    "crop_15_resized_50": (lambda i: resize(cut(i, bottom=0.15, left=0.15), 0.5), 0.85 ** 2),
    "crop_20_resized_150": (lambda i: resize(cut(i, 0.10, 0.10, 0.10, 0.10), 1.5), 0.80 ** 2),
}


@pytest.fixture(scope="module")
def originals():
    return {name: (photo(name), thumb(encode(photo(name), ".png"))) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", sorted(CROPS))
def test_crops_pass(originals, name, kind):
    img, original = originals[name]
    make, kept = CROPS[kind]
    verdict = verify_crop(original, thumb(encode(make(img), ".jpg", 85)))
    assert verdict.same, verdict
    assert verdict.reason == "crop"
    # the overlap is the area the crop kept (the geometry was found, not just a match)
    assert verdict.overlap == pytest.approx(kept, abs=0.03), verdict
    assert verdict.block_residual <= CropParams().max_block_residual


@pytest.mark.parametrize("name", NAMES)
def test_random_crops_pass(originals, name):
    """Seeded random sub-rectangles keeping 45-95 % of each side, anywhere in the frame."""
    img, original = originals[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    h, w = img.shape[:2]
    for _ in range(4):
        fh, fw = rng.uniform(0.45, 0.95, 2)
        y0, x0 = int(rng.uniform(0, 1 - fh) * h), int(rng.uniform(0, 1 - fw) * w)
        copy = img[y0: y0 + round(fh * h), x0: x0 + round(fw * w)]
        verdict = verify_crop(original, thumb(encode(copy, ".jpg", 85)))
        assert verdict.same, (fh, fw, y0, x0, verdict)
        assert verdict.overlap == pytest.approx(fh * fw, abs=0.03)


@pytest.mark.parametrize("name", NAMES)
def test_the_uncropped_picture_passes(originals, name):
    img, original = originals[name]
    for copy in (encode(img, ".jpg", 40), encode(resize(img, 0.5), ".jpg", 92), encode(img, ".webp", 80)):
        copy_thumb = thumb(copy)  # a reduced JPEG decode may make it smaller than the original's
        verdict = verify_crop(original, copy_thumb)
        assert verdict.same, verdict
        assert verdict.overlap > 0.97, verdict
        ratio = original.shape[1] / copy_thumb.shape[1]  # either picture may be called the container
        assert min(abs(np.log(verdict.scale / ratio)), abs(np.log(verdict.scale * ratio))) < 0.02, verdict


@pytest.mark.parametrize("name", NAMES)
def test_a_brightened_crop_passes_another_exposure_fails(originals, name):
    img, original = originals[name]
    crop = cut(img, bottom=0.15, left=0.15).astype(np.float32)
    brighter = verify_crop(original, thumb(encode(np.clip(crop * 1.08, 0, 255).astype(np.uint8), ".jpg", 92)))
    assert brighter.same, brighter
    darker = verify_crop(original, thumb(encode(np.clip(crop * 0.55, 0, 255).astype(np.uint8), ".jpg", 92)))
    assert not darker.same and darker.reason == "exposure", darker


@pytest.mark.parametrize(("x", "y"), list(itertools.combinations(NAMES, 2)))
def test_different_photos_fail(originals, x, y):
    verdict = verify_crop(originals[x][1], originals[y][1])
    assert not verdict.same, verdict
    # and a crop of one is not a crop of the other
    assert not verify_crop(originals[x][1], thumb(encode(cut(originals[y][0], bottom=0.15, left=0.15), ".jpg"))).same


def test_distinct_shots_of_one_scene_fail():
    """The stereo motorcycle: the same scene from two viewpoints, many matching features."""
    left, right = (thumb(encode(photo(n), ".png")) for n in ("motorcycle_left", "motorcycle_right"))
    assert not verify_crop(left, right).same
    assert not verify_crop(left, thumb(encode(cut(photo("motorcycle_right"), 0.1, 0.1, 0.1, 0.1), ".jpg"))).same


def pasted(img):
    """A block of the picture replaced by another part of it (a retouch, a moved person)."""
    out = img.copy()
    h, w = img.shape[:2]
    bh, bw = h // 5, w // 5
    out[h // 3: h // 3 + bh, w // 3: w // 3 + bw] = img[h // 10: h // 10 + bh, w // 2: w // 2 + bw]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_a_pasted_region_fails_on_local_difference(originals, name):
    img, original = originals[name]
    for copy in (pasted(img), cut(pasted(img), bottom=0.15, left=0.15)):
        verdict = verify_crop(original, thumb(encode(copy, ".jpg", 92)))
        assert not verdict.same and verdict.reason == "local_difference", verdict


@pytest.mark.parametrize("name", NAMES)
def test_a_rotated_copy_fails(originals, name):
    img, original = originals[name]
    for copy in (np.rot90(img, 1), np.rot90(cut(img, bottom=0.15, left=0.15), -1)):
        verdict = verify_crop(original, thumb(encode(np.ascontiguousarray(copy), ".jpg", 92)))
        assert not verdict.same, verdict
        assert verdict.reason == "rotation", verdict


# odd thumbnails -> the reason a pair of two copies of one gets
ODD = {
    "empty": (np.zeros((0, 0), np.uint8), "too_small"),
    "one_pixel": (np.full((1, 1), 200, np.uint8), "too_small"),
    "row": (np.arange(256, dtype=np.uint8)[None, :], "too_small"),
    "column": (np.arange(256, dtype=np.uint8)[:, None].copy(), "too_small"),
    "tiny": (np.random.default_rng(1).integers(0, 256, (20, 20), dtype=np.uint8), "too_small"),
    "flat": (np.full((192, 256), 128, np.uint8), "too_few_features"),
    "nearly_flat": ((np.random.default_rng(2).integers(0, 2, (192, 256)) + 100).astype(np.uint8), "too_few_features"),
    # a view with negative strides: the same picture, so a crop of 0 %
    "non_contiguous": (thumbnail(cv2.cvtColor(photo("coffee"), cv2.COLOR_BGR2GRAY))[::-1, ::-1], "crop"),
}


@pytest.mark.parametrize("kind", sorted(ODD))
def test_odd_inputs_return_a_verdict(originals, kind):
    odd, alone = ODD[kind]
    for a, b in ((odd, originals["astronaut"][1]), (originals["astronaut"][1], odd)):
        verdict = verify_crop(a, b)
        assert not verdict.same and verdict.reason in REASONS, verdict
    assert verify_crop(odd, odd.copy()).reason == alone


def test_a_wrong_array_type_is_a_type_error(originals):
    grey = originals["astronaut"][1]
    for bad in (np.dstack([grey] * 3), grey.astype(np.float32), grey.tolist()):
        with pytest.raises(TypeError, match="2-D uint8 grey thumbnail"):
            verify_crop(bad, grey)


def _pairs(originals):
    img, original = originals["chelsea"]
    yield original, thumb(encode(cut(img, bottom=0.3, left=0.3), ".jpg"))
    yield original, thumb(encode(pasted(img), ".jpg"))
    yield original, originals["coffee"][1]
    yield original, thumb(encode(np.ascontiguousarray(np.rot90(img)), ".jpg"))
    yield thumb(encode(resize(img, 0.5), ".jpg")), thumb(encode(cut(img, 0.1, 0.1, 0.1, 0.1), ".jpg"))


def test_symmetric(originals):
    for a, b in _pairs(originals):
        assert repr(verify_crop(a, b)) == repr(verify_crop(b, a))


def test_deterministic_whatever_opencv_rng_state(originals):
    for a, b in _pairs(originals):
        first = repr(verify_crop(a, b))
        for seed in (0, 1, 12345):
            cv2.setRNGSeed(seed)
            cv2.randu(np.empty((4, 4), np.float32), 0, 1)  # move the global RNG on
            assert repr(verify_crop(a, b)) == first


def test_given_features_give_the_same_verdict(originals):
    for a, b in _pairs(originals):
        features = (crop_features(a), crop_features(b))
        assert repr(verify_crop(a, b, features=features)) == repr(verify_crop(a, b))


def test_lossless_same_size_files_must_hold_the_same_pixels():
    """Adjacent video frames: sub-pixel motion passes any thumbnail residual, so two lossless
    files of one size that are not a crop of each other must agree pixel for pixel (as
    verify_pair requires); a real crop of them is unaffected."""
    img = photo("chelsea")
    h, w = img.shape[:2]
    m = np.float32([[1, 0, 0.6], [0, 1, 0.3]])  # the next frame: everything moved by a fraction of a pixel
    frame2 = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    a, b = thumb(encode(img, ".png")), thumb(encode(frame2, ".png"))
    assert verify_crop(a, b).same  # what the thumbnails alone say
    verdict = verify_crop(a, b, both_lossless_same_size=True)
    assert not verdict.same and verdict.reason == "local_difference", verdict
    assert verify_crop(a, thumb(encode(img, ".png")), both_lossless_same_size=True).same
    # a crop of one resized back to the frame's size (a lossless file of one size, overlap 0.72)
    upscaled = cv2.resize(cut(img, bottom=0.15, left=0.15), (w, h), interpolation=cv2.INTER_CUBIC)
    assert verify_crop(a, thumb(encode(upscaled, ".png")), both_lossless_same_size=True).same


_BASE = cv2.cvtColor(photo("astronaut"), cv2.COLOR_BGR2GRAY)


@st.composite
def odd_thumbnails(draw):
    """Any shape from 1 px to 300 px; noise, flat, two-level, a piece of a photo, a resized photo."""
    h, w = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    kind = draw(st.sampled_from(("noise", "flat", "levels", "piece", "resized")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "noise":
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == "flat":
        return np.full((h, w), draw(st.integers(0, 255)), np.uint8)
    if kind == "levels":
        return (rng.integers(0, 3, (h, w)) * 120).astype(np.uint8)
    if kind == "piece":
        y0, x0 = draw(st.integers(0, 511)), draw(st.integers(0, 511))
        return np.ascontiguousarray(_BASE[y0: y0 + h, x0: x0 + w])
    return cv2.resize(_BASE, (w, h), interpolation=cv2.INTER_AREA)


@settings(max_examples=150, deadline=None)
@given(odd_thumbnails(), odd_thumbnails())
def test_any_pair_gets_a_symmetric_verdict_without_raising(a, b):
    verdict = verify_crop(a, b)
    assert verdict.reason in REASONS and verdict.same == (verdict.reason == "crop")
    assert repr(verify_crop(b, a)) == repr(verdict)
