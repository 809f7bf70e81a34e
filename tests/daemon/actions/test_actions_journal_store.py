"""JournalStore on a real LMDB in tmp dirs: sequences, indexes, growth, locking, damage."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from dedupd.index.errors import IndexCorrupt, IndexFailure, IndexLocked
from dedupd.index.journal_store import JournalStore


def rec(action_id: str, path: str = "/photos/a.jpg", **more) -> dict:
    return {"action_id": action_id, "target": {"path": path}, "final_path": path, **more}


def test_append_get_and_indexes(tmp_path):
    with JournalStore.open(tmp_path / "j") as store:
        s1 = store.append(rec("a1"))
        s2 = store.append(rec("a2", "/photos/b.jpg"))
        s3 = store.append(rec("a3", final_path="/photos/a.jpg.dedup"))
        assert (s1, s2, s3) == (1, 2, 3)
        assert json.loads(store.get(s2))["action_id"] == "a2"
        assert store.get(99) is None
        assert store.seq_of("a3") == 3 and store.seq_of("nope") is None
        assert store.seqs_for_path("/photos/a.jpg") == [1, 3]
        assert store.seqs_for_path("/photos/a.jpg.dedup") == [3]
        assert [s for s, _ in store.iter()] == [1, 2, 3]
        assert [s for s, _ in store.iter(from_seq=2)] == [2, 3]
        assert store.last_seq() == 3


def test_records_survive_reopen_and_non_utf8_paths(tmp_path):
    odd = b"/photos/caf\xe9 \n.jpg".decode("utf-8", "surrogateescape")
    with JournalStore.open(tmp_path / "j") as store:
        seq = store.append(rec("a1", odd))
    with JournalStore.open(tmp_path / "j") as store:
        assert json.loads(store.get(seq))["target"]["path"] == odd
        assert store.seqs_for_path(odd) == [seq]


def test_update_moves_path_index_and_refuses_other_action(tmp_path):
    with JournalStore.open(tmp_path / "j") as store:
        seq = store.append(rec("a1", "/x/old.jpg"))
        store.update(seq, rec("a1", "/x/new.jpg", state="done"))
        assert store.seqs_for_path("/x/old.jpg") == [] and store.seqs_for_path("/x/new.jpg") == [seq]
        assert json.loads(store.get(seq))["state"] == "done"
        with pytest.raises(IndexFailure, match="belongs to a1"):
            store.update(seq, rec("a2"))
        with pytest.raises(IndexFailure, match="no entry 7"):
            store.update(7, rec("a1"))


def test_duplicate_action_and_bad_records_are_refused(tmp_path):
    with JournalStore.open(tmp_path / "j") as store:
        store.append(rec("a1"))
        with pytest.raises(IndexFailure, match="already in the journal"):
            store.append(rec("a1"))
        with pytest.raises(IndexFailure, match="action_id"):
            store.append({"target": {}})


def test_map_grows_when_full(tmp_path):
    with JournalStore.open(tmp_path / "j", map_size=64 << 10) as store:
        for i in range(400):
            store.append(rec(f"a{i}", f"/photos/{i}.jpg", detail="x" * 300))
        assert len(list(store.iter())) == 400  # more than 64 KiB of records: the map grew
        assert store._env.info()["map_size"] > 64 << 10


def _try_open(path: str, conn) -> None:
    try:
        JournalStore.open(path).close()
        conn.send("opened")
    except IndexLocked as e:
        conn.send(f"locked: {e}")


def test_second_writer_process_is_refused(tmp_path):
    with JournalStore.open(tmp_path / "j"):
        parent, child = mp.get_context("spawn").Pipe()
        p = mp.get_context("spawn").Process(target=_try_open, args=(str(tmp_path / "j"), child))
        p.start()
        answer = parent.recv()
        p.join()
    assert answer.startswith("locked:") and "journal" in answer and "dedupd running" in answer


def test_foreign_directory_and_closed_store(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(IndexCorrupt, match="not a dedupd journal"):
        JournalStore.open(tmp_path / "file")
    store = JournalStore.open(tmp_path / "j")
    store.close()
    with pytest.raises(IndexFailure, match="closed"):
        store.append(rec("a1"))


def test_damaged_record_is_reported_on_update(tmp_path):
    with JournalStore.open(tmp_path / "j") as store:
        seq = store.append(rec("a1"))
        with store._env.begin(write=True) as txn:
            txn.put(seq.to_bytes(8, "big"), b"{not json", db=store._entries)
        with pytest.raises(IndexCorrupt, match="entry 1 is not JSON"):
            store.update(seq, rec("a1"))
