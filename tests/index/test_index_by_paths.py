"""Batched lookups: `by_paths` answers what `by_path` answers for each path, `get_many`
what `get` answers for each id, and `paths_under` what a comparison of every record's
path with the prefixes finds, on both implementations (the brute-force oracles are
`by_path`, `get` and `iter_records`)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.index import FileRecord, IndexFailure, LmdbIndex, MemoryIndex, RecordNotFound
from dedupd.index import codec, lmdb_index, lmdb_tables

DIRS = ["/r", "/r/a", "/r/a/b", "/r/ab", "/s", "/r/caf\udce9"]  # the last: a non-UTF-8 byte (surrogateescape)
NAMES = ["x.jpg", "y.jpg", "IMG_1.jpg", "\udcff.png", "é.jpg", "a"]
PATHS = [f"{d}/{n}" for d in DIRS for n in NAMES]


def rec(path: str, ino: int = 1) -> FileRecord:
    return FileRecord(file_id=0, path=path, dev=7, ino=ino, size=100, mtime_ns=5, ctime_ns=6, width=40, height=30,
                      format="jpeg", content_hash=hashlib.sha256(os.fsencode(path)).digest(), code=(ino, 0),
                      algo="lbph", algo_version=1, quality=0.5)


@contextlib.contextmanager
def both_indexes(paths: list[str]):
    """A MemoryIndex and an LmdbIndex holding records of `paths` (ids 1, 2, ...), closed after."""
    with tempfile.TemporaryDirectory() as tmp:
        out = [MemoryIndex(), LmdbIndex.open(os.path.join(tmp, "ix"), code_bits=128, algo="lbph", algo_version=1)]
        try:
            for ix in out:
                ix.put_many([rec(p, i + 1) for i, p in enumerate(paths)])
            yield out
        finally:
            for ix in out:
                ix.close()


stored_paths = st.lists(st.sampled_from(PATHS), unique=True, max_size=len(PATHS))
queries = st.lists(st.sampled_from(PATHS + ["/nowhere/x.jpg", "/r/a", "/r/"]), max_size=40)
prefixes = st.lists(st.sampled_from(["/", "/r", "/r/", "/r/a/", "/r/a", "/s/", "/r/caf", "/r/caf\udce9/",
                                     "/r/caf\udcc3", "/zzz/", ""]), max_size=4)


@settings(max_examples=60)
@given(stored=stored_paths, asked=queries)
def test_by_paths_answers_what_by_path_answers(stored, asked):
    with both_indexes(stored) as indexes:
        answers = []
        for ix in indexes:
            got = ix.by_paths(iter(asked))  # any iterable, duplicates allowed
            oracle = {p: r for p in asked if (r := ix.by_path(p)) is not None}
            assert got == oracle
            answers.append({p: r.file_id for p, r in got.items()})
        assert answers[0] == answers[1]


@settings(max_examples=40)
@given(stored=stored_paths, deleted=st.lists(st.integers(0, len(PATHS)), max_size=5),
       asked=st.lists(st.integers(-2, len(PATHS) + 3), max_size=30))
def test_get_many_answers_what_get_answers(stored, deleted, asked):
    with both_indexes(stored) as indexes:
        for ix in indexes:
            ix.delete_many(deleted)
            oracle = {}
            for i in asked:
                try:
                    oracle[i] = ix.get(i)
                except RecordNotFound:
                    pass
            assert ix.get_many(iter(asked)) == oracle


@settings(max_examples=60)
@given(stored=stored_paths, wanted=prefixes)
def test_paths_under_finds_what_comparing_every_path_finds(stored, wanted):
    with both_indexes(stored) as indexes:
        for ix in indexes:
            oracle = {r.file_id: r.path for r in ix.iter_records() if wanted and r.path.startswith(tuple(wanted))}
            assert ix.paths_under(wanted) == oracle


def test_lookups_cross_transaction_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(lmdb_index, "PATH_BATCH", 3)
    monkeypatch.setattr(lmdb_index, "SCAN_BATCH", 4)
    paths = [f"/d{i % 3}/f{i}.jpg" for i in range(25)]
    with LmdbIndex.open(tmp_path / "ix", code_bits=128, algo="lbph", algo_version=1) as ix:
        stored = ix.put_many([rec(p, i + 1) for i, p in enumerate(paths)])
        ix.delete_many([stored[5].file_id])
        assert ix.get_many(r.file_id for r in stored) == {r.file_id: r for r in stored if r is not stored[5]}
        asked = paths + ["/d0/none.jpg"]
        assert ix.by_paths(asked) == {r.path: r for r in stored if r.file_id != stored[5].file_id}
        assert ix.paths_under(["/d1/"]) == {r.file_id: r.path for r in stored if r.path.startswith("/d1/") and r is not stored[5]}


def test_a_path_whose_key_collides_is_not_answered_with_another_record(tmp_path, monkeypatch):
    """Path keys are hashes: a lookup must check the record's own path. With a key made
    coarse on purpose, two names of a directory collide."""
    real = codec.path_key
    monkeypatch.setattr(codec, "path_key", lambda p: real(p)[:8] + os.fsencode(p)[-1:] * 8)
    with LmdbIndex.open(tmp_path / "ix", code_bits=128, algo="lbph", algo_version=1) as ix:
        a = ix.put(rec("/d/a.jpg"))
        # "/d/b.jpg" has a.jpg's key ("g" last): not stored, so not answered; both asked together, a.jpg still is
        assert ix.by_path("/d/b.jpg") is None
        assert ix.by_paths(["/d/b.jpg"]) == {}
        assert ix.by_paths(["/d/b.jpg", "/d/a.jpg", "/d/b.jpg"]) == {"/d/a.jpg": a}
        assert lmdb_tables.path_keys(["/d/b.jpg", "/d/a.jpg", "/d/b.jpg"]) == [(codec.path_key("/d/a.jpg"), ("/d/b.jpg", "/d/a.jpg"))]


def test_record_path_reads_the_path_codec_wrote():
    """v4 records (paths shorter and longer than a 1-byte length), and the v2/v3 records of a
    schema-3 index (`paths_under` before its upgrade)."""
    from schema3_legacy import encode_v2, encode_v3
    for path in PATHS + ["/" + "x" * 126, "/" + "x" * 127, "/" + "x" * 5000]:
        for raw in (codec.encode_record(rec(path)), encode_v3(rec(path)), encode_v2(rec(path))):
            assert lmdb_tables.record_path(raw, codec.id_key(1)) == os.fsencode(path)


def test_record_path_of_garbage_raises_index_corrupt():
    from dedupd.index import IndexCorrupt
    with pytest.raises(IndexCorrupt):
        lmdb_tables.record_path(b"\x09garbage", codec.id_key(1))


@pytest.mark.parametrize("kind", ["memory", "lmdb"])
def test_closed_index_refuses_path_lookups(tmp_path, kind):
    ix = MemoryIndex() if kind == "memory" else LmdbIndex.open(tmp_path / "ix", code_bits=128, algo="lbph", algo_version=1)
    ix.put(rec("/a"))
    ix.close()
    for call in (lambda: ix.by_paths(["/a"]), lambda: ix.by_paths([]), lambda: ix.paths_under(["/"]),
                 lambda: ix.get_many([1])):
        with pytest.raises(IndexFailure):
            call()
