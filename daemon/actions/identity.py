"""Is the file under a name still the one we put there?

Inode numbers alone cannot say: once a file is deleted its number is free, and ext4
hands it to the next new file (a user who deletes our stub and saves a new file
under that name often gets the same number). So a name holds *our* replacement only
when the inode matches *and* the content is what we made: the keeper's bytes
(hardlink, reflink), our link text (symlink), our stub naming this action. Anything
that passes is byte-for-byte what we made, so replacing or removing it loses nothing.
"""

from __future__ import annotations

import os
import stat

from . import fsops
from . import stub as stubs
from .errors import StubError
from .journal import Entry


def symlink_text(entry: Entry) -> str:
    """What our symlink holds: the keeper, relative to the target's folder."""
    return os.path.relpath(entry.keeper.path, os.path.dirname(entry.target.path))


def our_ino(entry: Entry) -> int:
    return entry.result_ino or entry.temp_ino


def holds_replacement(entry: Entry, dir_fd: int, name: str) -> bool:
    """`name` in `dir_fd` holds the replacement `entry` built (hardlink, symlink, reflink)."""
    st = fsops.lstat_at(dir_fd, name)
    if st is None:
        return False
    if entry.kind == "symlink":
        return (stat.S_ISLNK(st.st_mode) and st.st_ino == our_ino(entry)
                and os.readlink(name, dir_fd=dir_fd) == symlink_text(entry))
    if not stat.S_ISREG(st.st_mode):
        return False
    if entry.kind == "hardlink":
        same = (st.st_dev, st.st_ino) == (entry.keeper.dev, entry.keeper.ino)
    else:
        same = st.st_ino == our_ino(entry)
    return same and _sha256(dir_fd, name) == entry.keeper.content_hash


def holds_stub(action_id: str, dir_fd: int, name: str) -> bool:
    """`name` holds a valid stub written for action `action_id`."""
    try:
        fd = os.open(name, fsops.FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return False
        try:
            return stubs.parse(f.read(stubs.MAX_BYTES + 1)).action == action_id
        except StubError:
            return False


def _sha256(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, fsops.FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return fsops.sha256_fd(fd)
    finally:
        os.close(fd)
