"""Pinned fingerprints. A failure here means stored codes would change: bump the algorithm's
version (and say why) instead of editing these values.

hex = f"{word0:016x}{word1:016x}". "lbph" is LBPH version 2 (its word 0 is version 1's, word 1
changed); "lbph1" is version 1 with the values pinned when v1 was the default. The photo
checksums tell a changed test picture (a new scikit-image or a changed grey formula) apart
from a changed kernel.
"""

import hashlib

import numpy as np
import pytest

from dedupd.kernels import ALGORITHMS, fingerprint

from kernel_images import photo

VERSIONS = {"lbph": 2, "lbph1": 1, "phash": 1, "dhash": 1, "ahash": 1}

PHOTO_SHA256_PREFIX = {
    "camera": "5cb24482a53416f9",
    "astronaut": "7e0f16d04383c5bc",
    "coffee": "f43ff5f6e89892ad",
    "rocket": "a085ff3db7e5c7be",
}

GOLDEN = {
    "camera": {
        "lbph": "9e98b96101c1c7fe0f67e61e67033849",
        "lbph1": "9e98b96101c1c7fe7966c6ce86b89328",
        "phash": "3d3172c203838ffd0000000000000000",
        "dhash": "57362e77fe7c18000000000000000000",
        "ahash": "f8f8f8e0e0f1f3ff0000000000000000",
    },
    "astronaut": {
        "lbph": "09fddea6551924a13c1702d8ac7a5e59",
        "lbph1": "09fddea6551924a16e02b157aa85dd2a",
        "phash": "13fbbd4caa3249430000000000000000",
        "dhash": "65a94cb9b0bdb1bb0000000000000000",
        "ahash": "06051f22e3faeefe0000000000000000",
    },
    "coffee": {
        "lbph": "7636781b760260ee19b9f65949163865",
        "lbph1": "7636781b760260ee089985a09c7a977f",
        "phash": "ec6cf036ec04c1dd0000000000000000",
        "dhash": "6cf0d478ccda9fcf0000000000000000",
        "ahash": "c30181c1ddfcfefc0000000000000000",
    },
    "rocket": {
        "lbph": "732453ec1bec76016b148e00fb00f67f",
        "lbph1": "732453ec1bec76013cabe8e1b6418d2a",
        "phash": "e648a7d837d8ec030000000000000000",
        "dhash": "8b0909090b0303070000000000000000",
        "ahash": "3e3f3f1f1e0400000000000000000000",
    },
}

# a formula-made picture: pins the kernels even if the test photos were to change
SYNTHETIC = {
    "lbph": "00005a75b5d4dfed0255b53beeb20ad8",
    "lbph1": "00005a75b5d4dfed27493d4b8d2f9928",
    "phash": "0000b4e36bb9bfdb0000000000000000",
    "dhash": "ac6a99ba59da2c2d0000000000000000",
    "ahash": "c9aa55b44360935c0000000000000000",
}


def hexcode(code):
    return "".join(f"{int(w):016x}" for w in code)


def synthetic():
    y, x = np.mgrid[0:300, 0:451]
    return ((x * 7 + y * 3 + (x * y) // 50) % 256).astype(np.uint8)


def test_versions_are_pinned_too():
    assert {name: alg.version for name, alg in ALGORITHMS.items()} == VERSIONS


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_photo_is_unchanged(name):
    assert hashlib.sha256(photo(name).tobytes()).hexdigest()[:16] == PHOTO_SHA256_PREFIX[name]


@pytest.mark.parametrize("name", sorted(GOLDEN))
@pytest.mark.parametrize("algo", sorted(VERSIONS))
def test_golden_photo(name, algo):
    assert hexcode(fingerprint(photo(name), algo).code) == GOLDEN[name][algo]


@pytest.mark.parametrize("algo", sorted(VERSIONS))
def test_golden_synthetic(algo):
    assert hexcode(fingerprint(synthetic(), algo).code) == SYNTHETIC[algo]
