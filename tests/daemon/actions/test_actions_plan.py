"""plan_replacement: the up-front refusals of SAFETY.md A (rules 4, 9, 14), on real files."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from actions_kit import make_pair, mounted, user_xattrs_supported
from dedupd.daemon.actions import Action, FileState, NotRegular, Plan, Skip, plan_replacement
from dedupd.daemon.errors import Vanished


def test_hardlink_action_and_dry_run(tmp_path):
    pair = make_pair(tmp_path / "root")
    a = pair.plan("hardlink")
    assert isinstance(a, Action) and (a.kind, a.tier, a.root) == ("hardlink", "exact", pair.root)
    assert a.target == FileState.capture(pair.target, pair.target_hash)
    skip = Skip(pair.target, "other_links", "1 other hard link(s)")
    lines = Plan((a,), (skip,)).describe()
    assert lines[0].startswith("hardlink") and pair.target in lines[0] and a.action_id in lines[0]
    assert lines[1] == f"skip     {pair.target}: other_links (1 other hard link(s))"


def test_action_ids_are_unique_and_sortable(tmp_path):
    pair = make_pair(tmp_path / "root")
    ids = [pair.plan("hardlink").action_id for _ in range(20)]
    assert len(set(ids)) == 20 and all(len(i) == 25 and i[8] == "T" for i in ids)


def test_same_inode_and_other_links(tmp_path):
    pair = make_pair(tmp_path / "root")
    os.unlink(pair.keeper)
    os.link(pair.target, pair.keeper)
    assert pair.plan("hardlink").reason == "same_inode"
    pair = make_pair(tmp_path / "root2")
    os.link(pair.target, tmp_path / "elsewhere.jpg")
    for mode in ("hardlink", "symlink", "stub"):
        assert pair.plan(mode).reason == "other_links"


@pytest.mark.parametrize("fallback, expected", [("skip", "metadata_differs"), ("reflink", "reflink"),
                                                ("stub", "stub")])
def test_metadata_differs_uses_the_fallback(fallback, expected, tmp_path):
    pair = make_pair(tmp_path / "root")
    os.chmod(pair.target, 0o600)
    got = pair.plan("hardlink", fallback)
    assert (got.reason if isinstance(got, Skip) else got.kind) == expected
    if isinstance(got, Skip):
        assert got.detail == "mode"


def test_owner_and_xattrs_differ(tmp_path):
    pair = make_pair(tmp_path / "root")
    expected = []
    if os.geteuid() == 0:
        os.chown(pair.target, 65534, 65534)
        expected += ["owner", "group"]
    if user_xattrs_supported(tmp_path):
        os.setxattr(pair.keeper, "user.DOSATTRIB", b"0x20")
        expected.append("xattrs")
    if not expected:
        pytest.skip("neither chown (not root) nor user xattrs are possible here")
    assert pair.plan("hardlink") == Skip(pair.target, "metadata_differs", ", ".join(expected))
    assert pair.plan("symlink").kind == "symlink"  # a symlink keeps no metadata of its own to lose


def test_keeper_on_another_filesystem(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is not a separate filesystem here")
    pair = make_pair(tmp_path / "root")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        far = shutil.copy(pair.keeper, other)

        def plan(mode, fallback="skip"):
            return plan_replacement(pair.target, pair.target_hash, far, pair.keeper_hash, mode=mode,
                                    fallback=fallback, root=pair.root, tier="exact")

        assert plan("hardlink").reason == "cross_device" and plan("reflink").reason == "cross_device"
        assert plan("hardlink", "reflink").reason == "cross_device"  # never copy-and-delete
        assert plan("hardlink", "stub").kind == "stub"
        assert plan("symlink").kind == "symlink" and plan("stub").kind == "stub"


def test_quarantine_on_another_filesystem(tmp_path):
    pair = make_pair(tmp_path / "root")
    with mounted("tmpfs", Path(pair.root) / ".dedupd-quarantine", "size=1m") as where:
        if where is None:
            pytest.skip("needs root to mount a tmpfs over the quarantine folder")
        got = pair.plan("stub")
        assert got.reason == "cross_device" and ".dedupd-quarantine" in got.detail


def test_not_regular_vanished_and_reserved(tmp_path):
    pair = make_pair(tmp_path / "root")
    link = Path(pair.root) / "album" / "link.jpg"
    link.symlink_to(pair.keeper)
    got = plan_replacement(str(link), pair.keeper_hash, pair.keeper, pair.keeper_hash, mode="hardlink",
                           fallback="skip", root=pair.root, tier="exact")
    assert got.reason == "not_regular"
    with pytest.raises(NotRegular):
        FileState.capture(pair.root, b"")
    with pytest.raises(Vanished):
        FileState.capture(pair.root + "/nothing.jpg", b"")
    q = Path(pair.root) / ".dedupd-quarantine" / "x"
    q.mkdir(parents=True)
    inside = shutil.copy(pair.keeper, q)
    got = plan_replacement(pair.target, pair.target_hash, inside, pair.keeper_hash, mode="hardlink",
                           fallback="skip", root=pair.root, tier="exact")
    assert got.reason == "reserved_name"
    os.unlink(pair.target)
    assert pair.plan("hardlink").reason == "vanished"


def test_outside_root_hash_mismatch_and_stub_name_taken(tmp_path):
    pair = make_pair(tmp_path / "root")
    got = plan_replacement(pair.target, pair.target_hash, pair.keeper, pair.keeper_hash, mode="hardlink",
                           fallback="skip", root=str(tmp_path / "elsewhere"), tier="exact")
    assert got.reason == "outside_root"
    act = make_pair(tmp_path / "act", "act")
    got = plan_replacement(act.target, act.target_hash, act.keeper, act.keeper_hash, mode="hardlink",
                           fallback="skip", root=act.root, tier="exact")
    assert got.reason == "changed"  # the exact tier needs equal hashes
    Path(pair.target + ".dedup").write_text("mine")
    assert pair.plan("stub").reason == "name_taken"


def test_bad_arguments_are_programming_errors(tmp_path):
    pair = make_pair(tmp_path / "root")
    with pytest.raises(ValueError):
        pair.plan("copy")


def test_a_folder_that_vanishes_while_planning_is_a_skip_not_a_crash(tmp_path, monkeypatch):
    """The mount lookup resolves the path; a folder renamed away at that moment (the
    security suite's flipping race found it) must give a Skip, never an exception."""
    from dedupd.daemon.actions import fsops

    pair = make_pair(tmp_path / "root", "exact")

    def gone(path):
        raise FileNotFoundError(2, "No such file or directory", path)

    monkeypatch.setattr(fsops, "mount_id", gone)
    plan = plan_replacement(pair.target, pair.target_hash, pair.keeper, pair.keeper_hash,
                            mode="hardlink", fallback="skip", root=pair.root, tier="exact")
    assert isinstance(plan, Skip) and plan.reason == "vanished"
