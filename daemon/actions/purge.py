"""`dedupctl purge` and the daemon's retention: free what the quarantine holds.

A `done` entry older than the retention has its quarantine link removed and becomes
`purged`; only then does its space count as reclaimed (SAFETY.md rule 3). An
aborted or rolled-back entry that kept its original in quarantine (the target was
replaced under us) loses that link too, but stays in its state: nothing was
reclaimed by dedupd there. The link is only removed while it is still the
original's inode; empty `<root>/.dedupd-quarantine/<action_id>` folders go too.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from . import fsops
from .executor import remove_quarantine_dir
from .journal import Entry, Journal
from .recover import open_quarantine


@dataclass
class PurgeReport:
    entries: list[str] = field(default_factory=list)  # action ids whose quarantine link was removed
    bytes_freed: int = 0  # bytes whose last name was the quarantine link
    problems: list[str] = field(default_factory=list)


def purge(journal: Journal, *, older_than_seconds: float, now: float | None = None) -> PurgeReport:
    """Remove the quarantine links of entries that reached their state at least
    `older_than_seconds` ago (0: all of them)."""
    cutoff = (time.time() if now is None else now) - older_than_seconds
    report = PurgeReport()
    for entry in list(journal.entries(states=("done", "aborted", "rolled_back"))):
        if entry.updated > cutoff or not entry.holds_quarantine():
            continue
        if not os.path.isdir(entry.root):
            report.problems.append(f"{entry.action_id}: root {entry.root} is unavailable; not purged")
            continue
        try:
            freed = _unlink_original(entry)
        except OSError as e:
            report.problems.append(f"{entry.action_id}: cannot remove {entry.quarantine_path}: {e.strerror}")
            continue
        if entry.state == "done":
            journal.advance(entry.action_id, "purged")
        else:
            journal.advance(entry.action_id, entry.state, quarantine_kept=False)
        report.entries.append(entry.action_id)
        report.bytes_freed += freed
    return report


def _unlink_original(entry: Entry) -> int:
    """Unlink the quarantine link if it is the original's inode; returns the bytes
    freed (0 when another name still holds them, or the link was already gone)."""
    qdir = open_quarantine(entry)  # never through a symlink put in the quarantine's place
    if qdir is None:
        return 0
    try:
        name = os.path.basename(entry.quarantine_path)
        st = fsops.lstat_at(qdir, name)
        if st is None or (st.st_dev, st.st_ino) != (entry.target.dev, entry.target.ino):
            return 0
        os.unlink(name, dir_fd=qdir)
        os.fsync(qdir)
    finally:
        os.close(qdir)
    remove_quarantine_dir(entry.quarantine_path)
    return st.st_size if st.st_nlink == 1 else 0
