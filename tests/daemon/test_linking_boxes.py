"""The box pairs of a deferring scan (`linking.box_join_hits`, `linking.box_batch_hits`)
against brute-force oracles on random codes with many near neighbours."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dedupd.daemon.linking import box_batch_hits, box_join_hits
from dedupd.index.boxes import BOX_ALIAS
from dedupd.index.edges import BOX_VARIANT

RADIUS = 6


def near_codes(rng, n: int) -> np.ndarray:
    """n codes a few bits from a handful of centres (many pairs within RADIUS)."""
    centres = rng.integers(0, 2**62, size=(4, 2), dtype=np.int64).astype(np.uint64)
    codes = centres[rng.integers(0, 4, n)].copy()
    for i in range(n):
        for word in (0, 1):
            for bit in rng.choice(62, rng.integers(0, 3), replace=False):  # 0-2 bits per word
                codes[i, word] ^= np.uint64(1) << np.uint64(bit)
    return codes


def dist(x, y) -> int:
    return (int(x[0]) ^ int(y[0])).bit_count() + (int(x[1]) ^ int(y[1])).bit_count()


@pytest.mark.parametrize("seed", range(8))
def test_box_join_hits_are_the_visible_pairs_within_the_radius(seed):
    """Old records (indexed before the scan, some re-fingerprinted: changed) and the scan's files
    in batches; a file sees a record's code or box code when the upright join would let it (not
    its own batch, not a later one, not itself, old unchanged ones always)."""
    rng = np.random.default_rng(seed)
    n_old, n_new = 12, 18
    all_ids = np.arange(1, n_old + n_new + 1, dtype=np.int64)
    codes = near_codes(rng, len(all_ids))
    boxes = near_codes(rng, len(all_ids))
    has = rng.random(len(all_ids)) < 0.5
    # the scan: the new files and a few old ones fingerprinted again, in storage order
    again = rng.choice(np.arange(n_old), 3, replace=False)
    scan_rows = np.concatenate([again, np.arange(n_old, len(all_ids))])
    ids = all_ids[scan_rows]
    batch = np.arange(len(ids)) // 4
    changed = np.array([rng.random() < 0.5 if r < n_old else True for r in scan_rows])
    box_ids = all_ids[has] | BOX_ALIAS
    f, g, d, v, pos = box_join_hits(ids, batch, changed, codes[scan_rows], np.where(has[scan_rows, None], boxes[scan_rows], 0),
                                    has[scan_rows], all_ids, codes, box_ids, boxes[has], RADIUS, 2)
    assert (v == BOX_VARIANT).all() and (ids[pos] == f).all()
    got = Counter(zip(f.tolist(), g.tolist(), d.tolist()))

    rank = {int(all_ids[r]): -1 for r in range(len(all_ids))}
    seen_batch = {int(all_ids[r]): -1 for r in range(len(all_ids))}
    for i, r in enumerate(scan_rows):
        rank[int(all_ids[r])] = int(batch[i]) if changed[i] else -1
        seen_batch[int(all_ids[r])] = int(batch[i])
    want = Counter()
    for i, r in enumerate(scan_rows):
        fid = int(all_ids[r])
        for c, gid in enumerate(all_ids.tolist()):
            if gid == fid or not (rank[gid] < batch[i] and seen_batch[gid] != batch[i]):
                continue
            pairs = []
            if has[r]:
                pairs.append(dist(boxes[r], codes[c]))  # its box code against the record's code
            if has[c]:
                pairs.append(dist(codes[r], boxes[c]))  # its code against the record's box row
                if has[r]:
                    pairs.append(dist(boxes[r], boxes[c]))
            want.update((fid, gid, x) for x in pairs if x <= RADIUS)
    assert got == want and sum(want.values()) >= 5  # the case has pairs to find


@pytest.mark.parametrize("seed", range(8))
def test_box_batch_hits_is_the_closest_box_distance_of_each_pair(seed):
    rng = np.random.default_rng(100 + seed)
    n = 20
    codes, boxes = near_codes(rng, n), near_codes(rng, n)
    has = rng.random(n) < 0.5
    f, g, d = box_batch_hits(codes, np.where(has[:, None], boxes, 0), has, RADIUS)
    got = {(a, b): x for a, b, x in zip(f.tolist(), g.tolist(), d.tolist())}
    want = {}
    for a in range(n):
        for b in range(n):
            if a == b:
                continue
            ds = ([dist(boxes[a], codes[b])] if has[a] else []) + ([dist(codes[a], boxes[b])] if has[b] else [])
            ds += [dist(boxes[a], boxes[b])] if has[a] and has[b] else []
            if ds and min(ds) <= RADIUS:
                want[(a, b)] = min(ds)
    assert got == want and len(want) >= 4
