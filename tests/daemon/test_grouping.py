import os
import random

import cv2
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dedupd.daemon.grouping import GroupFile, Thresholds, better_edge, build_groups, same_aspect, tier_of
from dedupd.daemon.keep import keep_key
from dedupd.index.edges import Edge
from dedupd.index.records import FileRecord
from testimages import encode, photo, resize, with_exif_orientation, write

T = Thresholds(act=10, report=24, min_quality=4.0)
KEY = keep_key(["most_pixels", "shortest_path"])


def far_code(i):
    """A code ~64 bits from every other file's: these records are only near through their edges."""
    rng = random.Random(i)
    return rng.getrandbits(64), rng.getrandbits(64)


def rec(i, w=100, h=100, content=None, fmt="jpeg", quality=20.0, ino=None, chroma=30.0):
    return FileRecord(i, f"/p/{i}.jpg", 1, ino or i, 1000, 0, 0, w, h, fmt, content or bytes([i]) * 32, far_code(i), "lbph", 1,
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


def test_two_names_of_one_inode_keeping_stars_of_their_own_get_distinct_ids():
    """Hard links (dedupd's own hardlink mode makes them) share bytes and inode but no edge:
    each can keep a star; the ids must still differ (the index refuses duplicate ids)."""
    a, b = rec(1, ino=7, content=b"x" * 32), rec(2, ino=7, content=b"x" * 32)
    groups = groups_of([a, b, rec(3, w=50, h=50), rec(4, w=50, h=50)], [Edge(1, 3, 2), Edge(2, 4, 2)])
    assert len(groups) == 2 and len({g.id for g in groups}) == 2


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


# -- on real photos: a real scan (fingerprints, verification, LMDB index) of a small folder ----------

def scan_groups(root, extra_config: str = "", state: str = "state") -> dict[str, tuple[str, str]]:
    """Scan `root` with the default thresholds; returns file name -> (its keeper's name, its
    tier), the keeper itself as (name, "keeper"). `state`: the state folder beside `root`
    (a wider radius than an index was built with needs a fresh one)."""
    from dedupd.daemon.config import parse_config
    from dedupd.daemon.scan import Scanner
    from dedupd.daemon.state import open_index

    config = parse_config(f"state_dir: {root.parent / state}\nroots: [{{path: {root}}}]\nworkers: 1\n{extra_config}")
    with open_index(config) as index:
        scanner = Scanner(config, index, progress=False)
        scanner.run()
        groups = scanner.regroup()
    out = {}
    for g in groups:
        keeper = os.path.basename(g.keep.path)
        out[keeper] = (keeper, "keeper")
        out.update({os.path.basename(m.record.path): (keeper, m.tier) for m in g.members})
    return out


def on_white(img, side=200, canvas=(400, 600)):
    """A product shot: the picture small and centred on a white page (the kind of picture that
    matches a different one through a rotated variant: the layout dominates the hash)."""
    h, w = canvas
    out = np.full((h, w, 3), 255, np.uint8)
    small = resize(img, side / max(img.shape[:2]))
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def test_a_look_alike_photo_does_not_take_a_true_pair_apart(tmp_path):
    # the stereo pair: two different shots 18 bits apart (report), each with a verified
    # quality-75 copy; star grouping used to give the right shot and its copy to the left
    # shot's keeper as report members
    root = tmp_path / "photos"
    for side in ("left", "right"):
        img = photo(f"motorcycle_{side}")
        write(root / f"{side}.jpg", encode(img, ".jpg", 90), 1_600_000_000)
        write(root / f"{side}_q75.jpg", encode(img, ".jpg", 75), 1_700_000_000)
    got = scan_groups(root)
    assert got["left_q75.jpg"] == ("left.jpg", "act")
    assert got["right_q75.jpg"] == ("right.jpg", "act")
    assert got["right.jpg"] == ("right.jpg", "keeper")  # the look-alike stays with its own copy


def test_rotated_matches_count_only_within_the_rotated_radius(tmp_path):
    # two different product shots match through a transposed variant at ~22 bits (56 upright);
    # a real mirror image matches its original at ~0
    root = tmp_path / "photos"
    moto = on_white(photo("motorcycle_left"))
    write(root / "coffee.jpg", encode(on_white(photo("coffee")), ".jpg", 90))
    write(root / "moto.jpg", encode(moto, ".jpg", 90))
    write(root / "moto_mirror.jpg", encode(np.ascontiguousarray(moto[:, ::-1]), ".jpg", 90))
    got = scan_groups(root)
    assert got["moto_mirror.jpg"][1] == "report" and got["moto_mirror.jpg"][0] in ("moto.jpg", "moto_mirror.jpg")
    assert "coffee.jpg" not in got
    wide = scan_groups(tmp_path / "photos", "thresholds: {act: 16, report: 28, rotated: 28}\n", state="wide")
    assert wide["coffee.jpg"][0] == wide["moto.jpg"][0]  # what the report radius alone let through


def test_flat_pictures_match_only_upright_within_the_act_radius(tmp_path):
    # nearly black renders of different photos (hash quality ~1): the texture word of the hash
    # is all "flat", so a variant of `camera` lies 18 bits from `motorcycle_right` (32 upright)
    # and `chelsea` 24 bits from it upright
    root = tmp_path / "photos"
    for name in ("camera", "motorcycle_right", "chelsea"):
        write(root / f"{name}_dark.png", encode(np.round(photo(name) * 0.02).astype(np.uint8), ".png"))
    assert scan_groups(root) == {}
    loose = scan_groups(root, "min_quality: 0\n")  # without the quality floor all three were grouped
    assert len({keeper for keeper, _ in loose.values()}) == 1 and len(loose) == 3


def test_thresholds_from_config():
    from dedupd.daemon.config import parse_config

    t = Thresholds.from_config(parse_config("thresholds: {act: 12, report: 24, rotated: 18}\nmin_quality: 3\n"))
    assert (t.act, t.report, t.rotated_radius, t.min_quality, t.rotations) == (12, 24, 18, 3.0, True)
    assert Thresholds.from_config(parse_config("thresholds: {act: 8, report: 16}\n")).rotated_radius == 16
    assert Thresholds(10, 24).rotated_radius == 24  # no rotated radius: the report radius


def test_leftover_files_join_the_closest_keeper_and_never_chain():
    # 1 = 2 (act pair), 3 = 4 (act pair); 5 is report-close to both keepers, closer to 3;
    # 6 is report-close only to 5 (then a member): it must not chain through 5
    rs = [rec(1, 400, 400), rec(2, 200, 200), rec(3, 300, 300), rec(4, 150, 150), rec(5, 50, 50), rec(6, 40, 40)]
    edges = [Edge(1, 2, 4, 0, True), Edge(3, 4, 4, 0, True), Edge(1, 3, 20), Edge(1, 4, 20), Edge(2, 3, 22),
             Edge(5, 1, 22), Edge(5, 3, 18), Edge(5, 6, 20)]
    got = {g.keep.file_id: [(m.record.file_id, m.tier) for m in g.members] for g in groups_of(rs, edges)}
    assert got == {1: [(2, "act")], 3: [(4, "act"), (5, "report")]}


def test_a_slightly_larger_re_encode_does_not_displace_the_camera_original(tmp_path):
    # same pixels, 4 % more bytes, no EXIF: with bytes_per_pixel ahead of has_exif the re-save
    # became the keeper and could then never replace the EXIF original: the pair was report
    root = tmp_path / "photos"
    camera_jpeg = encode(photo("astronaut"), ".jpg", 90)
    pixels = cv2.imdecode(np.frombuffer(camera_jpeg, np.uint8), cv2.IMREAD_COLOR)
    write(root / "camera.jpg", with_exif_orientation(camera_jpeg, 1, camera=True), 1_600_000_000)
    write(root / "resaved.jpg", encode(pixels, ".jpg", 92), 1_700_000_000)
    assert scan_groups(root)["resaved.jpg"] == ("camera.jpg", "act")


def test_a_file_stays_with_its_closest_match_rather_than_a_far_keeper():
    # 1 = 2 act pair; 3 is 26 bits from keeper 1 (a look-alike) but 2 bits from 4, its own
    # mirror image: 3 and 4 form their own group instead of 3 joining the far keeper
    rs = [rec(1, 400, 400), rec(2, 200, 200), rec(3, 300, 300), rec(4, 300, 300)]
    edges = [Edge(1, 2, 4, 0, True), Edge(1, 3, 26), Edge(3, 4, 2, 4)]
    got = {g.keep.file_id: [m.record.file_id for m in g.members] for g in groups_of(rs, edges, Thresholds(16, 28, 4.0, rotated=20))}
    assert got == {1: [2], 3: [4]}


def test_two_leftovers_that_both_match_a_keeper_join_it_rather_than_pair_up():
    # 3 (a captioned copy) and 4 (a letterboxed copy) are 20 bits apart and 26 / 24 bits from
    # their picture's keeper 1: they join 1 instead of starting a group of their own
    rs = [rec(1, 400, 400), rec(2, 200, 200), rec(3, 300, 300), rec(4, 300, 300)]
    edges = [Edge(1, 2, 4, 0, True), Edge(1, 3, 26), Edge(1, 4, 24), Edge(3, 4, 20)]
    (g,) = groups_of(rs, edges, Thresholds(16, 28, 4.0, rotated=20))
    assert g.keep.file_id == 1 and [m.record.file_id for m in g.members] == [2, 4, 3]


def test_a_copy_verified_only_against_a_member_joins_that_members_keeper():
    # 2 passed the pixel check against keeper 1; 3 (say a brightened copy) passed only against
    # 2, and 4 only against 3: they are the same picture as 1's group, not a second group
    rs = [rec(1, 400, 400), rec(2, 200, 200), rec(3, 200, 200), rec(4, 200, 200)]
    edges = [Edge(1, 2, 2, 0, True), Edge(1, 3, 6), Edge(2, 3, 2, 0, True), Edge(1, 4, 5), Edge(3, 4, 3, 0, True)]
    (g,) = groups_of(rs, edges, Thresholds(16, 28, 4.0, rotated=20))
    assert g.keep.file_id == 1 and [(m.record.file_id, m.tier) for m in g.members] == [(2, "act"), (4, "report"), (3, "report")]


@given(file_id=st.integers(1, 2**64 - 1), dev=st.integers(0, 2**64 - 1), ino=st.integers(0, 2**64 - 1),
       size=st.integers(0, 2**64 - 1), mtime=st.integers(-(2**63), 2**63 - 1), ctime=st.integers(-(2**63), 2**63 - 1),
       content=st.binary(max_size=32), path=st.text(min_size=1, max_size=40))
def test_a_group_file_reads_back_what_it_was_made_of(file_id, dev, ino, size, mtime, ctime, content, path):
    """GroupFile packs the numbers and the hash of a record (any stored record's values: the
    index's widths) and reads each back as the record has it."""
    r = FileRecord(file_id, path, dev, ino, size, mtime, ctime, 10, 10, "jpeg", content, (1, 2), "lbph", 1, 5.0)
    f = GroupFile.of(r)
    fields = ("file_id", "path", "dev", "ino", "size", "mtime_ns", "ctime_ns", "content_hash")
    assert [getattr(f, name) for name in fields] == [getattr(r, name) for name in fields]
    assert f == GroupFile.of(r) and hash(f) == hash(GroupFile.of(r))
