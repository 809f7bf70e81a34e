"""Synthetic indexes for the scale benchmarks: records, codes and edges written straight
through the index API (no file is decoded), fast enough for a million files.

`records_for_files` makes records that match real (tiny) files on disk, so a scan sees
them unchanged; `synthetic_records` makes records of files that do not exist (paths
outside every root, so no scan sweeps them: they only weigh on the index).
Duplicates: every `dup_every`-th record copies the code of the record before it with a
few bits flipped and gets an edge to it, so the index holds groups as a real one does.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Iterator

import numpy as np

from dedupd.index.edges import Edge
from dedupd.index.records import FileRecord
from dedupd.kernels import ALGORITHMS

BATCH = 10_000
FORMATS = ("jpeg",) * 8 + ("png", "webp")


def _codes(n: int, seed: int, dup_every: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=(n, 2), dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=(n, 2), dtype=np.uint64)
    codes[:, 1] &= np.uint64((1 << 127 - 64) - 1)  # bit 127 is reserved (always 0) in LBPH
    if dup_every:
        dups = np.arange(dup_every - 1, n, dup_every)
        flips = rng.integers(0, 64, size=(len(dups), 3))
        noise = np.bitwise_or.reduce(np.left_shift(np.uint64(1), flips.astype(np.uint64)), axis=1)
        codes[dups, 0] = codes[dups - 1, 0] ^ noise
        codes[dups, 1] = codes[dups - 1, 1]
    return codes


def _record(i: int, path: str, st: tuple, code, algo) -> FileRecord:
    dev, ino, size, mtime_ns, ctime_ns = st
    return FileRecord(0, path, dev, ino, size, mtime_ns, ctime_ns, 4000, 3000, FORMATS[i % len(FORMATS)],
                      hashlib.sha256(path.encode("utf-8", "surrogateescape")).digest(),
                      (int(code[0]), int(code[1])), algo.name, algo.version, 0.5, i % 3 == 0, chroma=20.0)


def fill(index, items: Iterator[tuple[str, tuple]], n: int, *, dup_every: int = 20, seed: int = 1,
         algorithm: str = "lbph", on_batch=None) -> float:
    """Put `n` records for (path, stat tuple) items and the duplicate edges; returns seconds."""
    algo = ALGORITHMS[algorithm]
    codes = _codes(n, seed, dup_every)
    started, batch, first = time.perf_counter(), [], 0
    for i, (path, st) in enumerate(items):
        batch.append(_record(i, path, st, codes[i], algo))
        if len(batch) == BATCH or i == n - 1:
            stored = index.put_many(batch)
            edges = [Edge(stored[j - 1].file_id, stored[j].file_id, 3, 0, True)
                     for j in range(1, len(stored)) if dup_every and (first + j) % dup_every == dup_every - 1]
            index.add_edges(edges)
            first += len(batch)
            batch = []
            if on_batch:
                on_batch(first)
    return time.perf_counter() - started


def synthetic_items(n: int, prefix: str) -> Iterator[tuple[str, tuple]]:
    """Paths under `prefix` (1,000 files a folder) with plausible stat values."""
    for i in range(n):
        yield f"{prefix}/album{i // 1000:05d}/IMG_{i:07d}.jpg", (64769, 10_000_000 + i, 2_000_000 + i, 1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i)


def make_files(root: str, n: int, per_dir: int = 1000) -> Iterator[tuple[str, tuple]]:
    """Create `n` tiny files named like photos under `root` and yield (path, stat tuple)."""
    for i in range(n):
        d = os.path.join(root, f"album{i // per_dir:05d}")
        if i % per_dir == 0:
            os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"IMG_{i:07d}.jpg")
        with open(path, "wb") as f:
            f.write(b"\xff\xd8 synthetic")
        st = os.lstat(path)
        yield path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
