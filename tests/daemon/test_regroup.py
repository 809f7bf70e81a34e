"""Incremental regrouping and the census give what a full regroup and a full count give,
on a real photo library scanned into a real LMDB, through adds, edits, renames, hard
links and deletions."""

from __future__ import annotations

import os
import shutil

import pytest

from dedupd.daemon.config import load_config
from dedupd.daemon.decode_pool import ThreadDecoder
from dedupd.daemon.regroup import GroupCache
from dedupd.daemon.scan import Scanner
from dedupd.daemon.state import open_index
from dedupd.daemon.status import Census
from testimages import encode, make_tree, photo, resize, write


def canonical(groups) -> list:
    return sorted((g.keep.path, sorted((m.record.path, m.tier, m.distance, m.variant) for m in g.members)) for g in groups)


@pytest.fixture()
def scanned(tmp_path):
    tree = make_tree(tmp_path / "photos")
    cfg = tmp_path / "dedupd.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\nroots: [{{path: {tmp_path / 'photos'}}}]\nworkers: 2\n")
    config = load_config(str(cfg))
    index = open_index(config)
    scanner = Scanner(config, index, progress=False, decoder=ThreadDecoder(config.pixel_limit))
    scanner.run()
    yield tree, config, index, scanner
    index.close()


def check_same_as_full(config, index, scanner, paths):
    scanner.run(paths)
    incremental = scanner.regroup()
    fresh = GroupCache(index, config, scanner.thresholds).full()
    assert canonical(incremental) == canonical(fresh)
    counted = Census.count(index.iter_records())
    assert +scanner.census.formats == +counted.formats and +scanner.census.errors == +counted.errors
    return incremental


def test_changes_regroup_only_their_components_and_match_a_full_regroup(scanned, tmp_path):
    tree, config, index, scanner = scanned
    root = tmp_path / "photos"
    before = {g.keep.path: g for g in scanner.regroup()}
    assert len(scanner.groups.take_changed()) == len(before)  # the first regroup made them all
    chelsea_copy = write(root / "new/chelsea_small.jpg", encode(resize(photo("chelsea"), 0.6), ".jpg", 85))
    groups = check_same_as_full(config, index, scanner, [str(chelsea_copy)])
    changed = scanner.groups.take_changed()
    assert [g.keep.path for g in changed] == [str(tree["chelsea"])]  # only chelsea's component
    untouched = [g for g in groups if g.keep.path != str(tree["chelsea"])]
    assert all(g is before[g.keep.path] for g in untouched)  # the other groups are the same objects

    moved = root / "renamed/astro_half.jpg"
    moved.parent.mkdir()
    os.rename(tree["astro_half"], moved)
    check_same_as_full(config, index, scanner, [str(tree["astro_half"]), str(moved)])

    os.link(tree["coffee"], root / "backup/coffee_link.jpg")
    check_same_as_full(config, index, scanner, [str(root / "backup/coffee_link.jpg")])

    write(tree["coffee_webp"], encode(photo("rocket"), ".webp", 80))  # a copy overwritten by another photo
    check_same_as_full(config, index, scanner, [str(tree["coffee_webp"])])

    os.remove(tree["astro"])  # the keeper goes: its copies regroup around another keeper
    shutil.rmtree(root / "stereo")  # a folder goes: a prefix sweep
    groups = check_same_as_full(config, index, scanner, [str(tree["astro"]), str(root / "stereo")])
    assert all(str(tree["astro"]) not in (g.keep.path, *[m.record.path for m in g.members]) for g in groups)


def test_the_census_is_stored_and_trusted_only_when_it_holds(scanned):
    _, config, index, scanner = scanned
    stored = Census.stored(index)
    assert stored is not None and stored.files == len(index) and stored.errors == {"truncated": 1}
    index.delete_many([next(index.iter_records()).file_id])  # a write that bypassed the scanner
    assert Census.stored(index) is None
    assert Census.of_index(index).files == len(index)
