"""Recovery at start-up (SAFETY.md rule 21): resolve every unfinished journal entry
by looking at the disk, before any new work starts.

Afterwards every original's bytes are at their path or in quarantine with a journal
entry, none of our temporary names remain, and nothing of a half-made replacement
stays. Each entry is decided by what its names hold (inode numbers against the
journaled ones), never by the journaled state alone:

- the target name still holds the original -> roll back: remove our temp name (and
  a stub's `<name>.dedup`), remove the quarantine link (the original is in place);
- the target name holds our replacement -> the swap happened: make sure the
  quarantine holds the original, drop the original's extra name left on the temp
  name, roll forward to `done`;
- the target name is missing -> put the original back from the quarantine (or from
  the temp name) with a link that never replaces anything, roll back;
- the target name holds a file that is neither (the user replaced it) -> remove only
  what is ours, keep the quarantine link, roll back.

A stub whose original is still at its name is rolled back (the stub removed), not
finished: the original was verified by a process that died, and may have been
written to since; removing our own stub is always safe, finishing would replace a
file nobody re-verified. The action is simply planned again later.

A name is only ever removed when its inode is one we made (the recorded temp inode)
or the original while another name of it (the quarantine link) remains. A name we
cannot explain is left in place and reported as a problem, never deleted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from dedupd.daemon.config.schema import QUARANTINE_DIR

from . import fsops
from .executor import remove_quarantine_dir
from .identity import holds_replacement, holds_stub
from .journal import Entry, Journal


@dataclass
class RecoveryReport:
    rolled_forward: list[str] = field(default_factory=list)  # action ids now done
    rolled_back: list[str] = field(default_factory=list)  # action ids undone to the original
    temps_removed: list[str] = field(default_factory=list)  # paths of our temp names removed
    problems: list[str] = field(default_factory=list)  # what needs a human; entry left unfinished


class _Unresolved(Exception):
    """This entry cannot be decided safely; it stays unfinished."""


OwnWrite = Callable[[str], None]


def ignore(path: str) -> None:
    """The default `on_own_write`: nobody to tell."""


def announce(entry: Entry, on_own_write: OwnWrite) -> None:
    """Tell the watcher every name of `entry` that may change (it ignores our own writes)."""
    for path in dict.fromkeys((entry.target.path, entry.temp_path, entry.final_path, entry.quarantine_path)):
        on_own_write(path)


def recover(journal: Journal, *, on_own_write: OwnWrite = ignore) -> RecoveryReport:
    """Resolve every unfinished entry; entries that cannot be resolved (root not
    mounted, a name we cannot explain) stay unfinished and are listed in `problems`.
    `on_own_write(path)` is told an entry's names before they may change."""
    from .restore import resolve_restoring  # both modules build on this one's helpers
    from .undo import resolve_undoing

    report = RecoveryReport()
    for entry in journal.unfinished():
        if not os.path.isdir(entry.root):
            report.problems.append(f"{entry.action_id}: root {entry.root} is unavailable; resolved when it is back")
            continue
        try:
            if entry.state in _REPLACE_STATES and not _folder_exists(entry):
                _folder_gone(journal, entry, report)
                continue
            announce(entry, on_own_write)
            with Disk(entry) as disk:
                if entry.state == "undoing":
                    resolve_undoing(journal, entry, disk, report)
                elif entry.state == "restoring":
                    resolve_restoring(journal, entry, disk, report)
                else:
                    _resolve_replace(journal, entry, disk, report)
        except (OSError, _Unresolved) as e:
            report.problems.append(f"{entry.action_id} ({entry.target.path}): {e}")
    return report


_REPLACE_STATES = ("intent", "quarantined", "staged", "swapped")


def _folder_exists(entry: Entry) -> bool:
    return os.path.isdir(os.path.dirname(entry.target.path))


def _folder_gone(journal: Journal, entry: Entry, report: RecoveryReport) -> None:
    """The target's folder was removed (the root is there): nothing of ours is left
    beside the target; the original stays in quarantine if it got there."""
    try:
        kept = os.lstat(entry.quarantine_path).st_ino == entry.target.ino
    except FileNotFoundError:
        kept = False
    journal.advance(entry.action_id, "rolled_back", reason="vanished", quarantine_kept=kept,
                    detail="the target's folder was removed" + ("; the original is kept in quarantine" if kept else ""))
    report.rolled_back.append(entry.action_id)


class Disk:
    """Descriptors of an entry's directories and what its names hold right now."""

    def __init__(self, entry: Entry):
        self.entry = entry
        self.tdir = fsops.open_parent(entry.target.path, entry.root)
        self.qdir = open_quarantine(entry)
        self.tname = os.path.basename(entry.target.path)
        self.pname = os.path.basename(entry.temp_path)
        self.fname = os.path.basename(entry.final_path)
        self.qname = os.path.basename(entry.quarantine_path)

    def t(self) -> os.stat_result | None:
        return fsops.lstat_at(self.tdir, self.tname)

    def p(self) -> os.stat_result | None:
        return fsops.lstat_at(self.tdir, self.pname)

    def f(self) -> os.stat_result | None:
        return fsops.lstat_at(self.tdir, self.fname)

    def q_is_original(self) -> bool:
        return self.qdir is not None and fsops.ino_at(self.qdir, self.qname) == self.entry.target.ino

    def is_original(self, st: os.stat_result | None) -> bool:
        o = self.entry.target
        return st is not None and (st.st_dev, st.st_ino) == (o.dev, o.ino)

    def ensure_quarantined(self, name: str) -> None:
        """Make the quarantine hold the original, linking it from `name` if needed."""
        if self.q_is_original():
            return
        if self.qdir is None:
            self.qdir = _make_quarantine(self.entry)
        os.link(name, self.qname, src_dir_fd=self.tdir, dst_dir_fd=self.qdir, follow_symlinks=False)
        os.fsync(self.qdir)

    def restore_from_quarantine(self) -> None:
        """Link the quarantined original back to the target name (never replacing)."""
        os.link(self.qname, self.tname, src_dir_fd=self.qdir, dst_dir_fd=self.tdir, follow_symlinks=False)

    def drop_quarantine(self) -> None:
        """Remove the quarantine link, only while the target name holds the same inode."""
        if self.q_is_original() and self.is_original(self.t()):
            os.unlink(self.qname, dir_fd=self.qdir)
            remove_quarantine_dir(self.entry.quarantine_path)

    def fsync(self) -> None:
        os.fsync(self.tdir)
        if self.qdir is not None:
            os.fsync(self.qdir)

    def __enter__(self) -> "Disk":
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in (self.tdir, self.qdir):
            if fd is not None:
                os.close(fd)


def open_quarantine(entry: Entry) -> int | None:
    """The entry's `<root>/.dedupd-quarantine/<action_id>` folder, walked from the root
    without following a symlink (a user who can write to the root can rename the
    quarantine away and put a symlink in its place); None when it is missing."""
    path = os.path.dirname(entry.quarantine_path)
    try:
        if not fsops.is_under(path, entry.root):
            return fsops.open_dir(path)
        root = fsops.open_dir(entry.root)
        try:
            return fsops.open_subdir(root, os.path.relpath(path, entry.root))
        finally:
            os.close(root)
    except FileNotFoundError:
        return None


def _make_quarantine(entry: Entry) -> int:
    """Create (if needed) and open the entry's quarantine folder, never through a symlink."""
    root = fsops.open_dir(entry.root)
    try:
        base = fsops.mkdir_at(root, QUARANTINE_DIR)
        try:
            return fsops.mkdir_at(base, os.path.basename(os.path.dirname(entry.quarantine_path)))
        finally:
            os.close(base)
    finally:
        os.close(root)


def temp_is_ours(entry: Entry, st: os.stat_result | None) -> bool:
    """The temp name holds the inode we built there. Before `staged` its inode was not
    yet journaled, but nothing else can be under our reserved, per-action name then:
    the only operation that puts foreign bytes there (the swap) comes after `staged`."""
    if st is None or (st.st_dev, st.st_ino) == (entry.target.dev, entry.target.ino):
        return False
    if entry.temp_ino:
        return st.st_ino == entry.temp_ino
    return entry.state in ("intent", "quarantined")


def _clear_temp(entry: Entry, disk: Disk, report: RecoveryReport) -> None:
    """Remove the temp name when it is ours, or the original while the quarantine
    also holds it; anything else under it is somebody's file: refuse."""
    st = disk.p()
    if st is None:
        return
    if disk.is_original(st):
        disk.ensure_quarantined(disk.pname)
    elif not temp_is_ours(entry, st):
        raise _Unresolved(f"{entry.temp_path} holds a file that is not ours; left in place")
    os.unlink(disk.pname, dir_fd=disk.tdir)
    report.temps_removed.append(entry.temp_path)


def _resolve_replace(journal: Journal, entry: Entry, disk: Disk, report: RecoveryReport) -> None:
    t = disk.t()
    if entry.kind == "stub":
        return _resolve_stub(journal, entry, disk, t, report)
    if disk.is_original(t):
        _roll_back(journal, entry, disk, report, "the original is still in place")
    elif holds_replacement(entry, disk.tdir, disk.tname):
        _roll_forward(journal, entry, disk, report, t.st_ino)
    elif t is None:
        _put_back(disk)
        _roll_back(journal, entry, disk, report, "the target name was missing; original put back")
    else:
        _foreign_target(journal, entry, disk, report)


def _resolve_stub(journal: Journal, entry: Entry, disk: Disk, t, report: RecoveryReport) -> None:
    f = disk.f()
    ours = holds_stub(entry.action_id, disk.tdir, disk.fname)
    if disk.is_original(t):
        _remove_stub(entry, disk, ours)
        _roll_back(journal, entry, disk, report, "the original was still at its name; stub removed")
    elif t is None and ours:
        _roll_forward(journal, entry, disk, report, f.st_ino)
    elif t is None:
        _put_back(disk)
        _roll_back(journal, entry, disk, report, "the stub was not made; original put back")
    else:
        _remove_stub(entry, disk, ours)
        _foreign_target(journal, entry, disk, report)


def _remove_stub(entry: Entry, disk: Disk, ours: bool) -> None:
    if ours:
        os.unlink(disk.fname, dir_fd=disk.tdir)


def _put_back(disk: Disk) -> None:
    """The target name is missing: the original returns from the temp name (where the
    stub swap moved it) or from the quarantine, without replacing anything."""
    p = disk.p()
    if disk.is_original(p):
        disk.ensure_quarantined(disk.pname)
        fsops.rename_noreplace(disk.tdir, disk.pname, disk.tdir, disk.tname)
    elif p is not None and not temp_is_ours(disk.entry, p):
        # a swap moved somebody's newer file here: it goes back to its name
        fsops.rename_noreplace(disk.tdir, disk.pname, disk.tdir, disk.tname)
    elif disk.q_is_original():
        disk.restore_from_quarantine()
    else:
        raise _Unresolved("the target is missing and its original is neither quarantined nor at the temp name")


def _roll_back(journal: Journal, entry: Entry, disk: Disk, report: RecoveryReport, detail: str) -> None:
    _clear_temp(entry, disk, report)
    disk.drop_quarantine()
    remove_quarantine_dir(entry.quarantine_path)  # the intent may have made it empty
    disk.fsync()
    kept = disk.q_is_original()
    journal.advance(entry.action_id, "rolled_back", reason="interrupted", detail=detail, quarantine_kept=kept)
    report.rolled_back.append(entry.action_id)


def _roll_forward(journal: Journal, entry: Entry, disk: Disk, report: RecoveryReport, result_ino: int) -> None:
    p = disk.p()
    if p is not None and not disk.is_original(p) and not temp_is_ours(entry, p):
        return _undo_race(journal, entry, disk, report)
    if not disk.is_original(p) and not disk.q_is_original():
        raise _Unresolved("the replacement is in place but the original is not in quarantine")
    _clear_temp(entry, disk, report)
    disk.fsync()
    journal.advance(entry.action_id, "done", result_ino=result_ino)
    report.rolled_forward.append(entry.action_id)


def _undo_race(journal: Journal, entry: Entry, disk: Disk, report: RecoveryReport) -> None:
    """The swap moved a file somebody put at the target after our check onto the
    temp name: it goes back over our replacement (ours is only a link or a copy)."""
    if entry.kind == "stub":
        _remove_stub(entry, disk, True)
        fsops.rename_noreplace(disk.tdir, disk.pname, disk.tdir, disk.tname)
    else:
        os.rename(disk.pname, disk.tname, src_dir_fd=disk.tdir, dst_dir_fd=disk.tdir)
    disk.fsync()
    journal.advance(entry.action_id, "rolled_back", reason="changed", quarantine_kept=disk.q_is_original(),
                    detail="the target was replaced during the swap; the newer file is back at its name")
    report.rolled_back.append(entry.action_id)


def _foreign_target(journal: Journal, entry: Entry, disk: Disk, report: RecoveryReport) -> None:
    """Somebody replaced the target: remove only what is ours, keep the quarantine."""
    _roll_back(journal, entry, disk, report, "the target was replaced by another file; original kept in quarantine")
