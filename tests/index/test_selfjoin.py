"""The batch Hamming join (`dedupd.index.selfjoin`) against a brute-force numpy oracle:
every pair within the radius that the visibility arrays allow, each exactly once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedupd.index import selfjoin
from dedupd.index.hamming import popcount

WORD1_LIVE = np.uint64((1 << 63) - 1)  # LBPH: bit 127 is reserved, always 0


def distances(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(len(q), len(c)) Hamming distances, plain numpy (the oracle)."""
    return (popcount(q[:, None, 0] ^ c[None, :, 0]).astype(np.int64)
            + popcount(q[:, None, 1] ^ c[None, :, 1]))


def oracle(q, c, radius, q_rank, c_rank, c_batch, q_self) -> set[tuple[int, int, int]]:
    d = distances(q, c)
    qi, ci = np.nonzero(d <= radius)
    keep = (c_rank[ci] < q_rank[qi]) & (c_batch[ci] != q_rank[qi]) & (ci != q_self[qi])
    return set(zip(qi[keep].tolist(), ci[keep].tolist(), d[qi[keep], ci[keep]].tolist()))


def clustered(rng: np.random.Generator, n: int, centres: int, spread: int, bits64: bool = False) -> np.ndarray:
    """n codes around a few centres (k random bit flips each, k <= spread): many pairs at
    every small distance, which uniform codes would not give."""
    base = rng.integers(0, 2**64, (centres, 2), dtype=np.uint64)
    base[:, 1] = 0 if bits64 else base[:, 1] & WORD1_LIVE
    codes = base[rng.integers(0, centres, n)]
    for row in range(n):
        for bit in rng.choice(64 if bits64 else 127, rng.integers(0, spread + 1), replace=False):
            codes[row, bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return codes


@st.composite
def join_cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    bits64 = draw(st.booleans())
    spread = draw(st.sampled_from([0, 3, 12, 30]))
    centres = draw(st.integers(1, 6))
    nc = draw(st.integers(1, 120))
    nq = draw(st.integers(1, 120))
    codes = clustered(rng, nc, centres, spread, bits64)
    queries = np.concatenate([codes[rng.integers(0, nc, nq // 2)], clustered(rng, nq - nq // 2, centres, spread, bits64)])
    if draw(st.booleans()) and not bits64:  # queries with a bit the codes never have (a dead bit)
        queries[rng.random(nq) < 0.3, 1] |= np.uint64(1 << 63)
    radius = draw(st.sampled_from([0, 1, 2, 5, 12, 20, 24, 28, 40, 127]))
    m = draw(st.sampled_from([0, 1, 2, 3, 7, 12, 30]))
    visibility = draw(st.booleans())
    if visibility:
        q_rank = rng.integers(0, 5, nq)
        c_rank = rng.integers(-1, 5, nc)
        c_batch = np.where(rng.random(nc) < 0.5, -1, rng.integers(0, 5, nc))
        q_self = np.where(rng.random(nq) < 0.5, -1, rng.integers(0, nc, nq))
    else:
        q_rank = c_rank = c_batch = q_self = None
    return queries, codes, radius, m, q_rank, c_rank, c_batch, q_self


def as_set(hits: selfjoin.JoinHits) -> set[tuple[int, int, int]]:
    return set(zip(hits.q.tolist(), hits.c.tolist(), hits.distance.tolist()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(join_cases(), st.integers(1, 3))
def test_range_join_finds_exactly_the_pairs_brute_force_finds(case, workers):
    queries, codes, radius, m, q_rank, c_rank, c_batch, q_self = case
    hits = selfjoin.range_join(queries, codes, radius, q_rank=q_rank, c_rank=c_rank, c_batch=c_batch,
                               q_self=q_self, m=m, workers=workers)
    nq, nc = len(queries), len(codes)
    expect = oracle(queries, codes, radius,
                    np.zeros(nq, np.int64) if q_rank is None else q_rank,
                    np.full(nc, -1) if c_rank is None else c_rank,
                    np.full(nc, -1) if c_batch is None else c_batch,
                    np.full(nq, -1) if q_self is None else q_self)
    assert as_set(hits) == expect
    assert len(hits) == len(expect)  # each pair once, though several tables may hold it


def test_equal_codes_and_empty_sides():
    codes = np.tile(np.array([[5, 9]], np.uint64), (4, 1))  # no live bit: no tables at all
    queries = np.array([[5, 9], [5, 8], [0, 0]], np.uint64)
    assert as_set(selfjoin.range_join(queries, codes, 1)) == {(q, c, d) for q, d in ((0, 0), (1, 1)) for c in range(4)}
    empty = np.empty((0, 2), np.uint64)
    assert len(selfjoin.range_join(empty, codes, 5)) == 0
    assert len(selfjoin.range_join(queries, empty, 5)) == 0


def test_bad_arguments_are_refused():
    codes = np.zeros((3, 2), np.uint64)
    with pytest.raises(ValueError, match="radius"):
        selfjoin.range_join(codes, codes, -1)
    with pytest.raises(ValueError, match="shape"):
        selfjoin.range_join(np.zeros((3, 3), np.uint64), codes, 2)
    with pytest.raises(ValueError, match="q_rank"):
        selfjoin.range_join(codes, codes, 2, q_rank=[1, 2])
    with pytest.raises(ValueError, match="variants"):
        selfjoin.variant_join(codes, codes, 2, 2)


def variant_oracle(variants, codes, up, rot, q_rank, q_self, c_rank, c_batch) -> set[tuple[int, int, int, int]]:
    out = set()
    n, k = variants.shape[:2]
    for v in range(k):
        radius = up if v == 0 else rot
        if radius < 0:
            continue
        for f, c, d in oracle(variants[:, v], codes, radius, q_rank, c_rank, c_batch, q_self):
            out.add((f, c, d, v))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 80), st.sampled_from([1, 8]), st.integers(1, 5),
       st.sampled_from([(28, 20), (24, 24), (12, -1), (0, 3)]))
def test_variant_join_is_a_per_file_lookup_of_every_variant(seed, n, k, chunks, radii):
    """As the scan uses it: n new files stored in batches, joined against the old codes and
    their own upright codes; a file sees old codes and those stored in earlier batches."""
    rng = np.random.default_rng(seed)
    n_old = int(rng.integers(0, 60))
    variants = clustered(rng, n * k, 4, 14).reshape(n, k, 2)
    old = clustered(rng, n_old, 4, 14)
    codes = np.concatenate([old, variants[:, 0]])
    batch = np.sort(rng.integers(0, 6, n))
    c_rank = np.concatenate([np.full(n_old, -1), np.where(rng.random(n) < 0.2, -1, batch)])  # -1: an unchanged code
    c_batch = np.concatenate([np.full(n_old, -1), batch])
    q_self = n_old + np.arange(n)
    up, rot = radii
    hits = selfjoin.variant_join(variants, codes, up, rot, q_rank=batch, q_self=q_self, c_rank=c_rank,
                                 c_batch=c_batch, chunks=chunks, workers=2)
    got = set(zip(hits.file.tolist(), hits.code.tolist(), hits.distance.tolist(), hits.variant.tolist()))
    assert got == variant_oracle(variants, codes, up, rot, batch, q_self, c_rank, c_batch)
    assert len(got) == len(hits)
