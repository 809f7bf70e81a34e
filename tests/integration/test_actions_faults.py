"""Fault injection for the executor (SAFETY.md E): real EXDEV, EACCES, EROFS, ENOSPC
where this machine can make them, injected ENOSPC and EMLINK, and files that vanish,
change or are replaced under us. Every case: the outcome is aborted with the right
reason, no byte is lost, no temp name remains, the journal entry is terminal."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon" / "actions"))
from actions_kit import (Pair, check_invariants, make_pair, metadata, mounted, quarantine_files,  # noqa: E402
                         reflink_dir, reflink_works, sha, temp_names)

from dedupd.daemon import failpoints  # noqa: E402
from dedupd.daemon.actions import Executor, FileState, Journal, Skip, undo  # noqa: E402
from dedupd.daemon.actions.build import REFLINK_MESSAGE  # noqa: E402

KINDS = ("hardlink", "symlink", "reflink", "stub")
ROOT_ONLY = "needs root (mount)"


@pytest.fixture
def journal(tmp_path):
    with Journal.open(str(tmp_path / "state")) as j:
        yield j


def _aborted(journal: Journal, pair: Pair, outcome, reason: str) -> None:
    """The common assertions of every fault."""
    assert (outcome.status, outcome.reason) == ("aborted", reason), outcome
    entry = journal.get(outcome.action_id)
    assert entry.state == "aborted" and entry.reason == reason
    check_invariants(journal, pair)
    assert temp_names(pair.root) == []


def _untouched(pair: Pair) -> None:
    """Nothing changed: the original inode at its name, no quarantine, no stub."""
    assert os.lstat(pair.target).st_ino == pair.target_ino and sha(pair.target) == pair.target_hash
    assert quarantine_files(pair.root) == [] and not os.path.lexists(pair.target + ".dedup")


def test_exdev_keeper_on_another_filesystem(journal, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is not a separate filesystem here")
    pair = make_pair(tmp_path / "root")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        far = os.path.join(other, "keeper.jpg")
        shutil.copyfile(pair.keeper, far)
        far_state = FileState.capture(far, pair.keeper_hash)
        plan = pair.plan("hardlink")
        # The plan refuses up front (rule 4) ...
        assert _plan_with_keeper(pair, far, "hardlink").reason == "cross_device"
        assert _plan_with_keeper(pair, far, "reflink").reason == "cross_device"
        assert _plan_with_keeper(pair, far, "hardlink", fallback="stub").kind == "stub"
        # ... and an action made stale by a moved keeper fails at link() with a real EXDEV.
        outcome = Executor(journal).execute(dataclasses.replace(plan, keeper=far_state))
    assert (outcome.status, outcome.reason) == ("aborted", "exdev")
    assert journal.get(outcome.action_id).state == "aborted"
    _untouched(pair)
    assert temp_names(pair.root) == []


def _plan_with_keeper(pair: Pair, keeper: str, mode: str, fallback: str = "skip"):
    from dedupd.daemon.actions import plan_replacement

    return plan_replacement(pair.target, pair.target_hash, keeper, pair.keeper_hash, mode=mode,
                            fallback=fallback, root=pair.root, tier="exact")


@contextlib.contextmanager
def _unprivileged():
    """Run as `nobody` (root may write anywhere, so a read-only folder needs another user)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_eacces_read_only_folder(journal):
    base = tempfile.mkdtemp(prefix="dedupd-eacces-")  # outside pytest's 0700 tmp: nobody must reach it
    try:
        os.chmod(base, 0o755)
        pair = make_pair(os.path.join(base, "root"))
        if os.geteuid() == 0:
            for dirpath, dirnames, filenames in os.walk(base):
                for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
                    os.chown(n, 65534, 65534)
            pair = make_pair_states(pair)
        action = pair.plan("hardlink")
        os.chmod(os.path.dirname(pair.target), 0o555)
        with _unprivileged():
            outcome = Executor(journal).execute(action)
        os.chmod(os.path.dirname(pair.target), 0o755)
        _aborted(journal, pair, outcome, "eacces")
        _untouched(pair)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def make_pair_states(pair: Pair) -> Pair:
    """After a chown the planned states must be taken again (ctime and owner changed)."""
    return dataclasses.replace(pair, target_ino=os.lstat(pair.target).st_ino)


def test_erofs_read_only_filesystem(journal, tmp_path):
    with mounted("tmpfs", tmp_path / "mnt", "size=4m") as where:
        if where is None:
            pytest.skip(f"EROFS {ROOT_ONLY}: cannot mount a tmpfs to remount read-only")
        pair = make_pair(Path(where) / "root")
        action = pair.plan("hardlink")
        subprocess.run(["mount", "-o", "remount,ro", where], check=True)
        outcome = Executor(journal).execute(action)
        _aborted(journal, pair, outcome, "erofs")
        _untouched(pair)


def test_enospc_full_filesystem_stub(journal, tmp_path):
    with mounted("tmpfs", tmp_path / "mnt", "size=256k") as where:
        if where is None:
            pytest.skip(f"ENOSPC {ROOT_ONLY}: cannot mount a small tmpfs to fill")
        pair = make_pair(Path(where) / "root", "act")
        action = pair.plan("stub")
        with pytest.raises(OSError) as full, open(Path(where) / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        assert full.value.errno == errno.ENOSPC
        outcome = Executor(journal).execute(action)
        _aborted(journal, pair, outcome, "enospc")
        _untouched(pair)


@pytest.mark.parametrize("kind", KINDS)
def test_enospc_injected_while_building(kind, journal, tmp_path):
    """ENOSPC right after the temp name was made: it is removed and the quarantine link too."""
    pair = make_pair(tmp_path / "root", "exact" if kind == "hardlink" else "act")
    action = pair.plan(kind)
    with failpoints.inject(f"{kind}.temp_created", OSError(errno.ENOSPC, "No space left on device")):
        outcome = Executor(journal).execute(action)
    _aborted(journal, pair, outcome, "enospc")
    _untouched(pair)


def test_emlink_injected(journal, tmp_path):
    pair = make_pair(tmp_path / "root")
    action = pair.plan("hardlink")
    # the failpoint right before link(keeper, temp): as if the keeper had 65,000 links
    with failpoints.inject("hardlink.quarantined", OSError(errno.EMLINK, "Too many links")):
        outcome = Executor(journal).execute(action)
    _aborted(journal, pair, outcome, "emlink")
    _untouched(pair)


def test_target_vanished_before_execute(journal, tmp_path):
    pair = make_pair(tmp_path / "root")
    action = pair.plan("hardlink")
    os.unlink(pair.target)
    outcome = Executor(journal).execute(action)
    assert (outcome.status, outcome.reason) == ("aborted", "vanished")
    assert journal.get(outcome.action_id).state == "aborted"
    assert temp_names(pair.root) == [] and quarantine_files(pair.root) == []
    assert sha(pair.keeper) == pair.keeper_hash


@pytest.mark.parametrize("kind", ("hardlink", "stub"))
def test_target_modified_between_plan_and_execute(kind, journal, tmp_path):
    pair = make_pair(tmp_path / "root")
    action = pair.plan(kind)
    data = bytearray(Path(pair.target).read_bytes())
    data[-3] ^= 0xFF  # same size, other bytes, new mtime
    Path(pair.target).write_bytes(bytes(data))
    outcome = Executor(journal).execute(action)
    pair = dataclasses.replace(pair, target_hash=sha(pair.target))
    _aborted(journal, pair, outcome, "changed")
    _untouched(pair)


def test_keeper_changed(journal, tmp_path):
    pair = make_pair(tmp_path / "root", "act")
    action = pair.plan("symlink")
    with open(pair.keeper, "ab") as f:
        f.write(b"appended")
    outcome = Executor(journal).execute(action)
    pair = dataclasses.replace(pair, keeper_hash=sha(pair.keeper))
    _aborted(journal, pair, outcome, "changed")
    _untouched(pair)


def _replace_file(path: str, payload: bytes) -> None:
    """What an editor does: write a new file, rename it over the old one (new inode)."""
    Path(path + ".new").write_bytes(payload)
    os.replace(path + ".new", path)


@pytest.mark.parametrize("kind", ("hardlink", "symlink", "stub"))
@pytest.mark.parametrize("moment", ("before_check", "after_check"))
def test_target_replaced_between_verify_and_swap(kind, moment, journal, tmp_path):
    """A new file put at the target's name is never overwritten: before the last check
    it is caught by the check; after it, by the inode check of the swap, which is
    reversed. The original stays in quarantine (the entry says so)."""
    pair = make_pair(tmp_path / "root", "act")
    action = pair.plan(kind)
    newer = b"newer " + Path(pair.target).read_bytes()
    trigger = action.target.path if moment == "after_check" else \
        os.path.join(os.path.dirname(pair.target), ".dedupd-tmp-" + action.action_id)

    def watcher(path: str) -> None:
        if path == trigger and not Path(pair.target).read_bytes().startswith(b"newer"):
            _replace_file(pair.target, newer)

    outcome = Executor(journal, on_own_write=watcher).execute(action)
    assert (outcome.status, outcome.reason) == ("aborted", "changed")
    entry = journal.get(outcome.action_id)
    assert entry.state == "aborted" and entry.quarantine_kept
    assert Path(pair.target).read_bytes() == newer and not os.path.islink(pair.target)
    assert sha(entry.quarantine_path) == pair.target_hash  # the original, kept
    check_invariants(journal, pair)
    assert not os.path.lexists(pair.target + ".dedup")


def test_reflink_real_probe(journal, tmp_path):
    """FICLONE on this machine's tmp: where it cannot clone, a clear abort and nothing changed."""
    if reflink_works(tmp_path):
        pytest.skip("this filesystem clones files: covered by test_reflink_clone_keeps_metadata")
    pair = make_pair(tmp_path / "root")
    outcome = Executor(journal).execute(pair.plan("reflink"))
    _aborted(journal, pair, outcome, "reflink_unsupported")
    assert REFLINK_MESSAGE in outcome.detail
    _untouched(pair)


def test_reflink_clone_keeps_metadata(journal, tmp_path):
    """On a filesystem that clones (here or a loop-mounted XFS image): the clone has the
    keeper's bytes and the target's mode, times and xattrs; undo brings the original back."""
    with reflink_dir(tmp_path) as (where, why):
        if where is None:
            pytest.skip(why)
        pair = make_pair(Path(where) / "root", "act")
        os.chmod(pair.target, 0o640)
        os.setxattr(pair.target, "user.comment", b"holiday")
        pair = dataclasses.replace(pair, target_ino=os.lstat(pair.target).st_ino)
        before = metadata(pair.target)
        action = pair.plan("reflink")
        assert not isinstance(action, Skip), action
        outcome = Executor(journal).execute(action)
        assert outcome.status == "done", outcome
        now = metadata(pair.target)
        assert now["sha256"] == pair.keeper_hash and now["ino"] not in (pair.target_ino, pair.keeper_ino)
        assert {k: now[k] for k in ("mode", "uid", "gid", "mtime_ns", "xattrs")} == \
            {k: before[k] for k in ("mode", "uid", "gid", "mtime_ns", "xattrs")}
        check_invariants(journal, pair)
        undo(journal, action.action_id)
        assert metadata(pair.target) == before


def test_stub_name_taken_after_planning(journal, tmp_path):
    pair = make_pair(tmp_path / "root", "act")
    action = pair.plan("stub")
    Path(pair.target + ".dedup").write_bytes(b"the user's own .dedup file")
    outcome = Executor(journal).execute(action)
    _aborted(journal, pair, outcome, "name_taken")
    assert Path(pair.target + ".dedup").read_bytes() == b"the user's own .dedup file"
    assert os.lstat(pair.target).st_ino == pair.target_ino and quarantine_files(pair.root) == []


@pytest.mark.parametrize("kind", ("hardlink", "stub"))
def test_an_error_after_the_swap_is_completed_by_recovery(kind, journal, tmp_path):
    """Past the swap nothing is undone in-process: the entry stays unfinished and
    recovery rolls it forward from what the disk holds."""
    from dedupd.daemon.actions import recover

    pair = make_pair(tmp_path / "root", "exact" if kind == "hardlink" else "act")
    action = pair.plan(kind)
    with failpoints.inject(f"{kind}.old_removed", OSError(errno.EIO, "Input/output error")):
        outcome = Executor(journal).execute(action)
    assert (outcome.status, outcome.reason) == ("aborted", "io_error") and "recovery" in outcome.detail
    assert journal.get(action.action_id).state == "staged"
    assert recover(journal).rolled_forward == [action.action_id]
    assert journal.get(action.action_id).state == "done"
    check_invariants(journal, pair)
