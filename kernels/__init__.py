"""dedupd.kernels: image fingerprints (LBPH, pHash, dHash, aHash), dihedral variants, Hamming distances.

Imports only numpy, numba and the standard library. Importing this package loads (or, on
first use, compiles) the numba kernels; set NUMBA_CACHE_DIR to a writable directory so the
compiled code is cached. `warm()` touches every kernel once.

Note: the package attribute `hamming` is the function, which shadows the submodule of the
same name; import the module's other names with `from dedupd.kernels.hamming import ...`.
"""

from dedupd.kernels.algorithms import ALGORITHMS, Algorithm, Fingerprint, fingerprint, warm
from dedupd.kernels.dihedral import DIHEDRAL
from dedupd.kernels.hamming import hamming, hamming_many, hamming_many_multi, within_radius

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "DIHEDRAL",
    "Fingerprint",
    "fingerprint",
    "hamming",
    "hamming_many",
    "hamming_many_multi",
    "warm",
    "within_radius",
]
