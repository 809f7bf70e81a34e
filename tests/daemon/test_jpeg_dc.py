"""dc_stream: a progressive JPEG cut to its DC scans decodes at 1/8 to the very same pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dedupd.daemon.decode import decode_image
from dedupd.daemon.jpeg_dc import dc_stream
from testimages import encode, photo, resize

COLOR_8 = cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_IGNORE_ORIENTATION
GREY_8 = cv2.IMREAD_REDUCED_GRAYSCALE_8 | cv2.IMREAD_IGNORE_ORIENTATION
SAMPLING = {"444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
            "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "411": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411,
            "440": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440}


def progressive(img: np.ndarray, sampling: str = "420", restart: int = 0, quality: int = 90) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_PROGRESSIVE, 1,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLING[sampling], cv2.IMWRITE_JPEG_RST_INTERVAL, restart]
    ok, buf = cv2.imencode(".jpg", img, params)
    assert ok
    return buf.tobytes()


def decode(data: bytes, flags: int) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


@pytest.fixture(scope="module")
def big_photo() -> np.ndarray:
    """A real photo large enough for a 1/8 decode (short side >= 1024), odd sizes on purpose."""
    return resize(photo("chelsea"), 3.5)[:1037, :1531]


@pytest.mark.parametrize("sampling", sorted(SAMPLING))
@pytest.mark.parametrize("restart", [0, 7])
def test_same_pixels_as_the_whole_file(big_photo, sampling, restart):
    data = progressive(big_photo, sampling, restart)
    cut = dc_stream(data)
    assert cut is not None and len(cut) < len(data) * 0.6
    for flags in (COLOR_8, GREY_8):
        assert np.array_equal(decode(cut, flags), decode(data, flags)), (sampling, restart, flags)


def test_grey_progressive(big_photo):
    data = progressive(cv2.cvtColor(big_photo, cv2.COLOR_BGR2GRAY))
    cut = dc_stream(data)
    assert cut is not None
    assert np.array_equal(decode(cut, COLOR_8), decode(data, COLOR_8))


def test_decode_image_uses_it_and_gives_the_same_record_inputs(big_photo):
    data = progressive(big_photo, "420", quality=75)
    decoded = decode_image(data)
    reference = decode(data, COLOR_8)
    assert decoded.reduction == 8
    assert np.array_equal(decoded.gray, cv2.cvtColor(reference, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize("make", [
    lambda img: encode(img, ".jpg"),  # baseline: one interleaved scan, nothing to drop
    lambda img: progressive(img)[:-2],  # no end-of-image marker
    lambda img: progressive(img)[:5000] + b"\xff\xd9",  # cut inside the first scan
    lambda img: encode(img, ".png"),
    lambda img: b"\xff\xd8\xff\xe0\x00",
    lambda img: b"",
])
def test_anything_else_is_left_to_the_decoder(big_photo, make):
    assert dc_stream(make(big_photo)) is None


def test_a_cut_inside_the_last_scan_loses_no_dc(big_photo):
    """The last scan refines luma AC, which a 1/8 decode ignores: the pixels stay the same."""
    data = progressive(big_photo)[:-3000] + b"\xff\xd9"
    assert np.array_equal(decode(dc_stream(data), COLOR_8), decode(data, COLOR_8))


def test_a_damaged_progressive_file_never_raises(big_photo):
    data = bytearray(progressive(big_photo))
    rng = np.random.default_rng(7)
    for _ in range(200):
        mutated = bytearray(data[:4000])
        for pos in rng.integers(2, len(mutated), 4):
            mutated[pos] = int(rng.integers(0, 256))
        dc_stream(bytes(mutated) + b"\xff\xd9")  # returns bytes or None; raising fails the test
