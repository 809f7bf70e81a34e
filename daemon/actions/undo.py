"""`dedupctl undo`: put a replaced file's original inode back at its name.

Only a `done` action whose quarantine link still holds the original can be undone,
and only while its name still holds *our* replacement (hardlink: the keeper's
inode; symlink, reflink: the inode we made; stub: our `<name>.dedup`). Anything
else means the user changed it since: the undo is refused and nothing is
overwritten. Because the inode itself comes back, so do its owner, mode, times and
xattrs, exactly.

Protocol (journal `undoing` first, so a crash is resolved by `recover()`):
- hardlink, symlink, reflink: link the quarantined inode to the action's temp name,
  `RENAME_EXCHANGE` it with the target, check the temp name now holds our
  replacement (else exchange back and refuse), unlink it;
- stub: link the quarantined inode to the original name (a link never replaces),
  unlink our stub;
then fsync, remove the quarantine link, journal `undone`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dedupd.daemon import failpoints

from . import fsops
from .errors import UndoRefused
from .executor import remove_quarantine_dir
from .journal import Entry, Journal
from .identity import holds_replacement, holds_stub
from .recover import Disk, OwnWrite, RecoveryReport, announce, ignore

_STEPS = {"rename": ("undoing", "temp_linked", "exchanged", "old_removed", "done"),
          "stub": ("undoing", "original_linked", "stub_removed", "done")}
UNDO_FAILPOINTS = tuple(f"undo.{kind}.{step}" for kind in ("hardlink", "symlink", "reflink", "stub")
                        for step in _STEPS["stub" if kind == "stub" else "rename"])


@dataclass(frozen=True)
class UndoResult:
    action_id: str
    path: str  # the original's name, holding the original inode again
    ino: int


def select(journal: Journal, *, path: str | None = None, action_id: str | None = None,
           since: float | None = None) -> list[Entry]:
    """The `done` entries `dedupctl undo PATH | ACTION_ID | --since TIME` means, oldest first."""
    if action_id is not None:
        entry = journal.get(action_id)
        return [entry] if entry.state == "done" else []
    if path is not None:
        path = os.path.abspath(path)
    return list(journal.entries(states=("done",), since=since, path=path))


def undo(journal: Journal, action_id: str, *, on_own_write: OwnWrite = ignore) -> UndoResult:
    """Undo one action. Raises `UndoRefused` (nothing changed) with what to do instead.
    `on_own_write(path)` is told every name the undo may change, before it does."""
    entry = journal.get(action_id)
    if entry.state != "done":
        hint = " (its quarantine was purged; for a stub use `dedupctl restore`)" if entry.state == "purged" else ""
        raise UndoRefused(f"action {action_id} is {entry.state}; only done actions can be undone{hint}")
    with Disk(entry) as disk:
        _check_undoable(entry, disk)
        announce(entry, on_own_write)
        journal.advance(action_id, "undoing")
        _hit(entry, "undoing")
        if entry.kind == "stub":
            _put_back_stub(entry, disk)
        else:
            _swap_back(journal, entry, disk)
        _finish(journal, entry, disk)
    return UndoResult(action_id, entry.target.path, entry.target.ino)


def _hit(entry: Entry, step: str) -> None:
    failpoints.hit(f"undo.{entry.kind}.{step}")


def _check_undoable(entry: Entry, disk: Disk) -> None:
    if not disk.q_is_original():
        raise UndoRefused(f"the original of {entry.target.path} is no longer in quarantine "
                          f"({entry.quarantine_path}); it cannot be undone")
    if entry.kind == "stub":
        if disk.t() is not None:
            raise UndoRefused(f"{entry.target.path} exists again; move it away to undo {entry.action_id}")
        if not holds_stub(entry.action_id, disk.tdir, disk.fname):
            raise UndoRefused(f"{entry.final_path} is no longer dedupd's stub of {entry.action_id}; "
                              f"nothing was changed. The original is at {entry.quarantine_path}")
    elif not holds_replacement(entry, disk.tdir, disk.tname):
        raise UndoRefused(f"{entry.target.path} changed since dedupd replaced it; nothing was "
                          f"overwritten. The original is at {entry.quarantine_path}")


def _swap_back(journal: Journal, entry: Entry, disk: Disk) -> None:
    os.link(disk.qname, disk.pname, src_dir_fd=disk.qdir, dst_dir_fd=disk.tdir, follow_symlinks=False)
    _hit(entry, "temp_linked")
    try:
        fsops.exchange(disk.tdir, disk.pname, disk.tname)
    except fsops.Unsupported:  # no RENAME_EXCHANGE: a rename right after a last check
        if not holds_replacement(entry, disk.tdir, disk.tname):
            os.unlink(disk.pname, dir_fd=disk.tdir)
            journal.advance(entry.action_id, "done")
            raise UndoRefused(f"{entry.target.path} changed during the undo; nothing was overwritten") from None
        os.rename(disk.pname, disk.tname, src_dir_fd=disk.tdir, dst_dir_fd=disk.tdir)
    else:
        _hit(entry, "exchanged")
        if not holds_replacement(entry, disk.tdir, disk.pname):
            fsops.exchange(disk.tdir, disk.pname, disk.tname)  # the user's file goes back
            os.unlink(disk.pname, dir_fd=disk.tdir)  # the original's extra name; quarantine keeps it
            journal.advance(entry.action_id, "done")
            raise UndoRefused(f"{entry.target.path} changed during the undo; nothing was overwritten")
        os.unlink(disk.pname, dir_fd=disk.tdir)  # our replacement
    _hit(entry, "old_removed")


def _put_back_stub(entry: Entry, disk: Disk) -> None:
    disk.restore_from_quarantine()  # link(): fails with EEXIST rather than replace
    _hit(entry, "original_linked")
    if holds_stub(entry.action_id, disk.tdir, disk.fname):
        os.unlink(disk.fname, dir_fd=disk.tdir)
    _hit(entry, "stub_removed")


def _finish(journal: Journal, entry: Entry, disk: Disk) -> None:
    disk.fsync()
    disk.drop_quarantine()
    disk.fsync()
    journal.advance(entry.action_id, "undone")
    _hit(entry, "done")


def resolve_undoing(journal: Journal, entry: Entry, disk: Disk, report: RecoveryReport) -> None:
    """Recovery of an undo that stopped: finished if the original is back at its name,
    else back to `done` (our temp link of the original removed)."""
    t = disk.t()
    if t is None and entry.kind != "stub" and disk.is_original(disk.p()):
        fsops.rename_noreplace(disk.tdir, disk.pname, disk.tdir, disk.tname)
        t = disk.t()
    p = disk.p()
    if p is not None and (disk.is_original(p) or holds_replacement(entry, disk.tdir, disk.pname)):
        if disk.is_original(p):
            disk.ensure_quarantined(disk.pname)
        os.unlink(disk.pname, dir_fd=disk.tdir)
        report.temps_removed.append(entry.temp_path)
    if disk.is_original(t):
        if entry.kind == "stub" and holds_stub(entry.action_id, disk.tdir, disk.fname):
            os.unlink(disk.fname, dir_fd=disk.tdir)
        _finish(journal, entry, disk)
        report.rolled_forward.append(entry.action_id)
    else:
        disk.fsync()
        journal.advance(entry.action_id, "done")
        report.rolled_back.append(entry.action_id)
    remove_quarantine_dir(entry.quarantine_path)
