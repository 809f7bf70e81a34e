"""The group totals from the groups in memory (`GroupTotals.of_groups`, GroupFiles read with one
unpack) equal the totals from their JSON form and the files' records (`of_json`, what the status
falls back to for groups stored without totals), hard links included; and groups holding
records give the same totals as groups holding GroupFiles."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dedupd.daemon.grouping import Group, GroupFile, Member
from dedupd.daemon.status import GroupTotals
from dedupd.index.records import FileRecord

TIERS = st.sampled_from(["exact", "act", "report"])


@st.composite
def groups(draw) -> list[list[tuple[FileRecord, str]]]:
    """Groups as (record, tier) lists, keeper first; a few inodes shared (hard links)."""
    out, n = [], 0
    for _ in range(draw(st.integers(0, 6))):
        group = []
        for _ in range(draw(st.integers(2, 5))):
            n += 1
            ino = draw(st.integers(1, 4)) if draw(st.booleans()) else 100 + n
            group.append((FileRecord(n, f"/p/{n}.jpg", draw(st.sampled_from([1, 2])), ino, draw(st.integers(0, 10**12)),
                                     0, 0), draw(TIERS)))
        out.append(group)
    return out


def made(spec, wrap) -> list[Group]:
    return [Group(f"g{i}", wrap(files[0][0]), tuple(Member(wrap(r), 1, "identity", tier, True) for r, tier in files[1:]))
            for i, files in enumerate(spec)]


@given(groups())
def test_totals_in_memory_equal_totals_from_json(spec):
    in_memory = made(spec, GroupFile.of)
    sizes = {r.path: (r.dev, r.ino, r.size) for files in spec for r, _ in files}
    assert GroupTotals.of_groups(in_memory) == GroupTotals.of_json([g.to_json() for g in in_memory], sizes)
    assert GroupTotals.of_groups(made(spec, lambda r: r)) == GroupTotals.of_groups(in_memory)
