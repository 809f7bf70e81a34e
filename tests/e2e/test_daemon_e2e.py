"""The real `dedupd` process on a temp tree of real photos, driven through `dedupctl`.

What must hold (the daemon issue): exactly the expected files become links/stubs; the
quarantine holds the replaced bytes; `dedupctl undo` restores every byte and the
metadata; a file that changes during the settle window is judged on its final bytes,
never on the first ones; a distinct-shot pair is never touched; READY=1 reaches
systemd; SIGTERM stops the daemon cleanly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dedupd.daemon.control import ControlClient
from testimages import encode, photo, resize, write

SETTLE = 1.0


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def meta(path) -> tuple:
    st = os.lstat(path)
    return (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size)


class Daemon:
    """One dedupd process with its own config, state dir, control socket and notify socket."""

    def __init__(self, base: Path, roots: list[tuple[Path, str]]):
        self.base = base
        self.short = Path(tempfile.mkdtemp(prefix="dd", dir="/tmp"))  # AF_UNIX paths must stay short
        self.config = base / "dedupd.yaml"
        roots_yaml = "".join(f"  - {{path: '{p}', mode: {m}}}\n" for p, m in roots)
        self.config.write_text(
            f"state_dir: '{base / 'state'}'\nroots:\n{roots_yaml}workers: 2\n"
            f"daemon: {{settle_seconds: {SETTLE}, rescan_minutes: 0, poll_seconds: 0.5}}\n"
            f"control: {{socket: '{self.short / 'ctl.sock'}'}}\n"
        )
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.short / "notify.sock"))
        self.notify.settimeout(0.5)
        self.messages: list[str] = []
        self.proc = None
        self.start_env: dict[str, str] = {}

    def start(self) -> None:
        env = dict(os.environ, NOTIFY_SOCKET=str(self.short / "notify.sock"), **self.start_env)
        self.log = open(self.base / "dedupd.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "dedupd.daemon.service", "--config", str(self.config)],
                                     env=env, stderr=self.log, stdout=self.log)
        self.wait_notify("READY=1", 120)

    def wait_notify(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logtext()
            try:
                self.messages.append(self.notify.recv(4096).decode())
            except socket.timeout:
                continue
            if any(text in m.split("\n") for m in self.messages):
                return
        raise AssertionError(f"no {text} within {timeout} s; got {self.messages}\n{self.logtext()}")

    def ctl(self, *args) -> tuple[int, str]:
        out = subprocess.run([sys.executable, "-m", "dedupd.daemon.cli", "--config", str(self.config), *args],
                             capture_output=True, text=True, timeout=300)
        return out.returncode, out.stdout + out.stderr

    def status(self) -> dict:
        code, out = self.ctl("status", "--json")
        assert code == 0, out
        return json.loads(out)

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            assert self.proc.poll() is None, self.logtext()
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}\n{self.logtext()}")

    def idle(self) -> bool:
        s = self.status()
        return s["daemon"]["queue_depth"] == 0 and not s["daemon"].get("busy") and s.get("last_scan") is not None

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)  # the stacks go to the log
                time.sleep(1)
                self.proc.kill()
                raise AssertionError(f"dedupd did not stop on SIGTERM\n{self.logtext()}") from None
        return self.proc.returncode if self.proc else 0

    def logtext(self) -> str:
        self.log.flush()
        return (self.base / "dedupd.log").read_text(errors="replace")[-6000:]

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.notify.close()
            shutil.rmtree(self.short, ignore_errors=True)


@pytest.fixture()
def library(tmp_path):
    """Originals, act-tier copies, a distinct-shot pair and an unrelated photo."""
    root = tmp_path / "photos"
    astro, coffee = photo("astronaut"), photo("coffee")
    t = {
        "astro": write(root / "originals/astronaut.jpg", encode(astro, ".jpg", 95), 1_600_000_000),
        "astro_q75": write(root / "copies/astronaut_q75.jpg", encode(astro, ".jpg", 75), 1_650_000_000),
        "astro_half": write(root / "copies/astronaut_half.jpg", encode(resize(astro, 0.5), ".jpg", 90), 1_650_000_000),
        "coffee": write(root / "originals/coffee.jpg", encode(coffee, ".jpg", 95), 1_600_000_000),
        "coffee_exact": write(root / "backup/coffee.jpg", encode(coffee, ".jpg", 95), 1_650_000_000),
        "moto_left": write(root / "stereo/left.jpg", encode(photo("motorcycle_left"), ".jpg", 90), 1_600_000_000),
        "moto_right": write(root / "stereo/right.jpg", encode(photo("motorcycle_right"), ".jpg", 90), 1_600_000_000),
        "chelsea": write(root / "originals/chelsea.jpg", encode(photo("chelsea"), ".jpg", 92), 1_600_000_000),
    }
    os.chmod(t["astro_q75"], 0o640)  # metadata undo must bring back
    return root, t


def quarantined_hashes(root: Path) -> set[str]:
    q = root / ".dedupd-quarantine"
    return {sha(p) for p in q.rglob("*") if p.is_file()} if q.exists() else set()


@pytest.mark.parametrize("mode", ["hardlink", "stub", "symlink"])
def test_daemon_replaces_exactly_the_verified_copies_and_undo_restores_them(tmp_path, library, mode):
    root, t = library
    before = {k: (sha(p), meta(p)) for k, p in t.items()}
    replaced = ("astro_q75", "astro_half", "coffee_exact")
    untouched = ("astro", "coffee", "moto_left", "moto_right", "chelsea")
    if mode == "hardlink":  # astro_q75 has mode 0640, its keeper 0644: a hard link would change one of them
        replaced, untouched = replaced[1:], untouched + replaced[:1]
    d = Daemon(tmp_path, [(root, mode)])
    try:
        d.start()
        d.wait_for(lambda: d.status()["actions"].get("done_since_start", 0) >= len(replaced) and d.idle(),
                   90, f"{len(replaced)} replacements")
        if mode == "hardlink":
            assert d.status()["actions"]["not_done_by_reason"].get("metadata_differs", 0) >= 1
        for name in replaced:
            p = t[name]
            if mode == "hardlink":
                keeper = t["astro" if name.startswith("astro") else "coffee"]
                assert os.stat(p).st_ino == os.stat(keeper).st_ino
            elif mode == "symlink":
                assert os.path.islink(p) and os.path.samefile(p, t["astro" if name.startswith("astro") else "coffee"])
            else:
                assert not os.path.lexists(p) and Path(str(p) + ".dedup").is_file()
        for name in untouched:  # keepers, the distinct shots, the unrelated photo
            assert (sha(t[name]), meta(t[name])) == before[name], name
        assert {before[n][0] for n in replaced} <= quarantined_hashes(root)
        s = d.status()
        assert s["daemon"]["running"] and s["actions"]["pending_bytes"] == sum(before[n][1][4] for n in replaced)
        assert any(r["destructive"] for r in s["roots"])

        code, out = d.ctl("undo", "--since", "1h")
        assert code == 0, out
        for name, (digest, m) in before.items():
            assert sha(t[name]) == digest and meta(t[name]) == m, name
            assert not Path(str(t[name]) + ".dedup").exists()
        time.sleep(3 * SETTLE)  # the daemon must not take them again: the user undid it
        d.wait_for(d.idle, 30, "idle after undo")
        for name, (digest, m) in before.items():
            assert sha(t[name]) == digest and meta(t[name]) == m, name
        assert d.stop() == 0
    finally:
        d.close()
    assert not list(root.rglob(".dedupd-tmp-*"))


def test_daemon_settles_new_files_and_judges_final_bytes(tmp_path, library):
    root, t = library
    d = Daemon(tmp_path, [(root, "hardlink")])
    try:
        d.start()
        d.wait_for(lambda: d.status()["actions"].get("done_since_start", 0) >= 2 and d.idle(), 90, "initial actions")
        # a new verified copy arriving while the daemon runs: replaced after it settles
        late = write(root / "incoming/astronaut_webp.webp", encode(photo("astronaut"), ".webp", 90))
        # a copy that is rewritten inside the settle window with a different photo: never replaced
        changing = root / "incoming/changing.jpg"
        write(changing, encode(photo("coffee"), ".jpg", 80))
        time.sleep(SETTLE / 3)
        write(changing, encode(photo("rocket"), ".jpg", 90))
        final = sha(changing)
        d.wait_for(lambda: os.stat(late).st_ino == os.stat(t["astro"]).st_ino, 60, "the late copy linked")
        d.wait_for(d.idle, 30, "idle")
        assert sha(changing) == final and os.stat(changing).st_nlink == 1
        assert d.stop() == 0
    finally:
        d.close()


def test_report_mode_touches_nothing_and_status_without_daemon(tmp_path, library):
    root, t = library
    before = {k: (sha(p), meta(p)) for k, p in t.items()}
    d = Daemon(tmp_path, [(root, "report")])
    try:
        d.start()
        d.wait_for(d.idle, 90, "first scan")
        s = d.status()
        assert s["members_by_tier"]["exact"] + s["members_by_tier"]["act"] >= 3
        assert [r["destructive"] for r in s["roots"]] == [False]
        assert d.stop() == 0
        code, out = d.ctl("status", "--json")  # the daemon is down: answered from the index
        assert code == 0 and json.loads(out)["daemon"]["running"] is False
        code, out = d.ctl("pause")
        assert code == 4 and "not running" in out
    finally:
        d.close()
    assert {k: (sha(p), meta(p)) for k, p in t.items()} == before
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == sorted(p.name for p in t.values())  # nothing written


def test_reload_watchdog_and_unavailable_root(tmp_path, library):
    """SIGHUP with a broken config keeps the daemon on the old one; a valid one is applied
    (RELOADING=1, then READY=1 again); WATCHDOG=1 arrives while all threads live; a root
    that vanishes is `unavailable` and its files stay indexed (never "all deleted")."""
    root, t = library
    d = Daemon(tmp_path, [(root, "report")])
    try:
        d.start_env = {"WATCHDOG_USEC": "1000000"}  # pings every 0.5 s
        d.start()
        d.wait_for(d.idle, 90, "first scan")
        d.wait_notify("WATCHDOG=1", 10)
        indexed = d.status()["files_indexed"]

        good = d.config.read_text()
        d.config.write_text(good.replace("workers: 2", "workers: lots\nthresholds: {act: 99, report: 10}"))
        d.messages.clear()
        d.proc.send_signal(signal.SIGHUP)
        d.wait_notify("RELOADING=1", 10)
        d.wait_for(lambda: "reload refused" in d.logtext(), 20, "the refusal in the log")
        assert "workers" in d.logtext()
        assert ControlClient(str(d.short / "ctl.sock")).request("status")["daemon"]["running"]  # dedupctl would refuse the broken file

        d.config.write_text(good.replace("settle_seconds: 1.0", "settle_seconds: 2.0"))
        d.messages.clear()
        d.proc.send_signal(signal.SIGHUP)
        d.wait_notify("READY=1", 20)
        d.wait_for(lambda: "config reloaded" in d.logtext(), 20, "the reload in the log")

        moved = tmp_path / "unmounted"
        root.rename(moved)  # the share goes away
        d.ctl("rescan")
        s = d.status()
        assert s["roots"][0]["watch"] == "unavailable" and s["files_indexed"] == indexed
        moved.rename(root)
        assert d.stop() == 0
    finally:
        d.close()


@pytest.mark.parametrize("failpoint", ["hardlink.quarantined", "hardlink.exchanged", "stub.target_moved"])
def test_daemon_killed_mid_action_recovers_on_restart(tmp_path, library, failpoint):
    """The real daemon SIGKILLs itself at a step of an action (DEDUPD_FAILPOINT); the next
    start recovers before anything else: every original's bytes are at its path or in
    quarantine with a journal entry, no temporary name is left, and the work completes."""
    root, t = library
    before = {k: sha(p) for k, p in t.items()}
    mode = failpoint.split(".")[0]
    d = Daemon(tmp_path, [(root, mode)])
    try:
        d.start_env = {"DEDUPD_FAILPOINT": failpoint}
        d.start()
        d.proc.wait(90)
        assert d.proc.returncode == -signal.SIGKILL, d.logtext()
        d.start_env = {}
        d.messages.clear()
        d.start()
        assert "journal recovered" in d.logtext()
        d.wait_for(lambda: d.idle() and d.status()["actions"].get("by_state", {}).get("done", 0) >= 2, 90, "work completed")
        assert not list(root.rglob(".dedupd-tmp-*"))
        present = {sha(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and not p.name.endswith(".dedup")}
        assert set(before.values()) <= present | quarantined_hashes(root)
        code, out = d.ctl("undo", "--since", "1h")
        assert code == 0, out
        assert {k: sha(p) for k, p in t.items()} == before
        assert d.stop() == 0
    finally:
        d.close()


def test_restore_undo_and_purge_without_the_daemon(tmp_path, library):
    """With the daemon down, dedupctl works on the journal itself: `restore` turns a stub
    back into the image, `undo PATH` puts an original back, `purge` frees the rest, and
    `status` counts the reclaimed bytes."""
    root, t = library
    before = {k: sha(p) for k, p in t.items()}
    d = Daemon(tmp_path, [(root, "stub")])
    try:
        d.start()
        d.wait_for(lambda: d.status()["actions"].get("done_since_start", 0) >= 3 and d.idle(), 90, "three stubs")
        assert d.stop() == 0
        code, out = d.ctl("restore", str(t["astro_half"]) + ".dedup")
        assert code == 0, out
        assert sha(t["astro_half"]) == before["astro_half"] and not Path(str(t["astro_half"]) + ".dedup").exists()
        code, out = d.ctl("undo", str(t["astro_q75"]))
        assert code == 0, out
        assert sha(t["astro_q75"]) == before["astro_q75"] and meta(t["astro_q75"])[0] & 0o777 == 0o640
        code, out = d.ctl("purge", "--older-than", "0", "--json")
        assert code == 0 and json.loads(out)["entries"] == 1, out
        code, out = d.ctl("status", "--json")
        s = json.loads(out)
        assert s["daemon"]["running"] is False
        assert s["actions"]["reclaimed_bytes"] == os.path.getsize(t["coffee"]) and s["actions"]["pending_bytes"] == 0
        assert not (root / "backup/coffee.jpg").exists() and (root / "backup/coffee.jpg.dedup").is_file()
        code, out = d.ctl("restore", str(root / "backup/coffee.jpg.dedup"))  # purged: rebuilt from the keeper
        assert code == 0, out
        assert sha(t["coffee_exact"]) == before["coffee_exact"]
    finally:
        d.close()


def test_an_older_index_is_upgraded_in_place_at_start_without_tripping_systemd(tmp_path, library):
    """A schema-3 index (as dedupd before schema 4 wrote it) in the state dir: the daemon
    upgrades it before READY=1, pushing systemd's start timeout further after every step
    (EXTEND_TIMEOUT_USEC) and saying so in STATUS, and keeps the records it held."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
    from schema3_legacy import build_schema3_index

    from dedupd.index import FileRecord
    from dedupd.kernels import ALGORITHMS

    root, _ = library
    algo = ALGORITHMS["lbph"]
    old = [FileRecord(0, f"/srv/elsewhere/{i}.jpg", 2049, 100 + i, 1000 + i, 1_600_000_000_000_000_000, 1_600_000_000_000_000_000,
                      64, 48, "jpeg", hashlib.sha256(b"%d" % i).digest(), (i * 0x9E3779B97F4A7C15 % 2**64, i), algo.name,
                      algo.version, 12.5, False) for i in range(5)]
    build_schema3_index(tmp_path / "state" / "index", old, algo=algo.name, algo_version=algo.version, code_bits=algo.bits)
    d = Daemon(tmp_path, [(root, "report")])
    try:
        d.start()
        before_ready = d.messages[:next(i for i, m in enumerate(d.messages) if "READY=1" in m.split("\n"))]
        upgrade = [m for m in before_ready if "EXTEND_TIMEOUT_USEC=300000000" in m.split("\n")]
        assert upgrade and "STATUS=upgrading the index in place: 5 records done" in upgrade[-1].split("\n"), d.messages
        assert "upgraded to schema 4: 5 records rewritten" in d.logtext()
        d.wait_for(d.idle, 90, "first scan")
        assert d.status()["files_indexed"] == 5 + len(list(root.rglob("*.jpg")))
    finally:
        d.close()
