"""The eight rotations and mirrors of a square (the dihedral group D4).

`apply` is the numpy reference of each operation on a 2-D array. `coefficient_transform`
does the same to an NxN DCT-II coefficient block C[u, v] (u = vertical/row frequency,
v = horizontal/column frequency): a horizontal mirror multiplies C[u, v] by (-1)^v, a
vertical mirror by (-1)^u, a transpose swaps u and v. Every element of the group is
"transpose first (or not), then mirror vertically and/or horizontally", so a hash that
thresholds DCT coefficients gets the hashes of all eight variants of a picture from one
DCT (PDQ does the same).

The index of a name in `DIHEDRAL` is the `variant` number stored on edges: variant k of
picture A is `apply(A, DIHEDRAL[k])`.
"""

from __future__ import annotations

import numpy as np

DIHEDRAL: tuple[str, ...] = ("identity", "rot90", "rot180", "rot270", "flip_h", "flip_v", "transpose", "transverse")

# name -> (transpose, flip_v, flip_h): apply(X, name) == flips(transpose(X) if transpose else X)
_STEPS: dict[str, tuple[bool, bool, bool]] = {
    "identity": (False, False, False),
    "rot90": (True, False, True),  # clockwise: new[y, x] = old[N-1-x, y]
    "rot180": (False, True, True),
    "rot270": (True, True, False),  # counter-clockwise
    "flip_h": (False, False, True),
    "flip_v": (False, True, False),
    "transpose": (True, False, False),
    "transverse": (True, True, True),  # mirror about the anti-diagonal
}

# inverse element of each variant, by index: rot90 and rot270 undo each other, the rest are involutions
INVERSE: tuple[int, ...] = (0, 3, 2, 1, 4, 5, 6, 7)


def _check(name: str) -> None:
    if name not in _STEPS:
        raise ValueError(f"unknown dihedral operation {name!r}; expected one of {', '.join(DIHEDRAL)}")


def apply(img: np.ndarray, name: str) -> np.ndarray:
    """The picture `img` (2-D) rotated or mirrored by `name`; a view where numpy allows it."""
    _check(name)
    if name == "identity":
        return img
    if name == "rot90":
        return np.rot90(img, -1)
    if name == "rot180":
        return np.rot90(img, 2)
    if name == "rot270":
        return np.rot90(img, 1)
    if name == "flip_h":
        return img[:, ::-1]
    if name == "flip_v":
        return img[::-1]
    if name == "transpose":
        return img.T
    return np.rot90(img, 2).T  # transverse


def coefficient_transform(block: np.ndarray, name: str) -> np.ndarray:
    """DCT-II block of `apply(X, name)` given the DCT-II block `block` of X (exact: signs and a transpose).

    Works on the low-frequency corner C[0:k, 0:k] of a larger DCT too, because the sign of
    coefficient (u, v) under a mirror depends only on u and v, not on the image size.
    """
    _check(name)
    transpose, flip_v, flip_h = _STEPS[name]
    out = np.array(block.T if transpose else block, dtype=np.float64)
    if flip_v:
        out[1::2, :] *= -1.0
    if flip_h:
        out[:, 1::2] *= -1.0
    return out


def coefficient_tables(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(perm, sign), each (8, n*n): row k of the flattened transformed block is sign[k] * flat[perm[k]].

    Derived from `coefficient_transform` (so there is one definition of the group) for the
    numba kernels, which apply all eight variants in one call.
    """
    labels = np.arange(1, n * n + 1, dtype=np.float64).reshape(n, n)  # 1-based so the sign survives
    perm = np.empty((len(DIHEDRAL), n * n), dtype=np.int64)
    sign = np.empty((len(DIHEDRAL), n * n), dtype=np.float64)
    for k, name in enumerate(DIHEDRAL):
        moved = coefficient_transform(labels, name).ravel()
        perm[k] = np.abs(moved).astype(np.int64) - 1
        sign[k] = np.sign(moved)
    return perm, sign
