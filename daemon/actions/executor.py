"""The replace protocol of SAFETY.md section A, one action at a time.

1. names; journal `intent` (committed)            failpoint <kind>.intent
2. re-verify both files from O_NOFOLLOW descriptors  <kind>.verified
3. link the target's inode into the quarantine      <kind>.quarantine_linked
   (same inode, no copy); fsync; journal            <kind>.quarantined
4. build the replacement under the temp name         <kind>.temp_created (reflink: .cloned)
   (build.py); fsync; journal `staged`               <kind>.staged
5. swap (see below); fsync the directory; journal    <kind>.swapped
6. journal `done`                                    <kind>.done

The swap (hardlink, symlink, reflink): `renameat2(RENAME_EXCHANGE)` of the temp
name and the target, so the target's name never disappears and the old entry lands
on the temp name, where we check it is still the verified inode before unlinking
it (its bytes stay in quarantine). Were it another file (replaced between our
check and the exchange), the exchange is reversed: nothing of the user's is lost.
Where the filesystem has no RENAME_EXCHANGE, a plain rename right after the
re-check. Stub: link temp -> `<name>.dedup` (fails if taken), unlink the temp,
move the target onto the temp name (RENAME_NOREPLACE), check it is the verified
inode, unlink it.

`execute` never raises for a per-file problem: it undoes what it did and returns an
aborted `Outcome` with a reason kind. It raises only for journal failures (the
entry then stays unfinished and `recover()` resolves it at the next start). An
error after the swap (an fsync, the unlink of the old name) is never undone: the
entry stays unfinished and recovery completes it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Callable

from dedupd.daemon.config.schema import QUARANTINE_DIR

from . import fsops
from .build import BuildFailed, build
from .context import Names, Run
from .identity import holds_stub
from .journal import Journal
from .plan import Action
from .recheck import Changed, check_same_bytes, open_verified, still_original

_COMMON = ("intent", "verified", "quarantine_linked", "quarantined", "temp_created")
_RENAME_SWAP = ("staged", "pre_swap", "exchanged", "old_removed", "swapped", "done")
_STUB_SWAP = ("staged", "pre_swap", "final_linked", "temp_removed", "target_moved", "old_removed",
              "swapped", "done")
STEPS = {
    "hardlink": _COMMON + _RENAME_SWAP,
    "symlink": _COMMON + _RENAME_SWAP,
    "reflink": _COMMON + ("cloned",) + _RENAME_SWAP,
    "stub": _COMMON + _STUB_SWAP,
}
# Every failpoint the executor passes, in order: the crash tests enumerate this list.
FAILPOINTS = tuple(f"{kind}.{step}" for kind, steps in STEPS.items() for step in steps)
_REASONS = {errno.ENOENT: "vanished", errno.EMLINK: "emlink", errno.EXDEV: "exdev", errno.EACCES: "eacces",
            errno.EPERM: "eacces", errno.EROFS: "erofs", errno.ENOSPC: "enospc", errno.EDQUOT: "enospc",
            errno.ELOOP: "changed", errno.ENOTDIR: "changed", errno.EEXIST: "name_taken", errno.EIO: "io_error"}


@dataclass(frozen=True)
class Outcome:
    action_id: str
    status: str  # done | aborted
    reason: str = ""
    detail: str = ""
    result_path: str = ""


class _Abort(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def reason_of(e: OSError) -> str:
    return _REASONS.get(e.errno, "oserror")


class Executor:
    """Runs actions; one thread at a time (the daemon's single mutating thread)."""

    def __init__(self, journal: Journal, *, on_own_write: Callable[[str], None] = lambda p: None):
        self.journal = journal
        self.on_own_write = on_own_write

    def execute(self, action: Action) -> Outcome:
        names = Names.of(action)
        self.journal.begin(action, names.quarantine_path, names.temp_path, names.final_path)
        run = Run(action, names, self.on_own_write)
        try:
            run.hit("intent")
            self._protocol(run)
        except (Changed, BuildFailed, _Abort) as e:
            return self._abort(run, e.reason, e.detail)
        except OSError as e:
            where = e.filename if e.filename is not None else ""
            return self._abort(run, reason_of(e), f"{run.step}: {e.strerror or e} {where}".strip())
        finally:
            run.close()
        return Outcome(action.action_id, "done", result_path=names.final_path)

    def _protocol(self, run: Run) -> None:
        a = run.action
        self._verify(run)
        self._quarantine(run)
        ino = build(run)
        self.journal.advance(a.action_id, "staged", temp_ino=ino)
        run.hit("staged")
        run.hit("pre_swap")
        still_original(run.tdir, run.tname, run.tfd, a.target)
        # Told after the check: a file put at the target from here on is still caught,
        # by the inode check on the name the swap moves away (see the module docstring).
        self.on_own_write(a.target.path)
        result = self._swap_stub(run) if a.kind == "stub" else self._swap_rename(run)
        os.fsync(run.tdir)
        self.journal.advance(a.action_id, "swapped", result_ino=result)
        run.hit("swapped")
        self.journal.advance(a.action_id, "done", result_ino=result)
        run.hit("done")

    def _verify(self, run: Run) -> None:
        a = run.action
        run.tdir = run.keep(fsops.open_parent(a.target.path, a.root))
        run.kdir = run.keep(fsops.open_parent(a.keeper.path, a.root))
        fd, before = open_verified(run.tdir, run.tname, a.target)
        run.tfd, run.target_atime_ns = run.keep(fd), before.st_atime_ns
        run.kfd = run.keep(open_verified(run.kdir, run.kname, a.keeper, keeper=True)[0])
        if a.tier == "exact":
            check_same_bytes(run.tfd, run.kfd, a.target)
        run.hit("verified")

    def _quarantine(self, run: Run) -> None:
        a = run.action
        root = run.keep(fsops.open_dir(a.root))
        run.qbase = run.keep(fsops.mkdir_at(root, QUARANTINE_DIR))
        _check_quarantine(run.qbase, a.root)
        run.qdir = run.keep(fsops.mkdir_at(run.qbase, a.action_id))
        self.on_own_write(run.names.quarantine_path)
        os.link(run.tname, run.qname, src_dir_fd=run.tdir, dst_dir_fd=run.qdir, follow_symlinks=False)
        run.quarantined = True
        run.hit("quarantine_linked")
        if fsops.ino_at(run.qdir, run.qname) != a.target.ino:
            raise _Abort("changed", f"{a.target.path} was replaced just before it was quarantined")
        os.fsync(run.qdir)
        self.journal.advance(a.action_id, "quarantined")
        run.hit("quarantined")

    def _swap_rename(self, run: Run) -> int:
        a = run.action
        try:
            fsops.exchange(run.tdir, run.pname, run.tname)
        except fsops.Unsupported:  # no RENAME_EXCHANGE here: rename right after the re-check
            os.rename(run.pname, run.tname, src_dir_fd=run.tdir, dst_dir_fd=run.tdir)
            run.swapped = True
            run.hit("exchanged")
            run.hit("old_removed")
            return run.temp_ino
        run.hit("exchanged")
        if fsops.ino_at(run.tdir, run.pname) != a.target.ino:
            fsops.exchange(run.tdir, run.pname, run.tname)  # put the newcomer back
            raise _Abort("changed", f"{a.target.path} was replaced during the swap; left as it was")
        run.swapped = True
        self.on_own_write(run.names.temp_path)
        os.unlink(run.pname, dir_fd=run.tdir)  # its inode stays in quarantine
        run.hit("old_removed")
        return run.temp_ino

    def _swap_stub(self, run: Run) -> int:
        a = run.action
        self.on_own_write(run.names.final_path)
        os.link(run.pname, run.fname, src_dir_fd=run.tdir, dst_dir_fd=run.tdir, follow_symlinks=False)
        run.final_linked = True
        run.hit("final_linked")
        self.on_own_write(run.names.temp_path)
        os.unlink(run.pname, dir_fd=run.tdir)
        run.hit("temp_removed")
        fsops.rename_noreplace(run.tdir, run.tname, run.tdir, run.pname)
        run.hit("target_moved")
        if fsops.ino_at(run.tdir, run.pname) != a.target.ino:
            raise _Abort("changed", self._put_newcomer_back(run))
        run.swapped = True
        os.unlink(run.pname, dir_fd=run.tdir)  # its inode stays in quarantine
        run.hit("old_removed")
        return run.temp_ino

    def _put_newcomer_back(self, run: Run) -> str:
        """A file saved at the target just before we moved it away goes back to its
        name; were that name taken again meanwhile, to a visible conflict name (a
        temp name would hide it from every scan)."""
        path = run.action.target.path
        try:
            fsops.rename_noreplace(run.tdir, run.pname, run.tdir, run.tname)
            return f"{path} was replaced during the swap; left as it was"
        except FileExistsError:
            conflict = f"{run.tname}.dedupd-conflict-{run.action.action_id}"
            fsops.rename_noreplace(run.tdir, run.pname, run.tdir, conflict)
            return (f"{path} was replaced twice during the swap; the first new file is now "
                    f"{os.path.join(os.path.dirname(path), conflict)}")

    # -- abort ----------------------------------------------------------------------------
    def _abort(self, run: Run, reason: str, detail: str) -> Outcome:
        """Undo what this run did, then journal `aborted`. Once the swap happened, or
        when the cleanup itself fails, the entry stays unfinished (nothing is undone
        here) and `recover()` resolves it from the disk at the next start."""
        a = run.action
        if run.swapped:  # past the point of no return: recovery finishes it, never undoes it
            detail = f"{detail}; the replacement is in place, recovery completes it at the next start"
            return Outcome(a.action_id, "aborted", reason, detail, a.target.path)
        try:
            kept = self._undo_partial(run)
        except OSError as e:
            detail = f"{detail}; cleanup failed ({e.strerror}), left to recovery at the next start"
            return Outcome(a.action_id, "aborted", reason, detail, a.target.path)
        self.journal.advance(a.action_id, "aborted", reason=reason, detail=detail, quarantine_kept=kept)
        return Outcome(a.action_id, "aborted", reason, detail, a.target.path)

    def _undo_partial(self, run: Run) -> bool:
        """Remove our temp name, our stub and the quarantine link; returns True when
        the quarantine link is kept because the target no longer holds that inode."""
        a = run.action
        if run.tdir < 0:
            return False
        if run.temp_ino is not None:
            self.on_own_write(run.names.temp_path)
            fsops.unlink_if(run.tdir, run.pname, run.temp_ino)
            if run.final_linked and holds_stub(a.action_id, run.tdir, run.fname):
                self.on_own_write(run.names.final_path)
                os.unlink(run.fname, dir_fd=run.tdir)
        if not run.quarantined:
            if run.qbase >= 0:
                _rmdir_quietly(a.action_id, run.qbase)  # made, but the link failed
            return False
        q = fsops.ino_at(run.qdir, run.qname)
        if q is not None and fsops.ino_at(run.tdir, run.tname) == q:
            self.on_own_write(run.names.quarantine_path)
            os.unlink(run.qname, dir_fd=run.qdir)
            _rmdir_quietly(a.action_id, run.qbase)
            return False
        return q is not None


def _check_quarantine(fd: int, root: str) -> None:
    """The quarantine holds other users' originals: it must be ours and closed to
    others. One a user made (they can write to the root) could be emptied or
    renamed by them; refuse to put anything there."""
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise _Abort("quarantine_unsafe", f"{os.path.join(root, QUARANTINE_DIR)} belongs to uid {st.st_uid} with "
                                          f"mode {st.st_mode & 0o777:04o}, not to dedupd (uid {os.geteuid()}) with "
                                          f"no group or other write access; move it away (it may hold originals)")


def remove_quarantine_dir(quarantine_path: str) -> None:
    """Remove `<root>/.dedupd-quarantine/<action_id>` when it is empty."""
    _rmdir_quietly(os.path.dirname(quarantine_path))


def _rmdir_quietly(path: str, dir_fd: int | None = None) -> None:
    try:
        os.rmdir(path, dir_fd=dir_fd)
    except OSError:
        pass  # not empty or already gone: both fine (rmdir never removes data)
