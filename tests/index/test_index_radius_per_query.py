"""A radius per query: `range_search_many(codes, radii)` of both implementations equals a
brute-force scan with each code's own radius, on every search path (planner, scan forced,
MIH forced), and the planner's split between probing and scanning is the cheapest one."""

from __future__ import annotations

import itertools
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedupd.index import FileRecord, LmdbIndex, MemoryIndex, mih
from dedupd.index.base import check_radii
from dedupd.index.codetable import CodeTable
from dedupd.index.hamming import hamming_many_numpy


def brute(queries: np.ndarray, ids: list[int], codes: np.ndarray, radii: list[int]) -> list[list[tuple[int, int]]]:
    out = []
    for q, radius in zip(queries.tolist(), radii):
        d = sorted((bin(a ^ q[0]).count("1") + bin(b ^ q[1]).count("1"), i) for i, (a, b) in zip(ids, codes.tolist()))
        out.append([(i, dist) for dist, i in d if dist <= radius])
    return out


@st.composite
def cases(draw):
    """Codes clustered around a few centres (so that every radius hits something), queries
    near the centres, one radius each (as the daemon: the first wide, the others narrower)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 150))
    centres = rng.integers(0, 2**64, (draw(st.integers(1, 4)), 2), dtype=np.uint64)
    noise = rng.integers(0, 2**64, (n, 2), dtype=np.uint64)
    for _ in range(draw(st.integers(1, 3))):  # sparser noise: fewer bits flipped
        noise &= rng.integers(0, 2**64, (n, 2), dtype=np.uint64)
    codes = centres[rng.integers(0, len(centres), n)] ^ noise
    k = draw(st.integers(1, 9))
    queries = centres[rng.integers(0, len(centres), k)] ^ (rng.integers(0, 2**64, (k, 2), dtype=np.uint64)
                                                          & rng.integers(0, 2**64, (k, 2), dtype=np.uint64)
                                                          & rng.integers(0, 2**64, (k, 2), dtype=np.uint64))
    radii = draw(st.lists(st.integers(0, 40), min_size=k, max_size=k))
    m = draw(st.sampled_from([0, 3, 7]))
    return codes, queries, radii, m


def fill(ix, codes: np.ndarray) -> None:
    ix.put_many([FileRecord(0, f"/c/{i}", 1, i, 1, 0, 0, code=(int(a), int(b)), algo="lbph", algo_version=1)
                 for i, (a, b) in enumerate(codes)])


def check(ix, codes: np.ndarray, queries: np.ndarray, radii: list[int]) -> None:
    expect = brute(queries, list(range(1, len(codes) + 1)), codes, radii)
    for mode in ("auto", "scan", "mih"):
        ix.search_mode = mode
        assert ix.range_search_many(queries, radii) == expect
        assert ix.range_search_many(queries, np.array(radii)) == expect
        assert [ix.range_search(q, r) for q, r in zip(queries, radii)] == expect  # the int form
    ix.search_mode = "auto"


SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cases())
def test_memory_index_radius_per_query_is_exact(case):
    codes, queries, radii, m = case
    ix = MemoryIndex(128, m or None, "lbph", 1)
    fill(ix, codes)
    check(ix, codes, queries, radii)


@SETTINGS
@given(cases())
def test_lmdb_index_radius_per_query_is_exact(case):
    codes, queries, radii, m = case
    with tempfile.TemporaryDirectory() as tmp:
        with LmdbIndex.open(tmp, code_bits=128, m=m or None, algo="lbph", algo_version=1) as ix:
            fill(ix, codes)
            check(ix, codes, queries, radii)


def test_a_mixed_plan_probes_some_queries_and_scans_the_others():
    """Many queries: the narrow-radius ones are cheap to probe, the wide one only the scan can
    answer (and a scan with fewer queries costs less); the answer is the brute-force one."""
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 2**64, (200_000, 2), dtype=np.uint64)
    queries = codes[np.arange(16) * 7] ^ (rng.integers(0, 2**64, (16, 2), dtype=np.uint64)
                                         & rng.integers(0, 2**64, (16, 2), dtype=np.uint64)
                                         & rng.integers(0, 2**64, (16, 2), dtype=np.uint64)
                                         & rng.integers(0, 2**64, (16, 2), dtype=np.uint64))
    table = CodeTable.from_codes(np.arange(1, len(codes) + 1), codes)
    table.mih_min_rows = 0  # "auto" may probe tables at this size
    table.search(queries[:1], 4, "mih")  # builds the tables
    radii = [60] + [6] * 15  # 60 bits: a neighbourhood no probe can enumerate
    got = table.search(queries, radii)
    assert table.last_plan == "mih+scan"
    expect_rows = [np.flatnonzero(hamming_many_numpy(q, codes) <= r) for q, r in zip(queries, radii)]
    assert sum(map(len, expect_rows[1:])) > 0
    assert [sorted(i for i, _ in hits) for hits in got] == [(rows + 1).tolist() for rows in expect_rows]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 5e7), st.just(float("inf"))), min_size=0, max_size=6),
       st.integers(0, 20_000_000), st.integers(0, 100_000))
def test_choose_probed_is_the_cheapest_split(costs, rows, fresh):
    """Against every subset of queries to probe: the chosen plan costs the least there is."""
    costs = np.array(costs, dtype=float)
    probed, cost = mih.choose_probed(costs, rows, fresh)
    k = len(costs)

    def plan_cost(subset) -> float:
        s = len(subset)
        probe = (mih.PROBE_FIXED_NS + costs[list(subset)].sum() + mih.scan_cost(fresh, s)) if s else 0.0
        return probe + mih.scan_cost(rows, k - s)

    best = min(plan_cost(sub) for s in range(k + 1) for sub in itertools.combinations(range(k), s))
    assert cost == pytest.approx(best, rel=1e-9)
    assert plan_cost(tuple(np.flatnonzero(probed))) == pytest.approx(cost, rel=1e-9)
    assert not np.isinf(costs[probed]).any()


@pytest.mark.parametrize("radius,k", [(-1, 2), ([1, -2], 2), ([1, 2, 3], 2), (True, 1), (2.0, 1), ([1.5], 1),
                                      ("3", 1), ([[1, 2]], 2)])
def test_bad_radii_are_rejected(radius, k):
    with pytest.raises(ValueError):
        check_radii(radius, k)


def test_radii_as_one_int_or_one_per_query():
    assert check_radii(3, 2).tolist() == [3, 3]
    assert check_radii(np.int32(4), 1).tolist() == [4]
    assert check_radii([28, 20, 20], 3).tolist() == [28, 20, 20]
    assert check_radii(np.array([5], dtype=np.uint8), 1).dtype == np.int64
    assert check_radii([], 0).tolist() == []


def test_auto_builds_no_tables_below_the_row_threshold_and_does_above_it():
    """MIH tables cost ~88 B a code: "auto" answers a small table by the scan and builds
    nothing; from `mih_min_rows` rows on it builds them and probes. Both answers are the
    brute-force one."""
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 2**64, (50_000, 2), dtype=np.uint64)
    queries = codes[:8] ^ np.uint64(0b1011)  # 3 bits off a stored code each
    expect = [(np.flatnonzero(hamming_many_numpy(q, codes) <= 12) + 1).tolist() for q in queries]

    small = CodeTable.from_codes(np.arange(1, len(codes) + 1), codes)
    bare = small.nbytes
    got = small.search(queries, 12)
    assert small.last_plan == "scan" and small.nbytes == bare
    assert [sorted(i for i, _ in hits) for hits in got] == expect

    large = CodeTable.from_codes(np.arange(1, len(codes) + 1), codes)
    large.mih_min_rows = len(codes)
    got = large.search(queries, 12)
    assert large.last_plan == "mih" and large.nbytes > bare
    assert [sorted(i for i, _ in hits) for hits in got] == expect
