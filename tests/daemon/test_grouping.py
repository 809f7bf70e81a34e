from dedupd.daemon.grouping import Thresholds, better_edge, build_groups, same_aspect, tier_of
from dedupd.daemon.keep import keep_key
from dedupd.index.edges import Edge
from dedupd.index.records import FileRecord

T = Thresholds(act=10, report=24, min_quality=4.0)
KEY = keep_key(["most_pixels", "shortest_path"])


def rec(i, w=100, h=100, content=None, fmt="jpeg", quality=20.0, ino=None, chroma=30.0):
    return FileRecord(i, f"/p/{i}.jpg", 1, ino or i, 1000, 0, 0, w, h, fmt, content or bytes([i]) * 32, (0, 0), "lbph", 1,
                      quality, chroma=chroma)


def groups_of(records, edges, t=T):
    return build_groups({r.file_id: r for r in records}, edges, t, KEY)


def test_groups_are_stars_not_chains():
    # 1 ~ 2 ~ 3 but 1 and 3 are not near: 3 must not join 1's group through 2
    rs = [rec(1, 300, 300), rec(2, 200, 200), rec(3, 100, 100)]
    gs = groups_of(rs, [Edge(1, 2, 5), Edge(2, 3, 5)])
    assert [(g.keep.file_id, [m.record.file_id for m in g.members]) for g in gs] == [(1, [2])]


def test_keeper_is_the_best_copy():
    rs = [rec(1, 100, 100), rec(2, 400, 400), rec(3, 200, 200)]
    (g,) = groups_of(rs, [Edge(1, 2, 3), Edge(2, 3, 4), Edge(1, 3, 2)])
    assert g.keep.file_id == 2 and sorted(m.record.file_id for m in g.members) == [1, 3]


def test_tiers():
    keeper = rec(1, 200, 200)
    def e(distance, variant=0, verified=True):
        return Edge(1, 2, distance, variant, verified)

    assert tier_of(keeper, rec(2, 200, 200, content=keeper.content_hash), e(0, verified=False), T) == "exact"
    assert tier_of(keeper, rec(3, 100, 100), e(10), T) == "act"
    assert tier_of(keeper, rec(3, 100, 100), e(10, verified=False), T) == "report"  # pixels not verified
    assert tier_of(keeper, rec(4, 100, 100), e(11), T) == "report"
    assert tier_of(keeper, rec(5, 100, 100), e(2, 1), T) == "report"  # rotated copies are never acted on
    assert tier_of(keeper, rec(6, 100, 80), e(2), T) == "report"  # other aspect ratio: a crop
    assert tier_of(keeper, rec(7, 100, 100, quality=1.0), e(0), T) == "report"  # flat image: hash uninformative
    assert tier_of(rec(8, 100, 100), rec(9, 200, 200), e(0), T) == "report"  # keeper has fewer pixels
    assert tier_of(keeper, rec(10, 100, 100, chroma=0.5), e(2), T) == "report"  # a greyscale copy is an edit


def test_exact_and_pixel_verified_members_are_verified():
    rs = [rec(1, content=b"a" * 32), rec(2, content=b"a" * 32), rec(3, 50, 50), rec(4, 50, 50)]
    (g,) = groups_of(rs, [Edge(1, 2, 0), Edge(1, 3, 4, 0, True), Edge(1, 4, 4)])
    assert [(m.tier, m.verified) for m in g.members] == [("exact", True), ("act", True), ("report", False)]


def test_variant_is_seen_from_the_keeper():
    rs = [rec(1, 100, 100), rec(2, 300, 300)]
    (g,) = groups_of(rs, [Edge(1, 2, 3, variant=1)])  # 2 ~ rot90(1), so 1 ~ rot270(2)
    assert g.keep.file_id == 2 and g.members[0].variant == "rot270"


def test_hard_links_of_one_inode_are_not_a_group():
    assert groups_of([rec(1, ino=7), rec(2, ino=7)], [Edge(1, 2, 0)]) == []


def test_edges_beyond_the_current_radius_or_rotations_off_are_ignored():
    rs = [rec(1, 200, 200), rec(2)]
    assert groups_of(rs, [Edge(1, 2, 30)]) == []
    assert groups_of(rs, [Edge(1, 2, 3, 4)], Thresholds(10, 24, 4.0, rotations=False)) == []


def test_upright_match_within_act_beats_a_closer_mirror():
    upright, mirror = Edge(1, 2, 8, 0), Edge(1, 2, 3, 4)
    assert better_edge(upright, mirror, act=10) and not better_edge(mirror, upright, act=10)
    assert better_edge(mirror, Edge(1, 2, 15, 0), act=10)


def test_aspect():
    assert same_aspect(rec(1, 300, 200), rec(2, 150, 100))
    assert same_aspect(rec(1, 300, 200), rec(2, 291, 194))  # 3 % trim
    assert not same_aspect(rec(1, 300, 200), rec(2, 255, 200))  # 15 % crop
