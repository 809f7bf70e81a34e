import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dedupd.kernels import reference
from dedupd.kernels.dihedral import DIHEDRAL, INVERSE, apply, coefficient_tables, coefficient_transform

from kernel_images import photo

SQUARE = np.arange(12).reshape(3, 4)  # small and non-square: every op is distinguishable


def test_names_and_order_are_the_published_ones():
    assert DIHEDRAL == ("identity", "rot90", "rot180", "rot270", "flip_h", "flip_v", "transpose", "transverse")


def test_apply_matches_the_written_definitions():
    a = SQUARE
    expected = {
        "identity": a,
        "rot90": np.rot90(a, -1),
        "rot180": a[::-1, ::-1],
        "rot270": np.rot90(a, 1),
        "flip_h": a[:, ::-1],
        "flip_v": a[::-1],
        "transpose": a.T,
        "transverse": a[::-1, ::-1].T,
    }
    for name in DIHEDRAL:
        assert np.array_equal(apply(a, name), expected[name]), name
    # rot90 is clockwise: the top-left pixel goes to the top-right corner
    assert apply(a, "rot90")[0, -1] == a[0, 0]


def test_the_eight_results_are_distinct_and_inverse_table_is_right():
    results = [apply(SQUARE, name) for name in DIHEDRAL]
    assert len({(r.shape, r.tobytes()) for r in map(np.ascontiguousarray, results)}) == 8
    for k, name in enumerate(DIHEDRAL):
        assert np.array_equal(apply(apply(SQUARE, name), DIHEDRAL[INVERSE[k]]), SQUARE), name


def test_unknown_name_is_rejected():
    with pytest.raises(ValueError):
        apply(SQUARE, "rot45")
    with pytest.raises(ValueError):
        coefficient_transform(np.zeros((8, 8)), "mirror")


@pytest.mark.parametrize("name", DIHEDRAL)
def test_coefficient_transform_is_the_dct_of_the_transformed_image(name):
    img = photo("camera")[100:132, 200:232].astype(np.float64)
    full = reference.dct2(img)
    assert np.allclose(coefficient_transform(full, name), reference.dct2(apply(img, name)), atol=1e-9)
    # and on the low-frequency corner alone
    assert np.allclose(coefficient_transform(full[:8, :8], name), reference.dct2(apply(img, name))[:8, :8], atol=1e-9)


@given(arrays(np.float64, (6, 6), elements=st.floats(-300, 300)), st.sampled_from(DIHEDRAL))
def test_coefficient_transform_property(img, name):
    assert np.allclose(coefficient_transform(reference.dct2(img), name), reference.dct2(apply(img, name)), atol=1e-8)


def test_coefficient_tables_agree_with_coefficient_transform():
    perm, sign = coefficient_tables(8)
    block = np.random.default_rng(1).normal(size=(8, 8))
    for k, name in enumerate(DIHEDRAL):
        assert np.array_equal((sign[k] * block.ravel()[perm[k]]).reshape(8, 8), coefficient_transform(block, name))
