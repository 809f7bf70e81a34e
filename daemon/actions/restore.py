"""`dedupctl restore PATH`: turn a stub `<name>.dedup` back into `<name>`.

While the action's quarantine still holds the original, this is an undo: the exact
original inode (bytes, owner, mode, times, xattrs) returns. After a purge the file
is rebuilt as a copy of the keeper: the keeper's sha256 must still equal the
journaled one (checked on the bytes copied), and the copy gets the replaced file's
mode, times and owner. It is built under the action's temp name and renamed to
`<name>` with RENAME_NOREPLACE; then the stub is removed. Refused when `<name>` exists.

A stub belongs to the user who owns it, who may edit it: its contents are not
trusted. With a journal entry for its action and name, the keeper, its hash, the
owner, mode and times come from the journal and the stub only names the action.
A stub whose action is not in this journal (the journal was lost) is restored only
when it sits in a configured root (`roots`), claims its own file's owner and no
set-id bits, and names a keeper inside a root that belongs to that owner; it is not
journaled. The stub's folder and the keeper's are opened from their root without
following a symlink (`fsops.open_parent`), so a folder swapped for a symlink cannot
lead the restore outside the roots.

With a journal entry, the copy is journaled (`restoring` -> `restored`) so a crash
is resolved by `recover()`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Sequence

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


def restore_stub(stub_path: str, journal: Journal, *, roots: Sequence[str] | None = None,
                 on_own_write: OwnWrite = ignore) -> str:
    """Restore `stub_path`; returns the restored file's path. Raises `StubError` for a
    file that is not a valid stub, `RestoreRefused` (nothing changed) otherwise.
    `roots`: the configured roots; the daemon and dedupctl always pass them. Without
    them (library use) the stub's folder is opened as named and an unjournaled stub's
    keeper is not checked against a root. `on_own_write(path)` is told every name the
    restore may change, before it does."""
    stub_path = os.path.abspath(stub_path)
    if not stub_path.endswith(STUB_SUFFIX):
        raise RestoreRefused(f"{stub_path} is not a stub (stubs are named <name>{STUB_SUFFIX})")
    name = stub_path[: -len(STUB_SUFFIX)]
    root = _root_of(stub_path, roots) or _journaled_root(journal, stub_path)
    if root is None and roots is not None:
        raise RestoreRefused(f"{stub_path} is outside every configured root and no dedupd action made it; "
                             f"nothing was changed")
    dir_fd = _open_parent(stub_path, root)
    try:
        stub, owner = _read_stub(dir_fd, os.path.basename(stub_path))
        if fsops.lstat_at(dir_fd, os.path.basename(name)) is not None:
            raise RestoreRefused(f"{name} exists; move it away first (nothing was changed)")
        entry = _entry(journal, stub.action, stub_path)
        if entry is not None and entry.state == "done":
            undo(journal, entry.action_id, on_own_write=on_own_write)
            return name
        if entry is not None and entry.state != "purged":
            raise RestoreRefused(f"action {entry.action_id} is {entry.state}; its stub cannot be restored")
        if entry is not None:
            stub, keeper_root, keeper_uid = _journaled(stub, entry), _root_of(entry.keeper.path, roots), None
            keeper_root = keeper_root or (entry.root if fsops.is_under(entry.keeper.path, entry.root) else None)
        else:
            keeper_root, keeper_uid = _check_unjournaled(stub, owner, roots), owner.st_uid
        for path in (stub_path, name, os.path.join(os.path.dirname(name), TEMP_PREFIX + stub.action)):
            on_own_write(path)
        _from_keeper(journal, entry, stub, dir_fd, stub_path, keeper_root, keeper_uid)
    finally:
        os.close(dir_fd)
    return name


def _root_of(path: str, roots: Sequence[str] | None) -> str | None:
    return next((r for r in roots or () if fsops.is_under(path, r)), None)


def _journaled_root(journal: Journal, stub_path: str) -> str | None:
    """The root of the last action that left a stub at `stub_path`."""
    entries = [e for e in journal.entries(path=stub_path) if e.final_path == stub_path]
    return entries[-1].root if entries else None


def _open_parent(path: str, root: str | None) -> int:
    try:
        return fsops.open_parent(path, root)
    except OSError as e:
        raise RestoreRefused(f"cannot open the folder of {path} from its root {root} without following a "
                             f"symlink ({e.strerror}); nothing was changed") from None


def _read_stub(dir_fd: int, name: str) -> tuple[stubs.Stub, os.stat_result]:
    try:
        fd = os.open(name, fsops.FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise RestoreRefused(f"no stub named {name}") from None
    except OSError as e:
        raise RestoreRefused(f"{name} cannot be opened as a stub ({e.strerror}); nothing was changed") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise RestoreRefused(f"{name} is not a regular file, so not a stub")
        return stubs.parse(f.read(stubs.MAX_BYTES + 1)), st


def _journaled(stub: stubs.Stub, entry: Entry) -> stubs.Stub:
    """What the journal says about the action; of the stub only the access time is
    taken (not journaled, and harmless)."""
    t, k = entry.target, entry.keeper
    return stubs.Stub(keeper=k.path, keeper_sha256=k.content_hash, sha256=t.content_hash, size=t.size,
                      mode=stat.S_IMODE(t.mode), uid=t.uid, gid=t.gid, atime_ns=stub.atime_ns,
                      mtime_ns=t.mtime_ns, action=entry.action_id)


def _check_unjournaled(stub: stubs.Stub, owner: os.stat_result, roots: Sequence[str] | None) -> str | None:
    """Refuse a stub without a journal entry unless it only asks for what its owner
    could do by hand; returns the keeper's root (None without `roots`)."""
    if (stub.uid, stub.gid) != (owner.st_uid, owner.st_gid):
        raise RestoreRefused(f"the stub claims owner {stub.uid}:{stub.gid} but belongs to "
                             f"{owner.st_uid}:{owner.st_gid}, and action {stub.action} is not in the journal")
    if stub.mode & 0o7000:
        raise RestoreRefused(f"the stub asks for set-id or sticky bits ({stub.mode:04o}) and action {stub.action} "
                             f"is not in the journal")
    keeper_root = _root_of(stub.keeper, roots)
    if os.path.normpath(stub.keeper) != stub.keeper or (keeper_root is None and roots is not None):
        raise RestoreRefused(f"the stub's keeper {stub.keeper} is not a plain path inside a configured root")
    return keeper_root


def _entry(journal: Journal, action_id: str, stub_path: str) -> Entry | None:
    try:
        entry = journal.get(action_id)
    except UnknownAction:
        return None
    return entry if entry.final_path == stub_path else None


def _from_keeper(journal: Journal, entry: Entry | None, stub: stubs.Stub, dir_fd: int,
                 stub_path: str, keeper_root: str | None, keeper_uid: int | None) -> None:
    pname = TEMP_PREFIX + stub.action
    if entry is not None:
        journal.advance(entry.action_id, "restoring", temp_ino=0)
    failpoints.hit("restore.restoring")
    ino = _copy_keeper(stub, dir_fd, pname, keeper_root, keeper_uid)
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


def _copy_keeper(stub: stubs.Stub, dir_fd: int, pname: str, keeper_root: str | None, keeper_uid: int | None) -> int:
    """Copy the keeper to `pname` while hashing it; the copy is removed unless the
    keeper still hashes as the stub says. The keeper's folder is opened from
    `keeper_root` without following symlinks; `keeper_uid`, when given, must own it.
    Returns the copy's inode."""
    try:
        kdir = fsops.open_parent(stub.keeper, keeper_root)
        try:
            src = os.open(os.path.basename(stub.keeper), fsops.FILE_FLAGS, dir_fd=kdir)
        finally:
            os.close(kdir)
    except OSError as e:
        raise RestoreRefused(f"the keeper {stub.keeper} cannot be opened ({e.strerror}); "
                             f"the stub is kept") from None
    try:
        st = os.fstat(src)
        if not fsops.is_regular(st):
            raise RestoreRefused(f"the keeper {stub.keeper} is no longer a regular file; the stub is kept")
        if keeper_uid is not None and st.st_uid != keeper_uid:
            raise RestoreRefused(f"the keeper {stub.keeper} belongs to another user; the stub is kept")
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
