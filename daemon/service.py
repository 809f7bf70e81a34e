"""`dedupd`, the service: watch the roots, settle, scan, decide, act, answer `dedupctl`.

Threads and who owns what (ARCHITECTURE.md section 1):
- the **main thread** is the only one that writes to the index and the journal and the
  only one that changes a file: it scans, plans and executes, one action at a time;
- watchdog observer threads only enqueue changes (`dedupd.daemon.watch`);
- the control-socket thread answers `status`/`groups` from a snapshot the main thread
  publishes, flips `pause`/`resume`, and hands `rescan`/`undo`/`purge` to the main
  thread as commands it waits for;
- a heartbeat thread pings the systemd watchdog, but only while every thread is alive
  and the main thread has beaten recently (a wedged scan stops the pings).

Start-up order (SAFETY.md rule 21, the daemon issue): config → index → journal and
recovery of every unfinished action → root health → kernels warm → control socket and
watchers → `READY=1` → the full reconciliation scan. SIGHUP reloads the config (an
invalid file keeps the old one running and says why); SIGTERM finishes the current
action and stops.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import faulthandler
import logging
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import Future
from typing import Callable

from dedupd.daemon import log as logmod
from dedupd.daemon.actions.errors import JournalError
from dedupd.daemon.actions.executor import Executor
from dedupd.daemon.actions.journal import Journal
from dedupd.daemon.actions.recover import recover
from dedupd.daemon.config import Config, find_config_file, load_config
from dedupd.daemon.control import ControlServer
from dedupd.daemon.errors import ConfigError
from dedupd.daemon.heap import release_free_memory
from dedupd.daemon.notify import Notifier
from dedupd.daemon.roots import RootHealth
from dedupd.daemon.scan import ScanCancelled, Scanner
from dedupd.daemon.operations import Operations
from dedupd.daemon.settle import Settler
from dedupd.daemon.state import edge_radius_problems, open_index
from dedupd.daemon.decide import root_of
from dedupd.daemon.watch import Change, ChangeQueue, OwnWrites, RootWatcher
from dedupd.daemon.walk import Excluder
from dedupd.index.errors import IndexFailure
from dedupd.kernels import warm
from dedupd.kernels.errors import DedupdError

log = logmod.log
EXIT_OK, EXIT_CONFIG, EXIT_STATE = 0, 2, 3
SPACE_LOW, SPACE_BACK = 8 << 20, 16 << 20  # free bytes in the state dir: a failed write below LOW is "full"; work resumes above BACK
BEAT_TIMEOUT = 120.0  # seconds without a main-thread beat before the watchdog pings stop
PURGE_EVERY = 3600.0
ROOT_CHECK = 5.0  # seconds between checks whether an unavailable root is back
# The groups are stored for `dedupctl groups` with the daemon down and for the status at the next
# start. A store is O(groups) (1-2 s at a million files): it waits until nothing has happened for
# SAVE_IDLE seconds (a file copied right after a round is not kept waiting behind it), and runs at
# the latest SAVE_MAX seconds after the last store; and at exit.
SAVE_IDLE, SAVE_MAX = 10.0, 300.0
UPGRADE_GRACE = 300.0  # seconds systemd waits for the next step of an index upgrade (a step: ~1 s here)
IDLE_TICK, PENDING_TICK = 0.5, 0.1  # seconds the main loop waits for a change: nothing pending / paths settling


class Service:
    def __init__(self, config_path: str, *, environ=os.environ):
        self.config_path = config_path
        self.notifier = Notifier.from_env(environ)
        self.queue = ChangeQueue()
        self.own = OwnWrites()  # re-made in _build with a grace that covers the polling interval
        self.commands: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.paused = threading.Event()
        self.reload_requested = threading.Event()
        self.rescan_requested = threading.Event()
        self.started = time.time()
        self.last_beat = time.monotonic()
        self.watchers: list[RootWatcher] = []
        self.busy = ""  # what the main thread is doing ("" when waiting): `dedupctl status` says it
        self.problem = ""  # why the daemon neither scans nor acts (a full state directory), else ""
        self.control: ControlServer | None = None
        self.index = self.journal = self.ops = None
        self.groups_saved_at = self.last_activity = time.monotonic()

    # -- lifecycle --------------------------------------------------------------------

    def run(self) -> int:
        try:
            self._start()
        except ConfigError as exc:
            log.error("dedupd: %s", exc)
            return EXIT_CONFIG
        except (IndexFailure, DedupdError, OSError) as exc:
            log.error("dedupd: cannot start: %s", exc)
            self._close()
            return EXIT_STATE
        try:
            self._loop()
        except (IndexFailure, JournalError) as exc:
            log.critical("dedupd: stopping: %s", exc)
            return EXIT_STATE
        finally:
            self.notifier.stopping()
            self._save_groups_now("at exit")
            self._close()
            log.info("dedupd: stopped")
        return EXIT_OK

    def _start(self) -> None:
        self.config = load_config(self.config_path)
        log.info("dedupd %s: config %s, %d root(s)", os.getpid(), self.config.source, len(self.config.roots))
        self.index = open_index(self.config, on_upgrade=self._upgrading)
        self.journal = Journal.open(self.config.state_dir)
        report = recover(self.journal, on_own_write=self.own.add)
        self.own.discard_all()
        log.info("dedupd: journal recovered: %s", report)
        self.health = RootHealth(self.config.state_dir)
        warm()
        self._build(self.config)
        self.ops.publish_from_index()
        self.control = ControlServer(self.config.socket_path, self._handle, mode=self.config.socket_mode,
                                     group=self.config.socket_group)
        self.control.start()
        self._start_watchers()
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())
        threading.Thread(target=self._heartbeat, name="dedupd-heartbeat", daemon=True).start()
        self.notifier.ready(status="ready; starting the reconciliation scan")
        log.info("dedupd: ready (control socket %s)", self.config.socket_path)
        self.rescan_requested.set()

    def _build(self, config: Config) -> None:
        """Everything derived from the config (re-made on reload)."""
        self.config = config
        self.excluder = Excluder(config.exclude, config.extensions)
        if any(r.watch == "poll" for r in config.roots):  # a poll sees our rename up to two intervals later
            self.own = OwnWrites(grace=2 * config.poll_seconds + 1)
        self.settler = Settler(config.settle_seconds, config.storm_events)
        scanner = Scanner(config, self.index, progress=False)
        scanner.on_tick = self._beat
        scanner.should_stop = self.stopping.is_set
        scanner.autosave_groups = False  # stored when idle: `_save_groups_when_idle`
        executor = Executor(self.journal, on_own_write=self.own.add)
        self.ops = Operations(config, self.index, self.journal, scanner, executor, self.health, self.notifier)
        self.ops.own_write = self.own.add
        self.ops.own_done = self.own.discard_all
        self.next_full_scan = time.monotonic() + config.rescan_minutes * 60 if config.rescan_minutes else float("inf")
        self.next_purge = time.monotonic()
        self.next_root_check = time.monotonic()

    def _close(self) -> None:
        for w in self.watchers:
            w.stop()
        if self.control is not None:
            self.control.stop()
        for thing in (self.journal, self.index):
            if thing is not None:
                thing.close()

    # -- the main loop ----------------------------------------------------------------

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self._beat()
            self._run_commands()
            if self.reload_requested.is_set():
                self._reload()
            # while paths settle, look again often: a file is acted on soon after its settle period ends
            batch = self.queue.get_batch(timeout=PENDING_TICK if self.settler.pending() else IDLE_TICK)
            if batch:
                self.last_activity = time.monotonic()
            for change in batch:
                if change.kind == "rescan":
                    log.warning("dedupd: %s needs a full rescan (watch overflow or error)", change.root)
                    self.rescan_requested.set()
                else:
                    self.settler.note(change)
            self._restart_dead_watchers()
            if self.paused.is_set() or not self._space_ok():
                continue
            try:
                self._work()
                self._save_groups_when_idle()
            except ScanCancelled:
                break
            except Exception as exc:
                if self._out_of_space(exc):
                    continue
                if isinstance(exc, (IndexFailure, JournalError)):
                    raise  # the index or journal is unusable: stop with a clear message (ARCHITECTURE.md section 9)
                # a bug in one round must not take the watcher and the socket down with it
                log.exception("dedupd: unexpected error in the work loop; retrying in 30 s")
                self.stopping.wait(30.0)

    # -- a full state directory -----------------------------------------------------------

    def _out_of_space(self, exc: BaseException) -> bool:
        """True when `exc` came from a full state directory: then nothing is scanned or
        acted on (status and STATUS= say so) until `_space_ok` sees space again. LMDB
        reports a short write as EIO, so the free space decides as much as ENOSPC."""
        free = _free_bytes(self.config.state_dir)
        if free >= SPACE_LOW and not _no_space(exc):
            return False
        self.problem = (f"the state directory {self.config.state_dir} is full ({free >> 20} MiB free): not scanning "
                        f"or acting until {SPACE_BACK >> 20} MiB are free ({exc})")
        log.error("dedupd: %s", self.problem)
        self.notifier.status(self.problem)
        self.rescan_requested.set()  # what the failed round saw is reconciled once there is space
        return True

    def _space_ok(self) -> bool:
        """No problem, or space is back: an action the failed write cut short is
        resolved first (SAFETY.md rule 21), then work resumes."""
        if not self.problem:
            return True
        if _free_bytes(self.config.state_dir) < SPACE_BACK:
            return False
        try:
            report = recover(self.journal, on_own_write=self.own.add)
        except Exception as exc:
            if self._out_of_space(exc):
                return False
            raise
        finally:
            self.own.discard_all()
        log.info("dedupd: the state directory has space again; resuming (journal recovered: %s)", report)
        self.problem = ""
        self.notifier.status("resumed: the state directory has space again")
        return True

    def _upgrading(self, records: int) -> None:
        """Progress of an in-place upgrade of an older index at start (~1 min per million
        records here, several times that on a slow NAS): each step pushes systemd's start
        timeout (TimeoutStartSec) UPGRADE_GRACE further, so an upgrade that makes progress is
        never killed half way (it would resume, but restart after restart), while one that
        hangs still is; and says how far it got (`systemctl status`)."""
        self.notifier.send(EXTEND_TIMEOUT_USEC=int(UPGRADE_GRACE * 1e6),
                           STATUS=f"upgrading the index in place: {records:,} records done")

    def _work(self) -> None:
        now = time.monotonic()
        if now >= self.next_root_check:
            self.next_root_check = now + ROOT_CHECK
            if self.ops.roots_back():
                self.rescan_requested.set()
        if self.rescan_requested.is_set() or now >= self.next_full_scan:
            self.rescan_requested.clear()
            with self._busy("full scan"):
                self.ops.full_scan(self.paused.is_set)
            self.last_activity = time.monotonic()
            self.next_full_scan = now + self.config.rescan_minutes * 60 if self.config.rescan_minutes else float("inf")
        files, dirs, gone = self.settler.ready()
        if files or dirs or gone:
            with self._busy(f"{len(files) + len(dirs) + len(gone)} settled path(s)"):
                self.ops.incremental(files + dirs + gone, self.paused.is_set)
            self.last_activity = time.monotonic()
        for path in self.ops.take_deferred():
            root = root_of(path, self.config.roots)
            if root is not None:
                self.settler.note(Change("file", path, root.path))
        if now >= self.next_purge:
            self.ops.purge_expired()
            self.next_purge = now + PURGE_EVERY

    def _save_groups_when_idle(self) -> None:
        now = time.monotonic()
        idle = not len(self.queue) and not self.settler.pending() and now - self.last_activity >= SAVE_IDLE
        if self.ops.groups_unsaved and (idle or now - self.groups_saved_at >= SAVE_MAX):
            with self._busy("storing the groups"):
                self.ops.save_groups()
            self.groups_saved_at = time.monotonic()

    def _save_groups_now(self, when: str) -> None:
        """Store the groups as they are now (at exit: for `dedupctl groups` while the daemon
        is down; before a reload). A failure is logged, not raised: the index may be what
        stopped the daemon, and the next full scan regroups anyway."""
        if self.ops is None:
            return
        try:
            self.ops.save_groups()
        except Exception as exc:
            log.warning("dedupd: the groups could not be stored %s (the next full scan regroups): %s", when, exc)

    @contextlib.contextmanager
    def _busy(self, what: str):
        """Say in the status what the main thread does (a queue depth of 0 alone does not
        mean idle: settled paths leave the queue when their scan starts)."""
        self.busy = what
        try:
            yield
        finally:
            self.busy = ""
            release_free_memory()  # a burst's freed memory back to the system: ~10 MB at 1M files

    def _beat(self) -> None:
        self.last_beat = time.monotonic()
        if self.ops is not None:
            self.ops.queue_depth = len(self.queue) + self.settler.pending()

    def _heartbeat(self) -> None:
        interval = self.notifier.watchdog_interval()
        while not self.stopping.wait(interval or 5.0):
            if interval and self._threads_alive():
                self.notifier.watchdog()

    def _threads_alive(self) -> bool:
        beat_ok = time.monotonic() - self.last_beat < BEAT_TIMEOUT
        watch_ok = all(w.alive() or w.state == "unavailable" for w in self.watchers)
        return beat_ok and watch_ok and (self.control is None or self.control.alive())

    # -- watchers -----------------------------------------------------------------------

    def _start_watchers(self) -> None:
        self.watchers = []
        for root in self.config.roots:
            watcher = RootWatcher(root, self.queue, self.excluder, self.own, poll_seconds=self.config.poll_seconds)
            watcher.start()
            log.info("dedupd: watching %s (%s, mode %s)", root.path, watcher.state, root.mode)
            self.watchers.append(watcher)
        self.ops.watch_states = lambda: {w.root.path: w.state for w in self.watchers}

    def _restart_dead_watchers(self) -> None:
        """Restart dead observers (a returning root gets its watch back); a root whose
        inotify watch limit is exhausted falls back to polling, with the reason logged."""
        for i, w in enumerate(self.watchers):
            if w.needs_poll and w.root.watch != "poll":
                log.warning("dedupd: %s: %s; watching it by polling instead", w.root.path, w.last_error)
                w.stop()
                poll_root = dataclasses.replace(w.root, watch="poll")
                self.watchers[i] = w = RootWatcher(poll_root, self.queue, self.excluder, self.own,
                                                   poll_seconds=self.config.poll_seconds)
                w.start()
                self.rescan_requested.set()
            elif w.restart_if_dead():
                log.warning("dedupd: the watcher of %s was restarted (%s); full rescan queued", w.root.path,
                            w.last_error or "its thread had stopped")

    # -- reload -------------------------------------------------------------------------

    def _reload(self) -> None:
        self.reload_requested.clear()
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
            if new.state_dir != self.config.state_dir or new.socket_path != self.config.socket_path:
                raise ConfigError(["state_dir and control.socket take effect only after a restart"], new.source)
            if problems := edge_radius_problems(new, self.index):
                raise ConfigError(problems, new.source)
        except ConfigError as exc:
            log.error("dedupd: reload refused, keeping the running config: %s", exc)
            self.notifier.ready(status="reload refused: invalid config (see the log)")
            return
        for w in self.watchers:
            w.stop()
        self._save_groups_now("before the reload")  # the new scanner regroups from the index
        self._build(new)
        self._start_watchers()
        self.rescan_requested.set()
        log.info("dedupd: config reloaded from %s", new.source)
        self.notifier.ready(status="config reloaded")

    # -- control --------------------------------------------------------------------------

    def _handle(self, request: dict) -> dict:
        """Runs in the control thread: answer from snapshots, or hand work to the main thread."""
        cmd, args = request.get("cmd"), request.get("args") or {}
        if cmd == "status":
            return self.ops.status_snapshot(daemon=self._daemon_status())
        if cmd == "groups":
            return {"groups": self.ops.groups_snapshot(args.get("tier"))}
        if cmd in ("pause", "resume"):
            (self.paused.set if cmd == "pause" else self.paused.clear)()
            log.info("dedupd: %sd by uid %s", cmd, request.get("peer_uid"))
            return {"paused": self.paused.is_set()}
        if cmd in ("rescan", "undo", "purge", "restore"):
            if cmd != "rescan" and request.get("peer_uid") not in (0, os.getuid()):
                raise PermissionError(f"{cmd} is only allowed to root and to the daemon's user")
            return self._call_main(getattr(self.ops, cmd), args)
        raise ValueError(f"unknown command {cmd!r}; known: status, groups, pause, resume, rescan, undo, purge, restore")

    def _call_main(self, fn: Callable[[dict], dict], args: dict, timeout: float = 600.0) -> dict:
        future: Future = Future()
        self.commands.put((fn, args, future))
        return future.result(timeout=timeout)

    def _run_commands(self) -> None:
        while True:
            try:
                fn, args, future = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                with self._busy(getattr(fn, "__name__", "a command")):
                    future.set_result(fn(args))
            except Exception as exc:  # the client gets the message; the daemon goes on
                future.set_exception(exc)

    def _daemon_status(self) -> dict:
        return {
            "running": True,
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - self.started, 1),
            "paused": self.paused.is_set(),
            "queue_depth": len(self.queue) + self.settler.pending(),
            "busy": self.busy,
            "problem": self.problem,
        }


def _free_bytes(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def _no_space(exc: BaseException | None) -> bool:
    """ENOSPC or EDQUOT anywhere in the exception's chain."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dedupd", description="The dedupd service (runs in the foreground; systemd Type=notify).")
    parser.add_argument("--config", help="config file (default: $DEDUPD_CONFIG, ./config.yaml, /etc/dedupd/config.yaml)")
    parser.add_argument("--debug", action="store_true", help="log debug events too")
    args = parser.parse_args(argv)
    logmod.setup(logging.DEBUG if args.debug else logging.INFO)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` prints every thread's stack: for a stuck daemon
    try:
        path = find_config_file(args.config)
    except ConfigError as exc:
        log.error("dedupd: %s", exc)
        return EXIT_CONFIG
    return Service(str(path)).run()


if __name__ == "__main__":
    sys.exit(main())
