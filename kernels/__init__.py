"""dedupd.kernels: image fingerprints (LBPH, pHash, dHash, aHash), dihedral variants, Hamming distances.

Imports only numpy, numba and the standard library. Importing this package loads (or, on
first use, compiles) the numba kernels; set NUMBA_CACHE_DIR to a writable directory so the
compiled code is cached. `warm()` touches every kernel once.

`fingerprint(gray)` hashes a grey image; `fingerprint_area(area_input)` gives the same
Fingerprint from the image's exact area sums (`dedupd.kernels.area`: numpy only, what a
decode worker process sends instead of the image).

Note: the package attribute `hamming` is the function, which shadows the submodule of the
same name; import the module's other names with `from dedupd.kernels.hamming import ...`.
"""

from dedupd.kernels.algorithms import ALGORITHMS, Algorithm, Fingerprint, fingerprint, fingerprint_area, warm
from dedupd.kernels.area import AreaInput
from dedupd.kernels.dihedral import DIHEDRAL
from dedupd.kernels.hamming import hamming, hamming_many, hamming_many_multi, within_radius

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AreaInput",
    "DIHEDRAL",
    "Fingerprint",
    "fingerprint",
    "fingerprint_area",
    "hamming",
    "hamming_many",
    "hamming_many_multi",
    "warm",
    "within_radius",
]
