"""Re-verification right before acting (SAFETY.md rule 5).

Both files are opened through their directory descriptors with
`O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC` (a symlink or FIFO put in a file's
place cannot redirect or block us); the descriptor's fstat must equal the
planned `FileState`; its bytes must still hash to the planned sha256; for the
`exact` tier the two descriptors are also compared byte for byte.
"""

from __future__ import annotations

import errno
import os
import stat

from . import fsops
from .plan import FileState, stat_identity

_FIELDS = ("dev", "ino", "size", "mtime_ns", "ctime_ns", "nlink", "uid", "gid", "mode")
_KEEPER_MAY_CHANGE = ("ctime_ns", "nlink")


class Changed(Exception):
    """The file is not what was planned; `reason` is `changed` or `vanished`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def open_verified(dir_fd: int, name: str, want: FileState, *, keeper: bool = False) -> tuple[int, os.stat_result]:
    """Open `name` and check it against `want` (metadata and content hash).

    For the keeper, link count and ctime are not compared: our own earlier actions
    link more copies to the same keeper, which changes both, and the keeper's bytes
    are re-hashed anyway. Returns the descriptor (the caller closes it) and the
    fstat taken *before* reading, whose atime is the file's own. Raises `Changed`."""
    try:
        fd = os.open(name, fsops.FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise Changed("vanished", f"{want.path} no longer exists") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO):  # a symlink or a socket took its place
            raise Changed("changed", f"{want.path} is no longer a regular file") from None
        raise
    try:
        before = os.fstat(fd)
        _compare(want, before, keeper)
        if fsops.sha256_fd(fd) != want.content_hash:
            raise Changed("changed", f"{want.path}: its bytes changed since it was indexed")
        _compare(want, os.fstat(fd), keeper)  # nobody wrote while we hashed
    except BaseException:
        os.close(fd)
        raise
    return fd, before


def _compare(want: FileState, st: os.stat_result, keeper: bool = False) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise Changed("changed", f"{want.path} is no longer a regular file")
    diffs = [f"{name} {a} -> {b}" for name, a, b in zip(_FIELDS, want.identity(), stat_identity(st))
             if a != b and not (keeper and name in _KEEPER_MAY_CHANGE)]
    if diffs:
        raise Changed("changed", f"{want.path} changed since it was planned: {', '.join(diffs)}")


def check_same_bytes(target_fd: int, keeper_fd: int, target: FileState) -> None:
    """The exact tier's byte-for-byte compare (a hash match alone is not proof)."""
    if not fsops.same_bytes(target_fd, keeper_fd):
        raise Changed("changed", f"{target.path} and its keeper are not byte-identical")


def still_original(dir_fd: int, name: str, fd: int, target: FileState) -> None:
    """Just before the swap: the target name still holds the verified inode, and
    nobody wrote to it (its size and mtime; ctime moved when we linked it)."""
    st = fsops.lstat_at(dir_fd, name)
    if st is None:
        raise Changed("vanished", f"{target.path} disappeared just before the swap")
    if st.st_ino != target.ino or st.st_dev != target.dev or not stat.S_ISREG(st.st_mode):
        raise Changed("changed", f"{target.path} was replaced by another file just before the swap")
    now = os.fstat(fd)
    if (now.st_size, now.st_mtime_ns) != (target.size, target.mtime_ns):
        raise Changed("changed", f"{target.path} was written to just before the swap")
