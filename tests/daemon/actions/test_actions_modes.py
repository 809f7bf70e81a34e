"""Each mode end to end on real photos: execute, quarantine, undo (bytes and metadata
exactly), purge, restore of stubs; and the refusals of undo and restore."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from actions_kit import (check_invariants, make_pair, metadata, quarantine_files, reflink_dir, sha,
                         temp_names, user_xattrs_supported)
from dedupd.daemon.actions import (Executor, Journal, RestoreRefused, UndoRefused, plan_replacement, purge,
                                   restore_stub, select, undo)
from dedupd.daemon.actions.stub import parse

TIER = {"hardlink": "exact", "symlink": "act", "reflink": "act", "stub": "act"}


@pytest.fixture(scope="module")
def clone_dir(tmp_path_factory):
    with reflink_dir(tmp_path_factory.mktemp("clone")) as (where, why):
        yield where, why


@pytest.fixture
def journal(tmp_path):
    with Journal.open(str(tmp_path / "state")) as j:
        yield j


def _pair(kind, tmp_path, clone_dir):
    base = tmp_path
    if kind == "reflink":
        if clone_dir[0] is None:
            pytest.skip(clone_dir[1])
        base = Path(clone_dir[0]) / tmp_path.name
    pair = make_pair(base / "root", TIER[kind])
    os.chmod(pair.target, 0o640)
    os.chmod(pair.keeper, 0o640)  # a hard link has one mode: equal, or the plan falls back
    if user_xattrs_supported(base):
        for p in (pair.target, pair.keeper):
            os.setxattr(p, "user.comment", "Ferien 2019 ✓".encode())
    return pair


def _execute(journal, pair, kind):
    action = pair.plan(kind)
    assert action.kind == kind, action
    outcome = Executor(journal).execute(action)
    assert (outcome.status, outcome.result_path) == ("done", pair.target + (".dedup" if kind == "stub" else ""))
    return action


def _assert_replaced(pair, kind, entry):
    assert os.lstat(entry.quarantine_path).st_ino == pair.target_ino
    assert sha(entry.quarantine_path) == pair.target_hash
    if kind == "hardlink":
        assert os.lstat(pair.target).st_ino == pair.keeper_ino
    elif kind == "symlink":
        assert os.readlink(pair.target) == "../best/keeper.jpg" and sha(pair.target) == pair.keeper_hash
    elif kind == "reflink":
        assert sha(pair.target) == pair.keeper_hash and os.lstat(pair.target).st_ino != pair.keeper_ino
    else:
        stub = parse(Path(pair.target + ".dedup").read_bytes())
        assert not os.path.lexists(pair.target)
        assert (stub.keeper, stub.keeper_sha256, stub.sha256) == (pair.keeper, pair.keeper_hash, pair.target_hash)
        assert (stub.mode, stub.action) == (0o640, entry.action_id)


@pytest.mark.parametrize("kind", ["hardlink", "symlink", "reflink", "stub"])
def test_execute_then_undo_restores_exactly(kind, journal, tmp_path, clone_dir):
    pair = _pair(kind, tmp_path, clone_dir)
    before = metadata(pair.target)
    action = _execute(journal, pair, kind)
    entry = journal.get(action.action_id)
    _assert_replaced(pair, kind, entry)
    check_invariants(journal, pair)
    assert journal.totals()["pending_bytes"] == len(Path(entry.quarantine_path).read_bytes())
    result = undo(journal, action.action_id)
    assert result.path == pair.target and metadata(pair.target) == before  # same inode: same everything
    assert journal.get(action.action_id).state == "undone"
    assert quarantine_files(pair.root) == [] and temp_names(pair.root) == []
    assert not os.path.lexists(pair.target + ".dedup")
    assert sha(pair.keeper) == pair.keeper_hash


@pytest.mark.parametrize("kind", ["hardlink", "symlink", "stub"])
def test_purge_frees_only_after_retention(kind, journal, tmp_path, clone_dir):
    pair = _pair(kind, tmp_path, clone_dir)
    pair_bytes = Path(pair.target).read_bytes()
    action = _execute(journal, pair, kind)
    assert purge(journal, older_than_seconds=3600).entries == []
    assert len(quarantine_files(pair.root)) == 1
    report = purge(journal, older_than_seconds=3600, now=time.time() + 7200)
    assert report.entries == [action.action_id]
    assert report.bytes_freed == journal.get(action.action_id).bytes == len(pair_bytes)
    assert quarantine_files(pair.root) == [] and os.listdir(Path(pair.root) / ".dedupd-quarantine") == []
    assert journal.get(action.action_id).state == "purged"
    totals = journal.totals()
    assert (totals["pending_bytes"], totals["reclaimed_bytes"]) == (0, report.bytes_freed)
    with pytest.raises(UndoRefused, match="purged"):
        undo(journal, action.action_id)


def test_restore_stub_from_quarantine_is_an_undo(journal, tmp_path, clone_dir):
    pair = _pair("stub", tmp_path, clone_dir)
    before = metadata(pair.target)
    action = _execute(journal, pair, "stub")
    assert restore_stub(pair.target + ".dedup", journal) == pair.target
    assert metadata(pair.target) == before and journal.get(action.action_id).state == "undone"


def test_restore_stub_after_purge_copies_the_keeper(journal, tmp_path, clone_dir):
    pair = _pair("stub", tmp_path, clone_dir)
    before = metadata(pair.target)
    action = _execute(journal, pair, "stub")
    purge(journal, older_than_seconds=0)
    Path(pair.target).write_bytes(b"someone else's")
    with pytest.raises(RestoreRefused, match="exists"):
        restore_stub(pair.target + ".dedup", journal)
    os.unlink(pair.target)
    assert restore_stub(pair.target + ".dedup", journal) == pair.target
    now = metadata(pair.target)
    assert now["sha256"] == pair.keeper_hash  # a copy of the keeper: the same picture
    assert (now["mode"], now["uid"], now["gid"], now["mtime_ns"]) == \
        (before["mode"], before["uid"], before["gid"], before["mtime_ns"])
    assert not os.path.lexists(pair.target + ".dedup") and temp_names(pair.root) == []
    assert journal.get(action.action_id).state == "restored"


def test_restore_refuses_a_changed_keeper_and_keeps_the_stub(journal, tmp_path, clone_dir):
    pair = _pair("stub", tmp_path, clone_dir)
    _execute(journal, pair, "stub")
    purge(journal, older_than_seconds=0)
    with open(pair.keeper, "ab") as f:
        f.write(b"edited")
    stub = Path(pair.target + ".dedup").read_bytes()
    with pytest.raises(RestoreRefused, match="keeper .* changed"):
        restore_stub(pair.target + ".dedup", journal)
    assert Path(pair.target + ".dedup").read_bytes() == stub and not os.path.lexists(pair.target)
    assert temp_names(pair.root) == []


def test_restore_without_journal_entry(journal, tmp_path):
    """The journal was lost: a stub still comes back from its keeper."""
    pair = _pair("stub", tmp_path, (None, ""))
    with Journal.open(str(tmp_path / "other-state")) as other:
        _execute(other, pair, "stub")
    assert restore_stub(pair.target + ".dedup", journal) == pair.target
    assert sha(pair.target) == pair.keeper_hash and not os.path.lexists(pair.target + ".dedup")


@pytest.mark.parametrize("kind", ["hardlink", "symlink", "stub"])
def test_undo_refuses_when_the_user_changed_the_result(kind, journal, tmp_path, clone_dir):
    pair = _pair(kind, tmp_path, clone_dir)
    action = _execute(journal, pair, kind)
    changed = pair.target + (".dedup" if kind == "stub" else "")
    os.unlink(changed)
    Path(changed).write_bytes(b"the user's new file")
    with pytest.raises(UndoRefused, match="nothing was"):
        undo(journal, action.action_id)
    assert Path(changed).read_bytes() == b"the user's new file"
    entry = journal.get(action.action_id)
    assert entry.state == "done" and sha(entry.quarantine_path) == pair.target_hash


def test_select_by_path_id_and_time(journal, tmp_path, clone_dir):
    a = _pair("hardlink", tmp_path / "a", clone_dir)
    b = _pair("symlink", tmp_path / "b", clone_dir)
    first, second = _execute(journal, a, "hardlink"), _execute(journal, b, "symlink")
    assert [e.action_id for e in select(journal, path=a.target)] == [first.action_id]
    assert [e.action_id for e in select(journal, action_id=second.action_id)] == [second.action_id]
    assert [e.action_id for e in select(journal, since=0)] == [first.action_id, second.action_id]
    assert select(journal, since=time.time() + 60) == []
    undo(journal, first.action_id)
    assert select(journal, action_id=first.action_id) == [] and select(journal, path=a.target) == []


def test_copies_planned_together_all_link_to_one_keeper(journal, tmp_path):
    """Each hardlink changes the keeper's link count and ctime: the next planned
    action of the same group must still go through (its bytes are re-hashed)."""
    pair = make_pair(tmp_path / "root")
    copies = [pair.target] + [shutil.copy(pair.target, os.path.join(os.path.dirname(pair.target), f"copy{i}.jpg"))
                              for i in range(3)]
    actions = [plan_replacement(c, pair.keeper_hash, pair.keeper, pair.keeper_hash, mode="hardlink",
                                fallback="skip", root=pair.root, tier="exact") for c in copies]
    outcomes = [Executor(journal).execute(a) for a in actions]
    assert [o.status for o in outcomes] == ["done"] * 4
    assert os.lstat(pair.keeper).st_nlink == 5
    assert all(os.lstat(c).st_ino == pair.keeper_ino for c in copies)
    assert len(quarantine_files(pair.root)) == 4 and temp_names(pair.root) == []


def test_every_name_we_change_is_announced_first(journal, tmp_path, clone_dir):
    """The watcher ignores our own writes only if it hears of them before they happen."""
    pair = _pair("stub", tmp_path, clone_dir)
    heard: list[str] = []

    def on_own_write(path):
        if path not in heard:  # the first time a name is heard of, we have not made it yet
            assert not os.path.lexists(path) or path == pair.target
        heard.append(path)

    action = pair.plan("stub")
    Executor(journal, on_own_write=on_own_write).execute(action)
    entry = journal.get(action.action_id)
    assert {entry.quarantine_path, entry.temp_path, pair.target, pair.target + ".dedup"} <= set(heard)
    heard.clear()
    undo(journal, action.action_id, on_own_write=heard.append)
    assert {pair.target, pair.target + ".dedup"} <= set(heard)
