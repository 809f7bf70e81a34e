"""Property: range_search / range_search_many of both implementations equal a brute-force scan.

Code sets are random or clustered around a few centres (so that radii hit), sometimes with
bits that no stored code varies (the MIH layout leaves those out, and queries that differ
there must still be found); m (0: automatic) and the radius vary, including radii that are
not multiples of m. Each example runs with the planner's choice, with the scan forced and
with multi-index hashing forced, so both paths are checked whatever the cost model picks.
"""

from __future__ import annotations

import tempfile

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dedupd.index import FileRecord, LmdbIndex, MemoryIndex


def popcount_py(x: int) -> int:
    return bin(x).count("1")


def brute(queries: np.ndarray, ids: list[int], codes: np.ndarray, radius: int) -> list[list[tuple[int, int]]]:
    out = []
    for q in queries.tolist():
        d = sorted((popcount_py(a ^ q[0]) + popcount_py(b ^ q[1]), i) for i, (a, b) in zip(ids, codes.tolist()))
        out.append([(i, dist) for dist, i in d if dist <= radius])
    return out


def flips(rng, n: int, max_bits: int, code_bits: int) -> np.ndarray:
    out = np.zeros((n, 2), dtype=np.uint64)
    for row in out:
        for b in rng.choice(code_bits, size=int(rng.integers(0, max_bits + 1)), replace=False):
            row[b // 64] |= np.uint64(1) << np.uint64(b % 64)
    return out


@st.composite
def cases(draw):
    code_bits = draw(st.sampled_from([64, 128]))
    m = draw(st.sampled_from([0, 2, 4, 7, 8, 16] if code_bits == 128 else [0, 2, 4]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 120))
    random = rng.integers(0, 2**64, (n, 2), dtype=np.uint64)
    if code_bits == 64:
        random[:, 1] = 0
    centres = random[: draw(st.integers(1, 4))] if n else np.zeros((1, 2), dtype=np.uint64)
    if draw(st.booleans()):  # clustered: near a few centres, some exact duplicates
        spread = draw(st.integers(0, 24))
        codes = centres[rng.integers(0, len(centres), n)] ^ flips(rng, n, spread, code_bits)
    else:
        codes = random
    if draw(st.booleans()):  # a few bits fixed in every stored code (as LBPH's reserved bit 127)
        fixed = np.uint64(rng.integers(0, 2**64, dtype=np.uint64))
        codes = codes.copy()
        codes[:, 0] = (codes[:, 0] & ~fixed) | (np.uint64(rng.integers(0, 2**64, dtype=np.uint64)) & fixed)
    k = draw(st.integers(1, 8))
    queries = centres[rng.integers(0, len(centres), k)] ^ flips(rng, k, draw(st.integers(0, 20)), code_bits)
    radius = draw(st.integers(0, 40))
    return code_bits, m, codes, queries, radius


def records(codes: np.ndarray, code_bits: int):
    recs = [FileRecord(0, f"/c/{i}", 1, i, 1, 0, 0, code=(int(a), int(b)), algo="lbph", algo_version=1)
            for i, (a, b) in enumerate(codes)]
    recs += [FileRecord(0, "/error", 1, 10**6, 1, 0, 0, state="error", error="bad")]  # never found
    return recs


def check(ix, code_bits, m, queries, radius):
    """Every search path of `ix` agrees with brute force over its current records."""
    live = [(r.file_id, r.code) for r in ix.iter_records() if r.code is not None and r.state == "ok"]
    ids = [i for i, _ in live]
    expect = brute(queries, ids, np.array([c for _, c in live], dtype=np.uint64).reshape(-1, 2), radius)
    event(f"hits: {'none' if not any(expect) else 'some' if sum(map(len, expect)) < len(ids) else 'all'}")
    for mode in ("auto", "scan", "mih"):
        ix.search_mode = mode
        assert [ix.range_search(q, radius) for q in queries] == expect
        assert ix.range_search_many(queries, radius) == expect
    ix.search_mode = "auto"


def mutate(ix, rng, code_bits):
    """Delete some records, move some codes, turn some into error records and back."""
    recs = list(ix.iter_records())
    if not recs:
        return
    pick = rng.permutation(len(recs))
    third = len(recs) // 3
    ix.delete_many(recs[i].file_id for i in pick[:third])
    changed = []
    for i in pick[third: 2 * third]:
        r = recs[i]
        if r.code is None:
            changed.append(r.with_(state="ok", error="", code=(int(rng.integers(0, 2**63)), 0)))
        elif rng.random() < 0.3:
            changed.append(r.with_(state="error", error="gone", code=None))
        else:
            flip = flips(rng, 1, 6, code_bits)[0]
            changed.append(r.with_(code=(int(np.uint64(r.code[0]) ^ flip[0]), int(np.uint64(r.code[1]) ^ flip[1]))))
    ix.put_many(changed)
    ix.put(FileRecord(0, "/added", 2, 2, 1, 0, 0, code=(int(rng.integers(0, 2**63)), 0), algo="lbph", algo_version=1))


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1))
def test_memory_index_range_search_is_exact(case, seed):
    code_bits, m, codes, queries, radius = case
    ix = MemoryIndex(code_bits, m)
    ix.put_many(records(codes, code_bits))
    check(ix, code_bits, m, queries, radius)
    mutate(ix, np.random.default_rng(seed), code_bits)
    check(ix, code_bits, m, queries, radius)


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1), st.booleans(), st.booleans())
def test_lmdb_index_range_search_is_exact(case, seed, cache_codes, prewarm):
    code_bits, m, codes, queries, radius = case
    with tempfile.TemporaryDirectory() as d:
        with LmdbIndex.open(d, code_bits=code_bits, m=m, algo="lbph", algo_version=1, cache_codes=cache_codes) as ix:
            if prewarm:  # the codes are in RAM before the writes, which must carry them forward
                ix.put(FileRecord(0, "/warm", 9, 9, 1, 0, 0, code=(3, 0)))
                ix.all_codes()
            ix.put_many(records(codes, code_bits))
            check(ix, code_bits, m, queries, radius)
            mutate(ix, np.random.default_rng(seed), code_bits)
            check(ix, code_bits, m, queries, radius)
            assert [r.file_id for r in ix.iter_records() if r.code is not None and r.state == "ok"] == \
                ix.all_codes()[0].tolist()
        with LmdbIndex.open(d, code_bits=code_bits, m=m, algo="lbph", algo_version=1, readonly=True) as ro:
            check(ro, code_bits, m, queries, radius)


def test_many_duplicates_of_one_key_span_several_blocks(tmp_path):
    """More equal codes than fit one code block; each is found (the MIH bucket holds them all)."""
    codes = np.array([[5, 7]] * 1600 + [[5 ^ (1 << 3), 7]] * 10, dtype=np.uint64)
    with LmdbIndex.open(tmp_path, code_bits=128, algo="lbph", algo_version=1) as ix:
        ix.search_mode = "mih"
        ids = [r.file_id for r in ix.put_many(records(codes, 128))[:-1]]
        got = ix.range_search((5, 7), 1)
        assert got == [(i, 0) for i in ids[:1600]] + [(i, 1) for i in ids[1600:]]
