"""The in-RAM code table (`dedupd.index.codetable`) and the writer's slot for it (`codecache`)."""

from __future__ import annotations

import numpy as np
import pytest

from dedupd.index import codetable
from dedupd.index.codecache import CacheSlot
from dedupd.index.codetable import CodeTable
from dedupd.index.hamming import hamming_many_numpy

MODES = ("scan", "mih", "auto")


def table_of(pairs, m=0):
    ids = np.array([i for i, _ in pairs], dtype=np.int64)
    codes = np.array([c for _, c in pairs], dtype=np.uint64).reshape(-1, 2)
    return CodeTable.from_codes(ids, codes, m)


def brute(model: dict, queries, radius):
    ids = np.array(sorted(model), dtype=np.int64)
    codes = np.array([model[i] for i in ids.tolist()], dtype=np.uint64).reshape(-1, 2)
    out = []
    for q in np.asarray(queries, dtype=np.uint64):
        d = hamming_many_numpy(q, codes)
        hit = np.flatnonzero(d <= radius)
        out.append(sorted(zip(ids[hit].tolist(), d[hit].tolist()), key=lambda t: (t[1], t[0])))
    return out


def test_apply_inserts_updates_tombstones_and_revives():
    t = table_of([(2, (0, 0)), (5, (1, 0))])
    t.apply([(9, (3, 0)), (3, (7, 0)), (5, None), (2, (8, 0)), (5, (15, 0)), (4, None)])
    ids, codes = t.arrays()
    assert ids.tolist() == [2, 3, 5, 9] and codes[:, 0].tolist() == [8, 7, 15, 3] and len(t) == 4
    for mode in MODES:
        assert t.search(np.array([[7, 0]], dtype=np.uint64), 1, mode) == [[(3, 0), (5, 1), (9, 1)]]  # 7^15, 7^3: 1 bit


def test_compaction_and_growth_keep_the_contents():
    t = table_of([])
    t.apply([(i, (i, 0)) for i in range(1, 3001)])  # beyond the initial capacity
    t.apply([(i, None) for i in range(1, 3001, 2)])  # half dead: compacts
    ids, codes = t.arrays()
    assert ids.tolist() == list(range(2, 3001, 2)) == codes[:, 0].tolist()
    for mode in MODES:
        assert t.search(np.array([[2, 0]], dtype=np.uint64), 0, mode) == [[(2, 0)]]
        assert t.search(np.array([[1, 0]], dtype=np.uint64), 0, mode) == [[]]


def test_changes_after_the_tables_were_built_are_found():
    """Rows appended, recoded, revived or arriving out of id order after an MIH build are scanned
    until the next build, so a forced MIH search stays exact."""
    rng = np.random.default_rng(11)
    model = {int(i): (int(a), int(b)) for i, (a, b) in zip(range(10, 20010, 2), rng.integers(0, 2**64, (10000, 2), dtype=np.uint64))}
    t = table_of(sorted(model.items()))
    q = np.array([model[10], model[20008]], dtype=np.uint64)
    assert t.search(q, 3, "mih") == brute(model, q, 3)  # builds the tables
    target = model[10]
    changes = [(30001, target), (11, (target[0] ^ 1, target[1])), (12, None), (14, (target[0] ^ 3, target[1])),
               (12, (target[0] ^ 7, target[1])), (20008, (0, 0))]
    t.apply(changes)
    for fid, code in changes:
        model.pop(fid, None) if code is None else model.__setitem__(fid, code)
    for mode in MODES:
        assert t.search(q, 3, mode) == brute(model, q, 3)
    ids, _ = t.arrays()
    assert ids.tolist() == sorted(model)


def test_stale_tables_are_rebuilt(monkeypatch):
    monkeypatch.setattr(codetable, "STALE_MIN", 10)
    t = table_of([(i, (i * 2654435761, i)) for i in range(1, 101)])
    q = np.array([[5 * 2654435761, 5]], dtype=np.uint64)
    t.search(q, 2, "mih")
    first = t._mih
    t.apply([(1000 + i, (i, 0)) for i in range(11)])
    assert t.search(q, 2, "mih") == [[(5, 0)]] and t._mih is not first and t._mih.n == 111


def test_search_rejects_unknown_modes():
    t = table_of([(1, (1, 1))])
    with pytest.raises(ValueError, match="search mode"):
        t.search(np.array([[1, 1]], dtype=np.uint64), 0, "fast")


def test_nbytes_counts_rows_and_tables():
    t = table_of([(i, (i * 7919, i)) for i in range(1, 5001)])
    rows = t.nbytes
    assert rows >= 5000 * 25
    t.search(np.array([[7919, 1]], dtype=np.uint64), 0, "mih")
    assert t.nbytes >= rows + 5000 * 4 * t._mih.layout.m


def test_slot_carries_the_writer_table_over_its_commits():
    loads = []

    def load():
        loads.append(1)
        return np.array([1], dtype=np.int64), np.array([1], dtype=np.uint64), np.array([0], dtype=np.uint64)

    slot = CacheSlot(maintain=True)
    q = np.array([[1, 0]], dtype=np.uint64)
    assert slot.search(5, load, q, 0, "auto") == [[(1, 0)]] and len(loads) == 1
    slot.committed(write_txnid=6, last_txnid=6, changes=[(2, (1, 0))])
    assert slot.search(6, load, q, 0, "auto") == [[(1, 0), (2, 0)]] and len(loads) == 1
    slot.committed(write_txnid=7, last_txnid=6, changes=[])  # an empty txn commits nothing
    assert slot.search(6, load, q, 0, "auto") == [[(1, 0), (2, 0)]] and len(loads) == 1
    slot.committed(write_txnid=9, last_txnid=9, changes=[])  # a gap: the table is retired
    assert slot.search(9, load, q, 0, "auto") == [[(1, 0)]] and len(loads) == 2
    assert slot.nbytes() > 0
    slot.clear()
    assert slot.nbytes() == 0


def test_slot_without_maintain_is_per_snapshot():
    slot = CacheSlot(maintain=False)
    loads = []

    def load():
        loads.append(1)
        return np.array([1], dtype=np.int64), np.array([1], dtype=np.uint64), np.array([0], dtype=np.uint64)

    slot.arrays(3, load)
    slot.arrays(3, load)
    assert len(loads) == 1
    slot.committed(write_txnid=4, last_txnid=4, changes=[(2, (1, 0))])
    slot.arrays(4, load)
    assert len(loads) == 2
