"""Root availability (SAFETY.md rule 18): real directories, real marker files, real st_dev."""

import json
import os
import subprocess
import tempfile

import pytest

from dedupd.daemon.roots import MARKER, RootHealth, RootStateError
from dedupd.daemon.walk import Excluder, walk
from dedupd.daemon.config.schema import ALWAYS_EXCLUDE, DEFAULT_EXCLUDE, DEFAULT_EXTENSIONS
from testimages import encode, photo


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "share"
    r.mkdir()
    (r / "a.jpg").write_bytes(encode(photo("coffee"), ".jpg"))
    return r


@pytest.fixture
def state(tmp_path):
    return str(tmp_path / "state")


def test_a_marked_root_is_available_and_the_marker_is_no_image(root, state):
    health = RootHealth(state)
    assert health.check(str(root)) == "available"  # never seen: nothing to compare yet
    health.mark(str(root))
    assert (root / MARKER).is_file()
    assert health.check(str(root)) == "available" and health.last_reason(str(root)) == ""
    saved = json.loads(open(os.path.join(state, "roots.json")).read())["roots"][str(root)]
    assert saved["marker"] is True and saved["dev"] == os.stat(root).st_dev
    assert saved["id"] in (root / MARKER).read_text()
    assert not [p for p in os.listdir(root) if p.startswith(".dedupd-tmp-")]  # no temporary left
    found = [os.path.basename(r.path) for r in walk(str(root), Excluder(DEFAULT_EXCLUDE + ALWAYS_EXCLUDE, DEFAULT_EXTENSIONS))]
    assert found == ["a.jpg"]


def test_the_record_survives_a_restart_and_the_marker_is_kept(root, state):
    RootHealth(state).mark(str(root))
    marker = (root / MARKER).read_text()
    again = RootHealth(state)
    again.mark(str(root))
    assert (root / MARKER).read_text() == marker
    assert again.check(str(root)) == "available"


def test_a_removed_root_is_unavailable(root, state):
    health = RootHealth(state)
    health.mark(str(root))
    os.rename(root, root.with_name("elsewhere"))
    assert health.check(str(root)) == "unavailable"
    assert "does not exist" in health.last_reason(str(root))
    os.rename(root.with_name("elsewhere"), root)
    assert health.check(str(root)) == "available"


def test_a_file_in_place_of_the_root_is_unavailable(root, state, tmp_path):
    health = RootHealth(state)
    not_dir = tmp_path / "file"
    not_dir.write_bytes(b"x")
    assert health.check(str(not_dir)) == "unavailable"
    assert "not a directory" in health.last_reason(str(not_dir))


def test_an_empty_mount_point_is_unavailable_and_never_marked(root, state):
    """Unmounted share: the tree goes away, an empty directory is left at its path."""
    health = RootHealth(state)
    health.mark(str(root))
    mounted = root.with_name("mounted")
    os.rename(root, mounted)
    root.mkdir()
    assert health.check(str(root)) == "unavailable"
    assert "marker" in health.last_reason(str(root)) and "missing" in health.last_reason(str(root))
    health.mark(str(root))  # a scan that ran anyway must not adopt the empty directory
    assert not (root / MARKER).exists() and health.check(str(root)) == "unavailable"
    root.rmdir()
    os.rename(mounted, root)  # "mounted" again
    assert health.check(str(root)) == "available"


def test_a_marker_of_another_tree_is_unavailable(root, state, tmp_path):
    health = RootHealth(state)
    health.mark(str(root))
    other = tmp_path / "other"
    other.mkdir()
    health.mark(str(other))
    (root / MARKER).unlink()
    os.link(other / MARKER, root / MARKER)
    assert health.check(str(root)) == "unavailable"
    assert "another tree" in health.last_reason(str(root))
    health.forget(str(root))  # the admin says: this is the tree now
    health.mark(str(root))
    assert health.check(str(root)) == "available"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory whatever its mode")
def test_an_unreadable_root_is_unavailable(root, state):
    health = RootHealth(state)
    health.mark(str(root))
    root.chmod(0)
    try:
        assert health.check(str(root)) == "unavailable"
        assert "permission denied" in health.last_reason(str(root))
    finally:
        root.chmod(0o755)


def _read_only(path):
    """Make `path` refuse new entries: chmod for a normal user, the immutable flag for root."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return lambda: path.chmod(0o755)
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"running as root and chattr +i failed ({done.stderr.decode().strip()}): no way to make a read-only dir")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_root_falls_back_to_st_dev(tmp_path, state):
    """A read-only share cannot hold a marker: st_dev tells whether the share is mounted.
    The root path is a symlink (an admin's choice) switched to another filesystem."""
    real = tmp_path / "ro"
    real.mkdir()
    (real / "a.jpg").write_bytes(encode(photo("chelsea"), ".jpg"))
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(real).st_dev:
        pytest.skip("need a second filesystem (/dev/shm) to change st_dev")
    root = tmp_path / "root"
    root.symlink_to(real)
    undo = _read_only(real)
    try:
        health = RootHealth(state)
        health.mark(str(root))
        assert not (real / MARKER).exists()
        record = json.loads(open(os.path.join(state, "roots.json")).read())["roots"][str(root)]
        assert record["marker"] is False
        assert health.check(str(root)) == "available"
        with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
            root.unlink()
            root.symlink_to(elsewhere)  # same path, another filesystem
            assert health.check(str(root)) == "unavailable"
            assert "st_dev" in health.last_reason(str(root))
            root.unlink()
            root.symlink_to(real)
        assert health.check(str(root)) == "available"
    finally:
        undo()


def test_a_corrupt_state_file_stops_with_a_clear_message(state):
    os.makedirs(state)
    with open(os.path.join(state, "roots.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(RootStateError, match="roots.json.*unmounted share"):
        RootHealth(state)
