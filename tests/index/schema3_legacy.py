"""Schema 3 as the code before schema 4 wrote it (commit 5592631): the v3 record encoder and
an index built with it, for the tests of v2/v3 decoding and of the in-place upgrade.

`build_schema3_index` writes what `LmdbIndex` of schema 3 wrote for the same records: v3
records in `files`, (dev, ino) and 16-byte content keys in dupsort tables `inodes`,
`content` (`content_new` empty), the path keys, the code blocks and the meta settings,
with the id counter."""

from __future__ import annotations

import json
import os
import struct

import lmdb

from dedupd.index import codeblocks, codec
from dedupd.index.base import is_searchable
from dedupd.index.records import FileRecord

HEAD_V3 = struct.Struct("<BBQQQqqIIIddQQIIBBBBH")
HEAD_V2 = struct.Struct("<BBQQQqqIIIddQQIBBBBH")


def encode_v3(rec: FileRecord) -> bytes:
    """The v3 bytes of `rec`, as `codec.encode_record` wrote them at schema 3."""
    path = os.fsencode(rec.path)
    texts = [s.encode("utf-8", "surrogatepass") for s in (rec.format, rec.algo, rec.state, rec.error)]
    chash = bytes(rec.content_hash)
    flags = (1 if rec.code is not None else 0) | (2 if rec.has_exif else 0)
    w0, w1 = rec.code if rec.code is not None else (0, 0)
    head = HEAD_V3.pack(3, flags, rec.dev, rec.ino, rec.size, rec.mtime_ns, rec.ctime_ns, rec.width, rec.height,
                        rec.algo_version, rec.quality, rec.chroma, int(w0), int(w1), rec.encoding, len(path),
                        len(texts[0]), len(chash), len(texts[1]), len(texts[2]), len(texts[3]))
    return b"".join((head, path, texts[0], chash, texts[1], texts[2], texts[3]))


def encode_v2(rec: FileRecord) -> bytes:
    """The v2 bytes of `rec` (v3 without `encoding`)."""
    raw = encode_v3(rec)
    fields = list(HEAD_V3.unpack_from(raw))
    del fields[14]
    fields[0] = 2
    return HEAD_V2.pack(*fields) + raw[HEAD_V3.size:]


def build_schema3_index(path, recs: list[FileRecord], *, algo: str = "lbph", algo_version: int = 1,
                        code_bits: int = 128, v2_every: int = 0) -> list[FileRecord]:
    """A schema-3 index at `path` holding `recs` (ids 1..n assigned in order); returns them with
    their ids. `v2_every`: every k-th record written as v2 (indexes older than `encoding`)."""
    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 30, max_dbs=16, subdir=True)
    out = [r.with_(file_id=i + 1) for i, r in enumerate(recs)]
    with env.begin(write=True) as txn:
        db = {name: env.open_db(name.encode(), txn=txn, create=True, dupsort=dup, dupfixed=dup)
              for name, dup in [("files", False), ("paths", False), ("inodes", True), ("content", True),
                                ("content_new", True), ("groups", False), ("meta", False), ("codes", False),
                                ("edges", True)]}
        meta = {"schema_version": 3, "algo": algo, "algo_version": algo_version, "code_bits": code_bits, "m": 0}
        txn.put(b"format", b"dedupd-index", db=db["meta"])
        for k, v in meta.items():
            txn.put(k.encode(), json.dumps(v).encode(), db=db["meta"])
        changes = []
        for i, rec in enumerate(out):
            fid = codec.id_key(rec.file_id)
            raw = encode_v2(rec) if v2_every and i % v2_every == 0 else encode_v3(rec)
            txn.put(fid, raw, db=db["files"])
            txn.put(codec.path_key(rec.path), fid, db=db["paths"])
            txn.put(struct.pack(">QQ", rec.dev, rec.ino), fid, db=db["inodes"])
            if rec.content_hash:
                txn.put(bytes(rec.content_hash[:16]), fid, db=db["content"])
            if is_searchable(rec):
                changes.append((rec.file_id, (int(rec.code[0]), int(rec.code[1]))))
        codeblocks.apply(txn, db["codes"], changes)
        txn.put(b"next_id", codec.id_key(len(out) + 1), db=db["meta"])
    env.close()
    return out
