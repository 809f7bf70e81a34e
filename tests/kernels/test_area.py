"""`dedupd.kernels.area`: the numpy area resize against the numba kernel and the Fraction
reference, the `AreaInput` value, and `fingerprint_area` against `fingerprint`."""

import pickle
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dedupd.kernels import ALGORITHMS, _jit, area, fingerprint, fingerprint_area, reference
from dedupd.kernels.area import (AreaInput, BadAreaInput, MissingAreaSums, area_input, area_input_for, area_numerators,
                                 integral_numerators)
from dedupd.kernels.errors import BadImage, UnknownAlgorithm

from kernel_images import MAIN, photo

# shapes the property tests draw from: thin (1xN, Nx1), tiny, and sizes no output divides
side = st.one_of(st.integers(1, 9), st.integers(10, 300), st.sampled_from([63, 64, 65, 127, 129, 513]))
images = st.tuples(side, side).flatmap(lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 255)))
out_side = st.one_of(st.integers(1, 70), st.sampled_from([8, 9, 32, 64]))


def fields(fp):
    return (fp.algo, fp.version, fp.code.tobytes(), fp.variants.tobytes(), fp.variants.shape, fp.quality)


@settings(max_examples=150)
@given(images, out_side, out_side)
def test_numpy_resize_is_the_numba_kernel(gray, h, w):
    assert np.array_equal(area_numerators(gray, h, w), _jit.area_numerators(gray, h, w))


@settings(max_examples=60)
@given(images.filter(lambda g: g.size <= 20_000), out_side, out_side)
def test_numpy_resize_is_the_reference(gray, h, w):
    expected = reference.area_sum(gray, h, w)
    got = area_numerators(gray, h, w)
    assert got.dtype == np.int64 and np.array_equal(got, expected)


@settings(max_examples=60)
@given(st.tuples(st.integers(1, 30), st.integers(1, 30)).flatmap(lambda shape: arrays(np.uint8, shape)),
       out_side, out_side, st.integers(1, 40), st.integers(1, 7))
def test_tiles_add_up_exactly(gray, h, w, tile, columns):
    """Tiny tiles (down to one pixel) cut every output cell across tiles: the shares still add up."""
    saved = area.TILE_ELEMENTS, area.TILE_COLUMNS
    area.TILE_ELEMENTS, area.TILE_COLUMNS = tile, columns
    try:
        assert np.array_equal(area_numerators(gray, h, w), _jit.area_numerators(gray, h, w))
    finally:
        area.TILE_ELEMENTS, area.TILE_COLUMNS = saved


@pytest.mark.parametrize("shape", [(1, 1), (1, 100_003), (100_003, 1), (2, 70_001), (7, 5), (4096, 4096)])
def test_thin_tiny_and_large_shapes(shape):
    rng = np.random.default_rng(sum(shape))
    gray = rng.integers(0, 256, shape, dtype=np.uint8)
    for h, w in area.SIZES["phash"] + area.SIZES["dhash"] + ((1, 1), (70, 3)):
        assert np.array_equal(area_numerators(gray, h, w), _jit.area_numerators(gray, h, w)), (h, w)


def test_a_large_image_is_resized_in_bounded_memory():
    """A 6000x6000 picture (36 MB of grey) is resized in tiles: a few MB of temporaries (~2 MB
    measured), where one untiled pass would copy the whole image (36 MB) or widen it to int64 (288 MB)."""
    gray = np.add.outer(np.arange(6000, dtype=np.uint16), np.arange(6000, dtype=np.uint16)).astype(np.uint8)
    tracemalloc.start()
    try:
        got = area_numerators(gray, 64, 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 << 20, f"{peak / 2**20:.0f} MiB"
    assert np.array_equal(got, _jit.area_numerators(gray, 64, 64))


def summed_area(gray: np.ndarray, dtype=np.int64) -> np.ndarray:
    """The (H+1, W+1) summed-area table by brute force (cumulative sums, zero first row and column)."""
    table = np.zeros((gray.shape[0] + 1, gray.shape[1] + 1), dtype)
    table[1:, 1:] = gray.astype(np.int64).cumsum(axis=0).cumsum(axis=1)
    return table


@settings(max_examples=150)
@given(images, out_side, out_side, st.sampled_from([np.int32, np.int64, np.uint32]))
def test_resize_from_the_summed_area_table_is_the_numba_kernel(gray, h, w, dtype):
    got = integral_numerators(summed_area(gray, dtype), h, w)
    assert got.dtype == np.int64 and np.array_equal(got, _jit.area_numerators(gray, h, w))


@settings(max_examples=60)
@given(images.filter(lambda g: g.size <= 20_000), out_side, out_side)
def test_resize_from_the_summed_area_table_is_the_reference(gray, h, w):
    assert np.array_equal(integral_numerators(summed_area(gray), h, w), reference.area_sum(gray, h, w))


@pytest.mark.parametrize("shape", [(1, 1), (1, 100_003), (100_003, 1), (2, 70_001), (7, 5), (2048, 4096)])
def test_resize_from_the_summed_area_table_on_thin_tiny_and_large_shapes(shape):
    rng = np.random.default_rng(sum(shape))
    gray = rng.integers(0, 256, shape, dtype=np.uint8)
    table = summed_area(gray)
    for h, w in area.SIZES["phash"] + area.SIZES["dhash"] + ((1, 1), (70, 3)):
        assert np.array_equal(integral_numerators(table, h, w), _jit.area_numerators(gray, h, w)), (h, w)


def test_a_white_picture_at_the_int32_table_limit_is_exact():
    """The largest table the decode workers build in int32 (255 * pixels < 2**31), all white:
    every entry and every corner integral at its maximum."""
    gray = np.full((2898, 2905), 255, np.uint8)  # 8,418,690 pixels: 255 * that = 2,146,765,950 < 2**31
    table = summed_area(gray, np.int64)
    assert 2**31 - 255 * 2905 < table.max() < 2**31  # one more row would not fit
    got = integral_numerators(table.astype(np.int32), 64, 64)
    assert np.array_equal(got, np.full((64, 64), 255 * gray.size, np.int64))


def test_resize_from_the_summed_area_table_checks_its_arguments():
    with pytest.raises(BadAreaInput):
        integral_numerators(np.zeros((3, 3), np.float64), 8, 8)  # not an exact integer table
    with pytest.raises(BadAreaInput):
        integral_numerators(np.zeros((1, 3), np.int64), 8, 8)  # no pixel row
    with pytest.raises(ValueError):
        integral_numerators(np.zeros((3, 3), np.int64), 0, 8)
    with pytest.raises(ValueError, match="int64"):
        huge = np.broadcast_to(np.zeros(1, np.int64), ((1 << 16) + 1, (1 << 16) + 1))  # 2**32 pixels, no memory
        integral_numerators(huge, 1 << 12, 1 << 12)  # 255 * 2**32 * 2**24 would wrap around


def test_resize_checks_its_arguments():
    with pytest.raises(BadImage):
        area_numerators(np.zeros((3, 3), np.float32), 8, 8)
    with pytest.raises(BadImage):
        area_numerators(np.zeros((0, 3), np.uint8), 8, 8)
    with pytest.raises(ValueError):
        area_numerators(np.zeros((3, 3), np.uint8), 0, 8)


# -- AreaInput ---------------------------------------------------------------------------


def test_area_input_is_a_read_only_value_that_survives_pickle():
    g = photo("coffee")
    a = area_input_for(g, "phash")
    assert a.shape == g.shape and a.denominator == g.size and set(a.sums) == {(64, 64), (32, 32)}
    assert a.nbytes == (64 * 64 + 32 * 32) * 8
    for size, n in a.sums.items():
        assert not n.flags.writeable and np.array_equal(n, _jit.area_numerators(g, *size))
    with pytest.raises(TypeError):
        a.sums[(8, 8)] = _jit.area_numerators(g, 8, 8)  # the mapping is read-only too
    b = pickle.loads(pickle.dumps(a))
    assert b.shape == a.shape and all(np.array_equal(b.sums[s], a.sums[s]) for s in a.sums)
    assert not b.numerators((64, 64)).flags.writeable  # rebuilt through __init__: checked and read-only again
    mine = _jit.area_numerators(g, 64, 64)
    c = AreaInput(g.shape, {(64, 64): mine})
    mine[0, 0] += 1  # the caller's array is copied, not kept
    assert c.numerators((64, 64))[0, 0] == mine[0, 0] - 1


def test_sums_travel_as_int32_exactly_when_255_hw_fits():
    """Pickled, the sums of a picture with 255*H*W < 2**31 are int32 (half the bytes through a
    decode worker's pipe) and come back as the same int64 values; above, they stay int64."""
    g = photo("coffee")
    a = area_input_for(g, "phash")
    blob = pickle.dumps(a, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(blob) < (64 * 64 + 32 * 32) * 4 + 1000
    b = pickle.loads(blob)
    assert all(b.sums[s].dtype == np.int64 and np.array_equal(b.sums[s], a.sums[s]) for s in a.sums)
    assert AreaInput(g.shape, {s: n.astype(np.int32) for s, n in a.sums.items()}).sums[(64, 64)].dtype == np.int64

    # the largest pictures whose sums fit int32 (all white: every value 255*H*W), and the first ones that do not
    for shape in [(2898, 2905), (2899, 2905), (1 << 16, 1 << 16)]:
        full = AreaInput(shape, {(64, 64): np.full((64, 64), 255 * shape[0] * shape[1], np.int64)})
        narrow = 255 * shape[0] * shape[1] < 2**31
        sent = full.__reduce__()[1][1][(64, 64)]
        assert sent.dtype == (np.int32 if narrow else np.int64), shape
        back = pickle.loads(pickle.dumps(full))
        assert np.array_equal(back.sums[(64, 64)], full.sums[(64, 64)]) and int(back.sums[(64, 64)][0, 0]) == 255 * shape[0] * shape[1]


@settings(max_examples=60)
@given(images, st.sampled_from(sorted(ALGORITHMS)))
def test_pickled_area_inputs_fingerprint_as_the_image(gray, algo):
    back = pickle.loads(pickle.dumps(area_input_for(gray, algo)))
    assert fields(fingerprint_area(back, algo)) == fields(fingerprint(gray, algo))


def test_missing_sizes_and_unknown_algorithms_are_typed_errors():
    a = area_input_for(photo("camera"), "lbph")
    with pytest.raises(MissingAreaSums, match="64x64.*not 8x9"):
        fingerprint_area(a, "dhash")
    with pytest.raises(UnknownAlgorithm):
        area_input_for(photo("camera"), "md5")
    with pytest.raises(UnknownAlgorithm):
        fingerprint_area(a, "md5")
    with pytest.raises(BadAreaInput):
        fingerprint_area(photo("camera"), "lbph")  # an image is not an AreaInput


def test_inconsistent_area_inputs_are_refused():
    g = photo("camera")
    n64, n8 = _jit.area_numerators(g, 64, 64), _jit.area_numerators(g, 8, 8)
    bad = {
        "no sums": (g.shape, {}),
        "bad shape": ((0, 5), {(64, 64): n64}),
        "wrong dtype": (g.shape, {(64, 64): n64.astype(np.float64)}),
        "narrow dtype": (g.shape, {(64, 64): n64.astype(np.int16)}),
        "wrong size": (g.shape, {(32, 32): n64}),
        "negative": (g.shape, {(64, 64): -n64}),
        "too bright": ((2, 2), {(64, 64): n64}),
        "not a whole total": (g.shape, {(64, 64): n64 + np.eye(64, dtype=np.int64)}),
        "totals disagree": (g.shape, {(64, 64): n64, (8, 8): n8 + 64}),
    }
    for name, (shape, sums) in bad.items():
        with pytest.raises(BadAreaInput):
            AreaInput(shape, sums)
            pytest.fail(name)


def test_every_algorithm_has_its_sizes():
    assert set(area.SIZES) == set(ALGORITHMS)
    for name, alg in ALGORITHMS.items():
        assert alg.sizes == area.SIZES[name] and area.LBPH_SIZE in alg.sizes  # quality reads 64x64


def test_area_module_does_not_load_numba():
    """The decode workers import it with the package's __init__ (the numba kernels) skipped."""
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.find_spec('dedupd.kernels')\n"
        "sys.modules['dedupd.kernels'] = importlib.util.module_from_spec(spec)\n"
        "from dedupd.kernels.area import area_input_for\n"
        "import numpy as np\n"
        "area_input_for(np.zeros((5, 7), np.uint8), 'phash')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('numba', 'llvmlite'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- fingerprint_area == fingerprint ----------------------------------------------------------


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
@pytest.mark.parametrize("name", MAIN)
def test_fingerprint_area_is_fingerprint_on_photos(name, algo):
    g = photo(name)
    assert fields(fingerprint_area(area_input_for(g, algo), algo)) == fields(fingerprint(g, algo))


@settings(max_examples=60)
@given(images, st.sampled_from(sorted(ALGORITHMS)))
def test_fingerprint_area_is_fingerprint(gray, algo):
    via_numpy = fingerprint_area(area_input_for(gray, algo), algo)
    assert fields(via_numpy) == fields(fingerprint(gray, algo))
    assert not via_numpy.code.flags.writeable and not via_numpy.variants.flags.writeable


def test_extra_sizes_do_not_matter():
    g = photo("rocket")
    every = area_input(g, {s for sizes in area.SIZES.values() for s in sizes})
    for algo in ALGORITHMS:
        assert fields(fingerprint_area(every, algo)) == fields(fingerprint(g, algo))
