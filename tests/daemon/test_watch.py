"""Watching roots (SAFETY.md rules 16 and 19): real watchdog observers on real tmp dirs.

Overflow is provoked for real: the inotify reader thread is held (its watch-group
callback blocks on the first event) while more events than
/proc/sys/fs/inotify/max_queued_events are generated; the kernel then drops events
and queues IN_Q_OVERFLOW, which watchdog reads and our watch group reports.
"""

import ctypes
import errno
import os
import threading
import time

import pytest

from dedupd.daemon import watch as watch_module
from dedupd.daemon import watch_observers
from dedupd.daemon.config import Root
from dedupd.daemon.config.schema import ALWAYS_EXCLUDE, DEFAULT_EXCLUDE, DEFAULT_EXTENSIONS
from dedupd.daemon.walk import Excluder
from dedupd.daemon.watch import Change, ChangeQueue, OwnWrites, RootWatcher
from testimages import encode, photo

EXCLUDER = Excluder(DEFAULT_EXCLUDE + ALWAYS_EXCLUDE, DEFAULT_EXTENSIONS)
JPEG = encode(photo("rocket"), ".jpg")
POLL = 0.1
needs_inotify = pytest.mark.skipif(bool(watch_observers.INOTIFY_PROBLEM), reason=watch_observers.INOTIFY_PROBLEM)
thread_death = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


class Watched:
    def __init__(self, root, mode):
        self.root = root
        self.queue = ChangeQueue()
        self.own = OwnWrites()
        self.watcher = RootWatcher(Root(str(root), watch=mode), self.queue, EXCLUDER, self.own, poll_seconds=POLL)
        self.seen: list[Change] = []

    def wait_for(self, *expected: Change, timeout: float = 5.0) -> list[Change]:
        """Collect changes until every expected one was seen; return all collected."""
        deadline = time.monotonic() + timeout
        while not set(expected) <= set(self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"still missing {set(expected) - set(self.seen)}; saw {self.seen}"
            self.seen += self.queue.get_batch(timeout=min(left, 0.2))
        return self.seen

    def settle_quietly(self) -> list[Change]:
        """Drain what arrives in a few poll intervals (for checking what did NOT come)."""
        end = time.monotonic() + 4 * POLL + 0.2
        while time.monotonic() < end:
            self.seen += self.queue.get_batch(timeout=0.05)
        return self.seen

    def c(self, kind, path):
        return Change(kind, str(path), str(self.root))


def _eventually(condition, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _start(tmp_path, mode, make_root=True):
    root = tmp_path / "root"
    if make_root:
        root.mkdir()
    w = Watched(root, mode)
    w.watcher.start()
    return w


@pytest.fixture
def no_leaked_threads():
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.05)
    pytest.fail(f"watch threads left running: {leaked}")


@pytest.fixture(params=["inotify", pytest.param("poll")])
def watched(request, tmp_path, no_leaked_threads):
    if request.param == "inotify" and watch_observers.INOTIFY_PROBLEM:
        pytest.skip(watch_observers.INOTIFY_PROBLEM)
    w = _start(tmp_path, request.param)
    assert w.watcher.state == request.param and w.watcher.alive()
    yield w
    w.watcher.stop()
    assert w.watcher.state == "stopped" and not w.watcher.alive()


@pytest.fixture
def inotify(tmp_path, no_leaked_threads):
    if watch_observers.INOTIFY_PROBLEM:
        pytest.skip(watch_observers.INOTIFY_PROBLEM)
    w = _start(tmp_path, "inotify")
    yield w
    w.watcher.stop()


def test_create_modify_move_delete(watched):
    a, b = watched.root / "a.jpg", watched.root / "b.jpg"
    a.write_bytes(JPEG[:5000])
    watched.wait_for(watched.c("file", a))
    watched.seen.clear()
    time.sleep(2 * POLL)  # the poller must see the size change as a modification
    with open(a, "ab") as f:
        f.write(JPEG[5000:])
    watched.wait_for(watched.c("file", a))
    os.rename(a, b)
    watched.wait_for(watched.c("gone", a), watched.c("file", b))
    watched.seen.clear()
    b.unlink()
    watched.wait_for(watched.c("gone", b))
    assert watched.watcher.alive()


def test_excluded_names_and_own_writes_make_no_change(watched):
    root = watched.root
    mine = root / "replaced.jpg"
    watched.own.add(str(mine))
    ignored = [
        root / "@eaDir" / "thumb.jpg",
        root / ".dedupd-quarantine" / "2024" / "old.jpg",
        root / ".dedupd-tmp-1234",
        root / "notes.txt",
        root / "download.jpg.part",
        root / "#recycle" / "x.jpg",
    ]
    for path in ignored + [mine]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(JPEG)
    sentinel = root / "sentinel.jpg"
    sentinel.write_bytes(JPEG)
    seen = watched.wait_for(watched.c("file", sentinel))
    seen = watched.settle_quietly()
    paths = {c.path for c in seen}
    assert not paths & {str(p) for p in ignored + [mine]}, seen
    assert not [c for c in seen if "dedupd" in c.path or "@eaDir" in c.path or "#recycle" in c.path]


def test_a_moved_in_directory_is_a_dir_change(watched, tmp_path):
    outside = tmp_path / "outside" / "album"
    (outside / "day1").mkdir(parents=True)
    (outside / "day1" / "a.jpg").write_bytes(JPEG)
    os.rename(outside, watched.root / "album")
    watched.wait_for(watched.c("dir", watched.root / "album"))


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_a_symlinked_root_is_watched_through_the_link(tmp_path, mode, no_leaked_threads):
    if mode == "inotify" and watch_observers.INOTIFY_PROBLEM:
        pytest.skip(watch_observers.INOTIFY_PROBLEM)
    real = tmp_path / "volume1" / "photos"
    real.mkdir(parents=True)
    link = tmp_path / "photos"
    link.symlink_to(real)
    w = Watched(link, mode)
    w.watcher.start()
    try:
        (real / "a.jpg").write_bytes(JPEG)
        w.wait_for(w.c("file", link / "a.jpg"))  # reported under the root as configured
        assert all(c.path.startswith(str(link)) and c.root == str(link) for c in w.seen)
    finally:
        w.watcher.stop()


def test_own_writes_expire_and_discard_keeps_a_grace_period():
    now = [0.0]
    own = OwnWrites(grace=2.0, clock=lambda: now[0])
    own.add("/r/a.jpg", ttl=30)
    assert "/r/a.jpg" in own and "/r/b.jpg" not in own
    now[0] = 10
    own.discard("/r/a.jpg")
    assert "/r/a.jpg" in own  # late events of our own rename still arrive
    now[0] = 12.5
    assert "/r/a.jpg" not in own
    own.add("/r/c.jpg", ttl=5)
    now[0] = 18
    assert "/r/c.jpg" not in own  # a forgotten discard does not suppress forever


def test_own_writes_know_inodes(tmp_path):
    f = tmp_path / "keeper.jpg"
    f.write_bytes(JPEG)
    own = OwnWrites()
    own.add(str(f))
    st = os.lstat(f)
    assert (st.st_dev, st.st_ino) in own
    assert (st.st_dev, st.st_ino + 1) not in own


def test_change_queue_dedupes_collapses_and_times_out():
    q = ChangeQueue(max_items=5)
    t = time.monotonic()
    assert q.get_batch(timeout=0.1) == [] and time.monotonic() - t >= 0.09
    a = Change("file", "/r/a.jpg", "/r")
    q.put(a)
    q.put(a)  # created, modified, closed: once
    q.put(Change("rescan", "/r", "/r"))
    q.put(Change("rescan", "/r", "/r"))
    assert q.get_batch(timeout=0) == [a, Change("rescan", "/r", "/r")]
    for i in range(5):
        q.put(Change("file", f"/r/{i}.jpg", "/r"))
    q.put(Change("file", "/s/x.jpg", "/s"))  # over the bound: root /s collapses
    q.put(Change("file", "/r/9.jpg", "/r"))  # and so does /r
    batch = q.get_batch(timeout=0)
    assert Change("rescan", "/r", "/r") in batch and Change("rescan", "/s", "/s") in batch
    assert len(batch) <= 5 and q.collapsed == 2


def test_get_batch_wakes_on_put():
    q = ChangeQueue()
    c = Change("file", "/r/a.jpg", "/r")
    threading.Timer(0.05, q.put, [c]).start()
    t = time.monotonic()
    assert q.get_batch(timeout=5) == [c] and time.monotonic() - t < 2


@needs_inotify
@thread_death
def test_a_dead_observer_is_noticed_and_restarted(inotify, monkeypatch):
    w = inotify.watcher

    def boom(self, event):
        raise RuntimeError("handler bug outside the guard")

    monkeypatch.setattr(watch_module._Handler, "dispatch", boom)
    (inotify.root / "a.jpg").write_bytes(JPEG)
    inotify.wait_for(inotify.c("rescan", inotify.root))  # the dying thread reported itself
    assert w.state == "error" and "died" in w.last_error
    assert _eventually(lambda: not w.alive())  # it reports just before it ends
    monkeypatch.undo()
    inotify.seen.clear()
    assert w.restart_if_dead() is True
    assert w.alive() and w.state == "inotify"
    assert w.restart_if_dead() is False  # healthy now
    (inotify.root / "b.jpg").write_bytes(JPEG)
    inotify.wait_for(inotify.c("rescan", inotify.root), inotify.c("file", inotify.root / "b.jpg"))


@needs_inotify
def test_a_stopped_observer_thread_is_restarted(inotify):
    w = inotify.watcher
    w._observer.stop()  # the thread ends without any report
    w._observer.join(5)
    assert not w.alive()
    assert w.restart_if_dead() is True
    inotify.wait_for(inotify.c("rescan", inotify.root))
    assert w.alive() and w.state == "inotify"


@needs_inotify
def test_a_handler_error_is_caught_and_means_rescan(inotify, monkeypatch):
    w = inotify.watcher

    def broken(event, root):
        raise ValueError("cannot translate")

    monkeypatch.setattr(watch_module, "translate", broken)
    (inotify.root / "a.jpg").write_bytes(JPEG)
    inotify.wait_for(inotify.c("rescan", inotify.root))
    assert w.alive() and w.state == "error" and "cannot translate" in w.last_error
    monkeypatch.undo()
    assert w.restart_if_dead() is True and w.state == "inotify"


@needs_inotify
def test_inotify_queue_overflow_means_rescan(inotify, monkeypatch):
    limit = int(open("/proc/sys/fs/inotify/max_queued_events").read())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many events to provoke an overflow quickly")
    gate, held = threading.Event(), threading.Event()
    original = watch_observers._WatchGroup.on_event

    def hold_first(self, event):
        held.set()
        gate.wait(30)
        original(self, event)

    burst = inotify.root / "burst"
    burst.mkdir()
    inotify.wait_for(inotify.c("dir", burst))  # watched from now on
    monkeypatch.setattr(watch_observers._WatchGroup, "on_event", hold_first)
    (inotify.root / "first.jpg").write_bytes(JPEG)
    assert held.wait(5), "the inotify reader never saw the first event"
    for i in range(limit // 2 + 500):  # IN_CREATE + IN_CLOSE_WRITE per file
        os.close(os.open(burst / f"n{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    gate.set()
    inotify.wait_for(inotify.c("rescan", inotify.root), timeout=20)
    w = inotify.watcher
    assert w.overflows == 1 and w.state == "inotify" and w.alive()
    assert "overflow" in w.last_error
    after = inotify.root / "burst" / "after.jpg"  # watchdog re-added the watches: events flow again
    after.write_bytes(JPEG)
    inotify.wait_for(inotify.c("file", after), timeout=10)


def _fail_add_watch(monkeypatch, suffix: bytes):
    """Fault injection at the syscall wrapper: inotify_add_watch() -> -1, errno ENOSPC."""
    from watchdog.observers import inotify_c

    real = inotify_c.inotify_add_watch

    def limited(fd, path, mask):
        if path.endswith(suffix):
            ctypes.set_errno(errno.ENOSPC)
            return -1
        return real(fd, path, mask)

    monkeypatch.setattr(inotify_c, "inotify_add_watch", limited)


@needs_inotify
def test_watch_limit_on_a_new_directory_is_reported(inotify, monkeypatch):
    _fail_add_watch(monkeypatch, b"/deep")
    (inotify.root / "deep").mkdir()  # watchdog itself swallows this failure
    inotify.wait_for(inotify.c("rescan", inotify.root))
    w = inotify.watcher
    assert w.state == "error" and w.needs_poll and w.alive()
    assert "max_user_watches" in w.last_error and "watch: poll" in w.last_error
    limit = watch_observers.inotify_watch_limit()
    assert limit is None or str(limit) in w.last_error
    assert w.restart_if_dead() is False  # restarting would only hit the limit again


@needs_inotify
def test_watch_limit_on_the_root_is_a_state_not_an_exception(tmp_path, monkeypatch, no_leaked_threads):
    _fail_add_watch(monkeypatch, b"/root")
    w = _start(tmp_path, "inotify")  # must not raise
    try:
        assert w.watcher.state == "error" and w.watcher.needs_poll and not w.watcher.alive()
        w.wait_for(w.c("rescan", w.root))
    finally:
        w.watcher.stop()


def test_a_missing_root_is_unavailable_and_picked_up_when_it_appears(tmp_path, no_leaked_threads):
    w = _start(tmp_path, "inotify" if not watch_observers.INOTIFY_PROBLEM else "poll", make_root=False)
    try:
        assert w.watcher.state == "unavailable" and not w.watcher.alive()
        assert w.watcher.restart_if_dead() is False
        w.root.mkdir()
        assert w.watcher.restart_if_dead() is True and w.watcher.alive()
        (w.root / "a.jpg").write_bytes(JPEG)
        w.wait_for(w.c("rescan", w.root), w.c("file", w.root / "a.jpg"))
    finally:
        w.watcher.stop()


def test_a_deleted_root_is_unavailable(watched):
    for name in ("a.jpg", "sub/b.jpg"):
        (watched.root / name).parent.mkdir(exist_ok=True)
        (watched.root / name).write_bytes(JPEG)
    watched.wait_for(watched.c("file", watched.root / "a.jpg"))
    for name in ("sub/b.jpg", "a.jpg", "sub"):
        p = watched.root / name
        p.rmdir() if p.is_dir() else p.unlink()
    watched.root.rmdir()
    watched.wait_for(watched.c("rescan", watched.root))
    assert _eventually(lambda: watched.watcher.state == "unavailable")
    assert watched.watcher.restart_if_dead() is False


_UNMOUNT_SCRIPT = r"""
import json, os, subprocess, sys, time
from dedupd.daemon.config import Root
from dedupd.daemon.walk import Excluder
from dedupd.daemon.watch import ChangeQueue, OwnWrites, RootWatcher

root, mode = sys.argv[1], sys.argv[2]
mount = lambda: subprocess.run(["mount", "-t", "tmpfs", "dedupd-test", root], check=True)
mount()
for name in ("a.jpg", "b.jpg"):
    open(os.path.join(root, name), "wb").write(b"x")
q = ChangeQueue()
w = RootWatcher(Root(root, watch=mode), q, Excluder([], [".jpg"]), OwnWrites(), poll_seconds=0.1)
w.start()
out = {"started": w.state}
subprocess.run(["umount", root], check=True)  # the share goes away; an empty mount point stays
time.sleep(0.6)
out["after_umount"] = [w.state, [c.kind for c in q.get_batch(1)], w.last_error]
out["restart_on_mount_point"] = w.restart_if_dead()
time.sleep(0.3)
q.get_batch(0)
mount()  # and comes back: the old watch (or snapshot) knows nothing of it
out["restart_after_mount"] = [w.restart_if_dead(), w.state, [c.kind for c in q.get_batch(1)]]
open(os.path.join(root, "c.jpg"), "wb").write(b"x")
out["after_mount"] = [(c.kind, os.path.basename(c.path)) for c in q.get_batch(3)]
w.stop()
subprocess.run(["umount", root], check=True)
print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", ["inotify", "poll"])
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs (in a private mount namespace) needs root")
def test_an_unmounted_share_means_rescan_never_gone_and_a_remount_restarts(tmp_path, mode):
    """A real unmount. inotify sends IN_UNMOUNT and drops every watch (watchdog goes
    quiet); a polling snapshot of the empty mount point looks like every file deleted."""
    import json
    import subprocess
    import sys

    if mode == "inotify" and watch_observers.INOTIFY_PROBLEM:
        pytest.skip(watch_observers.INOTIFY_PROBLEM)
    root = tmp_path / "share"
    root.mkdir()
    cmd = ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", _UNMOUNT_SCRIPT, str(root), mode]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("unshare(1) is not installed")
    if done.returncode != 0 and "unshare" in done.stderr and "Operation not permitted" in done.stderr:
        pytest.skip(f"no private mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["started"] == mode
    state, kinds, reason = out["after_umount"]
    assert state == "error" and "rescan" in kinds and "gone" not in kinds, out
    assert "unmount" in reason
    assert out["restart_on_mount_point"] is True
    assert out["restart_after_mount"] == [True, mode, ["rescan"]], out  # st_dev changed: a new watch
    assert ("file", "c.jpg") in [tuple(x) for x in out["after_mount"]], out
