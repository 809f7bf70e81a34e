"""In-place upgrade of a schema-3 index to schema 4, run by the writer when it opens one.

Schema 3 held v2/v3 records in `files` (a 100-byte header, the code repeated from `codes`)
and lookup tables keyed by 16 bytes (`inodes`, `content`, `content_new`); schema 4 holds
v4 records in `records` and the packed lookups `by_inode` and `by_content` (`lmdb_env`).
No image is decoded again: the upgrade is one pass over the records, `CHUNK` per write
transaction, each moving its records from `files` to `records` as v4 (appended: full
pages; rewriting them in place would leave `files` pages half empty, LMDB merges pages
only below a quarter full) and adding their lookup values. A crash leaves a consistent
index: a transaction moves its records whole, so the next open goes on with the first id
left in `files`. The last transaction drops the old tables and stores schema version 4;
until then readers refuse the index (`IndexMismatch`, saying why).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import lmdb

from . import codeblocks, codec
from .base import SCHEMA_VERSION, is_searchable
from .errors import REINDEX_HINT, IndexCorrupt
from .lmdb_env import Tables, open_tables
from .lmdb_tables import INODES, entries, put_sorted

log = logging.getLogger("dedupd.index")
MARK = b"migrate_to_4"  # meta key present while an upgrade is under way (for the log: a resumed one)
CHUNK = 20_000  # records per write transaction (~4 MB read, ~2 MB written: a few hundred ms)
OLD_TABLES = (b"files", b"inodes", b"content", b"content_new")


def upgrade(env: lmdb.Environment, path: Path, progress: Callable[[int], None] | None = None) -> dict:
    """Upgrade the schema-3 index open in `env` to schema 4 (see the module doc); returns what
    it did: {"records", "seconds", "resumed"}. Grows the map when it fills (this process has
    no other transaction open while an index is being opened). `progress(records done)` is
    called after every committed transaction (the daemon keeps systemd's start timeout from
    firing while an upgrade of millions of records makes progress)."""
    started, chunk = time.monotonic(), CHUNK
    tables, old, resumed = _begin(env)
    log.info("index at %s: upgrading schema 3 to %d in place (records rewritten, lookups rebuilt; "
             "no image is read again)%s", path, SCHEMA_VERSION, ", resuming an interrupted upgrade" if resumed else "")
    done, more = 0, True
    while more:
        n, more = _retry_on_full(env, lambda: _step(env, tables, old, chunk))
        done += n
        if progress is not None:
            progress(done)
        if done % (10 * chunk) < n:
            log.info("index at %s: %d records upgraded (%.0f s)", path, done, time.monotonic() - started)
    _retry_on_full(env, lambda: _finish(env))
    seconds = time.monotonic() - started
    log.info("index at %s: upgraded to schema %d: %d records rewritten in %.1f s", path, SCHEMA_VERSION, done, seconds)
    return {"records": done, "seconds": round(seconds, 2), "resumed": resumed}


def _retry_on_full(env: lmdb.Environment, fn):
    while True:
        try:
            return fn()
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)


def _begin(env: lmdb.Environment) -> tuple[Tables, object, bool]:
    """Create the schema-4 tables and the marker: (their handles, `files`'s, whether an
    interrupted upgrade is resumed)."""
    def txn_fn():
        with env.begin(write=True) as txn:
            tables = open_tables(env, txn=txn, create=True)
            old = env.open_db(b"files", txn=txn, create=True)
            resumed = txn.get(MARK, db=tables.meta) is not None
            txn.put(MARK, b"1", db=tables.meta)
            return tables, old, resumed

    return _retry_on_full(env, txn_fn)


def _step(env: lmdb.Environment, tables: Tables, old, chunk: int) -> tuple[int, bool]:
    """Move up to `chunk` records from `files` to `records` (v4) in one write transaction:
    (records moved, whether `files` still holds any)."""
    with env.begin(write=True) as txn:
        rows, more = [], False
        for key, raw in txn.cursor(db=old):
            if len(rows) == chunk:
                more = True
                break
            rows.append((codec.key_id(key), bytes(raw)))
        recs = [codec.decode_record(raw, fid) for fid, raw in rows]  # v2/v3: the code is inline
        stored = codeblocks.codes_of(txn, tables.codes, [r.file_id for r in recs if is_searchable(r)])
        lookups: list[list[bytes]] = [[], []]
        out = []
        for rec in recs:
            if is_searchable(rec) and stored.get(rec.file_id) != (int(rec.code[0]), int(rec.code[1])):
                raise IndexCorrupt(f"record {rec.file_id}'s code is not the one in the codes table; {REINDEX_HINT}")
            out.append((codec.id_key(rec.file_id), codec.encode_record(rec)))
            for t, _, value in entries(rec)[1:]:  # the `paths` entry stays as it is
                lookups[t - INODES].append(value)
        if out:
            with txn.cursor(db=tables.records) as cur:
                _, added = cur.putmulti(out, append=True)
            if added != len(out):
                raise IndexCorrupt(f"records {rows[0][0]}..{rows[-1][0]} are already in `records`; {REINDEX_HINT}")
            with txn.cursor(db=old) as cur:
                for key, _ in out:
                    cur.set_key(key) and cur.delete()
        for db, values in zip((tables.by_inode, tables.by_content), lookups):
            if values:
                with txn.cursor(db=db) as cur:
                    put_sorted(cur, sorted(values))
    return len(out), more


def _finish(env: lmdb.Environment) -> None:
    """Drop the schema-3 tables (`files` is empty by now), store the new version, remove the marker:
    one transaction."""
    with env.begin(write=True) as txn:
        meta = env.open_db(b"meta", txn=txn, create=False)
        for name in OLD_TABLES:
            if txn.get(name) is not None:
                txn.drop(env.open_db(name, txn=txn, create=False), delete=True)
        txn.put(b"schema_version", json.dumps(SCHEMA_VERSION).encode(), db=meta)
        txn.delete(MARK, db=meta)
