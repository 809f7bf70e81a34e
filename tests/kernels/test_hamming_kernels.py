import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dedupd.kernels import hamming, hamming_many, reference, within_radius
from dedupd.kernels.hamming import hamming_many_multi, popcount

codes_strategy = st.integers(0, 40).flatmap(lambda n: arrays(np.uint64, (n, 2)))
code_strategy = arrays(np.uint64, (2,))


def random_codes(n, seed):
    return np.random.default_rng(seed).integers(0, 2**64, size=(n, 2), dtype=np.uint64)


def test_popcount_edges():
    for x in (0, 1, 2**63, 2**64 - 1, 0x5555555555555555, 0xAAAAAAAAAAAAAAAA, 0x0123456789ABCDEF):
        assert popcount(np.uint64(x)) == bin(x).count("1")


def test_hamming_extremes():
    zero, ones = np.zeros(2, np.uint64), np.full(2, 2**64 - 1, np.uint64)
    assert hamming(zero, zero) == 0
    assert hamming(zero, ones) == 128
    assert hamming(zero, np.array([1, 2**63], np.uint64)) == 2


@given(code_strategy, codes_strategy)
def test_hamming_many_and_radius_match_reference(q, codes):
    assert np.array_equal(hamming_many(q, codes), reference.hamming_many(q, codes))
    for i in range(len(codes)):
        assert hamming(q, codes[i]) == reference.hamming(q, codes[i])
    for radius in (0, 5, 60, 64, 128):
        got = within_radius(q, codes, radius)
        assert got.dtype == np.int64
        assert np.array_equal(got, reference.within_radius(q, codes, radius))


@given(st.integers(1, 8).flatmap(lambda k: arrays(np.uint64, (k, 2))), codes_strategy)
def test_hamming_many_multi_is_the_plain_matrix(qs, codes):
    got = hamming_many_multi(qs, codes)
    assert got.dtype == np.int32 and got.shape == (len(qs), len(codes))
    assert np.array_equal(got, reference.hamming_many_multi(qs, codes))


def test_large_table_against_numpy_bitwise_count():
    codes = random_codes(100_000, 3)
    q = codes[17].copy()
    d = hamming_many(q, codes)
    assert d.dtype == np.int32 and d[17] == 0
    assert np.array_equal(d, np.bitwise_count(codes ^ q).sum(axis=1))
    r = within_radius(q, codes, 52)
    assert np.array_equal(r, np.flatnonzero(d <= 52))
    assert np.all(np.diff(r) > 0)


def test_read_only_buffers_are_accepted():
    codes = random_codes(50, 4)
    frozen = np.frombuffer(codes.tobytes(), dtype=np.uint64).reshape(50, 2)  # read-only, as from LMDB
    assert not frozen.flags.writeable
    assert np.array_equal(hamming_many(frozen[3], frozen), hamming_many(codes[3], codes))
    assert np.array_equal(within_radius(frozen[3], frozen, 60), within_radius(codes[3], codes, 60))
    assert np.array_equal(hamming_many_multi(frozen[:8], frozen), hamming_many_multi(codes[:8], codes))
    assert hamming(frozen[0], codes[1]) == hamming(codes[0], codes[1])


def test_empty_table():
    empty = np.zeros((0, 2), np.uint64)
    q = np.zeros(2, np.uint64)
    assert hamming_many(q, empty).shape == (0,)
    assert within_radius(q, empty, 10).shape == (0,)
    assert hamming_many_multi(np.zeros((8, 2), np.uint64), empty).shape == (8, 0)
