"""Reading and writing records across the LMDB tables inside one transaction.

Every table entry a record implies is listed by `entries`; a replace deletes the
old entries the new record no longer implies and adds the new ones, so every
table stays consistent with `records`. Codes are not entries: the writer lists
(file id, code or None) changes, which `codeblocks.apply` writes to `codes` at the
end of the transaction and the in-RAM code table replays after the commit. A
searchable record's code lives in `codes` only, so reading records reads their codes
from there (`decode_rows`), and the writer from its changes not yet applied. A record's
box code and crop window codes (if any) are more rows of `codes` under alias ids (`boxes`),
changed with the record; the record keeps a copy of them, so reading records never reads
those rows.
"""

from __future__ import annotations

import bisect
import dataclasses
import operator
from typing import Iterable

from . import boxes, codeblocks, codec
from .base import U64_MAX, IndexMeta, check_record, is_searchable
from .errors import IndexFailure, PathConflict, RecordNotFound
from .lmdb_env import Tables
from .edges import Edge
from .records import FileRecord

NEXT_ID = b"next_id"
PATHS, INODES, CONTENT = 0, 1, 2  # positions in `handles(tables)`
Entry = tuple[int, bytes, bytes]  # (table position, key, value)
Pending = dict  # file id -> code or None: a writer's code changes not yet in `codes`


def handles(tables: Tables) -> list:
    return [tables.paths, tables.by_inode, tables.by_content]


def entries(rec: FileRecord, path_key: bytes | None = None) -> list[Entry]:
    """Every (table, key, value) the record implies, apart from its `records` row and its code."""
    out = [(PATHS, path_key or codec.path_key(rec.path), codec.id_key(rec.file_id)),
           (INODES, codec.LOOKUP_KEY, codec.lookup_value(codec.inode_prefix(rec.dev, rec.ino), rec.file_id))]
    if rec.content_hash:
        out.append((CONTENT, codec.LOOKUP_KEY, codec.lookup_value(codec.content_prefix(rec.content_hash), rec.file_id)))
    return out


def decode_rows(txn, tables: Tables, rows: Iterable[tuple[int, bytes]], pending: Pending | None = None) -> list[FileRecord]:
    """The records of stored (id, raw) rows, with the codes of the searchable ones read from
    `codes` (one block read per block their ids fall in) or from `pending`."""
    rows = list(rows)
    need = [fid for fid, raw in rows if codec.code_in_table(raw)]
    codes: dict = {}
    if need:
        if pending:
            codes = {fid: pending[fid] for fid in need if fid in pending}
            need = [fid for fid in need if fid not in codes]
        codes.update(codeblocks.codes_of(txn, tables.codes, need))
    return [codec.decode_record(raw, fid, codes.get(fid)) for fid, raw in rows]


def read_record(txn, tables: Tables, file_id: int, pending: Pending | None = None) -> FileRecord | None:
    if not 0 <= file_id <= U64_MAX:
        return None
    raw = txn.get(codec.id_key(file_id), db=tables.records)
    return None if raw is None else decode_rows(txn, tables, [(file_id, raw)], pending)[0]


def records_by_id(txn, tables: Tables, ids: list[int]) -> dict[int, FileRecord]:
    """{id: record} for those of `ids` (ascending, in range) that are stored: one `getmulti`."""
    if len(ids) == 1:  # a lookup's usual answer: no cursor
        rec = read_record(txn, tables, ids[0])
        return {} if rec is None else {rec.file_id: rec}
    with txn.cursor(db=tables.records) as cur:
        rows = cur.getmulti([codec.id_key(i) for i in ids])
    return {rec.file_id: rec for rec in decode_rows(txn, tables, ((codec.key_id(k), raw) for k, raw in rows))}


def lookup_ids(txn, db, prefix: bytes) -> list[int]:
    """Ids whose `by_inode`/`by_content` value starts with `prefix`, ascending."""
    cur = txn.cursor(db=db)
    if not cur.set_range_dup(codec.LOOKUP_KEY, prefix):
        return []
    ids = []
    for value in cur.iternext_dup():
        if value[:codec.PREFIX_BYTES] != prefix:
            break
        ids.append(codec.lookup_id(value))
    return ids


def records_by_inode(txn, tables: Tables, dev: int, ino: int) -> list[FileRecord]:
    """The records of (dev, ino), by id: the prefix's candidates, each checked (the prefix is lossy)."""
    ids = lookup_ids(txn, tables.by_inode, codec.inode_prefix(dev, ino))
    return [r for r in records_by_id(txn, tables, ids).values() if r.dev == dev and r.ino == ino]


def records_by_content(txn, tables: Tables, content_hash: bytes) -> list[FileRecord]:
    """The records whose content hash is `content_hash`, by id (candidates by prefix, each checked)."""
    ids = lookup_ids(txn, tables.by_content, codec.content_prefix(content_hash))
    return [r for r in records_by_id(txn, tables, ids).values() if r.content_hash == content_hash]


def path_keys(paths: Iterable[str]) -> list[tuple[bytes, tuple[str, ...]]]:
    """(path key, the paths with that key) of `paths`, in key order: the order of the
    `paths` table, so that a batch of lookups walks its pages forward (a directory's
    files share a key prefix and so a few pages). Several paths per key only on a
    hash collision (2**-128 for a pair, but then every path is still answered exactly)."""
    by_key: dict[bytes, tuple[str, ...]] = {}
    for p in paths:
        key = codec.path_key(p)
        held = by_key.get(key, ())
        if p not in held:
            by_key[key] = held + (p,)
    return sorted(by_key.items())


def records_by_path(txn, tables: Tables, keyed: list[tuple[bytes, tuple[str, ...]]]) -> dict[str, FileRecord]:
    """{path: record} for the keyed paths (from `path_keys`) that a record holds exactly:
    one `getmulti` over `paths`, one over `records` in id order."""
    with txn.cursor(db=tables.paths) as cur:
        hits = cur.getmulti([key for key, _ in keyed])
    if not hits:
        return {}
    wanted = dict(keyed)
    key_of = {fid: key for key, fid in hits}
    with txn.cursor(db=tables.records) as cur:
        rows = cur.getmulti(sorted(key_of))
    out = {}
    for rec in decode_rows(txn, tables, ((codec.key_id(fid), raw) for fid, raw in rows)):
        if rec.path in wanted[key_of[codec.id_key(rec.file_id)]]:  # the key is a hash: the record must hold the path itself
            out[rec.path] = rec
    return out


def record_path(raw: bytes, fid: bytes) -> bytes:
    """The path bytes of a stored record (under id key `fid`), without decoding the rest of it
    (a pass over every record for a path prefix reads only this): `codec.record_path`."""
    path = codec.short_path(raw)
    return path if path is not None else codec.record_path(raw, codec.key_id(fid))


def paths_under(txn, tables: Tables, start: bytes, prefixes: tuple[bytes, ...], limit: int) -> tuple[dict[int, bytes], bytes | None]:
    """Records from id key `start` on whose path bytes start with one of `prefixes`, reading at
    most `limit` records: ({id: path bytes}, the id key to go on from, or None at the end)."""
    out: dict[int, bytes] = {}
    cur = txn.cursor(db=tables.records)
    if not cur.set_range(start):
        return out, None
    for n, (fid, raw) in enumerate(cur):
        if n == limit:
            return out, fid
        path = record_path(raw, fid)
        if path.startswith(prefixes):
            out[codec.key_id(fid)] = path
    return out, None


class Writer:
    """Record writes within one write transaction (ids come from the `meta` counter).

    New records are buffered and written by `flush` (also called by `finish`, and before
    any replace or delete, which read the tables): their `records` rows in id order with
    MDB_APPEND (full pages), the other entries per table in one `putmulti` call. The
    lookup values (`by_inode`, `by_content`) go in sorted, and those above every stored
    value with MDB_APPENDDUP: a page that only ever receives values at its end is left full
    instead of split in half (inodes stored in inode order, ids of a fresh index)."""

    def __init__(self, txn, tables: Tables, meta: IndexMeta, changes: list):
        self.txn, self.t, self.meta = txn, tables, meta
        self.changes = changes  # (file id, code or None): for `codes` and the in-RAM code table
        self.pending: Pending = {}  # the same, last change per id: what reads in this transaction see
        self.dbs = handles(tables)
        raw = txn.get(NEXT_ID, db=tables.meta)
        self.next_id = 1 if raw is None else codec.key_id(raw)
        self._files: list[tuple[bytes, bytes]] = []  # new records, ids ascending
        self._entries: list[Entry] = []  # their table entries
        self._paths: dict[bytes, FileRecord] = {}  # path key -> new record holding it

    def finish(self) -> None:
        self.flush()
        self.txn.put(NEXT_ID, codec.id_key(self.next_id), db=self.t.meta)

    def _code_change(self, file_id: int, code: "tuple[int, int] | None") -> None:
        self.changes.append((file_id, code))
        self.pending[file_id] = code

    def _read(self, file_id: int) -> FileRecord | None:
        return read_record(self.txn, self.t, file_id, self.pending)

    def _put_entry(self, t: int, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=self.dbs[t])

    def _delete_entry(self, t: int, key: bytes, value: bytes) -> None:
        self.txn.delete(key, value, db=self.dbs[t])

    def flush(self) -> None:
        if self._files:  # ids above every stored id: appends (full pages, no search)
            with self.txn.cursor(db=self.t.records) as cur:
                cur.putmulti(self._files, append=True)
        by_table: list[list] = [[] for _ in self.dbs]
        for t, key, value in self._entries:
            by_table[t].append((key, value))
        for t, items in enumerate(by_table):
            if not items:
                continue
            with self.txn.cursor(db=self.dbs[t]) as cur:
                if t == PATHS:  # a path key leads with its directory: a batch's keys already cluster
                    cur.putmulti(items, dupdata=True)
                else:
                    put_sorted(cur, sorted(value for _, value in items))
        self._files, self._entries, self._paths = [], [], {}

    def put(self, rec: FileRecord) -> FileRecord:
        check_record(rec, self.meta)
        if rec.file_id == 0:
            return self._put_new(with_id(rec, self.next_id))
        self.flush()
        old = self._read(rec.file_id)
        if old is None:
            raise RecordNotFound(f"no record with file id {rec.file_id} to replace")
        path_key = self._check_path(rec)
        raw = codec.encode_record(rec)
        txn = self.txn
        if (old.code != rec.code or old.box_code != rec.box_code or old.crop_codes != rec.crop_codes
                or not is_searchable(rec)):
            drop_edges(txn, self.t, rec.file_id)  # edges hold only for the codes they were found with
        old_entries, new_entries = set(entries(old)), entries(rec, path_key)
        for entry in old_entries.difference(new_entries):
            self._delete_entry(*entry)
        txn.put(codec.id_key(rec.file_id), raw, db=self.t.records)
        for entry in new_entries:
            if entry not in old_entries:
                self._put_entry(*entry)
        if _code_of(rec) != _code_of(old):
            self._code_change(rec.file_id, _code_of(rec))
        for row, code in boxes.row_changes(old, rec):
            self._code_change(row, code)
        return rec

    def _put_new(self, rec: FileRecord) -> FileRecord:
        path_key = self._check_path(rec)
        self._files.append((codec.id_key(rec.file_id), codec.encode_record(rec)))
        self._entries.extend(entries(rec, path_key))
        self._paths[path_key] = rec
        self.next_id += 1
        code = _code_of(rec)
        if code is not None:
            self._code_change(rec.file_id, code)
            for row, alias_code in boxes.row_changes(None, rec):
                self._code_change(row, alias_code)
        return rec

    def _check_path(self, rec: FileRecord) -> bytes:
        """The path's key, after checking that no other record (stored or new in this batch) holds the path."""
        key = codec.path_key(rec.path)
        other = self._paths.get(key)
        if other is None:
            holder = self.txn.get(key, db=self.t.paths)
            if holder is None or codec.key_id(holder) == rec.file_id:
                return key
            other = self._read(codec.key_id(holder))
        if other is not None and other.path == rec.path:
            raise PathConflict(f"path {rec.path!r} belongs to record {other.file_id}; update that record instead")
        raise IndexFailure(f"path {rec.path!r} collides with the path hash of record "
                           f"{other.file_id if other is not None else '?'}")

    def delete(self, file_id: int) -> bool:
        self.flush()
        old = self._read(file_id)
        if old is None:
            return False
        for entry in entries(old):
            self._delete_entry(*entry)
        drop_edges(self.txn, self.t, file_id)
        self.txn.delete(codec.id_key(file_id), db=self.t.records)
        if is_searchable(old):
            self._code_change(file_id, None)
        for row, code in boxes.row_changes(old, None):
            self._code_change(row, code)
        return True


def put_sorted(cur, values: list[bytes]) -> None:
    """Add sorted, distinct `values` under `codec.LOOKUP_KEY` (the cursor's table is a lookup
    table): those above the greatest stored value are appended (MDB_APPENDDUP, no half pages)."""
    last = cur.value() if cur.set_key(codec.LOOKUP_KEY) and cur.last_dup() else b""
    cut = bisect.bisect_right(values, last)
    key = codec.LOOKUP_KEY
    if cut:
        cur.putmulti([(key, v) for v in values[:cut]], dupdata=True)
    if cut < len(values):
        _, added = cur.putmulti([(key, v) for v in values[cut:]], dupdata=True, append=True)
        if added != len(values) - cut:  # cannot happen for distinct sorted values above `last`
            raise IndexFailure(f"lookup values out of order: {added} of {len(values) - cut} appended")


def _code_of(rec: FileRecord) -> tuple[int, int] | None:
    """The code a record contributes to range searches, as two ints (None if not searchable)."""
    return (int(rec.code[0]), int(rec.code[1])) if is_searchable(rec) else None


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


# every field but the file id: read at once (`attrgetter`), written through the slots' setters
_OTHER_FIELDS = [f.name for f in dataclasses.fields(FileRecord)][1:]
_GET_OTHERS = operator.attrgetter(*_OTHER_FIELDS)
_SET_OTHERS = tuple(getattr(FileRecord, name).__set__ for name in _OTHER_FIELDS)
_SET_ID = FileRecord.file_id.__set__


def with_id(rec: FileRecord, file_id: int) -> FileRecord:
    """`rec` with another file id (same as rec.with_(file_id=...), without re-running
    `__init__`, whose frozen field assignments cost 2-3x as much)."""
    out = object.__new__(FileRecord)
    for set_field, value in zip(_SET_OTHERS, _GET_OTHERS(rec)):
        set_field(out, value)
    _SET_ID(out, file_id)
    return out
