"""`MemoryIndex`: the in-memory twin of `LmdbIndex`, with the same behaviour.

Plain dicts for the tables; range searches run on the same in-RAM
`CodeTable` as the LMDB store's, fed with each batch's code changes once the
batch has succeeded. Meant for unit tests of the daemon and as the second
implementation the conformance suite checks.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .base import IndexMeta, as_code, as_codes, check_radii, check_record, is_searchable, make_meta
from .codec import encode_record
from . import boxes as box_rows
from .codecache import BoxedTables
from .errors import IndexFailure, PathConflict, RecordNotFound
from .edges import Edge, check_edge
from .groups import check_groups, check_meta
from .records import FileRecord


class MemoryIndex:
    # "auto" lets the cost model choose; tests may force "scan" or "mih" (see LmdbIndex).
    search_mode: str = "auto"

    def __init__(self, code_bits: int = 128, m: int | None = None, algo: str = "lbph", algo_version: int = 1):
        self.meta: IndexMeta = make_meta(code_bits, m, algo, algo_version)
        self._codes = BoxedTables.empty(self.meta.m)  # the records' codes and their box codes (alias rows)
        self._pending: list = []  # (file id, code or None) of the batch in progress
        self._files: dict[int, FileRecord] = {}
        self._paths: dict[str, int] = {}
        self._inodes: dict[tuple[int, int], set[int]] = defaultdict(set)
        self._content: dict[bytes, set[int]] = defaultdict(set)
        self._app_meta: dict[str, str] = {}
        self._groups: dict[bytes, bytes] = {}
        self._edges: dict[int, dict[int, Edge]] = defaultdict(dict)  # a -> b -> Edge(a, b, ...)
        self._next_id = 1
        self._searchable = 0
        self._boxed = 0  # records with a box row
        self._windows = 0  # window rows (crop codes of searchable records)
        self._closed = False

    # -- records -------------------------------------------------------------
    def put(self, rec: FileRecord) -> FileRecord:
        return self.put_many([rec])[0]

    def put_many(self, recs: Iterable[FileRecord]) -> list[FileRecord]:
        self._check_open()
        recs = list(recs)
        for rec in recs:  # validate all first: a failing batch changes nothing
            check_record(rec, self.meta)
            encode_record(rec)
        snapshot = self._snapshot()
        try:
            out = [self._put_one(rec) for rec in recs]
        except BaseException:
            self._restore(snapshot)
            self._pending = []
            raise
        self._commit_codes()
        return out

    def _commit_codes(self) -> None:
        pending, self._pending = self._pending, []
        self._codes.apply(pending)

    def _put_one(self, rec: FileRecord) -> FileRecord:
        if rec.file_id == 0:
            rec = rec.with_(file_id=self._next_id)
            self._next_id += 1
        elif rec.file_id not in self._files:
            raise RecordNotFound(f"no record with file id {rec.file_id} to replace")
        holder = self._paths.get(rec.path)
        if holder is not None and holder != rec.file_id:
            raise PathConflict(f"path {rec.path!r} belongs to record {holder}; update that record instead")
        if rec.file_id in self._files:
            old = self._files[rec.file_id]
            if (old.code != rec.code or old.box_code != rec.box_code or old.crop_codes != rec.crop_codes
                    or not is_searchable(rec)):
                self._drop_edges(rec.file_id)  # edges hold only for the codes they were found with
            self._unlink(old)
        self._link(rec)
        return rec

    def _link(self, rec: FileRecord) -> None:
        fid = rec.file_id
        self._files[fid] = rec
        self._paths[rec.path] = fid
        self._inodes[(rec.dev, rec.ino)].add(fid)
        if rec.content_hash:
            self._content[rec.content_hash].add(fid)
        if is_searchable(rec):
            self._searchable += 1
            self._pending.append((fid, (int(rec.code[0]), int(rec.code[1]))))
            self._count_aliases(rec, 1)
            self._pending.extend(box_rows.row_changes(None, rec))

    def _unlink(self, rec: FileRecord) -> None:
        fid = rec.file_id
        del self._files[fid]
        del self._paths[rec.path]
        _discard(self._inodes, (rec.dev, rec.ino), fid)
        if rec.content_hash:
            _discard(self._content, rec.content_hash, fid)
        if is_searchable(rec):
            self._searchable -= 1
            self._pending.append((fid, None))
            self._count_aliases(rec, -1)
            self._pending.extend(box_rows.row_changes(rec, None))

    def _count_aliases(self, rec: FileRecord, sign: int) -> None:
        self._boxed += sign * (rec.box_code is not None)
        self._windows += sign * len(rec.crop_codes)

    def _snapshot(self) -> tuple:
        return (dict(self._files), self._next_id, {a: dict(bs) for a, bs in self._edges.items()})

    def _restore(self, snapshot: tuple) -> None:
        files, self._next_id, edges = snapshot
        self._edges = defaultdict(dict, edges)
        for rec in list(self._files.values()):
            self._unlink(rec)
        for rec in files.values():
            self._link(rec)

    def delete_many(self, file_ids: Iterable[int]) -> int:
        self._check_open()
        removed = 0
        for fid in file_ids:
            rec = self._files.get(int(fid))  # noqa: any int; unknown ids are skipped
            if rec is not None:
                self._unlink(rec)
                self._drop_edges(rec.file_id)
                removed += 1
        self._commit_codes()
        return removed

    def get(self, file_id: int) -> FileRecord:
        self._check_open()
        try:
            return self._files[int(file_id)]
        except KeyError:
            raise RecordNotFound(f"no record with file id {file_id}") from None

    def get_many(self, file_ids: Iterable[int]) -> dict[int, FileRecord]:
        self._check_open()
        return {i: self._files[i] for i in sorted({int(i) for i in file_ids}) if i in self._files}

    def by_path(self, path: str) -> FileRecord | None:
        self._check_open()
        fid = self._paths.get(path)
        return None if fid is None else self._files[fid]

    def by_paths(self, paths: Iterable[str]) -> dict[str, FileRecord]:
        self._check_open()
        out = {}
        for path in paths:
            fid = self._paths.get(path)
            if fid is not None:
                out[path] = self._files[fid]
        return out

    def paths_under(self, prefixes: Iterable[str]) -> dict[int, str]:
        self._check_open()
        wanted = tuple(prefixes)
        return {fid: rec.path for fid, rec in sorted(self._files.items()) if wanted and rec.path.startswith(wanted)}

    def by_inode(self, dev: int, ino: int) -> list[FileRecord]:
        self._check_open()
        return [self._files[i] for i in sorted(self._inodes.get((dev, ino), ()))]

    def by_content(self, content_hash: bytes) -> list[FileRecord]:
        self._check_open()
        if not content_hash:
            return []
        return [self._files[i] for i in sorted(self._content.get(bytes(content_hash), ()))]

    def iter_records(self) -> Iterator[FileRecord]:
        self._check_open()
        for fid in sorted(self._files):
            rec = self._files.get(fid)
            if rec is not None:
                yield rec

    def __len__(self) -> int:
        return len(self._files)

    # -- search --------------------------------------------------------------
    def range_search(self, code: Any, radius: int) -> list[tuple[int, int]]:
        return self.range_search_many(as_code(code, self.meta.code_bits), radius)[0]

    def range_search_many(self, codes: np.ndarray, radius: "int | Sequence[int]", *,
                          boxes: "bool | Sequence[bool]" = False) -> list[list[tuple[int, int]]]:
        """Per code, its (id, distance) hits within `radius`: one int for every code, or one
        radius per code (the upright code at the report radius, its variants at the rotated one).
        With `boxes` (True, or one bool per code), box codes too, under alias ids
        (`LmdbIndex.range_search_many`)."""
        self._check_open()
        queries = as_codes(codes, self.meta.code_bits)
        radius = check_radii(radius, len(queries))
        boxes = box_rows.query_mask(boxes, len(queries))
        if len(queries) == 0:
            return []
        return self._codes.search(queries, radius, self.search_mode, with_boxes=boxes)

    def _codes_of(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        codes = np.array([self._files[i].code for i in ids], dtype=np.uint64).reshape(-1, 2)
        return np.array(ids, dtype=np.int64), codes

    def all_codes(self) -> tuple[np.ndarray, np.ndarray]:
        self._check_open()
        return self._codes_of(sorted(i for i, r in self._files.items() if is_searchable(r)))

    def all_box_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(alias ids, box codes) of the searchable records with a box code, sorted by id."""
        self._check_open()
        ids = sorted(i for i, r in self._files.items() if box_rows.box_of(r) is not None)
        codes = np.array([self._files[i].box_code for i in ids], dtype=np.uint64).reshape(-1, 2)
        return np.array([box_rows.alias(i) for i in ids], dtype=np.int64), codes

    def all_crop_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(alias ids, window codes) of the searchable records' crop codes, sorted by id."""
        self._check_open()
        rows = sorted((i, c) for r in self._files.values() for i, c in box_rows.alias_rows(r).items()
                      if box_rows.is_window(i))
        return (np.array([i for i, _ in rows], dtype=np.int64),
                np.array([c for _, c in rows], dtype=np.uint64).reshape(-1, 2))

    # -- near-duplicate edges ----------------------------------------------------
    def add_edges(self, edges: Iterable[Edge]) -> int:
        self._check_open()
        stored = 0
        for edge in [check_edge(e) for e in edges]:
            ends = [self._files.get(i) for i in (edge.a, edge.b)]
            if edge.a == edge.b or not all(r is not None and is_searchable(r) for r in ends):
                continue
            for e in (edge, edge.reversed()):
                self._edges[e.a][e.b] = e
            stored += 1
        return stored

    def edges_of(self, file_id: int) -> list[Edge]:
        self._check_open()
        return [e for _, e in sorted(self._edges.get(int(file_id), {}).items())]

    def iter_edges(self) -> Iterator[Edge]:
        self._check_open()
        for a in sorted(self._edges):
            for b, e in sorted(self._edges[a].items()):
                if a < b:
                    yield e

    def _drop_edges(self, file_id: int) -> None:
        for b in self._edges.pop(file_id, {}):
            self._edges[b].pop(file_id, None)
            if not self._edges[b]:
                del self._edges[b]

    # -- metadata and groups ---------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        self._check_open()
        raw = self._app_meta.get(key) if isinstance(key, str) else None
        return default if raw is None else json.loads(raw)

    def set_meta(self, key: str, value: Any) -> None:
        self._check_open()
        raw_key, text = check_meta(key, value)
        self._app_meta[key] = text

    def replace_groups(self, groups: Iterable[dict]) -> None:
        self._check_open()
        self._groups = dict(check_groups(groups))  # id bytes -> JSON, sorted like LMDB keys

    def iter_groups(self) -> Iterator[dict]:
        self._check_open()
        for text in list(self._groups.values()):
            yield json.loads(text)

    def stats(self) -> dict:
        self._check_open()
        entries = {"files": len(self._files), "paths": len(self._paths),
                   "inodes": sum(map(len, self._inodes.values())),
                   "content": sum(map(len, self._content.values())), "groups": len(self._groups),
                   "edges": sum(map(len, self._edges.values())),
                   "meta": len(self._app_meta), "codes": self._searchable, "box_codes": self._boxed,
                   "crop_codes": self._windows}
        return {"files": len(self._files), "path": None, "file_bytes": 0, "used_bytes": 0, "table_bytes": {},
                "high_water_bytes": 0, "map_size": 0, "ram_bytes": self._codes.nbytes, "entries": entries}

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "MemoryIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise IndexFailure("the index is closed")

    def __repr__(self) -> str:
        return f"MemoryIndex({self.meta}, {len(self)} records)"


def _discard(table: dict, key: Any, fid: int) -> None:
    ids = table.get(key)
    if ids is not None:
        ids.discard(fid)
        if not ids:
            del table[key]
