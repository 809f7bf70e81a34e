import io

import cv2
import numpy as np
import pytest

from dedupd.daemon.decode import MIN_SIDE, decode_image, reduction_for
from dedupd.daemon.errors import CorruptImage, ImageTooLarge, TruncatedImage
from dedupd.daemon.imageinfo import ImageInfo
from testimages import encode, photo, stored_for_orientation, with_exif_orientation


def gray(img):
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def mean_abs_diff(a, b):
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.mark.parametrize("w,h,expected", [(4000, 3000, 8), (1024, 768, 4), (600, 400, 2), (300, 200, 1), (100, 80, 1), (512, 511, 2)])
def test_largest_reduction_keeping_short_side(w, h, expected):
    r = reduction_for(ImageInfo("jpeg", w, h))
    assert r == expected and (r == 1 or min(w, h) // r >= MIN_SIDE)


def test_reduction_only_for_jpeg():
    assert reduction_for(ImageInfo("png", 4000, 3000)) == 1


def test_jpeg_is_decoded_at_reduced_scale():
    img = photo("astronaut")  # 512 x 512
    d = decode_image(encode(img, ".jpg"))
    assert d.reduction == 4 and d.gray.shape == (128, 128)


def test_chroma_tells_greyscale_from_colour():
    img = photo("coffee")
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)  # 3 channels, no colour
    colour, flat = decode_image(encode(img, ".jpg")), decode_image(encode(grey, ".jpg"))
    single = decode_image(encode(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), ".png"))  # 1 channel
    assert colour.chroma > 20 and flat.chroma < 1.5 and single.chroma < 1.5


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation):
    """A camera file whose pixels are stored turned, with the tag that turns them back,
    decodes to the same upright picture as the plain file."""
    img = photo("coffee")  # 600 x 400, landscape
    upright = decode_image(encode(img, ".jpg", 95)).gray
    tagged = with_exif_orientation(encode(stored_for_orientation(img, orientation), ".jpg", 95), orientation)
    d = decode_image(tagged)
    assert d.gray.shape == upright.shape
    assert mean_abs_diff(d.gray, upright) < 3.0
    turned_wrong = np.rot90(upright, 2) if orientation != 3 else upright[::-1]
    if turned_wrong.shape == upright.shape:
        assert mean_abs_diff(d.gray, turned_wrong) > 10.0


@pytest.mark.parametrize("ext", [".png", ".webp", ".tif", ".bmp"])
def test_other_formats_decode_exactly(ext):
    img = photo("chelsea")
    d = decode_image(encode(img, ext))
    assert d.reduction == 1
    expected = gray(img) if ext != ".webp" else gray(cv2.imdecode(np.frombuffer(encode(img, ext), np.uint8), cv2.IMREAD_COLOR))
    assert mean_abs_diff(d.gray, expected) < 1.0


def test_gif_first_frame():
    from PIL import Image

    frames = [Image.fromarray(photo("camera")[:, :, 0]), Image.fromarray(255 - photo("camera")[:, :, 0])]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    d = decode_image(buf.getvalue())
    assert d.info.format == "gif" and d.gray.shape == (512, 512)
    assert mean_abs_diff(d.gray, photo("camera")[:, :, 0]) < 8.0


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(ImageTooLarge, match="pixel_limit"):
        decode_image(encode(photo("coffee"), ".png"), "x.png", pixel_limit=1000)


def test_png_bomb_header_is_refused():
    png = bytearray(encode(np.zeros((4, 4, 3), np.uint8), ".png"))
    png[16:24] = (60000).to_bytes(4, "big") * 2  # CRC now wrong too; must not matter
    with pytest.raises(ImageTooLarge):
        decode_image(bytes(png), "bomb.png")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("cut", [0.3, 0.7, 0.98])
def test_truncated_files_raise_typed_errors(ext, cut):
    data = encode(photo("chelsea"), ext)
    with pytest.raises((TruncatedImage, CorruptImage)):
        decode_image(data[: int(len(data) * cut)], "cut" + ext)


def test_flipped_bytes_in_jpeg_data_raise_or_decode_but_never_crash():
    data = bytearray(encode(photo("chelsea"), ".jpg"))
    rng = np.random.default_rng(1)
    for _ in range(20):
        bad = bytearray(data)
        for i in rng.integers(20, len(bad) - 2, size=30):
            bad[i] ^= 0xFF
        try:
            d = decode_image(bytes(bad), "flipped.jpg")
            assert d.gray.dtype == np.uint8
        except (TruncatedImage, CorruptImage):
            pass
