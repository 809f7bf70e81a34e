"""Box codes as the product computes them (docs/accuracy.md §10.9): how close a letterboxed
copy comes to its original, how close distinct photos come through a box, and what the box
rows cost a lookup and a first scan's join.

* **letterbox**: every photo of `corpus/photos`, letterboxed as `bench/transforms.py` does
  (`_letterbox`, JPEG q90), both decoded and fingerprinted as a scan does it
  (`decode_file` + `fingerprint_decoded`): the copy's box code to the original's whole-frame
  code, the frames' distance, and the better of the two within the report radius.
* **false pairs**: every box code of an original against every other original's code and
  box code; the closest pairs, at the product's `BOX_MIN_TRIM` and, for comparison, at
  contentbox's own 2 % (same thumbnails).
* **lookup**: `BoxedTables` of random codes with 10 % box rows: one file's 8 variants (report /
  rotated radius) alone, as `scan._find_edges` looks up a file without bars (box rows for the
  upright code) and one with bars (and its box query) (median of 3 rounds).
* **join**: `linking.join_hits` against `linking.box_join_hits` on a synthetic first scan of
  --join-files files (random codes, 10 % with a box code, batches of 256).

Usage: `python bench/box_codes.py [--corpus DIR] [--quick]` (~2 min here; --quick: 40 photos,
small tables). Prints a human table, then one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, check_corpus, list_images, machine  # noqa: E402
from transforms import BY_NAME  # noqa: E402

from dedupd.daemon.decode_job import decode_file  # noqa: E402
from dedupd.daemon.fingerprinting import BOX_MIN_TRIM, fingerprint_decoded  # noqa: E402
from dedupd.daemon.linking import box_join_hits, join_hits  # noqa: E402
from dedupd.index.boxes import BOX_ALIAS  # noqa: E402
from dedupd.index.codecache import BoxedTables  # noqa: E402
from dedupd.kernels import fingerprint  # noqa: E402
from dedupd.kernels.contentbox import MIN_TRIM, content_box  # noqa: E402

REPORT, ROTATED = 28, 20
PIXEL_LIMIT = 100_000_000


def distance(a, b) -> int:
    return (int(a[0]) ^ int(b[0])).bit_count() + (int(a[1]) ^ int(b[1])).bit_count()


def stats(values: list[int]) -> dict:
    v = np.array(values, float)
    return {"n": len(v), "p50": float(np.median(v)), "p90": float(np.percentile(v, 90)), "max": int(v.max())} if len(v) else {"n": 0}


def scanned(path: str):
    """(record, thumbnail) of a file, as a scan makes them."""
    got = decode_file(path, PIXEL_LIMIT, "lbph")
    return fingerprint_decoded(path, got, "lbph").record, got.thumb


def letterbox(paths: list[str], workers: int) -> dict:
    letter = BY_NAME["letterbox"]

    def one(path: str):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            return None
        orig, _ = scanned(path)
        data, ext = letter.fn(img)
        with tempfile.NamedTemporaryFile(suffix=ext) as f:
            f.write(data)
            f.flush()
            copy, _ = scanned(f.name)
        box = distance(copy.box_code, orig.code) if copy.box_code is not None else None
        return distance(copy.code, orig.code), box

    with ThreadPoolExecutor(workers) as pool:
        rows = [r for r in pool.map(one, paths) if r is not None]
    boxes = [b for _, b in rows if b is not None]
    return {"copies": len(rows), "with_box_code": len(boxes), "frame_to_frame": stats([f for f, _ in rows]),
            "box_to_frame": stats(boxes),
            "found_within_report": sum(min(f, b if b is not None else 999) <= REPORT for f, b in rows)}


def false_pairs(paths: list[str], workers: int) -> dict:
    with ThreadPoolExecutor(workers) as pool:
        got = list(pool.map(scanned, paths))
    codes = [r.code for r, _ in got]
    out = {}
    for trim in (BOX_MIN_TRIM, MIN_TRIM):
        boxes = {}
        for i, (_, thumb) in enumerate(got):
            box = content_box(thumb, min_trim=trim)
            if box is not None:
                boxes[i] = fingerprint(np.ascontiguousarray(box.crop(thumb)), "lbph").code
        pairs = [(distance(b, codes[j]), "box-code", i, j) for i, b in boxes.items() for j in range(len(codes)) if j != i]
        pairs += [(distance(b, boxes[j]), "box-box", i, j) for i, b in boxes.items() for j in boxes if j > i]
        pairs.sort()
        name = lambda k: Path(paths[k]).name  # noqa: E731
        out[f"{trim:.2f}"] = {"originals_with_box": len(boxes), "within_report": sum(p[0] <= REPORT for p in pairs),
                              "closest": [[d, kind, name(i), name(j)] for d, kind, i, j in pairs[:3]]}
    frames = sorted(distance(codes[i], codes[j]) for i in range(len(codes)) for j in range(i + 1, len(codes)))
    out["closest_frames"] = frames[:3]
    return out


def random_codes(rng, k: int) -> np.ndarray:
    w = rng.integers(0, 2**63, size=(k, 2), dtype=np.int64).astype(np.uint64) * np.uint64(2)
    w[:, 1] >>= np.uint64(1)  # bit 63 of word 1 is always 0 (lbph)
    return w


def lookup_cost(n: int, rounds: int = 3) -> dict:
    rng = np.random.default_rng(1)
    codes = random_codes(rng, n)
    boxed = n // 10
    ids = np.concatenate([np.arange(1, n + 1), np.arange(1, boxed + 1) | BOX_ALIAS]).astype(np.int64)
    rows = np.concatenate([codes, random_codes(rng, boxed)])
    tables = BoxedTables(ids, rows[:, 0].copy(), rows[:, 1].copy())
    queries = codes[rng.integers(0, n, 9 * 22)].reshape(22, 9, 2)
    radii8, radii9 = np.array([REPORT] + [ROTATED] * 7), np.array([REPORT] + [ROTATED] * 7 + [REPORT])
    mask8, mask9 = np.array([True] + [False] * 7), np.array([True] + [False] * 7 + [True])  # as scan._find_edges
    times: dict[str, list[float]] = {"variants": [], "no_bars": [], "bars": []}
    for _ in range(rounds):
        for name, run in (("variants", lambda q: tables.search(np.ascontiguousarray(q[:8]), radii8, "auto")),
                          ("no_bars", lambda q: tables.search(np.ascontiguousarray(q[:8]), radii8, "auto", 0.0, mask8)),
                          ("bars", lambda q: tables.search(np.ascontiguousarray(q), radii9, "auto", 0.0, mask9))):
            t0 = time.perf_counter()
            for q in queries:
                run(q)
            times[name].append((time.perf_counter() - t0) / len(queries) * 1e3)
    return {"codes": n, "box_rows": boxed, **{f"ms_{k}": round(float(np.median(v)), 3) for k, v in times.items()}}


def join_cost(n: int, workers: int) -> dict:
    rng = np.random.default_rng(2)
    ids = np.arange(1, n + 1, dtype=np.int64)
    batch, changed = (ids - 1) // 256, np.ones(n, bool)
    variants = random_codes(rng, 8 * n).reshape(n, 8, 2)
    has_box = rng.random(n) < 0.1
    box_codes = np.where(has_box[:, None], random_codes(rng, n), np.uint64(0))
    t0 = time.perf_counter()
    join_hits(ids, batch, changed, variants, ids, variants[:, 0].copy(), REPORT, ROTATED, workers)
    t1 = time.perf_counter()
    box_join_hits(ids, batch, changed, variants[:, 0], box_codes, has_box, ids, variants[:, 0].copy(),
                  ids[has_box] | BOX_ALIAS, box_codes[has_box], REPORT, workers)
    t2 = time.perf_counter()
    return {"files": n, "boxed": int(has_box.sum()), "variant_join_s": round(t1 - t0, 2), "box_joins_s": round(t2 - t1, 2)}


def main() -> None:
    p = base_parser(__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--join-files", type=int, default=100_000)
    args = p.parse_args()
    paths = [q for q in list_images(check_corpus(args.corpus) / "photos")]
    if args.quick:
        paths = paths[::max(1, len(paths) // 40)]
    sizes = (20_000,) if args.quick else (100_000, 1_000_000)
    out = {"bench": "box_codes", "machine": machine(), "photos": len(paths), "box_min_trim": BOX_MIN_TRIM,
           "letterbox": letterbox(paths, args.workers), "false_pairs": false_pairs(paths, args.workers),
           "lookup": [lookup_cost(n) for n in sizes],
           "join": join_cost(10_000 if args.quick else args.join_files, args.workers)}
    lb, fp = out["letterbox"], out["false_pairs"]
    print(f"letterboxed copies of {lb['copies']} photos: {lb['with_box_code']} with a box code; "
          f"box -> original frame p50/p90/max {lb['box_to_frame'].get('p50')}/{lb['box_to_frame'].get('p90')}/"
          f"{lb['box_to_frame'].get('max')} bits (frames p50 {lb['frame_to_frame']['p50']}); "
          f"better of the two within {REPORT}: {lb['found_within_report']}")
    for trim in (f"{BOX_MIN_TRIM:.2f}", f"{MIN_TRIM:.2f}"):
        f = fp[trim]
        print(f"min trim {trim}: {f['originals_with_box']} originals with a box code, {f['within_report']} distinct pairs "
              f"within {REPORT} through a box; closest {f['closest'][:1]}")
    print(f"closest distinct frames: {fp['closest_frames']}")
    for c in out["lookup"]:
        print(f"lookup, {c['codes']} codes + {c['box_rows']} box rows: 8 variants alone {c['ms_variants']} ms; "
              f"a file without bars (box rows for its upright code) {c['ms_no_bars']} ms; "
              f"a file with bars (+ its box query) {c['ms_bars']} ms")
    j = out["join"]
    print(f"join of {j['files']} files ({j['boxed']} boxed): variants {j['variant_join_s']} s, box passes {j['box_joins_s']} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
