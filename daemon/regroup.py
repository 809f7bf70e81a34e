"""The current groups, kept up to date by regrouping only what changed.

Star grouping (`dedupd.daemon.grouping.build_groups`) works on the graph of admitted
edges, and what it makes of one connected component depends on that component alone
(its order, its candidates, its keep ties): so after a round that changed a few files,
only the components those files are in, or were in, need grouping again. `GroupCache`
remembers which file is in which group; `touch(ids)` marks files whose record or edges
changed (and, before a change, their stored neighbours); `update()` collects the
component of every touched file and every member of a group it was in, by a walk over
admitted edges, groups it, and swaps its groups in. A daemon round thus costs what it
touched, not the size of the index (docs/performance.md, Pipeline); `full()` groups
everything, as the first round does. tests/daemon/test_regroup.py checks that both
give the same groups.

PageRank scores (`keep: representative`) are computed per component: with uniform
teleportation a component's scores are its own scores scaled, so the order inside it
is the same as over the whole graph.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from dedupd.daemon.grouping import Group, Thresholds, admit, build_groups, keyed_groups, pagerank
from dedupd.daemon.keep import keep_key
from dedupd.index.edges import Edge
from dedupd.index.errors import RecordNotFound
from dedupd.index.records import STATE_OK, FileRecord

# Files `GroupCache.full` reads and groups at a time (whole components: a larger one alone).
# At 1M files (100,000 group files), the daemon's heap after a full regroup: 1,000 a batch
# +84 MB, 5,000 +92 MB, 20,000 +99 MB (one pass over all records: +154 MB); 1,000 is no
# slower (100 `get_many`).
FULL_BATCH = 1_000


class GroupCache:
    def __init__(self, index, config, thresholds: Thresholds):
        self.index, self.config, self.thresholds = index, config, thresholds
        self.groups: dict[int, Group] = {}  # keeper file id -> its group
        self.group_of: dict[int, int] = {}  # file id -> keeper file id of its group
        self.dirty: set[int] = set()
        self.changed: list[Group] = []  # the groups the last update made (all of them after `full`)
        self.dropped = 0  # groups the last update took away (replaced or gone)
        self._made: list[Group] = []  # every group made since the last `take_changed`
        self.ready = False

    # -- marking -------------------------------------------------------------------------

    def touch(self, ids: Iterable[int], *, neighbours: bool = False) -> None:
        """Mark files whose record or edges change; with `neighbours`, also every file
        they have a stored edge to (call it before a change that drops edges)."""
        for fid in ids:
            self.dirty.add(fid)
            if neighbours:
                self.dirty.update(e.b for e in self.index.edges_of(fid))

    # -- grouping ------------------------------------------------------------------------

    def all(self) -> list[Group]:
        return list(self.groups.values())

    def full(self, batch: int = FULL_BATCH) -> list[Group]:
        """Group every indexed file. Only files with an edge can be in a group, so only
        their records are read (`get_many`): at a million files with 5 % duplicates a
        tenth of the records. They are read and grouped a batch of whole components at a
        time (`batch` files), so that one batch of full records is in memory beside the
        groups made so far (which hold `GroupFile`s): the 100,000 records at once, with
        what grouping builds around them, were a 190 MB peak (tracemalloc) that the heap
        kept as free space after the round. The PageRank scores come from all edges first,
        and the groups are put in keeper order at the end (`keyed_groups`): the same groups
        in the same order as one `build_groups` over every record."""
        edges = list(self.index.iter_edges())
        key = self._key(edges)
        keyed: list[tuple[tuple, Group]] = []
        for ids, part in component_batches(edges, batch):
            records = {i: r for i, r in self.index.get_many(ids).items() if r.state == STATE_OK}
            keyed += keyed_groups(records, part, self.thresholds, key)
            del records  # before the next batch is read
        keyed.sort(key=lambda pair: pair[0])
        groups = [g for _, g in keyed]
        del keyed, edges, key
        self.groups, self.group_of, self.dirty = {}, {}, set()
        self._add(groups)
        self.changed, self.ready = groups, True
        self._made = list(groups)
        return groups

    def update(self) -> list[Group]:
        """Regroup the components of the touched files; returns every group."""
        if not self.ready:
            return self.full()
        self.changed, self.dropped = [], 0
        if not self.dirty:
            return self.all()
        seeds = set(self.dirty)
        for fid in self.dirty:
            keeper = self.group_of.get(fid)
            if keeper is not None:
                seeds.update(self._files(self.groups[keeper]))
        self.dirty = set()
        records, edges = self._component(seeds)
        for fid in seeds | records.keys():
            keeper = self.group_of.get(fid)
            if keeper is not None:
                self.dropped += 1
                for member in self._files(self.groups.pop(keeper)):
                    self.group_of.pop(member, None)
        self.changed = build_groups(records, edges, self.thresholds, self._key(edges))
        self._add(self.changed)
        self._made += self.changed
        return self.all()

    def take_changed(self) -> list[Group]:
        """The current groups among those made since the last call (what a round must decide on)."""
        made, self._made = self._made, []
        current = {id(g) for g in self.groups.values()}
        return list({id(g): g for g in made if id(g) in current}.values())

    # -- internals -------------------------------------------------------------------------

    def _key(self, edges: list[Edge]):
        scores = pagerank(edges, self.config.report_threshold) if "representative" in self.config.keep else None
        return keep_key(self.config.keep, self.config.keep_path_priority, scores)

    def _add(self, groups: list[Group]) -> None:
        for g in groups:
            self.groups[g.keep.file_id] = g
            for fid in self._files(g):
                self.group_of[fid] = g.keep.file_id

    @staticmethod
    def _files(group: Group) -> list[int]:
        return [group.keep.file_id] + [m.record.file_id for m in group.members]

    def _component(self, seeds: set[int]) -> tuple[dict[int, FileRecord], list[Edge]]:
        """The searchable records reachable from `seeds` over admitted edges, and those edges."""
        cache: dict[int, FileRecord | None] = {}
        records: dict[int, FileRecord] = {}
        edges: list[Edge] = []
        todo, seen = list(seeds), set(seeds)
        while todo:
            rec = self._record(todo.pop(), cache)
            if rec is None:
                continue
            records[rec.file_id] = rec
            for e in self.index.edges_of(rec.file_id):
                other = self._record(e.b, cache)
                if other is None or (rec.dev, rec.ino) == (other.dev, other.ino):
                    continue
                if admit(e, rec, other, self.thresholds) is None:
                    continue
                edges.append(e)
                if e.b not in seen:
                    seen.add(e.b)
                    todo.append(e.b)
        return records, edges

    def _record(self, fid: int, cache: dict) -> FileRecord | None:
        if fid not in cache:
            try:
                rec = self.index.get(fid)
            except RecordNotFound:
                rec = None
            cache[fid] = rec if rec is not None and rec.state == STATE_OK else None
        return cache[fid]


def component_batches(edges: list[Edge], size: int) -> list[tuple[list[int], list[Edge]]]:
    """The files joined by `edges` in batches of whole connected components (over the
    stored edges: a component over admitted edges lies inside one), about `size` files a
    batch (a larger component is a batch of its own); each batch's file ids, ascending,
    and its edges, each component's in the order of `edges`. A list, not a generator: the
    union-find's dicts are freed before the caller reads any record, so the memory they
    held is reused by what it keeps."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        top = x
        while (up := parent[top]) != top:
            top = up
        while x != top:  # path compression: later finds are O(1)
            parent[x], x = top, parent[x]
        return top

    for e in edges:
        parent.setdefault(e.a, e.a)
        parent.setdefault(e.b, e.b)
        ra, rb = root(e.a), root(e.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    files: dict[int, list[int]] = defaultdict(list)
    for fid in sorted(parent):
        files[root(fid)].append(fid)
    by_root: dict[int, list[Edge]] = defaultdict(list)
    for e in edges:
        by_root[root(e.a)].append(e)
    batches: list[tuple[list[int], list[Edge]]] = []
    ids: list[int] = []
    batch: list[Edge] = []
    for top in sorted(files):
        ids += files[top]
        batch += by_root[top]
        if len(ids) >= size:
            batches.append((sorted(ids), batch))
            ids, batch = [], []
    if ids:
        batches.append((sorted(ids), batch))
    return batches
