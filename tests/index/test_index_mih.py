"""The multi-index hashing math in `dedupd.index.mih`, without any store."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedupd.index import mih
from dedupd.index.hamming import hamming_many, hamming_many_numpy


def popcount_py(x: int) -> int:
    return bin(x).count("1")


@given(st.integers(0, 200), st.sampled_from([1, 2, 4, 8, 16, 32]))
def test_table_radii_follow_norouzi(radius, m):
    radii = mih.table_radii(radius, m)
    s, a = divmod(radius, m)
    assert radii == [s] * (a + 1) + [s - 1] * (m - a - 1)
    # pigeonhole: substring distances each above their radius add up to more than r
    assert sum(r + 1 for r in radii) == radius + 1


@given(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
       st.sampled_from([(128, 2), (128, 4), (128, 8), (128, 16), (128, 32), (64, 2), (64, 4), (64, 8)]))
def test_substrings_are_contiguous_bit_ranges(code, layout_args):
    code_bits, m = layout_args
    if code_bits == 64:
        code = (code[0], 0)
    layout = mih.Layout(code_bits, m)
    value = code[0] | (code[1] << 64)
    subs = layout.substrings(np.array([code], dtype=np.uint64))[0].tolist()
    w = code_bits // m
    assert subs == [(value >> (j * w)) & ((1 << w) - 1) for j in range(m)]
    keys = layout.code_keys(*code)
    assert keys == layout.keys(np.array(subs, dtype=np.uint64))
    assert keys == [s.to_bytes(layout.key_bytes, "big") for s in subs]


@pytest.mark.parametrize("width,s", [(4, 0), (4, 2), (4, 9), (8, 3), (16, 2), (32, 2), (64, 2), (24, 3)])
def test_xor_masks_are_every_value_within_s(width, s):
    masks = mih.xor_masks(width, s)
    assert len(masks) == mih.neighbourhood_size(width, s) == sum(comb(width, k) for k in range(min(s, width) + 1))
    assert len(set(masks.tolist())) == len(masks) and list(masks) == sorted(masks)
    assert all(popcount_py(int(x)) <= s and int(x) < (1 << width) for x in masks)
    assert not masks.flags.writeable


def test_neighbours_are_sorted_unique_union():
    got = mih.neighbours(np.array([0b0000, 0b0001], dtype=np.uint64), 4, 1)
    assert got.tolist() == sorted({0, 1, 2, 4, 8, 3, 5, 9})


def test_plan_scans_when_the_neighbourhood_outnumbers_the_codes():
    layout = mih.Layout(128, 8)
    assert mih.plan(layout, 8, 1, 1000) == [(0, 1)] + [(j, 0) for j in range(1, 8)]
    assert mih.plan(layout, 8, 1, 10) is None  # 24 keys > 10 codes
    assert mih.plan(layout, 128, 1, 10**9) is None
    assert mih.plan(layout, 3, 1, 10**9) == [(0, 0), (1, 0), (2, 0), (3, 0)]  # s=0, a=3: the rest skip
    assert mih.plan(layout, 8, 1, 1000, load_cost=0.0, check_cost=0.0) is None
    assert mih.plan(layout, 24, 1, 100_000, load_cost=0.0, check_cost=1 / 1024) is None
    assert mih.plan(layout, 24, 1, 100_000) is not None
    assert mih.plan(layout, 8, 1, 100_000, 0.0, 1 / 1024) is not None
    assert mih.plan(layout, 8, 1, 100_000, 0.0, 1 / 1024, probe_cost=24) is None  # 8 probes cost more


def test_numba_and_numpy_distances_agree():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 2**64, (500, 2), dtype=np.uint64)
    q = codes[7]
    expect = [popcount_py(int(a) ^ int(q[0])) + popcount_py(int(b) ^ int(q[1])) for a, b in codes]
    assert hamming_many(q, codes).tolist() == expect == hamming_many_numpy(q, codes).tolist()


class DictStore:
    """A minimal store for mih.search: dict of substring -> [(id, code)] per table."""

    def __init__(self, layout, codes):
        self.layout, self.ids, self.codes = layout, np.arange(1, len(codes) + 1), codes
        self.tables = [dict() for _ in range(layout.m)]
        for i, sub in zip(self.ids, layout.substrings(codes)):
            for j, s in enumerate(sub.tolist()):
                self.tables[j].setdefault(s, []).append(i)
        self.looked_up = 0

    def lookup(self, j, keys):
        self.looked_up += len(keys)
        hit = sorted(i for k in keys.tolist() for i in self.tables[j].get(k, ()))
        return np.array(hit, dtype=np.int64), self.codes[np.array(hit, dtype=np.int64) - 1].reshape(-1, 2)

    def scan(self, queries, radius):
        return mih.verify(queries, self.ids, self.codes, radius)


def brute(queries, codes, radius):
    out = []
    for q in queries:
        d = [(popcount_py(int(a) ^ int(q[0])) + popcount_py(int(b) ^ int(q[1])), i + 1)
             for i, (a, b) in enumerate(codes)]
        out.append([(i, dist) for dist, i in sorted(d) if dist <= radius])
    return out


@given(st.integers(0, 2**32 - 1), st.sampled_from([2, 4, 8, 16]), st.integers(0, 40), st.integers(1, 4))
def test_forced_mih_equals_brute_force(seed, m, radius, k):
    """MIH alone (scan never chosen) is exact, for every split of r into s and a."""
    rng = np.random.default_rng(seed)
    layout = mih.Layout(128, m)
    centres = rng.integers(0, 2**64, (3, 2), dtype=np.uint64)
    codes = centres[rng.integers(0, 3, 80)] ^ flips(rng, 80, radius)
    queries = centres[rng.integers(0, 3, k)] ^ flips(rng, k, radius // 2)
    keys = k * sum(mih.neighbourhood_size(layout.width, s) for s in mih.table_radii(radius, m))
    if keys > 200_000:
        return  # too many keys to enumerate in a test; the stores scan instead
    store = DictStore(layout, codes)
    got = mih.search(layout, queries, radius, len(codes), store.lookup, store.scan, (float("inf"),))
    assert got == brute(queries, codes, radius)
    assert store.looked_up > 0 or radius >= 128


def flips(rng, n, max_bits):
    """n (2,) uint64 masks with 0..max_bits random bits set."""
    out = np.zeros((n, 2), dtype=np.uint64)
    for row in out:
        for b in rng.choice(128, size=rng.integers(0, max_bits + 1), replace=False):
            row[b // 64] |= np.uint64(1) << np.uint64(b % 64)
    return out


def test_itertools_masks_match_the_table_method():
    # widths above 20 use combinations; compare with an explicit enumeration
    for width, s in [(21, 2), (32, 1)]:
        expect = sorted(sum(1 << b for b in c) for k in range(s + 1) for c in itertools.combinations(range(width), k))
        assert mih.xor_masks(width, s).tolist() == expect
