"""watchdog observers that never fail silently (SAFETY.md rule 16).

watchdog hides three things a daemon must know about:

- **inotify queue overflow.** The kernel drops events and queues one IN_Q_OVERFLOW
  (wd -1). watchdog 7.1 routes it to `InotifyWatchGroup.on_queue_overflow()`, which
  logs, drops half-paired moves and re-adds the recursive watches, but emits no event
  a handler could see (6.x and 7.0 skip wd -1 outright). The only hook is that method,
  so we subclass the watch group and the one emitter method that constructs it.
- **lost watches.** An unmounted filesystem sends IN_UNMOUNT then IN_IGNORED; watchdog
  drops the watch and goes quiet. A subdirectory watch that cannot be added (ENOSPC:
  `fs.inotify.max_user_watches` reached) is swallowed by `InotifyWatchGroup._add_callback`.
  We report both: the first through the group, the second through `InotifyFD.add_callback`.
- **dead threads.** An exception in an observer, emitter or inotify reader thread ends
  that thread; `threading.excepthook` prints it and nothing else happens. Every thread
  class here reports before it dies, and `threads_alive()` checks all of them.

Every report goes to one callback `trouble(kind, message)`, kind one of "overflow",
"error", "limit", "unavailable"; the watcher turns it into a full rescan. These classes
lean on watchdog >= 7.1 internals (`_inotify`, `_inotify_fd`, `_active_callbacks_by_watch`);
`INOTIFY_PROBLEM` says why inotify cannot be used when they are missing.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from typing import Callable

from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingEmitter

log = logging.getLogger(__name__)

Trouble = Callable[[str, str], None]
WATCHES_FILE = "/proc/sys/fs/inotify/max_user_watches"

try:  # inotify exists on Linux only, and its internals changed in watchdog 7.1
    from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
    from watchdog.observers.inotify_c import InotifyConstants, InotifyFD

    INOTIFY_PROBLEM = "" if hasattr(InotifyWatchGroup, "on_queue_overflow") else (
        "the installed watchdog hides inotify queue overflows; install watchdog>=7.1 or set `watch: poll`"
    )
except Exception as exc:  # ImportError, UnsupportedLibcError, OSError from ctypes
    INOTIFY_PROBLEM = f"inotify is not available here ({exc}); set `watch: poll`"


def inotify_watch_limit() -> int | None:
    """The kernel's per-user inotify watch limit, or None where it cannot be read."""
    try:
        with open(WATCHES_FILE, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def watch_limit_message(path: str) -> str:
    """What to tell an admin when inotify_add_watch() failed with ENOSPC."""
    limit = inotify_watch_limit()
    now = f" (now {limit})" if limit is not None else ""
    return (
        f"{path}: cannot add an inotify watch: the per-user limit fs.inotify.max_user_watches{now} is reached "
        "(one watch per directory). Raise it (sysctl -w fs.inotify.max_user_watches=1048576, and in "
        "/etc/sysctl.d/ to keep it) or set `watch: poll` for this root; until then changes are found by full rescans."
    )


class _ReportsDeath:
    """Mixin for watchdog threads: report an exception that ends `run()`, then die as before."""

    _trouble: Trouble

    def run(self) -> None:
        try:
            super().run()  # type: ignore[misc]
        except BaseException as exc:
            self._trouble("error", f"watch thread {type(self).__name__} died: {exc!r}")
            raise


if not INOTIFY_PROBLEM:

    class _InotifyFD(_ReportsDeath, InotifyFD):
        """The inotify reader thread; reports ENOSPC (the watch limit) on any watch it fails to add."""

        def __init__(self, trouble: Trouble):
            self._trouble = trouble
            super().__init__()

        def add_callback(self, path, mask, callback, id_):  # noqa: ANN001 - watchdog's signature
            try:
                return super().add_callback(path, mask, callback, id_)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    self._trouble("limit", watch_limit_message(os.fsdecode(path)))
                raise

    @dataclass
    class _WatchGroup(InotifyWatchGroup):
        """watchdog's recursive watch group, plus reports of overflow and lost watches."""

        trouble: Trouble = field(default=lambda kind, message: None, repr=False)

        def on_queue_overflow(self) -> None:
            super().on_queue_overflow()  # re-adds the recursive watches
            if self.is_active:
                self.trouble("overflow", f"{os.fsdecode(self.path)}: inotify queue overflowed, events were lost")

        def on_event(self, event) -> None:  # noqa: ANN001
            if event.mask & InotifyConstants.IN_UNMOUNT and self.is_active:
                self.trouble("unavailable", f"{os.fsdecode(self.path)}: a watched filesystem was unmounted")
            super().on_event(event)

        def on_watch_deleted(self, wd) -> None:  # noqa: ANN001
            root_lost = self.is_active and self._active_callbacks_by_watch.get(wd) == self.path
            super().on_watch_deleted(wd)
            if root_lost:
                self.trouble("unavailable", f"{os.fsdecode(self.path)}: the watch on the root was removed (deleted, moved or unmounted)")

    class _InotifyEmitter(_ReportsDeath, InotifyEmitter):
        def __init__(self, event_queue, watch, *, trouble: Trouble, **kwargs):  # noqa: ANN001
            super().__init__(event_queue, watch, **kwargs)
            self._trouble = trouble

        def on_thread_start(self) -> None:
            # InotifyEmitter.on_thread_start() with our watch group: the group is the
            # only place watchdog 7.1 tells about IN_Q_OVERFLOW and lost watches.
            self._inotify = _WatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
                trouble=self._trouble,
            )

    class InotifyObserver(_ReportsDeath, BaseObserver):
        """watchdog's InotifyObserver with reporting emitter, watch group and reader thread."""

        def __init__(self, trouble: Trouble, *, timeout: float = 1.0):
            self._trouble = trouble
            self._inotify_fd = _InotifyFD(trouble)
            self._inotify_fd.start()
            super().__init__(_InotifyEmitter, timeout=timeout, inotify_fd=self._inotify_fd, trouble=trouble)

        def on_thread_stop(self) -> None:
            super().on_thread_stop()
            self._inotify_fd.stop()
            self._inotify_fd.join()

        def threads_alive(self) -> bool:
            return self.is_alive() and self._inotify_fd.is_alive() and all(e.is_alive() for e in self.emitters)


class _PollEmitter(_ReportsDeath, PollingEmitter):
    """watchdog's polling emitter; a snapshot that starts failing (EIO, ESTALE on a share)
    is reported once instead of only logged."""

    def __init__(self, event_queue, watch, *, trouble: Trouble, **kwargs):  # noqa: ANN001
        super().__init__(event_queue, watch, **kwargs)
        self._trouble = trouble

    def queue_events(self, timeout: float) -> None:
        was_failing = getattr(self, "_snapshot_failing", False)
        super().queue_events(timeout)
        if getattr(self, "_snapshot_failing", False) and not was_failing:
            self._trouble("error", f"{self.watch.path}: the polling snapshot failed (see the log); retrying")


class PollObserver(_ReportsDeath, BaseObserver):
    """Polling observer for network mounts. lstat, never stat: a symlink inside a root is
    not followed (SAFETY.md rule 6), so a link loop or a link out of the root is not walked."""

    def __init__(self, trouble: Trouble, *, interval: float):
        self._trouble = trouble
        super().__init__(_PollEmitter, timeout=interval, trouble=trouble, stat=os.lstat, listdir=os.scandir)

    def threads_alive(self) -> bool:
        return self.is_alive() and all(e.is_alive() for e in self.emitters)
