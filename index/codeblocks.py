"""The `codes` table: every searchable code once, in blocks of rows sorted by file id.

A row is (file id, word 0, word 1), 24 bytes little-endian. A block is one LMDB value of
up to `BLOCK_ROWS` rows (682 rows fill four 4 KiB overflow pages exactly), keyed by the
lowest id it may hold (8 bytes big-endian): block k holds the ids in [key_k, key_k+1).
Loading every code is then one pass over n / 682 values (`load`), and a commit rewrites
only the blocks its changes fall in (`apply`): appends of new ids fill the last block and
start new ones. A block left less than half full merges with the next one when both fit.
"""

from __future__ import annotations

import bisect
import struct
import sys

import numpy as np

from .errors import IndexCorrupt

ROW = np.dtype([("id", "<u8"), ("w0", "<u8"), ("w1", "<u8")])
BLOCK_ROWS = (4 * 4096 - 16) // ROW.itemsize  # 682: a value of 4 overflow pages, no slack
_KEY = struct.Struct(">Q")
Change = tuple[int, "tuple[int, int] | None"]


def _rows(raw, key: bytes) -> np.ndarray:
    if len(raw) % ROW.itemsize or not raw:
        raise IndexCorrupt(f"code block {_KEY.unpack(key)[0]} has {len(raw)} bytes, not a multiple of {ROW.itemsize}")
    return np.frombuffer(raw, dtype=ROW)


def load(txn, db) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids int64 ascending, word 0, word 1 uint64) of every row, in arrays allocated once.

    Two passes (sizes, then rows), so that no more than one block is held besides the
    arrays: holding every block first would leave the heap n x 24 bytes larger for good."""
    n = count(txn, db)
    ids, w0, w1 = np.empty(n, np.int64), np.empty(n, np.uint64), np.empty(n, np.uint64)
    pos = 0
    for key, value in txn.cursor(db=db):
        part = _rows(value, bytes(key))
        end = pos + len(part)
        if end > n:
            raise IndexCorrupt("the code blocks changed while they were read")
        ids[pos:end], w0[pos:end], w1[pos:end] = part["id"], part["w0"], part["w1"]
        pos = end
    if pos != n or (n > 1 and not (ids[1:] > ids[:-1]).all()):
        raise IndexCorrupt("the code blocks are not in id order")
    return ids, w0, w1


def count(txn, db) -> int:
    """Rows in all blocks (reads only the value lengths)."""
    with txn.cursor(db=db) as cur:
        return sum(len(v) for v in cur.iternext(keys=False, values=True)) // ROW.itemsize


def count_between(txn, db, splits: list[int]) -> list[int]:
    """Rows per interval of ids cut at the ascending `splits` (below the first, between each
    two, from the last on), in one pass: the value lengths, and the ids of the blocks a split
    can fall inside (a block's rows all lie above its key)."""
    counts = [0] * (len(splits) + 1)
    bounds = np.array(splits, np.uint64)
    with txn.cursor(db=db) as cur:
        for key, value in cur.iternext(keys=True, values=True):
            n = len(value) // ROW.itemsize
            if not n:
                continue
            first = int(np.searchsorted(bounds, np.uint64(_KEY.unpack(key)[0]), side="right"))
            last = int(np.searchsorted(bounds, np.uint64(int.from_bytes(bytes(value[-ROW.itemsize:-ROW.itemsize + 8]),
                                                                      "little")), side="right"))
            if first == last:
                counts[first] += n
            else:  # ids (little-endian) on both sides of a split
                per = np.bincount(np.searchsorted(bounds, _rows(value, bytes(key))["id"], side="right"),
                                  minlength=len(counts))
                for i, c in enumerate(per.tolist()):
                    counts[i] += c
    return counts


def apply(txn, db, changes: list[Change]) -> None:
    """Write one transaction's changes (file id, code or None), the last change of an id winning."""
    last = dict(changes)
    if not last:
        return
    ids = np.array(sorted(last), dtype=np.uint64)
    cur = txn.cursor(db=db)
    start = 0
    while start < len(ids):
        key, rows, nxt = _block_of(cur, int(ids[start]))
        # np.uint64, not a Python int: numpy compares a uint64 array with an int through float64,
        # which cannot tell ids above 2**53 apart (box rows' alias ids, `boxes`) and looped here
        end = len(ids) if nxt is None else int(np.searchsorted(ids, np.uint64(_KEY.unpack(nxt)[0])))
        _store(txn, db, key, _merge(rows, ids[start:end], last), nxt)
        start = end


def _block_of(cur, fid: int) -> tuple[bytes | None, np.ndarray, bytes | None]:
    """(key, rows, next key) of the block holding `fid`: the greatest key <= fid (None before the first)."""
    want = _KEY.pack(fid)
    if not cur.set_range(want):  # beyond every key: the last block, if any
        if not cur.last():
            return None, np.zeros(0, dtype=ROW), None
        key = bytes(cur.key())
        return key, _rows(cur.value(), key).copy(), None
    found = bytes(cur.key())
    if found == want:
        rows = _rows(cur.value(), found).copy()
        return found, rows, bytes(cur.key()) if cur.next() else None
    if not cur.prev():
        return None, np.zeros(0, dtype=ROW), found
    key = bytes(cur.key())
    return key, _rows(cur.value(), key).copy(), found


def _merge(rows: np.ndarray, ids: np.ndarray, last: dict) -> np.ndarray:
    """`rows` with the changes of `ids` applied, sorted by id."""
    keep = rows[~np.isin(rows["id"], ids)]
    coded = [(i, c) for i in ids.tolist() if (c := last[i]) is not None]
    add = np.zeros(len(coded), dtype=ROW)
    if coded:
        add["id"] = [i for i, _ in coded]
        add["w0"] = [c[0] for _, c in coded]
        add["w1"] = [c[1] for _, c in coded]
    out = np.concatenate([keep, add])
    return out[np.argsort(out["id"], kind="stable")]


def _store(txn, db, key: bytes | None, rows: np.ndarray, nxt: bytes | None) -> None:
    """Write `rows` back as the block `key` (cut into full blocks; merged with the next when small)."""
    if nxt is not None and 0 < len(rows) < BLOCK_ROWS // 2:
        raw = txn.get(nxt, db=db)
        following = _rows(raw, nxt)
        if len(rows) + len(following) <= BLOCK_ROWS:
            txn.delete(nxt, db=db)
            rows = np.concatenate([rows, following])
    if len(rows) == 0:
        if key is not None:
            txn.delete(key, db=db)
        return
    for s in range(0, len(rows), BLOCK_ROWS):
        chunk = rows[s:s + BLOCK_ROWS]
        chunk_key = key if s == 0 and key is not None else _KEY.pack(int(chunk["id"][0]))
        txn.put(chunk_key, chunk.tobytes(), db=db)


def codes_of(txn, db, ids) -> dict[int, tuple[int, int]]:
    """{id: (word 0, word 1)} for those of `ids` that have a row (read only: the records of
    searchable files keep their code here alone, `codec_v4`). A block is found by one cursor
    move and searched in place (bisect over a view of its ids, no array built); ids read in
    order share the block they fall in."""
    out: dict[int, tuple[int, int]] = {}
    cur = txn.cursor(db=db)
    words = row_ids = _NO_WORDS
    first, last = 1, 0
    for fid in sorted(ids):
        if not first <= fid <= last:
            want = _KEY.pack(fid)
            if cur.set_range(want):
                if cur.key() != want and not cur.prev():
                    continue  # before the first block
            elif not cur.last():
                return out  # no blocks
            raw = cur.value()
            if not raw or len(raw) % ROW.itemsize:
                _rows(raw, bytes(cur.key()))  # raises IndexCorrupt
            words = _words(raw)
            first, last, row_ids = words[0], words[-3], words[::3]
        j = bisect.bisect_left(row_ids, fid)
        if 3 * j < len(words) and words[3 * j] == fid:
            out[fid] = (words[3 * j + 1], words[3 * j + 2])
    return out


_NO_WORDS = memoryview(b"").cast("Q")


def _words(raw: bytes):
    """The block's rows as a flat sequence of u64 words (id, w0, w1, id, ...): a view on a
    little-endian machine, else unpacked."""
    if sys.byteorder == "little":
        return memoryview(raw).cast("Q")
    return struct.unpack(f"<{len(raw) // 8}Q", raw)
