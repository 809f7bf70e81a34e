import fnmatch
import os
import socket

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.daemon.config.schema import DEFAULT_EXCLUDE, DEFAULT_EXTENSIONS
from dedupd.daemon.walk import Excluder, walk, walk_dirs

EXCLUDER = Excluder(DEFAULT_EXCLUDE, DEFAULT_EXTENSIONS)


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run(root):
    skipped = []
    found = [os.path.relpath(r.path, root) for r in walk(str(root), EXCLUDER, lambda p, k: skipped.append((os.path.relpath(p, root), k)))]
    return found, skipped


def test_finds_images_by_extension_case_insensitively(tmp_path):
    for name in ("a.jpg", "b.JPEG", "c.png", "d.txt", "sub/e.webp", "sub/deeper/f.TIF"):
        touch(tmp_path / name)
    found, _ = run(tmp_path)
    assert found == ["a.jpg", "b.JPEG", "c.png", "sub/e.webp", "sub/deeper/f.TIF"]


def test_nas_folders_and_partial_names_are_excluded(tmp_path):
    for name in ("@eaDir/a.jpg", "#recycle/b.jpg", "#snapshot/c.jpg", ".snapshots/1/d.jpg", ".Trash-1000/e.jpg",
                 "@GMT-2024.01.01-00.00.00/f.jpg", ".dedupd-quarantine/g.jpg", "h.jpg.part", "i.part",
                 "~syncthing~j.jpg", ".syncthing.k.jpg.tmp", "keep/me.jpg"):
        touch(tmp_path / name)
    assert run(tmp_path)[0] == ["keep/me.jpg"]


def test_symlinks_are_never_followed(tmp_path):
    target = touch(tmp_path / "real/a.jpg")
    (tmp_path / "link.jpg").symlink_to(target)
    (tmp_path / "loop").symlink_to(tmp_path)  # a symlink loop must not be walked
    found, skipped = run(tmp_path)
    assert found == ["real/a.jpg"] and ("link.jpg", "symlink") in skipped


def test_special_files_are_passed_over(tmp_path):
    os.mkfifo(tmp_path / "fifo.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.jpg"))
    try:
        found, skipped = run(tmp_path)
    finally:
        sock.close()
    assert found == [] and sorted(skipped) == [("fifo.jpg", "not_regular"), ("s.jpg", "not_regular")]


def test_unreadable_directory_is_reported(tmp_path, monkeypatch):
    """EACCES when the directory is opened (simulated: the suite may run as root, who reads everything)."""
    touch(tmp_path / "locked/a.jpg")
    touch(tmp_path / "open/b.jpg")
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if isinstance(path, str) and os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    found, skipped = run(tmp_path)
    assert found == ["open/b.jpg"] and ("locked", "unreadable_dir") in skipped


@pytest.mark.parametrize("swap", ["symlink", "other_folder"])
def test_a_folder_swapped_after_its_parent_was_listed_is_not_walked(tmp_path, swap):
    """The walk lists root (album is a folder), then album is swapped for a symlink to a
    folder outside the root, or for another folder: album is skipped, nothing outside or
    swapped in is yielded."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(root / "album/mine.jpg")
    touch(outside / "theirs.jpg")
    skipped = []
    walker = walk_dirs(str(root), Excluder([], [".jpg"]), lambda p, k: skipped.append((os.path.relpath(p, root), k)))
    first, _ = next(walker)
    assert first == str(root)
    (root / "album").rename(tmp_path / "album.old")
    if swap == "symlink":
        (root / "album").symlink_to(outside)
    else:
        outside.rename(root / "album")
    rest = [f.path for _, files in walker for f in files]
    assert rest == [] and skipped == [("album", "symlink" if swap == "symlink" else "changed")]


def test_non_utf8_names_survive(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg"
    with open(raw, "wb") as f:
        f.write(b"x")
    found, _ = run(tmp_path)
    assert found == [os.fsdecode(b"caf\xe9.jpg")]


def test_walk_dirs_yields_each_directory_with_its_own_files(tmp_path):
    for name in ("a.jpg", "notes.txt", "sub/b.png", "sub/c.jpg", "sub/deeper/d.gif", "empty/x.txt", "@eaDir/e.jpg"):
        touch(tmp_path / name)
    got = [(os.path.relpath(d, tmp_path), [os.path.basename(f.path) for f in files])
           for d, files in walk_dirs(str(tmp_path), EXCLUDER)]
    assert got == [(".", ["a.jpg"]), ("empty", []), ("sub", ["b.png", "c.jpg"]), ("sub/deeper", ["d.gif"])]
    assert [f for _, files in walk_dirs(str(tmp_path), EXCLUDER) for f in files] == list(walk(str(tmp_path), EXCLUDER))


PATTERN = st.text("ab*?[]!.-/", min_size=1, max_size=6)


@settings(max_examples=300)
@given(patterns=st.lists(PATTERN, max_size=5), name=st.text("ab.-[]!*?", max_size=8), ext=st.sampled_from(["", ".jpg", ".JPG", ".png"]))
def test_excluder_decides_as_fnmatch_does_pattern_by_pattern(patterns, name, ext):
    """The joined regular expressions against the oracle: `fnmatchcase` per pattern."""
    ex = Excluder(patterns, [".jpg"])
    name += ext
    dir_patterns = [p.rstrip("/") for p in patterns if p.endswith("/")]
    any_patterns = [p for p in patterns if not p.endswith("/")]
    assert ex.skip_dir(name) == any(fnmatch.fnmatchcase(name, p) for p in dir_patterns + any_patterns)
    assert ex.wanted_file(name) == (name.lower().endswith(".jpg") and not any(fnmatch.fnmatchcase(name, p) for p in any_patterns))
