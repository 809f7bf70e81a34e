"""Letterboxed copies are found through box codes (`FileRecord.box_code`, `dedupd.index.boxes`):
a copy with black bars above and below and its original end in one group, tier report, in
either scan order, across incremental scans, and by the batch join of a large first scan
as by a lookup per file; the alias row goes with the file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dedupd.daemon import scan as scan_module
from dedupd.daemon.grouping import Thresholds, admit, could_act, tier_of
from dedupd.index.boxes import BOX_ALIAS
from dedupd.index.edges import BOX_VARIANT, Edge
from dedupd.index.records import FileRecord
from test_scan_join import JOINED, PER_FILE, canonical, edges_by_path, open_scanner
from testimages import encode, photo, write

PICTURES = ("chelsea", "rocket", "motorcycle_left")  # their letterboxed copies' whole-frame codes: > 28 bits apart
DISTRACTORS = ("camera", "coffee", "astronaut")


def letterbox(img: np.ndarray) -> np.ndarray:
    """Black bars of 12.5 % of the height above and below (`bench/transforms.py` `_letterbox`)."""
    bar = max(1, round(img.shape[0] * 0.125))
    return cv2.copyMakeBorder(img, bar, bar, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def write_originals(root, names=PICTURES + DISTRACTORS, folder="orig") -> None:
    for name in names:
        write(root / f"{folder}/{name}.jpg", encode(photo(name), ".jpg", 92))


def write_copies(root, names=PICTURES, folder="boxed") -> None:
    for name in names:
        write(root / f"{folder}/{name}_lb.jpg", encode(letterbox(photo(name)), ".jpg", 90))


def distance(a, b) -> int:
    return (a[0] ^ b[0]).bit_count() + (a[1] ^ b[1]).bit_count()


def pairs_of(groups) -> dict[tuple[str, str], tuple[str, str]]:
    """{(keeper name, member name): (tier, variant)} of every group member."""
    name = lambda p: p.rsplit("/", 1)[-1]  # noqa: E731
    return {(name(g.keep.path), name(m.record.path)): (m.tier, m.variant) for g in groups for m in g.members}


def assert_letterbox_pairs(groups, names=PICTURES) -> None:
    pairs = pairs_of(groups)
    for n in names:
        got = pairs.get((f"{n}.jpg", f"{n}_lb.jpg")) or pairs.get((f"{n}_lb.jpg", f"{n}.jpg"))
        assert got == ("report", "box"), (n, pairs)
    assert not any(d in k for k in pairs for d in DISTRACTORS), pairs  # no false pair


@pytest.mark.parametrize("copies_first", [False, True])
@pytest.mark.parametrize("join", [PER_FILE, JOINED])
def test_a_letterboxed_copy_and_its_original_are_one_report_group(tmp_path, monkeypatch, copies_first, join):
    root = tmp_path / "photos"
    write_originals(root, folder="b_orig" if copies_first else "a_orig")  # walk order: "a_" first
    write_copies(root, folder="a_boxed" if copies_first else "b_boxed")
    monkeypatch.setattr(scan_module, "BATCH", 2)  # pairs within and across batches
    _, index, scanner = open_scanner(tmp_path, root, "idx", join)
    try:
        scanner.run()
        records = {r.path.rsplit("/", 1)[-1]: r for r in index.iter_records()}
        for n in PICTURES:
            copy, orig = records[f"{n}_lb.jpg"], records[f"{n}.jpg"]
            assert copy.box_code is not None and orig.box_code is None
            assert distance(copy.code, orig.code) > 28  # not found through the frames' codes
            assert distance(copy.box_code, orig.code) <= 28
        assert sorted(index.all_box_codes()[0].tolist()) == sorted(BOX_ALIAS | records[f"{n}_lb.jpg"].file_id
                                                                   for n in PICTURES)
        assert_letterbox_pairs(scanner.regroup())
        assert {e[3] for e in edges_by_path(index)} == {BOX_VARIANT}
    finally:
        index.close()


def test_the_join_finds_the_box_edges_a_lookup_per_file_finds(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    write_originals(root, folder="m_orig")
    write_copies(root, PICTURES[:2], folder="a_boxed")  # before their originals
    write_copies(root, PICTURES[2:], folder="z_boxed")  # after
    write(root / "z_boxed/rocket_lb_small.jpg", encode(letterbox(cv2.resize(photo("rocket"), (300, 200))), ".jpg", 85))
    monkeypatch.setattr(scan_module, "BATCH", 3)
    _, index_a, per_file = open_scanner(tmp_path, root, "a", PER_FILE)
    _, index_b, joined = open_scanner(tmp_path, root, "b", JOINED)
    try:
        report_a, report_b = per_file.run(), joined.run()
        assert edges_by_path(index_a) == edges_by_path(index_b)
        assert canonical(per_file.regroup()) == canonical(joined.regroup())
        assert report_a.edges == report_b.edges >= 5  # two letterboxed copies of rocket: box to box too
        assert_letterbox_pairs(joined.regroup())
    finally:
        index_a.close()
        index_b.close()


@pytest.mark.parametrize("copy_later", [False, True])
@pytest.mark.parametrize("join", [PER_FILE, JOINED])
def test_the_pair_is_found_when_one_side_arrives_in_a_later_scan(tmp_path, copy_later, join):
    root = tmp_path / "photos"
    (write_originals if copy_later else write_copies)(root)
    _, index, scanner = open_scanner(tmp_path, root, "idx", join)
    try:
        scanner.run()
        assert not pairs_of(scanner.regroup())
        (write_copies if copy_later else write_originals)(root)
        scanner.run()
        assert_letterbox_pairs(scanner.regroup())
    finally:
        index.close()


def test_deleting_or_changing_the_letterboxed_file_removes_its_box_row(tmp_path):
    root = tmp_path / "photos"
    write_originals(root)
    write_copies(root)
    _, index, scanner = open_scanner(tmp_path, root, "idx", PER_FILE)
    try:
        scanner.run()
        assert len(index.all_box_codes()[0]) == 3
        (root / "boxed/rocket_lb.jpg").unlink()
        write(root / "boxed/chelsea_lb.jpg", encode(photo("chelsea"), ".jpg", 80))  # the bars are gone
        scanner.run()
        left = index.all_box_codes()[0].tolist()
        assert left == [BOX_ALIAS | index.by_path(str(root / "boxed/motorcycle_left_lb.jpg")).file_id]
        assert index.by_path(str(root / "boxed/chelsea_lb.jpg")).box_code is None
        pairs = pairs_of(scanner.regroup())
        assert pairs[("chelsea.jpg", "chelsea_lb.jpg")][1] == "identity"  # now the same picture upright
        assert not any("rocket" in k[0] or "rocket" in k[1] for k in pairs)
    finally:
        index.close()


def test_photos_without_bars_get_no_box_code(tmp_path):
    root = tmp_path / "photos"
    write_originals(root, names=PICTURES + DISTRACTORS)
    _, index, scanner = open_scanner(tmp_path, root, "idx", PER_FILE)
    try:
        scanner.run()
        assert [r.box_code for r in index.iter_records()] == [None] * 6
        assert len(index.all_box_codes()[0]) == 0
    finally:
        index.close()


# -- grouping of BOX edges --------------------------------------------------------------------

def _rec(file_id: int, code, quality: float = 40.0, **kw) -> FileRecord:
    return FileRecord(file_id, f"/p/{file_id}.jpg", 1, file_id, 1000, 0, 0, width=400, height=300, format="jpeg",
                      content_hash=bytes([file_id]) * 32, code=code, algo="lbph", algo_version=1, quality=quality, **kw)


T = Thresholds(act=24, report=28, min_quality=2.0, rotated=20)


def test_a_box_edge_counts_within_the_report_radius_and_is_never_act():
    a, b = _rec(1, (0, 0)), _rec(2, ((1 << 40) - 1, 0), box_code=(0, 0))  # frames 40 bits apart
    for d in (0, 20, 28):
        edge = admit(Edge(1, 2, d, BOX_VARIANT, verified=True), a, b, T)
        assert edge == Edge(1, 2, d, BOX_VARIANT, True)  # beyond the rotated radius too
        assert not could_act(a, b, edge, T) and tier_of(a, b, edge, T) == "report"
    assert admit(Edge(1, 2, 29, BOX_VARIANT), a, b, T) is None  # beyond the report radius: the frames decide
    near = _rec(3, ((1 << 10) - 1, 0), box_code=(5, 0))
    assert admit(Edge(1, 3, 29, BOX_VARIANT), a, near, T) == Edge(1, 3, 10, 0, False)


def test_a_box_edge_never_counts_for_uninformative_hashes():
    a, flat = _rec(1, (0, 0)), _rec(2, ((1 << 40) - 1, 0), quality=0.5, box_code=(0, 0))
    assert admit(Edge(1, 2, 0, BOX_VARIANT), a, flat, T) is None  # the frames are 40 apart: nothing
    assert Edge(1, 2, 0, BOX_VARIANT).reversed() == Edge(2, 1, 0, BOX_VARIANT)


def test_thin_bars_give_no_box_code():
    """Bars under `BOX_MIN_TRIM` of the picture are not a frame worth a second code."""
    from dedupd.daemon.fingerprinting import BOX_MIN_TRIM, box_code
    from dedupd.daemon.verify import thumbnail

    grey = cv2.cvtColor(photo("rocket"), cv2.COLOR_BGR2GRAY)
    thin = max(1, int(grey.shape[0] * BOX_MIN_TRIM / 2) - 2)  # both bars together: under the minimum
    framed = cv2.copyMakeBorder(grey, thin, thin, 0, 0, cv2.BORDER_CONSTANT, value=0)
    assert box_code(thumbnail(framed), "lbph") is None
    assert box_code(thumbnail(cv2.cvtColor(letterbox(photo("rocket")), cv2.COLOR_BGR2GRAY)), "lbph") is not None
    assert box_code(thumbnail(grey), "lbph") is None


@pytest.mark.parametrize("indexed, asked", [("orig", "boxed"), ("boxed", "orig")])
def test_query_finds_the_other_side_through_a_box_code(tmp_path, indexed, asked):
    """`dedupctl query`: a letterboxed file finds its indexed original through its box code,
    an original finds its indexed letterboxed copy through the copy's box row."""
    from dedupd.daemon.query import query_file

    root = tmp_path / "photos"
    write_originals(root, names=("rocket", "camera"))
    write_copies(root, names=("rocket",))
    config, index, scanner = open_scanner(tmp_path, root / indexed, "idx", PER_FILE)
    try:
        scanner.run()
        target = root / ("boxed/rocket_lb.jpg" if asked == "boxed" else "orig/rocket.jpg")
        matches = query_file(config, index, str(target))
        assert [(m["path"].rsplit("/", 1)[-1], m["variant"], m["tier"]) for m in matches] == \
            [("rocket.jpg" if asked == "boxed" else "rocket_lb.jpg", "box", "report")]
    finally:
        index.close()
