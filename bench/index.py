"""Exact Hamming range search at NAS scale: our MIH in LMDB (and its in-memory twin) vs a
numba linear scan over all codes in RAM vs FAISS IndexBinaryMultiHash, on the same queries.

Two code sets of n codes each (default 1M, --quick 100k):
  random    uniform random 128-bit codes;
  lbph      codes with the bit statistics of real LBPH fingerprints: the corpus photos and
            in-memory transformed copies of a sample of them are fingerprinted; the stored set
            is those real codes + clusters of near duplicates (synthetic centres, members made
            by flipping k random bits, k drawn from the real original->copy distances) + codes
            whose bits are drawn independently with the real per-bit frequencies.
Queries: perturbed stored codes (hits), fresh codes (mostly misses) and, for lbph, held-out
real copies with their real 8 dihedral variants. Single-code queries and 8-variant queries
(range_search_many; the other methods loop or batch the 8 codes).

Every method's answer is checked against the linear scan (identical id sets, else the
mismatches are printed and the exit status is 1). Insert time (put_many, 10k records per
batch, synthetic paths) and LMDB bytes per file are reported too.

Run:  /tmp/venv/bin/python bench/index.py [--n 1000000] [--queries 200] [--quick] [--corpus PATH]
"""

from __future__ import annotations

import hashlib
import os
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import common
from common import median, note, percentile, print_table, rounded

RADII = (4, 8, 12, 16, 24, 28)  # 28: the product's provisional report threshold
BATCH = 10_000
BITS = 128


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


# -- stores --------------------------------------------------------------------------------------

def records(codes: np.ndarray, start: int, stop: int):
    from dedupd.index.records import FileRecord
    out = []
    for i in range(start, stop):
        w0, w1 = codes[i]
        out.append(FileRecord(
            file_id=0, path=f"/srv/photos/synthetic/{i // 1000:04d}/IMG_{i:07d}.jpg", dev=2049, ino=1_000_000 + i,
            size=2_000_000 + i % 997, mtime_ns=1_600_000_000_000_000_000 + i, ctime_ns=1_600_000_000_000_000_000 + i,
            width=4000, height=3000, format="jpeg", content_hash=hashlib.sha256(i.to_bytes(8, "little")).digest(),
            code=(int(w0), int(w1)), algo="lbph", algo_version=1, quality=40.0))
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def insert(codes: np.ndarray, tmpdir: str, use_memory: bool) -> tuple[dict, dict]:
    """Insert all codes into LmdbIndex, then into MemoryIndex, batch by batch.

    Not interleaved: the MemoryIndex holds millions of Python objects, which would slow the
    garbage collector (and so the LMDB inserts) if both were filled side by side.
    """
    from dedupd.index import LmdbIndex, MemoryIndex
    lmdb_path = os.path.join(tmpdir, "index")
    stores = {"lmdb": LmdbIndex.open(lmdb_path, code_bits=128, m=8, algo="lbph", algo_version=1)}
    if use_memory:
        stores["memory"] = MemoryIndex(code_bits=128, m=8, algo="lbph", algo_version=1)
    secs = {k: [] for k in stores}
    n = len(codes)
    rss0 = rss_mb()
    for name, store in stores.items():
        if name == "memory":
            rss0 = rss_mb()
        for b, s in enumerate(range(0, n, BATCH)):
            batch = records(codes, s, min(n, s + BATCH))
            t0 = time.perf_counter()
            stored = store.put_many(batch)
            secs[name].append(time.perf_counter() - t0)
            if stored[0].file_id != s + 1 or stored[-1].file_id != s + len(batch):
                raise AssertionError(f"{name}: unexpected ids {stored[0].file_id}..{stored[-1].file_id} for rows {s}..")
            if (b + 1) % 25 == 0:
                note(f"  {name}: inserted {s + len(batch):,} / {n:,} ({sum(secs[name]):.0f} s)")
    mem_rss = rss_mb() - rss0 if use_memory else 0.0  # the MemoryIndex's growth
    t0 = time.perf_counter()
    faiss_index = faiss_build(codes)
    faiss_secs = time.perf_counter() - t0
    st = stores["lmdb"].stats()
    data = os.path.join(lmdb_path, "data.mdb")
    stores["lmdb"].close()  # LMDB forbids a second environment on the same file in one process
    per_table = table_bytes(lmdb_path, n)
    stores["lmdb"] = LmdbIndex.open(lmdb_path, code_bits=128, m=8, algo="lbph", algo_version=1)
    ins = {"n": n, "batch": BATCH,
           "seconds": {k: round(sum(v), 2) for k, v in secs.items()} | {"faiss": round(faiss_secs, 2)},
           "us_per_record": {k: rounded(1e6 * sum(v) / n) for k, v in secs.items()} | {"faiss": rounded(1e6 * faiss_secs / n)},
           "batch_p50_s": {k: rounded(median(v)) for k, v in secs.items()},
           "batch_first_last_s": {k: f"{v[0]:.2f} / {v[-1]:.2f}" for k, v in secs.items()},
           "lmdb_used_bytes_per_file": rounded(st["used_bytes"] / n),
           "lmdb_file_bytes_per_file": rounded(os.stat(data).st_size / n),
           "lmdb_allocated_bytes_per_file": rounded(os.stat(data).st_blocks * 512 / n),
           "lmdb_table_bytes_per_file": per_table,
           "lmdb_entries": st["entries"]}
    if use_memory:
        ins["memory_rss_mb"] = round(mem_rss, 1)
    stores["faiss"] = faiss_index
    return stores, ins


def table_bytes(path: str, n: int) -> dict:
    """Pages used by each named LMDB table, in bytes per file (read-only look at the environment)."""
    import lmdb
    env = lmdb.open(path, readonly=True, lock=False, max_dbs=64, subdir=True)
    try:
        out, mih = {}, 0.0
        with env.begin() as txn:
            names = [k.decode() for k, _ in txn.cursor()]
        for name in names:
            db = env.open_db(name.encode(), create=False)
            with env.begin() as txn:
                s = txn.stat(db)
            b = s["psize"] * (s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]) / n
            if name.startswith("mih"):
                mih += b
            else:
                out[name] = rounded(b)
        out["mih (all tables)"] = rounded(mih)
        return out
    finally:
        env.close()


def faiss_build(codes: np.ndarray):
    import faiss
    idx = faiss.IndexBinaryMultiHash(BITS, 8, 16)
    idx.add(np.ascontiguousarray(codes, dtype="<u8").view(np.uint8))
    return idx


# -- queries -------------------------------------------------------------------------------------

def searchers(stores: dict, codes: np.ndarray) -> dict:
    """name -> fn(queries (k, 2) uint64, radius) -> list of k sorted id lists (ids are 1-based rows)."""
    from dedupd.kernels import within_radius

    def linear(qs, r):
        return [(within_radius(q, codes, r) + 1).tolist() for q in qs]

    def store(idx):
        def search(qs, r):
            res = idx.range_search(qs[0], r) if len(qs) == 1 else None
            res = [res] if res is not None else idx.range_search_many(qs, r)
            return [sorted(i for i, _ in hits) for hits in res]
        return search

    def faiss_search(qs, r):
        f = stores["faiss"]
        f.nflip = r // 8  # pigeonhole: one of the 8 16-bit substrings is within r // 8
        lims, _, ids = f.range_search(np.ascontiguousarray(qs, dtype="<u8").view(np.uint8), r + 1)  # faiss: d < radius
        return [sorted((ids[lims[i]:lims[i + 1]] + 1).tolist()) for i in range(len(qs))]

    def forced_mih(qs, r):  # the same LMDB index with the planner told to always probe the MIH tables
        idx = stores["lmdb"]
        idx.scan_costs = (float("inf"), float("inf"), 0.0)
        try:
            return lmdb_auto(qs, r)
        finally:
            del idx.scan_costs  # back to the class default

    lmdb_auto = store(stores["lmdb"])
    out = {"linear": linear, "lmdb": lmdb_auto}
    if hasattr(type(stores["lmdb"]), "scan_costs"):
        out["lmdb-mih"] = forced_mih
    if "memory" in stores:
        out["memory"] = store(stores["memory"])
    out["faiss"] = faiss_search
    return out


def run_queries(data: dict, fns: dict, budget: float, min_queries: int) -> tuple[dict, list, dict]:
    """Interleaved: for each query, the (radius, mode) cases in a shuffled order, and for each case
    every method in a shuffled order. (A fixed rotation would let "lmdb-mih" run right after "lmdb"
    on the same keys 4 times out of 5, and profit from the pages and CPU caches it just warmed.) The linear scan (the reference) answers every query; another method
    stops being run for a case once it has answered `min_queries` queries and spent `budget`
    seconds on that case."""
    shuffle = np.random.default_rng(7)
    cases = [(r, mode) for r in RADII for mode in ("single", "variants")]
    names = list(fns)
    times = {(m, r, mode): [] for m in names for r in RADII for mode in ("single", "variants")}
    hits = {(r, mode): [] for r in RADII for mode in ("single", "variants")}
    mismatches = []
    for qi, variants in enumerate(data["queries"]):
        for ci in shuffle.permutation(len(cases)):
            r, mode = cases[ci]
            qs = variants[:1] if mode == "single" else variants
            order = [names[i] for i in shuffle.permutation(len(names))]
            answers = {}
            for m in order:
                spent = times[(m, r, mode)]
                if m != "linear" and len(spent) >= min_queries and sum(spent) >= budget:
                    continue
                t0 = time.perf_counter()
                answers[m] = fns[m](qs, r)
                times[(m, r, mode)].append(time.perf_counter() - t0)
            hits[(r, mode)].append(sum(len(a) for a in answers["linear"]))
            mismatches += compare(answers, qi, data["kinds"][qi], r, mode)
        if (qi + 1) % 50 == 0:
            note(f"  queries {qi + 1} / {len(data['queries'])}")
    return times, mismatches, hits


def compare(answers: dict, qi: int, kind: str, r: int, mode: str) -> list[dict]:
    """Every (method, variant) whose id list differs from the linear scan's."""
    out = []
    truth = answers["linear"]
    for m, ans in answers.items():
        for v, (a, t) in enumerate(zip(ans, truth)):
            if a != t:
                out.append({"method": m, "query": qi, "kind": kind, "radius": r, "mode": mode, "variant": v,
                            "missing": sorted(set(t) - set(a))[:10], "extra": sorted(set(a) - set(t))[:10]})
        if len(ans) != len(truth):
            out.append({"method": m, "query": qi, "kind": kind, "radius": r, "mode": mode, "error": "answer count"})
    return out


def plans(stores: dict, n: int) -> dict:
    """What the LMDB index's planner picks per radius and mode, with its codes in RAM (the writer keeps
    them there): probe the MIH tables, or scan every code."""
    try:
        from dedupd.index import mih
        costs = tuple(getattr(stores["lmdb"], "scan_costs", (1.0, 0.0)))
        out = {}
        for r in RADII:
            for k, mode in ((1, "single"), (8, "variants")):
                p = mih.plan(mih.Layout(128, 8), r, k, n, 0.0, *costs[1:])
                out[f"{r}/{mode}"] = "scan" if p is None else f"probe {sum(mih.neighbourhood_size(16, s) for _, s in p) * k} keys"
        return out
    except Exception as exc:  # the planner is not ours to rely on
        return {"error": repr(exc)}


def run_set(name: str, data: dict, tmpdir: str, use_memory: bool, budget: float, min_queries: int) -> dict:
    codes = np.ascontiguousarray(data["codes"], dtype=np.uint64)
    n = len(codes)
    note(f"[{name}] inserting {n:,} codes (LMDB{' + MemoryIndex' if use_memory else ''}, batches of {BATCH:,}) ...")
    stores, ins = insert(codes, tmpdir, use_memory)
    fns = searchers(stores, codes)
    for f in fns.values():  # warm: numba, LMDB pages, the code cache
        f(data["queries"][0], 24)
        f(data["queries"][0][:1], 4)
    note(f"[{name}] {len(data['queries'])} queries x {len(RADII)} radii x (single, 8 variants), interleaved ...")
    times, mismatches, hits = run_queries(data, fns, budget, min_queries)
    plan = plans(stores, n)
    for s in stores.values():
        if hasattr(s, "close"):
            s.close()
    q = {}
    for (m, r, mode), ts in times.items():
        if ts:
            q.setdefault(f"{r}/{mode}", {})[m] = {"p50_ms": rounded(1000 * median(ts)), "p99_ms": rounded(1000 * percentile(ts, 99)),
                                                  "queries": len(ts)}
    mean_hits = {f"{r}/{mode}": rounded(float(np.mean(h))) for (r, mode), h in hits.items()}
    return {"n": n, "insert": ins, "queries": q, "mean_hits": mean_hits, "plan": plan,
            "mismatches": len(mismatches), "mismatch_examples": mismatches[:20], "info": data.get("info", {}),
            "methods": list(fns)}


def print_set(name: str, res: dict) -> None:
    ins = res["insert"]
    print(f"\n== {name}: n = {res['n']:,} ==")
    if res["info"]:
        info = res["info"]
        print(f"composition: {info['stored_real']:,} real codes, {info['cluster_centres']:,} cluster centres + "
              f"{info['cluster_members']:,} members (flips: median {info['distance_median']} bits), "
              f"{info['independent']:,} independent codes with the real per-bit frequencies")
        print(f"LBPH bits over the {info['photos']} corpus photos: P(bit=1) in [{info['bit_p_min']}, {info['bit_p_max']}]; "
              f"constant bits {info['constant_bits']}; (bit, p) outside [0.35, 0.65]: {info['bits_outside_0.35_0.65']}")
        print("pairs of photos with an identical code byte, observed/expected for independent balanced bits, "
              f"bytes 0..15: {info['byte_collision_ratio_photos']}")
        print(f"  (the stored synthetic set: {info['byte_collision_ratio_stored']})")
    rows = [[m, ins["seconds"].get(m), ins["us_per_record"].get(m), ins["batch_p50_s"].get(m, "-"),
             ins.get("batch_first_last_s", {}).get(m, "-")] for m in ins["seconds"]]
    print_table(["store", "insert s", "us/record", "batch p50 s", "first/last batch s"], rows,
                title="insert (10k records per put_many; LMDB first, then MemoryIndex; FAISS add of the raw codes)")
    extra = f", MemoryIndex RSS +{ins['memory_rss_mb']} MB" if "memory_rss_mb" in ins else ""
    print(f"LMDB bytes per file: used {ins['lmdb_used_bytes_per_file']}, file {ins['lmdb_file_bytes_per_file']}, "
          f"allocated {ins['lmdb_allocated_bytes_per_file']}{extra}")
    print("  per table (bytes/file): " + ", ".join(f"{k} {v}" for k, v in ins["lmdb_table_bytes_per_file"].items()))
    methods = res["methods"]
    len_q = max(v["queries"] for per in res["queries"].values() for v in per.values())
    rows = []
    for key, per in res["queries"].items():
        r, mode = key.split("/")
        rows.append([r, mode, res["mean_hits"][key], res["plan"].get(key, "")]
                    + [f"{per[m]['p50_ms']:.3g} / {per[m]['p99_ms']:.3g}" + ("" if per[m]["queries"] == len_q else f" ({per[m]['queries']}q)")
                       if m in per else "-" for m in methods])
    print_table(["radius", "query", "hits", "lmdb plan"] + [f"{m} p50/p99 ms" for m in methods], rows,
                title="query latency (ms), single code vs the 8 dihedral variants")
    print(f"p99 over {len_q} queries; (Nq): a slow method timed on its first N queries only (time budget per case)")
    print(f"exactness vs linear scan: {res['mismatches']} mismatching answers")
    for mm in res["mismatch_examples"]:
        print(f"  MISMATCH {mm}")


def main(argv=None) -> int:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=None, help="codes per set (default 1,000,000; --quick 100,000)")
    p.add_argument("--queries", type=int, default=None, help="queries per set (default 150; --quick 40)")
    p.add_argument("--originals", type=int, default=None, help="photos whose transformed copies give real codes (default 60; --quick 15)")
    p.add_argument("--memory-max", type=int, default=1_000_000, help="skip MemoryIndex above this n (default 1,000,000)")
    p.add_argument("--memory-sets", default="random", help="sets that also fill a MemoryIndex (default: random; 'all' or 'none')")
    p.add_argument("--case-budget", type=float, default=8.0,
                   help="seconds a method may spend on one (radius, mode) case before it is skipped for the remaining queries (default 8)")
    p.add_argument("--min-queries", type=int, default=10, help="queries every method answers in every case (default 10)")
    p.add_argument("--sets", default="random,lbph", help="comma-separated: random, lbph")
    p.add_argument("--tmpdir", default=None, help="where the temporary LMDB goes (default: the system temp dir)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    corpus = common.check_corpus(args.corpus)
    n = args.n or (100_000 if args.quick else 1_000_000)
    n_queries = args.queries or (40 if args.quick else 150)
    n_orig = args.originals or (15 if args.quick else 60)
    set_names = args.sets.split(",")
    memory_sets = set(set_names if args.memory_sets == "all" else [] if args.memory_sets == "none" else args.memory_sets.split(","))
    use_memory = n <= args.memory_max
    skipped = []
    if not use_memory:
        skipped.append(f"MemoryIndex: n = {n:,} > --memory-max {args.memory_max:,}")
    else:
        skipped += [f"MemoryIndex not built for set {s!r} (--memory-sets {args.memory_sets})" for s in set_names if s not in memory_sets]


    import faiss
    faiss.omp_set_num_threads(1)  # every method answers one query on one core
    from dedupd.kernels import warm
    warm()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    results = {}
    real = None
    for name in set_names:
        if name == "random":
            data = build_random(rng, n, n_queries)
        elif name == "lbph":
            if real is None:
                note(f"fingerprinting the corpus photos and transformed copies of {n_orig} of them ...")
                real = real_fingerprints(corpus, n_orig, 2)
            data = build_lbph(rng, n, n_queries, real)
        else:
            raise SystemExit(f"unknown set {name!r}")
        with tempfile.TemporaryDirectory(prefix="dedupd-bench-index-", dir=args.tmpdir) as tmp:
            results[name] = run_set(name, data, tmp, use_memory and name in memory_sets, args.case_budget, args.min_queries)
        print_set(name, results[name])
    total = time.perf_counter() - started
    for s in skipped:
        print(f"note: {s}")
    print(f"total {total:.0f} s; faiss with 1 OpenMP thread; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    common.emit_json({"bench": "index", "quick": args.quick, "n": n, "queries": n_queries, "radii": list(RADII),
                      "case_budget_s": args.case_budget, "min_queries": args.min_queries,
                      "machine": common.machine(), "versions": common.versions("numpy", "numba", "lmdb", "faiss"),
                      "skipped": skipped, "seconds": round(total, 1), "sets": results})
    return 1 if any(r["mismatches"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
