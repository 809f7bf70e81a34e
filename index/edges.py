"""Near-duplicate edges: which indexed files are within the report radius of which.

An edge is found once, when the later of its two files is fingerprinted and queried
with its dihedral variants; storing it means grouping never re-queries the whole
index. `variant` is the index into `dedupd.kernels.dihedral.DIHEDRAL` of the
transform T with picture(b) ~ T(picture(a)); seen from b's side the edge carries the
inverse transform. `BOX_VARIANT` (8) marks a pair found through a content box code
(`dedupd.index.boxes`: one side is the other with uniform bars added or cut off),
`CROP_VARIANT` (9) one found through window codes (one side may be a crop of the other;
`verified` then says the crop was confirmed pixel by pixel); both are their own inverse,
and `variant_name` names every variant.
"""

from __future__ import annotations

from dataclasses import dataclass

from dedupd.kernels.dihedral import DIHEDRAL

# DIHEDRAL = identity, rot90, rot180, rot270, flip_h, flip_v, transpose, transverse:
# rot90 and rot270 undo each other, every other element is its own inverse; then the box.
BOX_VARIANT = 8
CROP_VARIANT = 9
_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7, BOX_VARIANT, CROP_VARIANT)
VARIANT_NAMES: tuple[str, ...] = DIHEDRAL + ("box", "crop")  # what groups and queries call each variant


def variant_name(variant: int) -> str:
    return VARIANT_NAMES[variant]


def inverse_variant(variant: int) -> int:
    return _INVERSE[variant]


@dataclass(frozen=True, order=True)
class Edge:
    a: int
    b: int
    distance: int
    variant: int = 0
    verified: bool = False  # the pair passed the pixel-level check (dedupd.daemon.verify; a crop: cropcheck)

    def reversed(self) -> "Edge":
        return Edge(self.b, self.a, self.distance, inverse_variant(self.variant), self.verified)

    def normalized(self) -> "Edge":
        """The same edge with a < b."""
        return self if self.a < self.b else self.reversed()


def check_edge(edge: Edge) -> Edge:
    """Validate an edge before it is stored; raises ValueError."""
    if not isinstance(edge, Edge):
        raise ValueError(f"expected an Edge, got {type(edge).__name__}")
    if not (0 <= edge.distance <= 255 and 0 <= edge.variant < len(_INVERSE)):
        raise ValueError(f"edge out of range: {edge}")
    return edge
