"""Grouping of a 1M-file first scan (issue 5: "all near pairs in <= 2 minutes").

A first scan stores its files in batches of `scan.BATCH`; since 8173c1e it links them as the
daemon does with many files to fingerprint (`daemon/scan.py`): the pairs within each batch as
the batch is stored (`scan.batch_hits`, brute force over 256 files), every other pair by one
join at the end (`scan.join_hits` -> `index.selfjoin.variant_join`: the upright code within
the report radius, the 7 rotated/mirrored variants within the rotated radius, each file
against the codes stored before it), one edge per pair (`scan.best_edges`), then grouping
(`regroup.GroupCache.full`, what the scan's first regroup runs). This benchmark times those
steps on n synthetic files without images:

  codes     the code sets of bench/index.py (`make_set`, cached): `random` (uniform) and `lbph`
            (real LBPH bit statistics, 10 % in clusters of near duplicates);
  variants  the 7 rotated/mirrored variant codes of each file: uniform (random) or drawn with
            the real per-bit frequencies (lbph), and for 1 % of the files one variant planted
            within 0-16 bits of an earlier file's code (a rotated copy);
  order     files stored in set order, batch i = files [256 i, 256 i + 256).

Reported per set (medians of --repeats runs, wall and process CPU time, 2 threads):
  batches    the in-batch pairs of every batch (spread over the scan, not after it);
  join       the join at the end of the scan;  edges  hits -> one Edge per pair;
  grouping   `GroupCache.full()` over the stored edges (upright edges within the act radius
             count as pixel-verified: there are no pixels here), records of the edge ends;
  after last file  join + edges + grouping: what the 2-minute target is about.
Not included: writing the edges to LMDB and the pixel checks of act candidates (these
re-read files: disk-bound, the same work as a per-file scan does). Exactness: the hits of
--sample files (half of them with a planted variant; in-batch and join) against a brute-force
pass (`kernels.hamming_many`) over every code they can see. Per-file path: `CodeTable.search` of --per-file files' 8 variants (radii 28 / 20) against
all n codes, what `_find_edges` costs per file at the end of the scan, times n / 2 (the index
grows from 0 to n during a first scan), as docs/performance.md extrapolated it before.

Run:  /tmp/venv/bin/python bench/grouping_scale.py [--n 1000000] [--sets random,lbph] [--repeats 3] [--quick]
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np

import common
from common import median, note, print_table, rounded
from index import DEFAULT_CACHE, bernoulli, flip, make_set



def timed(fn):
    """(wall s, CPU s of the whole process (every thread), result)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def make_variants(rng, name: str, codes: np.ndarray, p: np.ndarray, planted: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8, 2) variants: row 0 the code, rows 1-7 fresh codes with the set's bit frequencies,
    and in a `planted` share of the files one variant within 0-16 bits of an earlier file."""
    n = len(codes)
    if name == "random":
        rest = rng.integers(0, 2**64, (n * 7, 2), dtype=np.uint64, endpoint=False)
    else:
        rest = bernoulli(rng, p, n * 7)
    variants = np.concatenate([codes[:, None, :], rest.reshape(n, 7, 2)], axis=1)
    k = int(n * planted)
    files = rng.choice(np.arange(1, n), k, replace=False)
    earlier = (rng.random(k) * files).astype(np.int64)
    flippable = (p > 0) & (p < 1)
    variants[files, rng.integers(1, 8, k)] = flip(rng, codes[earlier], rng.integers(0, 17, k), flippable)
    return variants, files


def in_batch(variants: np.ndarray, batch_size: int, up: int, rot: int, act: int):
    """Every batch's pairs and edges, as `Scanner._batch_edges` finds them when it stores the batch."""
    from dedupd.daemon.linking import batch_hits, best_edges

    edges, hits = [], []
    for s in range(0, len(variants), batch_size):
        f, g, d, k = batch_hits(variants[s:s + batch_size], up, rot)
        ids = np.arange(s + 1, s + 1 + min(batch_size, len(variants) - s), dtype=np.int64)
        hits.append(np.stack([ids[f], ids[g], d, k], axis=1))
        edges += best_edges(ids[f], ids[g], d, k, f, act)
    return edges, np.concatenate(hits) if hits else np.empty((0, 4), np.int64)


class EdgeStore:
    """What `GroupCache.full` reads of an index (iter_edges, get_many), in RAM: the edges as
    add_edges leaves them (a later edge of a pair replaces the earlier one) and the records."""

    def __init__(self, edges, codes: np.ndarray, act: int):
        from dataclasses import replace
        from dedupd.index import FileRecord

        pairs = {}
        for e in edges:
            n = e.normalized()
            pairs[(n.a, n.b)] = replace(n, verified=n.variant == 0 and n.distance <= act)
        self.edges = [pairs[k] for k in sorted(pairs)]
        ends = {i for e in self.edges for i in (e.a, e.b)}
        self.records = {
            i: FileRecord(i, f"/photos/{i // 1000:04d}/IMG_{i:07d}.jpg", 1, i, 2_000_000 + i % 9973, 1_600_000_000 * 10**9 + i,
                          1_600_000_000 * 10**9 + i, 4000, 3000, "jpeg", i.to_bytes(32, "little"),
                          (int(codes[i - 1, 0]), int(codes[i - 1, 1])), "lbph", 2, 20.0 + i % 7, False, chroma=12.0)
            for i in ends}

    def iter_edges(self):
        return iter(self.edges)

    def get_many(self, ids):
        return {i: self.records[i] for i in ids if i in self.records}


def brute_hits(variants, codes, files, batch_size, up, rot) -> set[tuple]:
    """(file id, other id, distance, variant) of each of `files` against every code it sees:
    files of its own batch and of earlier ones (ids are rows + 1)."""
    from dedupd.kernels import hamming_many

    out = set()
    for f in files:
        visible = (f // batch_size + 1) * batch_size
        for k in range(variants.shape[1]):
            d = hamming_many(variants[f, k], codes[:visible])
            for g in np.flatnonzero(d <= (up if k == 0 else rot)):
                if g != f:
                    out.add((f + 1, int(g) + 1, int(d[g]), k))
    return out


def per_file_path(codes: np.ndarray, variants: np.ndarray, files: np.ndarray, up: int, rot: int) -> dict:
    from dedupd.index.codetable import CodeTable

    table = CodeTable.from_codes(np.arange(1, len(codes) + 1), codes)
    radii = [up] + [rot] * (variants.shape[1] - 1)
    table.search(variants[files[0]], radii)  # builds the MIH tables
    wall, cpu = [], []
    for f in files:
        w, c = time.perf_counter(), time.thread_time()
        table.search(variants[f], radii)
        wall.append(time.perf_counter() - w)
        cpu.append(time.thread_time() - c)
    n = len(codes)
    return {"files": len(files), "ms_per_file_wall": rounded(1000 * median(wall)), "ms_per_file_cpu": rounded(1000 * median(cpu)),
            "first_scan_s_cpu": rounded(median(cpu) * n / 2), "first_scan_s_wall": rounded(median(wall) * n / 2)}


def run_set(name: str, data: dict, args) -> dict:
    from dedupd.daemon.config import parse_config
    from dedupd.daemon.grouping import Thresholds
    from dedupd.daemon.regroup import GroupCache
    from dedupd.daemon.linking import JOIN_CHUNKS, best_edges, join_hits
    from dedupd.daemon.scan import BATCH

    config = parse_config("")
    up, rot, act = config.report_threshold, config.rotated_threshold, config.act_threshold
    rng = np.random.default_rng([args.seed, 7])
    codes = np.ascontiguousarray(data["codes"], dtype=np.uint64)
    n = len(codes)
    note(f"[{name}] variants for {n:,} files")
    variants, planted = make_variants(rng, name, codes, data["p"], 0.01)
    ids = np.arange(1, n + 1, dtype=np.int64)
    batch = np.arange(n, dtype=np.int64) // BATCH
    changed = np.ones(n, bool)
    out = {"n": n, "planted_rotated": len(planted), "batch": BATCH, "chunks": JOIN_CHUNKS, "workers": args.workers,
           "radii": {"upright": up, "rotated": rot, "act": act}, "load_before": os.getloadavg()}

    note(f"[{name}] in-batch pairs")
    w, c, (batch_edges, batch_rows) = timed(lambda: in_batch(variants, BATCH, up, rot, act))
    out["batches"] = {"wall_s": rounded(w), "cpu_s": rounded(c), "hits": len(batch_rows), "edges": len(batch_edges)}

    runs = []
    for r in range(args.repeats):
        note(f"[{name}] join {r + 1}/{args.repeats} (load {os.getloadavg()[0]:.1f})")
        load = os.getloadavg()[0]
        jw, jc, hits = timed(lambda: join_hits(ids, batch, changed, variants, ids, codes, up, rot, args.workers))
        ew, ec, join_edges = timed(lambda: best_edges(*hits, act))
        store = EdgeStore(batch_edges + join_edges, codes, act)
        cache = GroupCache(store, config, Thresholds.from_config(config))
        gw, gc, groups = timed(cache.full)
        runs.append({"join_wall_s": jw, "join_cpu_s": jc, "edges_wall_s": ew, "edges_cpu_s": ec,
                     "grouping_wall_s": gw, "grouping_cpu_s": gc, "total_wall_s": jw + ew + gw,
                     "total_cpu_s": jc + ec + gc, "load": load})
    out["runs"] = [{k: rounded(v) for k, v in run.items()} for run in runs]
    out["median"] = {k: rounded(median([run[k] for run in runs])) for k in runs[0]}
    out["pairs"] = {"join_hits": len(hits[0]), "join_edges": len(join_edges), "stored_edges": len(store.edges),
                    "rotated_edges": sum(e.variant != 0 for e in store.edges), "groups": len(groups),
                    "grouped_files": sum(1 + len(g.members) for g in groups)}

    note(f"[{name}] exactness on {args.sample} files")
    half = min(args.sample, n) // 2  # half of them with a planted rotated copy: pairs to check on any set
    files = np.unique(np.concatenate([rng.choice(n, min(args.sample, n) - half, replace=False),
                                      rng.choice(planted, min(half, len(planted)), replace=False)]))
    want = brute_hits(variants, codes, files, BATCH, up, rot)
    chosen = set((files + 1).tolist())
    got = {tuple(int(x) for x in row) for row in batch_rows if int(row[0]) in chosen}
    a, b, d, k, _ = hits
    sel = np.isin(a, files + 1)
    got |= set(zip(a[sel].tolist(), b[sel].tolist(), d[sel].tolist(), k[sel].tolist()))
    out["exactness"] = {"files": len(files), "pairs": len(want), "missing": len(want - got), "extra": len(got - want)}

    note(f"[{name}] per-file lookups of {args.per_file} files")
    out["per_file"] = per_file_path(codes, variants, rng.choice(n, min(args.per_file, n), replace=False), up, rot)
    out["load_after"] = os.getloadavg()
    return out


def print_set(name: str, res: dict) -> None:
    m = res["median"]
    rows = [
        ("in-batch pairs (during the scan)", res["batches"]["wall_s"], res["batches"]["cpu_s"], res["batches"]["hits"]),
        ("join (end of the scan)", m["join_wall_s"], m["join_cpu_s"], res["pairs"]["join_hits"]),
        ("hits -> edges", m["edges_wall_s"], m["edges_cpu_s"], res["pairs"]["join_edges"]),
        ("grouping (GroupCache.full)", m["grouping_wall_s"], m["grouping_cpu_s"], res["pairs"]["groups"]),
        ("after the last file: join + edges + grouping", m["total_wall_s"], m["total_cpu_s"], res["pairs"]["stored_edges"]),
        ("per-file lookups, extrapolated (n/2 files at full size)", res["per_file"]["first_scan_s_wall"],
         res["per_file"]["first_scan_s_cpu"], ""),
    ]
    print_table(["step", "wall s", "CPU s", "pairs / edges / groups"], rows,
                title=f"{name}: {res['n']:,} files, medians of {len(res['runs'])} runs, load {res['load_before'][0]:.1f} -> "
                      f"{res['load_after'][0]:.1f}")
    e = res["exactness"]
    print(f"  exact on {e['files']} files ({e['pairs']} pairs): missing {e['missing']}, extra {e['extra']}; "
          f"per-file lookup {res['per_file']['ms_per_file_wall']} ms wall / {res['per_file']['ms_per_file_cpu']} ms CPU")


def main(argv=None) -> int:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="files per set (default 1,000,000; --quick 100,000)")
    p.add_argument("--sets", default="random,lbph", help="comma-separated: random, lbph")
    p.add_argument("--repeats", type=int, default=None, help="runs of the join and grouping (default 3; --quick 1)")
    p.add_argument("--workers", type=int, default=2, help="join threads (the daemon uses its worker count)")
    p.add_argument("--sample", type=int, default=None, help="files checked against brute force (default 1,000; --quick 300)")
    p.add_argument("--per-file", type=int, default=300, help="files whose per-file lookup is timed")
    p.add_argument("--originals", type=int, default=None, help="as bench/index.py (default 60; --quick 15)")
    p.add_argument("--cache", default=DEFAULT_CACHE, type=lambda s: __import__("pathlib").Path(s),
                   help=f"where bench/index.py keeps its code sets (default {DEFAULT_CACHE})")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    n = args.n or (100_000 if args.quick else 1_000_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.sample = args.sample or (300 if args.quick else 1_000)
    n_orig = args.originals or (15 if args.quick else 60)
    from dedupd.index.search_kernels import warm as warm_index
    from dedupd.kernels import warm

    warm()
    warm_index()
    started = time.perf_counter()
    results = {}
    for name in args.sets.split(","):
        data = make_set(name, n, 100 if not args.quick else 30, args.seed, args.cache, args.corpus, n_orig)
        results[name] = run_set(name, data, args)
        del data
        print_set(name, results[name])
    print(f"total {time.perf_counter() - started:.0f} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    common.emit_json({"bench": "grouping_scale", "n": n, "quick": args.quick, "repeats": args.repeats,
                      "machine": common.machine(), "versions": common.versions("numpy", "numba"), "sets": results})
    return 1 if any(r["exactness"]["missing"] or r["exactness"]["extra"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
