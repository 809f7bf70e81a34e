"""The writer's in-RAM copy of the codes (`dedupd.index.codecache`)."""

from __future__ import annotations

import numpy as np

from dedupd.index.codecache import CacheSlot, CodeCache


def cache_of(pairs, txnid=5):
    ids = np.array([i for i, _ in pairs], dtype=np.int64)
    codes = np.array([c for _, c in pairs], dtype=np.uint64).reshape(-1, 2)
    return CodeCache(txnid, ids, codes)


def test_apply_inserts_updates_tombstones_and_revives():
    c = cache_of([(2, (0, 0)), (5, (1, 0))])
    c.apply([(9, (3, 0)), (3, (7, 0)), (5, None), (2, (8, 0)), (5, (15, 0)), (4, None)], txnid=6)
    ids, codes = c.arrays()
    assert ids.tolist() == [2, 3, 5, 9] and codes[:, 0].tolist() == [8, 7, 15, 3]
    assert c.txnid == 6 and len(c) == 4
    assert c.search(np.array([[7, 0]], dtype=np.uint64), 1) == [[(3, 0), (5, 1), (9, 1)]]  # 7^15, 7^3: 1 bit


def test_compaction_and_growth_keep_the_contents():
    c = cache_of([])
    c.apply([(i, (i, 0)) for i in range(1, 3001)], txnid=6)  # beyond the initial capacity
    c.apply([(i, None) for i in range(1, 3001, 2)], txnid=7)  # half dead: compacts
    ids, codes = c.arrays()
    assert ids.tolist() == list(range(2, 3001, 2)) == codes[:, 0].tolist()
    assert c.search(np.array([[2, 0]], dtype=np.uint64), 0) == [[(2, 0)]]
    assert c.search(np.array([[1, 0]], dtype=np.uint64), 0) == [[]]


def test_slot_carries_the_writer_cache_over_its_commits():
    loads = []

    def load():
        loads.append(1)
        return np.array([1], dtype=np.int64), np.array([[1, 0]], dtype=np.uint64)

    slot = CacheSlot(maintain=True)
    q = np.array([[1, 0]], dtype=np.uint64)
    assert slot.search(5, load, q, 0) == [[(1, 0)]] and len(loads) == 1
    slot.committed(write_txnid=6, last_txnid=6, changes=[(2, (1, 0))])
    assert slot.search(6, load, q, 0) == [[(1, 0), (2, 0)]] and len(loads) == 1
    slot.committed(write_txnid=7, last_txnid=6, changes=[])  # an empty txn commits nothing
    assert slot.search(6, load, q, 0) == [[(1, 0), (2, 0)]] and len(loads) == 1
    slot.committed(write_txnid=9, last_txnid=9, changes=[])  # a gap: the cache is retired
    assert slot.search(9, load, q, 0) == [[(1, 0)]] and len(loads) == 2


def test_slot_without_maintain_is_per_snapshot():
    slot = CacheSlot(maintain=False)
    load = lambda: (np.array([1], dtype=np.int64), np.array([[1, 0]], dtype=np.uint64))  # noqa: E731
    assert not slot.warm(3)
    slot.arrays(3, load)
    assert slot.warm(3) and not slot.warm(4)
    slot.committed(write_txnid=4, last_txnid=4, changes=[(2, (1, 0))])
    assert not slot.warm(4) and not slot.warm(3)
