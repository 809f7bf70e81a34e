"""`GroupCache.full` groups a batch of whole components at a time: the same groups, in the
same order, as one `build_groups` over every record (the oracle), whatever the batch size.
And `component_batches` against a brute-force component search."""

from __future__ import annotations

import random
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedupd.daemon.grouping import GroupFile, Thresholds, build_groups, pagerank
from dedupd.daemon.keep import keep_key
from dedupd.daemon.regroup import GroupCache, component_batches
from dedupd.index.edges import Edge
from dedupd.index.memory import MemoryIndex
from dedupd.index.records import FileRecord

T = Thresholds(act=10, report=24, min_quality=4.0, rotated=16)
RULES = (
    ("most_pixels", "lossless", "has_exif", "bytes_per_pixel", "oldest", "path_priority", "shortest_path"),
    ("representative", "bytes_per_pixel", "shortest_path"),
)


def library(seed: int, n: int, n_edges: int) -> tuple[list[FileRecord], list[tuple[int, int, int, int, bool]]]:
    """Records alike enough for every tier and keep rule to matter (shared contents, sizes,
    formats, dimensions), and edges (i, j, distance, variant, verified) between them."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        w = rng.choice((100, 200, 300))
        records.append(FileRecord(
            0, f"/p/{rng.choice('ab')}/{i:03d}.{rng.choice(('jpg', 'png'))}", 1, 1000 + i, rng.choice((1000, 1080, 2000)),
            rng.choice((0, 5)), 0, w, rng.choice((w, w, w, w * 3 // 2)), rng.choice(("jpeg", "png")),
            bytes([rng.randrange(3)]) * 32 if rng.random() < 0.3 else bytes([i % 256, i // 256 + 7]) * 16,
            (rng.getrandbits(64), rng.getrandbits(63)), "lbph", 1, rng.choice((2.0, 20.0, 20.0, 20.0)), rng.random() < 0.5,
            chroma=rng.choice((1.0, 30.0, 30.0, 30.0)), encoding=rng.choice((0, 7))))
    edges = [(rng.randrange(n), rng.randrange(n), rng.choice((0, 2, 5, 9, 12, 18, 25)), rng.choice((0, 0, 0, 3)), rng.random() < 0.7)
             for _ in range(n_edges)]
    return records, edges


def snapshot(groups) -> list:
    return [(g.id, g.keep, [(m.record, m.distance, m.variant, m.tier, m.verified) for m in g.members]) for g in groups]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), n=st.integers(2, 60), density=st.floats(0.2, 1.5),
       batch=st.sampled_from([1, 2, 3, 7, 1000]), rules=st.sampled_from(RULES))
def test_full_in_batches_equals_one_build_groups(seed, n, density, batch, rules):
    records, raw_edges = library(seed, n, int(n * density))
    index = MemoryIndex()
    stored = index.put_many(records)
    index.add_edges(Edge(stored[i].file_id, stored[j].file_id, d, v, ok) for i, j, d, v, ok in raw_edges if i != j)
    edges = list(index.iter_edges())
    config = SimpleNamespace(keep=rules, keep_path_priority=("/p/b",), report_threshold=T.report)
    scores = pagerank(edges, T.report) if "representative" in rules else None
    oracle = build_groups({r.file_id: r for r in stored}, edges, T, keep_key(rules, ("/p/b",), scores))
    groups = GroupCache(index, config, T).full(batch)
    assert snapshot(groups) == snapshot(oracle)
    assert all(isinstance(f, GroupFile) for g in groups for f in [g.keep, *(m.record for m in g.members)])


@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), max_size=80), st.integers(1, 12))
def test_component_batches_hold_whole_components(pairs, size):
    edges = [Edge(a, b, 1) for a, b in pairs]
    batches = component_batches(edges, size)
    # brute force: the component of every file by a walk
    near: dict[int, set[int]] = {}
    for a, b in pairs:
        near.setdefault(a, set()).add(b)
        near.setdefault(b, set()).add(a)
    component = {}
    for start in near:
        if start not in component:
            todo, seen = [start], {start}
            while todo:
                for other in near[todo.pop()] - seen:
                    seen.add(other)
                    todo.append(other)
            for f in seen:
                component[f] = frozenset(seen)
    assert sorted(f for ids, _ in batches for f in ids) == sorted(near)  # every file once
    assert sorted(e for _, es in batches for e in es) == sorted(edges)  # every edge once
    for ids, batch_edges in batches:
        assert ids == sorted(ids)
        assert set().union(*(component[f] for f in ids)) == set(ids)  # whole components only
        assert all(e.a in ids and e.b in ids for e in batch_edges)
        for comp in {component[f] for f in ids}:  # each component's edges in the order of `edges`
            assert [e for e in batch_edges if e.a in comp] == [e for e in edges if e.a in comp]
        # full batches: a batch reaches `size` only with its last component
        biggest_last = len(component[max(ids, key=lambda f: min(component[f]))])
        assert len(ids) < size + biggest_last
    assert all(len(ids) >= size for ids, _ in batches[:-1])
