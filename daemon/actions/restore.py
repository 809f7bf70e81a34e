"""`dedupctl restore PATH`: turn a stub `<name>.dedup` back into `<name>`.

While the action's quarantine still holds the original, this is an undo: the exact
original inode (bytes, owner, mode, times, xattrs) returns. After a purge the file
is rebuilt as a copy of the keeper: the keeper's sha256 must still equal the stub's
`keeper-sha256` (checked on the bytes copied), and the copy gets the stub's mode,
times and owner. It is built under the action's temp name and renamed to `<name>`
with RENAME_NOREPLACE; then the stub is removed. Refused when `<name>` exists.

With a journal entry, the copy is journaled (`restoring` -> `restored`) so a crash
is resolved by `recover()`. A stub whose action is not in this journal (the journal
was lost) is still restored, without journaling.
"""

from __future__ import annotations

import hashlib
import os
from dedupd.daemon import failpoints
from dedupd.daemon.config.schema import TEMP_PREFIX

from . import fsops
from . import stub as stubs
from .errors import RestoreRefused, UnknownAction
from .journal import Entry, Journal
from .plan import STUB_SUFFIX
from .identity import holds_stub
from .recover import Disk, OwnWrite, RecoveryReport, ignore
from .undo import undo

RESTORE_FAILPOINTS = ("restore.restoring", "restore.copied", "restore.renamed", "restore.done")
_NEW_FILE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def restore_stub(stub_path: str, journal: Journal, *, on_own_write: OwnWrite = ignore) -> str:
    """Restore `stub_path`; returns the restored file's path. Raises `StubError` for a
    file that is not a valid stub, `RestoreRefused` (nothing changed) otherwise.
    `on_own_write(path)` is told every name the restore may change, before it does."""
    stub_path = os.path.abspath(stub_path)
    if not stub_path.endswith(STUB_SUFFIX):
        raise RestoreRefused(f"{stub_path} is not a stub (stubs are named <name>{STUB_SUFFIX})")
    name = stub_path[: -len(STUB_SUFFIX)]
    dir_fd = fsops.open_dir(os.path.dirname(stub_path))
    try:
        stub = _read_stub(dir_fd, os.path.basename(stub_path))
        if fsops.lstat_at(dir_fd, os.path.basename(name)) is not None:
            raise RestoreRefused(f"{name} exists; move it away first (nothing was changed)")
        entry = _entry(journal, stub.action, stub_path)
        if entry is not None and entry.state == "done":
            undo(journal, entry.action_id, on_own_write=on_own_write)
            return name
        if entry is not None and entry.state != "purged":
            raise RestoreRefused(f"action {entry.action_id} is {entry.state}; its stub cannot be restored")
        for path in (stub_path, name, os.path.join(os.path.dirname(name), TEMP_PREFIX + stub.action)):
            on_own_write(path)
        _from_keeper(journal, entry, stub, dir_fd, stub_path)
    finally:
        os.close(dir_fd)
    return name


def _read_stub(dir_fd: int, name: str) -> stubs.Stub:
    try:
        fd = os.open(name, fsops.FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise RestoreRefused(f"no stub named {name}") from None
    with os.fdopen(fd, "rb") as f:
        return stubs.parse(f.read(stubs.MAX_BYTES + 1))


def _entry(journal: Journal, action_id: str, stub_path: str) -> Entry | None:
    try:
        entry = journal.get(action_id)
    except UnknownAction:
        return None
    return entry if entry.final_path == stub_path else None


def _from_keeper(journal: Journal, entry: Entry | None, stub: stubs.Stub, dir_fd: int,
                 stub_path: str) -> None:
    pname = TEMP_PREFIX + stub.action
    if entry is not None:
        journal.advance(entry.action_id, "restoring", temp_ino=0)
    failpoints.hit("restore.restoring")
    ino = _copy_keeper(stub, dir_fd, pname)
    if entry is not None:
        journal.advance(entry.action_id, "restoring", temp_ino=ino)
    failpoints.hit("restore.copied")
    try:
        fsops.rename_noreplace(dir_fd, pname, dir_fd, os.path.basename(stub_path)[: -len(STUB_SUFFIX)])
    except FileExistsError:
        os.unlink(pname, dir_fd=dir_fd)
        if entry is not None:
            journal.advance(entry.action_id, "purged", temp_ino=0)
        raise RestoreRefused(f"{stub_path[: -len(STUB_SUFFIX)]} appeared meanwhile; nothing was changed") from None
    failpoints.hit("restore.renamed")
    os.fsync(dir_fd)
    if holds_stub(stub.action, dir_fd, os.path.basename(stub_path)):
        os.unlink(os.path.basename(stub_path), dir_fd=dir_fd)
    os.fsync(dir_fd)
    if entry is not None:
        journal.advance(entry.action_id, "restored", result_ino=ino)
    failpoints.hit("restore.done")


def _copy_keeper(stub: stubs.Stub, dir_fd: int, pname: str) -> int:
    """Copy the keeper to `pname` while hashing it; the copy is removed unless the
    keeper still hashes as the stub says. Returns the copy's inode."""
    try:
        src = os.open(stub.keeper, fsops.FILE_FLAGS)
    except OSError as e:
        raise RestoreRefused(f"the keeper {stub.keeper} cannot be opened ({e.strerror}); "
                             f"the stub is kept") from None
    try:
        if not fsops.is_regular(os.fstat(src)):
            raise RestoreRefused(f"the keeper {stub.keeper} is no longer a regular file; the stub is kept")
        dst = os.open(pname, _NEW_FILE, 0o600, dir_fd=dir_fd)
        try:
            digest = _copy(src, dst)
            if digest != stub.keeper_sha256:
                raise RestoreRefused(f"the keeper {stub.keeper} changed since the stub was written "
                                     f"(sha256 differs); the stub is kept")
            _apply(dst, stub)
            os.fsync(dst)
            return os.fstat(dst).st_ino
        except BaseException:
            os.unlink(pname, dir_fd=dir_fd)
            raise
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy(src: int, dst: int) -> bytes:
    h, offset = hashlib.sha256(), 0
    while chunk := os.pread(src, fsops.CHUNK, offset):
        h.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]
        offset += len(chunk)
    return h.digest()


def _apply(fd: int, stub: stubs.Stub) -> None:
    if os.geteuid() == 0 or stub.uid == os.geteuid():
        os.fchown(fd, stub.uid, stub.gid)
    os.fchmod(fd, stub.mode)
    os.utime(fd, ns=(stub.atime_ns, stub.mtime_ns))


def resolve_restoring(journal: Journal, entry: Entry, disk: Disk, report: RecoveryReport) -> None:
    """Recovery of a restore that stopped: finished once the copy holds the name,
    else the copy is removed and the entry is `purged` again (the stub stays)."""
    t = disk.t()
    if t is not None and entry.temp_ino and t.st_ino == entry.temp_ino:
        if holds_stub(entry.action_id, disk.tdir, disk.fname):
            os.unlink(disk.fname, dir_fd=disk.tdir)
        disk.fsync()
        journal.advance(entry.action_id, "restored", result_ino=t.st_ino)
        report.rolled_forward.append(entry.action_id)
        return
    p = disk.p()
    if p is not None and (not entry.temp_ino or p.st_ino == entry.temp_ino):
        os.unlink(disk.pname, dir_fd=disk.tdir)
        report.temps_removed.append(entry.temp_path)
    disk.fsync()
    journal.advance(entry.action_id, "purged", temp_ino=0)
    report.rolled_back.append(entry.action_id)
