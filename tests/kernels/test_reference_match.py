"""The numba kernels against the slow numpy reference: codes bit for bit, coefficients allclose."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dedupd.kernels import _jit, classic, lbph, reference
from dedupd.kernels.dihedral import DIHEDRAL, apply
from dedupd.kernels.lbph import V1, V2, Definition

from kernel_images import photo


def _tile(name, h, w):
    """A real picture cut or tiled to exactly h x w (for the odd sizes)."""
    g = photo(name)
    reps = (-(-h // g.shape[0]), -(-w // g.shape[1]))
    return np.ascontiguousarray(np.tile(g, reps)[:h, :w])


CASES = {
    "camera": lambda: photo("camera"),
    "astronaut": lambda: photo("astronaut"),
    "coffee": lambda: photo("coffee"),
    "chelsea": lambda: photo("chelsea"),
    "rocket": lambda: photo("rocket"),
    "immunohistochemistry": lambda: photo("immunohistochemistry"),
    "1x1": lambda: _tile("camera", 1, 1),
    "3x200": lambda: _tile("coffee", 3, 200),
    "64x64": lambda: np.ascontiguousarray(photo("astronaut")[100:164, 200:264]),
    "513x377": lambda: _tile("rocket", 513, 377),
    "2000x50": lambda: np.ascontiguousarray(_tile("chelsea", 2000, 50)),
    "7x5": lambda: np.ascontiguousarray(photo("camera")[200:207, 300:305]),
}


@pytest.fixture(params=sorted(CASES), scope="module")
def gray(request):
    return CASES[request.param]()


def hexcode(code):
    return "".join(f"{int(w):016x}" for w in code)


def test_area_resize_is_the_reference(gray):
    for h, w in ((64, 64), (32, 32), (8, 9), (8, 8), (5, 130)):
        assert np.array_equal(_jit.area_numerators(gray, h, w), reference.area_sum(gray, h, w))


# (kernel tau in 1/256 grey level, reflect-101 border) -> the reference's (tau in grey levels, border)
LBP_RULES = {(0, False): (0.0, "edge"), (1024, False): (4.0, "edge"), (256, True): (1.0, "reflect"), (3, True): (3 / 256, "reflect")}


@pytest.mark.parametrize("rule", sorted(LBP_RULES))
def test_lbp_code_image_is_the_reference(gray, rule):
    q = _jit._blur_quantize(_jit.area_numerators(gray, 64, 64), gray.size)
    b = reference.blurred(gray)
    assert np.array_equal(q / 256.0, b)
    tau, border = LBP_RULES[rule]
    assert np.array_equal(_jit._lbp_riu2(q, *rule), reference.lbp_riu2(b, tau, border))


def test_lbph_matches_reference(gray):
    """The current version (v2), then version 1, against the reference's own statement of each."""
    blocks, top, q = lbph.lbph_blocks(gray)
    assert np.allclose(blocks, reference.lbph_blocks(gray), rtol=0, atol=1e-6)
    assert hexcode(lbph.lbph(gray)) == hexcode(reference.lbph(gray))
    assert q == pytest.approx(reference.quality(gray), rel=1e-12, abs=1e-9)
    assert lbph.quality(gray) == q
    assert hexcode(V1.hash(gray)) == hexcode(reference.lbph(gray, **reference.V1))


def test_the_shipped_definitions_are_the_references():
    assert (V2.version, V2.tau / 256, V2.margin) == (lbph.LBPH_VERSION, reference.V2["tau"], reference.V2["margin"])
    assert (V1.version, V1.tau / 256, V1.reflect, V1.margin) == (1, reference.V1["tau"], False, reference.V1["margin"])
    assert reference.V1["border"] == "edge"  # with margin 2 (v2) the LBP never reads its border


@pytest.mark.parametrize("name", ["coffee", "513x377", "7x5"])
def test_other_definitions_match_reference(name):
    """The knobs the benchmark explores (reflect border, odd margins) are exact too."""
    g = CASES[name]()
    for d, ref in ((Definition(0, 384, reflect=True, margin=1), {"tau": 1.5, "border": "reflect", "margin": 1}),
                   (Definition(0, 1, margin=5), {"tau": 1 / 256, "border": "edge", "margin": 5})):
        assert np.allclose(d.blocks(g)[0], reference.lbph_blocks(g, **ref), rtol=0, atol=1e-6)
        assert hexcode(d.hash(g)) == hexcode(reference.lbph(g, **ref))


@pytest.mark.parametrize("tau", [0, 1, 256, 1024])
def test_tolerance_ties_are_decided_exactly(tau):
    """Neighbour - centre exactly at the tolerance (axis: d = tau; diagonal: d1 = -d2 and dd = 2 tau,
    where the bilinear sample is exactly centre + tau) counts as set, one step below does not."""
    rng = np.random.default_rng(tau)
    steps = np.array([-2 * tau - 1, -tau, -1, 0, 1, tau - 1, tau, tau + 1, 2 * tau - 1, 2 * tau, 2 * tau + 1])
    for _ in range(20):
        q = np.ascontiguousarray(30000 + rng.choice(steps, size=(9, 11)).astype(np.int64))
        expected = reference.lbp_riu2(q / 256.0, tau / 256, "edge")
        assert np.array_equal(_jit._lbp_riu2(q, tau, False), expected)
    # the diagonal tie on its own: N = +a, E = -a, NE = c + 2 tau -> the NE sample is exactly c + tau
    q = np.full((3, 3), 20000, np.int64)
    q[0, 1], q[1, 2], q[0, 2] = 20000 + 700, 20000 - 700, 20000 + 2 * tau
    bits_set = _jit._lbp_riu2(q, tau, False)[1, 1]
    q[0, 2] -= 1
    assert bits_set != _jit._lbp_riu2(q, tau, False)[1, 1]
    assert np.array_equal(_jit._lbp_riu2(q, tau, False), reference.lbp_riu2(q / 256.0, tau / 256, "edge"))


def test_classic_hashes_match_reference(gray):
    assert np.allclose(classic.phash_block(gray), reference.phash_block(gray), rtol=0, atol=1e-6)
    assert hexcode(classic.phash(gray)) == hexcode(reference.phash(gray))
    assert hexcode(classic.dhash(gray)) == hexcode(reference.dhash(gray))
    assert hexcode(classic.ahash(gray)) == hexcode(reference.ahash(gray))


@pytest.mark.parametrize("name", ["camera", "coffee", "3x200", "513x377", "7x5"])
def test_variants_match_brute_force_reference(name):
    g = CASES[name]()
    assert np.array_equal(lbph.lbph_variants(g), reference.lbph_variants(g))
    assert np.array_equal(classic.phash_variants(g), reference.phash_variants(g))


@pytest.mark.parametrize("name", sorted(CASES))
def test_variants_equal_hash_of_transformed_image(name):
    """Row k == hash(apply(gray, k)) exactly, for square and non-square inputs (v2, v1 and pHash)."""
    g = CASES[name]()
    lv, pv, v1v = lbph.lbph_variants(g), classic.phash_variants(g), V1.variants(g)
    assert np.array_equal(lv[0], lbph.lbph(g)) and np.array_equal(pv[0], classic.phash(g))
    assert np.array_equal(v1v[0], V1.hash(g))
    for k, op in enumerate(DIHEDRAL):
        moved = apply(g, op)
        assert hexcode(lv[k]) == hexcode(lbph.lbph(moved)), op
        assert hexcode(pv[k]) == hexcode(classic.phash(moved)), op
        assert hexcode(v1v[k]) == hexcode(V1.hash(moved)), op
        assert lbph.quality(moved) == pytest.approx(lbph.quality(g), abs=1e-9)


def test_reference_dct_is_scipy_dct():
    fft = pytest.importorskip("scipy.fft")
    img = photo("camera")[:32, :32].astype(np.float64)
    assert np.allclose(reference.dct2(img), fft.dctn(img, type=2, norm="ortho"), atol=1e-9)


def test_flat_images_hash_to_zero_texture_and_known_brightness():
    for value in (0, 127, 128, 255):
        g = np.full((40, 70), value, np.uint8)
        code = lbph.lbph(g)
        assert int(code[1]) == 0 and int(code[0]) & ((1 << 63) - 1) == 0  # every AC coefficient is exactly 0
        assert int(code[0]) >> 63 == (value >= 128)
        assert lbph.quality(g) == 0.0
        assert np.array_equal(lbph.lbph_variants(g), np.tile(code, (8, 1)))
        assert np.array_equal(code, reference.lbph(g))


@settings(max_examples=40)
@given(
    st.tuples(st.integers(1, 24), st.integers(1, 24)).flatmap(
        lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 255))
    )
)
def test_random_small_arrays_match_reference(gray):
    assert hexcode(lbph.lbph(gray)) == hexcode(reference.lbph(gray))
    assert hexcode(V1.hash(gray)) == hexcode(reference.lbph(gray, **reference.V1))
    assert hexcode(classic.phash(gray)) == hexcode(reference.phash(gray))
    assert hexcode(classic.dhash(gray)) == hexcode(reference.dhash(gray))
    assert hexcode(classic.ahash(gray)) == hexcode(reference.ahash(gray))
    assert lbph.quality(gray) == pytest.approx(reference.quality(gray), rel=1e-12, abs=1e-9)


@settings(max_examples=25)
@given(
    st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
        lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 255))
    ),
    st.sampled_from(range(8)),
)
def test_random_small_arrays_variants(gray, k):
    assert hexcode(lbph.lbph_variants(gray)[k]) == hexcode(lbph.lbph(apply(gray, DIHEDRAL[k])))
    assert hexcode(V1.variants(gray)[k]) == hexcode(V1.hash(apply(gray, DIHEDRAL[k])))
    assert hexcode(classic.phash_variants(gray)[k]) == hexcode(classic.phash(apply(gray, DIHEDRAL[k])))
