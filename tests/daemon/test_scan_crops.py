"""Crops are found through window codes (`dedupd.daemon.cropcodes`, config `match_crops`):
a copy keeping 85 % of the width and height of a real photo, cut from one corner, and its
original end in one report group (variant "crop", confirmed pixel by pixel), in either scan
order, per file and by the batch join alike, across incremental scans; a stereo pair (the
two motorcycle photos: one scene from two viewpoints) is a candidate that the confirmation
refuses; without `match_crops` nothing of this exists."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dedupd.daemon import scan as scan_module
from dedupd.daemon.config import load_config
from dedupd.daemon.cropcodes import MIN_WINDOW, STORED, window_codes, windows
from dedupd.daemon.decode_pool import ThreadDecoder
from dedupd.daemon.errors import ConfigError
from dedupd.daemon.grouping import Thresholds, admit, could_act, tier_of
from dedupd.daemon.scan import Scanner
from dedupd.daemon.state import open_index
from dedupd.daemon.verify import thumbnail
from dedupd.index.boxes import BOX_ALIAS
from dedupd.index.edges import CROP_VARIANT, Edge
from dedupd.index.records import FileRecord
from dedupd.kernels import fingerprint
from test_scan_join import JOINED, PER_FILE, canonical, edges_by_path
from test_scan_letterbox import distance, pairs_of
from testimages import encode, photo, write

PICTURES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")
DISTRACTORS = ("camera", "motorcycle_right")  # motorcycle_right: the other half of motorcycle_left's stereo pair


def crop(img: np.ndarray, cut: float = 0.15, corner: str = "bottom_left") -> np.ndarray:
    """Keep (1 - cut) of the width and height; cut from the left and the bottom (as
    `bench/transforms.py` `_crop`) or from the top and the right."""
    h, w = img.shape[:2]
    kh, kw = round(h * (1 - cut)), round(w * (1 - cut))
    return img[:kh, w - kw:] if corner == "bottom_left" else img[h - kh:, :kw]


def write_originals(root, names=PICTURES + DISTRACTORS, folder="orig") -> None:
    for name in names:
        write(root / f"{folder}/{name}.jpg", encode(photo(name), ".jpg", 92))


def write_crops(root, names=PICTURES, folder="cropped") -> None:
    for name in names:
        write(root / f"{folder}/{name}_crop.jpg", encode(crop(photo(name)), ".jpg", 90))


def open_scanner(tmp_path, root, name: str, join_min_files: int, crops: bool = True):
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(f"state_dir: {tmp_path / name}\nroots: [{{path: {root}}}]\nworkers: 2\n"
                   f"match_crops: {'true' if crops else 'false'}\n")
    config = load_config(str(cfg))
    index = open_index(config)
    scanner = Scanner(config, index, progress=False, decoder=ThreadDecoder(config.pixel_limit))
    scanner.join_min_files = join_min_files
    return config, index, scanner


def assert_crop_pairs(groups, names=PICTURES) -> None:
    pairs = pairs_of(groups)
    for n in names:
        got = pairs.get((f"{n}.jpg", f"{n}_crop.jpg")) or pairs.get((f"{n}_crop.jpg", f"{n}.jpg"))
        assert got == ("report", "crop"), (n, pairs)
        pairs.pop((f"{n}.jpg", f"{n}_crop.jpg"), None) or pairs.pop((f"{n}_crop.jpg", f"{n}.jpg"))
    # nothing else through a window: the stereo pair is related upright (18 bits, report), no crop
    assert all(variant != "crop" for _, variant in pairs.values()) and not any("camera" in k[0] + k[1] for k in pairs), pairs


@pytest.mark.parametrize("crops_first", [False, True])
@pytest.mark.parametrize("join", [PER_FILE, JOINED])
def test_a_crop_and_its_original_are_one_report_group(tmp_path, monkeypatch, crops_first, join):
    root = tmp_path / "photos"
    write_originals(root, folder="b_orig" if crops_first else "a_orig")  # walk order: "a_" first
    write_crops(root, folder="a_crop" if crops_first else "b_crop")
    monkeypatch.setattr(scan_module, "BATCH", 3)  # pairs within and across batches
    _, index, scanner = open_scanner(tmp_path, root, "idx", join)
    try:
        scanner.run()
        records = {r.path.rsplit("/", 1)[-1]: r for r in index.iter_records()}
        for n in PICTURES:
            copy, orig = records[f"{n}_crop.jpg"], records[f"{n}.jpg"]
            assert 0 < len(copy.crop_codes) <= STORED and 0 < len(orig.crop_codes) <= STORED
            assert distance(copy.code, orig.code) > 28  # not found through the frames' codes
        assert len(index.all_crop_codes()[0]) == sum(len(r.crop_codes) for r in records.values())
        assert_crop_pairs(scanner.regroup())
        crop_edges = [e for e in edges_by_path(index) if e[3] == CROP_VARIANT]
        assert {(e[0].rsplit("/", 1)[-1].split("_crop")[0].split(".")[0], e[4]) for e in crop_edges} >= \
            {(n, True) for n in PICTURES}
        # the stereo pair's crop candidates, if any, were refused by the confirmation
        assert all(not e[4] for e in crop_edges if "motorcycle_right" in e[0] + e[1])
    finally:
        index.close()


def test_the_join_finds_the_crop_edges_a_lookup_per_file_finds(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    write_originals(root, folder="m_orig")
    write_crops(root, PICTURES[:2], folder="a_crop")  # before their originals
    write_crops(root, PICTURES[2:], folder="z_crop")  # after
    write(root / "z_crop/rocket_top_right.jpg", encode(cv2.resize(crop(photo("rocket"), 0.2, "top_right"), None, fx=0.7,
                                                                  fy=0.7, interpolation=cv2.INTER_AREA), ".jpg", 85))
    monkeypatch.setattr(scan_module, "BATCH", 3)
    _, index_a, per_file = open_scanner(tmp_path, root, "a", PER_FILE)
    _, index_b, joined = open_scanner(tmp_path, root, "b", JOINED)
    try:
        report_a, report_b = per_file.run(), joined.run()
        assert edges_by_path(index_a) == edges_by_path(index_b)
        assert canonical(per_file.regroup()) == canonical(joined.regroup())
        assert report_a.edges == report_b.edges
        pairs = pairs_of(joined.regroup())
        assert pairs.get(("rocket.jpg", "rocket_top_right.jpg")) == ("report", "crop"), pairs  # resized, other corner
    finally:
        index_a.close()
        index_b.close()


@pytest.mark.parametrize("crop_later", [False, True])
@pytest.mark.parametrize("join", [PER_FILE, JOINED])
def test_the_pair_is_found_when_one_side_arrives_in_a_later_scan(tmp_path, crop_later, join):
    root = tmp_path / "photos"
    (write_originals if crop_later else write_crops)(root)
    _, index, scanner = open_scanner(tmp_path, root, "idx", join)
    try:
        scanner.run()
        assert not any(variant == "crop" for _, variant in pairs_of(scanner.regroup()).values())
        (write_crops if crop_later else write_originals)(root)
        scanner.run()
        assert_crop_pairs(scanner.regroup())
    finally:
        index.close()


def test_deleting_a_file_removes_its_window_rows(tmp_path):
    root = tmp_path / "photos"
    write_originals(root, names=("rocket", "camera"))
    write_crops(root, names=("rocket",))
    _, index, scanner = open_scanner(tmp_path, root, "idx", PER_FILE)
    try:
        scanner.run()
        owners = {i & ((1 << 40) - 1) for i in index.all_crop_codes()[0].tolist()}
        assert owners == {r.file_id for r in index.iter_records()}
        gone = index.by_path(str(root / "cropped/rocket_crop.jpg")).file_id
        (root / "cropped/rocket_crop.jpg").unlink()
        scanner.run()
        ids = index.all_crop_codes()[0].tolist()
        assert len(ids) == sum(len(r.crop_codes) for r in index.iter_records()) and all(i >= BOX_ALIAS and i & ((1 << 40) - 1) != gone for i in ids)
        assert not pairs_of(scanner.regroup())
    finally:
        index.close()


def test_without_match_crops_no_window_codes_and_no_crop_pairs(tmp_path):
    root = tmp_path / "photos"
    write_originals(root)
    write_crops(root)
    _, index, scanner = open_scanner(tmp_path, root, "idx", PER_FILE, crops=False)
    try:
        scanner.run()
        assert all(r.crop_codes == () for r in index.iter_records())
        assert len(index.all_crop_codes()[0]) == 0 and index.stats()["entries"]["crop_codes"] == 0
        assert not any(v == "crop" for _, v in pairs_of(scanner.regroup()).values())
    finally:
        index.close()


def scan_once(tmp_path, root, crops: bool) -> None:
    _, index, scanner = open_scanner(tmp_path, root, "idx", PER_FILE, crops=crops)
    try:
        scanner.run()
    finally:
        index.close()


def test_turning_match_crops_on_for_an_index_built_without_asks_for_a_reindex(tmp_path):
    root = tmp_path / "photos"
    write_originals(root, names=("rocket",))
    scan_once(tmp_path, root, crops=False)
    with pytest.raises(ConfigError, match=r"thresholds.crop: 20 .*built without match_crops.*dedupctl reindex"):
        open_scanner(tmp_path, root, "idx", PER_FILE, crops=True)


def test_an_index_scanned_once_without_match_crops_asks_for_a_reindex_to_turn_it_on_again(tmp_path):
    """Files indexed while crops were off have no window codes: the index forgets its crop radius."""
    root = tmp_path / "photos"
    write_originals(root, names=("rocket",))
    scan_once(tmp_path, root, crops=True)
    scan_once(tmp_path, root, crops=True)  # on again: fine
    write_crops(root, names=("rocket",))
    scan_once(tmp_path, root, crops=False)
    with pytest.raises(ConfigError, match="dedupctl reindex"):
        open_scanner(tmp_path, root, "idx", PER_FILE, crops=True)


@pytest.mark.parametrize("indexed, asked", [("orig", "cropped"), ("cropped", "orig")])
def test_query_finds_the_other_side_of_a_crop(tmp_path, indexed, asked):
    """`dedupctl query`: a crop finds its indexed original, an original its indexed crop."""
    from dedupd.daemon.query import query_file

    root = tmp_path / "photos"
    write_originals(root, names=("rocket", "camera"))
    write_crops(root, names=("rocket",))
    config, index, scanner = open_scanner(tmp_path, root / indexed, "idx", PER_FILE)
    try:
        scanner.run()
        name = "rocket_crop.jpg" if asked == "cropped" else "rocket.jpg"
        matches = query_file(config, index, str(root / asked / name))
        assert [(m["variant"], m["tier"], m["verified"]) for m in matches if "rocket" in m["path"]] == \
            [("crop", "report", True)]
        assert not any("camera" in m["path"] for m in matches)
    finally:
        index.close()


# -- grouping of CROP edges -------------------------------------------------------------------

def _rec(file_id: int, code, quality: float = 40.0) -> FileRecord:
    return FileRecord(file_id, f"/p/{file_id}.jpg", 1, file_id, 1000, 0, 0, width=400, height=300, format="jpeg",
                      content_hash=bytes([file_id]) * 32, code=code, algo="lbph", algo_version=1, quality=quality)


T = Thresholds(act=24, report=28, min_quality=2.0, rotated=20, crops=True, crop=20)


def test_a_confirmed_crop_edge_counts_within_the_crop_radius_and_is_never_act():
    a, b = _rec(1, (0, 0)), _rec(2, ((1 << 40) - 1, 0))  # frames 40 bits apart
    for d in (0, 12, 20):
        edge = admit(Edge(1, 2, d, CROP_VARIANT, verified=True), a, b, T)
        assert edge == Edge(1, 2, d, CROP_VARIANT, True)
        assert not could_act(a, b, edge, T) and tier_of(a, b, edge, T) == "report"
    assert admit(Edge(1, 2, 21, CROP_VARIANT, verified=True), a, b, T) is None  # beyond the crop radius
    assert admit(Edge(1, 2, 5, CROP_VARIANT, verified=False), a, b, T) is None  # not confirmed: the frames decide
    near = _rec(3, ((1 << 10) - 1, 0))
    assert admit(Edge(1, 3, 5, CROP_VARIANT), a, near, T) == Edge(1, 3, 10, 0, False)


def test_a_crop_edge_counts_only_with_match_crops_and_informative_hashes():
    a, b = _rec(1, (0, 0)), _rec(2, ((1 << 40) - 1, 0))
    off = Thresholds(act=24, report=28, min_quality=2.0, rotated=20)
    assert admit(Edge(1, 2, 5, CROP_VARIANT, verified=True), a, b, off) is None
    flat = _rec(2, ((1 << 40) - 1, 0), quality=0.5)
    assert admit(Edge(1, 2, 5, CROP_VARIANT, verified=True), a, flat, T) is None
    assert Edge(1, 2, 5, CROP_VARIANT).reversed() == Edge(2, 1, 5, CROP_VARIANT)


# -- the windows ------------------------------------------------------------------------------

def grey_thumb(name: str) -> np.ndarray:
    return thumbnail(cv2.cvtColor(photo(name), cv2.COLOR_BGR2GRAY))


def test_windows_are_squares_inside_the_picture_strongest_first_and_deterministic():
    thumb = grey_thumb("astronaut")
    found = windows(thumb)
    assert 8 <= len(found) <= 16 and found == windows(thumb.copy())
    h, w = thumb.shape
    assert all(x >= 0 and y >= 0 and x + s <= w and y + s <= h and s >= MIN_WINDOW for x, y, s in found)
    codes = window_codes(thumb, "lbph")
    assert codes.shape == (len(found), 2) and codes.dtype == np.uint64
    for (x, y, s), code in zip(found, codes):  # each the window's LBPH code, as `fingerprint` computes it
        assert np.array_equal(code, fingerprint(np.ascontiguousarray(thumb[y:y + s, x:x + s]), "lbph").code)
    assert np.array_equal(window_codes(thumb, "lbph", limit=STORED), codes[:STORED])


@pytest.mark.parametrize("thumb", [np.full((200, 300), 128, np.uint8), np.zeros((10, 10), np.uint8),
                                   np.zeros((1, 300), np.uint8), None])
def test_a_picture_without_keypoints_has_no_window_codes(thumb):
    assert window_codes(thumb, "lbph").shape == (0, 2)


def test_a_crop_shares_windows_with_its_original():
    """The point of the windows: at least one window code of the crop is within the crop
    radius of a stored window of the original, while the frames are far apart."""
    for name in PICTURES:
        orig, cut = grey_thumb(name), thumbnail(cv2.cvtColor(crop(photo(name)), cv2.COLOR_BGR2GRAY))
        stored, queries = window_codes(orig, "lbph")[:STORED], window_codes(cut, "lbph")
        best = min(distance(tuple(map(int, q)), tuple(map(int, s))) for q in queries for s in stored)
        assert best <= 20, (name, best)


# -- the batch's brute force against a loop -----------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_crop_batch_hits_match_a_pair_by_pair_loop(seed):
    """`linking.crop_batch_hits` against the definition, pair by pair: the smallest distance of
    f's window codes to g's code, box code and stored windows, and of f's code and box code
    to g's stored windows, where it is within the radius (small codes: many collisions)."""
    from dedupd.daemon.linking import crop_batch_hits

    rng = np.random.default_rng(seed)
    n, stored, radius = 7, 3, 3
    small = lambda *shape: rng.integers(0, 32, size=shape).astype(np.uint64)  # noqa: E731
    codes, box_codes = small(n, 2), small(n, 2)
    has_box = rng.random(n) < 0.4
    queries = [None if rng.random() < 0.2 else small(int(rng.integers(0, 6)), 2) for _ in range(n)]
    f, g, d = crop_batch_hits(codes, box_codes, has_box, queries, stored, radius)
    got = {(int(a), int(b)): int(x) for a, b, x in zip(f, g, d)}

    def dist(x, y) -> int:
        return (int(x[0]) ^ int(y[0])).bit_count() + (int(x[1]) ^ int(y[1])).bit_count()

    want = {}
    for a in range(n):
        for b in range(n):
            if a == b:
                continue
            mine = [] if queries[a] is None else list(queries[a])
            theirs = [] if queries[b] is None else list(queries[b][:stored])
            targets = [codes[b]] + ([box_codes[b]] if has_box[b] else []) + theirs
            ds = [dist(q, t) for q in mine for t in targets]
            ds += [dist(c, t) for c in [codes[a]] + ([box_codes[a]] if has_box[a] else []) for t in theirs]
            if ds and min(ds) <= radius:
                want[(a, b)] = min(ds)
    assert got == want


def test_the_crop_radius_may_not_exceed_the_report_radius(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 's'}\nthresholds: {{report: 28, crop: 30}}\nmatch_crops: true\n")
    with pytest.raises(ConfigError, match="thresholds.crop: must not exceed thresholds.report"):
        load_config(str(cfg))
    cfg.write_text(f"state_dir: {tmp_path / 's'}\nthresholds: {{act: 12, report: 16}}\n")
    assert load_config(str(cfg)).crop_threshold == 16 and not load_config(str(cfg)).match_crops


def test_close_whole_picture_edges_place_files_first_then_confirmed_crops_then_far_matches():
    """A is an original; C a crop of it with its own same-picture copy C2. D, a captioned copy
    of A, is 18 bits from A upright and 4 bits from C through windows: a close whole-picture
    match wins, D joins A. E is a crop of C's picture 6 bits from C through windows (confirmed)
    and 28 bits from A upright (a look-alike distance): the confirmed crop wins, E joins C."""
    from dedupd.daemon.grouping import build_groups
    from dedupd.daemon.keep import keep_key

    def rec(file_id: int, code, width: int) -> FileRecord:
        return _rec(file_id, code).with_(width=width, height=width * 3 // 4)

    a, c, c2 = rec(1, (0, 0), 800), rec(2, ((1 << 50) - 1, 0), 700), rec(3, ((1 << 50) - 1, 0), 600)
    d, e = rec(4, ((1 << 18) - 1, 0), 400), rec(5, ((1 << 28) - 1, 0), 300)
    edges = [Edge(1, 2, 6, CROP_VARIANT, True), Edge(2, 3, 0, 0, True), Edge(1, 3, 7, CROP_VARIANT, True),
             Edge(1, 4, 18, 0, False), Edge(2, 4, 4, CROP_VARIANT, True),
             Edge(1, 5, 28, 0, False), Edge(2, 5, 6, CROP_VARIANT, True)]
    groups = build_groups({r.file_id: r for r in (a, c, c2, d, e)}, edges, T, keep_key(["most_pixels", "shortest_path"]))
    members = {g.keep.file_id: sorted((m.record.file_id, m.variant, m.tier) for m in g.members) for g in groups}
    assert members == {1: [(4, "identity", "report")], 2: [(3, "identity", "act"), (5, "crop", "report")]}
