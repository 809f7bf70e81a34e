"""Settle changes until files are quiet (SAFETY.md rule 17) and collapse event storms.

A file is ready once (a) no event arrived for it for `settle_seconds` and (b) two stats
at least `settle_seconds` apart show the same (size, mtime_ns, inode). (b) matters where
writes raise no events (a slow writer on an NFS share watched by polling; `cp -p`
setting the mtime after the last write): such a file is never taken mid-write.

More than `storm_events` events in one directory within one settle period collapse
into one rescan of that directory (recursive): its pending files are dropped, and later
events under it only keep the directory waiting. A "dir" change (a directory created or
moved in) and a "rescan" change (the whole root) are directory rescans that wait for the
settle period too. A "gone" path also waits, so that delete-then-recreate (how many
programs save) ends as one "file"; it is returned once it is still missing. A pending
file that vanished is returned as gone. Every path is returned once.

Not thread-safe: the service's main thread owns it. Clock and stat are injectable so
tests are deterministic and instant.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from dedupd.daemon.watch import Change

_MISSING = object()


@dataclass
class _File:
    last_event: float
    signature: object  # (size, mtime_ns, ino), _MISSING, or None when stat failed otherwise
    seen_at: float  # when `signature` was first seen


class Settler:
    def __init__(self, settle_seconds: float, storm_events: int, *,
                 clock: Callable[[], float] = time.monotonic, stat: Callable[[str], os.stat_result] = os.lstat):
        self.settle = settle_seconds
        self.storm_events = storm_events
        self._clock = clock
        self._stat = stat
        self._files: dict[str, _File] = {}
        self._dirs: dict[str, float] = {}  # directory -> time of its last event
        self._gone: dict[str, float] = {}
        self._windows: dict[str, list] = {}  # directory -> [window start, events in window]

    def note(self, change: Change) -> None:
        """Record one change (from `ChangeQueue.get_batch`)."""
        now = self._clock()
        if change.kind in ("rescan", "dir"):
            self._collapse(change.root if change.kind == "rescan" else change.path, now)
            return
        if self._absorbed(change.path, change.root, now):
            return
        parent = os.path.dirname(change.path)
        if self._count(parent, now) > self.storm_events:
            self._collapse(parent, now)
        elif change.kind == "gone":
            self._files.pop(change.path, None)
            self._gone[change.path] = now
        else:
            self._gone.pop(change.path, None)
            self._files[change.path] = _File(now, self._signature(change.path), now)

    def ready(self) -> tuple[list[str], list[str], list[str]]:
        """(files quiet long enough, directories to rescan, gone paths); each returned once."""
        now = self._clock()
        dirs = self._take_dirs(now)
        gone = self._take_gone(now)
        files = []
        for path, entry in list(self._files.items()):
            if now - entry.last_event < self.settle:
                continue
            signature = self._signature(path)
            if signature is _MISSING:
                del self._files[path]
                gone.append(path)
            elif signature != entry.signature:
                entry.signature, entry.seen_at = signature, now  # still changing: wait again
            elif now - entry.seen_at >= self.settle:
                del self._files[path]
                files.append(path)
        self._windows = {d: w for d, w in self._windows.items() if now - w[0] < self.settle}
        return sorted(files), sorted(dirs), sorted(gone)

    def pending(self) -> int:
        return len(self._files) + len(self._dirs) + len(self._gone)

    # -- internals --------------------------------------------------------------------

    def _signature(self, path: str) -> object:
        try:
            st = self._stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return _MISSING
        except OSError:
            return None  # unreadable: settles like any other value; the reader reports it
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def _absorbed(self, path: str, root: str, now: float) -> bool:
        """If a directory above `path` waits for a rescan, keep it waiting instead."""
        d = os.path.dirname(path)
        while True:
            if d in self._dirs:
                self._dirs[d] = now
                return True
            if d == root or os.path.dirname(d) == d:
                return False
            d = os.path.dirname(d)

    def _count(self, directory: str, now: float) -> int:
        window = self._windows.get(directory)
        if window is None or now - window[0] >= self.settle:
            window = self._windows[directory] = [now, 0]
        window[1] += 1
        return window[1]

    def _collapse(self, directory: str, now: float) -> None:
        """One rescan of `directory` replaces everything pending under it."""
        if directory in self._dirs:
            self._dirs[directory] = now
            return
        if self._absorbed(directory, "", now):
            return
        prefix = directory.rstrip(os.sep) + os.sep
        for table in (self._files, self._gone, self._dirs):
            for path in [p for p in table if p.startswith(prefix)]:
                del table[path]
        self._dirs[directory] = now

    def _take_dirs(self, now: float) -> list[str]:
        done = [d for d, t in self._dirs.items() if now - t >= self.settle]
        for d in done:
            del self._dirs[d]
        return done

    def _take_gone(self, now: float) -> list[str]:
        gone = []
        for path, t in list(self._gone.items()):
            if now - t < self.settle:
                continue
            del self._gone[path]
            signature = self._signature(path)
            if signature is _MISSING:
                gone.append(path)
            else:  # back again without an event we saw: settle it as a file
                self._files[path] = _File(now, signature, now)
        return gone
