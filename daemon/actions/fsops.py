"""Small filesystem primitives the actions are built from.

Everything is fd-relative and never follows a symlink at the last component
(SAFETY.md rule 6). `renameat2` (RENAME_NOREPLACE, RENAME_EXCHANGE) is called
through libc; on a filesystem or kernel without it the callers get `Unsupported`
and use their documented fallback.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import platform
import stat

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "armv7l": 382, "ppc64le": 357, "s390x": 347,
                  "riscv64": 276, "i686": 353}
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CHUNK = 1 << 20
_libc = ctypes.CDLL(None, use_errno=True)


class Unsupported(OSError):
    """renameat2 with these flags is not available here."""


def _renameat2(src_dir: int, src: str, dst_dir: int, dst: str, flags: int) -> None:
    s, d = os.fsencode(src), os.fsencode(dst)
    fn = getattr(_libc, "renameat2", None)
    if fn is not None:
        rc = fn(ctypes.c_int(src_dir), s, ctypes.c_int(dst_dir), d, ctypes.c_uint(flags))
    elif platform.machine() in _SYS_RENAMEAT2:
        rc = _libc.syscall(ctypes.c_long(_SYS_RENAMEAT2[platform.machine()]), ctypes.c_int(src_dir), s,
                           ctypes.c_int(dst_dir), d, ctypes.c_uint(flags))
    else:
        raise Unsupported(errno.ENOSYS, "renameat2 is not available", src)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise Unsupported(err, os.strerror(err), src)
        raise OSError(err, os.strerror(err), src, None, dst)


def exchange(dir_fd: int, a: str, b: str) -> None:
    """Atomically swap the entries `a` and `b` of one directory (both must exist)."""
    _renameat2(dir_fd, a, dir_fd, b, RENAME_EXCHANGE)


def rename_noreplace(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    """Rename that fails with EEXIST when `dst` exists.

    Without renameat2 support: link + unlink, which also never replaces `dst` (for
    regular files and symlinks; a crash in between leaves an extra name, never none)."""
    try:
        _renameat2(src_dir, src, dst_dir, dst, RENAME_NOREPLACE)
    except Unsupported:
        os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
        os.unlink(src, dir_fd=src_dir)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """lstat of `name` in `dir_fd`, or None when it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def ino_at(dir_fd: int, name: str) -> int | None:
    st = lstat_at(dir_fd, name)
    return st.st_ino if st is not None else None


def open_dir(path: str) -> int:
    """Open a directory we were given (the configured root, or an absolute path)."""
    return os.open(path, DIR_FLAGS)


def open_subdir(base_fd: int, relative: str) -> int:
    """Open `relative` below `base_fd` one component at a time without following any
    symlink, so a directory swapped for a symlink cannot redirect us out of a root."""
    fd = os.dup(base_fd)
    try:
        for part in (p for p in relative.split("/") if p not in ("", ".")):
            if part == "..":
                raise OSError(errno.EPERM, "'..' is not allowed inside a root", relative)
            nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_parent(path: str, root: str | None) -> int:
    """The directory holding `path`: walked from `root` without following symlinks
    when `path` is inside `root`, else opened directly."""
    parent = os.path.dirname(path)
    if root and is_under(path, root):
        base = open_dir(root)
        try:
            return open_subdir(base, os.path.relpath(parent, root))
        finally:
            os.close(base)
    return open_dir(parent)


def is_under(path: str, root: str) -> bool:
    path, root = os.path.normpath(path), os.path.normpath(root)
    return path != root and os.path.commonpath([path, root]) == root


def mkdir_at(dir_fd: int, name: str, mode: int = 0o700) -> int:
    """Create (if needed) and open directory `name` in `dir_fd` without following symlinks."""
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
        os.fsync(dir_fd)
    except FileExistsError:
        pass
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def unlink_if(dir_fd: int, name: str, ino: int | None) -> bool:
    """Unlink `name` only when it is still inode `ino`; True when it was removed."""
    st = lstat_at(dir_fd, name)
    if st is None or ino is None or st.st_ino != ino:
        return False
    os.unlink(name, dir_fd=dir_fd)
    return True


def sha256_fd(fd: int) -> bytes:
    h = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.digest()


def same_bytes(fd_a: int, fd_b: int) -> bool:
    offset = 0
    while True:
        a, b = os.pread(fd_a, CHUNK, offset), os.pread(fd_b, CHUNK, offset)
        if a != b:
            return False
        if not a:
            return True
        offset += len(a)


def xattrs(target: int | str) -> dict[str, bytes]:
    """Every extended attribute of a file (path or fd), never following a symlink;
    {} where the filesystem has none."""
    kw = {} if isinstance(target, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(target, **kw)
        return {n: os.getxattr(target, n, **kw) for n in sorted(names)}
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise


def is_regular(st: os.stat_result | None) -> bool:
    return st is not None and stat.S_ISREG(st.st_mode)


def mount_id(path: str) -> str | None:
    """Identity of the mount that holds `path` (its mount id from /proc/self/mountinfo).

    Two names on one device can sit on different mounts (bind mounts), and link()
    and FICLONE fail across mounts: st_dev alone is not enough (SAFETY.md rule 4).
    None when /proc is not there."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    real = os.fsencode(os.path.realpath(path))
    best, best_len = None, -1
    for line in lines:
        fields = line.split(b" ")
        point = _unescape(fields[4])
        inside = real == point or real.startswith(point.rstrip(b"/") + b"/")
        if inside and len(point) >= best_len:  # a later mount on the same point hides earlier ones
            best, best_len = fields[0].decode(), len(point)
    return best


def _unescape(field: bytes) -> bytes:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in (b"\\040", b"\\011", b"\\012", b"\\134"):
        field = field.replace(code, bytes([int(code[1:], 8)]))
    return field
