"""LBPH definitions side by side (v1, v2 and the texture tolerances tried on the way) on the same files.

(a) Transformed copies: a deterministic sample of corpus/photos (--originals, default 120) and
    the 24 copies of bench/transforms.py. Copies are decoded as the daemon decodes them
    (`dedupd.daemon.decode.decode_image(data, pixel_limit=10**9).gray`: reduced JPEG decode,
    EXIF orientation); an original is PNG-encoded (lossless) and decoded the same way.
    Per definition: act recall (upright distance original -> copy over the 12 act transforms)
    at thresholds 8..28, false pairs (all pairs of files of different originals, copies
    included, within the threshold; `hamming_many`), the nearest such pair, the distance
    original -> copy per transform (median / p90 / max; report transforms: best of the copy's
    8 dihedral variants, as bench/accuracy.py), and the bit balance of the originals' codes.
(b) corpus/natural (ground_truth.csv): the distances of the distinct_shot pairs (different
    exposures of one scene: they must stay far apart; adjacent video frames `opencv_rubberwhale`
    and `opencv_basketball` are the hardest) and of the copy pairs.
Margin = nearest distinct-photo pair (min of the nearest pair of different originals and the
nearest natural distinct_shot pair) minus the act transforms' p99 (or max) distance; also given
against the different originals alone and without the two adjacent-frame pairs.

Definitions are named `v1`, `v2` (the shipped ones, dedupd.kernels.lbph.V1 / V2) or
`t<tau>[r][m<margin>]`: s_p = neighbour >= centre + tau/256 grey level, `r` = reflect-101 LBP
border instead of replicate, `m<k>` = k pixels of the LBP code image dropped on every side
before pooling. Example: `t256` = tau 1 grey level, replicate border, whole image.

Run:  /tmp/venv/bin/python bench/lbph_versions.py [--originals 120 | --all] [--defs v1,t512m2,v2]
                                                 [--workers 2] [--corpus PATH] [--quick] [--cache FILE]
(--cache keeps the decoded files in a pickle for repeated runs; docs/fingerprints.md "LBPH version 2"
has the numbers of `--all`.)
"""

from __future__ import annotations

import csv
import os
import pickle
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations

import cv2
import numpy as np

import common
import transforms as T
from common import note, print_table, rounded

THRESHOLDS = list(range(8, 29, 2))
CURVE = range(0, 41)
# v1, the border fix alone, tau alone (replicate border, whole image), tau with the border fix; v2 = t768m2
DEFAULT_DEFS = "v1,t0m2,t256,t512,t1024,t256m2,t512m2,v2,t1024m2,t1536m2,t2048m2"
HARD_PAIRS = ("opencv_rubberwhale", "opencv_basketball")


# -- definitions --------------------------------------------------------------------------------------

def definition(name: str):
    from dedupd.kernels import lbph

    if name == "v1":
        return lbph.V1
    if name == "v2":
        return lbph.V2
    m = re.fullmatch(r"t(\d+)(r?)(?:m(\d+))?", name)
    if not m:
        sys.exit(f"bad definition name {name!r}: use v1, v2 or t<tau>[r][m<margin>]")
    return lbph.Definition(0, int(m.group(1)), reflect=bool(m.group(2)), margin=int(m.group(3) or 0))


def describe(name: str) -> str:
    d = definition(name)
    border = "reflect-101 border" if d.reflect else "replicate border"
    if d.margin >= 2:  # the pooled codes never read the LBP's (or the blur's) padding
        border = "no padded pixel read"
    crop = f", pool the inner {64 - 2 * d.margin}x{64 - 2 * d.margin}" if d.margin else ""
    ver = f"LBPH v{d.version}: " if name in ("v1", "v2") else ""
    return f"{ver}tau {d.tau / 256:g} grey level ({d.tau}/256), {border}{crop}"


# -- decoding ------------------------------------------------------------------------------------------

def decode(data: bytes) -> np.ndarray:
    from dedupd.daemon.decode import decode_image
    return decode_image(data, pixel_limit=10**9).gray


def png_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return buf.tobytes()


def copies_of(args) -> list[tuple[str, np.ndarray]]:
    """[(transform name, decoded grey)] for the original (as "original") and its 24 copies."""
    _, path = args
    img = T.load_original(path)
    out = [("original", decode(png_bytes(img)))]
    for t in T.TRANSFORMS:
        data, _ = t.fn(img)
        out.append((t.name, decode(data)))
    return out


def load_grays(originals: list[str], workers: int, cache: str | None) -> list[dict]:
    """Every file as {"orig": k, "transform": name, "gray": uint8 array}; optionally pickled in `cache`."""
    key = [os.path.basename(p) for p in originals]
    if cache and os.path.exists(cache):
        with open(cache, "rb") as f:
            saved = pickle.load(f)
        if saved["key"] == key:
            note(f"decoded files from {cache}")
            return saved["files"]
    with ThreadPoolExecutor(workers) as pool:
        files = [{"orig": k, "transform": name, "gray": g}
                 for k, copies in enumerate(pool.map(copies_of, enumerate(originals)))
                 for name, g in copies]
    if cache:
        with open(cache + ".part", "wb") as f:
            pickle.dump({"key": key, "files": files}, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(cache + ".part", cache)
    return files


def natural_files(corpus) -> list[dict]:
    with open(corpus / "natural" / "ground_truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        with open(corpus / r["path"], "rb") as f:
            r["gray"] = decode(f.read())
        r["name"] = os.path.basename(r["path"])
    return rows


# -- scoring -------------------------------------------------------------------------------------------

def dist(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.bitwise_count(a ^ b).sum())


def summ(v) -> dict:
    v = np.asarray(v)
    return {"n": int(len(v)), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99)), "max": int(v.max())}


def score(name: str, files: list[dict], natural: list[dict], workers: int) -> dict:
    from dedupd.kernels import hamming_many

    d = definition(name)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        var = np.array(list(pool.map(lambda f: d.variants(f["gray"]), files)), np.uint64)  # (n, 8, 2)
        nat = np.array(list(pool.map(lambda r: d.variants(r["gray"]), natural)), np.uint64)
    hash_s = time.perf_counter() - t0
    up = np.ascontiguousarray(var[:, 0])
    orig = np.array([f["orig"] for f in files])
    kind = np.array([f["transform"] for f in files])
    oi = {f["orig"]: i for i, f in enumerate(files) if f["transform"] == "original"}

    per, act_d, act_w1, act_no_trim = {}, [], [], []
    for t in T.TRANSFORMS:
        ds = []
        for i in np.flatnonzero(kind == t.name):
            o = oi[orig[i]]
            if t.expect == "act":
                ds.append(dist(up[o], up[i]))
                act_w1.append(dist(up[o][1:], up[i][1:]))
            else:  # the copy's variant that best matches the original (rotations and mirrors)
                ds.append(min(dist(up[o], v) for v in var[i]))
        per[t.name] = summ(ds)
        if t.expect == "act":
            act_d += ds
            act_no_trim += ds if t.name != "trim_3" else []
    act_d = np.array(act_d)

    # false pairs: every pair of files of different originals (upright codes)
    hist = np.zeros(129, np.int64)
    nearest, nearest_pair = 999, None
    for i in range(len(files)):
        dd = hamming_many(up[i], up[i + 1:])
        neg = orig[i + 1:] != orig[i]
        hist += np.bincount(dd[neg], minlength=129)
        if neg.any():
            j = int(np.argmin(np.where(neg, dd, 999)))
            if dd[j] < nearest:
                nearest, nearest_pair = int(dd[j]), (int(orig[i]), kind[i], int(orig[i + 1 + j]), kind[i + 1 + j])
    cum = np.cumsum(hist)

    # natural look-alikes
    pairs = {"distinct_shot": [], "copy": []}
    for a, b in combinations(range(len(natural)), 2):
        ra, rb = natural[a], natural[b]
        if ra["group"] != rb["group"]:
            continue
        k = "copy" if ra["copy_relation"] == rb["copy_relation"] == "copy" else "distinct_shot"
        pairs[k].append({"group": ra["group"], "a": ra["name"], "b": rb["name"], "d": dist(nat[a, 0], nat[b, 0]),
                         "d_rot": min(dist(nat[a, 0], v) for v in nat[b])})
    ds_d = np.array([p["d"] for p in pairs["distinct_shot"]])
    by_group = {}
    for p in pairs["distinct_shot"]:
        by_group.setdefault(p["group"], []).append(p["d"])
    ds_near = min(pairs["distinct_shot"], key=lambda p: p["d"])
    hard = {g: [p["d"] for p in pairs["distinct_shot"] if p["group"] == g] for g in HARD_PAIRS}
    cp_d = np.array([p["d"] for p in pairs["copy"]])

    bits = (up[[oi[k] for k in sorted(oi)], :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    freq = bits.mean(axis=0)
    nearest_distinct = min(nearest, int(ds_d.min()))
    others = [p["d"] for p in pairs["distinct_shot"] if p["group"] not in HARD_PAIRS]
    clean = int(np.searchsorted(cum, 1)) - 1  # the largest threshold with no false pair
    return {
        "name": name, "what": describe(name), "version": d.version, "tau": d.tau, "reflect": d.reflect, "margin": d.margin,
        "hash_seconds": round(hash_s, 1),
        "act": summ(act_d), "act_word1": summ(act_w1), "act_without_trim_3": summ(act_no_trim),
        "act_recall": {t: rounded(float((act_d <= t).mean())) for t in CURVE},
        "false_pairs": {t: int(cum[t]) for t in CURVE}, "negative_pairs": int(cum[-1]),
        "nearest_false": nearest,
        "nearest_false_pair": {"orig_a": nearest_pair[0], "a": nearest_pair[1], "orig_b": nearest_pair[2], "b": nearest_pair[3]},
        "per_transform": per,
        "natural_distinct": {"n": len(ds_d), "min": int(ds_d.min()), "nearest": ds_near, "median": float(np.median(ds_d)),
                             "min_without_adjacent_frames": int(min(others)),
                             "within": {t: int((ds_d <= t).sum()) for t in CURVE},
                             **{g: hard[g] for g in HARD_PAIRS},
                             "groups": {g: {"n": len(v), "min": int(min(v)), "median": float(np.median(v))}
                                        for g, v in sorted(by_group.items())}},
        "natural_copy": {"n": len(cp_d), "max": int(cp_d.max()), "median": float(np.median(cp_d)),
                         "within": {t: int((cp_d <= t).sum()) for t in CURVE}},
        "bit_freq": {"word0": [round(float(freq[0, :63].min()), 2), round(float(freq[0, :63].max()), 2)],
                     "word1": [round(float(freq[1, :63].min()), 2), round(float(freq[1, :63].max()), 2)],
                     "brightness": round(float(freq[0, 63]), 2)},
        "nearest_distinct": nearest_distinct,
        "margin_p99": rounded(nearest_distinct - float(np.percentile(act_d, 99))),
        "margin_max": nearest_distinct - int(act_d.max()),
        "margin_without_adjacent_frames_p99": rounded(min(nearest, int(min(others))) - float(np.percentile(act_d, 99))),
        "margin_corpus_p99": rounded(nearest - float(np.percentile(act_d, 99))),
        "margin_corpus_max": nearest - int(act_d.max()),
        "no_false_pair_threshold": clean, "act_recall_at_no_false_pair_threshold": rounded(float((act_d <= clean).mean())),
    }


# -- output --------------------------------------------------------------------------------------------

def print_results(res: dict) -> None:
    defs = res["definitions"]
    names = list(defs)
    for n in names:
        print(f"  {n:8s} {defs[n]['what']}")
    rows = [[t] + [f"{100 * defs[n]['act_recall'][t]:.1f}% / {defs[n]['false_pairs'][t]}" for n in names] for t in THRESHOLDS]
    print_table(["t"] + names, rows,
                title=f"act recall / false pairs at threshold t: recall over the 12 act transforms "
                      f"({defs[names[0]]['act']['n']} copies, upright distance <= t); false pairs among the "
                      f"{defs[names[0]]['negative_pairs']:,} pairs of files of different originals")

    def line(label, fn):
        return [label] + [fn(defs[n]) for n in names]

    rows = [
        line("act median / p90", lambda d: f"{d['act']['median']:g} / {d['act']['p90']:g}"),
        line("act p99 / max", lambda d: f"{d['act']['p99']:g} / {d['act']['max']}"),
        line("act p99 / max without trim_3", lambda d: f"{d['act_without_trim_3']['p99']:g} / {d['act_without_trim_3']['max']}"),
        line("act word 1 p99 / max", lambda d: f"{d['act_word1']['p99']:g} / {d['act_word1']['max']}"),
        line("nearest different originals", lambda d: d["nearest_false"]),
        line("false pairs <= 28 / 32 / 36", lambda d: "{} / {} / {}".format(*(d["false_pairs"][t] for t in (28, 32, 36)))),
        line("act recall at t = nearest - 1", lambda d: f"{100 * d['act_recall_at_no_false_pair_threshold']:.1f}% (t {d['no_false_pair_threshold']})"),
        line("nearest natural distinct_shot", lambda d: d["natural_distinct"]["min"]),
        line("  (that pair's group)", lambda d: d["natural_distinct"]["nearest"]["group"]),
        line("  without adjacent video frames", lambda d: d["natural_distinct"]["min_without_adjacent_frames"]),
        line("natural distinct_shot median", lambda d: f"{d['natural_distinct']['median']:g}"),
        line("rubberwhale 1/2", lambda d: d["natural_distinct"]["opencv_rubberwhale"][0]),
        line("basketball 1/2", lambda d: d["natural_distinct"]["opencv_basketball"][0]),
        line("distinct_shot pairs <= 16 / 28", lambda d: f"{d['natural_distinct']['within'][16]} / {d['natural_distinct']['within'][28]}"),
        line("natural copy pairs <= 16 / max", lambda d: f"{d['natural_copy']['within'][16]}/{d['natural_copy']['n']} / {d['natural_copy']['max']}"),
        line("margin: nearest diff. originals - act p99", lambda d: f"{d['margin_corpus_p99']:g}"),
        line("margin: nearest diff. originals - act max", lambda d: d["margin_corpus_max"]),
        line("margin: nearest distinct (+natural) - act p99", lambda d: f"{d['margin_p99']:g}"),
        line("margin: nearest distinct (+natural) - act max", lambda d: d["margin_max"]),
        line("margin: same without adjacent frames, p99", lambda d: f"{d['margin_without_adjacent_frames_p99']:g}"),
        line("word 0 bit freq", lambda d: f"{d['bit_freq']['word0'][0]:.2f}-{d['bit_freq']['word0'][1]:.2f}"),
        line("word 1 bit freq", lambda d: f"{d['bit_freq']['word1'][0]:.2f}-{d['bit_freq']['word1'][1]:.2f}"),
    ]
    print_table(["measure"] + names, rows, title="summary (distances in bits of 128)")

    rows = [[t.name, t.expect] + [f"{defs[n]['per_transform'][t.name]['median']:g} / {defs[n]['per_transform'][t.name]['p90']:g}"
                                  f" / {defs[n]['per_transform'][t.name]['max']}" for n in names] for t in T.TRANSFORMS]
    print_table(["transform", "expect"] + names, rows,
                title="distance original -> copy, median / p90 / max (report transforms: best of the copy's 8 variants)")

    rows = []
    for g, first in defs[names[0]]["natural_distinct"]["groups"].items():
        cells = [defs[n]["natural_distinct"]["groups"][g] for n in names]
        rows.append([g, first["n"]] + [(str(c["min"]) if c["n"] == 1 else f"{c['min']} / {c['median']:g}") for c in cells])
    print_table(["natural distinct_shot group", "pairs"] + names, rows,
                title="natural distinct_shot pairs: distance (groups with several pairs: min / median)")


def main(argv=None) -> int:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--originals", type=int, default=None, help="photos sampled as originals (default 120; --quick 12)")
    p.add_argument("--all", action="store_true", help="every photo in corpus/photos is an original")
    p.add_argument("--defs", default=DEFAULT_DEFS, help=f"comma-separated definitions (default {DEFAULT_DEFS})")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", default=None, help="pickle the decoded files here and reuse them (for repeated runs)")
    args = p.parse_args(argv)
    corpus = common.check_corpus(args.corpus)
    started = time.perf_counter()
    names = [n.strip() for n in args.defs.split(",") if n.strip()]
    for n in names:
        definition(n)
    rows = common.read_manifest(corpus)
    pool = [r["abspath"] for r in rows if r["path"].startswith("photos/")]
    originals = common.sample(pool, None if args.all else (args.originals or (12 if args.quick else 120)))
    note(f"decoding {len(originals)} originals and {len(T.TRANSFORMS)} copies of each ...")
    t0 = time.perf_counter()
    files = load_grays(originals, args.workers, args.cache)
    natural = natural_files(corpus)
    decode_s = time.perf_counter() - t0
    defs = {}
    for n in names:
        note(f"scoring {n} ...")
        defs[n] = score(n, files, natural, args.workers)
    res = {"bench": "lbph_versions", "quick": args.quick, "originals": len(originals), "files": len(files),
           "natural_files": len(natural), "thresholds": THRESHOLDS, "definitions": defs,
           "seconds": {"decode": round(decode_s, 1), "total": round(time.perf_counter() - started, 1)},
           "machine": common.machine(), "versions": common.versions("numpy", "numba", "cv2")}
    print(f"\n{len(originals)} originals x {len(T.TRANSFORMS)} transforms = {len(files)} files; "
          f"{len(natural)} natural files; definitions:")
    print_results(res)
    print(f"\ntime: decode {decode_s:.0f} s, total {res['seconds']['total']:.0f} s")
    common.emit_json(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
