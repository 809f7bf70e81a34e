"""Helpers shared by the actions tests (unit and integration): trees of real photos,
hashes, and the SAFETY.md E invariants checked after every crash or fault.

The integration tests import this module by path (tests/ has no packages)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import testimages
from dedupd.daemon.actions.journal import UNFINISHED, Journal
from dedupd.daemon.config.schema import QUARANTINE_DIR, TEMP_PREFIX


@functools.lru_cache(maxsize=None)
def photo_bytes(name: str = "astronaut", quality: int = 90, scale: float = 0.25) -> bytes:
    """A real photo as JPEG bytes (skimage's astronaut at 128 px by default: small and fast)."""
    return testimages.encode(testimages.resize(testimages.photo(name), scale), ".jpg", quality)


def sha(path: str | Path) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()


@dataclass
class Pair:
    root: str
    target: str
    keeper: str
    target_hash: bytes
    keeper_hash: bytes
    target_ino: int
    keeper_ino: int
    tier: str

    def plan(self, mode: str, fallback: str = "skip"):
        from dedupd.daemon.actions.plan import plan_replacement

        return plan_replacement(self.target, self.target_hash, self.keeper, self.keeper_hash,
                                mode=mode, fallback=fallback, root=self.root, tier=self.tier)


def make_pair(root: str | Path, tier: str = "exact", photo: str = "astronaut",
              target_name: str = "copy.jpg") -> Pair:
    """root/album/<target_name> (the copy to replace) and root/best/keeper.jpg.

    exact: identical bytes; act: the same photo re-encoded at a lower quality."""
    root = str(root)
    os.makedirs(os.path.join(root, "album"), exist_ok=True)
    os.makedirs(os.path.join(root, "best"), exist_ok=True)
    keeper_bytes = photo_bytes(photo, 90)
    target_bytes = keeper_bytes if tier == "exact" else photo_bytes(photo, 70)
    target, keeper = os.path.join(root, "album", target_name), os.path.join(root, "best", "keeper.jpg")
    Path(target).write_bytes(target_bytes)
    Path(keeper).write_bytes(keeper_bytes)
    os.utime(target, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    return Pair(root, target, keeper, hashlib.sha256(target_bytes).digest(),
                hashlib.sha256(keeper_bytes).digest(), os.lstat(target).st_ino, os.lstat(keeper).st_ino, tier)


def temp_names(root: str | Path) -> list[str]:
    """Every name of ours that must not survive an action or a recovery."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        out += [os.path.join(dirpath, n) for n in dirnames + filenames if n.startswith(TEMP_PREFIX)]
    return out


def quarantine_files(root: str | Path) -> list[str]:
    out = []
    for dirpath, _, filenames in os.walk(os.path.join(str(root), QUARANTINE_DIR)):
        out += [os.path.join(dirpath, n) for n in filenames]
    return sorted(out)


def check_invariants(journal: Journal, pair: Pair) -> None:
    """SAFETY.md E: the original's bytes at its path or in quarantine with a journal
    entry; no temp names; the keeper unchanged; every entry terminal; nothing in the
    quarantine the journal does not account for."""
    assert temp_names(pair.root) == []
    assert sha(pair.keeper) == pair.keeper_hash and os.lstat(pair.keeper).st_ino == pair.keeper_ino
    entries = list(journal.entries())
    assert [e.state for e in entries if e.state in UNFINISHED] == []
    at_path = (os.path.lexists(pair.target) and stat.S_ISREG(os.lstat(pair.target).st_mode)
               and sha(pair.target) == pair.target_hash)
    held = [e for e in entries if e.target.path == pair.target and e.holds_quarantine()
            and os.path.isfile(e.quarantine_path) and sha(e.quarantine_path) == pair.target_hash]
    assert at_path or held, f"the original of {pair.target} is lost"
    accounted = {e.quarantine_path for e in entries if e.holds_quarantine()}
    assert set(quarantine_files(pair.root)) <= accounted


def metadata(path: str) -> dict:
    """What undo must bring back exactly."""
    st = os.lstat(path)
    try:
        xattrs = {n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)}
    except OSError:
        xattrs = {}
    return {"sha256": sha(path), "ino": st.st_ino, "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns, "xattrs": xattrs}


def user_xattrs_supported(path: str | Path) -> bool:
    probe = os.path.join(str(path), ".xattr-probe")
    Path(probe).write_bytes(b"x")
    try:
        os.setxattr(probe, "user.dedupd-test", b"1")
        return True
    except OSError:
        return False
    finally:
        os.unlink(probe)


FICLONE = 0x40049409


def reflink_works(directory: str | Path) -> bool:
    """A real FICLONE probe in `directory`."""
    import fcntl

    src, dst = os.path.join(str(directory), ".probe-src"), os.path.join(str(directory), ".probe-dst")
    Path(src).write_bytes(b"probe" * 1000)
    try:
        with open(src, "rb") as s, open(dst, "wb") as d:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
        return True
    except OSError:
        return False
    finally:
        for p in (src, dst):
            if os.path.exists(p):
                os.unlink(p)


@contextlib.contextmanager
def mounted(fstype: str, where: Path, options: str = "", image: Path | None = None) -> Iterator[str | None]:
    """Mount a small filesystem (a tmpfs, or a loop `image`) at `where` for the
    duration; yields None when that cannot be done here (not root, no mount rights)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield None
        return
    source = ["-o", f"loop{',' + options if options else ''}", str(image)] if image else \
        ["-t", fstype, "-o", options or "size=1m", fstype]
    if subprocess.run(["mount", *source, str(where)], capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield str(where)
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextlib.contextmanager
def reflink_dir(base: Path) -> Iterator[tuple[str | None, str]]:
    """A directory where FICLONE works: `base` itself, else (as root, with mkfs.xfs) a
    loop-mounted XFS image. Yields (path or None, why not)."""
    if reflink_works(base):
        yield str(base), ""
        return
    if os.geteuid() != 0 or shutil.which("mkfs.xfs") is None:
        yield None, "this filesystem cannot clone files, and no XFS image can be made here (needs root and mkfs.xfs)"
        return
    image = base / "xfs.img"
    with open(image, "wb") as f:
        f.truncate(320 << 20)  # sparse; XFS needs at least 300 MiB
    if subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], capture_output=True).returncode:
        yield None, "mkfs.xfs failed"
        return
    with mounted("xfs", base / "xfs", image=image) as where:
        yield (where, "") if where else (None, "cannot loop-mount an XFS image here")
    image.unlink()
