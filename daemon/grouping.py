"""From near-duplicate edges to groups: a keeper and the copies that match it directly.

Groups are stars, never chains (SAFETY.md rule 11): files are visited best keeper
first; each unassigned file becomes a keeper and takes every still-unassigned file
that has an edge *to it*. Similarity is not transitive, so a copy of a copy is only a
member if it matches the keeper itself.

Tiers: `exact` (same bytes), `act` (the same picture: small distance, upright, verified
pixel by pixel by `dedupd.daemon.verify`, same aspect ratio, both colour or both grey,
informative hash, and the keeper loses no fidelity), `report` (everything else within
the report radius: rotations, mirrors, crops, greyscale and other edits).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from dedupd.daemon.keep import may_replace
from dedupd.index.edges import Edge
from dedupd.index.records import FileRecord
from dedupd.kernels.dihedral import DIHEDRAL

TIERS = ("exact", "act", "report")
ASPECT_TOLERANCE = 0.03  # |log(aspect_a / aspect_b)|: a 3 % trim passes, a 15 % crop does not
GREY_CHROMA = 3.0  # below this mean colour spread an image counts as greyscale (measured: grey JPEGs < 1.5)


@dataclass(frozen=True)
class Thresholds:
    act: int
    report: int
    min_quality: float = 0.0
    rotations: bool = True  # False: ignore rotated and mirrored matches


@dataclass(frozen=True)
class Member:
    record: FileRecord
    distance: int
    variant: str
    tier: str
    verified: bool


@dataclass(frozen=True)
class Group:
    id: str
    keep: FileRecord
    members: tuple[Member, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "keep": self.keep.path,
            "members": [
                {"path": m.record.path, "distance": m.distance, "variant": m.variant, "tier": m.tier, "verified": m.verified}
                for m in self.members
            ],
        }


def better_edge(new: Edge, old: Edge | None, act: int) -> bool:
    """Whether `new` describes a pair better than `old`: an upright match within the act
    radius wins over any rotated one (a near-symmetric photo can match its own mirror
    image closely), otherwise the smaller distance wins."""
    if old is None:
        return True

    def rank(e: Edge) -> tuple:
        return (0 if e.variant == 0 and e.distance <= act else 1, e.distance, e.variant)

    return rank(new) < rank(old)


def pagerank(edges: list[Edge], radius: int, damping: float = 0.85, iterations: int = 60) -> dict[int, float]:
    """PageRank of every file over the near-duplicate graph, edges weighted by closeness
    (radius + 1 - distance). The seed method for choosing a group's representative copy:
    the file most similar to most others scores highest."""
    if not edges:
        return {}
    ids = sorted({e.a for e in edges} | {e.b for e in edges})
    pos = {fid: i for i, fid in enumerate(ids)}
    a = np.array([pos[e.a] for e in edges] + [pos[e.b] for e in edges])
    b = np.array([pos[e.b] for e in edges] + [pos[e.a] for e in edges])
    w = np.tile(np.array([radius + 1.0 - e.distance for e in edges]).clip(min=1e-3), 2)
    out = np.bincount(a, weights=w, minlength=len(ids))
    rank = np.full(len(ids), 1.0 / len(ids))
    for _ in range(iterations):
        rank = (1 - damping) / len(ids) + damping * np.bincount(b, weights=rank[a] * w / out[a], minlength=len(ids))
    return dict(zip(ids, rank.tolist()))


def same_aspect(a: FileRecord, b: FileRecord) -> bool:
    if not (a.width and a.height and b.width and b.height):
        return False
    return abs(math.log((a.width / a.height) / (b.width / b.height))) <= ASPECT_TOLERANCE


def same_colour_kind(a: FileRecord, b: FileRecord) -> bool:
    """Both colour or both greyscale: a greyscale copy is an edit, not the same picture."""
    return (a.chroma < GREY_CHROMA) == (b.chroma < GREY_CHROMA)


def tier_of(keeper: FileRecord, member: FileRecord, edge: Edge, t: Thresholds) -> str:
    """The tier of `member` in the group of `keeper`, joined by `edge` (keeper -> member)."""
    if keeper.content_hash and keeper.content_hash == member.content_hash:
        return "exact"
    if (
        edge.variant == 0
        and edge.distance <= t.act
        and edge.verified
        and same_aspect(keeper, member)
        and same_colour_kind(keeper, member)
        and min(keeper.quality, member.quality) >= t.min_quality
        and may_replace(keeper, member)
    ):
        return "act"
    return "report"


def group_id(keeper: FileRecord) -> str:
    """Stable across rescans and reindexes: derived from the keeper's bytes (or path)."""
    basis = keeper.content_hash or keeper.path.encode("utf-8", "surrogateescape")
    return hashlib.sha256(basis).hexdigest()[:16]


def build_groups(
    records: Mapping[int, FileRecord],
    edges: Iterable[Edge],
    thresholds: Thresholds,
    keep_key: Callable[[FileRecord], tuple],
) -> list[Group]:
    """Star clustering of `records` over `edges` (edges to unknown ids are ignored)."""
    neighbours: dict[int, dict[int, Edge]] = defaultdict(dict)
    for e in edges:
        if e.distance > thresholds.report or (e.variant and not thresholds.rotations):
            continue  # stored edges may come from a wider radius than the current config
        ra, rb = records.get(e.a), records.get(e.b)
        if ra is None or rb is None or e.a == e.b or (ra.dev, ra.ino) == (rb.dev, rb.ino):
            continue  # hard links of one inode are already deduplicated
        for edge in (e, e.reversed()):
            if better_edge(edge, neighbours[edge.a].get(edge.b), thresholds.act):
                neighbours[edge.a][edge.b] = edge
    order = sorted(neighbours, key=lambda i: keep_key(records[i]))
    assigned: set[int] = set()
    groups = []
    for keeper_id in order:
        if keeper_id in assigned:
            continue
        candidates = [e for b, e in neighbours[keeper_id].items() if b not in assigned]
        if not candidates:
            continue
        keeper = records[keeper_id]
        assigned.add(keeper_id)
        members = []
        for e in sorted(candidates, key=lambda e: (e.distance, keep_key(records[e.b]))):
            member = records[e.b]
            tier = tier_of(keeper, member, e, thresholds)
            members.append(Member(member, e.distance, DIHEDRAL[e.variant], tier, verified=tier == "exact" or e.verified))
            assigned.add(e.b)
        groups.append(Group(group_id(keeper), keeper, tuple(members)))
    return groups
