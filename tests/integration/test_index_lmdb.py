"""LmdbIndex against a real LMDB in tmp dirs: processes, locks, map growth, damage."""

from __future__ import annotations

import multiprocessing as mp
import os

import lmdb
import pytest

from dedupd.index import (FileRecord, IndexCorrupt, IndexFailure, IndexLocked, IndexMismatch,
                          IndexMissing, LmdbIndex)

ARGS = dict(code_bits=128, algo="lbph", algo_version=1)


def rec(i: int) -> FileRecord:
    return FileRecord(0, f"/photos/{i:06d}.jpg", 1, i, 1000 + i, 0, 0, code=(i, i * 7 % 1000),
                      algo="lbph", algo_version=1)


def _reader(path: str, conn) -> None:
    """Child process: a read-only index; answers len() on request until told to stop."""
    try:
        with LmdbIndex.open(path, **ARGS, readonly=True, map_size=1 << 20) as ix:
            while conn.recv() == "len":
                conn.send(len(ix))
    except Exception as e:  # report instead of dying silently
        conn.send(repr(e))


def _writer(path: str, conn) -> None:
    try:
        LmdbIndex.open(path, **ARGS).close()
        conn.send("opened")
    except IndexLocked as e:
        conn.send(f"locked: {e}")


@pytest.fixture
def spawn():
    return mp.get_context("spawn")


def test_readonly_reader_sees_commits_of_another_process_and_survives_map_growth(tmp_path, spawn):
    with LmdbIndex.open(tmp_path, **ARGS, map_size=1 << 20) as ix:
        ix.put_many(rec(i) for i in range(10))
        parent, child = spawn.Pipe()
        proc = spawn.Process(target=_reader, args=(str(tmp_path), child))
        proc.start()
        try:
            parent.send("len")
            assert parent.recv() == 10
            for start in range(10, 5000, 500):  # grows the 1 MiB map several times
                ix.put_many(rec(i) for i in range(start, start + 500))
            assert ix.stats()["map_size"] > 1 << 20
            parent.send("len")
            assert parent.recv() == 5010
        finally:
            parent.send("stop")
            proc.join(30)
    assert proc.exitcode == 0


def test_second_writer_is_locked_out(tmp_path, spawn):
    with LmdbIndex.open(tmp_path, **ARGS):
        with pytest.raises(IndexLocked, match=str(tmp_path)):
            LmdbIndex.open(tmp_path, **ARGS)  # same process
        with pytest.raises(IndexLocked, match="already open in this process"):
            LmdbIndex.open(tmp_path, **ARGS, readonly=True)
        parent, child = spawn.Pipe()
        proc = spawn.Process(target=_writer, args=(str(tmp_path), child))
        proc.start()
        answer = parent.recv()
        proc.join(30)
        assert answer.startswith("locked: another process writes to the index")
    with LmdbIndex.open(tmp_path, **ARGS) as ix:  # released on close
        assert len(ix) == 0


def test_map_grows_on_map_full(tmp_path):
    with LmdbIndex.open(tmp_path, **ARGS, map_size=64 * 1024) as ix:
        ix.put_many(rec(i) for i in range(3000))
        assert len(ix) == 3000 and ix.stats()["map_size"] >= 8 * 64 * 1024  # doubled 3 times at least
        assert ix.range_search((5, 35), 0) == [(6, 0)]


def test_use_after_fork_is_refused(tmp_path):
    with LmdbIndex.open(tmp_path, **ARGS) as ix:
        ix.put(rec(1))
        pid = os.fork()
        if pid == 0:  # child: must not touch the parent's environment
            try:
                ix.get(1)
                code = 1
            except IndexFailure as e:
                code = 0 if "fork" in str(e) else 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert ix.get(1).path == rec(1).path


def test_readonly_open_of_missing_index(tmp_path):
    with pytest.raises(IndexMissing, match="run a scan first"):
        LmdbIndex.open(tmp_path / "nothing", **ARGS, readonly=True)
    assert not (tmp_path / "nothing").exists()


def test_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(IndexCorrupt, match="not a dedupd index directory"):
        LmdbIndex.open(tmp_path / "f", **ARGS)


def _raw_put(path, db: bytes, key: bytes, value: bytes) -> None:
    env = lmdb.open(str(path), max_dbs=200)
    with env.begin(write=True) as txn:
        txn.put(key, value, db=env.open_db(db, txn=txn, create=False))
    env.close()


def test_damaged_record_raises_index_corrupt(tmp_path):
    with LmdbIndex.open(tmp_path, **ARGS) as ix:
        ix.put(rec(1))
    _raw_put(tmp_path, b"records", (1).to_bytes(8, "big"), b"\x01garbage")
    with LmdbIndex.open(tmp_path, **ARGS) as ix:
        with pytest.raises(IndexCorrupt):
            ix.get(1)
        with pytest.raises(IndexCorrupt):
            list(ix.iter_records())


def test_newer_schema_asks_for_reindex(tmp_path):
    LmdbIndex.open(tmp_path, **ARGS).close()
    _raw_put(tmp_path, b"meta", b"schema_version", b"99")
    with pytest.raises(IndexMismatch, match="schema version 99.*dedupctl reindex"):
        LmdbIndex.open(tmp_path, **ARGS)


def test_unreadable_settings_are_corrupt(tmp_path):
    LmdbIndex.open(tmp_path, **ARGS).close()
    _raw_put(tmp_path, b"meta", b"m", b"{not json")
    with pytest.raises(IndexCorrupt, match="setting 'm'"):
        LmdbIndex.open(tmp_path, **ARGS)


def test_map_growth_while_another_thread_reads(tmp_path):
    """Growing the map needs every transaction of the process closed: reads wait meanwhile."""
    import threading

    errors, stop = [], threading.Event()
    with LmdbIndex.open(tmp_path, **ARGS, map_size=64 * 1024) as ix:
        ix.put(rec(0))

        def read_loop():
            try:
                while not stop.is_set():
                    ix.range_search((0, 0), 3)
                    ix.stats()
                    assert ix.get(1).file_id == 1
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        readers = [threading.Thread(target=read_loop) for _ in range(2)]
        for t in readers:
            t.start()
        try:
            for start in range(1, 4000, 200):
                ix.put_many(rec(i) for i in range(start, start + 200))
        finally:
            stop.set()
            for t in readers:
                t.join(30)
        assert not errors and len(ix) == 4001 and ix.stats()["map_size"] >= 1 << 20
