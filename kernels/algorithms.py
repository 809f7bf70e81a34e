"""The fingerprint algorithms by name, and `fingerprint`, the one entry point the daemon calls.

Every stored fingerprint carries (algo, version): a change to a kernel that alters any
code must bump that algorithm's version so old and new codes are never compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dedupd.kernels import classic, lbph
from dedupd.kernels.errors import UnknownAlgorithm


@dataclass(frozen=True)
class Algorithm:
    name: str
    version: int
    bits: int  # meaningful bits of the (2,) code: 128 for lbph/lbph1 (bit 63 of word 1 reserved, always 0), 64 for the others
    hash: Callable[[np.ndarray], np.ndarray]  # gray -> (2,) uint64
    variants: Callable[[np.ndarray], np.ndarray] | None  # gray -> (8, 2) uint64, or None if unsupported
    # gray -> (variants, quality) in one pass, when the algorithm has one (the LBPH definitions)
    with_variants: Callable[[np.ndarray], tuple[np.ndarray, float]] | None = None


ALGORITHMS: dict[str, Algorithm] = {
    "lbph": Algorithm("lbph", lbph.LBPH_VERSION, 128, lbph.lbph, lbph.lbph_variants, lbph.lbph_with_variants),
    # LBPH version 1, kept for comparisons (benchmarks, `fingerprint(gray, "lbph1")`); not a config choice
    "lbph1": Algorithm("lbph1", lbph.V1.version, 128, lbph.V1.hash, lbph.V1.variants, lbph.V1.with_variants),
    "phash": Algorithm("phash", 1, 64, classic.phash, classic.phash_variants),
    "dhash": Algorithm("dhash", 1, 64, classic.dhash, None),
    "ahash": Algorithm("ahash", 1, 64, classic.ahash, None),
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
    gray = lbph.as_gray(gray)
    if alg.with_variants is not None:  # one pass gives code, variants and quality
        variants, q = alg.with_variants(gray)
    else:
        variants = alg.variants(gray) if alg.variants is not None else alg.hash(gray).reshape(1, 2)
        q = lbph.quality(gray)
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
