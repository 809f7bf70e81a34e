import os

import numpy as np
import pytest

from dedupd.daemon.decode import decode_image
from dedupd.daemon.errors import ChangedWhileReading
from dedupd.daemon.fingerprinting import fingerprint_file, read_whole
from dedupd.daemon.verify import thumbnail
from dedupd.daemon.walk import FileRef
from dedupd.kernels import ALGORITHMS, fingerprint
from testimages import encode, photo, with_exif_orientation

LIMIT = 100_000_000


def ref(path):
    return FileRef.from_stat(str(path), os.stat(path, follow_symlinks=False))


def test_a_photo_becomes_a_full_record(tmp_path):
    p = tmp_path / "astro.jpg"
    data = with_exif_orientation(encode(photo("astronaut"), ".jpg", 90), 1, camera=True)
    p.write_bytes(data)
    result = fingerprint_file(ref(p), "lbph", LIMIT)
    r = result.record
    assert r.state == "ok" and r.format == "jpeg" and (r.width, r.height) == (512, 512) and r.has_exif
    assert r.size == len(data) and len(r.content_hash) == 32 and r.algo == "lbph" and r.quality > 10
    assert result.variants.shape == (8, 2) and tuple(int(x) for x in result.variants[0]) == r.code


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_the_record_is_the_fingerprint_of_the_upright_decoded_picture(tmp_path, algo):
    """The file is reduced to area sums and a thumbnail before it is fingerprinted; the
    record is still exactly the fingerprint of the decoded picture (here a 451x300 JPEG
    decoded at 1/2 and turned upright from EXIF orientation 6: 226 high, 150 wide)."""
    p = tmp_path / "chelsea.jpg"
    data = with_exif_orientation(encode(photo("chelsea"), ".jpg", 90), 6)
    p.write_bytes(data)
    gray = decode_image(data).gray
    assert gray.shape == (226, 150)  # turned upright
    result = fingerprint_file(ref(p), algo, LIMIT)
    fp = fingerprint(gray, algo)
    assert result.record.code == tuple(int(x) for x in fp.code)
    assert result.record.quality == float(np.float32(fp.quality))  # as records keep it (stored_measure)
    assert result.record.chroma == float(np.float32(result.record.chroma)) > 0  # a colour photo, 4 bytes stored
    assert (result.record.algo, result.record.algo_version) == (fp.algo, fp.version)
    assert np.array_equal(result.variants, fp.variants)
    assert np.array_equal(result.thumb, thumbnail(gray))


@pytest.mark.parametrize(
    "payload,kind",
    [
        (b"", "empty"),
        (b"plain text, named like a photo", "unsupported_format"),
        ("truncated", "truncated"),
        ("bomb", "too_large"),
    ],
)
def test_problems_become_error_records(tmp_path, payload, kind):
    if payload == "truncated":
        payload = encode(photo("coffee"), ".jpg")[:5000]
    elif payload == "bomb":
        png = bytearray(encode(np.zeros((8, 8, 3), np.uint8), ".png"))
        png[16:24] = (60000).to_bytes(4, "big") * 2
        payload = bytes(png)
    p = tmp_path / "x.jpg"
    p.write_bytes(payload)
    result = fingerprint_file(ref(p), "lbph", LIMIT)
    assert (result.record.state, result.record.error, result.variants) == ("error", kind, None)


def test_vanished_and_replaced_by_symlink(tmp_path):
    p = tmp_path / "gone.jpg"
    p.write_bytes(encode(photo("coffee"), ".jpg"))
    r = ref(p)
    p.unlink()
    assert fingerprint_file(r, "lbph", LIMIT).record.error == "vanished"
    p.symlink_to(tmp_path / "elsewhere.jpg")
    assert fingerprint_file(r, "lbph", LIMIT).record.error == "changed"


def test_a_folder_swapped_for_a_symlink_after_the_walk_is_not_read_through(tmp_path):
    """The walk saw root/album/a.jpg; before the read, album became a symlink to a folder
    outside the root holding another a.jpg. The outside file is not fingerprinted under the
    inside name, and the record asks for a new read at the next scan (it matches no stat)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "album").mkdir(parents=True)
    outside.mkdir()
    (root / "album" / "a.jpg").write_bytes(encode(photo("coffee"), ".jpg"))
    (outside / "a.jpg").write_bytes(encode(photo("astronaut"), ".jpg"))
    walked = ref(root / "album" / "a.jpg")
    (root / "album").rename(root / "album.old")
    (root / "album").symlink_to(outside)
    record = fingerprint_file(walked, "lbph", LIMIT).record
    assert (record.state, record.error, record.code) == ("error", "changed", None)
    assert (record.dev, record.ino) == (walked.dev, walked.ino) and record.mtime_ns == -1
    assert not record.same_stat(walked.dev, walked.ino, walked.size, walked.mtime_ns)


def test_a_fifo_swapped_in_does_not_hang(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_bytes(b"x")
    r = ref(p)
    p.unlink()
    os.mkfifo(p)
    assert fingerprint_file(r, "lbph", LIMIT).record.error == "changed"


def test_file_growing_while_read_is_detected(tmp_path, monkeypatch):
    p = tmp_path / "x.jpg"
    p.write_bytes(encode(photo("coffee"), ".jpg"))
    real_read = os.read

    def read_and_append(fd, n):
        chunk = real_read(fd, n)
        with open(p, "ab") as f:
            f.write(b"more")
        return chunk

    monkeypatch.setattr(os, "read", read_and_append)
    with pytest.raises(ChangedWhileReading):
        read_whole(str(p), LIMIT)
