"""Report-only: the same edits and pairs for pHash, dHash and aHash (run with -s to see the tables).

They are comparison algorithms; only gross breakage is asserted. Observed on the 17 pictures
(max distance of 64 bits): pHash jpeg40 2, jpeg75 0, scale 0, brightness 2, distinct min 20;
dHash 2 / 1 / 1 / 2, distinct min 13; aHash 2 / 1 / 0 / 1, distinct min 11.
"""

import itertools

import numpy as np
import pytest

from dedupd.kernels import DIHEDRAL, fingerprint, hamming
from dedupd.kernels.classic import phash
from dedupd.kernels.dihedral import apply

from kernel_images import EDITS, MAIN, PHOTOS, jpeg, photo


@pytest.mark.parametrize("algo", ["phash", "dhash", "ahash"])
def test_report_distances(algo):
    codes = {name: fingerprint(photo(name), algo).code for name in PHOTOS}
    lines = [f"\n{algo}:"]
    worst_edit = 0
    for edit, fn in EDITS.items():
        d = [int(hamming(codes[n], fingerprint(fn(photo(n)), algo).code)) for n in PHOTOS]
        worst_edit = max(worst_edit, max(d))
        lines.append(f"  {edit:9s} max {max(d):2d} mean {np.mean(d):4.1f}")
    distinct = [int(hamming(codes[a], codes[b])) for a, b in itertools.combinations(PHOTOS, 2)]
    lines.append(f"  distinct  min {min(distinct):2d} mean {np.mean(distinct):4.1f}")
    print("\n".join(lines))
    assert worst_edit < min(distinct)  # gross sanity only


@pytest.mark.parametrize("op", ["rot90", "flip_h"])
def test_report_phash_rotated_copy(op):
    g = photo("camera")
    k = DIHEDRAL.index(op)
    variants = fingerprint(g, "phash").variants
    d = [int(hamming(v, phash(jpeg(np.ascontiguousarray(apply(g, op)), 75)))) for v in variants]
    print(f"\nphash camera {op}+jpeg75 distances to the 8 variants: {d}")
    assert int(np.argmin(d)) == k


def test_report_phash_versus_imagehash():
    """Our pHash against imagehash's (Pillow LANCZOS resize, unnormalised DCT): bits that differ."""
    imagehash = pytest.importorskip("imagehash")
    image = pytest.importorskip("PIL.Image")
    diffs = []
    for name in PHOTOS:
        g = photo(name)
        theirs = imagehash.phash(image.fromarray(g)).hash.ravel()  # element k = bit k in our layout
        ours = (phash(g)[0] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
        diffs.append(int(np.sum(theirs != ours.astype(bool))))
    print(f"\nphash vs imagehash.phash, differing bits of 64: {diffs} (mean {np.mean(diffs):.1f})")
    assert np.mean(diffs) < 16
