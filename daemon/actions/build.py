"""Step 4 of the replace protocol: build the replacement under the temporary name.

Every builder creates the name with an operation that fails if it exists
(link, symlink, O_CREAT|O_EXCL: SAFETY.md rule 2), records the new inode in the
run at once (so an abort can remove exactly it), passes the `temp_created`
failpoint, finishes the inode and makes it durable. New inodes (reflink, stub)
get the target's owner, mode, times and xattrs, verified afterwards (rule 14); a
clone is re-hashed against the keeper (rule 15).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from . import fsops, stub
from .context import Run
from .recheck import Changed

FICLONE = 0x40049409
NO_REFLINK = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.EXDEV, errno.ENOTTY, errno.ENOSYS)
REFLINK_MESSAGE = "this filesystem cannot clone files (reflinks need btrfs or XFS)"
_NEW_FILE = os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC


class BuildFailed(Exception):
    """The replacement cannot be built or finished; `reason` is the outcome kind."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def build(run: Run) -> int:
    """Build the replacement for `run.action.kind` under the temp name; returns its inode."""
    return {"hardlink": _hardlink, "symlink": _symlink, "reflink": _reflink, "stub": _stub}[run.action.kind](run)


def _hardlink(run: Run) -> int:
    run.own(run.names.temp_path)
    os.link(run.kname, run.pname, src_dir_fd=run.kdir, dst_dir_fd=run.tdir, follow_symlinks=False)
    run.temp_ino = fsops.ino_at(run.tdir, run.pname)
    run.hit("temp_created")
    if run.temp_ino != run.action.keeper.ino:  # the keeper's name was swapped after verify
        raise Changed("changed", f"{run.action.keeper.path} was replaced just before linking")
    os.fsync(run.kfd)  # the link count lives in the keeper's inode
    return run.temp_ino


def _symlink(run: Run) -> int:
    t = run.action.target
    rel = os.path.relpath(run.action.keeper.path, os.path.dirname(t.path))
    run.own(run.names.temp_path)
    os.symlink(rel, run.pname, dir_fd=run.tdir)
    run.temp_ino = fsops.ino_at(run.tdir, run.pname)
    run.hit("temp_created")
    if _may_chown(t.uid, t.gid):
        os.chown(run.pname, t.uid, t.gid, dir_fd=run.tdir, follow_symlinks=False)
    # A symlink has no mode of its own on Linux and user xattrs are not allowed on it.
    os.utime(run.pname, ns=(run.target_atime_ns, t.mtime_ns), dir_fd=run.tdir, follow_symlinks=False)
    os.fsync(run.tdir)  # a symlink cannot be opened for fsync; its directory entry carries it
    return run.temp_ino


def _reflink(run: Run) -> int:
    fd = _create(run)
    try:
        fcntl.ioctl(fd, FICLONE, run.kfd)
    except OSError as e:
        if e.errno in NO_REFLINK:
            raise BuildFailed("reflink_unsupported", f"{REFLINK_MESSAGE} ({e.strerror})") from None
        raise
    run.hit("cloned")
    if fsops.sha256_fd(fd) != run.action.keeper.content_hash:
        raise BuildFailed("changed", "the clone does not hash like the keeper (keeper changed?)")
    _finish(run, fd)
    return run.temp_ino


def _stub(run: Run) -> int:
    try:
        data = stub.render(stub_for(run))
    except stub.StubError as e:  # a keeper path longer than a stub may hold
        raise BuildFailed("name_too_long", str(e)) from None
    fd = _create(run)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    _finish(run, fd)
    return run.temp_ino


def stub_for(run: Run) -> stub.Stub:
    t, k = run.action.target, run.action.keeper
    return stub.Stub(keeper=k.path, keeper_sha256=k.content_hash, sha256=t.content_hash, size=t.size,
                     mode=stat.S_IMODE(t.mode), uid=t.uid, gid=t.gid, atime_ns=run.target_atime_ns,
                     mtime_ns=t.mtime_ns, action=run.action.action_id)


def _create(run: Run) -> int:
    run.own(run.names.temp_path)
    fd = run.keep(os.open(run.pname, _NEW_FILE, 0o600, dir_fd=run.tdir))
    run.temp_ino = os.fstat(fd).st_ino
    run.hit("temp_created")
    return fd


def _finish(run: Run, fd: int) -> None:
    """Give the new inode the target's metadata, check it took, make it durable."""
    t = run.action.target
    if not _may_chown(t.uid, t.gid):
        raise BuildFailed("metadata", f"the target belongs to uid {t.uid} gid {t.gid}; only root can give "
                                      f"a new file that owner (run dedupd as root, or use mode hardlink)")
    try:
        os.fchown(fd, t.uid, t.gid)
        os.fchmod(fd, stat.S_IMODE(t.mode))  # after chown, which clears set-id bits
        for name, value in fsops.xattrs(run.tfd).items():
            os.setxattr(fd, name, value)
        os.utime(fd, ns=(run.target_atime_ns, t.mtime_ns))
    except OSError as e:
        raise BuildFailed("metadata", f"cannot give the new file the target's metadata: {e.strerror}") from None
    check_metadata(fd, run)
    os.fsync(fd)


def check_metadata(fd: int, run: Run) -> None:
    t, st = run.action.target, os.fstat(fd)
    diffs = [name for name, ok in (
        ("owner", (st.st_uid, st.st_gid) == (t.uid, t.gid)),
        ("mode", stat.S_IMODE(st.st_mode) == stat.S_IMODE(t.mode)),
        ("mtime", st.st_mtime_ns == t.mtime_ns),
        ("xattrs", fsops.xattrs(fd) == fsops.xattrs(run.tfd))) if not ok]
    if diffs:
        raise BuildFailed("metadata", f"the new file did not take the target's {', '.join(diffs)}")


def _may_chown(uid: int, gid: int) -> bool:
    """Root gives any owner; others can only keep their own uid and a group they are in."""
    if os.geteuid() == 0:
        return True
    return uid == os.geteuid() and (gid == os.getegid() or gid in os.getgroups())
