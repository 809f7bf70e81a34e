"""`by_inode`, `by_content` and `by_path` of `LmdbIndex` against a brute-force dict of the
records, through random puts, replaces and deletes (Hypothesis). Devices, inodes and hashes
come from small sets so that lookups share entries; with `coarse` the 6-byte lookup prefixes
are made to collide on purpose, so that the check of each candidate against its record is
what makes the answers exact."""

from __future__ import annotations

import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.index import FileRecord, LmdbIndex, codec

DEVS = st.sampled_from([0, 1, 2049, 2**64 - 1])
INOS = st.sampled_from([0, 1, 2, 2**48 + 1, 2**64 - 1])  # 1 and 2**48 + 1 share a prefix on one device
HASHES = st.sampled_from([b"", b"ab", b"ab\0", bytes(32), b"\1" * 32, b"\1" * 31 + b"\2"])
OPS = st.lists(st.tuples(st.sampled_from(["put", "replace", "delete"]), st.integers(0, 30), DEVS, INOS, HASHES,
                         st.booleans()), min_size=1, max_size=40)


def _record(i: int, dev: int, ino: int, chash: bytes, searchable: bool) -> FileRecord:
    return FileRecord(0, f"/d{i % 3}/f{i}", dev, ino, 10, -5, 7, content_hash=chash,
                      code=(i, 0), algo="lbph", algo_version=1,
                      state="ok" if searchable else "error", error="" if searchable else "truncated")


@settings(max_examples=60, deadline=None)
@given(OPS, st.booleans())
def test_lookups_match_a_brute_force_dict(ops, coarse):
    real_inode, real_content = codec.inode_prefix, codec.content_prefix
    if coarse:
        codec.inode_prefix = lambda dev, ino: real_inode(dev, ino)[:1] * 6
        codec.content_prefix = lambda h: real_content(h)[:1] * 6
    try:
        with tempfile.TemporaryDirectory() as tmp, LmdbIndex.open(tmp, code_bits=128, algo="lbph", algo_version=1) as ix:
            truth: dict[int, FileRecord] = {}
            for n, (op, i, dev, ino, chash, searchable) in enumerate(ops):
                if op == "put" or not truth:
                    rec = _record(n, dev, ino, chash, searchable)
                    stored = ix.put(rec)
                    truth[stored.file_id] = stored
                    continue
                fid = sorted(truth)[i % len(truth)]
                if op == "replace":
                    truth[fid] = ix.put(truth[fid].with_(dev=dev, ino=ino, content_hash=chash))
                else:
                    ix.delete_many([fid])
                    del truth[fid]
            recs = sorted(truth.values(), key=lambda r: r.file_id)
            for dev in (0, 1, 2049, 2**64 - 1):
                for ino in (0, 1, 2, 2**48 + 1, 2**64 - 1):
                    assert ix.by_inode(dev, ino) == [r for r in recs if (r.dev, r.ino) == (dev, ino)]
            for chash in (b"ab", b"ab\0", bytes(32), b"\1" * 32, b"\1" * 31 + b"\2"):
                assert ix.by_content(chash) == [r for r in recs if r.content_hash == chash]
            for r in recs:
                assert ix.by_path(r.path) == r and ix.get(r.file_id) == r
            assert list(ix.iter_records()) == recs
            st_ = ix.stats()["entries"]
            assert st_["inodes"] == len(recs) and st_["content"] == sum(1 for r in recs if r.content_hash)
    finally:
        codec.inode_prefix, codec.content_prefix = real_inode, real_content
