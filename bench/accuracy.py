"""Accuracy of dedupd on transformed copies of real photos and on natural look-alikes,
side by side with hash distance alone (LBPH, imagehash pHash/dHash, PDQ) on the same files.

(a) Transformed copies: a deterministic sample of corpus/photos (--originals, default 120;
    --all for every photo) and 24 transformed copies of each (bench/transforms.py) are written
    to a temp dir (or --workdir), `dedupctl scan` runs on it with a generated config, and the
    groups of `dedupctl groups --json` are scored per transform: recall into the act tier,
    recall into any tier (grouped with its original), false pairs (a member whose original
    differs from its keeper's) in the act tier and in any tier, precision.
(b) corpus/natural (ground_truth.csv): copy pairs should be grouped; distinct_shot pairs must
    never reach the act tier (violations), distinct_shot pairs in report are listed apart.
(c) The same pairs by hash distance alone, all pairs of all files: LBPH (upright, and the
    minimum over its 8 dihedral variants) at the act and report thresholds, imagehash.phash
    <= 10, imagehash.dhash <= 5 (Pillow decode, no EXIF transpose), PDQ <= 31 (pdqhash on an
    OpenCV colour decode with EXIF orientation, reduced so the short side stays >= 512 px);
    plus the LBPH threshold curve 0..40 on the act transforms, and LBPH distances per word.
(d) Decode-scale consistency: the LBPH distance between one JPEG decoded at full size and at
    the DCT-domain reductions 1/2, 1/4, 1/8 the daemon uses.
(e) What-if: the act-transform distances if the daemon's reduced JPEG decode kept a short side
    of >= 128 or >= 256 px instead of >= 64 (decode.MIN_SIDE).
Thresholds: the product's defaults (what a config without `thresholds` gets), or --act / --report.

Run:  /tmp/venv/bin/python bench/accuracy.py [--originals 120 | --all] [--workdir DIR] [--act 16 --report 28]
                                            [--quick] [--no-scan] [--corpus PATH]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations

import numpy as np

import common
import transforms as T
from common import note, print_table, rounded

ACT, REPORT = 16, 28  # replaced in main() by the product's defaults or --act / --report
BASELINES = {"phash": 10, "dhash": 5, "pdq": 31}
CURVE = range(0, 41)


# -- (a) making the copies ---------------------------------------------------------------------

def make_copies(originals: list[str], root: str, workers: int) -> list[dict]:
    """Write each original and its transformed copies under root/<id>/; returns the file list."""
    os.makedirs(root, exist_ok=True)

    def one(args):
        k, src = args
        stem = f"{k:03d}_{os.path.splitext(os.path.basename(src))[0][:60]}"
        folder = os.path.join(root, stem)
        os.makedirs(folder, exist_ok=True)
        files = []
        dst = os.path.join(folder, f"{stem}__original{os.path.splitext(src)[1].lower()}")
        if not os.path.exists(dst):
            shutil.copyfile(src, dst)
        files.append({"path": dst, "orig": k, "transform": "original"})
        img = None
        for t in T.TRANSFORMS:
            done = [f for f in os.listdir(folder) if f.startswith(f"{stem}__{t.name}.")]
            if done:
                files.append({"path": os.path.join(folder, done[0]), "orig": k, "transform": t.name})
                continue
            if img is None:
                img = T.load_original(src)
            data, ext = t.fn(img)
            path = os.path.join(folder, f"{stem}__{t.name}{ext}")
            with open(path + ".part", "wb") as f:
                f.write(data)
            os.replace(path + ".part", path)
            files.append({"path": path, "orig": k, "transform": t.name})
        old = time.time() - 86400  # the original is the oldest file of its folder
        os.utime(dst, (old, old))
        return files

    with ThreadPoolExecutor(workers) as pool:
        return [f for files in pool.map(one, enumerate(originals)) for f in files]


# -- running dedupctl ----------------------------------------------------------------------------

def dedupctl() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "dedupctl")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "dedupd.daemon.cli"]


def scan_and_group(folder: str, state: str, workers: int) -> tuple[dict, dict, float]:
    """`dedupctl scan` on folder with a fresh state dir; returns (groups json, scan report, seconds)."""
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state)
    config = os.path.join(state, "dedupd.yaml")
    with open(config, "w") as f:
        f.write(f"state_dir: {json.dumps(os.path.join(state, 'state'))}\n"
                f"roots: [{{path: {json.dumps(folder)}, mode: report}}]\n"
                f"algorithm: lbph\nthresholds: {{act: {ACT}, report: {REPORT}}}\n"
                f"match_rotations: true\nworkers: {workers}\n")
    t0 = time.perf_counter()
    scan = subprocess.run(dedupctl() + ["--config", config, "scan", "--json", "--no-progress"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if scan.returncode not in (0, 1) or not scan.stdout.strip():
        raise SystemExit(f"dedupctl scan failed ({scan.returncode}):\n{scan.stderr[-3000:]}")
    report = json.loads(scan.stdout.strip().splitlines()[-1])
    groups = subprocess.run(dedupctl() + ["--config", config, "groups", "--json"], capture_output=True, text=True)
    if groups.returncode != 0:
        raise SystemExit(f"dedupctl groups failed ({groups.returncode}):\n{groups.stderr[-3000:]}")
    return json.loads(groups.stdout), report, seconds


ACT_LEVEL = ("exact", "act")


class Grouping:
    """Pair questions about `dedupctl groups --json` output."""

    def __init__(self, groups: dict):
        self.where: dict[str, tuple[str, str]] = {}  # path -> (group id, "keeper" or member tier)
        self.groups = groups["groups"]
        for g in self.groups:
            self.where[g["keep"]] = (g["id"], "keeper")
            for m in g["members"]:
                self.where[m["path"]] = (g["id"], m["tier"])

    def pair(self, a: str, b: str) -> str | None:
        """None (not grouped together), "act" (exact or act against the keeper) or "report"."""
        ga, gb = self.where.get(a), self.where.get(b)
        if ga is None or gb is None or ga[0] != gb[0]:
            return None
        tiers = [t for t in (ga[1], gb[1]) if t != "keeper"]
        return "act" if all(t in ACT_LEVEL for t in tiers) else "report"


def score_copies(files: list[dict], grouping: Grouping) -> dict:
    by_orig: dict[int, dict[str, str]] = defaultdict(dict)
    for f in files:
        by_orig[f["orig"]][f["transform"]] = f["path"]
    per = {}
    for t in T.TRANSFORMS:
        tiers = [grouping.pair(paths["original"], paths[t.name]) for paths in by_orig.values() if t.name in paths]
        per[t.name] = {"expect": t.expect, "n": len(tiers), "act": sum(x == "act" for x in tiers),
                       "any": sum(x is not None for x in tiers)}
    orig_of = {f["path"]: f["orig"] for f in files}
    transform_of = {f["path"]: f["transform"] for f in files}
    members = {"act": [0, 0], "any": [0, 0]}  # [correct, false]
    false_examples = []
    for g in grouping.groups:
        ko = orig_of.get(g["keep"])
        for m in g["members"]:
            wrong = orig_of.get(m["path"]) != ko
            for level in ("act", "any"):
                if level == "any" or m["tier"] in ACT_LEVEL:
                    members[level][wrong] += 1
            if wrong and len(false_examples) < 15:
                false_examples.append({"keep": os.path.basename(g["keep"]), "member": os.path.basename(m["path"]),
                                       "tier": m["tier"], "distance": m["distance"], "variant": m["variant"]})
    keepers = Counter(transform_of.get(g["keep"], "?") for g in grouping.groups)
    member_tiers = Counter(m["tier"] for g in grouping.groups for m in g["members"])
    unexpected_act = {k: f"{v['act']}/{v['n']}" for k, v in per.items() if v["expect"] == "report" and v["act"]}
    return {"per_transform": per, "report_transforms_in_act": unexpected_act, "false_pairs": {k: v[1] for k, v in members.items()},
            "precision": {k: rounded(v[0] / (v[0] + v[1])) if sum(v) else None for k, v in members.items()},
            "groups": len(grouping.groups), "keeper_transforms": dict(keepers.most_common()),
            "member_tiers": dict(member_tiers), "false_examples": false_examples}


# -- (b) natural ------------------------------------------------------------------------------------

def natural_truth(corpus) -> list[dict]:
    import csv
    with open(corpus / "natural" / "ground_truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["abspath"] = str(corpus / r["path"])
    return rows


def natural_pairs(rows: list[dict]) -> dict[str, list[tuple[str, str, str]]]:
    """{"copy": [...], "distinct_shot": [...], "unrelated": [...]}: (a, b, group) path pairs."""
    out = {"copy": [], "distinct_shot": [], "unrelated": []}
    for a, b in combinations(rows, 2):
        if a["group"] == b["group"]:
            kind = "copy" if a["copy_relation"] == b["copy_relation"] == "copy" else "distinct_shot"
            out[kind].append((a["abspath"], b["abspath"], a["group"]))
        else:
            out["unrelated"].append((a["abspath"], b["abspath"], ""))
    return out


def score_natural(pairs: dict, grouping: Grouping) -> dict:
    def tiers(kind):
        return [(a, b, g, grouping.pair(a, b)) for a, b, g in pairs[kind]]

    copy, distinct, unrelated = tiers("copy"), tiers("distinct_shot"), tiers("unrelated")
    return {
        "copy_pairs": len(copy), "copy_act": sum(t == "act" for *_, t in copy),
        "copy_any": sum(t is not None for *_, t in copy),
        "distinct_pairs": len(distinct), "distinct_act_violations": sum(t == "act" for *_, t in distinct),
        "distinct_report": sum(t == "report" for *_, t in distinct),
        "unrelated_act": sum(t == "act" for *_, t in unrelated), "unrelated_any": sum(t is not None for *_, t in unrelated),
        "violations": [{"a": os.path.basename(a), "b": os.path.basename(b), "group": g} for a, b, g, t in distinct if t == "act"],
        "distinct_in_report_groups": sorted(Counter(g for *_, g, t in distinct if t == "report").items()),
        "copies_missed": [{"a": os.path.basename(a), "b": os.path.basename(b), "group": g} for a, b, g, t in copy if t is None],
    }


# -- (c) hash distance alone -------------------------------------------------------------------------

def hash_files(paths: list[str], workers: int) -> dict[str, np.ndarray]:
    """Per method an (n, words) uint64 array (lbph_var: (n, 8, 2)) for every path."""
    import cv2
    import imagehash
    import pdqhash
    from PIL import Image

    from dedupd.daemon.fingerprinting import fingerprint_file
    from dedupd.daemon.walk import FileRef

    def pdq_input(path):
        from dedupd.daemon.imageinfo import HEADER_BYTES, read_info
        with open(path, "rb") as f:
            data = f.read()
        info = read_info(data[:HEADER_BYTES], path)
        flags = cv2.IMREAD_COLOR
        short = min(info.width, info.height)
        for k, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if info.format == "jpeg" and short // k >= 512:
                flags = flag
                break
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
        return T.orient(img, info.orientation)

    def one(path):
        fp = fingerprint_file(FileRef.from_stat(path, os.stat(path)), "lbph", 200_000_000)
        if fp.variants is None:
            raise RuntimeError(f"{path}: {fp.record.error}")
        with Image.open(path) as im:
            im.load()
            ph = imagehash.phash(im).hash.flatten()
            dh = imagehash.dhash(im).hash.flatten()
        bits, _ = pdqhash.compute(cv2.cvtColor(np.ascontiguousarray(pdq_input(path)), cv2.COLOR_BGR2RGB))
        return fp.variants, _pack(ph), _pack(dh), _pack(np.asarray(bits).astype(bool))

    with ThreadPoolExecutor(workers) as pool:
        out = list(pool.map(one, paths))
    return {"lbph_var": np.array([o[0] for o in out], np.uint64), "phash": np.array([o[1] for o in out]),
            "dhash": np.array([o[2] for o in out]), "pdq": np.array([o[3] for o in out])}


def _pack(bits: np.ndarray) -> np.ndarray:
    bits = np.asarray(bits, dtype=bool).ravel()
    return np.packbits(bits, bitorder="little").view("<u8").astype(np.uint64)


def distances(h: dict) -> dict[str, np.ndarray]:
    """All-pairs distance matrices (n, n) int16: lbph upright, lbph min over variants, phash, dhash, pdq."""
    def pairwise(codes):
        d = np.zeros((len(codes), len(codes)), np.int16)
        for w in range(codes.shape[1]):
            d += np.bitwise_count(codes[:, None, w] ^ codes[None, :, w]).astype(np.int16)
        return d

    var = h["lbph_var"]
    up = pairwise(var[:, 0])
    rot = up.copy()
    for v in range(1, var.shape[1]):  # d(i, j) = min over v of |code_i ^ variant_v(j)|
        d = np.zeros_like(up)
        for w in range(2):
            d += np.bitwise_count(var[:, None, 0, w] ^ var[None, :, v, w]).astype(np.int16)
        rot = np.minimum(rot, np.minimum(d, d.T))
    return {"lbph": up, "lbph_rot": rot, "phash": pairwise(h["phash"]), "dhash": pairwise(h["dhash"]), "pdq": pairwise(h["pdq"]),
            "_lbph_var": var}


def methods() -> list[tuple[str, int, str]]:
    """(distance matrix, threshold, label) of every hash-alone column."""
    return [("lbph", ACT, f"lbph<={ACT}"), ("lbph", REPORT, f"lbph<={REPORT}"), ("lbph_rot", REPORT, f"lbph+rot<={REPORT}"),
            ("phash", 10, "phash<=10"), ("dhash", 5, "dhash<=5"), ("pdq", 31, "pdq<=31")]


def score_hashes_copies(files: list[dict], dist: dict) -> dict:
    orig = np.array([f["orig"] for f in files])
    kind = np.array([f["transform"] for f in files])
    same = orig[:, None] == orig[None, :]
    iu = np.triu_indices(len(files), 1)
    pos = same[iu]
    orig_index = {f["orig"]: i for i, f in enumerate(files) if f["transform"] == "original"}
    out = {}
    for key, thr, label in methods():
        d = dist[key]
        within = d[iu] <= thr
        per = {}
        for t in T.TRANSFORMS:
            idx = np.flatnonzero(kind == t.name)
            per[t.name] = int(sum(d[orig_index[orig[i]], i] <= thr for i in idx)), len(idx)
        tp, fp = int((within & pos).sum()), int((within & ~pos).sum())
        out[label] = {"per_transform": {k: v[0] for k, v in per.items()}, "n": {k: v[1] for k, v in per.items()},
                      "false_pairs": fp, "true_pairs": tp, "positive_pairs": int(pos.sum()),
                      "precision": rounded(tp / (tp + fp)) if tp + fp else None}
    # the LBPH curve over the act transforms (upright distance, as the act tier requires)
    act_idx = np.flatnonzero(np.isin(kind, T.ACT_TRANSFORMS))
    act_d = np.array([dist["lbph"][orig_index[orig[i]], i] for i in act_idx])
    all_d = np.array([dist["lbph"][orig_index[orig[i]], i] for i in np.flatnonzero(kind != "original")])
    rot_d = np.array([dist["lbph_rot"][orig_index[orig[i]], i] for i in np.flatnonzero(kind != "original")])
    by_word = lbph_words(files, orig_index, dist)
    neg = np.sort(dist["lbph"][iu][~pos])
    neg_rot = np.sort(dist["lbph_rot"][iu][~pos])
    curve = [{"t": t, "act_recall": rounded(float((act_d <= t).mean())), "all_recall": rounded(float((all_d <= t).mean())),
              "all_recall_rot": rounded(float((rot_d <= t).mean())),
              "false_pairs": int(np.searchsorted(neg, t, side="right")),
              "false_pairs_rot": int(np.searchsorted(neg_rot, t, side="right"))} for t in CURVE]
    nearest_negative = {"lbph": int(neg[0]) if len(neg) else None, "lbph_rot": int(neg_rot[0]) if len(neg_rot) else None}
    return {"methods": out, "curve": curve, "nearest_negative": nearest_negative, "negative_pairs": int((~pos).sum()),
            "lbph_by_word": by_word}


def lbph_words(files: list[dict], orig_index: dict, dist: dict) -> dict:
    """Per transform: LBPH distance original -> copy, in total and per word (upright; best variant for
    real rotations/mirrors), as median / p90 / max."""
    var = dist["_lbph_var"]
    out = {}
    for t in T.TRANSFORMS:
        rows = [(orig_index[f["orig"]], i) for i, f in enumerate(files) if f["transform"] == t.name]
        tot, w0, w1 = [], [], []
        for o, i in rows:
            d = np.bitwise_count(var[i] ^ var[o, 0][None, :]).astype(int)  # (8 variants of the copy, 2 words)
            k = int(np.argmin(d.sum(axis=1))) if t.expect == "report" else 0
            tot.append(int(d[k].sum()))
            w0.append(int(d[k, 0]))
            w1.append(int(d[k, 1]))
        out[t.name] = {name: _summ(v) for name, v in (("total", tot), ("word0", w0), ("word1", w1))}
    return out


def score_hashes_natural(rows: list[dict], dist: dict) -> dict:
    idx = {r["abspath"]: i for i, r in enumerate(rows)}
    pairs = natural_pairs(rows)
    out = {}
    for key, thr, label in methods():
        d = dist[key]

        def count(kind):
            return sum(int(d[idx[a], idx[b]] <= thr) for a, b, _ in pairs[kind])
        out[label] = {"copy": count("copy"), "distinct_shot": count("distinct_shot"), "unrelated": count("unrelated")}
    curve = []
    for t in CURVE:
        curve.append({"t": t, **{k: sum(int(dist["lbph"][idx[a], idx[b]] <= t) for a, b, _ in pairs[k])
                                 for k in ("copy", "distinct_shot", "unrelated")}})
    close = [{"a": os.path.basename(a), "b": os.path.basename(b), "lbph": int(dist["lbph"][idx[a], idx[b]])}
             for a, b, _ in pairs["unrelated"] if dist["lbph"][idx[a], idx[b]] <= REPORT]
    return {"methods": out, "pairs": {k: len(v) for k, v in pairs.items()}, "curve": curve, "unrelated_within_report": close}


# -- (d) decode scale ----------------------------------------------------------------------------------

def decode_scale(originals: list[str]) -> dict:
    import cv2

    from dedupd.daemon.decode import reduction_for
    from dedupd.daemon.imageinfo import HEADER_BYTES, read_info
    from dedupd.kernels import fingerprint, hamming
    flags = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
             8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
    d = {k: [] for k in (2, 4, 8)}
    used = []
    for p in originals:
        with open(p, "rb") as f:
            data = f.read()
        info = read_info(data[:HEADER_BYTES], p)
        if info.format != "jpeg" or min(info.width, info.height) < 512:
            continue
        buf = np.frombuffer(data, np.uint8)
        codes = {k: fingerprint(cv2.imdecode(buf, fl | cv2.IMREAD_IGNORE_ORIENTATION)).code for k, fl in flags.items()}
        for k in d:
            d[k].append(int(hamming(codes[1], codes[k])))
        used.append(int(hamming(codes[1], codes[reduction_for(info)])))
    summary = {f"1/{k}": _summ(v) for k, v in d.items()}
    summary["daemon's choice"] = _summ(used)
    return summary


def min_side_whatif(files: list[dict], workers: int, sides=(64, 128, 256)) -> dict:
    """What if the daemon kept a larger short side when it picks the JPEG DCT reduction?

    Every file is decoded as the daemon does (reduced grey JPEG decode, EXIF orientation) but
    with MIN_SIDE = each of `sides`; reported: LBPH distance original -> copy over the act
    transforms (median / p90 / share within the act threshold) and the nearest pair of
    different originals."""
    import cv2

    from dedupd.daemon.decode import apply_orientation
    from dedupd.daemon.imageinfo import HEADER_BYTES, read_info
    from dedupd.kernels import fingerprint
    flags = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
             8: cv2.IMREAD_REDUCED_GRAYSCALE_8}

    def codes(path):
        with open(path, "rb") as f:
            data = f.read()
        info = read_info(data[:HEADER_BYTES], path)
        out = []
        for side in sides:
            k = next((k for k in (8, 4, 2) if info.format == "jpeg" and min(info.width, info.height) // k >= side), 1)
            gray = cv2.imdecode(np.frombuffer(data, np.uint8), flags[k] | cv2.IMREAD_IGNORE_ORIENTATION)
            out.append(fingerprint(np.ascontiguousarray(apply_orientation(gray, info.orientation))).code)
        return out

    with ThreadPoolExecutor(workers) as pool:
        all_codes = np.array(list(pool.map(codes, [f["path"] for f in files])), np.uint64)  # (n, sides, 2)
    orig = np.array([f["orig"] for f in files])
    kind = np.array([f["transform"] for f in files])
    oi = {f["orig"]: i for i, f in enumerate(files) if f["transform"] == "original"}
    act = np.flatnonzero(np.isin(kind, T.ACT_TRANSFORMS))
    iu = np.triu_indices(len(files), 1)
    neg = (orig[:, None] != orig[None, :])[iu]
    out = {}
    for s_i, side in enumerate(sides):
        c = all_codes[:, s_i]
        d_act = np.array([int(np.bitwise_count(c[i] ^ c[oi[orig[i]]]).sum()) for i in act])
        d_all = np.zeros((len(files), len(files)), np.int16)
        for w in range(2):
            d_all += np.bitwise_count(c[:, None, w] ^ c[None, :, w]).astype(np.int16)
        out[str(side)] = {"act_median": float(np.median(d_act)), "act_p90": float(np.percentile(d_act, 90)),
                          "act_max": int(d_act.max()), "act_within_act": rounded(float((d_act <= ACT).mean())),
                          "nearest_negative": int(d_all[iu][neg].min())}
    return out


def _summ(v):
    if not v:
        return {"n": 0}
    return {"n": len(v), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "max": int(max(v))}


# -- output ---------------------------------------------------------------------------------------------

def pct(a, n):
    return f"{100 * a / n:.0f}%" if n else "-"


def print_results(res: dict, files_n: int) -> None:
    sc, hc = res["scan"]["copies"], res["hashes"]["copies"]
    print(f"\n(a)+(c) transformed copies: {res['originals']} originals x {len(T.TRANSFORMS)} transforms, {files_n} files; "
          f"dedupctl scan {res['scan']['seconds']:.0f} s, thresholds act {ACT} / report {REPORT}")
    labels = list(hc["methods"])
    rows = []
    for t in T.TRANSFORMS:
        p = sc["per_transform"][t.name]
        rows.append([t.name, t.expect, pct(p["act"], p["n"]), pct(p["any"], p["n"])]
                    + [pct(hc["methods"][lb]["per_transform"][t.name], hc["methods"][lb]["n"][t.name]) for lb in labels])
    print_table(["transform", "expect", "dedupd act", "dedupd any"] + labels, rows,
                title="recall per transform: copy grouped with its original (dedupd: act tier / any tier) "
                      "or its pair distance within the threshold (hash columns)")
    rows = [["dedupd act tier", sc["false_pairs"]["act"], sc["precision"]["act"]],
            ["dedupd any tier", sc["false_pairs"]["any"], sc["precision"]["any"]]]
    rows += [[lb, m["false_pairs"], m["precision"]] for lb, m in hc["methods"].items()]
    print_table(["method", "false pairs", "precision"], rows,
                title=f"false pairs (different originals) and precision; dedupd counts group members, "
                      f"hashes count pairs among {hc['negative_pairs']:,} negative pairs")
    print(f"dedupd groups: {sc['groups']}; keepers by transform: {sc['keeper_transforms']}; member tiers: {sc['member_tiers']}")
    if sc["report_transforms_in_act"]:
        print(f"report-tier transforms whose copy reached the act tier with its original: {sc['report_transforms_in_act']}")
    for ex in sc["false_examples"]:
        print(f"  false pair: {ex}")
    print(f"nearest pair of different originals: LBPH upright {hc['nearest_negative']['lbph']}, "
          f"with variants {hc['nearest_negative']['lbph_rot']} bits")

    nat, nh = res["scan"]["natural"], res["hashes"]["natural"]
    print(f"\n(b) corpus/natural: {nh['pairs']['copy']} copy pairs, {nh['pairs']['distinct_shot']} distinct-shot pairs, "
          f"{nh['pairs']['unrelated']} unrelated pairs")
    rows = [["dedupd act tier", pct(nat["copy_act"], nat["copy_pairs"]), nat["distinct_act_violations"], nat["unrelated_act"]],
            ["dedupd any tier", pct(nat["copy_any"], nat["copy_pairs"]), nat["distinct_report"], nat["unrelated_any"]]]
    rows += [[lb, pct(m["copy"], nh["pairs"]["copy"]), m["distinct_shot"], m["unrelated"]] for lb, m in nh["methods"].items()]
    print_table(["method", "copy recall", "distinct-shot pairs", "unrelated pairs"], rows,
                title="natural look-alikes (dedupd act row: distinct-shot pairs = violations; any row: distinct-shot pairs in report)")
    for v in nh["unrelated_within_report"]:
        print(f"  unrelated pair within LBPH {REPORT}: {v}")
    for v in nat["violations"]:
        print(f"  VIOLATION distinct shots in act: {v}")
    if nat["distinct_in_report_groups"]:
        print(f"  distinct-shot pairs in report, by group: {nat['distinct_in_report_groups']}")
    for v in nat["copies_missed"]:
        print(f"  copy pair not grouped: {v}")

    rows = []
    nat_curve = {c["t"]: c for c in nh["curve"]}
    for c in hc["curve"]:
        n = nat_curve[c["t"]]
        rows.append([c["t"], f"{100 * c['act_recall']:.1f}%", c["false_pairs"], f"{100 * c['all_recall']:.1f}%",
                     f"{100 * c['all_recall_rot']:.1f}%", c["false_pairs_rot"], n["copy"], n["distinct_shot"], n["unrelated"]])
    print_table(["t", "act recall", "false pairs", "all recall", "all recall +rot", "false +rot",
                 "natural copies", "natural distinct", "natural unrelated"], rows,
                title="LBPH threshold curve (upright distance unless +rot; act recall = the 12 act transforms; "
                      "false pairs = pairs of different originals within t)")

    bw = hc["lbph_by_word"]
    rows = [[t.name, t.expect] + [f"{bw[t.name][w]['median']:g} / {bw[t.name][w]['p90']:g} / {bw[t.name][w]['max']}"
                                  for w in ("total", "word0", "word1")] for t in T.TRANSFORMS]
    print_table(["transform", "expect", "total", "word 0 (global DCT)", "word 1 (LBP texture)"], rows,
                title="LBPH distance original -> copy, median / p90 / max (report transforms: best of the 8 variants)")

    ds = res["decode_scale"]
    print_table(["decode", "JPEGs", "median", "p90", "max"],
                [[k, v.get("n"), v.get("median"), v.get("p90"), v.get("max")] for k, v in ds.items()],
                title="(d) LBPH distance between full-size decode and DCT-reduced decode of the same JPEG "
                      "(originals with short side >= 512)")
    wi = res.get("min_side_whatif") or {}
    if wi:
        print_table(["MIN_SIDE", "act transforms: median", "p90", "max", f"within {ACT}", "nearest different originals"],
                    [[k + (" (current)" if k == "64" else ""), v["act_median"], v["act_p90"], v["act_max"],
                      f"{100 * v['act_within_act']:.1f}%", v["nearest_negative"]] for k, v in wi.items()],
                    title="(e) what if the JPEG reduction kept a larger short side: LBPH original -> copy distance "
                          "over the 12 act transforms")


def product_thresholds() -> tuple[int, int]:
    """The act/report thresholds a config without a `thresholds` key gets (the shipped defaults)."""
    from dedupd.daemon.config import load_config
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.yaml")
        with open(path, "w") as f:
            f.write(f"state_dir: {json.dumps(d)}\nroots: [{{path: {json.dumps(d)}}}]\n")
        c = load_config(path)
    return int(c.act_threshold), int(c.report_threshold)


def main(argv=None) -> int:
    global ACT, REPORT
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--originals", type=int, default=None, help="photos sampled as originals (default 120; --quick 12)")
    p.add_argument("--all", action="store_true", help="use every photo in corpus/photos")
    p.add_argument("--workdir", default=None, help="keep the copies here (reused when present) instead of a temp dir")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--act", type=int, default=None, help="act threshold for the scan and the LBPH column (default: the product's)")
    p.add_argument("--report", type=int, default=None, help="report threshold (default: the product's)")
    p.add_argument("--no-whatif", action="store_true", help="skip (e), the MIN_SIDE what-if")
    p.add_argument("--no-scan", action="store_true", help="skip dedupctl (hash distances and decode scale only)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="skip originals above this many pixels (default: none; --quick 2,000,000)")
    args = p.parse_args(argv)
    corpus = common.check_corpus(args.corpus)
    started = time.perf_counter()
    default_act, default_report = product_thresholds()
    ACT = default_act if args.act is None else args.act
    REPORT = default_report if args.report is None else args.report
    rows = common.read_manifest(corpus)
    max_px = args.max_pixels or (2_000_000 if args.quick else None)
    pool = [r["abspath"] for r in rows if r["path"].startswith("photos/") and (not max_px or r["width"] * r["height"] <= max_px)]
    n_orig = None if args.all else (args.originals or (12 if args.quick else 120))
    originals = common.sample(pool, n_orig)

    tmp = None
    workdir = args.workdir or (tmp := tempfile.mkdtemp(prefix="dedupd-bench-accuracy-"))
    try:
        note(f"making {len(T.TRANSFORMS)} copies of {len(originals)} originals in {workdir} ...")
        t0 = time.perf_counter()
        files = make_copies(originals, os.path.join(workdir, "copies"), args.workers)
        make_s = time.perf_counter() - t0
        truth = natural_truth(corpus)
        if args.no_scan:
            groups = ngroups = {"groups": []}
            report = nreport = {}
            scan_s = nscan_s = 0.0
        else:
            note(f"  {len(files)} files in {make_s:.0f} s; dedupctl scan ...")
            groups, report, scan_s = scan_and_group(os.path.join(workdir, "copies"), os.path.join(workdir, "state-copies"), args.workers)
            ngroups, nreport, nscan_s = scan_and_group(str(corpus / "natural"), os.path.join(workdir, "state-natural"), args.workers)
        copies_score = score_copies(files, Grouping(groups))
        natural_score = score_natural(natural_pairs(truth), Grouping(ngroups))
        note("hashing every file with LBPH, imagehash pHash/dHash and PDQ ...")
        t0 = time.perf_counter()
        h = hash_files([f["path"] for f in files], args.workers)
        hn = hash_files([r["abspath"] for r in truth], args.workers)
        hash_s = time.perf_counter() - t0
        hashes = {"copies": score_hashes_copies(files, distances(h)), "natural": score_hashes_natural(truth, distances(hn))}
        note("decode-scale consistency ...")
        ds = decode_scale(originals)
        whatif = {} if args.no_whatif else min_side_whatif(files, args.workers)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    res = {"bench": "accuracy", "quick": args.quick, "originals": len(originals), "files": len(files),
           "thresholds": {"act": ACT, "report": REPORT, **BASELINES},
           "product_default_thresholds": {"act": default_act, "report": default_report},
           "transforms": {t.name: {"expect": t.expect, "what": t.what} for t in T.TRANSFORMS},
           "scan": {"seconds": round(scan_s, 1), "report": report, "copies": copies_score,
                    "natural": natural_score, "natural_seconds": round(nscan_s, 1), "natural_report": nreport},
           "hashes": hashes, "decode_scale": ds, "min_side_whatif": whatif,
           "seconds": {"make_copies": round(make_s, 1), "scan": round(scan_s, 1), "hash_baselines": round(hash_s, 1),
                       "total": round(time.perf_counter() - started, 1)},
           "machine": common.machine(), "versions": common.versions("numpy", "numba", "cv2", "PIL", "imagehash", "pdqhash")}
    print_results(res, len(files))
    print(f"\ntime: copies {make_s:.0f} s, scan {scan_s:.0f} s (+ natural {nscan_s:.0f} s), baselines {hash_s:.0f} s, "
          f"total {res['seconds']['total']:.0f} s")
    common.emit_json(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
