"""Watch the roots and turn filesystem events into `Change`s (SAFETY.md rules 16 and 19).

Events are hints: the full reconciliation scan is the truth. So a watcher only has to
(1) say quickly which paths may have changed and (2) never go quiet without saying so.
Handlers run in watchdog's threads and only enqueue, inside try/except; anything that
may have lost events (queue overflow, a lost or unaddable watch, a dead thread, a
handler bug) becomes `Change("rescan")` and, unless it was a plain overflow, the state
"error" or "unavailable". The service calls `restart_if_dead()` in its loop.

Change kinds: "file" (created, modified, closed after write, moved here), "gone"
(deleted or moved away; the path may be a directory: everything under it is gone),
"dir" (rescan this directory recursively: created or moved in), "rescan" (rescan the
whole root). Excluded directories, unwanted names, our quarantine and temporary names,
and paths in `OwnWrites` never produce a change.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import threading
import time
from dataclasses import dataclass

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from dedupd.daemon.config import Root
from dedupd.daemon.walk import Excluder
from dedupd.daemon.watch_observers import INOTIFY_PROBLEM, PollObserver, watch_limit_message

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0  # a watcher that failed to start is retried at most this often
# watchdog event types we act on. Opened/closed-without-write come from our own reads;
# attribute changes (chmod, utime, link counts: our own hardlinks) do not change pixels,
# and verify re-checks owner and mode before any action (rule 5).
_EVENT_TYPES = ("created", "modified", "closed", "deleted", "moved")
# Asked of watchdog, so that inotify is not even told to report opens and closes.
_EVENT_FILTER = [
    FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent, FileMovedEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
]


@dataclass(frozen=True)
class Change:
    kind: str  # "file" | "gone" | "dir" | "rescan"
    path: str
    root: str


class ChangeQueue:
    """Thread-safe queue from watcher threads to the service. A root's pending "rescan"
    is queued once, a change equal to the last one queued is dropped; past `max_items` a root's queued changes collapse into one "rescan"
    (memory stays bounded however fast events come)."""

    def __init__(self, max_items: int = 200_000):
        self.max_items = max_items
        self.collapsed = 0  # how often the bound was hit
        self._items: collections.deque[Change] = collections.deque()
        self._rescans: set[str] = set()
        self._cond = threading.Condition()

    def put(self, change: Change) -> None:
        with self._cond:
            if change.kind == "rescan":
                if change.root in self._rescans:
                    return
                self._rescans.add(change.root)
            elif self._items and self._items[-1] == change:
                return  # created, modified, closed: one change is enough
            elif len(self._items) >= self.max_items:
                self._collapse(change.root)
                return
            self._items.append(change)
            self._cond.notify()

    def _collapse(self, root: str) -> None:
        self.collapsed += 1
        self._items = collections.deque(c for c in self._items if c.root != root)
        if root not in self._rescans:
            self._rescans.add(root)
            self._items.append(Change("rescan", root, root))
        self._cond.notify()

    def get_batch(self, timeout: float) -> list[Change]:
        """Wait up to `timeout` seconds for a change, then return everything queued."""
        with self._cond:
            self._cond.wait_for(lambda: self._items, timeout)
            batch = list(self._items)
            self._items.clear()
            self._rescans.clear()
            return batch

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class OwnWrites:
    """Paths (and their inodes) dedupd is changing right now (rule 19).

    `add` before touching a path; `discard` (or `discard_all`) once the change is over.
    Events reach the handler asynchronously, after the action that caused them
    returned, so `discard` keeps the entry for `grace` seconds more instead of dropping
    it, and remembers what the path holds then (inode, size, mtime, or that it is
    gone): from then on the path only counts as ours while it still holds that, so a
    user's save or delete right after our action is seen. Entries expire after their
    ttl regardless."""

    def __init__(self, *, grace: float = 2.0, clock=time.monotonic):
        self.grace = grace
        self._clock = clock
        # path -> (expiry, inode when added, what we left there: None while still changing)
        self._paths: dict[str, tuple[float, tuple[int, int] | None, object]] = {}
        self._inodes: dict[tuple[int, int], float] = {}
        self._lock = threading.Lock()

    def add(self, path: str, ttl: float = 30.0) -> None:
        try:
            st = os.lstat(path)
            inode = (st.st_dev, st.st_ino)
        except OSError:
            inode = None  # not there yet: we are about to create it
        expiry = self._clock() + ttl
        with self._lock:
            self._paths[path] = (expiry, inode, None)
            if inode is not None:
                self._inodes[inode] = expiry

    def discard(self, path: str) -> None:
        left = _left_there(path)
        with self._lock:
            entry = self._paths.get(path)
            if entry is None:
                return
            expiry = min(entry[0], self._clock() + self.grace)
            self._paths[path] = (expiry, entry[1], left)
            if entry[1] in self._inodes:
                self._inodes[entry[1]] = min(self._inodes[entry[1]], expiry)

    def discard_all(self) -> None:
        """Every change in progress is over (an action, undo, restore or recovery
        returned); expired entries are dropped so the table stays small."""
        now = self._clock()
        with self._lock:
            self._paths = {p: e for p, e in self._paths.items() if e[0] > now}
            self._inodes = {i: t for i, t in self._inodes.items() if t > now}
            busy = [p for p, e in self._paths.items() if e[2] is None]
        for path in busy:
            self.discard(path)

    def __contains__(self, item: object) -> bool:
        """`path in own` or `(st_dev, st_ino) in own`."""
        now = self._clock()
        with self._lock:
            if isinstance(item, tuple):
                expiry = self._inodes.get(item)
                if expiry is not None and expiry <= now:
                    del self._inodes[item]
                    return False
                return expiry is not None
            entry = self._paths.get(item)  # type: ignore[arg-type]
            if entry is not None and entry[0] <= now:
                del self._paths[item]  # type: ignore[arg-type]
                return False
        if entry is None:
            return False
        return entry[2] is None or _left_there(item) == entry[2]  # type: ignore[arg-type]


def _left_there(path: str) -> object:
    """What `path` holds, as far as telling our change from a later one goes."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "gone"
    except OSError as exc:
        return ("unreadable", exc.errno)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def translate(event: FileSystemEvent, root: str) -> list[Change]:
    """The raw changes one watchdog event stands for (before exclusion filtering);
    `root` is the watched path."""
    kind = event.event_type
    if kind not in _EVENT_TYPES:
        return []
    src = os.fsdecode(event.src_path) if event.src_path else ""
    dest = os.fsdecode(event.dest_path) if event.dest_path else ""
    if event.is_directory:
        if src == root and kind in ("deleted", "moved"):
            return [Change("rescan", root, root)]
        made = {"created": [("dir", src)], "deleted": [("gone", src)], "moved": [("gone", src), ("dir", dest)]}
        pairs = made.get(kind, [])  # a directory "modified" is only its entries changing
    else:
        made = {"deleted": [("gone", src)], "moved": [("gone", src), ("file", dest)]}
        pairs = made.get(kind, [("file", src)])
    return [Change(k, p, root) for k, p in pairs if p]


class _Handler(FileSystemEventHandler):
    """Runs in watchdog's observer thread: translate, filter, enqueue; never raise."""

    def __init__(self, watcher: "RootWatcher", generation: int):
        self._watcher = watcher
        self._generation = generation

    def dispatch(self, event: FileSystemEvent) -> None:
        w = self._watcher
        try:
            for change in translate(event, w._watched):
                change = w._as_configured(change)
                if change.kind == "rescan":
                    w._trouble(self._generation, "unavailable", f"{w.path}: the root itself was deleted or moved")
                elif not w._wanted(change, is_dir=event.is_directory):
                    continue
                elif change.kind == "gone" and not w._root_intact():
                    # a share unmounted under a polling watcher looks like every file deleted
                    w._trouble(self._generation, "unavailable", f"{w.path}: files vanish and the root is on another "
                               "filesystem than when the watch started (share unmounted?)")
                else:
                    w._queue.put(change)
        except Exception as exc:  # a handler exception would kill the observer thread
            w._trouble(self._generation, "error", f"{w.path}: cannot handle {event!r}: {exc!r}")


class RootWatcher:
    """Watches one root with inotify or, for `watch: poll`, a polling observer.

    `state`: "inotify" | "poll" (watching), "unavailable" (the root is missing or not a
    directory), "error" (events may have been lost; a rescan was queued), "stopped".
    `last_error` says why in words an admin can act on; `needs_poll` is set when the
    inotify watch limit was hit (the service should switch this root to polling);
    `overflows` counts inotify queue overflows (each queued a rescan; watching goes on).
    """

    def __init__(self, root: Root, queue: ChangeQueue, excluder: Excluder, own: OwnWrites, *,
                 poll_seconds: float = 30.0, clock=time.monotonic):
        self.root = root
        self.path = os.path.abspath(root.path)
        self.poll_seconds = poll_seconds
        self.last_error = ""
        self.needs_poll = False
        self.overflows = 0
        self._queue, self._excluder, self._own, self._clock = queue, excluder, own, clock
        self._lock = threading.RLock()
        self._observer = None
        self._state = "stopped"
        self._generation = 0
        self._dev: int | None = None
        self._watched = self.path  # the root with symlinks resolved: what watchdog watches
        self._stopped = True
        self._next_retry = 0.0

    @property
    def state(self) -> str:
        return self._state

    def start(self) -> None:
        """Start watching; never raises (an unavailable root or a failed watch is a state)."""
        with self._lock:
            self._stopped = False
            self._launch()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._teardown()
            self._state = "stopped"

    def alive(self) -> bool:
        observer = self._observer
        return observer is not None and observer.threads_alive()

    def restart_if_dead(self) -> bool:
        """Restart a watcher whose threads died, that hit an error, whose root came
        back, or whose root is now another filesystem (a share was mounted or unmounted
        on it); queue a rescan. True if it was restarted."""
        with self._lock:
            if self._stopped or self._healthy():
                return False
            if self._state == "unavailable":
                if not os.path.isdir(self.path):
                    return False  # cheap to re-check on every call: no back-off
            elif self._clock() < self._next_retry:
                return False
            if self.needs_poll and self.alive():
                return False  # restarting would hit the watch limit again; rescans cover it
            self._teardown()
            if not self._launch():
                return False
            self._queue.put(Change("rescan", self.path, self.path))
            return True

    # -- internals --------------------------------------------------------------------

    def _healthy(self) -> bool:
        if self._state not in ("inotify", "poll") or not self.alive():
            return False
        return self._root_intact() and os.path.realpath(self.path) == self._watched

    def _root_intact(self) -> bool:
        """Still the filesystem the watch started on (one stat; only asked for "gone")."""
        try:
            return os.stat(self.path).st_dev == self._dev
        except OSError:
            return False

    def _launch(self) -> bool:
        self._generation += 1
        gen = self._generation
        if not os.path.isdir(self.path):
            return self._failed(gen, "unavailable", f"{self.path}: not there or not a directory (unmounted share?)")
        if self.root.watch != "poll" and INOTIFY_PROBLEM:
            return self._failed(gen, "error", f"{self.path}: {INOTIFY_PROBLEM}")
        observer = None
        try:
            self._dev = os.stat(self.path).st_dev
            # inotify would watch a symlinked root's link, not the tree (it never follows)
            self._watched = os.path.realpath(self.path)
            observer = self._make_observer(gen)
            observer.schedule(_Handler(self, gen), self._watched, recursive=True, event_filter=_EVENT_FILTER)
            observer.start()
        except OSError as exc:
            if observer is not None:
                observer.stop()
            return self._failed(gen, *self._explain(exc))
        self._observer = observer
        self._state = "poll" if self.root.watch == "poll" else "inotify"
        return True

    def _make_observer(self, gen: int):
        trouble = lambda kind, message: self._trouble(gen, kind, message)  # noqa: E731
        if self.root.watch == "poll":
            return PollObserver(trouble, interval=self.poll_seconds)
        from dedupd.daemon.watch_observers import InotifyObserver

        return InotifyObserver(trouble)

    def _explain(self, exc: OSError) -> tuple[str, str]:
        if exc.errno == errno.ENOSPC:
            self.needs_poll = True
            return "limit", watch_limit_message(self.path)
        if exc.errno == errno.EMFILE and self.root.watch != "poll":
            self.needs_poll = True
            return "limit", (f"{self.path}: cannot create an inotify instance: fs.inotify.max_user_instances is "
                             "reached; raise it with sysctl or set `watch: poll` for this root")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "unavailable", f"{self.path}: vanished while the watch was being set up"
        return "error", f"{self.path}: cannot watch: {exc.strerror or exc}"

    def _failed(self, gen: int, kind: str, message: str) -> bool:
        if kind != "unavailable":  # a failing watch setup (a whole-tree walk) is not retried in a tight loop
            self._next_retry = self._clock() + RETRY_SECONDS
        self._trouble(gen, kind, message)
        return False

    def _teardown(self) -> None:
        observer, self._observer = self._observer, None
        self._generation += 1  # late reports from the old threads are ignored
        if observer is not None:
            try:
                observer.stop()
                if observer.is_alive():
                    observer.join(timeout=5)
            except Exception as exc:  # a half-dead observer must not block a restart
                log.warning("%s: stopping the old watcher failed: %r", self.path, exc)

    def _trouble(self, gen: int, kind: str, message: str) -> None:
        """Called from watchdog threads and from start(): record, queue a rescan, never raise."""
        try:
            if gen != self._generation or self._stopped:
                return
            if kind == "overflow":
                self.overflows += 1
            else:
                self._state = "unavailable" if kind == "unavailable" and not os.path.isdir(self.path) else "error"
                self.needs_poll = self.needs_poll or kind == "limit"
            if message != self.last_error:  # a burst of one problem is logged once
                log.warning("%s", message)
            self.last_error = message
            self._queue.put(Change("rescan", self.path, self.path))
        except Exception:
            log.exception("%s: reporting a watch problem failed", self.path)

    def _as_configured(self, change: Change) -> Change:
        """Report paths under the root as configured, even if it is a symlink."""
        if self._watched == self.path:
            return change
        rel = os.path.relpath(change.path, self._watched)
        return Change(change.kind, os.path.normpath(os.path.join(self.path, rel)), self.path)

    def _wanted(self, change: Change, *, is_dir: bool) -> bool:
        """Drop excluded directories, unwanted names and our own writes."""
        rel = os.path.relpath(change.path, self.path)
        if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return False
        parts = rel.split(os.sep)
        if any(self._excluder.skip_dir(p) for p in (parts if is_dir else parts[:-1])):
            return False
        if not is_dir and not self._excluder.wanted_file(parts[-1]):
            return False
        return change.path not in self._own
