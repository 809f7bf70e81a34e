"""Crop verification (`dedupd.daemon.cropcheck.verify_crop`) on the shared corpus.

For 120 originals of corpus/photos (30 with --quick) it makes crops,
each JPEG-encoded (`transforms.jpeg`, q92 unless named), written to a temp file and read back
through the product's decode (`decode_file(...).thumb`), and verifies (original, copy):

    crop_15, crop_30   `transforms._crop`: keep 85 / 70 % of width and height, cut from the left and bottom
    crop_tl10          cut 10 % of the width and height from the top and left
    crop_c20           cut 10 % from every side (80 % of width and height kept, centred)
    crop_15_r50        crop_15, then resized to 50 %
    crop_w25           cut 25 % of the width from the right, full height
    jpeg_q40, resize_50  act-type copies (the same picture in other bytes: a crop of 0 %)

Near misses (should fail): crop_15 of the original with a block of 10 % or 5 % of each side
pasted from elsewhere in the picture, or with a fifth of the frame moved sideways; the
uncropped edit through the act tier's `verify_pair` is the reference. An edit that changed
its region by less than VISIBLE grey levels on average (white pasted on white) is counted
apart.
False passes: every pair of distinct originals (120*119/2 = 7,140), and corpus/natural's
distinct_shot and unrelated pairs (`accuracy.natural_pairs`), with `both_lossless_same_size`
set as the scan sets it for verify_pair (both files lossless and of one size). It prints the pass rate per
kind, the false passes, the time per call (median / p90, true and false pairs apart), the
distributions the limits rest on (inliers and residuals of true pairs; of false pairs that
reached the pixel check) and the reasons false pairs were rejected.

    python bench/crop_verify.py [--corpus PATH] [--quick] [--originals N]
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import accuracy  # noqa: E402
import common  # noqa: E402
from transforms import BY_NAME, _crop, _resize, jpeg, load_original  # noqa: E402

from dedupd.daemon.cropcheck import CropParams, crop_features, verify_crop  # noqa: E402
from dedupd.daemon.decode_job import decode_file  # noqa: E402
from dedupd.daemon.verify import thumbnail, verify_pair  # noqa: E402
from dedupd.index.records import LOSSLESS_FORMATS  # noqa: E402

PIXEL_LIMIT = 10**9


def _cut(img: np.ndarray, top: float, bottom: float, left: float, right: float) -> np.ndarray:
    h, w = img.shape[:2]
    return img[round(h * top): h - round(h * bottom), round(w * left): w - round(w * right)]


# name -> (image -> JPEG bytes); the crops are JPEG q92 like the corpus photos
KINDS = {
    "crop_15": lambda i: jpeg(_crop(i, 15)),
    "crop_30": lambda i: jpeg(_crop(i, 30)),
    "crop_tl10": lambda i: jpeg(_cut(i, 0.10, 0.0, 0.10, 0.0)),
    "crop_c20": lambda i: jpeg(_cut(i, 0.10, 0.10, 0.10, 0.10)),
    "crop_15_r50": lambda i: jpeg(_resize(_crop(i, 15), 50)),
    "crop_w25": lambda i: jpeg(_cut(i, 0.0, 0.0, 0.0, 0.25)),
    "jpeg_q40": lambda i: BY_NAME["jpeg_q40"].fn(i)[0],
    "resize_50": lambda i: BY_NAME["resize_50"].fn(i)[0],
}
CROP_KINDS = [k for k in KINDS if k.startswith("crop")]


def _pasted(side: float):
    """A block of `side` x `side` of the frame, inside crop_15's kept area, replaced by the
    block a third of the frame to its right (a retouch: content that is not the original's).
    Returns (edit, the edited region as fractions (y0, y1, x0, x1) of the frame)."""
    def edit(img: np.ndarray) -> np.ndarray:
        out = img.copy()
        h, w = img.shape[:2]
        (y0, y1, x0, x1) = _box(region, h, w)
        out[y0:y1, x0:x1] = img[y0:y1, x0 + w // 3: x0 + w // 3 + (x1 - x0)]
        return out
    region = (0.35, 0.35 + side, 0.3, 0.3 + side)
    return edit, region


def _moved(img: np.ndarray) -> np.ndarray:
    """verify.py's test edit: a fifth of the frame shifted sideways by a twentieth (a person moved)."""
    out = img.copy()
    h, w = img.shape[:2]
    y0, y1, x0, x1 = h // 3, h // 3 + h // 5, w // 3, w // 3 + w // 5
    out[y0:y1, x0 + w // 20: x1 + w // 20] = img[y0:y1, x0:x1]
    return out


def _box(region, h: int, w: int) -> tuple[int, int, int, int]:
    y0, y1, x0, x1 = region
    return round(h * y0), max(round(h * y0) + 1, round(h * y1)), round(w * x0), max(round(w * x0) + 1, round(w * x1))


# near misses: edited pictures, (edit, edited region as fractions of the frame). Their
# crop_15 has a true transform, so it reaches the pixel check, whose limits it measures; the
# uncropped edit through the act tier's verify_pair is the reference (the same limits)
NEGATIVE_KINDS = {
    "pasted_10": _pasted(0.10),
    "pasted_5": _pasted(0.05),
    "moved": (_moved, (1 / 3, 1 / 3 + 1 / 5, 1 / 3, 1 / 3 + 1 / 5 + 1 / 20)),
}
VISIBLE = 10.0  # grey levels: an edit whose region changed less than this on average is hardly an edit


def visibility(original_thumb: np.ndarray, edited: np.ndarray, region) -> float:
    """Mean |edited - original| (grey levels) over the edited region, at the thumbnail's scale."""
    grey = cv2.cvtColor(edited, cv2.COLOR_BGR2GRAY) if edited.ndim == 3 else edited
    t = thumbnail(grey)
    if t.shape != original_thumb.shape:
        return float("nan")
    y0, y1, x0, x1 = _box(region, *t.shape)
    return float(np.abs(t[y0:y1, x0:x1].astype(np.float32) - original_thumb[y0:y1, x0:x1]).mean())


def thumb_of_bytes(data: bytes, tmpdir: str, name: str) -> np.ndarray:
    path = os.path.join(tmpdir, name)
    with open(path, "wb") as f:
        f.write(data)
    try:
        return decode_file(path, PIXEL_LIMIT, "lbph").thumb
    finally:
        os.unlink(path)


def timed_verify(a, b, params):
    return _timed(lambda: verify_crop(a, b, params))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def dist(xs) -> dict:
    xs = [x for x in xs if np.isfinite(x)]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "min": min(xs), "p5": common.percentile(xs, 5), "p50": common.percentile(xs, 50),
            "p95": common.percentile(xs, 95), "max": max(xs)}


def main() -> None:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--originals", type=int, default=None, help="number of originals (default 120, 30 with --quick)")
    args = p.parse_args()
    corpus = args.corpus.resolve()
    if not (corpus / "photos").is_dir():
        print(f"skipped: corpus not found at {corpus} (expected a photos/ folder); pass --corpus PATH")
        return
    n = args.originals or (30 if args.quick else 120)
    params = CropParams()
    paths = common.sample(common.list_images(corpus / "photos"), n)
    thumbs, copies = [], {k: [] for k in KINDS}
    negatives = {k: {"crop": [], "whole": [], "visible": []} for k in NEGATIVE_KINDS}
    t_build = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crop_verify_") as tmp:
        for i, path in enumerate(paths):
            thumbs.append(decode_file(path, PIXEL_LIMIT, "lbph").thumb)
            img = load_original(path)
            for kind, fn in KINDS.items():
                copies[kind].append(thumb_of_bytes(fn(img), tmp, f"{i:04d}_{kind}.jpg"))
            plain = thumbnail(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
            for kind, (edit, region) in NEGATIVE_KINDS.items():
                edited = edit(img)
                negatives[kind]["crop"].append(thumb_of_bytes(jpeg(_crop(edited, 15)), tmp, f"{i:04d}_{kind}.jpg"))
                negatives[kind]["whole"].append(thumb_of_bytes(jpeg(edited), tmp, f"{i:04d}_{kind}_whole.jpg"))
                negatives[kind]["visible"].append(visibility(plain, edited, region))
            if (i + 1) % 20 == 0:
                common.note(f"built copies of {i + 1}/{len(paths)} originals")
    build_s = time.perf_counter() - t_build

    true_rows, true_times, true_verdicts = [], [], collections.defaultdict(list)
    failures = []
    for kind in KINDS:
        for i, (orig, copy) in enumerate(zip(thumbs, copies[kind])):
            dt, v = timed_verify(orig, copy, params)
            true_times.append(dt)
            true_verdicts[kind].append(v)
            if not v.same:
                failures.append((kind, os.path.basename(paths[i]), v))
        vs = true_verdicts[kind]
        true_rows.append([kind, len(vs), sum(v.same for v in vs) / len(vs),
                          common.median([v.inliers for v in vs]),
                          common.median([v.overlap for v in vs]),
                          common.percentile([v.block_residual for v in vs], 95),
                          common.percentile([v.mean_residual for v in vs], 95)])
        common.note(f"verified {kind}")

    neg_rows, neg_verdicts = [], []
    false_times, false_verdicts = [], []
    false_passes = []
    for kind, neg in negatives.items():
        vs, act = [], []
        for i, (orig, copy, whole) in enumerate(zip(thumbs, neg["crop"], neg["whole"])):
            dt, v = timed_verify(orig, copy, params)
            false_times.append(dt)
            vs.append(v)
            act.append(verify_pair(orig, whole).same)
            if v.same and neg["visible"][i] >= VISIBLE:
                false_passes.append((kind, os.path.basename(paths[i]),
                                     f"its edited crop (edit visibility {neg['visible'][i]:.1f})", v))
        neg_verdicts += vs
        seen = [k for k, x in enumerate(neg["visible"]) if x >= VISIBLE]
        neg_rows.append([kind, len(vs), sum(v.same for v in vs) / len(vs), sum(act) / len(act), len(seen),
                         sum(vs[k].same for k in seen) / max(1, len(seen)), sum(act[k] for k in seen) / max(1, len(seen)),
                         min([vs[k].block_residual for k in seen], default=float("nan"))])
    for i, j in combinations(range(len(thumbs)), 2):
        dt, v = timed_verify(thumbs[i], thumbs[j], params)
        false_times.append(dt)
        false_verdicts.append(v)
        if v.same:
            false_passes.append(("originals", os.path.basename(paths[i]), os.path.basename(paths[j]), v))
    common.note(f"verified {len(false_verdicts)} pairs of distinct originals")

    natural = natural_pairs(corpus)
    nat_counts, nat_verdicts = {}, []
    if natural:
        nthumbs, nkey = {}, {}
        for kind in ("distinct_shot", "unrelated", "copy"):
            passed = 0
            for a, b, _ in natural[kind]:
                for x in (a, b):
                    if x not in nthumbs:
                        d = decode_file(x, PIXEL_LIMIT, "lbph")
                        nthumbs[x] = d.thumb
                        # as the scan tells verify_pair (fingerprinting.check_pair)
                        nkey[x] = (d.info.format in LOSSLESS_FORMATS, d.info.width, d.info.height)
                lossless_same = nkey[a][0] and nkey[a] == nkey[b]
                dt, v = _timed(lambda: verify_crop(nthumbs[a], nthumbs[b], params,
                                                   both_lossless_same_size=lossless_same))
                if kind != "copy":
                    false_times.append(dt)
                    nat_verdicts.append(v)
                if v.same:
                    passed += 1
                    if kind != "copy":
                        false_passes.append((f"natural {kind}", os.path.basename(a), os.path.basename(b), v))
            nat_counts[kind] = {"pairs": len(natural[kind]), "passed": passed}
        common.note("verified corpus/natural pairs")

    # -- output -------------------------------------------------------------------------------
    common.print_table(["kind", "pairs", "pass rate", "inliers p50", "overlap p50", "block p95", "mean p95"],
                       true_rows, title=f"(original, copy) pairs, {len(paths)} originals")
    common.print_table(["edit", "pairs", "crop pass", "act verify_pair pass", f"visible (>= {VISIBLE:g})",
                        "crop pass (visible)", "act pass (visible)", "crop block min (visible)"],
                       neg_rows, title="near misses: crop_15 of an edited picture through verify_crop, the uncropped "
                                       "edit through the act tier's verify_pair (the same residual limits); both should fail")
    nat_rows = [[k, c["pairs"], c["passed"]] for k, c in nat_counts.items()]
    common.print_table(["false pairs", "pairs", "passed"],
                       [["distinct originals", len(false_verdicts), sum(v.same for v in false_verdicts)]] + nat_rows,
                       title="false passes (natural 'copy' pairs: passes are right, listed for information)")
    shown = collections.Counter()
    for src, x, y, v in false_passes:
        shown[src] += 1
        if shown[src] <= 5:
            print(f"  FALSE PASS ({src}): {x} ~ {y}: {v}")
    for src, n in shown.items():
        if n > 5:
            print(f"  ... {n - 5} more FALSE PASS ({src})")
    all_false = false_verdicts + nat_verdicts + neg_verdicts
    reasons = collections.Counter(v.reason for v in all_false)
    common.print_table(["reason", "false pairs"], sorted(reasons.items(), key=lambda kv: -kv[1]),
                       title="why false pairs were rejected")
    checked = [v for v in all_false if np.isfinite(v.block_residual)]
    true_all = [v for vs in true_verdicts.values() for v in vs]
    d = {"true inliers": dist([v.inliers for v in true_all]),
         "false inliers (transform found)": dist([v.inliers for v in all_false if v.reason not in
                                                  ("too_small", "too_few_features", "no_transform")]),
         "false upright matches (no_transform)": dist([v.inliers for v in all_false if v.reason == "no_transform"]),
         "true block residual": dist([v.block_residual for v in true_all]),
         "false block residual (pixel-checked)": dist([v.block_residual for v in checked]),
         "true mean residual": dist([v.mean_residual for v in true_all]),
         "false mean residual (pixel-checked)": dist([v.mean_residual for v in checked])}
    common.print_table(["quantity", "n", "min", "p5", "p50", "p95", "max"],
                       [[k, v.get("n"), v.get("min"), v.get("p5"), v.get("p50"), v.get("p95"), v.get("max")]
                        for k, v in d.items()], title="distributions the limits rest on")
    worst = sorted(((v.block_residual, kind, os.path.basename(paths[i]), v.mean_residual)
                    for kind, vs in true_verdicts.items() for i, v in enumerate(vs) if v.same), reverse=True)[:5]
    print("\nlargest block residuals among true pairs that passed:")
    for block, kind, name, mean in worst:
        print(f"  {block:.2f} (mean {mean:.2f}) {kind} {name}")
    if failures:
        print("\ntrue pairs that failed:")
        for kind, name, v in failures:
            print(f"  {kind} {name}: {v}")
    # the cost with each file's features computed once (`crop_features`), as a caller that
    # verifies one file against several candidates does
    feat_times, warm_times = [], []
    feats = []
    for t in thumbs:
        dt, f = _timed(lambda: crop_features(t, params))
        feat_times.append(dt)
        feats.append(f)
    for kind in KINDS:
        for orig, fo, copy in zip(thumbs, feats, copies[kind]):
            fc = crop_features(copy, params)
            dt, _ = _timed(lambda: verify_crop(orig, copy, params, features=(fo, fc)))
            warm_times.append(dt)
    pairs = list(combinations(range(len(thumbs)), 2))[:2000]
    for i, j in pairs:
        dt, _ = _timed(lambda: verify_crop(thumbs[i], thumbs[j], params, features=(feats[i], feats[j])))
        warm_times.append(dt)
    times = {"true": true_times, "false": false_times, "all": true_times + false_times,
             "crop_features (one thumbnail)": feat_times,
             f"features given ({len(true_times)} true + {len(pairs)} false)": warm_times}
    common.print_table(["pairs", "calls", "median ms", "p90 ms", "max ms"],
                       [[k, len(t), 1e3 * common.median(t), 1e3 * common.percentile(t, 90), 1e3 * max(t)]
                        for k, t in times.items()], title="time per verify_crop call")
    common.emit_json({
        "bench": "crop_verify", "machine": common.machine(), "versions": common.versions("cv2", "numpy"),
        "originals": len(paths), "params": params.__dict__, "build_s": round(build_s, 1),
        "pass_rate": {r[0]: round(r[2], 4) for r in true_rows},
        "near_misses": {r[0]: {"pairs": r[1], "crop_pass": common.rounded(r[2]), "act_pass": common.rounded(r[3]),
                               "visible": r[4], "crop_pass_visible": common.rounded(r[5]),
                               "act_pass_visible": common.rounded(r[6])} for r in neg_rows},
        "false_pairs": {"originals": {"pairs": len(false_verdicts), "passed": sum(v.same for v in false_verdicts)},
                        **nat_counts},
        "false_reasons": dict(reasons),
        "distributions": {k: {kk: common.rounded(vv) for kk, vv in v.items()} for k, v in d.items()},
        "ms_per_call": {k: {"median": round(1e3 * common.median(t), 3), "p90": round(1e3 * common.percentile(t, 90), 3)}
                        for k, t in times.items()},
        "failures": [[k, n, v.reason] for k, n, v in failures],
    })


def natural_pairs(corpus: Path) -> dict | None:
    """corpus/natural's copy / distinct_shot / unrelated pairs (bench/accuracy.py's definition)."""
    if not (corpus / "natural" / "ground_truth.csv").is_file():
        common.note(f"no {corpus / 'natural' / 'ground_truth.csv'}: natural pairs skipped")
        return None
    return accuracy.natural_pairs(accuracy.natural_truth(corpus))


if __name__ == "__main__":
    main()
