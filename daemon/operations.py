"""The main thread's work: scan, decide, act, keep the index true, publish snapshots.

Every method except the two `*_snapshot` readers runs on the service's main thread,
the only thread that writes to the index and the journal or changes a file. The
snapshots are plain values replaced atomically, so the control thread can read them
while a scan runs.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Callable

from dedupd.daemon import log as logmod
from dedupd.daemon import actions
from dedupd.daemon.actions.plan import Action
from dedupd.daemon.config import Config
from dedupd.daemon.decide import decide, root_of
from dedupd.daemon.grouping import Group
from dedupd.daemon.status import Census, GroupTotals, collect_status, stored_totals, totals_of_stored_groups
from dedupd.index.records import FileRecord

log = logmod.log


def _first_link(path: str, root: str) -> str:
    """`path`, or its highest ancestor below `root` that is a symlink: a scan of a
    symlink reads nothing through it and sweeps what was indexed under its name, so a
    folder a user swapped for a link to elsewhere (or a `rescan` through one) never
    makes the daemon read outside the root."""
    current = root
    for part in os.path.relpath(path, root).split(os.sep)[:-1]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            return current
    return path


class Operations:
    def __init__(self, config: Config, index, journal, scanner, executor, health, notifier):
        self.config = config
        self.index = index
        self.journal = journal
        self.scanner = scanner
        self.executor = executor
        self.health = health
        self.notifier = notifier
        self.queue_depth = 0
        self.own_write: Callable[[str], None] = lambda path: None  # the service passes OwnWrites.add
        self.own_done: Callable[[], None] = lambda: None  # ... and OwnWrites.discard_all: our change is over
        self.watch_states: Callable[[], dict] = dict
        self.available: dict[str, bool] = {}
        self.aborts: Counter = Counter()  # actions not carried out, by reason (since start)
        self.done = 0
        self._deferred: list[str] = []
        self._skips_seen: set[tuple[str, str]] = set()
        self._decide_all = True  # the next round decides over every group (start, after a pause)
        self._lock = threading.Lock()
        self._status: dict = {}
        self._groups: list[Group | dict] | None = []  # None: the stored groups, read when first asked for

    # -- scanning -----------------------------------------------------------------------

    def full_scan(self, paused: Callable[[], bool]) -> None:
        """The reconciliation pass over every available root (unavailable ones are left as indexed)."""
        roots = [r.path for r in self.config.roots if self._check_root(r.path)]
        self.notifier.status(f"scanning {len(roots)} root(s)")
        self._decide_all = True  # a reconciliation pass looks at every group again
        report = self.scanner.run(roots) if roots else None
        for root in self.config.roots:
            if root.path in roots:
                self.health.mark(root.path, write=root.destructive)
        if report is not None:
            log.info("dedupd: full scan: %d seen, %d fingerprinted, %d removed, %d group(s), %.1f s",
                     report.seen, report.fingerprinted, report.removed, report.groups, report.seconds)
        self._after_scan(paused)

    def incremental(self, paths: list[str], paused: Callable[[], bool]) -> None:
        """Bring the named files and directories up to date (settled events)."""
        wanted = sorted({_first_link(p, root.path) for p in paths
                         if (root := root_of(p, self.config.roots)) and self._check_root(root.path)})
        if not wanted:
            return
        report = self.scanner.run(wanted)
        log.info("dedupd: %d settled path(s): %d fingerprinted, %d removed", len(wanted), report.fingerprinted, report.removed)
        self._after_scan(paused, wanted)

    def roots_back(self) -> list[str]:
        """Roots that were unavailable and are back (the service asks every few seconds):
        events of the time they were away were dropped or never came, so each needs a
        full reconciliation scan. Without this a root back on the same filesystem (a
        bind mount; its st_dev never changed, so no watcher restarts) stayed stale."""
        back = [p for p, ok in list(self.available.items()) if not ok and self._check_root(p)]
        for path in back:
            log.info("dedupd: root %s is available again; rescanning", path)
        return back

    def _check_root(self, path: str) -> bool:
        state = self.health.check(path)
        ok = state == "available"
        if self.available.get(path, True) and not ok:
            log.warning("dedupd: root %s is unavailable (%s): nothing in it is acted on or forgotten",
                        path, self.health.last_reason(path))
        self.available[path] = ok
        return ok

    # -- deciding and acting -------------------------------------------------------------

    def _after_scan(self, paused: Callable[[], bool], paths: list[str] | None = None) -> None:
        """Regroup what changed and act on it: on the groups this round changed or whose
        files it named (`paths`: a deferred file comes back unchanged), or on every group
        after a full scan or a pause. A round costs what it touched."""
        groups = self.scanner.regroup()
        changed = self.scanner.groups.take_changed()
        if paused():
            self._decide_all = True
        else:
            todo = groups if self._decide_all or paths is None else self._touched(changed, paths)
            self._decide_all = False
            groups = self._act(todo, paused) or groups
        self._publish(groups)

    def _touched(self, changed: list[Group], paths: list[str]) -> list[Group]:
        cache = self.scanner.groups
        keepers = {g.keep.file_id for g in changed}
        for path in paths:
            record = self.index.by_path(path)
            if record is not None and record.file_id in cache.group_of:
                keepers.add(cache.group_of[record.file_id])
        return [cache.groups[k] for k in keepers if k in cache.groups]

    def _act(self, groups: list[Group], paused: Callable[[], bool]) -> list[Group] | None:
        decision = decide(groups, self.config, available=lambda p: self.available.get(p, False),
                          already_replaced=self._leave_alone)
        self._deferred.extend(decision.deferred)
        for skip in decision.plan.skipped:
            if (skip.path, skip.reason) not in self._skips_seen:  # every regroup sees them again: count once
                self._skips_seen.add((skip.path, skip.reason))
                self.aborts[skip.reason] += 1
                log.info("dedupd: not replacing %s: %s %s", skip.path, skip.reason, skip.detail)
        touched = []
        for action in decision.plan.actions:
            if paused() or self.scanner.should_stop():
                break  # SIGTERM or pause: the current action finished, no new one starts
            touched.extend(self._execute(action))
        if not touched:
            return None
        self.scanner.run(touched)  # the index follows the disk: links, stubs and symlinks replace records
        return self.scanner.regroup()

    def _execute(self, action: Action) -> list[str]:
        try:
            outcome = self.executor.execute(action)
        finally:
            self.own_done()  # from now on a change to these names is the user's
        if outcome.status == "done":
            self.done += 1
            log.info("dedupd: %s %s -> %s (%s, action %s)", action.kind, action.target.path, action.keeper.path,
                     action.tier, action.action_id)
            return [action.target.path, outcome.result_path]
        self.aborts[outcome.reason] += 1
        log.warning("dedupd: did not %s %s: %s %s", action.kind, action.target.path, outcome.reason, outcome.detail)
        if outcome.reason == "changed":
            self._deferred.append(action.target.path)  # looked at again once it settles
        return [action.target.path]

    def _leave_alone(self, record: FileRecord) -> bool:
        """A replacement we made (nothing to do), or a file the user restored with undo (never again)."""
        entries = list(self.journal.entries(path=record.path))
        if not entries:
            return False
        last = entries[-1]
        return last.state in ("undone",) or (last.state in ("done", "purged") and last.result_ino == record.ino)

    def save_groups(self) -> bool:
        """Store the groups if they changed since the last store (the service calls this when
        idle and at exit: it is O(groups), kept off the way from a settled file to its action)."""
        return self.scanner.save_groups()

    @property
    def groups_unsaved(self) -> bool:
        return self.scanner.groups_unsaved

    def take_deferred(self) -> list[str]:
        out, self._deferred = self._deferred, []
        return out

    # -- commands from dedupctl (run on the main thread) ---------------------------------

    def rescan(self, args: dict) -> dict:
        paths = args.get("paths") or []
        if paths:
            self.incremental([os.path.abspath(p) for p in paths], lambda: False)
        else:
            self.full_scan(lambda: False)
        return {"rescanned": paths or [r.path for r in self.config.roots]}

    def undo(self, args: dict) -> dict:
        entries = actions.select(self.journal, path=args.get("path"), action_id=args.get("action_id"),
                                  since=args.get("since"))
        results, touched = [], []
        for entry in entries:
            try:
                actions.undo(self.journal, entry.action_id, on_own_write=self.own_write)
                results.append({"action_id": entry.action_id, "path": entry.target.path, "undone": True})
                touched += [entry.target.path, entry.final_path]
            except Exception as exc:  # typed refusals carry an actionable message
                results.append({"action_id": entry.action_id, "path": entry.target.path, "undone": False, "error": str(exc)})
            finally:
                self.own_done()
        if touched:
            self.scanner.run(sorted(set(touched)))
            self._publish(self.scanner.regroup())
        return {"results": results}

    def purge(self, args: dict) -> dict:
        days = args.get("older_than_days")
        seconds = self.config.retention_days * 86400 if days is None else float(days) * 86400
        report = actions.purge(self.journal, older_than_seconds=seconds)
        return {"entries": len(report.entries), "action_ids": list(report.entries), "bytes_freed": report.bytes_freed,
                "problems": list(report.problems)}

    def purge_expired(self) -> None:
        report = actions.purge(self.journal, older_than_seconds=self.config.retention_days * 86400)
        if report.entries:
            log.info("dedupd: purged %d quarantine entr(ies), %d bytes freed", len(report.entries), report.bytes_freed)
        for problem in report.problems:
            log.warning("dedupd: purge: %s", problem)

    def restore(self, args: dict) -> dict:
        stub = os.path.abspath(args["stub"])
        try:
            path = actions.restore_stub(stub, self.journal, roots=[r.path for r in self.config.roots],
                                        on_own_write=self.own_write)
        finally:
            self.own_done()
        self.scanner.run(sorted({stub, path}))
        self._publish(self.scanner.regroup())
        return {"restored": path}

    # -- snapshots for the control thread --------------------------------------------------

    def publish_from_index(self) -> None:
        """The status and groups as the index holds them (before the first scan of this
        run), reading no record: the stored census (or none yet: counting a large index
        would delay READY) and the stored group totals. The groups themselves are read
        when `dedupctl groups` first asks (parsing 50,000 took 1.5 s)."""
        census = Census.stored(self.index) or Census()
        totals = stored_totals(self.index)
        if totals is None:  # groups stored without totals (by an older dedupd): read them and their files
            groups = list(self.index.iter_groups())
            self._publish_snapshot(groups, census, totals_of_stored_groups(self.index, groups))
        else:
            self._publish_snapshot(None, census, totals)

    def _publish(self, groups: list[Group]) -> None:
        self._publish_snapshot(groups, self.scanner.census, GroupTotals.of_groups(groups))

    def _publish_snapshot(self, groups: list[Group] | list[dict] | None, census: Census, totals: GroupTotals) -> None:
        status = collect_status(self.config, self.index, census, totals)
        with self._lock:
            self._status, self._groups = status, groups
        if self.notifier is not None:  # what `systemctl status dedupd` shows
            tiers = status["members_by_tier"]
            self.notifier.status(f"{status['files_indexed']} files, {status['groups']} groups "
                                 f"(exact {tiers['exact']}, act {tiers['act']}, report {tiers['report']}), "
                                 f"{self.done} replaced since start")

    def status_snapshot(self, daemon: dict) -> dict:
        with self._lock:
            status = dict(self._status)
        watch = self.watch_states()
        status["roots"] = [
            dict(r, watch=watch.get(r["path"], "unknown") if self.available.get(r["path"], True) else "unavailable")
            for r in status.get("roots", [{"path": r.path, "mode": r.mode, "destructive": r.destructive} for r in self.config.roots])
        ]
        status["actions"] = {"done_since_start": self.done, "not_done_by_reason": dict(self.aborts), **self.journal.totals()}
        status["daemon"] = daemon
        return status

    def groups_snapshot(self, tier: str | None) -> list[dict]:
        """The groups in JSON form (runs in the control thread: `Group`s are immutable, the
        list is replaced whole; the stored groups are read here, once, if not yet)."""
        with self._lock:
            groups = self._groups
        if groups is None:
            stored = list(self.index.iter_groups())  # outside the lock: the main thread may publish meanwhile
            with self._lock:
                if self._groups is None:
                    self._groups = stored
                groups = self._groups
        groups = [g.to_json() if isinstance(g, Group) else g for g in groups]
        if tier:
            groups = [dict(g, members=[m for m in g["members"] if m["tier"] == tier]) for g in groups]
            groups = [g for g in groups if g["members"]]
        return groups
