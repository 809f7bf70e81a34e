"""The public surface other packages build on: registry, Fingerprint, errors, warm, speed."""

import time

import numpy as np
import pytest

import dedupd.kernels as kernels
from dedupd.kernels import ALGORITHMS, DIHEDRAL, Fingerprint, fingerprint, warm
from dedupd.kernels.errors import BadImage, DedupdError, UnknownAlgorithm
from dedupd.kernels.lbph import LBPH_VERSION, V1, lbph, lbph_variants, quality

from kernel_images import photo, scaled


def test_exports():
    for name in ("fingerprint", "Fingerprint", "ALGORITHMS", "DIHEDRAL", "hamming", "hamming_many", "within_radius", "warm"):
        assert hasattr(kernels, name), name


def test_registry():
    assert set(ALGORITHMS) == {"lbph", "lbph1", "phash", "dhash", "ahash"}
    assert ALGORITHMS["lbph"].bits == 128 and ALGORITHMS["lbph"].version == LBPH_VERSION == 2
    assert ALGORITHMS["lbph1"].bits == 128 and ALGORITHMS["lbph1"].version == 1  # v1, kept for comparisons
    for name in ("phash", "dhash", "ahash"):
        assert ALGORITHMS[name].bits == 64
    for name in ("lbph", "lbph1", "phash"):
        assert ALGORITHMS[name].variants is not None
    assert ALGORITHMS["dhash"].variants is None and ALGORITHMS["ahash"].variants is None
    assert all(alg.name == key for key, alg in ALGORITHMS.items())


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_fingerprint_shapes_and_consistency(algo):
    g = photo("coffee")
    fp = fingerprint(g, algo)
    assert isinstance(fp, Fingerprint)
    assert (fp.algo, fp.version) == (algo, ALGORITHMS[algo].version)
    assert fp.code.shape == (2,) and fp.code.dtype == np.uint64
    assert fp.variants.dtype == np.uint64
    assert fp.variants.shape == ((len(DIHEDRAL), 2) if ALGORITHMS[algo].variants else (1, 2))
    assert np.array_equal(fp.variants[0], fp.code)
    assert np.array_equal(fp.code, ALGORITHMS[algo].hash(g))
    if ALGORITHMS[algo].bits == 64:
        assert fp.code[1] == 0
    else:
        assert int(fp.code[1]) >> 63 == 0  # reserved bit
    assert isinstance(fp.quality, float) and fp.quality == pytest.approx(quality(g))
    assert not fp.code.flags.writeable and not fp.variants.flags.writeable


def test_lbph_fingerprint_is_the_module_functions():
    g = photo("rocket")
    fp = fingerprint(g)
    assert (fp.algo, fp.version) == ("lbph", 2)
    assert np.array_equal(fp.code, lbph(g)) and np.array_equal(fp.variants, lbph_variants(g))
    fp1 = fingerprint(g, "lbph1")
    assert (fp1.algo, fp1.version) == ("lbph1", 1)
    assert np.array_equal(fp1.variants, V1.variants(g)) and fp1.quality == fp.quality
    assert np.array_equal(fp1.code[:1], fp.code[:1])  # word 0 is the same in both versions
    assert not np.array_equal(fp1.code, fp.code)


def test_unknown_algorithm():
    with pytest.raises(UnknownAlgorithm) as info:
        fingerprint(photo("camera"), "md5")
    assert isinstance(info.value, KeyError) and isinstance(info.value, DedupdError)
    assert "md5" in str(info.value) and "lbph" in str(info.value)


@pytest.mark.parametrize(
    "bad", [np.zeros((0, 5), np.uint8), np.zeros((4, 4), np.float64), np.zeros((4, 4, 3), np.uint8), np.zeros(9, np.uint8)]
)
def test_bad_images_are_rejected(bad):
    with pytest.raises(BadImage):
        fingerprint(bad)
    with pytest.raises(BadImage):
        lbph(bad)


def test_layouts_do_not_matter():
    g = photo("astronaut")
    strided = g[::-1, ::2]
    assert np.array_equal(fingerprint(strided).variants, fingerprint(np.ascontiguousarray(strided)).variants)
    frozen = np.frombuffer(g.tobytes(), np.uint8).reshape(g.shape)
    assert not frozen.flags.writeable
    for algo in ALGORITHMS:
        assert np.array_equal(fingerprint(frozen, algo).code, fingerprint(np.array(g), algo).code)


def test_flat_image_has_zero_quality():
    assert fingerprint(np.full((50, 80), 200, np.uint8)).quality == 0.0
    assert fingerprint(photo("camera")).quality > 30


def test_warm_runs():
    warm()


def test_fingerprint_speed_500x375():
    """Well under 1 ms on the dev box (~0.14 ms); the bound is loose so a busy CI host does not flake."""
    g = scaled(photo("coffee"), 500 / 600)  # 500 x 333, like a 1/8 reduced JPEG decode
    g = np.ascontiguousarray(np.vstack([g, g[:42]]))  # 500 wide x 375 high
    assert g.shape == (375, 500)
    fingerprint(g)
    best = min(_time(lambda: fingerprint(g), 50) for _ in range(5))
    print(f"\nlbph fingerprint of 500x375: {best * 1e3:.3f} ms")
    assert best < 2e-3


def _time(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def test_every_kernel_is_nogil_cached_and_compiled_once():
    import sys

    from dedupd.kernels import _jit

    hm = sys.modules["dedupd.kernels.hamming"]  # the package attribute `hamming` is the function
    kernels_ = [_jit.area_numerators, _jit.lbph_blocks_area, _jit.pack_variants, _jit.phash_block_area, _jit.dhash_code_area,
                _jit.ahash_code_area]
    kernels_ += [hm.hamming, hm.hamming_many, hm.within_radius, hm.hamming_many_multi]
    for k in kernels_:
        assert k.targetoptions.get("nogil") is True, k.__name__
        assert not k.targetoptions.get("fastmath"), k.__name__
        assert k._cache.__class__.__name__ == "FunctionCache", k.__name__
        assert len(k.signatures) == 1, k.__name__  # explicit signature, no silent recompiles
