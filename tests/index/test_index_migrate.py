"""The in-place upgrade of a schema-3 index (`migrate`): an index as the schema-3 code wrote it
(`schema3_legacy`) opened by the writer holds the same records, lookups, codes, edges, groups
and settings afterwards, in v4 records and the packed lookups; a crash at any point of the
upgrade leaves an index the next open finishes upgrading; readers are told to wait for it."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import textwrap

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedupd.index import FileRecord, IndexMismatch, LmdbIndex, migrate
from dedupd.index.edges import Edge

from schema3_legacy import build_schema3_index
from test_index_codec import records, same

ARGS = dict(code_bits=128, algo="lbph", algo_version=1)


def _records(n: int) -> list[FileRecord]:
    out = []
    for i in range(n):
        broken = i % 7 == 3
        out.append(FileRecord(
            0, f"/photos/{i // 10}/IMG_{i}.jpg" if i % 11 else f"/photos/b\udcff{i}.jpg", 2049 + i % 2, 5000 + i // 2,
            1000 + i, 1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + 2 * i, 40, 30, "jpeg",
            hashlib.sha256(str(i % 50).encode()).digest(), (i * 0x9E3779B97F4A7C15 % 2**64, i) if i % 13 else None,
            "lbph", 1, 0.1 * i, i % 2 == 0, "error" if broken else "ok", "truncated" if broken else "", 0.3,
            i % 5))
    return out


def _tables(path) -> set[bytes]:
    env = lmdb.open(str(path), max_dbs=20, readonly=True, lock=False)
    with env.begin() as txn:
        names = {bytes(k) for k, _ in txn.cursor()}
    env.close()
    return names


def _check_upgraded(path, expected: list[FileRecord]) -> None:
    assert _tables(path) == {b"by_content", b"by_inode", b"codes", b"edges", b"groups", b"meta", b"paths", b"records"}
    with LmdbIndex.open(path, readonly=True, **ARGS) as ix:
        assert ix.meta.schema_version == 4
        assert list(ix.iter_records()) == expected
        for r in expected[::17]:
            assert ix.by_path(r.path) == r
            assert ix.by_inode(r.dev, r.ino) == [x for x in expected if (x.dev, x.ino) == (r.dev, r.ino)]
            assert ix.by_content(r.content_hash) == [x for x in expected if x.content_hash == r.content_hash]
        searchable = [r for r in expected if r.code is not None and r.state == "ok"]
        ids, codes = ix.all_codes()
        assert ids.tolist() == [r.file_id for r in searchable] and codes.tolist() == [list(r.code) for r in searchable]
        q = searchable[5]
        assert ix.range_search(q.code, 0) == [(q.file_id, 0)]


def test_the_writer_upgrades_a_schema_3_index_in_place(tmp_path, caplog):
    stored = build_schema3_index(tmp_path, _records(500), v2_every=9)
    expected = [r.with_(encoding=0) if i % 9 == 0 else r for i, r in enumerate(stored)]
    with pytest.raises(IndexMismatch, match=r"schema version 3 and is upgraded to 4 in place \(no reindex\)"):
        LmdbIndex.open(tmp_path, readonly=True, **ARGS)
    with caplog.at_level(logging.INFO, logger="dedupd.index"):
        with LmdbIndex.open(tmp_path, **ARGS) as ix:
            e = Edge(stored[1].file_id, stored[2].file_id, 5, 0, True)
            assert ix.add_edges([e]) == 1
            ix.set_meta("x", 1)
            new = ix.put(_records(1)[0].with_(path="/new.jpg"))
            assert new.file_id == 501  # the id counter carried over
    assert any("upgraded to schema 4: 500 records rewritten in" in m for m in caplog.messages)
    expected.append(new)
    _check_upgraded(tmp_path, expected)
    with LmdbIndex.open(tmp_path, **ARGS) as ix:  # opening again does nothing more
        assert ix.edges_of(stored[1].file_id) == [e] and ix.get_meta("x") == 1


def test_the_upgrade_reports_progress_after_every_transaction(tmp_path, monkeypatch):
    """`on_upgrade` hears the running count after each committed chunk (the daemon turns it
    into systemd's EXTEND_TIMEOUT_USEC), the last call being every record."""
    build_schema3_index(tmp_path, _records(50))
    monkeypatch.setattr(migrate, "CHUNK", 16)
    seen: list[int] = []
    with LmdbIndex.open(tmp_path, on_upgrade=seen.append, **ARGS) as ix:
        assert len(ix) == 50
    assert seen == [16, 32, 48, 50]
    seen.clear()
    LmdbIndex.open(tmp_path, on_upgrade=seen.append, **ARGS).close()  # nothing left to upgrade
    assert seen == []


def test_an_upgrade_interrupted_by_a_crash_is_finished_by_the_next_open(tmp_path, monkeypatch):
    """The process dies (os._exit: no cleanup, as a power cut leaves LMDB) after the second
    chunk's commit; the index still opens, upgraded the rest of the way."""
    stored = build_schema3_index(tmp_path, _records(300))
    script = textwrap.dedent(f"""
        import os
        from dedupd.index import LmdbIndex, migrate
        real, calls = migrate._step, []
        def step(*a):
            out = real(*a)
            calls.append(1)
            if len(calls) == 2:
                os._exit(9)
            return out
        migrate._step = step
        migrate.CHUNK = 70
        LmdbIndex.open({str(tmp_path)!r}, code_bits=128, algo="lbph", algo_version=1)
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    names = _tables(tmp_path)
    assert b"files" in names and b"records" in names  # halfway: both
    with pytest.raises(IndexMismatch, match="upgraded to 4 in place"):
        LmdbIndex.open(tmp_path, readonly=True, **ARGS)
    monkeypatch.setattr(migrate, "CHUNK", 70)
    result = {}
    real_upgrade = migrate.upgrade
    monkeypatch.setattr(migrate, "upgrade",
                        lambda env, path, progress=None: result.update(real_upgrade(env, path, progress)) or result)
    LmdbIndex.open(tmp_path, **ARGS).close()
    assert result["resumed"] and result["records"] == 300 - 140
    _check_upgraded(tmp_path, stored)


def test_an_upgrade_that_fails_midway_changes_nothing_it_did_not_finish(tmp_path, monkeypatch):
    stored = build_schema3_index(tmp_path, _records(200))
    real, calls = migrate._step, []

    def failing(*a):
        if len(calls) == 1:
            raise OSError("disk gone")
        calls.append(1)
        return real(*a)

    monkeypatch.setattr(migrate, "_step", failing)
    monkeypatch.setattr(migrate, "CHUNK", 80)
    with pytest.raises(Exception, match="disk gone"):
        LmdbIndex.open(tmp_path, **ARGS)
    monkeypatch.setattr(migrate, "_step", real)
    LmdbIndex.open(tmp_path, **ARGS).close()
    _check_upgraded(tmp_path, stored)


def test_an_upgraded_index_is_smaller(tmp_path):
    """Records and lookups in pages: under 60 % of schema 3's (records appended, not rewritten in place)."""
    recs = _records(3000)
    build_schema3_index(tmp_path / "old", recs)
    env = lmdb.open(str(tmp_path / "old"), max_dbs=20, readonly=True, lock=False)
    with env.begin() as txn:
        def used(name):
            s = txn.stat(env.open_db(name, txn=txn, create=False))
            return s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]
        before = sum(used(n) for n in (b"files", b"inodes", b"content", b"content_new"))
    env.close()
    with LmdbIndex.open(tmp_path / "old", **ARGS) as ix:
        t = ix.stats()["table_bytes"]
        after = sum(t[n] for n in ("records", "by_inode", "by_content")) // 4096
    assert after < 0.6 * before, (before, after)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records(), max_size=25, unique_by=lambda r: r.path), st.integers(1, 4), st.integers(0, 3))
def test_any_schema_3_index_upgrades_to_the_same_records(tmp_path_factory, recs, chunk, v2_every):
    """Random records (surrogate-escaped paths, negative times, huge sizes, float edge cases,
    error records with codes), some as v2, upgraded in chunks of 1-4: every record reads back
    the same, bit for bit, and every lookup finds it."""
    path = tmp_path_factory.mktemp("ix")
    stored = build_schema3_index(path, recs, v2_every=v2_every)
    expected = [r.with_(encoding=0, box_code=None, crop_codes=()) if v2_every and i % v2_every == 0
                else r.with_(box_code=None, crop_codes=())
                for i, r in enumerate(stored)]  # v2/v3 records hold no box code
    real = migrate.CHUNK
    migrate.CHUNK = chunk
    try:
        LmdbIndex.open(path, **ARGS).close()
    finally:
        migrate.CHUNK = real
    with LmdbIndex.open(path, readonly=True, **ARGS) as ix:
        back = list(ix.iter_records())
        assert all(same(a, b) for a, b in zip(back, expected)) and len(back) == len(expected)
        for r in expected:
            assert r in ix.by_inode(r.dev, r.ino) and ix.by_path(r.path) == r
            assert not r.content_hash or r in ix.by_content(r.content_hash)
