"""Exact Hamming range search at NAS scale (issue 5): the schema-3 index (`LmdbIndex`: codes in
RAM, a fused scan or multi-index hashing chosen by a cost model) vs a numba linear scan over the
same codes in RAM vs FAISS IndexBinaryMultiHash, on the same queries; insert rate, bytes per
file on disk, and the all-pairs edge finding of a first scan (what grouping needs).

Two code sets of n codes each (--n, default 1M; 10M takes ~20 min per set, mostly inserts):
  random    uniform random 128-bit codes;
  lbph      codes with the bit statistics of real LBPH fingerprints: the corpus photos and
            in-memory transformed copies of a sample of them are fingerprinted; the stored set
            is those real codes + clusters of near duplicates (synthetic centres, members made
            by flipping k random bits, k drawn from the real original->copy distances) + codes
            whose bits are drawn independently with the real per-bit frequencies.
Queries: perturbed stored codes (hits), fresh codes (mostly misses) and, for lbph, held-out
real copies with their real 8 dihedral variants. Each query is one code ("single") and its 8
dihedral variants ("variants", one `range_search_many` call), at each radius of the default
config (act 24, rotated 20, report 28), and the lookup the daemon makes for a new file
("daemon": one call, the upright code at the report radius and the 7 rotated/mirrored
variants at the rotated radius; `linear` answers the same question with the same radius per
variant). Built sets are cached under --cache (not in the repo).

Methods (interleaved per query, shuffled order; FAISS afterwards in a pass of its own):
  linear     `dedupd.kernels.within_radius` (numba popcount) over the (n, 2) codes, once per
             variant: the bar of issue 5 (the reference for exactness);
  ours       `LmdbIndex.range_search_many` as shipped (search_mode "auto");
  ours-scan  the same index forced to its fused scan; ours-mih forced to probe its MIH tables;
  faiss      IndexBinaryMultiHash(128, nhash=8, b=16), nflip = r // 8 (pigeonhole-exact),
             range_search(r + 1) (FAISS counts d < radius), one thread; all variants in one call.
Every answer is checked against `linear` (same id set, else the mismatches are printed and the
exit status is 1). A slow method stops being timed for a case after --case-budget seconds and
--min-queries queries.

Inserts: `put_many` of 10k records (synthetic paths, sha256 content hashes) into a fresh
LmdbIndex; files/s counts the put_many calls only (building the FileRecord objects is timed
apart). Bytes per file: LMDB pages per table (`stats()["table_bytes"]`: records, paths,
by_inode, by_content, codes; schema 3 had files, inodes, content, content_new); "without
paths" removes the `paths` table and the path strings stored inside the records (their exact
byte count: each is also one varint byte of length in a v4 record, counted as record bytes).

Edges (--edges N): the all-pairs edge finding of a first scan, timed on N stored files against
the full index and extrapolated to all n: the 8 variants at the report radius in one
`range_search_many` per file (the daemon before 6c474f3), the upright code at the report
radius and the rotated variants at the rotated radius in one call with a radius per variant
(what the daemon needs: `grouping.admit` drops rotated matches beyond it), and batched
(`range_search_many` over 1,000 files' variants at once, report radius).

Run:  /tmp/venv/bin/python bench/index.py [--n 1000000] [--queries 100] [--sets random,lbph] [--quick]
"""

from __future__ import annotations

import gc
import hashlib
import os
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import common
from common import median, note, percentile, print_table, rounded

def _product_radii() -> tuple[int, int, int]:
    """The product's default (act, rotated, report) thresholds (daemon/config/schema.py)."""
    from dedupd.daemon.config import parse_config

    defaults = parse_config("")
    return defaults.act_threshold, defaults.rotated_threshold, defaults.report_threshold


ACT, ROTATED, REPORT = _product_radii()
RADII = tuple(sorted({ACT, ROTATED, REPORT}))
BATCH = 10_000
BITS = 128
EDGE_BATCH = 1_000  # files whose variants go into one batched range_search_many
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "dedupd-bench-index"


# -- codes ---------------------------------------------------------------------------------------

def pack(bits: np.ndarray) -> np.ndarray:
    """(n, 128) bool -> (n, 2) uint64; bit i of the code is bit i % 64 of word i // 64."""
    return np.packbits(bits.astype(np.uint8), axis=1, bitorder="little").view("<u8").astype(np.uint64)


def unpack(codes: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.ascontiguousarray(codes, dtype="<u8").view(np.uint8), axis=1, bitorder="little").astype(bool)


def bernoulli(rng: np.random.Generator, p: np.ndarray, n: int, chunk: int = 100_000) -> np.ndarray:
    out = np.empty((n, 2), np.uint64)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        out[s:e] = pack(rng.random((e - s, BITS), dtype=np.float32) < p.astype(np.float32))
    return out


def flip(rng: np.random.Generator, codes: np.ndarray, ks: np.ndarray, flippable: np.ndarray) -> np.ndarray:
    """Each row with ks[i] distinct random bits flipped, chosen among the `flippable` bit positions."""
    out = np.empty_like(codes)
    pos = np.flatnonzero(flippable)
    for s in range(0, len(codes), 50_000):
        e = min(len(codes), s + 50_000)
        ranks = np.argsort(rng.random((e - s, len(pos)), dtype=np.float32), axis=1)
        chosen = ranks < np.minimum(ks[s:e], len(pos))[:, None]
        mask = np.zeros((e - s, BITS), bool)
        mask[:, pos] = chosen
        out[s:e] = codes[s:e] ^ pack(mask)
    return out


def real_fingerprints(corpus, n_transformed: int, workers: int) -> dict:
    """Codes of the corpus photos (from the files) and of in-memory transformed copies of a sample."""
    import transforms as T
    from dedupd.daemon.decode import decode_image
    from dedupd.daemon.fingerprinting import fingerprint_file
    from dedupd.daemon.walk import FileRef
    from dedupd.kernels import fingerprint, hamming_many

    photos = common.list_images(corpus / "photos")
    originals = common.sample(photos, n_transformed)

    def from_file(path):
        fp = fingerprint_file(FileRef.from_stat(path, os.stat(path)), "lbph", 100_000_000)
        return fp.variants

    def copies(path):
        img = T.load_original(path, max_side=1024)
        out = []
        for t in T.TRANSFORMS:
            data, ext = t.fn(img)
            out.append((t.name, fingerprint(decode_image(data, "x" + ext).gray, "lbph").variants))
        return out

    with ThreadPoolExecutor(workers) as pool:
        photo_vars = list(pool.map(from_file, photos))
        copy_vars = list(pool.map(copies, originals))
    index_of = {p: i for i, p in enumerate(photos)}
    orig_codes = np.array([v[0] for v in photo_vars], dtype=np.uint64)
    copy_codes, copy_variants, copy_orig, copy_kind, dists = [], [], [], [], []
    for path, items in zip(originals, copy_vars):
        o = index_of[path]
        for name, var in items:
            copy_codes.append(var[0])
            copy_variants.append(var)
            copy_orig.append(o)
            copy_kind.append(name)
            dists.append(int(hamming_many(orig_codes[o], np.ascontiguousarray(var)).min()))  # as a variant search sees it
    return {"orig_codes": orig_codes, "copy_codes": np.array(copy_codes, np.uint64),
            "copy_variants": np.array(copy_variants, np.uint64), "copy_orig": np.array(copy_orig),
            "copy_kind": copy_kind, "distances": np.array(dists)}


def bit_stats(codes: np.ndarray) -> dict:
    p = unpack(codes).mean(axis=0)
    used = (p > 0) & (p < 1)
    off = [(int(i), round(float(p[i]), 3)) for i in np.flatnonzero(used & ((p < 0.35) | (p > 0.65)))]
    return {"p": p, "unbalanced": off, "constant_bits": [int(i) for i in np.flatnonzero(~used)],
            "min_p": float(p[used].min()), "max_p": float(p[used].max())}


def substring_collisions(codes: np.ndarray, width: int = 8) -> list[float]:
    """Per MIH substring: observed / expected pairs with an identical substring (1 = independent, balanced)."""
    out = []
    for j in range(BITS // width):
        w, sh = divmod(j * width, 64)
        sub = (codes[:, w] >> np.uint64(sh)) & np.uint64((1 << width) - 1)
        _, counts = np.unique(sub, return_counts=True)
        pairs = (counts * (counts - 1) // 2).sum()
        expected = len(codes) * (len(codes) - 1) / 2 / 2 ** width
        out.append(round(float(pairs / expected), 2))
    return out


def build_random(rng, n: int, n_queries: int) -> dict:
    codes = pack(rng.random((n, BITS), dtype=np.float32) < 0.5) if n <= 2_000_000 else bernoulli(rng, np.full(BITS, 0.5), n)
    half = n_queries // 2
    near_src = rng.integers(0, n, half)
    near = flip(rng, codes[near_src], rng.integers(0, 25, half), np.ones(BITS, bool))
    fresh = pack(rng.random((n_queries - half, BITS)) < 0.5)
    q = np.concatenate([near, fresh])
    variants = np.stack([np.concatenate([q[i:i + 1], pack(rng.random((7, BITS)) < 0.5)]) for i in range(len(q))])
    kinds = ["near"] * half + ["fresh"] * (n_queries - half)
    return {"codes": codes, "queries": variants, "kinds": kinds}


def build_lbph(rng, n: int, n_queries: int, real: dict) -> dict:
    real_codes = np.concatenate([real["orig_codes"], real["copy_codes"]])
    stats = bit_stats(real_codes)
    distinct = bit_stats(real["orig_codes"])  # distinct photos only: copies would weigh some photos 25x
    p, flippable = stats["p"], (stats["p"] > 0) & (stats["p"] < 1)
    dist = real["distances"][real["distances"] <= 40]  # copies a range search could reach
    n_copies = len(real["copy_codes"])
    n_real_q = min(n_queries // 3, n_copies // 4)
    held = rng.choice(n_copies, n_real_q, replace=False)
    keep = np.setdiff1d(np.arange(n_copies), held)
    stored_real = np.concatenate([real["orig_codes"], real["copy_codes"][keep]])
    n_cluster = max(0, (n - len(stored_real)) // 10)
    n_centres = max(1, n_cluster // 5)
    centres = bernoulli(rng, p, n_centres)
    members = flip(rng, centres[rng.integers(0, n_centres, n_cluster - n_centres)],
                   rng.choice(dist, n_cluster - n_centres), flippable)
    rest = bernoulli(rng, p, n - len(stored_real) - n_cluster)
    codes = np.concatenate([stored_real, centres, members, rest])[:n]
    codes = codes[rng.permutation(len(codes))]
    n_near = (n_queries - n_real_q) // 2
    n_fresh = n_queries - n_real_q - n_near
    near = flip(rng, codes[rng.integers(0, len(codes), n_near)], rng.choice(dist, n_near), flippable)
    fresh = bernoulli(rng, p, n_fresh)
    synth = np.concatenate([near, fresh])
    synth_vars = np.stack([np.concatenate([synth[i:i + 1], bernoulli(rng, p, 7)]) for i in range(len(synth))])
    variants = np.concatenate([real["copy_variants"][held], synth_vars]) if n_real_q else synth_vars
    kinds = ["real copy"] * n_real_q + ["near"] * n_near + ["fresh"] * n_fresh
    info = {"real_codes": len(real_codes), "stored_real": len(stored_real), "cluster_centres": n_centres,
            "cluster_members": n_cluster - n_centres, "independent": len(rest),
            "distance_median": float(np.median(dist)) if len(dist) else None,
            "photos": len(real["orig_codes"]),
            "bits_outside_0.35_0.65": distinct["unbalanced"], "constant_bits": distinct["constant_bits"],
            "bit_p_min": round(distinct["min_p"], 3), "bit_p_max": round(distinct["max_p"], 3),
            "byte_collision_ratio_photos": substring_collisions(real["orig_codes"]),
            "byte_collision_ratio_stored": substring_collisions(codes[: min(len(codes), 20_000)])}
    return {"codes": codes, "queries": variants, "kinds": kinds, "info": info}


# -- the code sets, cached ----------------------------------------------------------------------

def cached(path: Path, build):
    """The arrays (and JSON-able `info`) of `build()`, stored at `path` (.npz) after the first build."""
    import json
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files if k != "info_json"}
            out["info"] = json.loads(str(z["info_json"])) if "info_json" in z.files else {}
        return out
    out = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in out.items() if k != "info"}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, info_json=json.dumps(out.get("info", {}), default=str), **arrays)
    os.replace(tmp, path)
    return out


def make_set(name: str, n: int, n_queries: int, seed: int, cache: Path, corpus: Path, n_orig: int) -> dict:
    rng = np.random.default_rng([seed, n, n_queries, 0 if name == "random" else 1])
    if name == "random":
        def build():
            out = build_random(rng, n, n_queries)
            out["p"] = np.full(BITS, 0.5)
            return out
    elif name == "lbph":
        def build():
            real = cached(cache / f"real-{n_orig}.npz", lambda: real_fingerprints(corpus, n_orig, 2))
            out = build_lbph(rng, n, n_queries, real)
            out["p"] = bit_stats(np.concatenate([real["orig_codes"], real["copy_codes"]]))["p"]
            return out
    else:
        raise SystemExit(f"unknown set {name!r} (random, lbph)")
    note(f"[{name}] code set: {cache}/{name}-{n}-{n_queries}-{seed}.npz")
    data = cached(cache / f"{name}-{n}-{n_queries}-{seed}.npz", build)
    data["kinds"] = [str(k) for k in data["kinds"]]
    return data


# -- inserts and bytes ---------------------------------------------------------------------------

def records(codes: np.ndarray, start: int, stop: int, real_fields: bool = False) -> tuple[list, int]:
    """FileRecords for rows [start, stop) and the bytes of their paths. `real_fields`: the fields
    as the daemon stores them for real photos (quality and chroma with all the digits of a
    float32, the daemon's `stored_measure`; ctime ~46 ms after mtime; a 32-bit JPEG encoding
    fingerprint; every other file with EXIF) instead of the round values (quality 40.0,
    chroma 0, ctime = mtime) a v4 record stores in fewer bytes."""
    from dedupd.index.records import FileRecord
    out, path_bytes = [], 0
    for i in range(start, stop):
        w0, w1 = codes[i]
        path = f"/srv/photos/synthetic/{i // 1000:04d}/IMG_{i:07d}.jpg"
        path_bytes += len(path)
        mtime = 1_600_000_000_000_000_000 + i
        extra = {}
        if real_fields:
            mtime = 1_600_000_000_000_000_000 + i * 1_000_003
            extra = dict(ctime_ns=mtime + 46_000_000 + i % 1000, quality=float(np.float32(30.0 + (i % 1000) * 0.0123456789)),
                         chroma=float(np.float32(20.0 + (i % 777) / 2752)), encoding=(i * 2654435761) % 2**32,
                         has_exif=i % 2 == 0)
        fields = dict(
            file_id=0, path=path, dev=2049, ino=1_000_000 + i,
            size=2_000_000 + i % 997, mtime_ns=mtime, ctime_ns=mtime,
            width=4000, height=3000, format="jpeg", content_hash=hashlib.sha256(i.to_bytes(8, "little")).digest(),
            code=(int(w0), int(w1)), algo="lbph", algo_version=1, quality=40.0)
        fields.update(extra)
        out.append(FileRecord(**fields))
    return out, path_bytes


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_index(path: str):
    from dedupd.index import LmdbIndex
    return LmdbIndex.open(path, code_bits=128, algo="lbph", algo_version=1)  # m automatic, as the daemon


def insert(codes: np.ndarray, path: str, real_fields: bool = False) -> tuple[object, dict]:
    """Fill a fresh LmdbIndex with every code, BATCH records per put_many."""
    idx = open_index(path)
    n = len(codes)
    put_s, make_s, path_bytes = [], 0.0, 0
    for b, s in enumerate(range(0, n, BATCH)):
        t0 = time.perf_counter()
        batch, pb = records(codes, s, min(n, s + BATCH), real_fields)
        t1 = time.perf_counter()
        stored = idx.put_many(batch)
        put_s.append(time.perf_counter() - t1)
        make_s += t1 - t0
        path_bytes += pb
        if stored[0].file_id != s + 1 or stored[-1].file_id != s + len(batch):
            raise AssertionError(f"unexpected ids {stored[0].file_id}..{stored[-1].file_id} for rows {s}..")
        if (b + 1) % 50 == 0:
            note(f"  inserted {s + len(batch):,} / {n:,} ({sum(put_s):.0f} s in put_many, {n and (s + len(batch)) / sum(put_s):,.0f}/s)")
    st = idx.stats()
    tables = st["table_bytes"]
    used = st["used_bytes"]
    return idx, {
        "n": n, "batch": BATCH, "real_fields": real_fields, "put_many_s": round(sum(put_s), 2), "records_s": round(make_s, 2),
        "files_per_s": round(n / sum(put_s)), "batch_p50_s": rounded(median(put_s)),
        "batch_p99_s": rounded(percentile(put_s, 99)), "first_last_batch_s": [rounded(put_s[0]), rounded(put_s[-1])],
        "bytes_per_file": {
            "used": rounded(used / n), "data_mdb": rounded(st["file_bytes"] / n),
            "without_paths": rounded((used - tables["paths"] - path_bytes) / n),
            "path_strings_in_records": rounded(path_bytes / n),
            "search_structures": rounded(tables["codes"] / n),
            "tables": {k: rounded(v / n) for k, v in tables.items() if v},
        },
    }


def faiss_build(codes: np.ndarray) -> tuple[object, dict]:
    import faiss
    faiss.omp_set_num_threads(1)  # every method answers one query on one core
    rss0, t0 = rss_mb(), time.perf_counter()
    idx = faiss.IndexBinaryMultiHash(BITS, 8, 16)
    idx.add(np.ascontiguousarray(codes, dtype="<u8").view(np.uint8))
    return idx, {"build_s": round(time.perf_counter() - t0, 2), "rss_mb": round(rss_mb() - rss0, 1)}


# -- queries -------------------------------------------------------------------------------------

def searchers(idx, faiss_index, codes: np.ndarray) -> dict:
    """name -> fn(queries (k, 2) uint64, radius) -> k sorted id lists (ids are 1-based rows)."""
    from dedupd.kernels import within_radius

    def linear(qs, r):
        return [(within_radius(q, codes, rr) + 1).tolist() for q, rr in zip(qs, radii_of(r, len(qs)))]

    def ours(mode):
        def search(qs, r):
            idx.search_mode = mode
            try:
                res = idx.range_search_many(qs, r)
            finally:
                del idx.search_mode  # back to the class default, "auto"
            return [sorted(i for i, _ in hits) for hits in res]
        return search

    def faiss_search(qs, r):
        if not isinstance(r, int):  # one call per radius
            radii = radii_of(r, len(qs))
            out = [None] * len(qs)
            for rr in sorted(set(radii)):
                at = [i for i, x in enumerate(radii) if x == rr]
                for i, ans in zip(at, faiss_search(qs[at], rr)):
                    out[i] = ans
            return out
        faiss_index.nflip = r // 8  # pigeonhole: one of the 8 16-bit substrings is within r // 8
        lims, _, ids = faiss_index.range_search(np.ascontiguousarray(qs, dtype="<u8").view(np.uint8), r + 1)
        return [sorted((ids[lims[i]:lims[i + 1]] + 1).tolist()) for i in range(len(qs))]

    out = {"linear": linear, "ours": ours("auto"), "ours-scan": ours("scan"), "ours-mih": ours("mih")}
    if faiss_index is not None:
        out["faiss"] = faiss_search
    return out


def radii_of(r, k: int) -> list[int]:
    """One radius per query from an int or a per-query list."""
    return [r] * k if isinstance(r, int) else list(r)


def daemon_radii(k: int) -> list[int]:
    """The daemon's lookup of a new file: the upright code at the report radius, the rotated
    and mirrored variants at the rotated radius."""
    return [REPORT] + [ROTATED] * (k - 1)


def last_plan(idx) -> str:
    """The path the index's code table took on its last search ("scan" or "mih"; bench-only peek)."""
    table = getattr(getattr(idx, "_codes", None), "_table", None)
    return getattr(table, "last_plan", "?")


def run_queries(data: dict, fns: dict, idx, budget: float, min_queries: int, truth: dict | None = None) -> dict:
    """For each query, the (radius, mode) cases in a shuffled order and, per case, every method in
    a shuffled order (a fixed order would let one method profit from caches another warmed).
    `linear` answers every query; another method stops after `min_queries` and `budget` seconds.
    `truth`: the linear answers of an earlier pass, {(query, case): answer}, for a pass without
    `linear` (FAISS runs in a pass of its own); filled in when None."""
    if truth is None:
        truth = {}
    shuffle = np.random.default_rng(7)
    cases = [(r, mode) for r in RADII for mode in ("single", "variants")] + [(REPORT, "daemon")]
    names = list(fns)
    times = {(m, c): [] for m in names for c in cases}
    cpu = {(m, c): [] for m in names for c in cases}  # thread CPU time: what a query costs without the neighbours' share
    hits = {c: [] for c in cases}
    plans = {c: {} for c in cases}
    mismatches = []
    pauses = gc_pauses()
    for qi, variants in enumerate(data["queries"]):
        for ci in shuffle.permutation(len(cases)):
            r, mode = case = cases[ci]
            qs = np.ascontiguousarray(variants[:1] if mode == "single" else variants)
            radius = daemon_radii(len(qs)) if mode == "daemon" else r
            answers = {} if "linear" in fns else {"linear": truth[(qi, case)]}
            for m in (names[i] for i in shuffle.permutation(len(names))):
                spent = times[(m, case)]
                if m != "linear" and len(spent) >= min_queries and sum(spent) >= budget:
                    continue
                c0, t0 = time.thread_time(), time.perf_counter()
                answers[m] = fns[m](qs, radius)
                spent.append(time.perf_counter() - t0)
                cpu[(m, case)].append(time.thread_time() - c0)
                if m == "ours":
                    p = last_plan(idx)
                    plans[case][p] = plans[case].get(p, 0) + 1
            truth[(qi, case)] = answers["linear"]
            hits[case].append(sum(len(a) for a in answers["linear"]))
            mismatches += compare(answers, qi, data["kinds"][qi], r, mode)
        if (qi + 1) % 25 == 0:
            note(f"  queries {qi + 1} / {len(data['queries'])}")
    table = {}
    for (m, (r, mode)), ts in times.items():
        if ts:
            cs = cpu[(m, (r, mode))]
            table.setdefault(f"{r}/{mode}", {})[m] = {"p50_ms": rounded(1000 * median(ts)),
                                                      "p99_ms": rounded(1000 * percentile(ts, 99)),
                                                      "cpu_p50_ms": rounded(1000 * median(cs)),
                                                      "cpu_p99_ms": rounded(1000 * percentile(cs, 99)), "queries": len(ts)}
    gc.callbacks.remove(pauses.callback)
    return {"latency": table, "gc": pauses.summary(),
            "mean_hits": {f"{r}/{mode}": rounded(float(np.mean(h))) for (r, mode), h in hits.items()},
            "plans": {f"{r}/{mode}": p for (r, mode), p in plans.items()},
            "mismatches": len(mismatches), "mismatch_examples": mismatches[:20], "truth": truth}


class gc_pauses:
    """Python's cyclic GC collections while the queries run (a full collection walks every
    tracked object of the process and lands on whichever query is running: a p99 effect)."""

    def __init__(self):
        self.start, self.seconds = None, {0: [], 1: [], 2: []}
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.start = time.perf_counter()
        elif self.start is not None:
            self.seconds[info["generation"]].append(time.perf_counter() - self.start)

    def summary(self) -> dict:
        return {f"gen{g}": {"count": len(v), "max_ms": rounded(1000 * max(v, default=0.0)),
                            "total_ms": rounded(1000 * sum(v))} for g, v in self.seconds.items()}


def compare(answers: dict, qi: int, kind: str, r: int, mode: str) -> list[dict]:
    """Every (method, variant) whose id list differs from the linear scan's."""
    out = []
    truth = answers["linear"]
    for m, ans in answers.items():
        if len(ans) != len(truth):
            out.append({"method": m, "query": qi, "kind": kind, "radius": r, "mode": mode, "error": "answer count"})
        for v, (a, t) in enumerate(zip(ans, truth)):
            if a != t:
                out.append({"method": m, "query": qi, "kind": kind, "radius": r, "mode": mode, "variant": v,
                            "missing": sorted(set(t) - set(a))[:10], "extra": sorted(set(a) - set(t))[:10]})
    return out


# -- all-pairs edge finding (a first scan's grouping input) ------------------------------------

def edge_finding(idx, codes: np.ndarray, p: np.ndarray, n_files: int, seed: int) -> dict:
    """Time the edge queries of `n_files` stored files (their code + 7 fresh variant codes with the
    set's bit frequencies) against the full index; extrapolate to every file."""
    rng = np.random.default_rng(seed)
    n = len(codes)
    rows = rng.choice(n, min(n_files, n), replace=False)
    variants = np.concatenate([codes[rows][:, None, :], bernoulli(rng, p, 7 * len(rows)).reshape(-1, 7, 2)], axis=1)
    per_file, split, found = [], [], 0
    for v in variants:
        t0 = time.perf_counter()
        res = idx.range_search_many(v, REPORT)  # every variant at the report radius
        t1 = time.perf_counter()
        idx.range_search_many(v, daemon_radii(len(v)))  # rotated variants only within the rotated radius
        t2 = time.perf_counter()
        per_file.append(t1 - t0)
        split.append(t2 - t1)
        found += sum(len(h) for h in res) - 1  # less the file itself
    batched = []
    for s in range(0, min(len(variants), 2 * EDGE_BATCH), EDGE_BATCH):
        chunk = variants[s:s + EDGE_BATCH].reshape(-1, 2)
        t0 = time.perf_counter()
        idx.range_search_many(chunk, REPORT)
        batched.append((time.perf_counter() - t0) / (len(chunk) // 8))
    return {"files_timed": len(variants), "edges_per_file": rounded(found / len(variants)),
            "per_file_ms": {"all_at_report_radius": rounded(1000 * float(np.mean(per_file))),
                            "rotated_at_rotated_radius": rounded(1000 * float(np.mean(split))),
                            "batched_1000_files": rounded(1000 * float(np.mean(batched)))},
            "all_files_s_at_full_size": {"all_at_report_radius": round(n * float(np.mean(per_file)), 1),
                                         "rotated_at_rotated_radius": round(n * float(np.mean(split)), 1),
                                         "batched_1000_files": round(n * float(np.mean(batched)), 1)}}


# -- one set -------------------------------------------------------------------------------------

def run_set(name: str, data: dict, tmpdir: str, args) -> dict:
    codes = np.ascontiguousarray(data["codes"], dtype=np.uint64)
    n = len(codes)
    note(f"[{name}] inserting {n:,} codes into a fresh LmdbIndex (batches of {BATCH:,}) ...")
    idx, ins = insert(codes, os.path.join(tmpdir, "index"), args.real_fields)
    q0 = np.ascontiguousarray(data["queries"][0])
    t0 = time.perf_counter()
    idx.range_search_many(q0, ACT)  # loads the codes into RAM and builds the MIH tables the cost model wants
    ready = {"first_search_s": round(time.perf_counter() - t0, 2)}
    fns = searchers(idx, None, codes)
    for r in RADII:  # warm: numba, caches, every table layout
        for f in fns.values():
            f(q0, r)
    ready["ram_bytes_per_file"] = rounded(idx.stats()["ram_bytes"] / n)
    note(f"[{name}] {len(data['queries'])} queries x {len(RADII)} radii x (single, 8 variants), interleaved ...")
    res = run_queries(data, fns, idx, args.case_budget, args.min_queries)
    edges = None
    if args.edges:
        note(f"[{name}] edge finding: {args.edges} files against the full index ...")
        edges = edge_finding(idx, codes, np.asarray(data["p"]), args.edges, args.seed)
    # FAISS last, in a pass of its own: once loaded, its OpenMP runtime made ~2 % of the other
    # methods' calls in the same process take 15-40 ms of CPU (measured: gone without FAISS)
    faiss_info = {"skipped": f"n > --faiss-max {args.faiss_max:,}"}
    if n <= args.faiss_max:
        note(f"[{name}] FAISS IndexBinaryMultiHash add, then the same queries ...")
        faiss_index, faiss_info = faiss_build(codes)
        fs = {"faiss": searchers(idx, faiss_index, codes)["faiss"]}
        fres = run_queries(data, fs, idx, args.case_budget, args.min_queries, truth=res["truth"])
        for key, per in fres["latency"].items():
            res["latency"][key]["faiss"] = per["faiss"]
        res["mismatches"] += fres["mismatches"]
        res["mismatch_examples"] += fres["mismatch_examples"]
        fns = {**fns, **fs}
        del faiss_index
    del res["truth"]
    idx.close()
    return {"n": n, "insert": ins, "faiss": faiss_info, "ready": ready, "edges": edges,
            "info": data.get("info", {}), "methods": list(fns), **res}


def print_set(name: str, res: dict) -> None:
    ins = res["insert"]
    print(f"\n== {name}: n = {res['n']:,} ==")
    info = res["info"]
    if info:
        print(f"composition: {info['stored_real']:,} real codes, {info['cluster_centres']:,} cluster centres + "
              f"{info['cluster_members']:,} members (flips: median {info['distance_median']} bits), "
              f"{info['independent']:,} independent codes with the real per-bit frequencies")
    b = ins["bytes_per_file"]
    print(f"insert: {ins['files_per_s']:,} files/s in put_many ({ins['put_many_s']} s; building the records "
          f"{ins['records_s']} s apart); batch p50 {ins['batch_p50_s']} s, p99 {ins['batch_p99_s']} s")
    print(f"bytes/file on disk ({'real' if ins.get('real_fields') else 'round'} record fields): used {b['used']} "
          f"(data.mdb {b['data_mdb']}); without paths {b['without_paths']} "
          f"(paths table {b['tables'].get('paths')} + path strings {b['path_strings_in_records']} removed); "
          f"search structures (codes) {b['search_structures']}")
    print("  per table: " + ", ".join(f"{k} {v}" for k, v in b["tables"].items()))
    print(f"first search (codes into RAM + MIH build) {res['ready']['first_search_s']} s; "
          f"RAM {res['ready']['ram_bytes_per_file']} B/file; FAISS {res['faiss']}")
    methods = res["methods"]
    len_q = max(v["queries"] for per in res["latency"].values() for v in per.values())
    rows = []
    for key, per in res["latency"].items():
        r, mode = key.split("/")
        lin, ours = per["linear"], per.get("ours")
        if mode == "daemon":
            r, mode = f"{REPORT}+{ROTATED}", f"daemon: 1@{REPORT} + 7@{ROTATED}"
        rows.append([r, mode, res["mean_hits"][key], ",".join(f"{k}:{v}" for k, v in res["plans"][key].items()),
                     f"{lin['p50_ms'] / ours['p50_ms']:.1f}x / {lin['cpu_p50_ms'] / ours['cpu_p50_ms']:.1f}x" if ours else "-"]
                    + [f"{per[m]['p50_ms']:.3g} / {per[m]['p99_ms']:.3g}" + ("" if per[m]["queries"] == len_q else f" ({per[m]['queries']}q)")
                       if m in per else "-" for m in methods])
    print_table(["radius", "query", "hits", "ours plan", "linear/ours p50 wall / CPU"] + [f"{m} p50/p99 ms" for m in methods],
                rows, title="query latency (ms, wall clock), one code vs its 8 dihedral variants")
    rows = [[*key.split("/")] + [f"{per[m]['cpu_p50_ms']:.3g} / {per[m]['cpu_p99_ms']:.3g}" if m in per else "-" for m in methods]
            for key, per in res["latency"].items()]
    print_table(["radius", "query"] + [f"{m} CPU p50/p99 ms" for m in methods], rows,
                title="the same queries in thread CPU time (excludes time the query waited for a core)")
    print(f"p99 over {len_q} queries; (Nq): a slow method timed on its first N queries only (time budget per case)")
    print(f"Python GC during the queries: {res['gc']}; tracked objects {len(gc.get_objects()):,}")
    if res["edges"]:
        e = res["edges"]
        print(f"edge finding ({e['files_timed']} files timed, {e['edges_per_file']} edges/file): per file ms "
              f"{e['per_file_ms']}; all {res['n']:,} files at full index size, s: {e['all_files_s_at_full_size']}")
    print(f"exactness vs linear scan: {res['mismatches']} mismatching answers")
    for mm in res["mismatch_examples"]:
        print(f"  MISMATCH {mm}")


def main(argv=None) -> int:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=None, help="codes per set (default 1,000,000; --quick 100,000)")
    p.add_argument("--queries", type=int, default=None, help="queries per set (default 100; --quick 30)")
    p.add_argument("--originals", type=int, default=None, help="photos whose transformed copies give real codes (default 60; --quick 15)")
    p.add_argument("--case-budget", type=float, default=6.0,
                   help="seconds a method may spend on one (radius, mode) case before it is skipped for the remaining queries (default 6)")
    p.add_argument("--min-queries", type=int, default=10, help="queries every method answers in every case (default 10)")
    p.add_argument("--sets", default="random,lbph", help="comma-separated: random, lbph")
    p.add_argument("--faiss-max", type=int, default=10_000_000, help="skip FAISS above this n")
    p.add_argument("--edges", type=int, default=None, help="files whose edge finding is timed (default 300; 0: skip)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"where built code sets are kept (default {DEFAULT_CACHE})")
    p.add_argument("--tmpdir", default=None, help="where the temporary LMDB goes (default: the system temp dir)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--real-fields", action="store_true",
                   help="records with the fields of real photos (float64 quality/chroma, ...): see records()")
    args = p.parse_args(argv)
    corpus = common.check_corpus(args.corpus)
    n = args.n or (100_000 if args.quick else 1_000_000)
    n_queries = args.queries or (30 if args.quick else 100)
    n_orig = args.originals or (15 if args.quick else 60)
    args.edges = (100 if args.quick else 300) if args.edges is None else args.edges
    from dedupd.index.search_kernels import warm as warm_index
    from dedupd.kernels import warm
    warm()
    warm_index()
    started = time.perf_counter()
    results = {}
    for name in args.sets.split(","):
        data = make_set(name, n, n_queries, args.seed, args.cache, corpus, n_orig)
        with tempfile.TemporaryDirectory(prefix="dedupd-bench-index-", dir=args.tmpdir) as tmp:
            results[name] = run_set(name, data, tmp, args)
        del data
        print_set(name, results[name])
    total = time.perf_counter() - started
    print(f"total {total:.0f} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"load average at the end {os.getloadavg()}")
    common.emit_json({"bench": "index", "quick": args.quick, "n": n, "queries": n_queries, "radii": list(RADII),
                      "case_budget_s": args.case_budget, "min_queries": args.min_queries,
                      "machine": common.machine(), "versions": common.versions("numpy", "numba", "lmdb", "faiss"),
                      "seconds": round(total, 1), "sets": results})
    return 1 if any(r["mismatches"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
