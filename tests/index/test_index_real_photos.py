"""Range search over LBPH codes of real photos and their copies, as the daemon queries it:
the 8 dihedral variants of a file at the act and report radii, in both implementations and
every search mode, against brute force. Filler codes around the real ones crowd the buckets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dedupd.index import FileRecord
from dedupd.index.hamming import hamming_many_numpy
from dedupd.kernels import fingerprint
from testimages import PHOTOS, encode, photo

ACT, REPORT = 16, 28


def variants_of(bgr: np.ndarray) -> np.ndarray:
    return np.array(fingerprint(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), "lbph").variants, dtype=np.uint64)


def copies(img: np.ndarray) -> list[np.ndarray]:
    h, w = img.shape[:2]
    return [cv2.imdecode(np.frombuffer(encode(img, ".jpg", 40), np.uint8), cv2.IMREAD_COLOR),
            cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
            np.ascontiguousarray(np.rot90(img)),
            np.ascontiguousarray(img[h // 40: h - h // 40, w // 40: w - w // 40])]


@pytest.fixture(scope="module")
def codes():
    """(stored codes, query variants): originals and copies stored, each copy also a query."""
    rng = np.random.default_rng(2)
    stored, queries = [], []
    for name in PHOTOS:
        img = photo(name)
        stored.append(variants_of(img)[0])
        for copy in copies(img):
            v = variants_of(copy)
            stored.append(v[0])
            queries.append(v)
    real = np.array(stored)
    filler = real[rng.integers(0, len(real), 6000)].copy()
    flips = rng.integers(0, 2**64, filler.shape, dtype=np.uint64) & rng.integers(0, 2**64, filler.shape, dtype=np.uint64)
    filler ^= flips & rng.integers(0, 2**64, filler.shape, dtype=np.uint64)  # ~1/8 of the bits flipped
    filler[:, 1] &= np.uint64(2**63 - 1)  # LBPH's reserved bit 127 stays 0
    return np.concatenate([real, filler]), queries


def test_variant_queries_equal_brute_force_in_every_mode(make_index, codes):
    stored, queries = codes
    ix = make_index()
    recs = ix.put_many(FileRecord(0, f"/photos/{i}.jpg", 1, i, 1, 0, 0, code=(int(a), int(b)), algo="lbph", algo_version=1)
                       for i, (a, b) in enumerate(stored))
    ids = np.array([r.file_id for r in recs])
    for q in queries:
        for radius in (ACT, REPORT):
            expect = []
            for v in q:
                d = hamming_many_numpy(v, stored)
                hit = np.flatnonzero(d <= radius)
                expect.append(sorted(zip(ids[hit].tolist(), d[hit].tolist()), key=lambda t: (t[1], t[0])))
            for mode in ("auto", "scan", "mih"):
                ix.search_mode = mode
                assert ix.range_search_many(q, radius) == expect


def test_copies_are_found_through_their_variants(make_index, codes):
    stored, queries = codes
    ix = make_index()
    ix.put_many(FileRecord(0, f"/p/{i}", 1, i, 1, 0, 0, code=(int(a), int(b)), algo="lbph", algo_version=1)
                for i, (a, b) in enumerate(stored[: len(PHOTOS) * 5]))
    originals = {1 + 5 * k for k in range(len(PHOTOS))}  # ids of the originals: every fifth record
    for k, q in enumerate(queries):
        hits = {i for per_variant in ix.range_search_many(q, REPORT) for i, _ in per_variant}
        assert 1 + 5 * (k // 4) in hits & originals, f"copy {k % 4} of {PHOTOS[k // 4]} misses its original"
