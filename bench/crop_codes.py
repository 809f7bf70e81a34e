"""Crop window codes as the product computes them (docs/accuracy.md §12): how close a crop's
windows come to its original's, how close distinct photos come, and what the windows cost
a file, a lookup and a first scan's join.

* **recall**: --originals photos of `corpus/photos` (the accuracy bench's seeded sample;
  --all: every photo), each cropped as `bench/transforms.py` does (crop_15, crop_30,
  crop_10_tr, crop_20_centre, crop_15_half; jpeg_q75 as a control), both decoded and
  fingerprinted as a scan does it (`decode_file` + `fingerprint_decoded(..., crops=True)`).
  A pair's distance is what the later file's lookup finds (`linking.lookup`): the later
  file's window codes against the earlier's code, box code and stored windows, and the
  later's code and box code against the earlier's stored windows; both orders are reported
  (the copy indexed after its original, the usual case, and before it).
* **false pairs**: the same distance for every ordered pair of distinct originals.
* **cost**: `cropcodes.window_codes` per file (median over the originals' thumbnails); a
  lookup in `BoxedTables` of random codes with `STORED` window rows per file: 8 variants
  alone, and 8 variants + `QUERIES` window codes against every row (median of 3 rounds); a
  first scan's `crop_join_hits` on --join-files files beside the variant join; on disk, an
  `LmdbIndex` of --disk-files records (bench/index.py's records with real photos' fields)
  without and with `STORED` crop codes each: used bytes per file, paths excluded.

Usage: `python bench/crop_codes.py [--corpus DIR] [--quick] [--all]` (~4 min here at 120
originals; --quick: 30 originals, small tables). Prints human tables, then one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, check_corpus, list_images, machine, print_table, sample  # noqa: E402
from box_codes import random_codes  # noqa: E402
from transforms import BY_NAME  # noqa: E402

from dedupd.daemon import cropcodes  # noqa: E402
from dedupd.daemon.decode_job import decode_file  # noqa: E402
from dedupd.daemon.fingerprinting import fingerprint_decoded  # noqa: E402
from dedupd.daemon.linking import crop_join_hits, join_hits  # noqa: E402
from dedupd.index.boxes import alias  # noqa: E402
from dedupd.index.codecache import BoxedTables  # noqa: E402

KINDS = ("crop_15", "crop_30", "crop_10_tr", "crop_20_centre", "crop_15_half", "jpeg_q75")
RADII = (12, 16, 20, 24)
REPORT, ROTATED, CROP = 28, 20, 20
PIXEL_LIMIT = 100_000_000


def scanned(path: str):
    """(record, window codes) of a file, as a scan with match_crops makes them."""
    got = decode_file(path, PIXEL_LIMIT, "lbph")
    fp = fingerprint_decoded(path, got, "lbph", crops=True)
    return fp.record, fp.crop_queries


def _d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distances of every code of x (k, 2) to every code of y (m, 2)."""
    x, y = x.astype(np.uint64), y.astype(np.uint64)
    return (np.bitwise_count(x[:, None, 0] ^ y[None, :, 0]).astype(np.int64)
            + np.bitwise_count(x[:, None, 1] ^ y[None, :, 1]))


def lookup_distance(later, earlier) -> int:
    """The smallest distance the later file's lookup finds to the earlier one through windows
    (999: none), as `linking.lookup_edges` counts it."""
    (rec_l, q_l), (rec_e, q_e) = later, earlier
    own = lambda r: np.array([r.code] + ([r.box_code] if r.box_code else []), np.uint64)  # noqa: E731
    stored_e = q_e[:cropcodes.STORED]
    parts = [_d(q_l, np.vstack([own(rec_e), stored_e]))] if len(q_l) else []
    if len(stored_e):
        parts.append(_d(own(rec_l), stored_e))
    return int(min((p.min() for p in parts if p.size), default=999))


def recall(originals: list[str], workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        import cv2

        def one(i_path):
            i, path = i_path
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            orig = scanned(path)
            out = {}
            for kind in KINDS:
                data, ext = BY_NAME[kind].fn(img)
                copy_path = os.path.join(tmp, f"{i}_{kind}{ext}")
                Path(copy_path).write_bytes(data)
                copy = scanned(copy_path)
                out[kind] = (lookup_distance(copy, orig), lookup_distance(orig, copy))
            return orig, out

        t0 = time.perf_counter()
        results = list(pool.map(one, enumerate(originals)))
        seconds = time.perf_counter() - t0
    origs = [r[0] for r in results]
    rows = {}
    for kind in KINDS:
        later = np.array([r[1][kind][0] for r in results])
        earlier = np.array([r[1][kind][1] for r in results])
        rows[kind] = {f"copy_later_r{r}": float(np.mean(later <= r)) for r in RADII}
        rows[kind] |= {f"copy_first_r{r}": float(np.mean(earlier <= r)) for r in RADII}
    false = [lookup_distance(origs[i], origs[j]) for i in range(len(origs)) for j in range(len(origs)) if i != j]
    false = np.array(false)
    windows = [len(q) for _, q in origs]
    t = []
    for path in originals[:60]:
        thumb = decode_file(path, PIXEL_LIMIT, "lbph").thumb
        t0 = time.perf_counter()
        cropcodes.window_codes(thumb, "lbph")
        t.append((time.perf_counter() - t0) * 1e3)
    return {"originals": len(originals), "seconds": round(seconds, 1), "recall": rows,
            "false_ordered_pairs": len(false), "false_within": {str(r): int(np.sum(false <= r)) for r in RADII},
            "false_min": int(false.min()) if len(false) else None,
            "windows_per_file": {"p50": float(np.median(windows)), "min": int(min(windows)),
                                 "without": int(sum(w == 0 for w in windows))},
            "ms_window_codes": round(float(np.median(t)), 2)}


def lookup_cost(n: int, rounds: int = 3) -> dict:
    rng = np.random.default_rng(1)
    codes = random_codes(rng, n)
    k = cropcodes.STORED
    files = np.arange(1, n + 1)
    win_ids = np.concatenate([alias(0, s) | files for s in range(1, k + 1)]).astype(np.int64)
    ids = np.concatenate([files, win_ids]).astype(np.int64)
    rows = np.concatenate([codes, random_codes(rng, n * k)])
    tables = BoxedTables(ids, rows[:, 0].copy(), rows[:, 1].copy())
    nq = 8 + cropcodes.QUERIES
    queries = codes[rng.integers(0, n, nq * 12)].reshape(12, nq, 2)
    radii8 = np.array([REPORT] + [ROTATED] * 7)
    radii = np.concatenate([radii8, np.full(cropcodes.QUERIES, CROP)])
    mask8, mask = np.array([True] + [False] * 7), np.array([True] + [False] * 7 + [True] * cropcodes.QUERIES)
    times: dict[str, list[float]] = {"variants": [], "with_windows": []}
    for _ in range(rounds):
        for name, run in (("variants", lambda q: tables.search(np.ascontiguousarray(q[:8]), radii8, "auto", 0.0, mask8)),
                          ("with_windows", lambda q: tables.search(np.ascontiguousarray(q), radii, "auto", 0.0, mask))):
            t0 = time.perf_counter()
            for q in queries:
                run(q)
            times[name].append((time.perf_counter() - t0) / len(queries) * 1e3)
    return {"files": n, "window_rows": n * k, "ram_mb": round(tables.nbytes / 2**20, 1),
            **{f"ms_{k}": round(float(np.median(v)), 2) for k, v in times.items()}}


def join_cost(n: int, workers: int) -> dict:
    rng = np.random.default_rng(2)
    ids = np.arange(1, n + 1, dtype=np.int64)
    batch, changed = (ids - 1) // 256, np.ones(n, bool)
    variants = random_codes(rng, 8 * n).reshape(n, 8, 2)
    windows = random_codes(rng, cropcodes.QUERIES * n)
    owner = np.repeat(np.arange(n), cropcodes.QUERIES)
    stored = windows.reshape(n, cropcodes.QUERIES, 2)[:, :cropcodes.STORED].reshape(-1, 2)
    win_ids = np.sort(np.concatenate([alias(0, s) | ids for s in range(1, cropcodes.STORED + 1)]))
    order = np.argsort(np.concatenate([alias(0, s) | ids for s in range(1, cropcodes.STORED + 1)]))
    stored_rows = np.concatenate([stored.reshape(n, cropcodes.STORED, 2)[:, s] for s in range(cropcodes.STORED)])[order]
    no_box = np.zeros(n, bool)
    t0 = time.perf_counter()
    join_hits(ids, batch, changed, variants, ids, variants[:, 0].copy(), REPORT, ROTATED, workers)
    t1 = time.perf_counter()
    crop_join_hits(ids, batch, changed, variants[:, 0], np.zeros((n, 2), np.uint64), no_box, windows, owner, ids,
                   variants[:, 0].copy(), np.zeros(0, np.int64), np.zeros((0, 2), np.uint64), win_ids, stored_rows,
                   CROP, workers)
    t2 = time.perf_counter()
    return {"files": n, "variant_join_s": round(t1 - t0, 2), "crop_join_s": round(t2 - t1, 2)}


def disk_cost(n: int) -> dict:
    """Bytes per file of an LmdbIndex without paths, with and without crop codes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_index", Path(__file__).with_name("index.py"))
    bench_index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_index)
    rng = np.random.default_rng(3)
    codes = random_codes(rng, n)
    windows = random_codes(rng, n * cropcodes.STORED).reshape(n, cropcodes.STORED, 2)
    out = {"files": n}
    for name, crops in (("without", False), ("with", True)):
        with tempfile.TemporaryDirectory() as tmp:
            idx = bench_index.open_index(tmp)
            for s in range(0, n, 1000):
                batch, _ = bench_index.records(codes, s, min(n, s + 1000), real_fields=True)
                if crops:
                    batch = [r.with_(crop_codes=tuple((int(a), int(b)) for a, b in windows[s + i])) for i, r in enumerate(batch)]
                idx.put_many(batch)
            st = idx.stats()
            paths = st["table_bytes"]["paths"] + sum(len(r.path) for r in bench_index.records(codes, 0, n)[0])
            out[f"bytes_per_file_{name}"] = round((st["used_bytes"] - paths) / n, 1)
            out[f"codes_table_per_file_{name}"] = round(st["table_bytes"]["codes"] / n, 1)
            idx.close()
    return out


def main() -> None:
    p = base_parser(__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--originals", type=int, default=120)
    p.add_argument("--all", action="store_true", help="every photo of corpus/photos")
    p.add_argument("--join-files", type=int, default=100_000)
    p.add_argument("--disk-files", type=int, default=100_000)
    args = p.parse_args()
    photos = list_images(check_corpus(args.corpus) / "photos")
    originals = photos if args.all else sample(photos, 30 if args.quick else args.originals)
    sizes = (20_000,) if args.quick else (100_000, 1_000_000)
    out = {"bench": "crop_codes", "machine": machine(), "stored": cropcodes.STORED, "queries": cropcodes.QUERIES,
           "window_scale": cropcodes.WINDOW_SCALE, "recall": recall(originals, args.workers),
           "lookup": [lookup_cost(n) for n in sizes],
           "join": join_cost(10_000 if args.quick else args.join_files, args.workers),
           "disk": disk_cost(10_000 if args.quick else args.disk_files)}
    r = out["recall"]
    print_table(["copy", *(f"later r{x}" for x in RADII), *(f"first r{x}" for x in RADII)],
                [[k, *(f"{v[f'copy_later_r{x}']:.1%}" for x in RADII), *(f"{v[f'copy_first_r{x}']:.1%}" for x in RADII)]
                 for k, v in r["recall"].items()],
                title=f"window match, {r['originals']} originals (later: the copy indexed after its original)")
    print(f"distinct originals, {r['false_ordered_pairs']} ordered pairs: within {r['false_within']}, "
          f"closest {r['false_min']} bits; windows per file p50 {r['windows_per_file']['p50']}, "
          f"{r['windows_per_file']['without']} without; window codes {r['ms_window_codes']} ms a file (median)")
    for c in out["lookup"]:
        print(f"lookup, {c['files']} files + {c['window_rows']} window rows ({c['ram_mb']} MB in RAM): "
              f"8 variants {c['ms_variants']} ms, + {cropcodes.QUERIES} window codes {c['ms_with_windows']} ms")
    j = out["join"]
    print(f"join of {j['files']} files: variants {j['variant_join_s']} s, crop passes {j['crop_join_s']} s")
    d = out["disk"]
    print(f"on disk, {d['files']} records, paths excluded: {d['bytes_per_file_without']} B/file without crop codes, "
          f"{d['bytes_per_file_with']} with (codes table {d['codes_table_per_file_without']} -> {d['codes_table_per_file_with']})")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
