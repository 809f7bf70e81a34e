"""`LmdbIndex`: file records and the multi-index hashing tables in one LMDB environment.

One writer (enforced with a lock file; a second writer gets `IndexLocked`), any
number of readers (`readonly=True`, e.g. `dedupctl status` while dedupd runs).
Read transactions are short: iterators read in batches. The map grows by
doubling on `MapFullError`; the resize waits until no other thread of this
process is inside a transaction (`lmdb_env.Gate`), and readers in other processes
adopt the new size on their next transaction. Instances may be shared by threads
(one of them writing). Never use one across fork(): open the index again in the child.

Range searches use multi-index hashing through `getmulti` lookups, or a numba scan
of all codes held in RAM when `mih.plan` says that is cheaper. The writer keeps
that copy of the codes (24 bytes per code) in step with its own commits
(`cache_codes=True`); read-only instances keep one per snapshot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import lmdb
import numpy as np

from . import codec, codecache, lmdb_env, mih
from .base import U64_MAX, IndexMeta, as_code, as_codes, make_meta
from .errors import IndexFailure, IndexMissing, RecordNotFound
from .groups import check_groups, check_meta
from .lmdb_env import APP_PREFIX, mapped_errors
from .edges import Edge, check_edge
from .lmdb_tables import Writer, edges_of, lookup, put_edge, read_record, scan_codes
from .records import FileRecord

T = TypeVar("T")
DEFAULT_MAP_SIZE = 1 << 30
MAX_MAP_SIZE = 1 << 44
ITER_BATCH = 512
# Search costs in units of one LMDB key lookup (~0.7 us; see mih.plan), measured at 100k
# codes: reading a code from LMDB ~ one lookup; checking a code in RAM (numba) ~ 1/1000;
# the fixed work of probing one MIH table ~ 24 lookups.
LOAD_COST, CHECK_COST, PROBE_COST = 1.0, 1 / 1024, 24.0


class LmdbIndex(lmdb_env.EnvOwner):
    meta: IndexMeta
    # (load, check, probe) costs for mih.plan; the load cost counts only while the codes
    # are not in RAM. Benchmarks and tests may override per instance: (0, 0, 0) always
    # scans, (inf, inf, 0) always probes the MIH tables.
    scan_costs: tuple[float, float, float] = (LOAD_COST, CHECK_COST, PROBE_COST)

    def __init__(self, *args, **kwargs):
        raise TypeError("use LmdbIndex.open(path, ...)")

    @classmethod
    def open(cls, path: str | os.PathLike, *, code_bits: int, m: int | None = None, algo: str,
             algo_version: int, readonly: bool = False, map_size: int = DEFAULT_MAP_SIZE,
             cache_codes: bool = True) -> "LmdbIndex":
        """Open the index at directory `path`, creating it unless `readonly`.

        Raises `IndexMismatch` when it was built with other settings (m=None accepts
        the stored m), `IndexCorrupt` when `path` holds something else,
        `IndexLocked` when another process writes to it, `IndexMissing` (readonly).
        `cache_codes`: the writer keeps every code in RAM for scans (see module doc).
        """
        self = object.__new__(cls)
        self.path, self.readonly = Path(path), readonly
        self._pid, self._env, self._lock_fd = os.getpid(), None, None
        self._gate = lmdb_env.Gate()
        self._codes = codecache.CacheSlot(maintain=cache_codes and not readonly)
        want = make_meta(code_bits, m, algo, algo_version)  # validates the arguments
        try:
            with mapped_errors(self.path, "open"):
                self._open(want, m, map_size)
        except BaseException:
            self._release()
            raise
        return self

    def _open(self, want: IndexMeta, m: int | None, map_size: int) -> None:
        fresh = lmdb_env.prepare_dir(self.path, self.readonly)
        if not self.readonly:
            self._lock_fd = lmdb_env.lock_writer(self.path)
        self._env = lmdb_env.open_env(self.path, self.readonly, map_size)
        if lmdb_env.is_empty(self._env):
            if self.readonly:
                raise IndexMissing(f"the index at {self.path} is empty; run a scan first")
            fresh = True
        if fresh:
            self.meta, self._t = want, lmdb_env.create_index(self._env, want)
        else:
            check = {"algo": want.algo, "algo_version": want.algo_version,
                     "code_bits": want.code_bits, "m": m}
            self.meta, self._t = lmdb_env.load_index(self._env, self.path, check)
        self._layout = mih.Layout(self.meta.code_bits, self.meta.m)

    # -- transactions ----------------------------------------------------------
    def _live_env(self) -> lmdb.Environment:
        if self._env is None:
            raise IndexFailure(f"the index at {self.path} is closed")
        if os.getpid() != self._pid:
            raise IndexFailure(f"the index at {self.path} was opened before fork(); open it again in this process")
        return self._env

    def _read(self, op: str, fn: Callable[[Any], T]) -> T:
        env = self._live_env()
        with mapped_errors(self.path, op):
            for _ in range(3):
                with self._gate.transaction():
                    try:
                        txn = env.begin()
                    except lmdb.MapResizedError:  # another process grew the map: adopt its size
                        txn = None
                    if txn is not None:
                        with txn:
                            return fn(txn)
                with self._gate.resize():
                    env.set_mapsize(0)
            raise IndexFailure(f"index at {self.path} keeps growing under us; retry the {op}")

    def _write(self, op: str, fn: Callable[[Any, list], T]) -> T:
        """Run fn(txn, changes) in a write transaction, growing the map as needed.

        fn appends (file id, code or None) to `changes` for the code cache."""
        env = self._live_env()
        if self.readonly:
            raise IndexFailure(f"the index at {self.path} is open read-only; {op} needs a writable index")
        with mapped_errors(self.path, op):
            while True:
                try:
                    with self._gate.transaction():
                        changes: list = []
                        with env.begin(write=True) as txn:
                            write_id = txn.id()
                            result = fn(txn, changes)
                        self._codes.committed(write_id, env.info()["last_txnid"], changes)
                        return result
                except lmdb.MapFullError:
                    size = env.info()["map_size"]
                    if size >= MAX_MAP_SIZE:
                        raise IndexFailure(f"index at {self.path} reached {size} bytes; free disk space or reindex") from None
                    with self._gate.resize():
                        env.set_mapsize(size * 2)

    # -- records -------------------------------------------------------------
    def put(self, rec: FileRecord) -> FileRecord:
        return self.put_many([rec])[0]

    def put_many(self, recs: Iterable[FileRecord]) -> list[FileRecord]:
        recs = list(recs)

        def txn_fn(txn, changes):
            w = Writer(txn, self._t, self.meta, self._layout, changes)
            out = [w.put(r) for r in recs]
            w.finish()
            return out

        return self._write("put", txn_fn)

    def delete_many(self, file_ids: Iterable[int]) -> int:
        ids = [int(i) for i in file_ids]

        def txn_fn(txn, changes):
            w = Writer(txn, self._t, self.meta, self._layout, changes)
            return sum(w.delete(i) for i in ids)

        return self._write("delete", txn_fn)

    def get(self, file_id: int) -> FileRecord:
        rec = self._read("get", lambda txn: read_record(txn, self._t, int(file_id)))
        if rec is None:
            raise RecordNotFound(f"no record with file id {file_id} in the index at {self.path}")
        return rec

    def by_path(self, path: str) -> FileRecord | None:
        def txn_fn(txn):
            raw = txn.get(codec.path_key(path), db=self._t.paths)
            rec = None if raw is None else read_record(txn, self._t, codec.key_id(raw))
            return rec if rec is not None and rec.path == path else None

        return self._read("by_path", txn_fn)

    def by_inode(self, dev: int, ino: int) -> list[FileRecord]:
        if not (0 <= dev <= U64_MAX and 0 <= ino <= U64_MAX):
            return []
        return self._read("by_inode", lambda txn: self._dups(txn, self._t.inodes, codec.inode_key(dev, ino)))

    def by_content(self, content_hash: bytes) -> list[FileRecord]:
        if not content_hash:
            return []
        return self._read("by_content", lambda txn: self._dups(txn, self._t.content, bytes(content_hash)))

    def _dups(self, txn, db, key: bytes) -> list[FileRecord]:
        cur = txn.cursor(db=db)
        if not cur.set_key(key):
            return []
        recs = (read_record(txn, self._t, codec.key_id(v)) for v in cur.iternext_dup())
        return [r for r in recs if r is not None]

    def iter_records(self) -> Iterator[FileRecord]:
        start = b""
        while True:
            batch = self._read("iter_records", lambda txn: self._batch(txn, start))
            yield from batch
            if len(batch) < ITER_BATCH:
                return
            start = codec.id_key(batch[-1].file_id + 1)

    def _batch(self, txn, start: bytes) -> list[FileRecord]:
        cur, out = txn.cursor(db=self._t.files), []
        if cur.set_range(start):
            for key, raw in cur:
                out.append(codec.decode_record(raw, codec.key_id(key)))
                if len(out) == ITER_BATCH:
                    break
        return out

    def __len__(self) -> int:
        return self._read("len", lambda txn: txn.stat(self._t.files)["entries"])

    # -- search --------------------------------------------------------------
    def range_search(self, code: Any, radius: int) -> list[tuple[int, int]]:
        return self.range_search_many(as_code(code, self.meta.code_bits), radius)[0]

    def range_search_many(self, codes: np.ndarray, radius: int) -> list[list[tuple[int, int]]]:
        queries = as_codes(codes, self.meta.code_bits)

        def txn_fn(txn):
            n, tid = txn.stat(self._t.mih[0])["entries"], txn.id()
            load, check, probe = self.scan_costs
            return mih.search(self._layout, queries, int(radius), n,
                              lambda j, keys: lookup(txn, self._t, self._layout, j, keys),
                              lambda q, r: self._codes.search(tid, self._loader(txn), q, r),
                              (0.0 if self._codes.warm(tid) else load, check, probe))

        return self._read("range_search", txn_fn)

    def all_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, codes) of every searchable record, sorted by id."""
        return self._read("all_codes", lambda txn: self._codes.arrays(txn.id(), self._loader(txn)))

    def _loader(self, txn) -> codecache.Loader:
        return lambda: scan_codes(txn, self._t, self._layout)

    # -- near-duplicate edges ----------------------------------------------------
    def add_edges(self, edges: Iterable[Edge]) -> int:
        """Store edges (both directions, one transaction); returns how many were stored.
        Edges to ids that are not searchable records are skipped."""
        edges = [check_edge(e) for e in edges]
        if not edges:
            return 0
        return self._write("add_edges", lambda txn, _: sum(put_edge(txn, self._t, e) for e in edges))

    def edges_of(self, file_id: int) -> list[Edge]:
        return self._read("edges_of", lambda txn: edges_of(txn, self._t, int(file_id)))

    def iter_edges(self) -> Iterator[Edge]:
        """Every edge once, as Edge(a, b, ...) with a < b, in (a, b) order."""
        start = b""
        while True:
            batch, start = self._read("iter_edges", lambda txn: self._edge_batch(txn, start))
            yield from batch
            if start is None:
                return

    def _edge_batch(self, txn, start: bytes) -> tuple[list[Edge], bytes | None]:
        cur, out, last = txn.cursor(db=self._t.edges), [], None
        if not cur.set_range(start):
            return out, None
        for key, value in cur:
            a = codec.key_id(key)
            if last is not None and a != last and len(out) >= ITER_BATCH:
                return out, key  # stop at a key boundary so no id is split across batches
            last = a
            e = Edge(a, *codec.parse_edge_value(value))
            if e.a < e.b:
                out.append(e)
        return out, None

    # -- metadata and groups -----------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        if not isinstance(key, str) or not key or len(key.encode("utf-8", "surrogatepass")) > 400:
            return default
        raw_key = APP_PREFIX + key.encode("utf-8", "surrogatepass")
        raw = self._read("get_meta", lambda txn: txn.get(raw_key, db=self._t.meta))
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError:
            raise lmdb_env.IndexCorrupt(f"index at {self.path}: metadata {key!r} is unreadable") from None

    def set_meta(self, key: str, value: Any) -> None:
        raw_key, text = check_meta(key, value)
        self._write("set_meta", lambda txn, _: txn.put(APP_PREFIX + raw_key, text.encode(), db=self._t.meta))

    def replace_groups(self, groups: list[dict]) -> None:
        rows = [(key, text.encode()) for key, text in check_groups(groups)]

        def txn_fn(txn, _):
            txn.drop(self._t.groups, delete=False)
            for key, value in rows:
                txn.put(key, value, db=self._t.groups)

        self._write("replace_groups", txn_fn)

    def iter_groups(self) -> Iterator[dict]:
        rows = self._read("iter_groups", lambda txn: list(txn.cursor(db=self._t.groups).iternext(values=True)))
        for _, value in rows:
            try:
                yield json.loads(value)
            except ValueError:
                raise lmdb_env.IndexCorrupt(f"index at {self.path}: a stored group is unreadable") from None

    def stats(self) -> dict:
        """Record count, entries per table, and bytes: `file_bytes` (data.mdb size),
        `used_bytes` (pages holding live data), `high_water_bytes` (pages ever used,
        including free pages LMDB will reuse), `map_size`."""
        def txn_fn(txn):
            names = ["files", "paths", "inodes", "content", "groups", "meta", "edges"]
            names += [f"mih{j}" for j in range(self.meta.m)]
            st = {name: txn.stat(self._t.by_name(name)) for name in names}
            st["main"] = txn.stat()
            pages = 2 + sum(s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"] for s in st.values())
            # env-level calls stay inside the transaction, so that no map resize runs meanwhile
            counts = {name: s["entries"] for name, s in st.items() if name != "main"}
            return counts, pages * st["main"]["psize"], (self._env.info(), st["main"]["psize"])

        entries, used, (info, psize) = self._read("stats", txn_fn)
        with mapped_errors(self.path, "stats"):
            file_bytes = os.stat(self.path / "data.mdb").st_size
        return {"files": entries["files"], "path": str(self.path), "file_bytes": file_bytes,
                "used_bytes": used, "high_water_bytes": (info["last_pgno"] + 1) * psize,
                "map_size": info["map_size"], "entries": entries}

    # -- lifecycle -------------------------------------------------------------
    def _release(self) -> None:
        super()._release()
        self._codes.clear()

    def __repr__(self) -> str:
        return f"LmdbIndex({str(self.path)!r}, {self.meta}{', readonly' if self.readonly else ''})"
