"""Recovery of states a plain crash cannot reach alone: somebody else acted on the
files while an action was unfinished. The action is stopped in-process by an
injected exception the executor does not handle (as a crash would stop it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from actions_kit import check_invariants, make_pair, quarantine_files, sha, temp_names
from dedupd.daemon import failpoints
from dedupd.daemon.actions import Executor, Journal, recover


class Crash(Exception):
    """Not an OSError: the executor lets it through, leaving the entry unfinished."""


@pytest.fixture
def journal(tmp_path):
    with Journal.open(str(tmp_path / "state")) as j:
        yield j


def _stop_at(journal, pair, kind, failpoint, watcher=lambda p: None):
    action = pair.plan(kind)
    with failpoints.inject(failpoint, Crash()), pytest.raises(Crash):
        Executor(journal, on_own_write=watcher).execute(action)
    return journal.get(action.action_id)


def _replace_file(path: str, payload: bytes) -> None:
    Path(path + ".new").write_bytes(payload)
    os.replace(path + ".new", path)


def test_a_foreign_file_under_our_temp_name_is_never_deleted(journal, tmp_path):
    pair = make_pair(tmp_path / "root")
    entry = _stop_at(journal, pair, "hardlink", "hardlink.staged")
    os.unlink(entry.temp_path)
    Path(entry.temp_path).write_bytes(b"not ours")
    report = recover(journal)
    assert len(report.problems) == 1 and "not ours" in report.problems[0]
    assert Path(entry.temp_path).read_bytes() == b"not ours"
    assert journal.get(entry.action_id).state == "staged"  # left for a human, still unfinished


def test_an_unavailable_root_waits(journal, tmp_path):
    pair = make_pair(tmp_path / "root", "act")
    entry = _stop_at(journal, pair, "stub", "stub.quarantined")
    os.rename(pair.root, str(tmp_path / "unmounted"))
    report = recover(journal)
    assert "unavailable" in report.problems[0] and journal.get(entry.action_id).state == "quarantined"
    os.rename(str(tmp_path / "unmounted"), pair.root)
    assert recover(journal).rolled_back == [entry.action_id]
    check_invariants(journal, pair)
    assert os.lstat(pair.target).st_ino == pair.target_ino and quarantine_files(pair.root) == []


@pytest.mark.parametrize("kind, failpoint", [("symlink", "symlink.exchanged"), ("hardlink", "hardlink.exchanged"),
                                             ("stub", "stub.target_moved")])
def test_a_file_saved_during_the_swap_goes_back_to_its_name(kind, failpoint, journal, tmp_path):
    """The swap moved a newer file onto our temp name, then the process died: recovery
    puts it back over our replacement and keeps the original in quarantine."""
    pair = make_pair(tmp_path / "root", "act" if kind != "hardlink" else "exact")
    newer = b"newer " + Path(pair.target).read_bytes()

    def watcher(path):
        if path == pair.target and not Path(pair.target).read_bytes().startswith(b"newer"):
            _replace_file(pair.target, newer)

    entry = _stop_at(journal, pair, kind, failpoint, watcher)
    report = recover(journal)
    assert report.rolled_back == [entry.action_id] and report.problems == []
    after = journal.get(entry.action_id)
    assert (after.state, after.reason, after.quarantine_kept) == ("rolled_back", "changed", True)
    assert Path(pair.target).read_bytes() == newer and not os.path.islink(pair.target)
    assert sha(after.quarantine_path) == pair.target_hash
    assert temp_names(pair.root) == [] and not os.path.lexists(pair.target + ".dedup")
    check_invariants(journal, pair)


def test_a_target_deleted_meanwhile_comes_back_from_quarantine(journal, tmp_path):
    pair = make_pair(tmp_path / "root")
    entry = _stop_at(journal, pair, "hardlink", "hardlink.quarantined")
    os.unlink(pair.target)
    assert recover(journal).rolled_back == [entry.action_id]
    assert os.lstat(pair.target).st_ino == pair.target_ino and sha(pair.target) == pair.target_hash
    assert quarantine_files(pair.root) == []
    check_invariants(journal, pair)


def test_a_target_replaced_meanwhile_is_left_and_the_original_kept(journal, tmp_path):
    pair = make_pair(tmp_path / "root")
    entry = _stop_at(journal, pair, "hardlink", "hardlink.staged")
    _replace_file(pair.target, b"the user's edit")
    assert recover(journal).rolled_back == [entry.action_id]
    after = journal.get(entry.action_id)
    assert after.quarantine_kept and sha(after.quarantine_path) == pair.target_hash
    assert Path(pair.target).read_bytes() == b"the user's edit" and temp_names(pair.root) == []
    check_invariants(journal, pair)


def test_a_stub_replaced_by_a_new_file_with_a_reused_inode_is_not_ours(journal, tmp_path):
    """ext4 reuses inode numbers: only the content says a stub is ours."""
    pair = make_pair(tmp_path / "root", "act")
    entry = _stop_at(journal, pair, "stub", "stub.final_linked")
    stub = pair.target + ".dedup"
    os.unlink(stub)
    Path(stub).write_bytes(b"my notes, not a stub\n")
    assert recover(journal).rolled_back == [entry.action_id]
    assert Path(stub).read_bytes() == b"my notes, not a stub\n"
    assert os.lstat(pair.target).st_ino == pair.target_ino
    check_invariants(journal, pair)


def test_a_removed_folder_resolves_with_the_original_kept(journal, tmp_path):
    pair = make_pair(tmp_path / "root")
    entry = _stop_at(journal, pair, "hardlink", "hardlink.staged")
    shutil.rmtree(os.path.dirname(pair.target))
    assert recover(journal).rolled_back == [entry.action_id]
    after = journal.get(entry.action_id)
    assert (after.state, after.reason, after.quarantine_kept) == ("rolled_back", "vanished", True)
    assert sha(after.quarantine_path) == pair.target_hash
