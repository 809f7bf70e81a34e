"""From near-duplicate edges to groups: a keeper and the copies that match it directly.

Groups are stars, never chains (SAFETY.md rule 11): every member has an edge to its
keeper; similarity is not transitive, so a copy of a copy is only a member if it
matches the keeper itself. Groups are formed in three passes over the files (the keep
rules, `dedupd.daemon.keep`, order them best keeper first):

1. same-picture stars: each unassigned file becomes a keeper and takes every still
   unassigned file joined to it by an edge that can be act (`could_act`: exact bytes,
   or upright, within the act radius, pixel-verified, ...); a file that is the same
   picture as a member of an earlier star joins that star's keeper instead (as report);
2. the files left over are placed closest pair first, first within the `rotated` radius
   (the distance real rotations, mirrors and light edits stay within): a file joins a
   keeper it matches, or two unassigned files start a new star (whose best file keeps
   if it matches all the others; not when both match one keeper: they join it);
3. then beyond it, up to the report radius: first to keepers, then new pairs.

Pass 2 places files by whole-picture edges first and by crop edges (`CROP_VARIANT`,
confirmed) only then: a crop relates a file to part of a picture. Pass 3 comes after both:
a whole-picture match beyond the rotated radius is weaker evidence than a confirmed crop.

A report edge never takes a file out of a group it already belongs to, and a file's
closest match wins over a farther keeper: a look-alike photo cannot pull a true pair
apart (docs/accuracy.md §10.3).

Tiers: `exact` (same bytes), `act` (the same picture: small distance, upright, verified
pixel by pixel by `dedupd.daemon.verify`, same aspect ratio, both colour or both grey,
informative hash, and the keeper loses no fidelity), `report` (everything else within
the report radius: rotations, mirrors, crops, greyscale and other edits). A match
through a rotated or mirrored variant counts only within the smaller `rotated` radius,
and a pair of uninformative hashes (`min_quality`) only upright within the act radius,
and never beyond FLAT_RADIUS (`admit`). A match through a content box code
(`BOX_VARIANT`: a letterboxed or framed copy) counts within the report radius, never for
uninformative hashes, and is never act (the frames differ: not the same picture in other
bytes; `could_act` wants an upright edge). A match through window codes (`CROP_VARIANT`:
one picture may be a crop of the other) counts only with `match_crops`, within the crop
radius, once confirmed pixel by pixel (`dedupd.daemon.cropcheck`), and is never act either.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

from dedupd.daemon.keep import KeepKey, may_replace
from dedupd.index.edges import BOX_VARIANT, CROP_VARIANT, Edge, variant_name
from dedupd.index.records import FileRecord

TIERS = ("exact", "act", "report")
ASPECT_TOLERANCE = 0.03  # |log(aspect_a / aspect_b)|: a 3 % trim passes, a 15 % crop does not
GREY_CHROMA = 3.0  # below this mean colour spread an image counts as greyscale (measured: grey JPEGs < 1.5)


# Two flat pictures (quality < min_quality) differ only in the 64 bits of the global word:
# nearly black renders of different photos lie 24 bits apart upright (tests/daemon/
# test_grouping.py), so widening the act radius to 24 (docs/accuracy.md §5) must not widen
# what a flat pair may match at: it stays at the 16 bits it was measured at (§8, §10.5).
FLAT_RADIUS = 16

@dataclass(frozen=True)
class Thresholds:
    act: int
    report: int
    min_quality: float = 0.0
    rotations: bool = True  # False: ignore rotated and mirrored matches
    rotated: int | None = None  # radius for matches through a rotated/mirrored variant; None: the report radius
    crops: bool = False  # count pairs found through window codes (confirmed crops)
    crop: int | None = None  # radius for window matches; None: the report radius

    @classmethod
    def from_config(cls, config) -> "Thresholds":
        """The thresholds of a loaded `Config`."""
        return cls(config.act_threshold, config.report_threshold, config.min_quality, config.match_rotations,
                   config.rotated_threshold, config.match_crops, config.crop_threshold)

    @property
    def rotated_radius(self) -> int:
        return self.report if self.rotated is None else min(self.rotated, self.report)

    @property
    def crop_radius(self) -> int:
        return self.report if self.crop is None else min(self.crop, self.report)


# dev, ino, size, mtime_ns, ctime_ns of a GroupFile, in the widths the index stores them in
# (dedupd.index.codec): any stored record's values fit
_STAT = struct.Struct("<QQQqq")


def _stat_field(index: int, doc: str) -> property:
    """A read-only property unpacking field `index` of a GroupFile's packed `stat`."""
    return property(lambda self: _STAT.unpack_from(self.stat)[index], doc=doc)


@dataclass(frozen=True, slots=True)
class GroupFile:
    """What a group keeps of each of its files: what is read of a group once it is made.
    Deciding (`dedupd.daemon.decide`: paths, inodes, times, content hashes), the status
    totals (sizes, inodes), the groups listing (paths) and the regrouping (file ids) need
    nothing else; grouping itself reads full records (`build_groups`), and anything else
    about a file is in its record in the index (`index.get(file_id)`).

    Why: a daemon keeps every group in memory, and at a million files with 5 % duplicates
    that is 100,000 files. A decoded `FileRecord` (code, dimensions, format, quality,
    colour, ...) is ~0.8 KB; this is ~0.3 KB: the numbers and the content hash packed in
    one bytes object (`stat`) instead of five int objects and a bytes object (~0.43 KB as
    a slotted record of eight fields; tracemalloc, docs/performance.md "The daemon with a
    1,000,000-file index"). They are unpacked when read: a few per group and round.

    A `FileRecord` has every attribute read here, so code that builds groups by hand
    (tests, tools) may put records in them."""

    file_id: int
    path: str
    stat: bytes  # dev, ino, size, mtime_ns, ctime_ns (`_STAT`), then the content hash

    @classmethod
    def of(cls, rec: FileRecord) -> "GroupFile":
        return cls(rec.file_id, rec.path,
                   _STAT.pack(rec.dev, rec.ino, rec.size, rec.mtime_ns, rec.ctime_ns) + rec.content_hash)

    dev = _stat_field(0, "device of the file")
    ino = _stat_field(1, "inode of the file")
    size = _stat_field(2, "size in bytes")
    mtime_ns = _stat_field(3, "modification time, ns")
    ctime_ns = _stat_field(4, "status change time, ns")

    @property
    def content_hash(self) -> bytes:
        return self.stat[_STAT.size:]


def inode_and_size(f: GroupFile | FileRecord) -> tuple[int, int, int]:
    """(dev, ino, size) of a group's file with one unpack: the status totals read them for
    the members of every group after each round (three properties cost 2x as much at
    50,000 groups). A `FileRecord` in a group built by hand works too."""
    stat = getattr(f, "stat", None)
    return _STAT.unpack_from(stat)[:3] if stat is not None else (f.dev, f.ino, f.size)


@dataclass(frozen=True, slots=True)
class Member:
    record: GroupFile  # (named `record` before groups held GroupFiles; a FileRecord also works)
    distance: int
    variant: str
    tier: str
    verified: bool


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    keep: GroupFile  # a FileRecord also works (GroupFile)
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


def could_act(a: FileRecord, b: FileRecord, edge: Edge, t: Thresholds) -> bool:
    """Every act condition that does not depend on which of the two is kept: the same
    bytes, or the same picture (upright, within the act radius, pixel-verified, same
    aspect, same colour kind, informative hashes)."""
    if a.content_hash and a.content_hash == b.content_hash:
        return True
    return (
        edge.variant == 0
        and edge.distance <= t.act
        and edge.verified
        and same_aspect(a, b)
        and same_colour_kind(a, b)
        and min(a.quality, b.quality) >= t.min_quality
    )


def tier_of(keeper: FileRecord, member: FileRecord, edge: Edge, t: Thresholds) -> str:
    """The tier of `member` in the group of `keeper`, joined by `edge` (keeper -> member)."""
    if keeper.content_hash and keeper.content_hash == member.content_hash:
        return "exact"
    if could_act(keeper, member, edge, t) and may_replace(keeper, member):
        return "act"
    return "report"


def upright_distance(a: FileRecord, b: FileRecord) -> int | None:
    if a.code is None or b.code is None:
        return None
    return (a.code[0] ^ b.code[0]).bit_count() + (a.code[1] ^ b.code[1]).bit_count()


def admit(edge: Edge, a: FileRecord, b: FileRecord, t: Thresholds) -> Edge | None:
    """The edge grouping uses for a stored edge between a and b under the current thresholds
    (stored edges may come from a wider radius), or None.

    A match through a rotated or mirrored variant counts only within `t.rotated_radius`:
    the best of 8 variants of two different photos is several bits closer than upright
    (docs/accuracy.md §6). Otherwise the pair's upright distance (from the records' codes)
    decides; such an edge was never pixel-verified (an upright match within the act radius
    would have been stored instead). A pair with an uninformative hash (quality below
    `t.min_quality`: the texture word of a flat picture is all "flat", so only the 64 bits
    of the global word tell two of them apart) needs an upright match within the act
    radius, and never more than FLAT_RADIUS, even to be reported, and never matches
    through a variant. A match through a box code (`BOX_VARIANT`) counts within the report
    radius (like an upright one: the box code is an upright code of the picture without its
    bars), never for an uninformative hash. A match through window codes (`CROP_VARIANT`)
    counts only when crops are matched, within `t.crop_radius`, once the crop was confirmed
    pixel by pixel (`edge.verified`), never for an uninformative hash."""
    flat = min(a.quality, b.quality) < t.min_quality
    if edge.variant == CROP_VARIANT:
        if flat or not (t.crops and edge.verified and edge.distance <= t.crop_radius):
            d = upright_distance(a, b)
            edge = Edge(edge.a, edge.b, d, 0, False) if d is not None else None
    elif edge.variant == BOX_VARIANT:
        if flat or edge.distance > t.report:
            d = upright_distance(a, b)
            edge = Edge(edge.a, edge.b, d, 0, False) if d is not None else None
    elif edge.variant and (flat or not t.rotations or edge.distance > t.rotated_radius):
        d = upright_distance(a, b)
        edge = Edge(edge.a, edge.b, d, 0, False) if d is not None else None
    if edge is None or edge.distance > (min(t.act, FLAT_RADIUS) if flat else t.report):
        return None
    return edge


def group_id(keeper: FileRecord) -> str:
    """Stable across rescans and reindexes: derived from the keeper's bytes and name.

    The name is part of it because two names of one inode (hard links, e.g. made by
    dedupd itself) have no edge between them and can each keep a star of their own:
    with the bytes alone both groups had one id and storing them failed."""
    basis = keeper.content_hash + b"\0" + keeper.path.encode("utf-8", "surrogateescape")
    return hashlib.sha256(basis).hexdigest()[:16]


Adjacency = dict[int, dict[int, Edge]]  # file id -> neighbour id -> edge (file -> neighbour)


def neighbours_of(records: Mapping[int, FileRecord], edges: Iterable[Edge], t: Thresholds) -> Adjacency:
    """The best admitted edge of every pair, both directions (edges to unknown ids, to
    oneself and between hard links of one inode are ignored)."""
    out: Adjacency = defaultdict(dict)
    for e in edges:
        ra, rb = records.get(e.a), records.get(e.b)
        if ra is None or rb is None or e.a == e.b or (ra.dev, ra.ino) == (rb.dev, rb.ino):
            continue  # hard links of one inode are already deduplicated
        e = admit(e, ra, rb, t)
        if e is None:
            continue
        for edge in (e, e.reversed()):
            if better_edge(edge, out[edge.a].get(edge.b), t.act):
                out[edge.a][edge.b] = edge
    return out


def build_groups(
    records: Mapping[int, FileRecord],
    edges: Iterable[Edge],
    thresholds: Thresholds,
    keep_key: Callable[[FileRecord], tuple],
) -> list[Group]:
    """Star groups of `records` over `edges` in the three passes of the module doc; groups
    in keeper order, members by distance, each file as a `GroupFile`. A `KeepKey` is made
    tolerant among the files that could be act with each other (`KeepKey.among`)."""
    return [group for _, group in keyed_groups(records, edges, thresholds, keep_key)]


def keyed_groups(
    records: Mapping[int, FileRecord],
    edges: Iterable[Edge],
    thresholds: Thresholds,
    keep_key: Callable[[FileRecord], tuple],
) -> list[tuple[tuple, Group]]:
    """`build_groups` with each group's keeper's sort key beside it (the tolerant key the
    order was made with). A file's key depends only on its record, its peers and the
    scores in `keep_key`, so the groups of several disjoint sets of components, each made
    with the same `keep_key`, sorted by these keys come in the order one call over their
    union gives (keys end with the path: no two are equal)."""
    near = neighbours_of(records, edges, thresholds)
    same = {i: {j: e for j, e in nb.items() if could_act(records[i], records[j], e, thresholds)} for i, nb in near.items()}
    key = keep_key.among(records, same) if isinstance(keep_key, KeepKey) else keep_key
    order = sorted(near, key=lambda i: key(records[i]))
    assigned: set[int] = set()
    stars = _picture_stars(order, same, near, assigned)
    close, far = thresholds.rotated_radius, thresholds.report
    # Close whole-picture matches first, to a keeper or between two leftovers; then confirmed
    # crops (a crop relates a file to part of a picture: a captioned copy close to its original
    # joins the original's group, not that of a crop its windows happen to meet more closely);
    # then far matches to keepers; then far pairs (a look-alike 28 bits away upright is weaker
    # evidence than a crop confirmed pixel by pixel).
    whole = {i: {j: e for j, e in nb.items() if e.variant != CROP_VARIANT} for i, nb in near.items()}
    for adjacency, keeper_radius, pair_radius in ((whole, close, close), (near, close, close), (near, far, -1),
                                                  (near, far, far)):
        _closest_first(order, adjacency, stars, assigned, keeper_radius=keeper_radius, pair_radius=pair_radius)
    groups = []
    for keeper_id in (i for i in order if i in stars):
        keeper = records[keeper_id]
        members = []
        for e in sorted(stars[keeper_id], key=lambda e: (e.distance, key(records[e.b]))):
            tier = tier_of(keeper, records[e.b], e, thresholds)
            members.append(Member(GroupFile.of(records[e.b]), e.distance, variant_name(e.variant), tier,
                                  verified=tier == "exact" or e.verified))
        groups.append((key(keeper), Group(group_id(keeper), GroupFile.of(keeper), tuple(members))))
    return groups


def _picture_stars(order: list[int], same: Adjacency, near: Adjacency, assigned: set[int]) -> dict[int, list[Edge]]:
    """Pass 1, greedy in `order`: an unassigned file with unassigned same-picture neighbours
    keeps them. A file that is the same picture as a member of an earlier star but failed the
    pixel check against its keeper (a brightened and a gamma-edited copy can pass against each
    other and not against the original) joins that keeper as a report member when it has an
    edge to it, instead of splitting the picture into two groups."""
    stars: dict[int, list[Edge]] = {}
    owner: dict[int, int] = {}  # member -> its keeper
    for keeper_id in order:
        if keeper_id in assigned:
            continue
        homes = [near[keeper_id][k] for k in {owner[j] for j in same.get(keeper_id, ()) if j in owner} if k in near[keeper_id]]
        if homes:
            home = min(homes, key=lambda e: (e.distance, e.b))
            stars[home.b].append(home.reversed())
            assigned.add(keeper_id)
            continue
        candidates = [e for b, e in same.get(keeper_id, {}).items() if b not in assigned]
        if candidates:
            stars[keeper_id] = candidates
            assigned.add(keeper_id)
            assigned.update(e.b for e in candidates)
            owner.update((e.b, keeper_id) for e in candidates)
    return stars


def _closest_first(order: list[int], adjacency: Adjacency, stars: dict[int, list[Edge]], assigned: set[int], *,
                   keeper_radius: int, pair_radius: int) -> None:
    """Place the unassigned files, closest pair first: a file joins a keeper it has an edge to
    within `keeper_radius`; two unassigned files within `pair_radius` start a new star (the one
    earlier in `order` keeps). An edge to a member is never used: stars, not chains."""
    pos = {file_id: n for n, file_id in enumerate(order)}
    candidates = []
    for u in order:
        if u in assigned:
            continue
        for v, e in adjacency[u].items():
            to_keeper = v in stars and e.distance <= keeper_radius
            if to_keeper or (e.distance <= pair_radius and v not in assigned and pos[u] < pos[v]):
                candidates.append((e.distance, min(pos[u], pos[v]), max(pos[u], pos[v]), u, v))
    started = []
    for *_, u, v in sorted(candidates):
        if u in stars and v not in assigned:
            u, v = v, u  # u became a keeper since: v joins it
        if u in assigned:
            continue
        if v in stars:
            stars[v].append(adjacency[v][u])
            assigned.add(u)
        elif v not in assigned and not any(k in stars for k in adjacency[u].keys() & adjacency[v].keys()):
            # two files that both match one keeper are left to join it (their own edges to it
            # come later in this loop); only a pair with no common keeper starts a new star
            keeper, member = (u, v) if pos[u] < pos[v] else (v, u)
            stars[keeper] = [adjacency[keeper][member]]
            assigned.update((keeper, member))
            started.append(keeper)
    for keeper in started:
        _best_centre(keeper, adjacency, stars, pos)


def _best_centre(keeper: int, adjacency: Adjacency, stars: dict[int, list[Edge]], pos: dict[int, int]) -> None:
    """A star grown closest pair first may have a better file than its keeper among its
    members: that file keeps instead when it matches every other file of the star."""
    files = [keeper] + [e.b for e in stars[keeper]]
    for centre in sorted(files, key=pos.__getitem__):
        if centre == keeper:
            return
        if all(f in adjacency[centre] for f in files if f != centre):
            del stars[keeper]
            stars[centre] = [adjacency[centre][f] for f in files if f != centre]
            return
