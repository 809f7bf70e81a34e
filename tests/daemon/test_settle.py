"""Settler (SAFETY.md rule 17): a fake clock, real files and real lstat."""

import os

import pytest

from dedupd.daemon.settle import Settler
from dedupd.daemon.watch import Change
from testimages import encode, photo

SETTLE = 5.0
JPEG = encode(photo("astronaut"), ".jpg")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settler(clock):
    return Settler(SETTLE, storm_events=10, clock=clock)


def change(kind, path, root):
    return Change(kind, str(path), str(root))


def test_a_quiet_file_is_ready_after_the_settle_period_and_only_once(tmp_path, clock, settler):
    f = tmp_path / "a.jpg"
    f.write_bytes(JPEG)
    settler.note(change("file", f, tmp_path))
    assert settler.pending() == 1
    clock.advance(SETTLE - 0.1)
    assert settler.ready() == ([], [], [])
    clock.advance(0.1)
    assert settler.ready() == ([str(f)], [], [])
    assert settler.ready() == ([], [], []) and settler.pending() == 0


def test_each_event_restarts_the_wait(tmp_path, clock, settler):
    f = tmp_path / "a.jpg"
    f.write_bytes(JPEG[:1000])
    settler.note(change("file", f, tmp_path))
    clock.advance(4)
    with open(f, "ab") as out:
        out.write(JPEG[1000:])
    settler.note(change("file", f, tmp_path))
    clock.advance(4)
    assert settler.ready() == ([], [], [])  # 8 s since the first event, 4 since the last
    clock.advance(1)
    assert settler.ready() == ([str(f)], [], [])


def test_a_file_that_keeps_growing_without_events_is_not_taken(tmp_path, clock, settler):
    """A slow writer on a polled share: no events, but size and mtime move."""
    f = tmp_path / "slow.jpg"
    f.write_bytes(JPEG[:100])
    settler.note(change("file", f, tmp_path))
    for written in range(200, 1200, 100):  # it grows between every look
        clock.advance(SETTLE)
        with open(f, "ab") as out:
            out.write(JPEG[written - 100:written])
        assert settler.ready() == ([], [], [])
    with open(f, "ab") as out:
        out.write(JPEG[1100:])
    clock.advance(SETTLE)
    assert settler.ready() == ([], [], [])  # first look at the final size
    clock.advance(SETTLE)
    assert settler.ready() == ([str(f)], [], [])  # same size and mtime one period later


def test_a_replaced_file_of_the_same_size_and_mtime_is_not_taken_early(tmp_path, clock, settler):
    f = tmp_path / "a.jpg"
    f.write_bytes(JPEG)
    st = os.stat(f)
    settler.note(change("file", f, tmp_path))
    tmp = tmp_path / "new"
    tmp.write_bytes(JPEG)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, f)  # another inode under the same name, no event seen
    clock.advance(SETTLE)
    assert settler.ready() == ([], [], [])
    clock.advance(SETTLE)
    assert settler.ready() == ([str(f)], [], [])


def test_a_file_that_vanished_before_settling_is_gone(tmp_path, clock, settler):
    f = tmp_path / "a.jpg"
    f.write_bytes(JPEG)
    settler.note(change("file", f, tmp_path))
    f.unlink()
    clock.advance(SETTLE)
    assert settler.ready() == ([], [], [str(f)])
    assert settler.pending() == 0


def test_gone_waits_and_a_recreated_file_is_a_file(tmp_path, clock, settler):
    """Delete then recreate (how many programs save): one "file", no "gone"."""
    f = tmp_path / "a.jpg"
    f.write_bytes(JPEG)
    settler.note(change("gone", f, tmp_path))
    clock.advance(1)
    settler.note(change("file", f, tmp_path))
    clock.advance(SETTLE)
    assert settler.ready() == ([str(f)], [], [])
    g = tmp_path / "b.jpg"
    settler.note(change("gone", g, tmp_path))
    assert settler.ready() == ([], [], [])
    clock.advance(SETTLE)
    assert settler.ready() == ([], [], [str(g)])


def test_a_gone_path_that_is_back_without_an_event_settles_as_a_file(tmp_path, clock, settler):
    f = tmp_path / "a.jpg"
    settler.note(change("gone", f, tmp_path))
    f.write_bytes(JPEG)
    clock.advance(SETTLE)
    assert settler.ready() == ([], [], [])
    clock.advance(SETTLE)
    assert settler.ready() == ([str(f)], [], [])


def test_a_storm_collapses_into_one_directory_rescan(tmp_path, clock, settler):
    storm = tmp_path / "import"
    storm.mkdir()
    calm = tmp_path / "calm.jpg"
    calm.write_bytes(JPEG)
    settler.note(change("file", calm, tmp_path))
    for i in range(25):  # more than storm_events=10 within one settle period
        f = storm / f"{i:03}.jpg"
        f.write_bytes(JPEG)
        settler.note(change("file", f, tmp_path))
        clock.advance(0.1)
    assert settler.pending() == 2  # the calm file and one directory
    clock.advance(SETTLE)
    assert settler.ready() == ([str(calm)], [str(storm)], [])
    assert settler.pending() == 0


def test_events_under_a_pending_directory_keep_it_waiting(tmp_path, clock, settler):
    new = tmp_path / "moved_in"
    (new / "sub").mkdir(parents=True)
    settler.note(change("dir", new, tmp_path))
    clock.advance(SETTLE - 1)
    f = new / "sub" / "a.jpg"
    f.write_bytes(JPEG)
    settler.note(change("file", f, tmp_path))  # absorbed: the directory rescan covers it
    settler.note(change("dir", new / "sub", tmp_path))
    clock.advance(1)
    assert settler.ready() == ([], [], [])  # a dir waits for the settle period too
    clock.advance(SETTLE)
    assert settler.ready() == ([], [str(new)], [])
    assert settler.pending() == 0


def test_slow_events_are_no_storm(tmp_path, clock, settler):
    for i in range(25):  # 25 events, but never more than 10 in one settle period
        f = tmp_path / f"{i:03}.jpg"
        f.write_bytes(JPEG)
        settler.note(change("file", f, tmp_path))
        clock.advance(SETTLE / 9)
    clock.advance(SETTLE)
    files, dirs, gone = settler.ready()
    assert len(files) == 25 and dirs == [] and gone == []


def test_a_root_rescan_replaces_everything_pending_in_the_root(tmp_path, clock, settler):
    f = tmp_path / "a.jpg"
    f.write_bytes(JPEG)
    settler.note(change("file", f, tmp_path))
    settler.note(change("gone", tmp_path / "b.jpg", tmp_path))
    settler.note(change("rescan", tmp_path, tmp_path))
    clock.advance(SETTLE)
    assert settler.ready() == ([], [str(tmp_path)], [])
