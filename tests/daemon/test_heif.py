"""HEIC through the optional pillow-heif package, on real photos encoded by its x265 encoder."""

import io

import numpy as np
import pytest

from dedupd.daemon import heif
from dedupd.daemon.decode import decode_image
from dedupd.daemon.errors import UnsupportedFormat
from dedupd.daemon.imageinfo import read_info
from dedupd.kernels import fingerprint, hamming
from testimages import encode, photo

pillow_heif = pytest.importorskip("pillow_heif")


def heic(img_bgr: np.ndarray, quality: int = 80) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_bytes("RGB", (img_bgr.shape[1], img_bgr.shape[0]), np.ascontiguousarray(img_bgr[:, :, ::-1]).tobytes()).save(out, quality=quality)
    return out.getvalue()


def test_heic_header_decode_and_fingerprint():
    img = photo("coffee")  # 600 x 400
    data = heic(img)
    info = read_info(data)
    assert (info.format, info.width, info.height) == ("heif", 600, 400)
    d = decode_image(data)
    assert d.gray.shape == (400, 600) and d.chroma > 20
    as_jpeg = decode_image(encode(img, ".jpg", 92))
    assert hamming(fingerprint(d.gray).code, fingerprint(as_jpeg.gray).code) <= 16


def test_heic_pixel_limit():
    from dedupd.daemon.errors import ImageTooLarge

    with pytest.raises(ImageTooLarge):
        decode_image(heic(photo("coffee")), "big.heic", pixel_limit=1000)


def test_without_the_package_heic_is_a_clear_unsupported_format(monkeypatch):
    data = heic(photo("chelsea"))
    monkeypatch.setattr(heif, "pillow_heif", None)
    with pytest.raises(UnsupportedFormat, match=r"pip install 'dedupd\[heif\]'"):
        read_info(data)
