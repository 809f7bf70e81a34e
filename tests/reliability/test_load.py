"""Load on the real daemon (issue 6, part 4): many files at once, an inotify queue
overflow while the daemon is stopped, a burst of renames and deletes. Each ends with
the index equal to a fresh reindex of the same tree and no file lost.

One daemon (hardlink mode) serves the module: the tests add their load to one tree in
turn, and each checks the index (opened read-only beside the idle daemon) against a
fresh reindex. CI runs 1,000 arriving files; `DEDUPD_LOAD_FILES=10000` runs the
issue's 10,000 (docs/reliability.md has the figures). One file in 50 is an exact or
re-encoded copy, so the daemon acts while the load arrives.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from dedupd.daemon.watch import OwnWrites
from reliability_kit import Daemon, index_diff, lost, photo_bytes, sha, temp_names

N_FILES = int(os.environ.get("DEDUPD_LOAD_FILES", "1000"))
PER_DIR = 400
COPY_EVERY = 50  # each replacement costs ~10 fsyncs (SAFETY.md rule 7): the load is the arrivals


def write_photos(root: Path, n: int, first_seed: int) -> dict[str, bytes]:
    """`n` photos in folders of PER_DIR; one in COPY_EVERY is a copy of an earlier one
    (alternately the same bytes and re-encoded). Returns path -> sha256."""
    written: dict[str, bytes] = {}
    for i in range(n):
        seed = first_seed + i
        if i % COPY_EVERY == COPY_EVERY - 1:
            src = first_seed + i - 5
            data = photo_bytes(src) if (i // COPY_EVERY) % 2 else photo_bytes(src, ".jpg", 70)
        else:
            data = photo_bytes(seed)
        path = root / f"batch{first_seed}" / f"d{i // PER_DIR:03d}" / f"img{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written[str(path)] = sha(path)
    return written


def check(d: Daemon, tmp_path: Path, root: Path, expected: dict[str, bytes]) -> None:
    """Once the daemon is idle: the index (read-only, beside the idle daemon) equals a
    fresh reindex, nothing is lost, no temp name is left."""
    d.settled(timeout=300)
    only_index, only_reindex = index_diff(d.loaded(), tmp_path / f"reindex-{time.monotonic_ns()}")
    assert not only_index and not only_reindex, (only_index[:5], only_reindex[:5])
    assert lost([root], expected) == []
    assert temp_names(root) == []


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One daemon (hardlink mode) for the whole module; each test adds its load to the
    same tree and checks it, so `expected` is shared and grows."""
    base = tmp_path_factory.mktemp("load")
    root = base / "photos"
    root.mkdir()
    d = Daemon(base, [(root, "hardlink")])
    try:
        d.start()
        yield {"d": d, "base": base, "root": root, "expected": {}}
        assert d.stop() == 0
    finally:
        d.close()


def test_thousands_of_files_arrive_within_seconds(loaded):
    d, root, expected = loaded["d"], loaded["root"], loaded["expected"]
    started = time.monotonic()
    expected.update(write_photos(root, N_FILES, 1))
    arrival = time.monotonic() - started
    d.settled(timeout=600)
    print(f"\n{N_FILES} files written in {arrival:.1f} s, all indexed and acted on "
          f"{time.monotonic() - started:.1f} s after the first ({d.status()['actions']['done_since_start']} replaced)")
    check(d, loaded["base"], root, expected)
    print(f"index == reindex {time.monotonic() - started:.1f} s after the first")


def test_inotify_overflow_while_the_daemon_is_stopped(loaded):
    """SIGSTOP the daemon, make far more events than the kernel queues
    (fs.inotify.max_queued_events), SIGCONT: the overflow is reported, a rescan runs."""
    d, root, expected = loaded["d"], loaded["root"], loaded["expected"]
    d.settled()
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    os.kill(d.proc.pid, signal.SIGSTOP)
    try:
        expected.update(write_photos(root, 300, 50_000))
        noise = [root / "a.txt", root / "b.txt"]  # alternating, so the kernel cannot merge them
        for i in range(limit + 1000):
            with open(noise[i % 2], "ab") as f:
                f.write(b"x")
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
    d.wait_for(lambda: "overflow" in d.logtext().lower(), 60, "the overflow reported")
    check(d, loaded["base"], root, expected)


def test_burst_of_renames_and_deletes(loaded):
    d, root, expected = loaded["d"], loaded["root"], loaded["expected"]
    d.settled()
    rng = random.Random(7)
    paths = sorted(p for p in expected if "/batch1/" in p)
    rng.shuffle(paths)
    for n, path in enumerate(paths[:300]):
        digest = expected.pop(path)
        if n % 3 == 0:
            os.unlink(path)
        else:  # renamed within its folder, or into another one
            new = Path(path).with_name(f"renamed{n}.jpg") if n % 3 == 1 else root / "batch1" / "d000" / f"moved{n}.jpg"
            os.rename(path, new)
            expected[str(new)] = digest
    os.rename(root / "batch1" / "d001", root / "batch1" / "d001-renamed")  # and a whole folder
    moved = {p: v for p, v in expected.items() if "/batch1/d001/" in p}
    for p, v in moved.items():
        del expected[p]
        expected[p.replace("/batch1/d001/", "/batch1/d001-renamed/")] = v
    check(d, loaded["base"], root, expected)


def test_own_writes_stop_hiding_a_path_once_the_user_changes_it(tmp_path):
    """Regression: our own writes were ignored for 30 s, so a user's save or delete
    just after an action was missed until the next full rescan (the index went stale)."""
    f = tmp_path / "a.jpg"
    f.write_bytes(b"before")
    own = OwnWrites(grace=60)
    own.add(str(f))
    f.write_bytes(b"what the action leaves")
    assert str(f) in own
    own.discard_all()
    assert str(f) in own  # the late events of our own change are still ours
    part = tmp_path / "a.jpg.part"
    part.write_bytes(b"the user's new version")
    os.replace(part, f)
    assert str(f) not in own
    gone = tmp_path / "b.jpg"
    own.add(str(gone))
    own.discard_all()
    assert str(gone) in own  # we removed it: still ours while it stays gone
    gone.write_bytes(b"the user saved it again")
    assert str(gone) not in own


def test_a_save_right_after_an_action_reaches_the_index(loaded):
    """The daemon hard-links a copy; the user at once saves a new photo under that name
    and deletes another replaced copy: both reach the index without a rescan."""
    d, root, expected = loaded["d"], loaded["root"], loaded["expected"]
    keeper = root / "late/keep.jpg"
    copies = [root / "late/copy1.jpg", root / "late/copy2.jpg"]
    for p in (keeper, *copies):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(photo_bytes(90_011))
    d.wait_for(lambda: all(os.stat(c).st_ino == os.stat(keeper).st_ino for c in copies), 60, "both copies linked")
    part = root / "late/copy1.jpg.part"
    part.write_bytes(photo_bytes(90_012))
    os.replace(part, copies[0])
    os.unlink(copies[1])
    time.sleep(1.5)  # the settle period
    expected.update({str(keeper): sha(keeper), str(copies[0]): sha(copies[0])})
    check(d, loaded["base"], root, expected)
