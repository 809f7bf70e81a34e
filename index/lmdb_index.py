"""`LmdbIndex`: file records and the multi-index hashing tables in one LMDB environment.

One writer (enforced with a lock file; a second writer gets `IndexLocked`), any
number of readers (`readonly=True`, e.g. `dedupctl status` while dedupd runs).
Read transactions are short: iterators read in batches. The map grows by
doubling on `MapFullError`; the resize waits until no other thread of this
process is inside a transaction (`lmdb_env.Gate`), and readers in other processes
adopt the new size on their next transaction. Instances may be shared by threads
(one of them writing). Never use one across fork(): open the index again in the child.

Codes are stored once, in blocks of rows (`codeblocks`, 24 bytes per code). Range
searches run on a copy of them in RAM (`codetable.CodeTable`: 25 bytes per code, plus
the multi-index hashing tables when a search wants them, 12 bytes per code and table):
a fused scan or an MIH probe, whichever `mih`'s cost model says is cheaper. The writer
keeps that copy in step with its own commits (`cache_codes=True`); read-only
instances load one per snapshot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import lmdb
import numpy as np

from . import codeblocks, codec, codecache, lmdb_env, migrate
from .boxes import BOX_ALIAS, WINDOW_ALIAS, query_mask
from .base import SCHEMA_VERSION, U64_MAX, IndexMeta, as_code, as_codes, check_radii, make_meta
from .errors import IndexFailure, IndexMismatch, IndexMissing, RecordNotFound
from .groups import check_groups, check_meta
from .lmdb_env import APP_PREFIX, mapped_errors
from .edges import Edge, check_edge
from .lmdb_tables import (Writer, decode_rows, edges_of, path_keys, paths_under, put_edge, read_record,
                          records_by_content, records_by_id, records_by_inode, records_by_path)
from .records import FileRecord

T = TypeVar("T")
DEFAULT_MAP_SIZE = 1 << 30
MAX_MAP_SIZE = 1 << 44
ITER_BATCH = 512
PATH_BATCH = 4096  # paths (`by_paths`) or ids (`get_many`) looked up per read transaction
SCAN_BATCH = 65_536  # records read per read transaction by `paths_under` (only their paths)
# `stats()["entries"]` names the tables as `MemoryIndex` does (what they hold), `table_bytes` as LMDB does
_ENTRY_NAMES = {"records": "files", "by_inode": "inodes", "by_content": "content"}


class LmdbIndex(lmdb_env.EnvOwner):
    meta: IndexMeta
    # "auto" lets the cost model choose; tests and benchmarks may force "scan" or "mih".
    search_mode: str = "auto"

    def __init__(self, *args, **kwargs):
        raise TypeError("use LmdbIndex.open(path, ...)")

    @classmethod
    def open(cls, path: str | os.PathLike, *, code_bits: int, m: int | None = None, algo: str,
             algo_version: int, readonly: bool = False, map_size: int = DEFAULT_MAP_SIZE,
             cache_codes: bool = True, on_upgrade: Callable[[int], None] | None = None) -> "LmdbIndex":
        """Open the index at directory `path`, creating it unless `readonly`.

        Raises `IndexMismatch` when it was built with other settings (m=None accepts
        the stored m), `IndexCorrupt` when `path` holds something else,
        `IndexLocked` when another process writes to it, `IndexMissing` (readonly).
        `cache_codes`: the writer keeps its in-RAM code table across commits (see module doc).
        `on_upgrade(records done)`: called as an older index is upgraded in place (`migrate`).
        """
        self = object.__new__(cls)
        self.path, self.readonly = Path(path), readonly
        self._pid, self._env, self._lock_fd = os.getpid(), None, None
        self._gate = lmdb_env.Gate()
        want = make_meta(code_bits, m, algo, algo_version)  # validates the arguments
        self._codes = codecache.CacheSlot(maintain=cache_codes and not readonly)
        try:
            with mapped_errors(self.path, "open"):
                self._open(want, m, map_size, on_upgrade)
        except BaseException:
            self._release()
            raise
        self._codes.m = self.meta.m
        return self

    def _open(self, want: IndexMeta, m: int | None, map_size: int, on_upgrade: Callable[[int], None] | None) -> None:
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
            self.meta, schema = lmdb_env.load_index(self._env, self.path, check)
            if schema != SCHEMA_VERSION:
                if self.readonly:
                    raise IndexMismatch(
                        f"the index at {self.path} has schema version {schema} and is upgraded to {SCHEMA_VERSION} "
                        f"in place (no reindex) the next time dedupd or `dedupctl scan` opens it; start one of "
                        f"them, then retry")
                migrate.upgrade(self._env, self.path, on_upgrade)
            self._t = lmdb_env.open_tables(self._env)

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

        fn appends (file id, code or None) to `changes`: written to the code blocks before
        the commit, replayed by the in-RAM code table after it."""
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
                            codeblocks.apply(txn, self._t.codes, changes)
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
            w = Writer(txn, self._t, self.meta, changes)
            out = [w.put(r) for r in recs]
            w.finish()
            return out

        return self._write("put", txn_fn)

    def delete_many(self, file_ids: Iterable[int]) -> int:
        ids = [int(i) for i in file_ids]

        def txn_fn(txn, changes):
            w = Writer(txn, self._t, self.meta, changes)
            return sum(w.delete(i) for i in ids)

        return self._write("delete", txn_fn)

    def get(self, file_id: int) -> FileRecord:
        rec = self._read("get", lambda txn: read_record(txn, self._t, int(file_id)))
        if rec is None:
            raise RecordNotFound(f"no record with file id {file_id} in the index at {self.path}")
        return rec

    def get_many(self, file_ids: Iterable[int]) -> dict[int, FileRecord]:
        """{id: record} for those of `file_ids` that are records (see `Index`): `PATH_BATCH`
        ids per read transaction, one `getmulti` in id order."""
        self._live_env()
        ids = sorted({int(i) for i in file_ids if 0 <= int(i) <= U64_MAX})
        out: dict[int, FileRecord] = {}
        for i in range(0, len(ids), PATH_BATCH):
            chunk = ids[i:i + PATH_BATCH]
            out.update(self._read("get_many", lambda txn: records_by_id(txn, self._t, chunk)))
        return out

    def by_path(self, path: str) -> FileRecord | None:
        def txn_fn(txn):
            raw = txn.get(codec.path_key(path), db=self._t.paths)
            rec = None if raw is None else read_record(txn, self._t, codec.key_id(raw))
            return rec if rec is not None and rec.path == path else None

        return self._read("by_path", txn_fn)

    def by_paths(self, paths: Iterable[str]) -> dict[str, FileRecord]:
        """{path: record} for those of `paths` that are indexed (see `Index`): the lookups of
        `PATH_BATCH` paths share one read transaction and two `getmulti` calls."""
        self._live_env()  # a closed index refuses even an empty batch, as `MemoryIndex` does
        keyed, out = path_keys(paths), {}
        for i in range(0, len(keyed), PATH_BATCH):
            chunk = keyed[i:i + PATH_BATCH]
            out.update(self._read("by_paths", lambda txn: records_by_path(txn, self._t, chunk)))
        return out

    def paths_under(self, prefixes: Iterable[str]) -> dict[int, str]:
        """{file id: path} of the records whose path starts with one of `prefixes` (see
        `Index`): a pass over every record that reads only its path, `SCAN_BATCH` records
        per read transaction."""
        self._live_env()
        prefixes = tuple(prefixes)
        raw = tuple(os.fsencode(p) for p in prefixes)  # a str prefix's bytes prefix its path's bytes
        out: dict[int, str] = {}
        start: bytes | None = b""
        while raw and start is not None:
            found, start = self._read("paths_under", lambda txn: paths_under(txn, self._t, start, raw, SCAN_BATCH))
            for fid, path_bytes in found.items():
                path = os.fsdecode(path_bytes)
                if path.startswith(prefixes):  # not always the converse: a prefix may end inside a character
                    out[fid] = path
        return out

    def by_inode(self, dev: int, ino: int) -> list[FileRecord]:
        if not (0 <= dev <= U64_MAX and 0 <= ino <= U64_MAX):
            return []
        dev, ino = int(dev), int(ino)
        return self._read("by_inode", lambda txn: records_by_inode(txn, self._t, dev, ino))

    def by_content(self, content_hash: bytes) -> list[FileRecord]:
        if not content_hash:
            return []
        want = bytes(content_hash)
        return self._read("by_content", lambda txn: records_by_content(txn, self._t, want))

    def iter_records(self) -> Iterator[FileRecord]:
        start = b""
        while True:
            batch = self._read("iter_records", lambda txn: self._batch(txn, start))
            yield from batch
            if len(batch) < ITER_BATCH:
                return
            start = codec.id_key(batch[-1].file_id + 1)

    def _batch(self, txn, start: bytes) -> list[FileRecord]:
        cur, rows = txn.cursor(db=self._t.records), []
        if cur.set_range(start):
            for key, raw in cur:
                rows.append((codec.key_id(key), raw))
                if len(rows) == ITER_BATCH:
                    break
        return decode_rows(txn, self._t, rows)

    def __len__(self) -> int:
        return self._read("len", lambda txn: txn.stat(self._t.records)["entries"])

    # -- search --------------------------------------------------------------
    def range_search(self, code: Any, radius: int) -> list[tuple[int, int]]:
        return self.range_search_many(as_code(code, self.meta.code_bits), radius)[0]

    def range_search_many(self, codes: np.ndarray, radius: "int | Sequence[int]", *,
                          boxes: "bool | Sequence[bool]" = False) -> list[list[tuple[int, int]]]:
        """Per code, its (id, distance) hits within `radius`: one int for every code, or one
        radius per code (the upright code at the report radius, its variants at the rotated one).
        With `boxes` (True, or one bool per code: which codes), the records' box codes are
        searched too: a hit on one carries the alias id `boxes.BOX_ALIAS | file id` (sorted by
        (distance, id) with the others)."""
        queries = as_codes(codes, self.meta.code_bits)
        radius = check_radii(radius, len(queries))
        boxes = query_mask(boxes, len(queries))
        if len(queries) == 0:
            return []
        return self._read("range_search", lambda txn: self._codes.search(
            txn.id(), self._loader(txn), queries, radius, self.search_mode, boxes))

    def all_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, codes) of every searchable record, sorted by id."""
        return self._read("all_codes", lambda txn: self._codes.arrays(txn.id(), self._loader(txn)))

    def all_box_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(alias ids, box codes) of every searchable record that has a box code, sorted by id
        (`boxes.owners` gives the file ids)."""
        return self._read("all_box_codes", lambda txn: self._codes.arrays(txn.id(), self._loader(txn), "box"))

    def all_crop_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(alias ids, window codes) of every searchable record's crop codes, sorted by id."""
        return self._read("all_crop_codes", lambda txn: self._codes.arrays(txn.id(), self._loader(txn), "window"))

    def _loader(self, txn) -> codecache.Loader:
        return lambda: codeblocks.load(txn, self._t.codes)

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

    def replace_groups(self, groups: Iterable[dict]) -> None:
        """Only the groups that changed are written: a store after a regroup that moved a few
        groups dirties a few pages, not the whole table (every page a write transaction
        dirties stays allocated in LMDB's page cache for the life of the environment: a
        full rewrite of 50,000 groups kept ~13 MB of the daemon's heap)."""
        rows = dict(check_groups(groups))

        def txn_fn(txn, _):  # may run again (a full map is grown, then retried): reads `rows` only
            gone, same = [], set()
            with txn.cursor(db=self._t.groups) as cur:
                for key, value in cur.iternext(keys=True, values=True):
                    if rows.get(key) == value:
                        same.add(key)  # stored as it is: not rewritten
                    elif key not in rows:
                        gone.append(key)
            for key in gone:
                txn.delete(key, db=self._t.groups)
            for key in sorted(rows.keys() - same):
                txn.put(key, rows[key], db=self._t.groups)

        self._write("replace_groups", txn_fn)

    def iter_groups(self) -> Iterator[dict]:
        rows = self._read("iter_groups", lambda txn: list(txn.cursor(db=self._t.groups).iternext(values=True)))
        for _, value in rows:
            try:
                yield json.loads(value)
            except ValueError:
                raise lmdb_env.IndexCorrupt(f"index at {self.path}: a stored group is unreadable") from None

    def stats(self) -> dict:
        """Record count, entries per table (`codes`: searchable codes, `box_codes`: their box codes,
        `crop_codes`: their window codes; named as `MemoryIndex` names
        them: files, paths, inodes, content, ...), and bytes:
        `file_bytes` (data.mdb size), `used_bytes` (pages holding live data), `table_bytes`
        (pages per LMDB table: records, paths, by_inode, by_content, codes, ...),
        `high_water_bytes` (pages ever used, including free pages LMDB will reuse), `map_size`, `ram_bytes` (the in-RAM code table and
        MIH tables, 0 until a search or `all_codes` loads them)."""
        def txn_fn(txn):
            st = {name: txn.stat(self._t.by_name(name)) for name in lmdb_env.Tables.NAMES}
            st["main"] = txn.stat()
            psize = st["main"]["psize"]
            tables = {name: psize * (s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]) for name, s in st.items()}
            counts = {_ENTRY_NAMES.get(name, name): s["entries"] for name, s in st.items() if name != "main"}
            counts["codes"], counts["box_codes"], counts["crop_codes"] = codeblocks.count_between(
                txn, self._t.codes, [BOX_ALIAS, WINDOW_ALIAS])
            # env-level calls stay inside the transaction, so that no map resize runs meanwhile
            return counts, tables, (self._env.info(), psize)

        entries, tables, (info, psize) = self._read("stats", txn_fn)
        with mapped_errors(self.path, "stats"):
            file_bytes = os.stat(self.path / "data.mdb").st_size
        return {"files": entries["files"], "path": str(self.path), "file_bytes": file_bytes,
                "used_bytes": 2 * psize + sum(tables.values()), "table_bytes": tables,
                "high_water_bytes": (info["last_pgno"] + 1) * psize, "map_size": info["map_size"],
                "ram_bytes": self._codes.nbytes(), "entries": entries}

    # -- lifecycle -------------------------------------------------------------
    def _release(self) -> None:
        super()._release()
        self._codes.clear()

    def __repr__(self) -> str:
        return f"LmdbIndex({str(self.path)!r}, {self.meta}{', readonly' if self.readonly else ''})"
