"""The one conformance suite: every test runs against MemoryIndex and LmdbIndex
(the `index`/`make_index` fixtures in conftest.py). LMDB-only behaviour (reopen,
mismatch, corruption) is at the end."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import pytest

from dedupd.index import (STATE_ERROR, FileRecord, Index, IndexCorrupt, IndexFailure,
                          IndexMismatch, InvalidRecord, LmdbIndex, PathConflict, RecordNotFound)
from dedupd.index.boxes import BOX_ALIAS
from dedupd.index.edges import Edge
from dedupd.kernels.errors import DedupdError


def rec(path: str, ino: int = 1, code=(1, 2), **kw) -> FileRecord:
    fields = dict(file_id=0, path=path, dev=7, ino=ino, size=100, mtime_ns=5, ctime_ns=6,
                  width=40, height=30, format="jpeg", content_hash=hashlib.sha256(os.fsencode(path)).digest(),
                  code=code, algo="lbph", algo_version=1, quality=0.5)
    fields.update(kw)
    return FileRecord(**fields)


def table_sizes(ix) -> dict:
    return {k: v for k, v in ix.stats()["entries"].items() if k not in ("meta", "groups", "edges", "box_codes", "crop_codes")}


def test_implements_the_protocol(index):
    assert isinstance(index, Index)
    assert (index.meta.code_bits, index.meta.m, index.meta.algo) == (128, 0, "lbph")  # m 0: chosen from n


def test_put_assigns_increasing_ids_and_get_returns_the_record(index):
    a, b = index.put(rec("/a", 1)), index.put(rec("/b", 2))
    assert 0 < a.file_id < b.file_id
    assert index.get(a.file_id) == a == rec("/a", 1).with_(file_id=a.file_id)
    assert len(index) == 2


def test_get_missing_raises_record_not_found(index):
    with pytest.raises(RecordNotFound) as e:
        index.get(12345)
    assert isinstance(e.value, DedupdError) and "12345" in str(e.value)


@pytest.mark.parametrize("bad_id", [0, -1, 2**64, 2**70])
def test_get_of_impossible_ids_raises_record_not_found(index, bad_id):
    index.put(rec("/a"))
    with pytest.raises(RecordNotFound):
        index.get(bad_id)
    assert index.delete_many([bad_id]) == 0 and index.by_inode(-1, 1) == [] and index.by_inode(7, 2**64) == []


def test_ids_are_never_reused(index):
    first = index.put_many([rec(f"/f{i}", i) for i in range(3)])
    assert index.delete_many([r.file_id for r in first]) == 3
    again = index.put(rec("/f0", 0))
    assert again.file_id > max(r.file_id for r in first)


def test_replace_updates_every_table(index):
    a = index.put(rec("/old", ino=1, code=(0xFF, 0), content_hash=b"h1" * 16))
    before = table_sizes(index)
    b = index.put(a.with_(path="/new", ino=2, code=(0xFF00, 0), content_hash=b"h2" * 16))
    assert b.file_id == a.file_id and len(index) == 1
    assert table_sizes(index) == before
    assert index.by_path("/old") is None and index.by_path("/new") == b
    assert index.by_inode(7, 1) == [] and index.by_inode(7, 2) == [b]
    assert index.by_content(b"h1" * 16) == [] and index.by_content(b"h2" * 16) == [b]
    assert index.range_search((0xFF, 0), 0) == [] and index.range_search((0xFF00, 0), 0) == [(b.file_id, 0)]


def test_replace_with_unchanged_fields_keeps_tables(index):
    a = index.put(rec("/a"))
    before = table_sizes(index)
    assert index.put(a.with_(size=999)).size == 999
    assert table_sizes(index) == before and index.get(a.file_id).size == 999


def test_replace_unknown_id_raises(index):
    with pytest.raises(RecordNotFound):
        index.put(rec("/a").with_(file_id=99))


def test_delete_removes_from_every_table(index):
    a, b = index.put_many([rec("/a", 1, code=(3, 4)), rec("/b", 2, code=(3, 5))])
    assert index.delete_many([a.file_id, 424242]) == 1
    assert len(index) == 1 and index.by_path("/a") is None and index.by_inode(7, 1) == []
    assert index.by_content(a.content_hash) == []
    assert index.range_search((3, 4), 128) == [(b.file_id, 1)]
    assert all(v == 1 for k, v in table_sizes(index).items() if k != "files") and len(index) == 1
    assert index.delete_many([a.file_id]) == 0


def test_by_path_handles_undecodable_names(index):
    weird = "/photos/caf\udce9.jpg"  # a Latin-1 byte in a UTF-8 file system, via surrogateescape
    a = index.put(rec(weird))
    assert index.by_path(weird) == a and index.get(a.file_id).path == weird
    assert index.by_path("/photos/café.jpg") is None


def test_by_inode_returns_every_hard_link(index):
    a, b = index.put_many([rec("/x/one", ino=9), rec("/y/two", ino=9)])
    index.put(rec("/z", ino=10))
    assert index.by_inode(7, 9) == [a, b]
    assert index.by_inode(8, 9) == []


def test_by_content_groups_identical_bytes(index):
    h = b"\x01" * 32
    a, b = index.put_many([rec("/a", 1, content_hash=h), rec("/b", 2, content_hash=h)])
    index.put(rec("/c", 3, content_hash=b""))
    assert index.by_content(h) == [a, b]
    assert index.by_content(b"") == [] and index.by_content(b"\x02" * 32) == []


def test_path_conflict_is_refused(index):
    index.put(rec("/a", 1))
    with pytest.raises(PathConflict):
        index.put(rec("/a", 2))
    assert len(index) == 1


def test_failed_batch_changes_nothing(index):
    index.put(rec("/a", 1))
    with pytest.raises(PathConflict):
        index.put_many([rec("/b", 2), rec("/a", 3)])
    assert len(index) == 1 and index.by_path("/b") is None and index.by_inode(7, 2) == []
    assert index.put(rec("/c", 4)).file_id == 2  # the aborted batch used no id


def test_one_path_twice_in_a_batch_is_refused(index):
    with pytest.raises(PathConflict):
        index.put_many([rec("/x", 1), rec("/y", 2), rec("/x", 3)])
    assert len(index) == 0 and index.by_path("/x") is None and index.range_search((1, 2), 0) == []


def test_a_batch_mixing_new_replaced_and_moved_records(index):
    a, b = index.put_many([rec("/a", 1, code=(1, 0)), rec("/b", 2, code=(2, 0))])
    c, a2, d, b2 = index.put_many([rec("/c", 3, code=(3, 0)), a.with_(path="/a2", code=(4, 0)),
                                   rec("/a", 4, code=(1, 0)), b.with_(code=None, state=STATE_ERROR)])
    assert [r.file_id for r in (c, d)] == [b.file_id + 1, b.file_id + 2] and a2.file_id == a.file_id
    assert index.by_path("/a") == d and index.by_path("/a2") == a2 and index.by_path("/c") == c
    assert index.range_search((1, 0), 0) == [(d.file_id, 0)] and index.range_search((4, 0), 0) == [(a.file_id, 0)]
    assert index.range_search((2, 0), 0) == [] and len(index) == 4
    assert [r.file_id for r in index.iter_records()] == [a.file_id, b.file_id, c.file_id, d.file_id]


def test_error_records_are_stored_but_not_searchable(index):
    bad = index.put(rec("/broken", code=None, state=STATE_ERROR, error="undecodable"))
    assert index.get(bad.file_id) == bad and index.by_path("/broken") == bad
    ok = index.put(rec("/fine", 2, code=(0, 0)))
    assert index.range_search((0, 0), 128) == [(ok.file_id, 0)]
    ids, codes = index.all_codes()
    assert ids.tolist() == [ok.file_id] and codes.tolist() == [[0, 0]]


def test_error_record_becomes_searchable_when_replaced_with_a_code(index):
    bad = index.put(rec("/f", code=None, state=STATE_ERROR, error="truncated"))
    good = index.put(bad.with_(code=(5, 6), state="ok", error=""))
    assert index.range_search((5, 6), 0) == [(good.file_id, 0)]
    index.put(good.with_(code=None, state=STATE_ERROR))
    assert index.range_search((5, 6), 128) == []


def test_invalid_records_are_refused(make_index):
    ix = make_index(code_bits=64, m=4)
    for bad in (rec("/a", code=(1, 1)), rec("/b", code=(1, 0), algo="pdq"),
                rec("/c", size=-1), rec("/d", code=(1 << 64, 0))):
        with pytest.raises(InvalidRecord):
            ix.put(bad)
    assert len(ix) == 0


def test_range_search_sorted_by_distance_then_id(index):
    recs = index.put_many([rec(f"/{i}", i, code=(c, 0)) for i, c in enumerate([0b111, 0b1, 0b11, 0b1, 0])])
    ids = [r.file_id for r in recs]
    assert index.range_search(np.array([0, 0], dtype=np.uint64), 2) == [
        (ids[4], 0), (ids[1], 1), (ids[3], 1), (ids[2], 2)]
    assert index.range_search((0, 0), 0) == [(ids[4], 0)]


def test_range_search_many_one_list_per_query(index):
    a, b = index.put_many([rec("/a", 1, code=(0, 0)), rec("/b", 2, code=(0, 1 << 63))])
    queries = np.array([[0, 0], [0, 1 << 63], [~np.uint64(0), ~np.uint64(0)]], dtype=np.uint64)
    assert index.range_search_many(queries, 1) == [
        [(a.file_id, 0), (b.file_id, 1)], [(b.file_id, 0), (a.file_id, 1)], []]
    assert index.range_search_many(np.zeros((0, 2), dtype=np.uint64), 3) == []


def test_range_search_rejects_bad_queries(make_index):
    ix = make_index(code_bits=64)
    with pytest.raises(ValueError):
        ix.range_search((0, 1), 3)  # word 1 must be 0 for 64-bit codes
    with pytest.raises(ValueError):
        ix.range_search((0, 0), -1)


def test_all_codes_and_iter_records(index):
    recs = index.put_many([rec(f"/{i}", i, code=(i, 2 * i)) for i in range(1, 6)])
    ids, codes = index.all_codes()
    assert ids.dtype == np.int64 and codes.dtype == np.uint64 and codes.shape == (5, 2)
    assert ids.tolist() == [r.file_id for r in recs]
    assert codes.tolist() == [[i, 2 * i] for i in range(1, 6)]
    assert list(index.iter_records()) == recs


def test_iter_records_crosses_batches(index):
    recs = index.put_many([rec(f"/{i}", i) for i in range(1300)])
    assert list(index.iter_records()) == recs


def test_empty_index(index):
    assert len(index) == 0 and list(index.iter_records()) == [] and list(index.iter_groups()) == []
    ids, codes = index.all_codes()
    assert ids.shape == (0,) and codes.shape == (0, 2)
    assert index.range_search((0, 0), 128) == [] and index.get_meta("x", 3) == 3


def test_meta_round_trip(index):
    stats = {"files": 3, "seconds": 1.5, "dirs": ["/a", "/b"], "nested": {"ok": True}}
    index.set_meta("last_scan", stats)
    index.set_meta("tuple", (1, 2))
    assert index.get_meta("last_scan") == stats
    assert index.get_meta("tuple") == [1, 2]  # JSON, as stored
    assert index.get_meta("missing") is None and index.get_meta("missing", {}) == {}
    with pytest.raises(TypeError):
        index.set_meta("bad", object())


def test_meta_keys_do_not_clash_with_settings(index):
    index.set_meta("m", 99)
    index.set_meta("next_id", "x")
    assert index.meta.m == 0 and index.put(rec("/a")).file_id == 1
    assert index.get_meta("m") == 99


@pytest.mark.parametrize("key", ["", "k" * 401, 5])
def test_bad_meta_keys_are_refused(index, key):
    with pytest.raises(ValueError):
        index.set_meta(key, 1)
    assert index.get_meta(key, "default") == "default"


def test_groups_are_replaced_as_a_whole(index):
    index.replace_groups([{"id": "g2", "members": [1, 2]}, {"id": "g1", "members": [3, 4], "tier": "exact"}])
    assert list(index.iter_groups()) == [{"id": "g1", "members": [3, 4], "tier": "exact"},
                                         {"id": "g2", "members": [1, 2]}]
    index.replace_groups([{"id": "g3"}, {"id": "\u00e9t\u00e9"}, {"id": "Z"}])
    assert [g["id"] for g in index.iter_groups()] == ["Z", "g3", "\u00e9t\u00e9"]  # by UTF-8 bytes
    index.replace_groups([])
    assert list(index.iter_groups()) == []


def test_replacing_groups_keeps_unchanged_ones_and_drops_the_rest(index):
    """The store writes only what changed (lmdb: a diff against the stored table); what is
    read back must still be exactly the new set, against a dict oracle, over several rounds
    where groups are kept, changed, added and dropped."""
    rng = random.Random(7)
    for _ in range(6):
        ids = rng.sample(range(40), rng.randrange(0, 25))
        groups = [{"id": f"g{i:02d}", "members": [i, rng.randrange(3)]} for i in ids]
        index.replace_groups(groups)
        assert list(index.iter_groups()) == sorted(groups, key=lambda g: g["id"].encode())


@pytest.mark.parametrize("groups", [[{"members": []}], [{"id": 3}], [{"id": "a"}, {"id": "a"}],
                                    [{"id": "x" * 401}], ["not a dict"], [{"id": "b", "bad": object()}]])
def test_bad_groups_are_refused_and_change_nothing(index, groups):
    index.replace_groups([{"id": "keep"}])
    with pytest.raises((ValueError, TypeError)):
        index.replace_groups(groups)
    assert list(index.iter_groups()) == [{"id": "keep"}]


def test_stats_counts_entries(index):
    index.put_many([rec("/a", 1), rec("/b", 1, code=None)])
    st = index.stats()
    assert st["files"] == 2
    assert st["entries"]["codes"] == 1 and st["entries"]["inodes"] == 2 and st["entries"]["paths"] == 2


def test_64_bit_index_with_m2(make_index):
    ix = make_index(code_bits=64, m=2)
    a = ix.put(rec("/a", code=(0xFFFF_0000_0000_0001, 0)))
    assert ix.meta.m == 2 and ix.range_search((0xFFFF_0000_0000_0000, 0), 1) == [(a.file_id, 1)]


@pytest.mark.parametrize("m", [-1, 1, 129, 256, True])
def test_bad_m_is_refused(make_index, m):
    with pytest.raises(ValueError):
        make_index(m=m)


def test_closed_index_refuses_work(make_index):
    ix = make_index()
    with ix:
        ix.put(rec("/a"))
    with pytest.raises(IndexFailure):
        ix.get(1)


# -- LMDB only ----------------------------------------------------------------

def test_edges_are_stored_from_both_sides(index):
    a, b, c = index.put_many([rec("/a", 1), rec("/b", 2), rec("/c", 3)])
    assert index.add_edges([Edge(a.file_id, b.file_id, 4, 1), Edge(c.file_id, a.file_id, 9, 0, True)]) == 2
    assert index.edges_of(a.file_id) == [Edge(a.file_id, b.file_id, 4, 1), Edge(a.file_id, c.file_id, 9, 0, True)]
    assert index.edges_of(b.file_id) == [Edge(b.file_id, a.file_id, 4, 3)]  # rot90 seen back is rot270
    assert list(index.iter_edges()) == [Edge(a.file_id, b.file_id, 4, 1), Edge(a.file_id, c.file_id, 9, 0, True)]


def test_an_edge_replaces_the_older_edge_of_its_pair(index):
    a, b = index.put_many([rec("/a", 1), rec("/b", 2)])
    index.add_edges([Edge(a.file_id, b.file_id, 7)])
    index.add_edges([Edge(b.file_id, a.file_id, 5, 4)])
    assert list(index.iter_edges()) == [Edge(a.file_id, b.file_id, 5, 4)]
    assert index.stats()["entries"]["edges"] == 2


def test_edges_go_with_deleted_or_recoded_records(index):
    a, b, c = index.put_many([rec("/a", 1), rec("/b", 2), rec("/c", 3)])
    index.add_edges([Edge(a.file_id, b.file_id, 1), Edge(a.file_id, c.file_id, 2), Edge(b.file_id, c.file_id, 3)])
    index.delete_many([c.file_id])
    assert list(index.iter_edges()) == [Edge(a.file_id, b.file_id, 1)]
    index.put(b.with_(size=999))  # same code: its edges still hold
    assert index.edges_of(b.file_id) == [Edge(b.file_id, a.file_id, 1)]
    index.put(b.with_(code=(99, 99)))  # new code: its edges are gone, from both sides
    assert index.edges_of(a.file_id) == [] and list(index.iter_edges()) == []


def test_edges_need_searchable_ends(index):
    a, err = index.put_many([rec("/a", 1), rec("/e", 2, code=None, state=STATE_ERROR, error="corrupt")])
    assert index.add_edges([Edge(a.file_id, err.file_id, 1), Edge(a.file_id, 12345, 1), Edge(a.file_id, a.file_id, 0)]) == 0
    with pytest.raises(ValueError):
        index.add_edges([Edge(a.file_id, err.file_id, 300)])


def test_iter_edges_crosses_batches(index):
    recs = index.put_many([rec(f"/r{i}", i) for i in range(60)])
    index.add_edges([Edge(x.file_id, y.file_id, 1) for x in recs for y in recs if x.file_id < y.file_id])
    assert len(list(index.iter_edges())) == 60 * 59 // 2


# -- box codes: alias rows of the code table (`dedupd.index.boxes`) ------------------------------

def _distance(x, y) -> int:
    return (int(x[0]) ^ int(y[0])).bit_count() + (int(x[1]) ^ int(y[1])).bit_count()


def box_oracle(records: dict[int, FileRecord], queries, radius: int, boxes: bool) -> list[list[tuple[int, int]]]:
    """Brute force: per query, (row id, distance) of every searchable record's code, and with
    `boxes` of every searchable record's box code under its alias id, sorted by (distance, id)."""
    rows = [(fid, r.code) for fid, r in records.items() if r.code is not None and r.state == "ok"]
    if boxes:
        rows += box_codes_oracle(records) + crop_codes_oracle(records)
    return [sorted(((i, d) for i, c in rows if (d := _distance(q, c)) <= radius), key=lambda h: (h[1], h[0]))
            for q in queries]


def box_codes_oracle(records: dict[int, FileRecord]) -> list[tuple[int, tuple[int, int]]]:
    return sorted((BOX_ALIAS | fid, r.box_code) for fid, r in records.items()
                  if r.code is not None and r.state == "ok" and r.box_code is not None)


def crop_codes_oracle(records: dict[int, FileRecord]) -> list[tuple[int, tuple[int, int]]]:
    """Window rows: alias id BOX_ALIAS | slot << 40 | file id, slots from 1, by id."""
    return sorted((BOX_ALIAS | slot << 40 | fid, c) for fid, r in records.items()
                  if r.code is not None and r.state == "ok" for slot, c in enumerate(r.crop_codes, 1))


def check_boxes(index, records: dict[int, FileRecord], rng) -> None:
    """Searches with and without alias rows, `all_codes`, `all_box_codes`, `all_crop_codes`
    and the counts against the oracle."""
    pool = ([r.code for r in records.values() if r.code] + [r.box_code for r in records.values() if r.box_code]
            + [c for r in records.values() for c in r.crop_codes])
    queries = [rng.choice(pool) if pool and rng.random() < 0.7 else (rng.getrandbits(8), rng.getrandbits(8))
               for _ in range(6)]
    for radius in (0, 2, 5):
        for boxes in (False, True):
            assert index.range_search_many(np.array(queries, np.uint64), radius, boxes=boxes) == \
                box_oracle(records, queries, radius, boxes)
        assert [index.range_search(q, radius) for q in queries] == box_oracle(records, queries, radius, False)
    ids, codes = index.all_codes()
    assert ids.tolist() == sorted(f for f, r in records.items() if r.code is not None and r.state == "ok")
    box_ids, box_codes = index.all_box_codes()
    assert list(zip(box_ids.tolist(), map(tuple, box_codes.tolist()))) == box_codes_oracle(records)
    crop_ids, crop_codes = index.all_crop_codes()
    assert list(zip(crop_ids.tolist(), map(tuple, crop_codes.tolist()))) == crop_codes_oracle(records)
    entries = index.stats()["entries"]
    assert (entries["box_codes"], entries["crop_codes"], entries["codes"]) == (len(box_ids), len(crop_ids), len(ids))
    assert len(index) == len(records)


@pytest.mark.parametrize("seed", range(6))
def test_box_rows_follow_their_records_against_a_brute_force_oracle(index, seed):
    """Random puts, replaces (code, box code, crop codes, state changes) and deletes of
    records with small codes (many collisions): box and window rows exist exactly for
    searchable records with a box code / crop codes, are found only with boxes=True, and
    every id stays a record id elsewhere."""
    rng = random.Random(seed)
    records: dict[int, FileRecord] = {}

    def small():
        return (rng.getrandbits(6), rng.getrandbits(3))

    for step in range(12):
        batch, used = [], set()
        for _ in range(rng.randint(1, 8)):
            fid = rng.choice(list(records)) if records and rng.random() < 0.4 else 0
            if fid in used:
                continue
            used.add(fid) if fid else None
            error = rng.random() < 0.15
            base = records[fid] if fid else rec(f"/s{seed}/{step}/{len(batch)}", rng.getrandbits(20))
            batch.append(base.with_(
                code=None if error else small(), state=STATE_ERROR if error else "ok", error="corrupt" if error else "",
                box_code=small() if rng.random() < 0.5 else None,
                crop_codes=tuple(small() for _ in range(rng.choice((0, 0, 1, 3, 6))))))
        for r in index.put_many(batch):
            records[r.file_id] = r
        if records and rng.random() < 0.5:
            gone = rng.sample(list(records), rng.randint(1, min(3, len(records))))
            assert index.delete_many(gone) == len(gone)
            for fid in gone:
                del records[fid]
        for fid, r in records.items():
            assert index.get(fid) == r
        check_boxes(index, records, rng)


def test_a_box_row_goes_with_its_box_code_or_its_record(index):
    a, b = index.put_many([rec("/a", 1, code=(1, 0), box_code=(7, 0)), rec("/b", 2, code=(7, 0))])
    assert index.range_search_many(np.array([[7, 0]], np.uint64), 0, boxes=True) == \
        [[(b.file_id, 0), (BOX_ALIAS | a.file_id, 0)]]
    assert index.range_search((7, 0), 0) == [(b.file_id, 0)]  # records only
    index.put(a.with_(box_code=None))  # the picture lost its bars
    assert index.all_box_codes()[0].tolist() == [] and index.get(a.file_id).box_code is None
    index.put(a.with_(box_code=(9, 0)))
    assert index.all_box_codes()[0].tolist() == [BOX_ALIAS | a.file_id]
    index.put(a.with_(code=None, state=STATE_ERROR, error="corrupt", box_code=(9, 0)))  # not searchable: no row
    assert index.all_box_codes()[0].tolist() == []
    index.put(a.with_(box_code=(9, 0)))
    index.delete_many([a.file_id])
    assert index.all_box_codes()[0].tolist() == [] and index.stats()["entries"]["box_codes"] == 0


def test_edges_go_when_the_box_code_changes(index):
    a, b = index.put_many([rec("/a", 1, box_code=(5, 5)), rec("/b", 2)])
    index.add_edges([Edge(a.file_id, b.file_id, 0, 8)])
    index.put(a.with_(size=5))  # same codes: the edge holds
    assert index.edges_of(b.file_id) == [Edge(b.file_id, a.file_id, 0, 8)]
    index.put(a.with_(box_code=(6, 6)))
    assert list(index.iter_edges()) == []


def test_lmdb_box_rows_survive_reopen(tmp_path):
    path = tmp_path / "ix"
    with LmdbIndex.open(path, code_bits=128, algo="lbph", algo_version=1) as ix:
        a, b = ix.put_many([rec("/a", 1, code=(1, 0), box_code=(3, 0)), rec("/b", 2, code=(3, 0))])
        ix.range_search((1, 0), 0)  # loads the in-RAM tables before more writes
        c = ix.put(rec("/c", 3, code=(2, 0), box_code=(1, 0)))
    with LmdbIndex.open(path, code_bits=128, algo="lbph", algo_version=1, readonly=True) as ix:
        assert ix.all_box_codes()[0].tolist() == [BOX_ALIAS | a.file_id, BOX_ALIAS | c.file_id]
        assert ix.all_codes()[0].tolist() == [a.file_id, b.file_id, c.file_id]
        assert ix.range_search_many(np.array([[1, 0]], np.uint64), 0, boxes=True) == [[(a.file_id, 0), (BOX_ALIAS | c.file_id, 0)]]
        assert ix.stats()["entries"]["codes"] == 3 and ix.stats()["entries"]["box_codes"] == 2


def test_lmdb_reopen_persists_everything(tmp_path):
    path = tmp_path / "ix"
    with LmdbIndex.open(path, code_bits=128, algo="lbph", algo_version=1) as ix:
        a, b = ix.put_many([rec("/a", 1, code=(1, 0)), rec("/b", 1, code=(3, 0))])
        ix.delete_many([b.file_id])
        ix.set_meta("last_scan", {"files": 2})
        ix.replace_groups([{"id": "g", "members": [a.file_id]}])
    with LmdbIndex.open(path, code_bits=128, algo="lbph", algo_version=1, readonly=True) as ro:
        assert list(ro.iter_records()) == [a] and ro.by_inode(7, 1) == [a] and ro.by_path("/a") == a
        assert ro.range_search((0, 0), 1) == [(a.file_id, 1)]
        assert ro.get_meta("last_scan") == {"files": 2} and list(ro.iter_groups())[0]["id"] == "g"
        with pytest.raises(IndexFailure, match="read-only"):
            ro.put(rec("/c"))
    with LmdbIndex.open(path, code_bits=128, algo="lbph", algo_version=1) as ix:
        assert ix.put(rec("/c", 5)).file_id == b.file_id + 1


@pytest.mark.parametrize("change", [{"algo": "pdq"}, {"algo_version": 2}, {"code_bits": 64}, {"m": 16}])
def test_lmdb_mismatch_asks_for_reindex(tmp_path, change):
    args = dict(code_bits=128, algo="lbph", algo_version=1)
    LmdbIndex.open(tmp_path, **args).close()
    with pytest.raises(IndexMismatch, match="dedupctl reindex"):
        LmdbIndex.open(tmp_path, **{**args, **change})
    LmdbIndex.open(tmp_path, **args, m=None).close()  # m=None accepts the stored m


def test_lmdb_index_of_schema_2_asks_for_reindex(tmp_path):
    """Schema 2 kept MIH tables in LMDB; schema 3 stores each code once: reopening says what to do."""
    import lmdb
    with LmdbIndex.open(tmp_path, code_bits=128, algo="lbph", algo_version=1) as ix:
        ix.put(rec("/a"))
    env = lmdb.open(str(tmp_path), max_dbs=20)
    with env.begin(write=True) as txn:
        txn.put(b"schema_version", b"2", db=env.open_db(b"meta", txn=txn, create=False))
    env.close()
    with pytest.raises(IndexMismatch, match=r"schema version 2, this dedupd uses 4; run `dedupctl reindex`"):
        LmdbIndex.open(tmp_path, code_bits=128, algo="lbph", algo_version=1)


def test_lmdb_codes_are_stored_once_and_survive_reopen(tmp_path):
    recs = [rec(f"/p/{i}", i, code=(i * 7919, i)) for i in range(1, 2001)]
    with LmdbIndex.open(tmp_path, code_bits=128, algo="lbph", algo_version=1) as ix:
        stored = ix.put_many(recs)
        ix.delete_many([r.file_id for r in stored[::3]])
        ix.put(stored[1].with_(code=(5, 5)))
        st = ix.stats()
        assert st["entries"]["codes"] == 2000 - 667 and st["table_bytes"]["codes"] < 40 * 2000
    with LmdbIndex.open(tmp_path, code_bits=128, algo="lbph", algo_version=1, readonly=True) as ro:
        ids, codes = ro.all_codes()
        live = [r for i, r in enumerate(stored) if i % 3]
        assert ids.tolist() == [r.file_id for r in live]
        assert codes.tolist() == [[5, 5] if r.file_id == stored[1].file_id else list(r.code) for r in live]
        assert ro.range_search((5, 5), 0) == [(stored[1].file_id, 0)]


def test_lmdb_lookups_check_each_candidate_against_its_record(tmp_path, monkeypatch):
    """`by_inode` and `by_content` find candidates by a 6-byte prefix: with prefixes made to
    collide on purpose (one per device, one per first hash byte), every answer is still exact,
    through replaces and deletes."""
    from dedupd.index import codec
    monkeypatch.setattr(codec, "inode_prefix", lambda dev, ino: bytes([dev % 256]) * 6)
    monkeypatch.setattr(codec, "content_prefix", lambda h: bytes(h[:1]).ljust(6, b"\0"))
    h = [bytes([i % 3, i]) * 16 for i in range(12)]
    with LmdbIndex.open(tmp_path, code_bits=128, algo="lbph", algo_version=1) as ix:
        a = ix.put_many([rec(f"/a{i}", i % 4, content_hash=h[i % 6]) for i in range(12)])
        assert [r.file_id for r in ix.by_inode(7, 1)] == [a[1].file_id, a[5].file_id, a[9].file_id]
        assert ix.by_content(h[0]) == [a[0], a[6]] and ix.by_content(h[3]) == [a[3], a[9]]
        ix.put(a[0].with_(content_hash=h[3], ino=1))
        ix.delete_many([a[9].file_id])
        assert [r.file_id for r in ix.by_content(h[3])] == [a[0].file_id, a[3].file_id]
        assert [r.file_id for r in ix.by_inode(7, 1)] == [a[0].file_id, a[1].file_id, a[5].file_id]
        assert ix.by_content(h[0]) == [a[6]] and ix.by_inode(7, 0) == [a[4], a[8]] and ix.by_inode(8, 1) == []
        assert ix.stats()["entries"]["content"] == 11 and ix.stats()["entries"]["inodes"] == 11


def test_lmdb_directory_with_other_files_is_corrupt(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(IndexCorrupt, match=str(tmp_path)):
        LmdbIndex.open(tmp_path, code_bits=128, algo="lbph", algo_version=1)


def test_lmdb_garbage_data_file_is_corrupt(tmp_path):
    (tmp_path / "data.mdb").write_bytes(b"not an lmdb file at all" * 500)
    with pytest.raises(IndexCorrupt):
        LmdbIndex.open(tmp_path, code_bits=128, algo="lbph", algo_version=1)


def test_lmdb_foreign_lmdb_is_corrupt(tmp_path):
    import lmdb
    env = lmdb.open(str(tmp_path), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"hello", b"world")
    env.close()
    with pytest.raises(IndexCorrupt, match="not a dedupd index"):
        LmdbIndex.open(tmp_path, code_bits=128, algo="lbph", algo_version=1)


def test_boxes_may_name_the_queries_that_search_the_box_rows(index):
    a, b = index.put_many([rec("/a", 1, code=(1, 0), box_code=(7, 0)), rec("/b", 2, code=(7, 0))])
    q = np.array([[7, 0], [7, 0], [1, 0]], np.uint64)
    records = {a.file_id: a, b.file_id: b}
    assert index.range_search_many(q, 0, boxes=[True, False, True]) == [
        box_oracle(records, [q[0]], 0, True)[0], box_oracle(records, [q[1]], 0, False)[0], box_oracle(records, [q[2]], 0, True)[0]]
    assert index.range_search_many(q, 0, boxes=[False] * 3) == box_oracle(records, q, 0, False)
    with pytest.raises(ValueError, match="one bool per query"):
        index.range_search_many(q, 0, boxes=[True])


def test_lmdb_box_rows_across_code_blocks(tmp_path):
    """Enough records that the records' rows and the box rows fill several `codes` blocks, one of
    them holding both kinds: counts, loads and searches split them right, before and after a
    reopen and deletes."""
    from dedupd.index.codeblocks import BLOCK_ROWS

    path = tmp_path / "ix"
    n = BLOCK_ROWS + 300
    with LmdbIndex.open(path, code_bits=128, algo="lbph", algo_version=1) as ix:
        recs = ix.put_many([rec(f"/d/{i}", i + 1, code=(i, 0), box_code=(i, 1) if i % 3 == 0 else None)
                            for i in range(n)])
        ix.delete_many([r.file_id for r in recs[::7]])
        kept = {r.file_id: r for k, r in enumerate(recs) if k % 7}
        want_boxes = sorted(BOX_ALIAS | f for f, r in kept.items() if r.box_code is not None)
        assert ix.all_box_codes()[0].tolist() == want_boxes
        assert ix.stats()["entries"]["codes"] == len(kept) and ix.stats()["entries"]["box_codes"] == len(want_boxes)
    with LmdbIndex.open(path, code_bits=128, algo="lbph", algo_version=1, readonly=True) as ix:
        assert ix.all_codes()[0].tolist() == sorted(kept)
        assert ix.all_box_codes()[0].tolist() == want_boxes
        assert ix.stats()["entries"]["box_codes"] == len(want_boxes)
        q = np.array([[3, 1], [3, 0]], np.uint64)
        assert ix.range_search_many(q, 1, boxes=True) == box_oracle(kept, q, 1, True)
        assert ix.range_search_many(q, 1) == box_oracle(kept, q, 1, False)
