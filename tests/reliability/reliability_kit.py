"""Shared by the security, load, fault and kill-loop tests and by `bench/soak.py`.

- `Daemon`: the e2e helper (`tests/e2e/test_daemon_e2e.py`) with a config of the
  test's choosing, a fast status call (the control socket, no `dedupctl` start-up)
  and /proc samples of the process (resident memory, descriptors, threads);
- `index_rows` / `reindex_rows` / `index_diff`: "the index equals a fresh reindex":
  the set of (path, dev, ino, size, mtime_ns, content_hash, code, state) of the
  daemon's index, opened read-only after it stopped, against a fresh `Scanner` run of
  the same tree into a new state directory;
- `journal_latest`: every action's last state from the journal's JSON-lines mirror
  (readable while the daemon runs, and after a SIGKILL);
- `lost`: expected contents found neither in the tree nor in the quarantine;
- `photo_bytes`: small real-photo images (crops of skimage photos), distinct per seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for extra in (TESTS, TESTS / "e2e"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import numpy as np  # noqa: E402

from dedupd.daemon.config import load_config  # noqa: E402
from dedupd.daemon.config.schema import QUARANTINE_DIR, TEMP_PREFIX  # noqa: E402
from dedupd.daemon.control import ControlClient  # noqa: E402
from dedupd.daemon.scan import Scanner  # noqa: E402
from dedupd.daemon.state import open_index  # noqa: E402
from test_daemon_e2e import Daemon as _E2EDaemon  # noqa: E402
from testimages import PHOTOS, encode, photo, resize  # noqa: E402

ROOT_ONLY = "needs root (chown to other users, mounts); CI runs unprivileged"


class Daemon(_E2EDaemon):
    """One real `dedupd` process. `roots`: (path, mode) or (path, mode, extra keys dict)."""

    def __init__(self, base: Path, roots: list, *, settle: float = 1.0, rescan_minutes: int = 0,
                 extra: str = "", state_dir: Path | None = None):
        super().__init__(base, [(r[0], r[1]) for r in roots])
        lines = []
        for r in roots:
            keys = {"path": f"'{r[0]}'", "mode": r[1], **(r[2] if len(r) > 2 else {})}
            lines.append("  - {" + ", ".join(f"{k}: {v}" for k, v in keys.items()) + "}\n")
        self.state_dir = Path(state_dir or base / "state")
        self.config.write_text(
            f"state_dir: '{self.state_dir}'\nroots:\n{''.join(lines)}workers: 2\n"
            f"daemon: {{settle_seconds: {settle}, rescan_minutes: {rescan_minutes}, poll_seconds: 0.5}}\n"
            f"control: {{socket: '{self.short / 'ctl.sock'}'{extra}}}\n"
        )

    @property
    def socket_path(self) -> str:
        return str(self.short / "ctl.sock")

    def loaded(self):
        return load_config(self.config)

    def request(self, cmd: str, **args):
        return ControlClient(self.socket_path, timeout=60).request(cmd, **args)

    def status(self) -> dict:
        return self.request("status")

    def idle(self) -> bool:
        """Nothing queued or settling, the main thread waiting, a first scan done."""
        d = self.status()
        return d["daemon"]["queue_depth"] == 0 and not d["daemon"].get("busy") and d.get("last_scan") is not None

    def settled(self, quiet_polls: int = 3, timeout: float = 120.0) -> None:
        """Wait until the queue is empty at `quiet_polls` polls in a row (0.3 s apart)."""
        deadline, quiet = time.monotonic() + timeout, 0
        while quiet < quiet_polls:
            assert time.monotonic() < deadline, f"not idle within {timeout} s\n{self.logtext()}"
            assert self.proc.poll() is None, self.logtext()
            quiet = quiet + 1 if self.idle() else 0
            time.sleep(0.3)

    def sample(self) -> dict:
        return proc_sample(self.proc.pid)

    def start(self) -> None:
        """Start (again): the log is appended to, so a kill loop keeps every run's lines."""
        env = dict(os.environ, NOTIFY_SOCKET=str(self.short / "notify.sock"), **self.start_env)
        if getattr(self, "log", None) is not None:
            self.log.close()
        self.log = open(self.base / "dedupd.log", "ab")
        self.messages = []
        self.notify.setblocking(False)
        try:
            while self.notify.recv(4096):  # what an earlier (killed) run said is not this run's
                pass
        except BlockingIOError:
            pass
        finally:
            self.notify.settimeout(0.5)
        self.proc = subprocess.Popen([sys.executable, "-m", "dedupd.daemon.service", "--config", str(self.config)],
                                     env=env, stderr=self.log, stdout=self.log)
        self.wait_notify("READY=1", 120)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)


def children(pid: int) -> list[int]:
    """Child processes of `pid` (decode workers), whichever thread started them."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0  # gone meanwhile


def proc_sample(pid: int) -> dict:
    """Resident memory (KiB; anonymous and file-backed apart: LMDB's map counts as
    file-backed and grows with the data), open descriptors and threads of `pid`."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return {"rss_kb": int(fields["VmRSS"][0]), "rss_anon_kb": int(fields["RssAnon"][0]),
            "rss_file_kb": int(fields["RssFile"][0]), "threads": int(fields["Threads"][0]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "children": len(kids := children(pid)),
            "children_rss_kb": sum(_rss_kb(c) for c in kids)}


# -- the index against a reindex -------------------------------------------------------


def row(r) -> tuple:
    return (r.path, r.dev, r.ino, r.size, r.mtime_ns, r.content_hash, r.code, r.state)


def index_rows(config) -> set[tuple]:
    """The rows of the index in `config.state_dir` (read-only: the daemon must be stopped
    or at least not mid-write for the answer to mean anything)."""
    index = open_index(config, readonly=True)
    try:
        return {row(r) for r in index.iter_records()}
    finally:
        index.close()


def reindex_rows(config, scratch: Path) -> set[tuple]:
    """The rows a fresh scan of the same roots writes into a new state directory."""
    fresh = dataclasses.replace(config, state_dir=str(scratch))
    index = open_index(fresh)
    try:
        Scanner(fresh, index, progress=False).run()
        return {row(r) for r in index.iter_records()}
    finally:
        index.close()


def index_diff(config, scratch: Path) -> tuple[list, list]:
    """(rows only the daemon's index has, rows only a reindex has), sorted; both empty
    when the index equals a fresh reindex."""
    ours, fresh = index_rows(config), reindex_rows(config, scratch)
    return sorted(ours - fresh, key=str), sorted(fresh - ours, key=str)


# -- bytes and the journal ---------------------------------------------------------------


def sha(path) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()


def contents(root: Path) -> tuple[set[bytes], set[bytes]]:
    """(sha256 of every regular file in the tree outside the quarantine, of every file in it)."""
    tree, quarantine = set(), set()
    for dirpath, dirnames, filenames in os.walk(root):
        inside = QUARANTINE_DIR in Path(dirpath).relative_to(root).parts
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                (quarantine if inside else tree).add(sha(p))
    return tree, quarantine


def lost(roots: list[Path], expected: dict[str, bytes]) -> list[str]:
    """Paths of `expected` (path -> sha256 the user last wrote there) whose bytes are
    neither in any tree nor in any quarantine."""
    everywhere: set[bytes] = set()
    for root in roots:
        tree, quarantine = contents(root)
        everywhere |= tree | quarantine
    return sorted(p for p, digest in expected.items() if digest not in everywhere)


def temp_names(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob(TEMP_PREFIX + "*"))


def journal_latest(state_dir: Path) -> dict[str, dict]:
    """action id -> its last record in `journal.jsonl` (a torn last line is ignored)."""
    latest: dict[str, dict] = {}
    path = Path(state_dir) / "journal.jsonl"
    if not path.exists():
        return latest
    for line in path.read_bytes().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        latest[rec["action_id"]] = rec
    return latest


# -- images ---------------------------------------------------------------------------------

_PHOTOS: list = []


def photo_bytes(seed: int, ext: str = ".jpg", quality: int = 85, size: int = 96, scale: float = 1.0) -> bytes:
    """A `size`-pixel square crop of a real photo, resized by `scale`; different seeds
    give different crops, one seed the same crop at every size, format and quality."""
    if not _PHOTOS:
        _PHOTOS.extend(photo(p) for p in PHOTOS)
    img = _PHOTOS[seed % len(_PHOTOS)]
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    y, x = int(rng.integers(0, h - size)), int(rng.integers(0, w - size))
    crop = np.ascontiguousarray(img[y:y + size, x:x + size])
    return encode(crop if scale == 1.0 else resize(crop, scale), ext, quality)
