"""Plans are values: what would be replaced by what, and what is refused and why.

`plan_replacement` applies the up-front refusals of SAFETY.md section A (rules 4, 9
and 14) from `lstat` alone; it never changes a file. The executor re-verifies
everything again right before acting (rule 5), so a plan may be stale without harm.
A `Plan` prints as the dry run (`describe`).
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from dataclasses import dataclass

from dedupd.daemon.config.schema import QUARANTINE_DIR, TEMP_PREFIX
from dedupd.daemon.errors import FileProblem, Unreadable, Vanished

from . import fsops
from .errors import NotRegular

KINDS = ("hardlink", "symlink", "reflink", "stub")
TIERS = ("exact", "act")
FALLBACKS = ("skip", "reflink", "stub")
STUB_SUFFIX = ".dedup"


# Across owners a replacement must not hand one user another user's bytes: an
# act-tier reflink puts the keeper's (other) bytes into the target owner's inode, and
# an act-tier stub is restored (after a purge) as a copy of them. A symlink grants
# nothing (the kernel checks the keeper's own permissions), the exact tier holds the
# user's own bytes, and a hard link needs equal owners anyway (rule 14).
_OWNER_DIFFERS = ("the keeper {keeper} belongs to another user (uid {uid}); an act-tier {kind} would give "
                  "this file's owner a copy of its bytes")


@dataclass(frozen=True)
class FileState:
    """What a file must still be at execution time (and the bytes it must hold)."""

    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    nlink: int
    uid: int
    gid: int
    mode: int
    content_hash: bytes  # sha256 of the bytes, from the index record

    @classmethod
    def capture(cls, path: str, content_hash: bytes) -> "FileState":
        """`os.lstat` of `path`. Raises `NotRegular` (symlinks included), `Vanished`, `Unreadable`."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise Vanished(path) from None
        except OSError as e:
            raise Unreadable(path, e.strerror or str(e)) from None
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(path)
        return cls.from_stat(path, st, content_hash)

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result, content_hash: bytes) -> "FileState":
        return cls(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                   st.st_nlink, st.st_uid, st.st_gid, st.st_mode, bytes(content_hash))

    def identity(self) -> tuple:
        """The fields the executor compares with a fresh fstat (SAFETY.md rule 5)."""
        return (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns, self.nlink,
                self.uid, self.gid, self.mode)


def stat_identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink,
            st.st_uid, st.st_gid, st.st_mode)


@dataclass(frozen=True)
class Action:
    action_id: str  # unique, sortable by time: "20261129T182400Z-3f2a9c1b"
    kind: str  # hardlink | symlink | reflink | stub
    tier: str  # exact | act
    root: str  # configured root holding the target; quarantine = <root>/.dedupd-quarantine
    target: FileState  # the copy that is replaced
    keeper: FileState  # the copy that is kept

    def describe(self) -> str:
        return (f"{self.kind:8} {self.target.path}  ->  keep {self.keeper.path}  "
                f"({self.tier}, {self.target.size} bytes, {self.action_id})")


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str  # same_inode, other_links, cross_device, metadata_differs, owner_differs, not_regular, ...
    detail: str = ""

    def describe(self) -> str:
        return f"{'skip':8} {self.path}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    skipped: tuple[Skip, ...] = ()

    def describe(self) -> list[str]:
        """One human line per action and per skip: the dry run."""
        return [a.describe() for a in self.actions] + [s.describe() for s in self.skipped]


def new_action_id(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(4)}"


def plan_replacement(target_path: str, target_hash: bytes, keeper_path: str, keeper_hash: bytes, *,
                     mode: str, fallback: str, root: str, tier: str) -> Action | Skip:
    """Decide how `target_path` is replaced by `keeper_path`, or why it is not.

    `mode` is the root's mode (one of KINDS), `fallback` the root's hardlink
    fallback (one of FALLBACKS), `root` the configured root holding the target."""
    if mode not in KINDS or fallback not in FALLBACKS or tier not in TIERS:
        raise ValueError(f"plan_replacement: mode {mode!r}, fallback {fallback!r}, tier {tier!r}")
    target_path, keeper_path, root = os.fspath(target_path), os.fspath(keeper_path), os.fspath(root)
    try:
        target = FileState.capture(target_path, target_hash)
        keeper = FileState.capture(keeper_path, keeper_hash)
    except FileProblem as e:
        return Skip(e.path, e.kind, e.detail)
    try:
        refusal = _refusal(target, keeper, root, tier)
        kind = refusal or _kind(target, keeper, mode, fallback)
    except OSError as e:  # a folder renamed or swapped while we looked: judge it again later
        reason = "vanished" if isinstance(e, FileNotFoundError) else "changed"
        return Skip(target_path, reason, f"changed while it was planned: {e.strerror or e}")
    if isinstance(kind, Skip):
        return kind
    if target.uid != keeper.uid and tier == "act" and kind in ("reflink", "stub"):
        return Skip(target.path, "owner_differs", _OWNER_DIFFERS.format(kind=kind, keeper=keeper.path, uid=keeper.uid))
    if kind == "stub" and os.path.lexists(target.path + STUB_SUFFIX):
        return Skip(target.path, "name_taken", f"{target.path + STUB_SUFFIX} exists")
    return Action(new_action_id(), kind, tier, os.path.normpath(root), target, keeper)


def _refusal(target: FileState, keeper: FileState, root: str, tier: str) -> Skip | None:
    """Rules that hold whatever the mode: SAFETY.md rules 4, 9, reserved names, quarantine device."""
    p = target.path
    if not fsops.is_under(p, root):
        return Skip(p, "outside_root", f"not inside {root}")
    for path in (target.path, keeper.path):
        if QUARANTINE_DIR in path.split(os.sep) or os.path.basename(path).startswith(TEMP_PREFIX):
            return Skip(path, "reserved_name", "dedupd's own quarantine or temporary name")
    if (target.dev, target.ino) == (keeper.dev, keeper.ino):
        return Skip(p, "same_inode", f"already one file with {keeper.path}")
    if target.nlink != 1:
        return Skip(p, "other_links", f"{target.nlink - 1} other hard link(s) would keep the bytes")
    if tier == "exact" and target.content_hash != keeper.content_hash:
        return Skip(p, "changed", "exact tier but the content hashes differ")
    qdev = _quarantine_dev(root)
    if qdev != target.dev or fsops.mount_id(_quarantine_base(root)) != fsops.mount_id(p):
        return Skip(p, "cross_device", f"{root}/{QUARANTINE_DIR} is on another filesystem or mount")
    return None


def _quarantine_base(root: str) -> str:
    q = os.path.join(root, QUARANTINE_DIR)
    return q if os.path.isdir(q) else root


def _quarantine_dev(root: str) -> int | None:
    try:
        return os.lstat(_quarantine_base(root)).st_dev
    except OSError:
        return None


def _kind(target: FileState, keeper: FileState, mode: str, fallback: str) -> str | Skip:
    """The replacement kind after SAFETY.md rules 4 (same device and mount) and 14."""
    if mode in ("symlink", "stub"):
        return mode
    if (target.dev != keeper.dev
            or fsops.mount_id(target.path) != fsops.mount_id(keeper.path)):
        # Never copy-and-delete: only a stub works across filesystems.
        if mode == "hardlink" and fallback == "stub":
            return "stub"
        return Skip(target.path, "cross_device", f"keeper {keeper.path} is on another filesystem or mount")
    if mode == "reflink":
        return "reflink"
    differs = metadata_differences(target, keeper)
    if not differs:
        return "hardlink"
    if fallback == "skip":
        return Skip(target.path, "metadata_differs", ", ".join(differs))
    return fallback


def metadata_differences(target: FileState, keeper: FileState) -> list[str]:
    """What a hard link would lose: it has exactly one owner, group, mode and xattr set."""
    out = [name for name, a, b in (("owner", target.uid, keeper.uid), ("group", target.gid, keeper.gid),
                                   ("mode", stat.S_IMODE(target.mode), stat.S_IMODE(keeper.mode))) if a != b]
    try:
        if fsops.xattrs(target.path) != fsops.xattrs(keeper.path):
            out.append("xattrs")
    except OSError as e:
        out.append(f"xattrs unreadable ({e.strerror})")
    return out
