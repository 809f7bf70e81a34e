import cv2
import numpy as np
import pytest

from dedupd.daemon.errors import CorruptImage, TruncatedImage, UnsupportedFormat
from dedupd.daemon.imageinfo import read_info, sniff_format
from testimages import encode, photo, with_exif_orientation


@pytest.fixture(scope="module")
def coffee():
    return photo("coffee")  # 600 x 400


@pytest.mark.parametrize("ext,fmt", [(".jpg", "jpeg"), (".png", "png"), (".webp", "webp"), (".tif", "tiff"), (".bmp", "bmp")])
def test_dimensions_from_the_header(coffee, ext, fmt):
    info = read_info(encode(coffee, ext))
    assert (info.format, info.width, info.height) == (fmt, 600, 400)


def test_lossless_webp_header(coffee):
    ok, buf = cv2.imencode(".webp", coffee, [cv2.IMWRITE_WEBP_QUALITY, 101])
    info = read_info(buf.tobytes())
    assert (info.format, info.width, info.height) == ("webp", 600, 400)


def test_gif_header():
    from PIL import Image  # noqa: F401  (pillow comes with scikit-image)
    import io

    buf = io.BytesIO()
    Image.fromarray(photo("camera")[:, :, 0]).save(buf, format="GIF")
    info = read_info(buf.getvalue())
    assert (info.format, info.width, info.height) == ("gif", 512, 512)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_and_display_size(coffee, orientation):
    info = read_info(with_exif_orientation(encode(coffee, ".jpg"), orientation, camera=True))
    assert info.orientation == orientation and info.has_exif
    assert info.display_size == ((400, 600) if orientation in (6, 8) else (600, 400))


def test_orientation_alone_is_not_metadata_worth_keeping(coffee):
    info = read_info(with_exif_orientation(encode(coffee, ".jpg"), 6))
    assert info.orientation == 6 and not info.has_exif


def test_format_comes_from_magic_bytes_not_the_name(coffee):
    assert sniff_format(encode(coffee, ".jpg")) == "jpeg"
    assert sniff_format(b"not an image at all") is None


def test_garbage_is_unsupported():
    with pytest.raises(UnsupportedFormat):
        read_info(b"hello world, this is text", "notes.jpg")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp", ".tif"])
def test_cut_header_is_truncated(coffee, ext):
    with pytest.raises((TruncatedImage, CorruptImage)):
        read_info(encode(coffee, ext)[:14])


def test_huge_claimed_size_is_read_without_decoding():
    png = bytearray(encode(np.zeros((4, 4, 3), np.uint8), ".png"))
    png[16:24] = (60000).to_bytes(4, "big") * 2
    info = read_info(bytes(png))
    assert info.pixels == 60000 * 60000


def test_jpeg_encoding_names_the_quantization_not_the_content(coffee):
    """Same tables and sampling: same value, whatever the pixels or the scan layout; another
    quality or chroma sampling: another value; not a JPEG: 0 (unknown)."""
    def jpeg(img, *params):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92, *params])
        return read_info(buf.tobytes()).encoding

    q92 = jpeg(coffee)
    assert q92 != 0
    assert jpeg(255 - coffee) == q92 == jpeg(coffee, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    assert read_info(encode(coffee, ".jpg", 75)).encoding not in (0, q92)
    assert jpeg(coffee, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444) not in (0, q92)
    assert read_info(encode(coffee, ".png")).encoding == 0
