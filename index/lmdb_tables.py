"""Reading and writing records across the LMDB tables inside one transaction.

Every table entry a record implies is listed by `entries`; a replace deletes the
old entries the new record no longer implies and adds the new ones, so every
table stays consistent with `files`.
"""

from __future__ import annotations

import numpy as np

from . import codec
from .base import U64_MAX, IndexMeta, check_record, is_searchable
from .errors import IndexFailure, PathConflict, RecordNotFound
from .lmdb_env import Tables
from .mih import Layout
from .edges import Edge
from .records import FileRecord

NEXT_ID = b"next_id"
PATHS, INODES, CONTENT, MIH0 = 0, 1, 2, 3  # positions in `handles(tables)`
Entry = tuple[int, bytes, bytes]  # (table position, key, value)


def handles(tables: Tables) -> list:
    return [tables.paths, tables.inodes, tables.content, *tables.mih]


def entries(rec: FileRecord, layout: Layout) -> set[Entry]:
    """Every (table, key, value) the record implies, apart from its `files` row."""
    fid = codec.id_key(rec.file_id)
    out = {(PATHS, codec.path_key(rec.path), fid), (INODES, codec.inode_key(rec.dev, rec.ino), fid)}
    if rec.content_hash:
        out.add((CONTENT, bytes(rec.content_hash), fid))
    if is_searchable(rec):
        w0, w1 = rec.code
        value = codec.mih_value(rec.file_id, rec.code)
        out.update((MIH0 + j, key, value) for j, key in enumerate(layout.code_keys(w0, w1)))
    return out


def read_record(txn, tables: Tables, file_id: int) -> FileRecord | None:
    if not 0 <= file_id <= U64_MAX:
        return None
    raw = txn.get(codec.id_key(file_id), db=tables.files)
    return None if raw is None else codec.decode_record(raw, file_id)


class Writer:
    """Record writes within one write transaction (ids come from the `meta` counter)."""

    def __init__(self, txn, tables: Tables, meta: IndexMeta, layout: Layout, changes: list):
        self.txn, self.t, self.meta, self.layout = txn, tables, meta, layout
        self.changes = changes  # (file id, code or None), for the code cache
        self.dbs = handles(tables)
        raw = txn.get(NEXT_ID, db=tables.meta)
        self.next_id = 1 if raw is None else codec.key_id(raw)

    def finish(self) -> None:
        self.txn.put(NEXT_ID, codec.id_key(self.next_id), db=self.t.meta)

    def put(self, rec: FileRecord) -> FileRecord:
        check_record(rec, self.meta)
        old = None
        if rec.file_id == 0:
            rec = with_id(rec, self.next_id)
            self.next_id += 1
        else:
            old = read_record(self.txn, self.t, rec.file_id)
            if old is None:
                raise RecordNotFound(f"no record with file id {rec.file_id} to replace")
        self._check_path(rec)
        txn, dbs = self.txn, self.dbs
        new_entries = entries(rec, self.layout)
        if old is not None and (old.code != rec.code or not is_searchable(rec)):
            drop_edges(txn, self.t, rec.file_id)  # edges hold only for the code they were found with
        if old is not None:
            old_entries = entries(old, self.layout)
            for t, key, value in old_entries - new_entries:
                txn.delete(key, value, db=dbs[t])
            new_entries -= old_entries
        txn.put(codec.id_key(rec.file_id), codec.encode_record(rec), db=self.t.files)
        for t, key, value in new_entries:
            txn.put(key, value, db=dbs[t])
        if is_searchable(rec) or (old is not None and is_searchable(old)):
            self.changes.append((rec.file_id, rec.code if is_searchable(rec) else None))
        return rec

    def _check_path(self, rec: FileRecord) -> None:
        holder = self.txn.get(codec.path_key(rec.path), db=self.t.paths)
        if holder is None or codec.key_id(holder) == rec.file_id:
            return
        other = read_record(self.txn, self.t, codec.key_id(holder))
        if other is not None and other.path == rec.path:
            raise PathConflict(f"path {rec.path!r} belongs to record {other.file_id}; update that record instead")
        raise IndexFailure(f"path {rec.path!r} collides with the path hash of record {codec.key_id(holder)}")

    def delete(self, file_id: int) -> bool:
        old = read_record(self.txn, self.t, file_id)
        if old is None:
            return False
        for t, key, value in entries(old, self.layout):
            self.txn.delete(key, value, db=self.dbs[t])
        drop_edges(self.txn, self.t, file_id)
        self.txn.delete(codec.id_key(file_id), db=self.t.files)
        if is_searchable(old):
            self.changes.append((file_id, None))
        return True


def edges_of(txn, tables: Tables, file_id: int) -> list[Edge]:
    """The edges of `file_id`, each seen from it (edge.a == file_id), sorted by the other id."""
    cur = txn.cursor(db=tables.edges)
    if not cur.set_key(codec.id_key(file_id)):
        return []
    return [Edge(file_id, *codec.parse_edge_value(v)) for v in cur.iternext_dup()]


def drop_edges(txn, tables: Tables, file_id: int) -> None:
    """Remove every edge of `file_id`, from both sides."""
    for e in edges_of(txn, tables, file_id):
        back = e.reversed()
        txn.delete(codec.id_key(back.a), codec.edge_value(back.b, back.distance, back.variant, back.verified),
                   db=tables.edges)
    txn.delete(codec.id_key(file_id), db=tables.edges)


def put_edge(txn, tables: Tables, edge: Edge) -> bool:
    """Store `edge` from both sides, replacing an older edge of the same pair.
    Edges whose ends are not (searchable) records are refused (returns False)."""
    ends = [read_record(txn, tables, i) for i in (edge.a, edge.b)]
    if edge.a == edge.b or not all(r is not None and is_searchable(r) for r in ends):
        return False
    for e in (edge, edge.reversed()):
        key, cur = codec.id_key(e.a), txn.cursor(db=tables.edges)
        if cur.set_range_dup(key, codec.id_key(e.b)) and cur.value()[:8] == codec.id_key(e.b):
            cur.delete()
        txn.put(key, codec.edge_value(e.b, e.distance, e.variant, e.verified), db=tables.edges)
    return True


def with_id(rec: FileRecord, file_id: int) -> FileRecord:
    """`rec` with another file id (same as rec.with_(file_id=...), without re-running __init__)."""
    out = object.__new__(type(rec))
    out.__dict__.update(rec.__dict__)
    object.__setattr__(out, "file_id", file_id)
    return out


def lookup(txn, tables: Tables, layout: Layout, j: int, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, codes) of every entry of table j under `keys`, read in C by `getmulti`."""
    cur = txn.cursor(db=tables.mih[j])
    buf = cur.getmulti(layout.keys(keys), dupdata=True, dupfixed_bytes=codec.MIH_VALUE_BYTES, keyfixed=True)
    return codec.parse_mih_values(buf, layout.key_bytes)


def scan_codes(txn, tables: Tables, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(ids, codes) of every searchable record, sorted by id, read from table mih0."""
    cur = txn.cursor(db=tables.mih[0])
    keys = list(cur.iternext_nodup(keys=True, values=False))
    buf = cur.getmulti(keys, dupdata=True, dupfixed_bytes=codec.MIH_VALUE_BYTES, keyfixed=True)
    ids, codes = codec.parse_mih_values(buf, layout.key_bytes)
    order = np.argsort(ids, kind="stable")
    return ids[order], codes[order]
