"""Multi-index hashing: the math and layout (`dedupd.index.mih`), the numba kernels behind it
(`search_kernels`) and the in-RAM tables (`MihTables`), without any store."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.index import mih
from dedupd.index.hamming import hamming_many, hamming_many_numpy
from dedupd.index.mih_tables import MihTables
from dedupd.index.search_kernels import bucket_keys, csr_fill, scan_listed, scan_rows, substrings


def popcount_py(x: int) -> int:
    return bin(x).count("1")


def words(codes):
    codes = np.asarray(codes, dtype=np.uint64).reshape(-1, 2)
    return np.ascontiguousarray(codes[:, 0]), np.ascontiguousarray(codes[:, 1])


@given(st.integers(0, 200), st.integers(1, 32))
def test_table_radii_follow_norouzi(radius, m):
    radii = mih.table_radii(radius, m)
    s, a = divmod(radius, m)
    assert radii == [s] * (a + 1) + [s - 1] * (m - a - 1)
    # pigeonhole: substring distances each above their radius add up to more than r
    assert sum(r + 1 for r in radii) == radius + 1


@pytest.mark.parametrize("width,s", [(4, 0), (4, 2), (4, 9), (8, 3), (16, 2), (18, 4), (32, 2), (64, 2)])
def test_layered_masks_are_every_value_within_s_by_weight(width, s):
    masks = mih.layered_masks(width, s)
    assert len(masks) == mih.neighbourhood_size(width, s) == sum(comb(width, k) for k in range(min(s, width) + 1))
    weights = [popcount_py(int(x)) for x in masks]
    assert weights == sorted(weights) and len(set(masks.tolist())) == len(masks)
    assert all(w <= s and int(x) < (1 << width) for x, w in zip(masks, weights))
    for t in range(s + 1):  # a prefix is exactly the neighbourhood of a smaller radius
        assert sorted(masks[: mih.neighbourhood_size(width, t)].tolist()) == sorted(
            int(x) for x in masks if popcount_py(int(x)) <= t)
    assert not masks.flags.writeable


def test_layered_masks_match_an_explicit_enumeration():
    for width, s in [(21, 2), (32, 1)]:
        expect = sorted(sum(1 << b for b in c) for k in range(s + 1) for c in itertools.combinations(range(width), k))
        assert sorted(mih.layered_masks(width, s).tolist()) == expect


@pytest.mark.parametrize("n,live,m", [(100_000, 127, 8), (1_000_000, 127, 7), (10_000_000, 127, 6),
                                      (1_000_000, 64, 4), (50, 127, 16)])
def test_tables_get_about_log2_n_bits(n, live, m):
    assert mih.m_for(live, n) == m


def test_layout_leaves_out_dead_bits_and_cuts_runs_of_equal_width():
    live0, live1 = 2**64 - 1, 2**63 - 1  # bit 127 never varies (LBPH's reserved bit)
    layout = mih.make_layout(live0, live1, 1_000_000)
    assert layout.widths == (18, 18, 18, 18, 18, 18, 19) and layout.bucket_bits == layout.widths
    assert (layout.dead0, layout.dead1) == (0, 1 << 63)
    union0 = union1 = 0
    for a, b in zip(layout.mask0, layout.mask1):
        assert not (a & union0) and not (b & union1)  # disjoint
        union0, union1 = union0 | a, union1 | b
    assert (union0, union1) == (live0, live1)
    assert mih.make_layout(2**64 - 1, 0, 1_000_000).m == 4  # a 64-bit algorithm: word 1 is dead
    assert mih.make_layout(0, 0, 10).m == 0  # all codes equal: nothing to hash


def test_wide_substrings_share_buckets():
    layout = mih.make_layout(2**64 - 1, 2**64 - 1, 100, m=2)
    assert layout.widths == (64, 64) and layout.bucket_bits == (8, 8)


def test_query_radii_subtract_dead_bit_mismatches():
    layout = mih.make_layout(2**64 - 1, 2**63 - 1, 1000, m=4)
    ref = (0, 0)  # every stored code has bit 127 = 0
    q0 = np.zeros(2, dtype=np.uint64)
    q1 = np.array([0, 1 << 63], dtype=np.uint64)
    radii = mih.query_radii(layout, q0, q1, ref, 9)
    assert radii[0].tolist() == mih.table_radii(9, 4) and radii[1].tolist() == mih.table_radii(8, 4)
    assert (mih.query_radii(layout, q0, q1, ref, 0)[1] == -1).all()  # 1 bit off every code: nothing within 0


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_substrings_pack_the_masked_bits(w0, w1, m0, m1):
    room = 64 - popcount_py(m0)  # a substring is at most 64 bits wide
    m1 = sum(1 << b for b in [b for b in range(64) if m1 >> b & 1][:room])
    bits = [(w0 >> b) & 1 for b in range(64) if m0 >> b & 1] + [(w1 >> b) & 1 for b in range(64) if m1 >> b & 1]
    expect = sum(bit << i for i, bit in enumerate(bits))
    got = substrings(np.array([w0], np.uint64), np.array([w1], np.uint64), np.uint64(m0), np.uint64(m1))
    assert int(got[0]) == expect
    low = bucket_keys(np.array([w0], np.uint64), np.array([w1], np.uint64), np.uint64(m0), np.uint64(m1), 20)
    assert int(low[0]) == expect & (2**20 - 1)


def test_csr_fill_lists_every_row_under_its_key():
    keys = np.array([3, 1, 3, 0, 3, 2, 1], dtype=np.uint32)
    offsets, rows = np.zeros(5, np.uint32), np.empty(7, np.uint32)
    csr_fill(keys, offsets, rows)
    assert offsets.tolist() == [0, 1, 3, 4, 7]
    assert [rows[offsets[k]:offsets[k + 1]].tolist() for k in range(4)] == [[3], [1, 6], [5], [0, 2, 4]]


def limits(radius, k: int) -> np.ndarray:
    return np.full(k, radius, dtype=np.int64)


def test_scan_kernels_equal_brute_force():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 2**64, (5000, 2), dtype=np.uint64)
    queries = codes[[7, 4100]] ^ np.array([[0b1011, 0], [0, 1 << 40]], dtype=np.uint64)
    w0, w1 = words(codes)
    q0, q1 = words(queries)
    d = np.minimum(hamming_many_numpy(queries[0], codes), hamming_many_numpy(queries[1], codes))
    for radius in (0, 1, 3, 30):
        expect = np.flatnonzero(d <= radius).tolist()
        assert scan_rows(w0, w1, 0, len(codes), q0, q1, limits(radius, 2)).tolist() == expect
        assert scan_rows(w0, w1, 100, 4200, q0, q1, limits(radius, 2)).tolist() == [i for i in expect if 100 <= i < 4200]
        listed = np.arange(0, 5000, 3, dtype=np.int64)
        assert scan_listed(w0, w1, listed, q0, q1, limits(radius, 2)).tolist() == [i for i in expect if i % 3 == 0]
    assert scan_rows(w0, w1, 0, len(codes), q0, q1, limits(-1, 2)).tolist() == []


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 64])
def test_scan_takes_any_number_of_queries(k):
    """The scan checks 8 codes at a time against every query and the last rows one by one:
    every query count gives the rows within the radius of at least one query."""
    rng = np.random.default_rng(k)
    codes = rng.integers(0, 2**64, (4500, 2), dtype=np.uint64)
    queries = codes[rng.integers(0, len(codes), k)] ^ (rng.integers(0, 2**64, (k, 2), dtype=np.uint64)
                                                      & rng.integers(0, 2**64, (k, 2), dtype=np.uint64)
                                                      & rng.integers(0, 2**64, (k, 2), dtype=np.uint64))
    w0, w1 = words(codes)
    q0, q1 = words(queries)
    d = np.min([hamming_many_numpy(q, codes) for q in queries], axis=0)
    for radius in (0, 16, 28, 50):
        expect = np.flatnonzero(d <= radius).tolist()
        assert scan_rows(w0, w1, 0, len(codes), q0, q1, limits(radius, k)).tolist() == expect
        assert scan_rows(w0, w1, 2047, 4097, q0, q1, limits(radius, k)).tolist() == [i for i in expect if 2047 <= i < 4097]


@settings(deadline=None, max_examples=80)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(-1, 48), min_size=1, max_size=11), st.integers(0, 40),
       st.integers(0, 40))
def test_scan_with_a_radius_per_query_equals_brute_force(seed, radii, lo, short):
    """Each query is matched within its own limit (-1: nothing), over any [lo, hi): ranges that
    start or end off the 8-code steps included."""
    rng = np.random.default_rng(seed)
    n = 300
    centres = rng.integers(0, 2**64, (4, 2), dtype=np.uint64)
    codes = centres[rng.integers(0, 4, n)] ^ (rng.integers(0, 2**64, (n, 2), dtype=np.uint64)
                                             & rng.integers(0, 2**64, (n, 2), dtype=np.uint64)
                                             & rng.integers(0, 2**64, (n, 2), dtype=np.uint64))
    k = len(radii)
    queries = codes[rng.integers(0, n, k)] ^ (rng.integers(0, 2**64, (k, 2), dtype=np.uint64)
                                             & rng.integers(0, 2**64, (k, 2), dtype=np.uint64))
    w0, w1 = words(codes)
    q0, q1 = words(queries)
    lim = np.array(radii, dtype=np.int64)
    hit = np.any([hamming_many_numpy(q, codes) <= r for q, r in zip(queries, radii)], axis=0)
    hi = n - short
    assert scan_rows(w0, w1, lo, hi, q0, q1, lim).tolist() == [i for i in np.flatnonzero(hit) if lo <= i < hi]
    listed = np.arange(lo, n, 2, dtype=np.int64)
    assert scan_listed(w0, w1, listed, q0, q1, lim).tolist() == [i for i in listed if hit[i]]


def test_numba_and_numpy_distances_agree():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 2**64, (500, 2), dtype=np.uint64)
    q = codes[7]
    expect = [popcount_py(int(a) ^ int(q[0])) + popcount_py(int(b) ^ int(q[1])) for a, b in codes]
    assert hamming_many(q, codes).tolist() == expect == hamming_many_numpy(q, codes).tolist()


@settings(deadline=None, max_examples=60)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0, 2, 3, 5, 8]),
       st.one_of(st.integers(0, 24), st.lists(st.integers(0, 28), min_size=4, max_size=4)))
def test_probe_finds_every_row_within_the_radius(seed, m, radius):
    """MIH alone is exact, dead bits included (a query may differ from every code on them),
    with one radius for all queries or one each; m = 2, 3, 5 fold wide substrings into buckets."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64, (3, 2), dtype=np.uint64)
    codes = centres[rng.integers(0, 3, 300)] ^ (rng.random((300, 2)) < 0.08) * rng.integers(0, 2**64, (300, 2), dtype=np.uint64)
    codes[:, 1] &= np.uint64(0x0FFF_FFFF_FFFF_FFFF)  # four dead bits
    queries = codes[rng.integers(0, 300, 4)] ^ np.array([[0, 0], [0, 1 << 62], [1, 3 << 60], [5, 0]], dtype=np.uint64)
    assert_probe_exact(codes, queries, m, radius)


def assert_probe_exact(codes: np.ndarray, queries: np.ndarray, m: int, radius) -> MihTables:
    """The rows the tables' probe returns are exactly the codes within the radius (an int, or
    one per query) of a query (a brute-force oracle); a query too costly to probe is left out.
    Returns the tables."""
    w0, w1 = words(codes)
    q0, q1 = words(queries)
    tables = MihTables(w0, w1, m)
    lim = np.broadcast_to(np.asarray(radius, dtype=np.int64), (len(queries),)).copy()
    radii = tables.radii(q0, q1, lim)
    ok = np.isfinite(tables.query_costs(radii))
    if ok.any():
        got = np.unique(tables.probe(w0, w1, q0[ok], q1[ok], lim[ok], radii[ok])).tolist()
        hit = np.any([hamming_many_numpy(q, codes) <= r for q, r in zip(queries[ok], lim[ok])], axis=0)
        assert got == np.flatnonzero(hit).tolist()
    return tables


def test_probe_output_grows_past_its_first_buffer():
    codes = np.tile(np.array([[9, 9]], dtype=np.uint64), (3000, 1))
    codes[::2, 0] ^= np.uint64(1)  # two distinct codes, so there are live bits to hash
    w0, w1 = words(codes)
    tables = MihTables(w0, w1)
    q0, q1 = words(codes[:1])
    rows = tables.probe(w0, w1, q0, q1, limits(1, 1), tables.radii(q0, q1, limits(1, 1)))
    assert sorted(set(rows.tolist())) == list(range(3000))
    assert tables.occupancy[0] > 1000  # two crowded buckets: the cost model sees it


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2, 4]), st.integers(0, 20))
def test_probe_is_exact_on_64_bit_codes(seed, m, radius):
    """Word 1 of a 64-bit code is always 0: the tables keep word 0 beside their rows."""
    rng = np.random.default_rng(seed)
    codes = np.zeros((400, 2), dtype=np.uint64)
    codes[:, 0] = rng.integers(0, 2**64, 400, dtype=np.uint64) & rng.integers(0, 2**64, 400, dtype=np.uint64)
    queries = codes[rng.integers(0, 400, 3)] ^ np.array([[0, 0], [1, 0], [7 << 20, 0]], dtype=np.uint64)
    tables = assert_probe_exact(codes, queries, m, radius)
    assert not tables.inline_w1.any()


def test_tables_keep_the_word_with_fewer_of_their_bits_beside_each_row():
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 2**64, (2000, 2), dtype=np.uint64)
    w0, w1 = words(codes)
    tables = MihTables(w0, w1, 4)  # 128 live bits: tables 0-1 cut word 0, tables 2-3 word 1
    assert tables.inline_w1.tolist() == [True, True, False, False]
    n = len(codes)
    for j in range(4):
        rows = tables.rows[j * n:(j + 1) * n]
        assert (tables.words[j * n:(j + 1) * n] == (w1 if tables.inline_w1[j] else w0)[rows]).all()
    assert tables.nbytes == tables.offsets.nbytes + 12 * 4 * n
