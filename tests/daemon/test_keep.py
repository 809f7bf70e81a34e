from dedupd.daemon.config.schema import DEFAULT_KEEP
from dedupd.daemon.keep import best_copy, in_never_keep_folder, keep_key, may_replace
from dedupd.index.records import FileRecord

OLD_DEFAULT = ["most_pixels", "lossless", "bytes_per_pixel", "has_exif", "oldest", "path_priority", "shortest_path"]


def rec(path, w=100, h=100, size=1000, fmt="jpeg", exif=False, mtime=0):
    return FileRecord(0, path, 1, hash(path) & 0xFFFF, size, mtime, 0, w, h, fmt, b"x" * 32, (0, 0), "lbph", 1, 20.0, exif)


ALL = ["most_pixels", "lossless", "bytes_per_pixel", "has_exif", "oldest", "path_priority", "shortest_path"]


def best(records, rules=ALL, priority=()):
    return min(records, key=keep_key(rules, priority)).path


def test_most_pixels_wins_first():
    assert best([rec("/a/small.jpg", 50, 50, size=9000), rec("/a/big.jpg", 100, 100)]) == "/a/big.jpg"


def test_lossless_over_lossy():
    assert best([rec("/a/x.jpg", size=5000), rec("/a/x.png", fmt="png", size=4000)]) == "/a/x.png"


def test_more_bytes_per_pixel_is_less_compressed():
    assert best([rec("/a/q40.jpg", size=1000), rec("/a/q95.jpg", size=3000)]) == "/a/q95.jpg"


def test_has_exif():
    assert best([rec("/a/plain.jpg"), rec("/a/camera.jpg", exif=True)]) == "/a/camera.jpg"


def test_oldest():
    assert best([rec("/a/new.jpg", mtime=20), rec("/a/old.jpg", mtime=10)]) == "/a/old.jpg"


def test_path_priority():
    rs = [rec("/b/x.jpg"), rec("/a/x.jpg")]
    assert best(rs, ["path_priority"], ["/b"]) == "/b/x.jpg"
    assert best(rs, ["path_priority"], []) == "/a/x.jpg"  # falls through to the stable path order


def test_shortest_path():
    assert best([rec("/a/long/name.jpg"), rec("/a/n.jpg")], ["shortest_path"]) == "/a/n.jpg"


def test_rules_apply_in_the_configured_order():
    rs = [rec("/a/old_small.jpg", 50, 50, mtime=1), rec("/a/new_big.jpg", 100, 100, mtime=9)]
    assert best(rs, ["oldest", "most_pixels"]) == "/a/old_small.jpg"
    assert best(rs, ["most_pixels", "oldest"]) == "/a/new_big.jpg"


def test_never_keep_inside_trash_or_snapshots():
    rs = [rec("/p/.Trash-1000/files/x.jpg", 400, 400), rec("/p/#snapshot/x.jpg", 400, 400), rec("/p/x.jpg", 100, 100)]
    assert best(rs) == "/p/x.jpg"
    assert in_never_keep_folder("/p/@eaDir/x.jpg") and not in_never_keep_folder("/p/trashy/x.jpg")


def test_fidelity_guard():
    big, small = rec("/a/big.jpg", 200, 200), rec("/a/small.jpg", 100, 100)
    assert may_replace(big, small) and not may_replace(small, big)
    assert not may_replace(rec("/a/x.jpg"), rec("/a/x.png", fmt="png"))
    assert not may_replace(rec("/a/x.jpg"), rec("/a/y.jpg", exif=True))


def test_representative_prefers_the_centre_of_the_cluster():
    from dedupd.daemon.grouping import pagerank
    from dedupd.index.edges import Edge

    # 2 is close to 1, 3 and 4; the others only to 2
    scores = pagerank([Edge(1, 2, 4), Edge(2, 3, 4), Edge(2, 4, 6), Edge(1, 3, 20)], radius=24)
    rs = [FileRecord(i, f"/a/{i}.jpg", 1, i, 1000, 0, 0, 100, 100, "jpeg", b"x" * 32, (0, 0), "lbph", 1, 20.0) for i in (1, 2, 3, 4)]
    assert max(scores, key=scores.get) == 2
    assert min(rs, key=keep_key(["representative", "shortest_path"], (), scores)).file_id == 2
    assert min(rs, key=keep_key(["shortest_path"], (), scores)).file_id == 1


# -- the default order and the tolerant bytes_per_pixel, on real photos -------------------------------

def real_records(tmp_path, payloads: dict[str, tuple[bytes, int]]) -> dict[str, FileRecord]:
    """name -> (bytes, mtime): write each file and fingerprint it as a scan does."""
    import os

    from dedupd.daemon.fingerprinting import fingerprint_file
    from dedupd.daemon.walk import FileRef
    from testimages import write

    out = {}
    for i, (name, (payload, mtime)) in enumerate(payloads.items(), start=1):
        path = str(write(tmp_path / name, payload, mtime))
        out[name] = fingerprint_file(FileRef.from_stat(path, os.stat(path)), "lbph", 10**8).record.with_(file_id=i)
    return out


def astronaut_copies():
    """The decoded pixels of a camera JPEG (q90), as a user's editor would re-save them."""
    import cv2
    import numpy as np

    from testimages import encode, photo

    camera_jpeg = encode(photo("astronaut"), ".jpg", 90)
    return camera_jpeg, cv2.imdecode(np.frombuffer(camera_jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_the_camera_original_is_kept_over_a_slightly_larger_re_encode(tmp_path):
    from testimages import encode, with_exif_orientation

    camera_jpeg, pixels = astronaut_copies()
    rs = real_records(tmp_path, {"camera.jpg": (with_exif_orientation(camera_jpeg, 1, camera=True), 1_600_000_000),
                                 "resaved.jpg": (encode(pixels, ".jpg", 92), 1_700_000_000)})
    original, resaved = rs["camera.jpg"], rs["resaved.jpg"]
    assert original.has_exif and not resaved.has_exif and resaved.size > original.size  # +4 % bytes, same pixels
    assert best_copy(list(rs.values()), keep_key(DEFAULT_KEEP)) == original
    assert may_replace(original, resaved) and not may_replace(resaved, original)  # so the pair can be act
    # the old order kept the re-encode, which may never replace the EXIF original: no act pair
    assert min(rs.values(), key=keep_key(OLD_DEFAULT)) == resaved


def test_bytes_per_pixel_within_ten_percent_is_a_tie(tmp_path):
    from testimages import encode

    camera_jpeg, pixels = astronaut_copies()
    rs = real_records(tmp_path, {"original.jpg": (camera_jpeg, 1_600_000_000),
                                 "resaved_q92.jpg": (encode(pixels, ".jpg", 92), 1_700_000_000),
                                 "q75.jpg": (encode(pixels, ".jpg", 75), 1_500_000_000)})
    original, resaved, q75 = rs["original.jpg"], rs["resaved_q92.jpg"], rs["q75.jpg"]
    assert 1.0 < resaved.size / original.size < 1.10 and q75.size / original.size < 0.9
    key = keep_key(DEFAULT_KEEP)
    assert best_copy([original, resaved, q75], key) == original  # a tie on bytes per pixel: the older one
    assert best_copy([original, q75], key) == original  # the oldest file, but far more compressed
    assert best_copy([original, resaved], keep_key(DEFAULT_KEEP, bpp_tie=0.0)) == resaved
    # in the grouping the peers are the files that could be act with each other
    tolerant = key.among(rs_by_id := {r.file_id: r for r in rs.values()}, {i: list(rs_by_id) for i in rs_by_id})
    assert min(rs.values(), key=tolerant) == original and min(rs.values(), key=key) == resaved


def test_the_shipped_default_order():
    assert DEFAULT_KEEP == ("most_pixels", "lossless", "has_exif", "bytes_per_pixel", "oldest", "path_priority",
                            "shortest_path")


def test_a_noisier_copy_quantized_alike_does_not_win_on_bytes(tmp_path):
    """Noise added to a copy saved at the original's quality makes it much larger; with the
    same quantization that is content, not fidelity: the original (older) is kept. A copy
    quantized differently (q75) still loses on bytes, and a 4:4:4 re-save at the same tables
    counts as a different encoding."""
    import numpy as np

    from testimages import encode

    _, pixels = astronaut_copies()
    noisy = np.clip(pixels + np.random.default_rng(7).normal(0, 10, pixels.shape), 0, 255).astype(np.uint8)
    rs = real_records(tmp_path, {"original.jpg": (encode(pixels, ".jpg", 92), 1_600_000_000),
                                 "noisy.jpg": (encode(noisy, ".jpg", 92), 1_700_000_000),
                                 "q75.jpg": (encode(pixels, ".jpg", 75), 1_500_000_000)})
    original, noisy_copy, q75 = rs["original.jpg"], rs["noisy.jpg"], rs["q75.jpg"]
    assert original.encoding and original.encoding == noisy_copy.encoding != q75.encoding
    assert noisy_copy.size > 1.3 * original.size
    key = keep_key(DEFAULT_KEEP)
    assert best_copy([original, noisy_copy], key) == original
    assert best_copy([original, noisy_copy, q75], key) == original
    by_id = {r.file_id: r for r in rs.values()}
    assert min(rs.values(), key=key.among(by_id, {i: list(by_id) for i in by_id})) == original
    # without the encodings (e.g. records written before they existed) bytes decide, as before
    blind = [r.with_(encoding=0) for r in (original, noisy_copy)]
    assert best_copy(blind, key).path == noisy_copy.path
