"""dedupctl end to end on a real tree of photos, a real LMDB and the real kernels."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from dedupd.daemon.cli import main
from testimages import make_tree


@pytest.fixture()
def library(tmp_path):
    tree = make_tree(tmp_path / "photos")
    config = tmp_path / "dedupd.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nroots: [{{path: {tmp_path / 'photos'}}}]\nworkers: 2\n")
    return tree, str(config)


def run(config, *args, capsys):
    code = main(["--config", config, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(config, *args, capsys):
    code, out, _ = run(config, *args, "--json", capsys=capsys)
    return code, json.loads(out)


def members_by_path(groups):
    return {m["path"]: (g["keep"], m) for g in groups for m in g["members"]}


def test_scan_groups_and_contract(library, capsys):
    tree, config = library
    code, report = run_json(config, "scan", "--no-progress", capsys=capsys)
    assert code == 1  # one corrupt file: partial
    assert report["fingerprinted"] == len(tree) - 1 and report["errors"] == {"truncated": 1}
    code, data = run_json(config, "groups", capsys=capsys)
    assert code == 0
    for g in data["groups"]:
        assert set(g) == {"id", "keep", "members"} and isinstance(g["id"], str) and os.path.isabs(g["keep"])
        for m in g["members"]:
            assert set(m) == {"path", "distance", "variant", "tier", "verified"} and os.path.isabs(m["path"])
            assert m["tier"] in ("exact", "act", "report") and isinstance(m["distance"], int)
    members = members_by_path(data["groups"])
    astro, coffee = str(tree["astro"]), str(tree["coffee"])
    assert members[str(tree["astro_q75"])][0] == astro and members[str(tree["astro_q75"])][1]["tier"] == "act"
    assert members[str(tree["astro_half"])][1]["tier"] == "act"
    assert members[str(tree["astro_exif6"])][1]["tier"] == "act"  # EXIF-rotated: the same picture
    rot = members[str(tree["astro_rot90"])][1]
    assert rot["tier"] == "report" and rot["variant"] == "rot90"
    keep_of_coffee = members[str(tree["coffee_exact"])][0]
    assert keep_of_coffee == coffee and members[str(tree["coffee_exact"])][1]["tier"] == "exact"
    assert members[str(tree["coffee_webp"])][0] == coffee
    for name in ("astro_q75", "astro_half", "astro_exif6", "coffee_webp"):
        assert members[str(tree[name])][1]["verified"]  # act means pixel-verified
    assert members[str(tree["astro_grey"])][1]["tier"] == "report"  # greyscale is an edit
    assert members.get(str(tree["astro_edit"]), (None, {"tier": "none"}))[1]["tier"] != "act"  # moved region
    # the two stereo shots are different photographs: never act
    for side in ("moto_left", "moto_right"):
        assert members.get(str(tree[side]), (None, {"tier": "none"}))[1]["tier"] != "act"
    assert str(tree["chelsea"]) not in members


def test_second_scan_decodes_nothing_and_renames_are_recognised(library, capsys):
    tree, config = library
    run(config, "scan", "--no-progress", capsys=capsys)
    _, again = run_json(config, "scan", "--no-progress", capsys=capsys)
    assert again["fingerprinted"] == 0 and again["unchanged"] == len(tree)
    moved = tree["chelsea"].with_name("renamed.jpg")
    os.rename(tree["chelsea"], moved)
    os.link(tree["coffee"], tree["coffee"].with_name("coffee_link.jpg"))
    tree["astro_half"].unlink()
    _, third = run_json(config, "scan", "--no-progress", capsys=capsys)
    assert (third["fingerprinted"], third["renamed"], third["linked"], third["removed"]) == (0, 1, 1, 1)
    _, data = run_json(config, "groups", capsys=capsys)
    members = members_by_path(data["groups"])
    assert str(tree["astro_half"]) not in members
    assert str(tree["coffee"].with_name("coffee_link.jpg")) not in members  # same inode as the keeper


def test_changed_file_is_fingerprinted_again(library, capsys):
    tree, config = library
    run(config, "scan", "--no-progress", capsys=capsys)
    shutil.copyfile(tree["chelsea"], tree["astro_q75"])  # same name, other picture
    _, report = run_json(config, "scan", "--no-progress", capsys=capsys)
    assert report["fingerprinted"] == 1
    _, data = run_json(config, "groups", capsys=capsys)
    members = members_by_path(data["groups"])
    assert members.get(str(tree["astro_q75"]), (str(tree["chelsea"]),))[0] == str(tree["chelsea"])


def test_status_query_and_unavailable_root(library, tmp_path, capsys):
    tree, config = library
    run(config, "scan", "--no-progress", capsys=capsys)
    code, status = run_json(config, "status", capsys=capsys)
    assert code == 0 and status["files_indexed"] == len(tree)
    assert status["decode_errors_by_kind"] == {"truncated": 1}
    assert status["members_by_tier"]["exact"] == 1 and status["reclaimable_bytes"]["exact"] == tree["coffee_exact"].stat().st_size
    assert status["images_by_format"]["jpeg"] >= 7 and status["last_scan"]["seen"] == len(tree)
    code, q = run_json(config, "query", str(tree["astro_q75"]), capsys=capsys)
    assert code == 0 and q["matches"][0]["path"] == str(tree["astro_q75"]) and q["matches"][0]["same_file"]
    assert str(tree["astro"]) in {m["path"] for m in q["matches"]}
    shutil.rmtree(tmp_path / "photos")  # an unmounted share
    code, report = run_json(config, "scan", "--no-progress", capsys=capsys)
    assert code == 1 and report["unavailable"] and report["removed"] == 0
    _, status = run_json(config, "status", capsys=capsys)
    assert status["files_indexed"] == len(tree)  # unavailable is not "all deleted"


def test_usage_and_config_errors_exit_2(library, tmp_path, capsys):
    _, config = library
    assert run(config, "frobnicate", capsys=capsys)[0] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("roots: [{path: /x, mode: delete}]\nworkers: -1\n")
    code, _, err = run(str(bad), "scan", capsys=capsys)
    assert code == 2 and "roots[0].mode" in err and "workers" in err
    assert run(config, "scan", str(tmp_path / "nope"), capsys=capsys)[0] == 2


def test_status_before_any_scan_says_what_to_do(library, capsys):
    _, config = library
    code, _, err = run(config, "status", capsys=capsys)
    assert code == 2 and "dedupctl scan" in err


def test_scan_of_one_named_file(library, capsys):
    tree, config = library
    code, report = run_json(config, "scan", "--no-progress", str(tree["coffee"]), capsys=capsys)
    assert code == 0 and report["fingerprinted"] == 1 and report["removed"] == 0


def test_progress_bar_is_drawn_on_a_terminal():
    import io

    from dedupd.daemon.progress import Progress

    out = io.StringIO()
    bar = Progress("fingerprinting", 4, stream=out, enabled=True, interval=0)
    for _ in range(4):
        bar.advance()
    bar.close()
    assert "fingerprinting [" in out.getvalue() and "4/4" in out.getvalue() and out.getvalue().endswith("\n")
    quiet = io.StringIO()
    Progress("x", 3, stream=quiet).advance()  # StringIO is not a terminal: nothing drawn
    assert quiet.getvalue() == ""


# -- the sweep at scale: which records a scan removes, and what it reads to find them --------

def _tiny_library(tmp_path, names):
    """Tiny files under photos/ and a record for each that matches its stat (a scan finds
    them unchanged and decodes nothing), plus two records outside the root."""
    import hashlib

    from dedupd.daemon.config import load_config
    from dedupd.daemon.scan import Scanner
    from dedupd.daemon.state import open_index
    from dedupd.index.records import FileRecord
    from dedupd.kernels import ALGORITHMS

    root = tmp_path / "photos"
    cfg = tmp_path / "dedupd.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\nroots: [{{path: {root}}}]\nworkers: 1\n")
    config = load_config(str(cfg))
    algo = ALGORITHMS[config.algorithm]
    items = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 tiny")
        st = os.lstat(path)
        items.append((str(path), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)))
    items += [("/elsewhere/x.jpg", (1, 1, 10, 5)), ("/elsewhere/y.jpg", (1, 2, 10, 5))]  # files of no root
    index = open_index(config)
    index.put_many([FileRecord(0, p, dev, ino, size, mtime, mtime, 10, 10, "jpeg", hashlib.sha256(p.encode()).digest(),
                               (i + 1, 0), algo.name, algo.version, 0.5) for i, (p, (dev, ino, size, mtime)) in enumerate(items)])
    return root, config, index, Scanner(config, index, progress=False)


NAMES = ["a.jpg", "b.jpg", "sub/c.jpg", "sub/d.jpg", "sub/deeper/e.jpg", "other/f.jpg", "other b/g.jpg"]


class _CountingPathsUnder:
    def __init__(self, index):
        self.index, self.calls = index, 0

    def __getattr__(self, name):
        return getattr(self.index, name)

    def __len__(self):
        return len(self.index)

    def paths_under(self, prefixes):
        self.calls += 1
        return self.index.paths_under(prefixes)


def test_sweep_removes_deleted_files_and_folders_and_keeps_records_outside_the_roots(tmp_path):
    root, config, index, scanner = _tiny_library(tmp_path, NAMES)
    with index:
        assert scanner.run().unchanged == len(NAMES) and len(index) == len(NAMES) + 2
        (root / "b.jpg").unlink()
        shutil.rmtree(root / "sub")  # a folder that vanished: its records are found by their paths
        report = scanner.run()
        assert report.removed == 4 and report.unchanged == len(NAMES) - 4
        left = sorted(r.path for r in index.iter_records())
        assert left == sorted([str(root / n) for n in ("a.jpg", "other/f.jpg", "other b/g.jpg")] +
                              ["/elsewhere/x.jpg", "/elsewhere/y.jpg"])
        assert scanner.census.files == len(left)  # the census followed the removals


def test_a_full_rescan_that_saw_every_record_reads_no_paths(tmp_path):
    root, config, index, _ = _tiny_library(tmp_path, NAMES)
    from dedupd.daemon.scan import Scanner

    with index:
        index.delete_many([r.file_id for r in index.iter_records() if r.path.startswith("/elsewhere/")])
        spy = _CountingPathsUnder(index)
        scanner = Scanner(config, spy, progress=False)
        assert scanner.run().removed == 0 and spy.calls == 0  # every record seen: nothing can be gone
        (root / "other b/g.jpg").unlink()
        assert scanner.run().removed == 1 and spy.calls == 1  # one seen fewer: the paths are read once
        assert scanner.run([str(root / "sub")]).removed == 0 and spy.calls == 2  # a named folder: a partial scan


def test_a_named_folder_and_a_file_in_it_are_looked_at_once(tmp_path):
    from dedupd.daemon.scan import outermost

    root, config, index, scanner = _tiny_library(tmp_path, NAMES)
    with index:
        sub = str(root / "sub")
        report = scanner.run([sub, str(root / "sub/c.jpg"), sub + "/deeper", str(root / "other b/g.jpg"), str(root / "other")])
        assert report.seen == 5 and report.unchanged == 5  # c, d, e under sub; f; g (not under "other")
    gone = str(root / "gone")
    assert outermost([sub, sub + "/c.jpg", gone, gone + "/x.jpg", "/a b", "/a/x"]) == sorted(
        [sub, gone, gone + "/x.jpg", "/a b", "/a/x"])  # a gone folder may have been a file: its names stay


def test_status_from_the_stored_group_totals_equals_the_looked_up_one(library, capsys):
    """The status at start reads the group totals stored with the groups; they must be what
    the stored groups and a lookup of every group file give, and totals whose token does
    not match the groups' (a crash between the writes) must be looked up instead."""
    from dedupd.daemon.config import load_config
    from dedupd.daemon.state import open_index
    from dedupd.daemon.status import (GROUP_TOTALS_KEY, GroupTotals, collect_status, stored_totals,
                                      totals_of_stored_groups)

    tree, config_path = library
    run(config_path, "scan", "--no-progress", capsys=capsys)
    os.link(tree["coffee"], tree["coffee"].with_name("coffee_link.jpg"))  # a second name of the keeper frees nothing
    shutil.copyfile(tree["coffee_exact"], tree["coffee"].with_name("coffee_exact2.jpg"))
    run(config_path, "scan", "--no-progress", capsys=capsys)
    config = load_config(config_path)
    with open_index(config) as index:
        lookups = []

        class Spy:  # the index, counting path lookups
            def __getattr__(self, name):
                return getattr(index, name)

            def __len__(self):
                return len(index)

            def by_paths(self, paths):
                paths = list(paths)
                lookups.append(len(paths))
                return index.by_paths(paths)

        stored = collect_status(config, Spy())
        assert not lookups and stored_totals(index) is not None
        size = tree["coffee_exact"].stat().st_size
        assert stored["reclaimable_bytes"]["exact"] == 2 * size and stored["members_by_tier"]["exact"] >= 2
        groups = list(index.iter_groups())
        from_files = GroupTotals.of_json(groups, {p: (r.dev, r.ino, r.size) for p, r in index.by_paths(
            [p for g in groups for p in [g["keep"]] + [m["path"] for m in g["members"]]]).items()})
        assert from_files == stored_totals(index)
        totals = index.get_meta(GROUP_TOTALS_KEY)
        index.set_meta(GROUP_TOTALS_KEY, dict(totals, token="of other groups", reclaimable={"exact": 1}))
        assert stored_totals(index) is None
        assert totals_of_stored_groups(Spy()) == from_files and lookups
        looked_up = collect_status(config, Spy())
        assert {k: v for k, v in looked_up.items() if k != "index"} == {k: v for k, v in stored.items() if k != "index"}


def test_a_daemon_scanner_stores_the_groups_only_when_asked(library):
    """The daemon's scanner (`autosave_groups` off) keeps the stored groups as they were
    until `save_groups`; then they and their totals are what it holds in memory."""
    from dedupd.daemon.config import load_config
    from dedupd.daemon.decode_pool import ThreadDecoder
    from dedupd.daemon.scan import Scanner
    from dedupd.daemon.state import open_index
    from dedupd.daemon.status import GroupTotals, stored_totals

    tree, config_path = library
    config = load_config(config_path)
    with open_index(config) as index:
        scanner = Scanner(config, index, progress=False, decoder=ThreadDecoder(config.pixel_limit))
        scanner.autosave_groups = False
        groups = scanner.regroup() if scanner.run() else None
        assert groups and scanner.groups_unsaved and list(index.iter_groups()) == [] and stored_totals(index) is None
        assert scanner.save_groups() and not scanner.groups_unsaved and not scanner.save_groups()  # nothing new: no write
        canon = lambda gs: sorted((g["id"], g["keep"], sorted((m["path"], m["tier"]) for m in g["members"])) for g in gs)
        assert canon(index.iter_groups()) == canon(g.to_json() for g in groups)
        assert stored_totals(index) == GroupTotals.of_groups(groups)
        tree["astro_q75"].unlink()
        scanner.run([str(tree["astro_q75"])])
        assert scanner.groups_unsaved and str(tree["astro_q75"]) in {m["path"] for g in index.iter_groups() for m in g["members"]}
        scanner.save_groups()
        assert str(tree["astro_q75"]) not in {m["path"] for g in index.iter_groups() for m in g["members"]}


def test_a_wider_radius_than_the_index_was_built_with_asks_for_a_reindex(library, tmp_path, capsys):
    """Edges are found upright within the report radius and through a rotation or mirror
    within the rotated radius; a config that widens either (or turns match_rotations on for
    an index built without it) is refused with the fix, a narrower one is fine."""
    _, config = library
    base = open(config).read()
    assert run(config, "scan", "--no-progress", capsys=capsys)[0] == 1  # the tree holds one corrupt file

    def with_(extra: str) -> str:
        path = tmp_path / f"c{abs(hash(extra))}.yaml"
        path.write_text(base + extra)
        return str(path)

    assert run(with_("thresholds: {report: 24, rotated: 16}\n"), "status", capsys=capsys)[0] == 0
    code, _, err = run(with_("thresholds: {report: 28, rotated: 24}\n"), "status", capsys=capsys)
    assert code == 2 and "thresholds.rotated" in err and "reindex" in err
    code, _, err = run(with_("thresholds: {report: 30}\n"), "status", capsys=capsys)
    assert code == 2 and "thresholds.report" in err

    other = tmp_path / "other"
    built_without = f"state_dir: {other}\nroots: [{{path: {tmp_path / 'photos'}}}]\nworkers: 2\n"
    (tmp_path / "without.yaml").write_text(built_without + "match_rotations: false\n")
    (tmp_path / "with.yaml").write_text(built_without)
    assert run(str(tmp_path / "without.yaml"), "scan", "--no-progress", capsys=capsys)[0] == 1
    code, _, err = run(str(tmp_path / "with.yaml"), "status", capsys=capsys)
    assert code == 2 and "built without match_rotations" in err
