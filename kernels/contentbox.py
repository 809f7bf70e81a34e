"""The content box of a picture: what is left once uniform bars at its edges are cut off.

A letterboxed copy (black bars above and below), a pillarboxed one or a picture in a plain
frame has a whole-frame fingerprint 28 bits (median) away from its original's, beyond any
radius that keeps distinct photos apart; the fingerprint of its content box is 0 bits away
(median; 97 % within 28 on the 369 corpus photos: `bench/reframe_probe.py`,
docs/accuracy.md §10.9). This module finds the box; hashing it is the caller's business.

An edge line (a row from the top or bottom, a column from the left or right) is a bar when
the spread of its grey levels between the 2nd and 98th percentiles is at most `spread`
(JPEG ringing and a few bright specks do not count). Lines are cut from each edge while they
are bars, at most a third of the picture from each side; an axis where less than `min_trim`
of the picture would go in total keeps all of it (a JPEG's edge block or a thin line is not a
frame). The probe that measured it used numpy's interpolated percentiles; here they are
whole ranks of the sorted line (the 2nd percentile rounded down, the 98th up: a spread at
least as wide, so never more bars), exact in integers and ~20x cheaper than
`np.percentile`; the probe now calls this function.

It works on any grey rendering of the picture: a small one (the ≤ 256 px verification
thumbnail) is enough. A picture whose four outermost lines are not bars (most photos) costs
two sorts of two lines (~15 µs); the whole analysis, only for the others, sorts every line
once. `Box.scaled` carries the box to the full-size picture. numpy only (the decode workers
import it without the numba kernels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dedupd.kernels.errors import BadImage

SPREAD = 6  # grey levels between the 2nd and 98th percentile of a line that is a bar
MIN_TRIM = 0.02  # of the side, both edges together: less is not a frame
MAX_SIDE = 3  # at most 1/MAX_SIDE of the picture is cut from each edge


@dataclass(frozen=True, slots=True)
class Box:
    """Rows [top, bottom) and columns [left, right) of a `height` x `width` picture."""

    top: int
    bottom: int
    left: int
    right: int
    height: int
    width: int

    def scaled(self, height: int, width: int) -> "Box":
        """The same box on a rendering of the picture at `height` x `width` (rounded to
        whole pixels, never empty)."""
        def edge(v: int, n: int, to: int) -> int:
            return min(to, max(0, round(v * to / n)))
        top, bottom = edge(self.top, self.height, height), edge(self.bottom, self.height, height)
        left, right = edge(self.left, self.width, width), edge(self.right, self.width, width)
        return Box(top, max(bottom, top + 1), left, max(right, left + 1), height, width)

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The box's pixels of `image` (a view), which must have the box's size."""
        if image.shape[:2] != (self.height, self.width):
            raise BadImage(f"a box of a {self.height}x{self.width} picture cannot crop a {image.shape[0]}x{image.shape[1]} one")
        return image[self.top:self.bottom, self.left:self.right]


def content_box(gray: np.ndarray, *, spread: int = SPREAD, min_trim: float = MIN_TRIM) -> Box | None:
    """The box left once uniform bars are cut from the edges of `gray` (2-D uint8), or None
    when nothing is cut (no bars, or too thin to be a frame)."""
    if gray.ndim != 2 or gray.size == 0 or gray.dtype != np.uint8:
        raise BadImage(f"content_box needs a non-empty 2-D uint8 grey image, got {gray.dtype} {gray.shape}")
    h, w = gray.shape
    if not (_bars(gray[[0, -1]], spread).any() or _bars(gray[:, [0, -1]].T, spread).any()):
        return None  # no edge line is a bar: nothing can be cut
    top, bottom = _kept(_bars(gray, spread), h, min_trim)
    left, right = _kept(_bars(gray.T, spread), w, min_trim)
    if (top, bottom, left, right) == (0, h, 0, w):
        return None
    return Box(top, bottom, left, right, h, w)


def spread_of(lines: np.ndarray) -> np.ndarray:
    """Per row of `lines` (2-D uint8): its 98th percentile minus its 2nd, as whole ranks of
    the sorted row (rank floor(0.02 (n-1)) and ceil(0.98 (n-1)) of n values)."""
    n = lines.shape[1]
    ordered = np.sort(np.ascontiguousarray(lines), axis=1, kind="stable")  # a radix sort for uint8: 10x the default's speed
    low, high = (2 * (n - 1)) // 100, -((-98 * (n - 1)) // 100)
    return ordered[:, high].astype(np.int16) - ordered[:, low]


def _bars(lines: np.ndarray, spread: int) -> np.ndarray:
    """Per row of `lines`: True when it is a bar (`spread_of` at most `spread`)."""
    return spread_of(lines) <= spread


def _kept(bar: np.ndarray, n: int, min_trim: float) -> tuple[int, int]:
    """[first, last) of the n lines once the bars at both ends (at most n // MAX_SIDE each)
    are cut; (0, n) when together they are less than `min_trim` of n."""
    limit = n // MAX_SIDE
    first = _run(bar[:limit])
    last = n - _run(bar[::-1][:limit])
    return (0, n) if first + n - last < min_trim * n else (first, last)


def _run(flags: np.ndarray) -> int:
    """How many leading entries of `flags` are True."""
    stop = np.flatnonzero(~flags)
    return int(stop[0]) if stop.size else int(flags.size)
