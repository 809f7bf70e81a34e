"""`JournalStore`: the action journal's records in their own small LMDB environment.

The journal lives apart from the index on purpose: the index is derived data that
`dedupctl reindex` deletes and rebuilds, the journal is the record of where users'
bytes are (which quarantine link holds which original). Deleting it loses that map.

Sub-databases:
- `entries`: big-endian u64 sequence -> record (JSON object, UTF-8);
- `by_action`: action id -> sequence;
- `by_path`: sha256 of a path -> sequences (dupsort + dupfixed).

A record is a JSON object with a string `action_id`; the paths indexed for
`seqs_for_path` are the record's `target.path` and `final_path` (the name a stub
takes). Paths may hold surrogate escapes (non-UTF-8 names): JSON keeps them as
`\\udcXX` escapes and they hash as their original bytes.

Every write commits synchronously (LMDB's default `sync=True`) before returning, so
an `append` that returned survives a crash. One writer per environment (the
`writer.lock` flock of `lmdb_env`); the map doubles on `MapFullError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import lmdb

from . import lmdb_env
from .errors import IndexCorrupt, IndexFailure, IndexLocked

T = TypeVar("T")
FORMAT = b"dedupd-journal"
DEFAULT_MAP_SIZE = 64 << 20
MAX_MAP_SIZE = 1 << 40
ITER_BATCH = 256
_MOVED_HINT = ("the quarantine folders still hold the bytes; move the journal directory aside "
               "and keep it for support")


def _seq_key(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def path_key(path: str) -> bytes:
    """LMDB keys are limited to 511 bytes: paths are indexed by their sha256."""
    return hashlib.sha256(os.fsencode(path)).digest()


def _paths_of(record: dict) -> set[str]:
    target = record.get("target")
    paths = {target.get("path")} if isinstance(target, dict) else set()
    paths.add(record.get("final_path"))
    return {p for p in paths if isinstance(p, str) and p}


def _encode(record: dict) -> bytes:
    if not isinstance(record, dict) or not isinstance(record.get("action_id"), str) or not record["action_id"]:
        raise IndexFailure("a journal record must be a JSON object with a non-empty action_id")
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _error(e: BaseException, path: Path, op: str) -> IndexFailure:
    """`lmdb_env.error_for`, but a damaged journal is not fixed by a reindex."""
    if isinstance(e, (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError,
                      lmdb.IncompatibleError, lmdb.VersionMismatchError, lmdb.PanicError)):
        return IndexCorrupt(f"journal at {path} is damaged ({op}: {e}); {_MOVED_HINT}")
    err = lmdb_env.error_for(e, path, op)
    if isinstance(err, IndexLocked):
        return IndexLocked(str(err).replace("index", "journal").replace("LmdbIndex", "JournalStore"))
    return err


class JournalStore(lmdb_env.EnvOwner):
    """The journal's LMDB environment; see the module docstring. Not fork-safe."""

    def __init__(self, *args, **kwargs):
        raise TypeError("use JournalStore.open(path)")

    @classmethod
    def open(cls, path: str | os.PathLike, *, map_size: int = DEFAULT_MAP_SIZE) -> "JournalStore":
        """Open or create the journal in directory `path`, taking the writer lock.

        Raises `IndexLocked` when another process holds it, `IndexCorrupt` when
        `path` holds something that is not a dedupd journal."""
        self = object.__new__(cls)
        self.path, self._pid, self._env, self._lock_fd = Path(path), os.getpid(), None, None
        self._gate = lmdb_env.Gate()
        try:
            self._open(map_size)
        except (lmdb.Error, OSError) as e:
            self._release()
            raise _error(e, self.path, "open") from e
        except BaseException:
            self._release()
            raise
        return self

    def _open(self, map_size: int) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise IndexCorrupt(f"{self.path} is a file, not a dedupd journal directory; choose another path")
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._lock_fd = lmdb_env.lock_writer(self.path)
        except IndexLocked:
            raise IndexLocked(f"another process writes to the journal at {self.path}; stop it "
                              f"(is dedupd running?)") from None
        self._env = lmdb.open(str(self.path), map_size=map_size, max_dbs=4, subdir=True,
                              readahead=False, meminit=False, max_readers=126)
        with self._env.begin(write=True) as txn:
            meta = self._env.open_db(b"meta", txn=txn)
            stored = txn.get(b"format", db=meta)
            if stored is None and txn.stat()["entries"] > 1:
                raise IndexCorrupt(f"{self.path} holds an LMDB database that is not a dedupd journal; "
                                   f"choose another path")
            if stored not in (None, FORMAT):
                raise IndexCorrupt(f"{self.path} is not a dedupd journal (format {stored!r})")
            txn.put(b"format", FORMAT, db=meta)
            self._entries = self._env.open_db(b"entries", txn=txn)
            self._by_action = self._env.open_db(b"by_action", txn=txn)
            self._by_path = self._env.open_db(b"by_path", txn=txn, dupsort=True, dupfixed=True)

    # -- transactions ------------------------------------------------------------
    def _live(self) -> lmdb.Environment:
        if self._env is None:
            raise IndexFailure(f"the journal at {self.path} is closed")
        if os.getpid() != self._pid:
            raise IndexFailure(f"the journal at {self.path} was opened before fork(); open it in this process")
        return self._env

    def _read(self, op: str, fn: Callable[[Any], T]) -> T:
        env = self._live()
        try:
            with self._gate.transaction(), env.begin() as txn:
                return fn(txn)
        except lmdb.Error as e:
            raise _error(e, self.path, op) from e

    def _write(self, op: str, fn: Callable[[Any], T]) -> T:
        env = self._live()
        try:
            while True:
                try:
                    with self._gate.transaction(), env.begin(write=True) as txn:
                        return fn(txn)
                except lmdb.MapFullError:
                    self._grow()
        except (lmdb.Error, OSError) as e:
            raise _error(e, self.path, op) from e

    def _grow(self) -> None:
        size = self._env.info()["map_size"]
        if size >= MAX_MAP_SIZE:
            raise IndexFailure(f"journal at {self.path} reached {size} bytes; purge old entries")
        with self._gate.resize():
            self._env.set_mapsize(size * 2)

    # -- records -------------------------------------------------------------------
    def append(self, record: dict) -> int:
        """Store a new record; returns its sequence number once committed to disk.

        Raises `IndexFailure` when `record["action_id"]` is already journaled."""
        data = _encode(record)

        def txn_fn(txn) -> int:
            if txn.get(record["action_id"].encode(), db=self._by_action) is not None:
                raise IndexFailure(f"action {record['action_id']} is already in the journal at {self.path}")
            cur = txn.cursor(db=self._entries)
            seq = int.from_bytes(cur.key(), "big") + 1 if cur.last() else 1
            txn.put(_seq_key(seq), data, db=self._entries)
            txn.put(record["action_id"].encode(), _seq_key(seq), db=self._by_action)
            for p in _paths_of(record):
                txn.put(path_key(p), _seq_key(seq), db=self._by_path)
            return seq

        return self._write("append", txn_fn)

    def update(self, seq: int, record: dict) -> None:
        """Replace record `seq` (same action id); the path index follows."""
        data = _encode(record)

        def txn_fn(txn) -> None:
            old = txn.get(_seq_key(seq), db=self._entries)
            if old is None:
                raise IndexFailure(f"journal at {self.path} has no entry {seq}")
            try:
                old_rec = json.loads(bytes(old))
            except ValueError:
                raise IndexCorrupt(f"journal at {self.path}: entry {seq} is not JSON; {_MOVED_HINT}") from None
            if old_rec.get("action_id") != record["action_id"]:
                raise IndexFailure(f"journal entry {seq} belongs to {old_rec.get('action_id')}, "
                                   f"not {record['action_id']}")
            txn.put(_seq_key(seq), data, db=self._entries)
            old_paths, new_paths = _paths_of(old_rec), _paths_of(record)
            for p in old_paths - new_paths:
                txn.delete(path_key(p), _seq_key(seq), db=self._by_path)
            for p in new_paths - old_paths:
                txn.put(path_key(p), _seq_key(seq), db=self._by_path)

        self._write("update", txn_fn)

    def get(self, seq: int) -> bytes | None:
        """The raw JSON bytes of record `seq` (the caller parses: see the journal)."""
        raw = self._read("get", lambda txn: txn.get(_seq_key(seq), db=self._entries))
        return bytes(raw) if raw is not None else None

    def seq_of(self, action_id: str) -> int | None:
        raw = self._read("seq_of", lambda txn: txn.get(action_id.encode(), db=self._by_action))
        return int.from_bytes(raw, "big") if raw is not None else None

    def seqs_for_path(self, path: str) -> list[int]:
        """Sequences of the records naming `path`, oldest first."""
        def txn_fn(txn) -> list[int]:
            cur = txn.cursor(db=self._by_path)
            if not cur.set_key(path_key(path)):
                return []
            return sorted(int.from_bytes(v, "big") for v in cur.iternext_dup())

        return self._read("seqs_for_path", txn_fn)

    def iter(self, from_seq: int = 0) -> Iterator[tuple[int, bytes]]:
        """(seq, raw JSON) from `from_seq` on, read in short transactions of a batch each."""
        nxt = from_seq
        while True:
            batch = self._read("iter", lambda txn: self._batch(txn, nxt))
            yield from batch
            if len(batch) < ITER_BATCH:
                return
            nxt = batch[-1][0] + 1

    def _batch(self, txn, start: int) -> list[tuple[int, bytes]]:
        cur, out = txn.cursor(db=self._entries), []
        if not cur.set_range(_seq_key(start)):
            return out
        for k, v in cur.iternext():
            out.append((int.from_bytes(k, "big"), bytes(v)))
            if len(out) == ITER_BATCH:
                break
        return out

    def last_seq(self) -> int:
        def txn_fn(txn) -> int:
            cur = txn.cursor(db=self._entries)
            return int.from_bytes(cur.key(), "big") if cur.last() else 0

        return self._read("last_seq", txn_fn)

    # -- lifecycle -------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"JournalStore({str(self.path)!r})"
