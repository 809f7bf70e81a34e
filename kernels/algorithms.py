"""The fingerprint algorithms by name, and the two entry points the daemon calls:
`fingerprint(gray, algo)` and `fingerprint_area(area_input, algo)`.

Every algorithm reads its image only through exact area resizes (`dedupd.kernels.area`):
`fingerprint` measures the grey image (numba resize) and hands the `AreaInput` to
`fingerprint_area`, so an `AreaInput` made elsewhere (a decode worker process, numpy
resize) gives the same `Fingerprint` bit for bit.

Every stored fingerprint carries (algo, version): a change to a kernel that alters any
code must bump that algorithm's version so old and new codes are never compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dedupd.kernels import area, classic, lbph
from dedupd.kernels.area import AreaInput, BadAreaInput
from dedupd.kernels.errors import UnknownAlgorithm


@dataclass(frozen=True)
class Algorithm:
    name: str
    version: int
    bits: int  # meaningful bits of the (2,) code: 128 for lbph/lbph1 (bit 63 of word 1 reserved, always 0), 64 for the others
    hash: Callable[[np.ndarray], np.ndarray]  # gray -> (2,) uint64
    variants: Callable[[np.ndarray], np.ndarray] | None  # gray -> (8, 2) uint64, or None if unsupported
    # AreaInput -> ((8, 2) variants, or (1, 2) when unsupported; quality): what `fingerprint_area` runs
    from_area: Callable[[AreaInput], tuple[np.ndarray, float]]

    @property
    def sizes(self) -> tuple[tuple[int, int], ...]:
        """The area resizes `from_area` reads (`area.SIZES`): what a decode worker measures."""
        return area.sizes_for(self.name)


def _phash_area(a: AreaInput) -> tuple[np.ndarray, float]:
    return classic.phash_variants_area(a), lbph.quality_area(a)


def _dhash_area(a: AreaInput) -> tuple[np.ndarray, float]:
    return classic.dhash_area(a).reshape(1, 2), lbph.quality_area(a)


def _ahash_area(a: AreaInput) -> tuple[np.ndarray, float]:
    return classic.ahash_area(a).reshape(1, 2), lbph.quality_area(a)


ALGORITHMS: dict[str, Algorithm] = {
    "lbph": Algorithm("lbph", lbph.LBPH_VERSION, 128, lbph.lbph, lbph.lbph_variants, lbph.lbph_with_variants_area),
    # LBPH version 1, kept for comparisons (benchmarks, `fingerprint(gray, "lbph1")`); not a config choice
    "lbph1": Algorithm("lbph1", lbph.V1.version, 128, lbph.V1.hash, lbph.V1.variants, lbph.V1.with_variants_area),
    "phash": Algorithm("phash", 1, 64, classic.phash, classic.phash_variants, _phash_area),
    "dhash": Algorithm("dhash", 1, 64, classic.dhash, None, _dhash_area),
    "ahash": Algorithm("ahash", 1, 64, classic.ahash, None, _ahash_area),
}


@dataclass(frozen=True)
class Fingerprint:
    algo: str
    version: int
    code: np.ndarray  # (2,) uint64, read-only
    variants: np.ndarray  # (8, 2) uint64 with row 0 == code, read-only; (1, 2) when the algorithm has no variants
    quality: float  # standard deviation of the blurred 64x64 image (lbph.quality); near 0 = flat picture


def get(algo: str) -> Algorithm:
    try:
        return ALGORITHMS[algo]
    except KeyError:
        raise UnknownAlgorithm(f"unknown fingerprint algorithm {algo!r}; known: {', '.join(ALGORITHMS)}") from None


def fingerprint(gray: np.ndarray, algo: str = "lbph") -> Fingerprint:
    """Fingerprint of an upright 2-D uint8 grey image (BadImage if it is not one)."""
    alg = get(algo)
    return fingerprint_area(lbph.measure(gray, *alg.sizes), alg.name)


def fingerprint_area(area_input: AreaInput, algo: str = "lbph") -> Fingerprint:
    """Fingerprint of the upright grey image whose area sums `area_input` holds (see
    `dedupd.kernels.area`); equal to `fingerprint(gray, algo)` bit for bit. MissingAreaSums
    if it lacks a resize `algo` reads (`Algorithm.sizes`)."""
    alg = get(algo)
    if not isinstance(area_input, AreaInput):
        raise BadAreaInput(f"expected an AreaInput, got {type(area_input).__name__}")
    variants, q = alg.from_area(area_input)
    code = variants[0].copy()
    code.flags.writeable = False  # a Fingerprint is a value: its arrays are read-only
    variants.flags.writeable = False
    return Fingerprint(alg.name, alg.version, code, variants, float(q))


def warm() -> None:
    """Compile or load from the numba cache every kernel, on a tiny image (call before reporting ready)."""
    from dedupd.kernels.hamming import hamming, hamming_many, hamming_many_multi, within_radius

    tiny = np.arange(48, dtype=np.uint8).reshape(6, 8)
    for name in ALGORITHMS:
        fp = fingerprint(tiny, name)
        hamming(fp.code, fp.code)
        hamming_many(fp.code, fp.variants)
        within_radius(fp.code, fp.variants, 0)
        hamming_many_multi(fp.variants, fp.variants)
