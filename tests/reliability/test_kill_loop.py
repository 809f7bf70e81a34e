"""The real daemon SIGKILLed again and again (issue 6, part 5): at random moments and
at named failpoints of every action mode, with the SAFETY.md invariants checked while
it is dead and after every restart.

One daemon watches one root per action mode (hardlink, symlink, stub, and reflink on
a loop-mounted XFS image when root can make one); before every start, new exact and
re-encoded copies arrive in each root, so there is always work to interrupt. Each
round: start (recovery runs before READY=1), then either SIGKILL after a random delay
or let it SIGKILL itself at a random failpoint (`DEDUPD_FAILPOINT`). While it is dead:
no byte lost (every content written is in a tree or a quarantine), every temporary
name belongs to an unfinished journal entry, every quarantined file to an entry (the
journal read from LMDB, the truth: its JSON-lines mirror can lack the very last step
before a kill). After the next READY=1: every entry that was unfinished is resolved
and its temporary name is gone. At the end, a clean run settles: no unfinished entry, no
temporary name, the index equals a fresh reindex, and `undo` of everything brings
every file's own bytes back to its name.

CI runs `DEDUPD_KILLS` = 6 rounds (a daemon start costs 1.5-5 s here); `DEDUPD_KILLS=200` is the long run
(docs/reliability.md).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

from reliability_kit import Daemon, index_diff, journal_latest, lost, photo_bytes, sha, temp_names

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon" / "actions"))
from actions_kit import reflink_dir  # noqa: E402

from dedupd.daemon.actions.executor import FAILPOINTS  # noqa: E402
from dedupd.daemon.actions.journal import UNFINISHED, Journal  # noqa: E402
from dedupd.daemon.config.schema import QUARANTINE_DIR  # noqa: E402

KILLS = int(os.environ.get("DEDUPD_KILLS", "6"))
SEED = int(os.environ.get("DEDUPD_KILL_SEED", "1"))


class Feed:
    """New copies for every root before every start; remembers what each name held."""

    def __init__(self, roots: dict[str, Path]):
        self.roots = roots
        self.written: dict[str, bytes] = {}
        self.seed = 0

    def more(self, pairs: int = 1) -> None:
        for mode, root in self.roots.items():
            for _ in range(pairs):
                self.seed += 1
                exact = self.seed % 2 == 0
                folder = root / f"r{self.seed:04d}"
                self._put(folder / "keep.jpg", photo_bytes(self.seed, size=160), 1_500_000_000)
                copy = photo_bytes(self.seed, size=160) if exact else photo_bytes(self.seed, ".jpg", 70, size=160, scale=0.75)
                self._put(folder / "copy.jpg", copy, 1_600_000_000)

    def _put(self, path: Path, data: bytes, mtime: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))
        self.written[str(path)] = sha(path)


def journal_states(d: Daemon) -> dict:
    """action id -> entry, from the journal itself (LMDB, the truth; its JSON-lines
    mirror may lack the last step before a kill). Only while the daemon is down."""
    with Journal.open(str(d.state_dir)) as journal:
        return {e.action_id: e for e in journal.entries()}


def at_rest(d: Daemon, roots: list[Path], feed: Feed) -> set[str]:
    """Invariants while the daemon is dead; returns the unfinished action ids."""
    assert lost(roots, feed.written) == [], "bytes lost"
    entries = journal_states(d)
    unfinished = {a for a, e in entries.items() if e.state in UNFINISHED}
    ours = {entries[a].temp_path for a in unfinished}
    strays = [t for root in roots for t in temp_names(root) if t not in ours]
    assert strays == [], f"temporary names no unfinished journal entry accounts for: {strays}"
    accounted = {e.quarantine_path for e in entries.values()}
    for root in roots:
        for p in (root / QUARANTINE_DIR).rglob("*"):
            assert not p.is_file() or str(p) in accounted, f"{p} is in quarantine without a journal entry"
    return unfinished


def after_restart(d: Daemon, unfinished: set[str]) -> None:
    """Recovery ran before READY=1: every entry unfinished at the kill is resolved (its
    resolution is in the mirror: recovery wrote it before READY=1)."""
    latest = journal_latest(d.state_dir)
    still = {a: latest[a]["state"] for a in unfinished if latest[a]["state"] in UNFINISHED}
    assert still == {}, f"unresolved after recovery: {still}\n{d.logtext()}"
    for a in unfinished:
        assert not os.path.lexists(latest[a]["temp_path"]), latest[a]["temp_path"]


def one_round(d: Daemon, rng: random.Random, failpoints: list[str], n: int, unfinished: set[str]) -> str:
    """Start (and check the recovery), kill (a random moment or a failpoint); returns
    how it died."""
    use_failpoint = n % 2 == 1
    d.start_env = {"DEDUPD_FAILPOINT": rng.choice(failpoints)} if use_failpoint else {}
    d.start()
    after_restart(d, unfinished)
    if use_failpoint:
        try:
            d.proc.wait(8)
            return d.start_env["DEDUPD_FAILPOINT"]
        except Exception:  # that step was not reached this time
            pass
    else:
        time.sleep(rng.uniform(0.05, 2.0))
    d.kill()
    return "random"


def test_kill_loop(tmp_path):
    rng = random.Random(SEED)
    with reflink_dir(tmp_path) as (xfs, _why):
        roots = {m: tmp_path / m for m in ("hardlink", "symlink", "stub")}
        if xfs is not None:
            roots["reflink"] = Path(xfs) / "reflink"
        for root in roots.values():
            root.mkdir(parents=True, exist_ok=True)
        failpoints = [f for f in FAILPOINTS if f.split(".")[0] in roots]
        feed = Feed(roots)
        d = Daemon(tmp_path, [(root, mode) for mode, root in roots.items()], settle=0.3)
        deaths: dict[str, int] = {}
        try:
            unfinished: set[str] = set()
            for n in range(KILLS):
                feed.more()
                how = one_round(d, rng, failpoints, n, unfinished)
                deaths[how] = deaths.get(how, 0) + 1
                unfinished = at_rest(d, list(roots.values()), feed)
            d.start_env = {}
            d.start()
            after_restart(d, unfinished)
            d.settled()
            assert not [t for root in roots.values() for t in temp_names(root)]
            undone = d.request("undo", since=0)["results"]
            assert all(r["undone"] for r in undone), [r for r in undone if not r["undone"]]
            done = len(undone)
            assert done >= len(roots)  # the work did get done between the kills
            assert d.stop() == 0
            assert not [a for a, e in journal_states(d).items() if e.state in UNFINISHED]
            for path, digest in feed.written.items():  # every file's own bytes back at its name
                assert sha(path) == digest, path
            only_index, only_reindex = index_diff(d.loaded(), tmp_path / "reindex")
            assert not only_index and not only_reindex, (only_index[:3], only_reindex[:3])
        finally:
            d.close()
        print(f"\n{KILLS} kills survived ({deaths}); {done} replacements done and undone; bytes lost 0")
