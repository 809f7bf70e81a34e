"""The `codes` table (`dedupd.index.codeblocks`) on a real LMDB environment in a tmp dir."""

from __future__ import annotations

import signal

import lmdb
import numpy as np
import pytest

from dedupd.index import codeblocks
from dedupd.index.codeblocks import BLOCK_ROWS
from dedupd.index.errors import IndexCorrupt


@pytest.fixture
def env(tmp_path):
    env = lmdb.open(str(tmp_path), max_dbs=2, map_size=1 << 28)
    yield env, env.open_db(b"codes")
    env.close()


def write(env, changes):
    e, db = env
    with e.begin(write=True) as txn:
        codeblocks.apply(txn, db, changes)


def contents(env):
    e, db = env
    with e.begin() as txn:
        ids, w0, w1 = codeblocks.load(txn, db)
        codes = np.stack([w0, w1], axis=1)
        sizes = [len(v) // codeblocks.ROW.itemsize for _, v in txn.cursor(db=db)]
        assert codeblocks.count(txn, db) == len(ids)
    return ids.tolist(), codes.tolist(), sizes


def test_appends_fill_whole_blocks(env):
    write(env, [(i, (i, 2 * i)) for i in range(1, 2001)])
    write(env, [(i, (i, 2 * i)) for i in range(2001, 2101)])
    ids, codes, sizes = contents(env)
    assert ids == list(range(1, 2101)) and codes[-1] == [2100, 4200]
    assert sizes == [BLOCK_ROWS] * 3 + [2100 - 3 * BLOCK_ROWS]
    assert BLOCK_ROWS * codeblocks.ROW.itemsize + 16 == 4 * 4096  # four overflow pages, no slack


def test_updates_deletes_and_late_ids_land_in_their_block(env):
    write(env, [(i, (i, 0)) for i in range(10, 3000, 2)])
    write(env, [(11, (1, 1)), (12, None), (2998, (5, 5)), (3, (3, 3)), (5000, (50, 0)), (12, (12, 12))])
    ids, codes, _ = contents(env)
    model = {i: [i, 0] for i in range(10, 3000, 2)} | {11: [1, 1], 2998: [5, 5], 3: [3, 3], 5000: [50, 0], 12: [12, 12]}
    assert ids == sorted(model) and codes == [model[i] for i in sorted(model)]


def test_emptied_blocks_go_and_small_ones_merge(env):
    write(env, [(i, (i, 0)) for i in range(1, 2 * BLOCK_ROWS + 101)])
    assert contents(env)[2] == [BLOCK_ROWS, BLOCK_ROWS, 100]
    write(env, [(i, None) for i in range(BLOCK_ROWS + 1, BLOCK_ROWS + 601)])  # block 2 keeps 82 rows
    assert contents(env)[2] == [BLOCK_ROWS, 182]  # ... and takes in block 3
    write(env, [(i, None) for i in range(1, BLOCK_ROWS + 1)])  # block 1 empties
    ids, _, sizes = contents(env)
    assert ids == list(range(BLOCK_ROWS + 601, 2 * BLOCK_ROWS + 101)) and sizes == [182]


def test_random_changes_match_a_model(env):
    rng = np.random.default_rng(8)
    model: dict[int, list[int]] = {}
    for _ in range(25):
        top = max(model, default=0)
        changes = [(int(i), None if rng.random() < 0.3 else (int(rng.integers(0, 2**63)), 7))
                   for i in rng.integers(1, top + 1500, int(rng.integers(1, 1500)))]
        write(env, changes)
        for fid, code in changes:
            model.pop(fid, None) if code is None else model.__setitem__(fid, list(code))
        ids, codes, sizes = contents(env)
        assert ids == sorted(model) and codes == [model[i] for i in ids]
        assert all(0 < s <= BLOCK_ROWS for s in sizes)


def test_random_changes_of_ids_above_2_to_the_53_match_a_model(env):
    """Ids near the box rows' alias bit (`boxes.BOX_ALIAS` = 2**62, where neighbouring ids are
    closer than a float64 can tell apart) mixed with small ones: a search of the block bounds
    that compared them through float64 never advanced (apply looped for ever; an alarm turns
    such a loop into a failure instead of a hung suite)."""
    def loop(*_):
        raise AssertionError("codeblocks.apply did not finish within 60 s")

    old = signal.signal(signal.SIGALRM, loop)
    signal.alarm(60)
    try:
        _ids_above_2_to_the_53(env)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _ids_above_2_to_the_53(env):
    rng = np.random.default_rng(9)
    model: dict[int, list[int]] = {}
    for _ in range(12):
        changes = []
        for base in rng.integers(1, 3000, int(rng.integers(1, 2000))):
            fid = int(base) | (1 << 62) if rng.random() < 0.1 else int(base)
            changes.append((fid, None if rng.random() < 0.4 else (int(rng.integers(0, 2**63)), 1)))
        write(env, changes)
        for fid, code in changes:
            model.pop(fid, None) if code is None else model.__setitem__(fid, list(code))
        ids, codes, sizes = contents(env)
        assert ids == sorted(model) and codes == [model[i] for i in ids]


def test_a_damaged_block_is_corrupt(env):
    e, db = env
    with e.begin(write=True) as txn:
        txn.put(b"\x00" * 8, b"short", db=db)
    with e.begin() as txn, pytest.raises(IndexCorrupt, match="not a multiple of 24"):
        codeblocks.load(txn, db)


def test_codes_of_answers_as_a_dict_of_every_row(env):
    """`codes_of` (what record reads use) against the rows `load` returns: ids in blocks, in
    the gaps deletes left, before the first block and after the last."""
    rng = np.random.default_rng(3)
    write(env, [(int(i), (int(i) * 3, 2**64 - int(i))) for i in rng.choice(np.arange(5, 9000), 4000, replace=False)])
    write(env, [(int(i), None) for i in rng.choice(np.arange(5, 9000), 1500, replace=False)])
    ids, codes, sizes = contents(env)
    assert len(sizes) > 2
    truth = dict(zip(ids, map(tuple, codes)))
    e, db = env
    asked = [0, 1, 4, 9000, 2**64 - 1] + rng.integers(0, 9100, 3000).tolist()
    with e.begin() as txn:
        assert codeblocks.codes_of(txn, db, asked) == {i: truth[i] for i in asked if i in truth}
        assert codeblocks.codes_of(txn, db, [ids[-1]]) == {ids[-1]: truth[ids[-1]]}


def test_codes_of_an_empty_table_is_empty(env):
    e, db = env
    with e.begin() as txn:
        assert codeblocks.codes_of(txn, db, [1, 2]) == {}
