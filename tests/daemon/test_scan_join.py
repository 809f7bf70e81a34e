"""A scan that links its files by one batch join (`Scanner.join_min_files`, `selfjoin`)
stores the same edges and groups as a lookup per file, and a crash between storing the
fingerprints and the join loses no edge (the `edges_pending` marker)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dedupd.daemon import linking
from dedupd.daemon import scan as scan_module
from dedupd.daemon.config import load_config
from dedupd.daemon.decode_pool import ThreadDecoder
from dedupd.daemon.regroup import GroupCache
from dedupd.daemon.linking import PENDING_KEY, PendingEdges
from dedupd.daemon.scan import Scanner
from dedupd.daemon.state import open_index
from testimages import encode, make_tree, photo, resize, write

PER_FILE, JOINED = 10**9, 0  # join_min_files: never join / always join


def dihedral_copies(root) -> None:
    """Rotated, mirrored and cropped copies of a few photos in several folders: edges through
    every variant, within and across batches."""
    for name in ("rocket", "camera", "coffee"):
        img = photo(name)
        copies = {"rot180": np.rot90(img, 2), "flip_h": img[:, ::-1], "transpose": img.transpose(1, 0, 2),
                  "rot270": np.rot90(img, 1), "crop": img[10:-12, 8:-9], "small": resize(img, 0.6)}
        write(root / f"orig/{name}.jpg", encode(img, ".jpg", 93))
        for i, (kind, copy) in enumerate(copies.items()):
            write(root / f"set{i % 3}/{name}_{kind}.jpg", encode(np.ascontiguousarray(copy), ".jpg", 88))


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "photos"
    make_tree(root)
    dihedral_copies(root)
    return root


@pytest.fixture()
def small_batches(monkeypatch):
    monkeypatch.setattr(scan_module, "BATCH", 4)  # ~12 batches: most pairs cross a batch boundary


def open_scanner(tmp_path, root, name: str, join_min_files: int):
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(f"state_dir: {tmp_path / name}\nroots: [{{path: {root}}}]\nworkers: 2\n")
    config = load_config(str(cfg))
    index = open_index(config)
    scanner = Scanner(config, index, progress=False, decoder=ThreadDecoder(config.pixel_limit))
    scanner.join_min_files = join_min_files
    return config, index, scanner


def edges_by_path(index) -> set[tuple]:
    path = {r.file_id: r.path for r in index.iter_records()}
    return {(path[e.a], path[e.b], e.distance, e.variant, e.verified) for e in index.iter_edges()}


def canonical(groups) -> list:
    return sorted((g.keep.path, sorted((m.record.path, m.tier, m.distance, m.variant) for m in g.members)) for g in groups)


def state(index, scanner) -> tuple:
    ids = sorted((r.path, r.file_id) for r in index.iter_records())
    return ids, edges_by_path(index), canonical(scanner.regroup())


def test_a_joined_scan_stores_what_a_lookup_per_file_stores(tmp_path, tree, small_batches):
    _, index_a, per_file = open_scanner(tmp_path, tree, "a", PER_FILE)
    _, index_b, joined = open_scanner(tmp_path, tree, "b", JOINED)
    try:
        report_a, report_b = per_file.run(), joined.run()
        a, b = state(index_a, per_file), state(index_b, joined)
        assert a == b  # same ids (files are stored in walk order), edges and groups
        assert report_a.edges == report_b.edges and report_a.verified == report_b.verified
        assert {v for *_, v, _ in a[1]} >= {0, 2, 4, 6}  # upright, rot180, flip_h, transpose edges
        assert len(a[2]) >= 3

        # a second scan: new files, a changed file, files touched with the same content
        # (same code: other files' lookups saw it all along) and a file that is gone
        img = photo("rocket")
        write(tree / "later/rocket_flip_v.jpg", encode(np.ascontiguousarray(img[::-1]), ".jpg", 90))
        write(tree / "later/rocket_q60.jpg", encode(img, ".jpg", 60))
        write(tree / "set2/coffee_transpose.jpg", encode(photo("chelsea"), ".jpg", 85))  # content replaced
        for p in ("orig/camera.jpg", "set0/rocket_rot180.jpg", "set1/coffee_crop.jpg"):
            os.utime(tree / p, ns=(1_650_000_000_000_000_000, 1_650_000_000_000_000_000))
        os.remove(tree / "set0/camera_rot180.jpg")
        report_a, report_b = per_file.run(), joined.run()
        assert report_a.fingerprinted == report_b.fingerprinted == 6
        assert state(index_a, per_file) == state(index_b, joined)
        assert report_a.edges == report_b.edges
    finally:
        index_a.close()
        index_b.close()



def run_killed_before_the_join(scanner, monkeypatch) -> None:
    """Run `scanner` as if the process died when the join was due (its batches stored)."""
    def die(*args, **kwargs):
        raise RuntimeError("killed before the join")

    with monkeypatch.context() as m:
        m.setattr(linking, "variant_join", die)
        with pytest.raises(RuntimeError):
            scanner.run()

def test_a_crash_before_the_join_loses_no_edge(tmp_path, tree, small_batches, monkeypatch):
    _, clean_index, clean = open_scanner(tmp_path, tree, "clean", JOINED)
    config, index, crashed = open_scanner(tmp_path, tree, "crash", JOINED)
    try:
        clean.run()
        want = edges_by_path(clean_index)

        run_killed_before_the_join(crashed, monkeypatch)
        marker = PendingEdges.load(index)
        assert marker and all(r.file_id in marker for r in index.iter_records() if r.code is not None)
        assert edges_by_path(index) < want  # only the pairs within a batch were stored

        # a daemon round naming one folder: its pending files are linked, the others stay pending
        again = Scanner(config, index, progress=False, decoder=crashed.decoder)
        again.join_min_files = PER_FILE
        again.run([str(tree / "set1")])
        marker = PendingEdges.load(index)
        under = {r.file_id for r in index.iter_records() if r.path.startswith(str(tree / "set1") + os.sep)}
        assert marker and not any(i in marker for i in under)

        # the next full scan fingerprints the pending files again and finds every edge;
        # both ways of linking agree on it
        _, twin_index, twin = open_scanner(tmp_path, tree, "twin", JOINED)
        run_killed_before_the_join(twin, monkeypatch)
        twin.run([str(tree / "set1")])
        twin.join_min_files = JOINED
        report = again.run()
        twin_report = twin.run()
        assert report.fingerprinted == twin_report.fingerprinted > 0
        assert index.get_meta(PENDING_KEY) is None and twin_index.get_meta(PENDING_KEY) is None
        recovered = edges_by_path(index)
        # every pair of the clean scan has its edge again; its distance and variant may be
        # those of the other file's variants (both files were fingerprinted again, each
        # sees the other: the later one's lookup is what the clean scan stored)
        assert {e[:2] for e in recovered} >= {e[:2] for e in want}
        assert recovered == edges_by_path(twin_index)
        assert canonical(again.regroup()) == canonical(twin.regroup())
        assert canonical(GroupCache(index, config, again.thresholds).full()) == canonical(again.regroup())
        twin_index.close()
    finally:
        clean_index.close()
        index.close()


def test_a_crashed_rescan_marks_the_files_it_fingerprinted_again(tmp_path, tree, small_batches, monkeypatch):
    config, index, scanner = open_scanner(tmp_path, tree, "idx", JOINED)
    try:
        scanner.run()
        moved = tree / "set2/coffee_transpose.jpg"
        old_id = index.by_path(str(moved)).file_id
        write(moved, encode(photo("camera"), ".jpg", 80))  # now a copy of camera.jpg: new edges, the old ones dropped
        write(tree / "later/camera_q70.jpg", encode(photo("camera"), ".jpg", 70))

        run_killed_before_the_join(scanner, monkeypatch)
        marker = PendingEdges.load(index)
        new_id = index.by_path(str(tree / "later/camera_q70.jpg")).file_id
        assert old_id in marker and new_id in marker and old_id in marker.ids
        camera = str(tree / "orig/camera.jpg")
        assert not any(camera in e[:2] and str(moved) in e[:2] for e in edges_by_path(index))  # not linked yet

        report = scanner.run()
        assert report.fingerprinted >= 2 and index.get_meta(PENDING_KEY) is None
        linked = {frozenset(e[:2]) for e in edges_by_path(index)}
        assert frozenset((camera, str(moved))) in linked
        assert frozenset((camera, str(tree / "later/camera_q70.jpg"))) in linked
    finally:
        index.close()
