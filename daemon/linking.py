"""Linking new fingerprints to the indexed ones when a scan defers it: the batch join.

A scan that fingerprints many files (`JOIN_MIN_FILES`: a first scan, a large batch of
changes) does not look each file up as it stores it. Pairs within a stored batch come
from `batch_hits` (brute force over the batch, thumbnails still in memory for the pixel
check); every pair with files of earlier batches and with files indexed before the scan
comes from one exact join at the end (`join_hits`, `dedupd.index.selfjoin`). The result
is the edges a lookup per file would have found (`best_edges` keeps one per pair, the
later file's, as storing them one by one would). Until the join's edges are stored, the
index holds a marker (`PendingEdges`) naming the files whose edges may be missing, so a
crash in between loses no edge: the next scan fingerprints them again.

Box codes (`FileRecord.box_code`, `dedupd.index.boxes`) link too: a pair where one file's
box code is within the report radius of the other's code or box code is an edge of variant
`BOX_VARIANT` (a letterboxed copy and its original, whichever is indexed first). A lookup
finds them with `range_search_many(..., boxes=True)` (`lookup_edges`), a batch by brute
force (`box_batch_hits`), the join by `box_join_hits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from dedupd.daemon.grouping import better_edge
from dedupd.index import boxes
from dedupd.index.edges import BOX_VARIANT, CROP_VARIANT, Edge
from dedupd.index.hamming import popcount
from dedupd.index.records import STATE_OK, FileRecord
from dedupd.index.selfjoin import range_join, variant_join

# From this many files to fingerprint, cross-batch edges come from one join. At a 1M index,
# 5,000 new files: join 2.2-2.5 s wall / 3.6-4.0 s CPU, lookups 7.5-10 s (docs/performance.md).
JOIN_MIN_FILES = 5_000
JOIN_CHUNKS = 4  # the join's runs of files: each sees only the codes stored before it (~40 % less work than 1)
EDGE_WRITE = 50_000  # edges per add_edges transaction when the join's edges are stored
PENDING_KEY = "edges_pending"


@dataclass(frozen=True)
class PendingEdges:
    """The files whose edges are not all stored yet: ids from `from_id` on, and `ids`.

    Written (meta `edges_pending`) before a deferring scan stores its first batch, so it
    covers every id that scan assigns; re-fingerprinted files keep their ids and are added
    before their batch is stored. Removed once the join's edges are stored. A scan treats a
    pending file as changed (`Scanner._classify`): its variants were never stored, so the
    only way to its edges is to fingerprint it again."""

    from_id: int | None = None
    ids: frozenset[int] = frozenset()

    def __contains__(self, file_id: int) -> bool:
        return (self.from_id is not None and file_id >= self.from_id) or file_id in self.ids

    def __bool__(self) -> bool:
        return self.from_id is not None or bool(self.ids)

    def with_ids(self, ids: Iterable[int]) -> "PendingEdges":
        return PendingEdges(self.from_id, self.ids | frozenset(ids))

    @classmethod
    def load(cls, index) -> "PendingEdges":
        raw = index.get_meta(PENDING_KEY) or {}
        return cls(raw.get("from_id"), frozenset(raw.get("ids", ())))

    def store(self, index) -> None:
        index.set_meta(PENDING_KEY, {"from_id": self.from_id, "ids": sorted(self.ids)} if self else None)


class DeferredEdges:
    """The files of a deferring scan, in the order they were stored, with their variants:
    what the join at the end of the scan needs (`Scanner._link_deferred`).

    Per file: its id, its batch number, and whether its code is new in this scan (a new
    file, or a changed code). A file sees the codes of files indexed before the scan
    whose code did not change, and those stored in earlier batches (its own batch was
    linked when it was stored) -- what its own lookup would have found then, less what a
    later re-fingerprint with another code drops again."""

    def __init__(self) -> None:
        self.ids: list[np.ndarray] = []
        self.batches: list[np.ndarray] = []
        self.changed: list[np.ndarray] = []
        self.variants: list[np.ndarray] = []
        self.boxes: list[np.ndarray] = []  # (n, 2) box codes (zeros where none)
        self.has_box: list[np.ndarray] = []
        self.windows: list[np.ndarray] = []  # window codes of the files with crop queries, flat (m, 2)
        self.window_owner: list[np.ndarray] = []  # their files' positions in storage order
        self.count = 0  # batches so far

    def add(self, ids: list[int], variants: np.ndarray, changed: list[bool],
            box_codes: "list[tuple[int, int] | None] | None" = None,
            crop_queries: "list[np.ndarray | None] | None" = None) -> None:
        if crop_queries is not None and ids:
            codes, owner = flat_windows(crop_queries)
            self.windows.append(codes)
            self.window_owner.append(owner + len(self))
        if ids:
            box_codes = box_codes or [None] * len(ids)
            self.ids.append(np.array(ids, np.int64))
            self.batches.append(np.full(len(ids), self.count, np.int64))
            self.changed.append(np.array(changed, bool))
            self.variants.append(variants)
            self.boxes.append(np.array([b or (0, 0) for b in box_codes], np.uint64).reshape(-1, 2))
            self.has_box.append(np.array([b is not None for b in box_codes], bool))
        self.count += 1

    def __len__(self) -> int:
        return sum(len(i) for i in self.ids)

    def hits(self, index, upright: int, rotated: int, workers: int, crop: int = -1):
        """(file ids, other ids, distances, variants, storage positions) of every pair the join
        finds, box pairs (within `upright`) and crop pairs (within `crop`, if >= 0) included."""
        all_ids, codes = index.all_codes()
        ids, batch, changed = np.concatenate(self.ids), np.concatenate(self.batches), np.concatenate(self.changed)
        variants = np.concatenate(self.variants)
        parts = [join_hits(ids, batch, changed, variants, all_ids, codes, upright, rotated, workers)]
        box_ids, box_codes = index.all_box_codes()
        parts.append(box_join_hits(ids, batch, changed, variants[:, 0], np.concatenate(self.boxes),
                                   np.concatenate(self.has_box), all_ids, codes, box_ids, box_codes, upright, workers))
        if crop >= 0 and self.windows:
            win_ids, win_codes = index.all_crop_codes()
            parts.append(crop_join_hits(ids, batch, changed, variants[:, 0], np.concatenate(self.boxes),
                                        np.concatenate(self.has_box), np.concatenate(self.windows),
                                        np.concatenate(self.window_owner), all_ids, codes, box_ids, box_codes,
                                        win_ids, win_codes, crop, workers))
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(5))


def _visibility(ids, batch, changed, all_ids):
    """(rows of `ids` in `all_ids`, found, c_rank, c_batch): which indexed codes each file of
    a deferring scan may pair with (`selfjoin.range_join`'s visibility arrays): the codes of
    files indexed before the scan whose code did not change, and those of earlier batches."""
    rows = np.searchsorted(all_ids, ids)
    found = (rows < len(all_ids)) & (all_ids[np.minimum(rows, len(all_ids) - 1)] == ids)
    c_rank = np.full(len(all_ids), -1, np.int64)
    c_batch = np.full(len(all_ids), -1, np.int64)
    c_rank[rows[found]] = np.where(changed[found], batch[found], -1)
    c_batch[rows[found]] = batch[found]
    return rows, found, c_rank, c_batch


def join_hits(ids, batch, changed, variants, all_ids, codes, upright: int, rotated: int, workers: int):
    """The join of a deferring scan: files `ids` (in storage order, batch numbers `batch`,
    `changed`: code new in this scan, `variants` (n, k, 2)) against the index's searchable
    codes (`all_ids` ascending, `codes`). Returns (file ids, other ids, distances, variants,
    positions of the files in `ids`) of every pair a lookup per file would have kept."""
    rows, found, c_rank, c_batch = _visibility(ids, batch, changed, all_ids)
    # runs pay when the files are much of the index (a first scan); else each run rebuilds
    # the tables over every code for little gain
    chunks = JOIN_CHUNKS if 2 * len(ids) >= len(all_ids) else 1
    hits = variant_join(variants, codes, upright, rotated, q_rank=batch, q_self=np.where(found, rows, -1),
                        c_rank=c_rank, c_batch=c_batch, chunks=chunks, workers=workers)
    return ids[hits.file], all_ids[hits.code], hits.distance, hits.variant, hits.file


def box_join_hits(ids, batch, changed, upright_codes, box_codes, has_box, all_ids, codes, box_ids, stored_boxes,
                  radius: int, workers: int):
    """The box pairs of a deferring scan's join, as `join_hits` returns its pairs (variant
    `BOX_VARIANT`): a file's box code against the records' codes and the box rows, and its
    code against the box rows (`box_ids`: alias ids, ascending, `stored_boxes`), each within
    `radius`, with the visibility of the upright join (a box row is visible as its record)."""
    empty = np.empty(0, np.int64)
    if not (has_box.any() or len(box_ids)):
        return empty, empty, empty, empty, empty
    rows, found, c_rank, c_batch = _visibility(ids, batch, changed, all_ids)
    q_self = np.where(found, rows, -1)
    owner_rows = np.searchsorted(all_ids, boxes.owners(box_ids))  # every box row's record is searchable
    b_rank, b_batch = c_rank[owner_rows], c_batch[owner_rows]
    aliases = ids | boxes.BOX_ALIAS
    box_rows = np.minimum(np.searchsorted(box_ids, aliases), max(len(box_ids) - 1, 0))
    b_self = np.where(box_ids[box_rows] == aliases, box_rows, -1) if len(box_ids) else np.full(len(ids), -1)  # own box row
    boxed = np.flatnonzero(has_box)
    parts = []  # (positions of the files, other file ids, distances)

    def join(rows, queries, against, other_ids, self_rows, rank, in_batch) -> None:
        if len(rows) and len(against):
            h = range_join(queries, against, radius, q_rank=batch[rows], q_self=self_rows[rows], c_rank=rank,
                           c_batch=in_batch, workers=workers)
            parts.append((rows[h.q], other_ids[h.c], h.distance))

    everyone, owners = np.arange(len(ids)), boxes.owners(box_ids)
    join(boxed, box_codes[boxed], codes, all_ids, q_self, c_rank, c_batch)  # box codes against the records' codes
    join(everyone, upright_codes, stored_boxes, owners, b_self, b_rank, b_batch)  # codes against the box rows
    join(boxed, box_codes[boxed], stored_boxes, owners, b_self, b_rank, b_batch)  # box codes against the box rows
    if not parts:
        return empty, empty, empty, empty, empty
    f = np.concatenate([p[0] for p in parts])
    return (ids[f], np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
            np.full(len(f), BOX_VARIANT, np.int64), f)


def crop_join_hits(ids, batch, changed, upright_codes, box_codes, has_box, windows, window_owner, all_ids, codes,
                   box_ids, stored_boxes, win_ids, stored_windows, radius: int, workers: int):
    """The crop pairs of a deferring scan's join, as `join_hits` returns its pairs (variant
    `CROP_VARIANT`, one per pair, the smallest distance): the files' window codes `windows`
    (flat, `window_owner`: their files' positions in `ids`) against the records' codes, the
    box rows and the window rows, and the files' codes and box codes against the window
    rows (`win_ids`: alias ids, ascending), each within `radius`, with the visibility of
    the upright join (an alias row is visible as its record): what `lookup` finds."""
    empty = np.empty(0, np.int64)
    rows, found, c_rank, c_batch = _visibility(ids, batch, changed, all_ids)
    parts = []  # (positions of the files, other file ids, distances)

    def join(owner, queries, against, against_ids, visible_as) -> None:
        if len(owner) and len(against):
            rank, in_batch = c_rank[visible_as], c_batch[visible_as]
            h = range_join(queries, against, radius, q_rank=batch[owner], c_rank=rank, c_batch=in_batch, workers=workers)
            parts.append((owner[h.q], boxes.owners(against_ids[h.c]), h.distance))

    # every alias row's record is searchable: an alias row is visible as its record's row
    box_owners, win_owners = (np.searchsorted(all_ids, boxes.owners(a)) for a in (box_ids, win_ids))
    everyone, boxed = np.arange(len(ids)), np.flatnonzero(has_box)
    join(window_owner, windows, codes, all_ids, np.arange(len(all_ids)))  # windows against the records' codes
    join(window_owner, windows, stored_boxes, box_ids, box_owners)  # ... against the box rows
    join(window_owner, windows, stored_windows, win_ids, win_owners)  # ... against the window rows
    join(everyone, upright_codes, stored_windows, win_ids, win_owners)  # codes against the window rows
    join(boxed, box_codes[boxed], stored_windows, win_ids, win_owners)  # box codes against the window rows
    if not parts:
        return empty, empty, empty, empty, empty
    f, other, distance = closest_per_pair(*(np.concatenate([p[i] for p in parts]) for i in range(3)))
    return ids[f], other, distance, np.full(len(f), CROP_VARIANT, np.int64), f


def flat_windows(crop_queries: "list[np.ndarray | None]") -> tuple[np.ndarray, np.ndarray]:
    """(codes (m, 2), positions (m,)) of per-file window codes (None: none), flattened."""
    arrays = [np.zeros((0, 2), np.uint64) if q is None else np.asarray(q, np.uint64).reshape(-1, 2) for q in crop_queries]
    owner = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
    return (np.concatenate(arrays) if arrays else np.zeros((0, 2), np.uint64)), owner.astype(np.int64)


def closest_per_pair(f: np.ndarray, g: np.ndarray, distance: np.ndarray):
    """(f, g, distance) with one row per (f, g), the smallest distance."""
    if len(f) == 0:
        return f, g, distance
    order = np.lexsort((distance, g, f))
    f, g, distance = f[order], g[order], distance[order]
    first = np.ones(len(f), bool)
    first[1:] = (f[1:] != f[:-1]) | (g[1:] != g[:-1])
    return f[first], g[first], distance[first]


def crop_batch_hits(codes: np.ndarray, box_codes: np.ndarray, has_box: np.ndarray, crop_queries: list,
                    stored: int, radius: int):
    """(file, other, distance) rows of every crop pair within one batch, both orders: the
    smallest of file's window codes to other's code, box code and stored windows (the first
    `stored` of its window codes), and file's code and box code to other's stored windows,
    where it is within `radius` (brute force, as `batch_hits`; what `lookup` finds)."""
    e = np.empty(0, np.int64)
    queries, q_owner = flat_windows(crop_queries)
    first = np.searchsorted(q_owner, q_owner)  # each window's file's first window
    in_stored = np.arange(len(queries)) - first < stored  # the record keeps its first `stored`
    windows, w_owner = queries[in_stored], q_owner[in_stored]
    n = len(codes)
    parts = []

    def pairs(x, x_owner, y, y_owner):
        if len(x) and len(y):
            d = (popcount(x[:, None, 0] ^ y[None, :, 0]).astype(np.int64) + popcount(x[:, None, 1] ^ y[None, :, 1]))
            i, j = np.nonzero(d <= radius)
            ok = x_owner[i] != y_owner[j]
            parts.append((x_owner[i][ok], y_owner[j][ok], d[i, j][ok]))

    everyone, boxed = np.arange(n), np.flatnonzero(has_box)
    pairs(queries, q_owner, codes, everyone)
    pairs(queries, q_owner, box_codes[boxed], boxed)
    pairs(queries, q_owner, windows, w_owner)
    pairs(codes, everyone, windows, w_owner)
    pairs(box_codes[boxed], boxed, windows, w_owner)
    if not parts:
        return e, e, e
    return closest_per_pair(*(np.concatenate([p[i] for p in parts]) for i in range(3)))


def box_batch_hits(codes: np.ndarray, box_codes: np.ndarray, has_box: np.ndarray, radius: int):
    """(file, other, distance) rows of every box pair within one batch, both orders: the
    smallest of file's box code to other's code, file's code to other's box code, and the two
    box codes, where it is within `radius` (brute force, as `batch_hits`)."""
    n = len(codes)
    if n < 2 or not has_box.any():
        e = np.empty(0, np.int64)
        return e, e, e

    def d(x, y):
        return (popcount(x[:, None, 0] ^ y[None, :, 0]).astype(np.int64) + popcount(x[:, None, 1] ^ y[None, :, 1]))

    big = np.int64(1 << 20)
    box_to_code = np.where(has_box[:, None], d(box_codes, codes), big)
    both = np.where(has_box[:, None] & has_box[None, :], d(box_codes, box_codes), big)
    best = np.minimum(np.minimum(box_to_code, box_to_code.T), both)
    f, g = np.nonzero((best <= radius) & ~np.eye(n, dtype=bool))
    return f, g, best[f, g]


def lookup(index, file_id: int, variants: np.ndarray, radii: list[int], box_code: "tuple[int, int] | None",
           box_radius: int, act: int, crop_queries: "np.ndarray | None" = None, crop_radius: int = -1) -> dict[int, Edge]:
    """One file's lookup: its dihedral `variants` (each within its radius of `radii`; the
    upright one against the alias rows too), its box code if it has one (within
    `box_radius`, against codes and alias rows) and its window codes `crop_queries` if crops
    are matched (within `crop_radius`, against codes and alias rows), in one
    `range_search_many`; the best edge per other file (`lookup_edges`)."""
    kinds = list(range(len(variants)))
    queries, radii, with_boxes = [variants], list(radii), [True] + [False] * (len(variants) - 1)
    if box_code is not None:
        queries.append(np.array([box_code], np.uint64))
        radii.append(box_radius)
        with_boxes.append(True)
        kinds.append(BOX_VARIANT)
    if crop_queries is not None and len(crop_queries) and crop_radius >= 0:
        queries.append(crop_queries)
        radii += [crop_radius] * len(crop_queries)
        with_boxes += [True] * len(crop_queries)
        kinds += [CROP_VARIANT] * len(crop_queries)
    hits = index.range_search_many(np.vstack(queries), radii, boxes=with_boxes)  # one plan, one read
    return lookup_edges(file_id, hits, kinds, act, crop_radius)


def lookup_edges(file_id: int, hits_by_query: list, kinds: list[int], act: int, crop_radius: int = -1) -> dict[int, Edge]:
    """The best edge per other file of one file's lookup (`range_search_many`, one query per
    entry of `kinds`: a dihedral variant's number, `BOX_VARIANT` for its box code,
    `CROP_VARIANT` for a window code). What a hit is, by query and row:

    - a variant's hit on a record is an edge of that variant; rotated variants' hits on
      alias rows are not used;
    - the upright code's or the box code's hit on a box row, and the box code's hit on a
      record, is a `BOX_VARIANT` edge;
    - a hit on a window row (the file's frame or box within `crop_radius` of a window of the
      other: a crop of it), and any hit of a window code, is a `CROP_VARIANT` edge; none
      when crops are not matched (`crop_radius` < 0)."""
    best: dict[int, Edge] = {}
    for kind, hits in zip(kinds, hits_by_query):
        for row, distance in hits:
            if boxes.is_window(row) or kind == CROP_VARIANT:
                if kind not in (0, BOX_VARIANT, CROP_VARIANT) or distance > crop_radius:
                    continue
                variant = CROP_VARIANT
            elif boxes.is_alias(row):
                if kind not in (0, BOX_VARIANT):
                    continue
                variant = BOX_VARIANT
            else:
                variant = kind
            other = boxes.owner(row)
            edge = Edge(file_id, other, distance, variant)
            if other != file_id and better_edge(edge, best.get(other), act):
                best[other] = edge
    return best


def batch_hits(variants: np.ndarray, upright: int, rotated: int):
    """(file, other, distance, variant) rows of every pair within one batch: file's variant
    (upright within `upright`, the others within `rotated`; -1: none) against the other's
    upright code, by brute force (a batch is BATCH files)."""
    upright_codes = variants[:, 0]
    d = (popcount(variants[:, :, None, 0] ^ upright_codes[None, None, :, 0]).astype(np.int64)
         + popcount(variants[:, :, None, 1] ^ upright_codes[None, None, :, 1]))  # (n, k, n)
    radius = np.full(variants.shape[1], rotated, np.int64)
    radius[0] = upright
    f, k, g = np.nonzero((d <= radius[None, :, None]) & ~np.eye(len(variants), dtype=bool)[:, None, :])
    return f, g, d[f, k, g], k


def best_edges(a, b, distance, variant, order, act: int) -> list[Edge]:
    """One edge per (a, b) pair of the hits, the best by `grouping.better_edge` (what
    `_find_edges` keeps of a file's variants), in the order of `order` (the later file's
    edge of a pair replaces the earlier one when stored, as in a lookup per file)."""
    best: dict[tuple[int, int], Edge] = {}
    for i in np.lexsort((b, order)).tolist():
        edge = Edge(int(a[i]), int(b[i]), int(distance[i]), int(variant[i]))
        key = (edge.a, edge.b)
        if better_edge(edge, best.get(key), act):
            best[key] = edge
    return list(best.values())


def code_changed(before: FileRecord | None, after: FileRecord) -> bool:
    """Whether `after` brings a code the index did not hold for this file before the scan
    (other files' lookups saw the old code until then; an unchanged one all along)."""
    return before is None or before.state != STATE_OK or before.code != after.code
