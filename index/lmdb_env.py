"""Opening, locking and validating the LMDB environment behind `LmdbIndex`.

Layout (one environment, named sub-databases): `records` (id -> record, `codec`), `paths`
(8 bytes of sha256 of the directory + 8 of the name -> id), `by_inode` and `by_content`
(one key each, dupsort + dupfixed: sorted 11-byte values, a 6-byte prefix of the inode or
content hash then the 5-byte id, packed by LMDB without per-entry headers; a lookup reads
the values with the prefix and checks each record: `codec.inode_prefix`,
`codec.content_prefix`), `codes` (every searchable code once, in blocks of rows sorted by
id: `codeblocks`; a searchable record does not repeat its code), `groups`, `meta`, and
`edges` (dupsort + dupfixed: id -> other id, distance, variant; each near pair stored from
both sides). The multi-index hashing tables are not stored: they are built in RAM from
`codes`. The `meta` table carries a format marker, the schema version, the settings the
codes were built with, the id counter and app metadata under "app:".

Schema 3 (v3 records in `files`, 16-byte lookup keys in `inodes`, `content`, `content_new`) is
upgraded in place by the writer when it opens one (`migrate`); a reader gets `IndexMismatch`
saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import lmdb

from .base import SCHEMA_VERSION, UPGRADABLE, IndexMeta, make_meta
from .errors import (REINDEX_HINT, IndexCorrupt, IndexFailure, IndexLocked, IndexMismatch,
                     IndexMissing)

FORMAT = b"dedupd-index"
MAX_DBS = 16
OUR_FILES = {"data.mdb", "lock.mdb", "writer.lock"}
APP_PREFIX = b"app:"


@dataclass
class Tables:
    """Handles of the named databases."""

    records: object
    paths: object
    by_inode: object
    by_content: object
    groups: object
    meta: object
    codes: object
    edges: object

    NAMES = ("records", "paths", "by_inode", "by_content", "codes", "groups", "meta", "edges")

    def by_name(self, name: str) -> object:
        return getattr(self, name)


class Gate:
    """Transactions of many threads run together; a map resize runs alone.

    LMDB may only change the map size while this process has no transaction open.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._resizing = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._resizing)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def resize(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._resizing)
            self._resizing = True
            self._cond.wait_for(lambda: self._active == 0)
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class EnvOwner:
    """Closing an LMDB environment this process opened, and its writer lock (shared by
    `LmdbIndex` and `JournalStore`). A child after fork() must never touch the parent's
    environment (SAFETY.md rule 20): `close()` there only forgets it."""

    _pid: int
    _env: "lmdb.Environment | None"
    _lock_fd: "int | None"

    def close(self) -> None:
        if os.getpid() == self._pid:
            self._release()
        self._env = None

    def _release(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def error_for(e: BaseException, path: Path, op: str) -> IndexFailure:
    """The typed error for an `lmdb.Error` or `OSError` raised while doing `op` on `path`."""
    if isinstance(e, IndexFailure):
        return e
    if isinstance(e, (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError,
                      lmdb.IncompatibleError, lmdb.NotFoundError, lmdb.VersionMismatchError,
                      lmdb.PanicError)):
        return IndexCorrupt(f"index at {path} is damaged ({op}: {e}); {REINDEX_HINT}")
    if isinstance(e, lmdb.ReadonlyError):
        return IndexFailure(f"index at {path} is open read-only; {op} needs a writable index")
    if "already open" in str(e):
        return IndexLocked(f"index at {path} is already open in this process; reuse that LmdbIndex")
    if isinstance(e, lmdb.ReadersFullError):
        return IndexLocked(f"index at {path}: too many readers ({e}); close idle `dedupctl` processes")
    if isinstance(e, OSError):
        return IndexFailure(f"{op} of index at {path} failed: {e.strerror or e}; check the path and its permissions")
    return IndexFailure(f"{op} of index at {path} failed: {e}")


@contextlib.contextmanager
def mapped_errors(path: Path, op: str) -> Iterator[None]:
    try:
        yield
    except (lmdb.Error, OSError) as e:
        raise error_for(e, path, op) from e


def lock_writer(path: Path) -> int:
    """Take the one-writer lock (flock on writer.lock); returns its fd. Raises `IndexLocked`."""
    fd = os.open(path / "writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise IndexLocked(f"another process writes to the index at {path}; stop it "
                          f"(is dedupd running?) or open the index read-only") from None
    return fd


def prepare_dir(path: Path, readonly: bool) -> bool:
    """Check `path` can hold our index; returns True when a new index must be created."""
    if path.exists() and not path.is_dir():
        raise IndexCorrupt(f"{path} is a file, not a dedupd index directory; choose another path")
    if (path / "data.mdb").exists():
        return False
    if readonly:
        raise IndexMissing(f"no index at {path}; run a scan first")
    if path.exists():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in OUR_FILES)
        if foreign:
            raise IndexCorrupt(f"{path} holds other files ({', '.join(foreign[:3])}), not a dedupd "
                               f"index; choose an empty or new directory")
    path.mkdir(parents=True, exist_ok=True)
    return True


def open_env(path: Path, readonly: bool, map_size: int) -> lmdb.Environment:
    return lmdb.open(str(path), map_size=map_size, max_dbs=MAX_DBS, subdir=True, readonly=readonly,
                     create=not readonly, readahead=False, meminit=False, max_readers=254)


def open_tables(env: lmdb.Environment, txn=None, create: bool = False) -> Tables:
    """Handles of the schema-4 tables (`create`: inside the write transaction `txn`)."""
    def db(name: str, dupsort: bool = False, dupfixed: bool = False):
        return env.open_db(name.encode(), txn=txn, create=create, dupsort=dupsort, dupfixed=dupfixed)

    return Tables(records=db("records"), paths=db("paths"), by_inode=db("by_inode", True, True),
                  by_content=db("by_content", True, True), groups=db("groups"), meta=db("meta"),
                  codes=db("codes"), edges=db("edges", True, True))


def create_index(env: lmdb.Environment, meta: IndexMeta) -> Tables:
    """Create every table and write the settings, in one transaction."""
    with env.begin(write=True) as txn:
        tables = open_tables(env, txn=txn, create=True)
        put = lambda k, v: txn.put(k, v, db=tables.meta)  # noqa: E731
        put(b"format", FORMAT)
        for field in ("schema_version", "algo", "algo_version", "code_bits", "m"):
            put(field.encode(), json.dumps(getattr(meta, field)).encode())
    return tables


def is_empty(env: lmdb.Environment) -> bool:
    """True for an environment with no tables at all (created, never committed to)."""
    with env.begin() as txn:
        return txn.stat()["entries"] == 0


def load_index(env: lmdb.Environment, path: Path, want: dict) -> tuple[IndexMeta, int]:
    """Read and check the stored settings against `want`: (settings, stored schema version),
    which is `SCHEMA_VERSION` or one `migrate` upgrades from (the caller opens the tables)."""
    with env.begin() as txn:
        if txn.get(b"meta") is None:
            raise IndexCorrupt(f"{path} holds an LMDB database that is not a dedupd index; "
                               f"choose another path or delete it")
    meta_db = env.open_db(b"meta", create=False)
    with env.begin() as txn:
        if txn.get(b"format", db=meta_db) != FORMAT:
            raise IndexCorrupt(f"{path} holds an LMDB database that is not a dedupd index; "
                               f"choose another path or delete it")
        stored = {k: _json(txn.get(k.encode(), db=meta_db), k, path)
                  for k in ("schema_version", "algo", "algo_version", "code_bits", "m")}
    check_settings(stored, want, path)
    try:
        meta = make_meta(stored["code_bits"], stored["m"], stored["algo"], stored["algo_version"])
    except (ValueError, TypeError) as e:
        raise IndexCorrupt(f"index at {path} has invalid settings ({e}); {REINDEX_HINT}") from None
    return meta, stored["schema_version"]


def check_settings(stored: dict, want: dict, path: Path) -> None:
    if stored["schema_version"] not in (SCHEMA_VERSION, *UPGRADABLE):
        raise IndexMismatch(f"index at {path} has schema version {stored['schema_version']}, this "
                            f"dedupd uses {SCHEMA_VERSION}; {REINDEX_HINT}")
    diffs = [f"{k} {stored[k]!r} (wanted {v!r})" for k, v in want.items()
             if v is not None and stored[k] != v]
    if diffs:
        raise IndexMismatch(f"index at {path} was built with {', '.join(diffs)}; {REINDEX_HINT}")


def _json(raw: bytes | None, key: str, path: Path):
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise IndexCorrupt(f"index at {path}: setting {key!r} is missing or unreadable; {REINDEX_HINT}") from None
