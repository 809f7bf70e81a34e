"""Accuracy of dedupd on transformed copies of real photos and on natural look-alikes,
side by side with hash distance alone (LBPH, imagehash pHash/dHash, PDQ) on the same files.

(a) Transformed copies, COMBINED: a deterministic sample of corpus/photos (--originals, default
    120; --all for every photo) and 24 transformed copies of each (bench/transforms.py) are
    written to a temp dir (or --workdir, reused), `dedupctl scan` runs on the whole folder with a
    generated config and a fresh state dir, and the groups of `dedupctl groups --json` are scored
    per transform: recall into the act tier, "verified" (grouped, and every non-keeper of the pair
    passed the pixel verification against the keeper), recall into any tier, false pairs (a member
    whose original differs from its keeper's) in the act tier and in any tier, precision.
(a') PAIRWISE (default; --no-pairwise skips it): per transform a folder holding the originals and
    only that transform's copies (hard links to the combined folder's files: the walker skips
    symlinks), scanned on its own and scored the same way. In the combined folder the 150 %
    upscale is every group's keeper (most_pixels) and the fidelity rule rightly keeps lossless and
    EXIF-carrying copies from being replaced by it, which hides whether each kind of copy is
    recognised; pairwise, each copy is judged against its original alone. The diagnostics say who
    is kept, why a grouped pair is not act (the first failed condition of grouping.tier_of), and
    what daemon/verify.verify_pair says on every (original, copy) pair, in both argument orders.
(b) corpus/natural (ground_truth.csv): copy pairs should be grouped; distinct_shot pairs must
    never reach the act tier (violations); every distinct_shot pair within the report radius or
    grouped is listed with its LBPH distance, verify_pair's verdict and dedupd's tier per run.
(c) The same pairs by hash distance alone, all pairs of all files: LBPH (upright, and the
    minimum over its 8 dihedral variants) at the act and report thresholds, imagehash.phash
    <= 10, imagehash.dhash <= 5 (Pillow decode, no EXIF transpose), PDQ <= 31 (pdqhash on an
    OpenCV colour decode with EXIF orientation, reduced so the short side stays >= 512 px);
    plus the LBPH threshold curve 0..40 on the act transforms, and LBPH distances per word.
(d) Decode-scale consistency: the LBPH distance between one JPEG decoded at full size and at
    the DCT-domain reductions 1/2, 1/4, 1/8.
(e) What-if: the act-transform distances with decode.MIN_SIDE 64, the current value and 256.
(f) Threshold sweep (--sweep-act 8,10,12,16 --sweep-report 20,24,28): every (act, report) pair
    with report >= act gets its own fresh scans (combined, pairwise, natural).
(g) The detection-quality targets (docs/accuracy.md) for dedupd and each hash alone.
(h) Keep and rotation diagnostics: bytes per pixel copy / original over same-size copies (what the
    keep rules' 10 % tie covers), and the rotated radius curve (real rotations/mirrors and pairs of
    different originals within r through a non-identity variant).
Thresholds: the product's defaults (what a config without `thresholds` gets), or --act / --report /
--rotated. --product-commit C measures the product code of commit C (extracted under --workdir), not
the working tree, so that edits others make in the checkout during a run cannot mix into it.

Run:  /tmp/venv/bin/python bench/accuracy.py [--originals 120 | --all] [--workdir DIR] [--product-commit HEAD]
                                            [--act 16 --report 28 --rotated 20]
                                            [--sweep-act 8,10,12,16 --sweep-report 20,24,28]
                                            [--no-pairwise] [--no-whatif] [--quick] [--no-scan] [--corpus PATH]
"""

from __future__ import annotations

import json
import math
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


ROTATED: int | None = None  # --rotated; None: the product's default (a config without thresholds.rotated)
CROPS = False  # --crops: scan with match_crops: true (crop window codes, docs/accuracy.md §12)


def scan_and_group(folder: str, state: str, workers: int, act: int, report: int) -> tuple[dict, dict, float]:
    """`dedupctl scan` on folder with a fresh state dir; returns (groups json, scan report, seconds).
    The state dir is removed afterwards (every run starts from an empty index: a report radius
    wider than the one an index was built with would need a rescan anyway)."""
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state)
    config = os.path.join(state, "dedupd.yaml")
    with open(config, "w") as f:
        f.write(f"state_dir: {json.dumps(os.path.join(state, 'state'))}\n"
                f"roots: [{{path: {json.dumps(folder)}, mode: report}}]\n"
                f"algorithm: lbph\nthresholds: {{act: {act}, report: {report}"
                + (f", rotated: {min(ROTATED, report)}" if ROTATED is not None else "") + "}\n"
                f"match_rotations: true\nworkers: {workers}\n" + ("match_crops: true\n" if CROPS else ""))
    try:
        t0 = time.perf_counter()
        scan = subprocess.run(dedupctl() + ["--config", config, "scan", "--json", "--no-progress"],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if scan.returncode not in (0, 1) or not scan.stdout.strip():
            raise SystemExit(f"dedupctl scan failed ({scan.returncode}):\n{scan.stderr[-3000:]}")
        report_json = json.loads(scan.stdout.strip().splitlines()[-1])
        groups = subprocess.run(dedupctl() + ["--config", config, "groups", "--json"], capture_output=True, text=True)
        if groups.returncode != 0:
            raise SystemExit(f"dedupctl groups failed ({groups.returncode}):\n{groups.stderr[-3000:]}")
        return json.loads(groups.stdout), report_json, seconds
    finally:
        shutil.rmtree(state, ignore_errors=True)


ACT_LEVEL = ("exact", "act")


class Grouping:
    """Pair questions about `dedupctl groups --json` output."""

    def __init__(self, groups: dict):
        self.where: dict[str, tuple[str, str, bool]] = {}  # path -> (group id, "keeper" or tier, verified)
        self.keeper: dict[str, str] = {}  # group id -> keeper path
        self.member: dict[str, dict] = {}  # path -> its member entry
        self.groups = groups["groups"]
        for g in self.groups:
            self.where[g["keep"]] = (g["id"], "keeper", True)
            self.keeper[g["id"]] = g["keep"]
            for m in g["members"]:
                self.where[m["path"]] = (g["id"], m["tier"], bool(m.get("verified")))
                self.member[m["path"]] = m

    def pair(self, a: str, b: str) -> str | None:
        """None (not grouped together), "act" (exact or act against the keeper) or "report"."""
        ga, gb = self.where.get(a), self.where.get(b)
        if ga is None or gb is None or ga[0] != gb[0]:
            return None
        tiers = [t for t in (ga[1], gb[1]) if t != "keeper"]
        return "act" if all(t in ACT_LEVEL for t in tiers) else "report"

    def verified(self, a: str, b: str) -> bool:
        """Grouped together and every non-keeper of the two passed the pixel verification
        against the keeper (the pair was recognised as the same picture, whatever its tier)."""
        ga, gb = self.where.get(a), self.where.get(b)
        return ga is not None and gb is not None and ga[0] == gb[0] and ga[2] and gb[2]

    def keeper_of(self, path: str) -> str | None:
        w = self.where.get(path)
        return self.keeper[w[0]] if w else None


def why_not_act(keeper: FileRecord, member: FileRecord, m: dict, act: int, min_quality: float) -> str:
    """Which of the act conditions (daemon/grouping.py `tier_of`) a report-tier member failed, first one wins."""
    from dedupd.daemon.grouping import same_aspect, same_colour_kind
    if m["variant"] != "identity":
        # box / crop: found through a content box code / window codes, never act
        return m["variant"] if m["variant"] in ("box", "crop") else "rotated"
    if m["distance"] > act:
        return "distance"
    if min(keeper.quality, member.quality) < min_quality:
        return "flat"
    if not m.get("verified"):
        return "verify"
    if not same_aspect(keeper, member):
        return "aspect"
    if not same_colour_kind(keeper, member):
        return "grey"
    if keeper.pixels < member.pixels:
        return "fidelity:pixels"
    if member.lossless and not keeper.lossless:
        return "fidelity:lossless"
    if member.has_exif and not keeper.has_exif:
        return "fidelity:exif"
    return "?"


def score_copies(files: list[dict], grouping: Grouping, records: dict | None = None, act: int = 0,
                 min_quality: float = 0.0) -> dict:
    """Per transform present in `files`: act / verified / any recall of (original, copy); false
    group members; with `records` (path or src -> FileRecord), why each grouped non-act pair is not act."""
    by_orig: dict[int, dict[str, dict]] = defaultdict(dict)
    for f in files:
        by_orig[f["orig"]][f["transform"]] = f
    present = {f["transform"] for f in files}
    orig_of = {f["path"]: f["orig"] for f in files}
    src_of = {f["path"]: f.get("src", f["path"]) for f in files}
    per = {}
    for t in T.TRANSFORMS:
        if t.name not in present:
            continue
        row = {"expect": t.expect, "n": 0, "act": 0, "verified": 0, "any": 0, "copy_keeper": 0, "not_act": Counter()}
        for fs in by_orig.values():
            if t.name not in fs:
                continue
            o, c = fs["original"]["path"], fs[t.name]["path"]
            tier = grouping.pair(o, c)
            row["n"] += 1
            row["act"] += tier == "act"
            row["any"] += tier is not None
            row["verified"] += grouping.verified(o, c)
            row["copy_keeper"] += grouping.keeper_of(c) == c
            if tier == "report" and records is not None:
                k = grouping.keeper_of(o)
                if k not in (o, c) and orig_of.get(k) != fs["original"]["orig"]:
                    row["not_act"]["other picture's group"] += 1  # star grouping took both into another keeper's group
                    continue
                rec = {p: records.get(src_of.get(p, p)) for p in (o, c, k)}
                reasons = [why_not_act(rec[k], rec[p], grouping.member[p], act, min_quality)
                           for p in (o, c) if p != k and grouping.where[p][1] not in ACT_LEVEL and rec.get(k) and rec.get(p)]
                row["not_act"][reasons[0] if reasons else "?"] += 1
            elif tier is None:
                row["not_act"]["not grouped"] += 1
        row["not_act"] = dict(row["not_act"].most_common())
        per[t.name] = row
    orig_of = {f["path"]: f["orig"] for f in files}
    transform_of = {f["path"]: f["transform"] for f in files}
    members = {"act": [0, 0], "any": [0, 0]}  # [correct, false] keeper -> member pairs
    in_group = {"act": [0, 0], "any": [0, 0]}  # [correct, false] over every pair of files inside one group
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
                                       "tier": m["tier"], "distance": m["distance"], "variant": m["variant"],
                                       "verified": m.get("verified")})
        for level in ("act", "any"):
            paths = [g["keep"]] + [m["path"] for m in g["members"] if level == "any" or m["tier"] in ACT_LEVEL]
            for a, b in combinations(paths, 2):
                in_group[level][orig_of.get(a) != orig_of.get(b)] += 1
    keepers = Counter(transform_of.get(g["keep"], "?") for g in grouping.groups)
    member_tiers = Counter(m["tier"] for g in grouping.groups for m in g["members"])
    unexpected_act = {k: f"{v['act']}/{v['n']}" for k, v in per.items() if v["expect"] == "report" and v["act"]}

    def prec(v):
        return rounded(v[0] / (v[0] + v[1])) if sum(v) else None
    return {"per_transform": per, "report_transforms_in_act": unexpected_act,
            "false_pairs": {k: v[1] for k, v in members.items()}, "true_pairs": {k: v[0] for k, v in members.items()},
            "precision": {k: prec(v) for k, v in members.items()},
            "in_group_pairs": {k: {"true": v[0], "false": v[1], "precision": prec(v)} for k, v in in_group.items()},
            "groups": len(grouping.groups), "keeper_transforms": dict(keepers.most_common()),
            "member_tiers": dict(member_tiers), "false_examples": false_examples}


def make_pairwise(files: list[dict], root: str) -> dict[str, list[dict]]:
    """Per transform a folder root/<transform>/<id>/ holding hard links to the originals and to
    that transform's copies only (the walker skips symlinks; a plain copy where linking fails).
    Returns transform -> file list; each entry's `src` is the combined-run path it links to."""
    by_orig: dict[int, dict[str, dict]] = defaultdict(dict)
    for f in files:
        by_orig[f["orig"]][f["transform"]] = f
    out = {}
    for t in T.TRANSFORMS:
        entries = []
        for fs in by_orig.values():
            for kind in ("original", t.name):
                if kind not in fs:
                    continue
                src = fs[kind]["path"]
                dst = os.path.join(root, t.name, os.path.basename(os.path.dirname(src)), os.path.basename(src))
                try:
                    same = os.path.samefile(src, dst)
                except OSError:
                    same = False
                if not same:
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    if os.path.lexists(dst):
                        os.remove(dst)
                    try:
                        os.link(src, dst)
                    except OSError:
                        shutil.copy2(src, dst)
                entries.append({"path": dst, "src": src, "orig": fs[kind]["orig"], "transform": kind})
        out[t.name] = entries
    return out


def run_dedupd(act: int, report: int, files: list[dict], pairwise: dict[str, list[dict]] | None, corpus,
               truth: list[dict], workdir: str, workers: int, records: dict, min_quality: float) -> dict:
    """One fresh `dedupctl scan` per folder at act/report: the combined folder, each pairwise
    folder, corpus/natural; scored."""
    tag = f"{act}-{report}"
    note(f"dedupctl scan at act {act} / report {report}: combined folder ...")
    groups, report_json, seconds = scan_and_group(os.path.join(workdir, "copies"), os.path.join(workdir, f"state-{tag}"),
                                                  workers, act, report)
    out = {"act": act, "report": report,
           "combined": score_copies(files, Grouping(groups), records, act, min_quality),
           "seconds": {"combined": round(seconds, 1)}, "scan_report": report_json}
    if pairwise:
        note(f"  pairwise: {len(pairwise)} folders ...")
        t0 = time.perf_counter()
        out["pairwise"] = {}
        for name, entries in pairwise.items():
            g, _, _ = scan_and_group(os.path.join(workdir, "pairwise", name), os.path.join(workdir, f"state-{tag}"),
                                     workers, act, report)
            out["pairwise"][name] = score_copies(entries, Grouping(g), records, act, min_quality)
        out["seconds"]["pairwise"] = round(time.perf_counter() - t0, 1)
    ngroups, _, nseconds = scan_and_group(str(corpus / "natural"), os.path.join(workdir, f"state-{tag}"), workers, act, report)
    out["natural"] = score_natural(natural_pairs(truth), Grouping(ngroups))
    out["natural_groups"] = ngroups
    out["seconds"]["natural"] = round(nseconds, 1)
    return out


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

def hash_files(paths: list[str], workers: int) -> dict:
    """Per method an (n, words) uint64 array (lbph_var: (n, 8, 2)) for every path; also the
    daemon's FileRecord ("records") and verification thumbnail ("thumbs") of every path."""
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
        return fp.variants, _pack(ph), _pack(dh), _pack(np.asarray(bits).astype(bool)), fp.record, fp.thumb

    with ThreadPoolExecutor(workers) as pool:
        out = list(pool.map(one, paths))
    return {"lbph_var": np.array([o[0] for o in out], np.uint64), "phash": np.array([o[1] for o in out]),
            "dhash": np.array([o[2] for o in out]), "pdq": np.array([o[3] for o in out]),
            "records": {p: o[4] for p, o in zip(paths, out)}, "thumbs": {p: o[5] for p, o in zip(paths, out)}}


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
    turned = np.full_like(up, 255)  # best of the 7 rotated/mirrored variants only
    for v in range(1, var.shape[1]):  # d(i, j) = min over v of |code_i ^ variant_v(j)|
        d = np.zeros_like(up)
        for w in range(2):
            d += np.bitwise_count(var[:, None, 0, w] ^ var[None, :, v, w]).astype(np.int16)
        turned = np.minimum(turned, np.minimum(d, d.T))
    return {"lbph": up, "lbph_rot": np.minimum(up, turned), "lbph_turned": turned, "phash": pairwise(h["phash"]),
            "dhash": pairwise(h["dhash"]), "pdq": pairwise(h["pdq"]), "_lbph_var": var}


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
            "lbph_by_word": by_word, "rotated_curve": rotated_curve(files, dist, orig_index, iu, pos)}


TURNED = ("rot90", "rot180", "mirror")


def rotated_curve(files: list[dict], dist: dict, orig_index: dict, iu, pos) -> list[dict]:
    """What a separate radius r for matches through a rotated/mirrored variant keeps and removes:
    the real rotations and mirrors within r (best of the 7 non-identity variants), and the pairs of
    different originals within r through a variant whose upright distance is beyond the report
    radius (the pairs such a match alone would put into the report tier)."""
    orig = np.array([f["orig"] for f in files])
    kind = np.array([f["transform"] for f in files])
    real = np.array([dist["lbph_turned"][orig_index[orig[i]], i] for i in np.flatnonzero(np.isin(kind, TURNED))])
    neg_turned = dist["lbph_turned"][iu][~pos]
    neg_only = np.sort(neg_turned[dist["lbph"][iu][~pos] > REPORT])
    neg_all = np.sort(neg_turned)
    return [{"r": r, "real_within": rounded(float((real <= r).mean())) if len(real) else None,
             "real_max": int(real.max()) if len(real) else None,
             "negatives_through_variant": int(np.searchsorted(neg_all, r, side="right")),
             "negatives_only_through_variant": int(np.searchsorted(neg_only, r, side="right"))}
            for r in range(10, REPORT + 1, 2)]


TIES = (0.0, 0.05, 0.10, 0.20, 0.50)
LADDER = ((92, 90), (92, 88), (92, 85), (95, 92))


def quality_ladder(originals: list[str], workers: int) -> dict:
    """What a real JPEG quality step does to bytes per pixel: every JPEG original decoded and
    re-encoded (OpenCV) at the qualities of LADDER; per pair of qualities the size ratio median /
    p90 and the share within 10 % (a step keep.BPP_TIE ties)."""
    import cv2

    def sizes(path):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        qs = sorted({q for pair in LADDER for q in pair})
        return {q: len(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1]) for q in qs}

    jpegs = [p for p in originals if p.lower().endswith((".jpg", ".jpeg"))]
    with ThreadPoolExecutor(workers) as pool:
        rows = list(pool.map(sizes, jpegs))
    out = {}
    for a, b in LADDER:
        r = np.array([s[a] / s[b] for s in rows])
        out[f"q{a}/q{b}"] = {"n": len(r), "median": round(float(np.median(r)), 3), "p90": round(float(np.percentile(r, 90)), 3),
                             "within_10": rounded(float((r <= 1.10).mean()))}
    return out


def keep_tie_sweep(files: list[dict], records: dict) -> dict:
    """Per transform: in how many (original, copy) pairs the default keep rules keep the copy, with
    bytes per pixel within each tolerance of TIES counted as a tie (keep.best_copy on the pair, as
    in a pairwise folder). Empty for a product without a tolerant bytes_per_pixel."""
    try:
        from dedupd.daemon.config.schema import DEFAULT_KEEP
        from dedupd.daemon.keep import best_copy, keep_key
    except ImportError:
        return {}
    orig = {f["orig"]: records[f["path"]] for f in files if f["transform"] == "original"}
    keys = {t: keep_key(DEFAULT_KEEP, bpp_tie=t) for t in TIES}
    out = {}
    for tr in T.TRANSFORMS:
        pairs = [(orig[f["orig"]], records[f["path"]]) for f in files if f["transform"] == tr.name]
        out[tr.name] = {"n": len(pairs), **{f"{t:.2f}": sum(best_copy([o, c], k) is c for o, c in pairs)
                                           for t, k in keys.items()}}
    return out


def bpp_ratios(files: list[dict], records: dict) -> dict:
    """Per transform, over the copies with the original's pixel count and losslessness (the ones
    `bytes_per_pixel` decides against their original): bytes per pixel copy / original, and the
    share a tie tolerance of 5 / 10 / 20 % covers among the copies that are larger."""
    orig = {f["orig"]: records[f["path"]] for f in files if f["transform"] == "original"}
    out = {}
    for t in T.TRANSFORMS:
        r = []
        for f in files:
            o, c = orig[f["orig"]], records[f["path"]] if f["transform"] == t.name else None
            if c is not None and c.pixels == o.pixels and c.lossless == o.lossless and o.size:
                r.append((c.size / c.pixels) / (o.size / o.pixels))
        if not r:
            continue
        r = np.array(r)
        larger = r[r > 1]
        out[t.name] = {"n": len(r), "median": round(float(np.median(r)), 3), "p95": round(float(np.percentile(r, 95)), 3),
                       "larger": len(larger), **{f"within_{k}": int((larger <= 1 + k / 100).sum()) for k in (5, 10, 20)}}
    return out


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


def _verdict(ra, rb, ta, tb):
    from dedupd.daemon.verify import verify_pair
    if ta is None or tb is None:
        return None
    exact = ra.lossless and rb.lossless and (ra.width, ra.height) == (rb.width, rb.height)  # as check_pair
    return verify_pair(ta, tb, both_lossless_same_size=exact)


def verify_copies(files: list[dict], h: dict, dist: dict, act: int) -> dict:
    """The pixel verification (daemon/verify.py) of every (original, copy) pair on the daemon's own
    thumbnails, whatever their distance, in both argument orders (the scan calls it as (file of the
    current batch, file already indexed), so either order occurs): per transform how many pass in
    each order and in both, and how many pass and are within the act radius (upright LBPH)."""
    idx = {f["path"]: i for i, f in enumerate(files)}
    orig_path = {f["orig"]: f["path"] for f in files if f["transform"] == "original"}
    out = {}
    for t in T.TRANSFORMS:
        rows = [(orig_path[f["orig"]], f["path"]) for f in files if f["transform"] == t.name]
        n = {"oc": 0, "co": 0, "both": 0, "either": 0, "both_act": 0, "either_act": 0}
        reasons, block = Counter(), []
        for o, c in rows:
            ro, rc, to, tc = h["records"][o], h["records"][c], h["thumbs"][o], h["thumbs"][c]
            v1, v2 = _verdict(ro, rc, to, tc), _verdict(rc, ro, tc, to)
            ok1, ok2 = bool(v1 and v1.same), bool(v2 and v2.same)
            near = int(dist["lbph"][idx[o], idx[c]]) <= act
            n["oc"] += ok1
            n["co"] += ok2
            n["both"] += ok1 and ok2
            n["either"] += ok1 or ok2
            n["both_act"] += ok1 and ok2 and near
            n["either_act"] += (ok1 or ok2) and near
            reasons[v1.reason if v1 else "no thumbnail"] += 1
            if v1 and math.isfinite(v1.block_residual):
                block.append(v1.block_residual)
        out[t.name] = {"n": len(rows), **n, "reasons_orig_copy": dict(reasons.most_common()),
                       "block_residual": {"median": round(float(np.median(block)), 2), "p90": round(float(np.percentile(block, 90)), 2),
                                          "max": round(float(max(block)), 2)} if block else {}}
    return out


def natural_detail(rows: list[dict], h: dict, dist: dict, runs: list[dict], report: int) -> list[dict]:
    """Every natural distinct_shot pair within the report radius (upright or through a variant)
    or grouped by dedupd in any run: LBPH distances, the verifier's verdict, dedupd's tier per run."""
    idx = {r["abspath"]: i for i, r in enumerate(rows)}
    groupings = [(f"{r['act']}/{r['report']}", Grouping(r["natural_groups"])) for r in runs]
    out = []
    for a, b, g in natural_pairs(rows)["distinct_shot"]:
        i, j = idx[a], idx[b]
        tiers = {k: gr.pair(a, b) for k, gr in groupings}
        if min(dist["lbph"][i, j], dist["lbph_rot"][i, j]) > report and not any(tiers.values()):
            continue
        v = _verdict(h["records"][a], h["records"][b], h["thumbs"][a], h["thumbs"][b])
        v2 = _verdict(h["records"][b], h["records"][a], h["thumbs"][b], h["thumbs"][a])
        out.append({"a": os.path.basename(a), "b": os.path.basename(b), "group": g, "lbph": int(dist["lbph"][i, j]),
                    "lbph_rot": int(dist["lbph_rot"][i, j]),
                    "verify": None if v is None else {"same": v.same, "reason": v.reason,
                                                      "block": round(v.block_residual, 2), "mean": round(v.mean_residual, 2),
                                                      "gain": round(v.gain, 3), "same_b_a": v2.same, "reason_b_a": v2.reason},
                    "tiers": tiers})
    return sorted(out, key=lambda x: (x["lbph"], x["a"]))


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


TARGET_ACT = T.ACT_TRANSFORMS  # act recall >= 0.99 on each
TARGET_REPORT = ["rot90", "rot180", "mirror", "caption", "letterbox", "blur", "noise", "gamma_0.8", "grayscale", "crop_15"]


def _pooled(per: dict, names, key: str) -> tuple[int, int]:
    return sum(per[n][key] for n in names if n in per), sum(per[n]["n"] for n in names if n in per)


def pairwise_per(run: dict) -> dict:
    """transform -> its row of the pairwise run (each pairwise folder holds one transform)."""
    return {name: sc["per_transform"][name] for name, sc in run.get("pairwise", {}).items()}


def pairwise_totals(run: dict) -> dict:
    """False pairs and precision pooled over the pairwise folders."""
    out = {}
    for level in ("act", "any"):
        fp = sum(sc["false_pairs"][level] for sc in run["pairwise"].values())
        tp = sum(sc["true_pairs"][level] for sc in run["pairwise"].values())
        out[level] = {"false": fp, "true": tp, "precision": rounded(tp / (tp + fp)) if tp + fp else None}
    return out


def targets(run: dict, hc: dict, nh: dict) -> list[dict]:
    """The detection-quality targets, for dedupd (pairwise and combined views) and hash distance alone."""
    rows = []
    nat = run["natural"]

    def worst(per, names, key):
        vals = [(per[n][key] / per[n]["n"], n) for n in names if per.get(n, {}).get("n")]
        return min(vals) if vals else (None, None)

    cols = {}
    for view in ("pairwise", "combined"):
        per = pairwise_per(run) if view == "pairwise" else run["combined"]["per_transform"]
        if not per:
            continue
        wa, wan = worst(per, TARGET_ACT, "act")
        wv, wvn = worst(per, TARGET_ACT, "verified")
        wr, wrn = worst(per, TARGET_REPORT, "any")
        if view == "pairwise":
            tot = pairwise_totals(run)
            false_act, prec = tot["act"]["false"], tot["any"]["precision"]
        else:
            false_act, prec = run["combined"]["false_pairs"]["act"], run["combined"]["precision"]["any"]
        cols[f"dedupd {view}"] = {
            "act_recall_min": (wa, wan), "verified_recall_min": (wv, wvn),
            "act_below": [n for n in TARGET_ACT if n in per and per[n]["act"] / per[n]["n"] < 0.99],
            "false_act": false_act + nat["distinct_act_violations"] + nat["unrelated_act"],
            "false_act_detail": f"{false_act} copies + {nat['distinct_act_violations']} natural distinct + {nat['unrelated_act']} unrelated",
            "report_recall_min": (wr, wrn),
            "report_below": [n for n in TARGET_REPORT if n in per and per[n]["any"] / per[n]["n"] < 0.90],
            "precision": prec}
    for key, thr, label in methods():
        if key == "lbph" and thr == REPORT:
            continue
        m = hc["methods"][label]
        per = {t: {"n": m["n"][t], "hit": m["per_transform"][t]} for t in m["n"]}
        # lbph <= act answers the act question, lbph+rot <= report the report one
        wa, wan = worst(per, TARGET_ACT, "hit")
        rep = hc["methods"][f"lbph+rot<={REPORT}"] if key == "lbph" else m
        rper = {t: {"n": rep["n"][t], "hit": rep["per_transform"][t]} for t in rep["n"]}
        wr, wrn = worst(rper, TARGET_REPORT, "hit")
        n_fp = nh["methods"][label]
        name = f"lbph<={ACT} (+rot<={REPORT})" if key == "lbph" else label
        if key == "lbph_rot":
            continue
        cols[name] = {"act_recall_min": (wa, wan), "verified_recall_min": (None, None),
                      "act_below": [n for n in TARGET_ACT if per[n]["hit"] / per[n]["n"] < 0.99],
                      "false_act": m["false_pairs"] + n_fp["distinct_shot"] + n_fp["unrelated"],
                      "false_act_detail": f"{m['false_pairs']} copies + {n_fp['distinct_shot']} natural distinct + {n_fp['unrelated']} unrelated",
                      "report_recall_min": (wr, wrn),
                      "report_below": [n for n in TARGET_REPORT if rper[n]["hit"] / rper[n]["n"] < 0.90],
                      "precision": m["precision"]}
    for name, c in cols.items():
        rows.append({"method": name, **c,
                     "holds": {"act_recall": c["act_recall_min"][0] is not None and c["act_recall_min"][0] >= 0.99,
                               "no_false_act": c["false_act"] == 0,
                               "report_recall": c["report_recall_min"][0] is not None and c["report_recall_min"][0] >= 0.90,
                               "precision": c["precision"] is not None and c["precision"] >= 0.995}})
    return rows


def _f(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def print_results(res: dict, files_n: int) -> None:
    run, hc, ver = res["runs"][0], res["hashes"]["copies"], res["verify_copies"]
    sc = run["combined"]
    print(f"\n(a)+(c) transformed copies, COMBINED folder: {res['originals']} originals x {len(T.TRANSFORMS)} transforms, "
          f"{files_n} files; dedupctl scan {run['seconds']['combined']:.0f} s, thresholds act {ACT} / report {REPORT}")
    labels = list(hc["methods"])
    rows = []
    for t in T.TRANSFORMS:
        p = sc["per_transform"][t.name]
        rows.append([t.name, t.expect, pct(p["act"], p["n"]), pct(p["verified"], p["n"]), pct(p["any"], p["n"])]
                    + [pct(hc["methods"][lb]["per_transform"][t.name], hc["methods"][lb]["n"][t.name]) for lb in labels])
    print_table(["transform", "expect", "dedupd act", "dedupd verified", "dedupd any"] + labels, rows,
                title="recall per transform: copy grouped with its original (dedupd: act tier / verified against the keeper / "
                      "any tier) or its pair distance within the threshold (hash columns)")
    rows = [["dedupd act tier", sc["false_pairs"]["act"], sc["precision"]["act"], sc["in_group_pairs"]["act"]["precision"]],
            ["dedupd any tier", sc["false_pairs"]["any"], sc["precision"]["any"], sc["in_group_pairs"]["any"]["precision"]]]
    rows += [[lb, m["false_pairs"], m["precision"], ""] for lb, m in hc["methods"].items()]
    print_table(["method", "false pairs", "precision", "precision, every pair inside a group"], rows,
                title=f"false pairs (different originals) and precision; dedupd counts keeper -> member pairs, "
                      f"hashes count pairs among {hc['negative_pairs']:,} negative pairs")
    print(f"dedupd groups: {sc['groups']}; keepers by transform: {sc['keeper_transforms']}; member tiers: {sc['member_tiers']}")
    if sc["report_transforms_in_act"]:
        print(f"report-tier transforms whose copy reached the act tier with its original: {sc['report_transforms_in_act']}")
    for ex in sc["false_examples"]:
        print(f"  false pair: {ex}")
    print(f"nearest pair of different originals: LBPH upright {hc['nearest_negative']['lbph']}, "
          f"with variants {hc['nearest_negative']['lbph_rot']} bits")

    if run.get("pairwise"):
        per = pairwise_per(run)
        base = ["phash<=10", "dhash<=5", "pdq<=31"]
        rows = []
        for t in T.TRANSFORMS:
            p = per[t.name]
            rows.append([t.name, t.expect, pct(p["act"], p["n"]), pct(p["verified"], p["n"]), pct(p["any"], p["n"]),
                         pct(hc["methods"][f"lbph<={ACT}"]["per_transform"][t.name], p["n"]),
                         pct(hc["methods"][f"lbph+rot<={REPORT}"]["per_transform"][t.name], p["n"])]
                        + [pct(hc["methods"][b]["per_transform"][t.name], hc["methods"][b]["n"][t.name]) for b in base])
        print_table(["transform", "expect", "dedupd act", "dedupd verified", "dedupd any", f"lbph<={ACT}", f"lbph+rot<={REPORT}"] + base,
                    rows, title=f"PAIRWISE: one folder per transform (the {res['originals']} originals + that transform's copies), "
                                f"one scan each ({run['seconds']['pairwise']:.0f} s in all); same columns")
        rows = []
        for t in T.TRANSFORMS:
            p, v = per[t.name], ver[t.name]
            rows.append([t.name, t.expect, pct(p["copy_keeper"], p["n"]),
                         ", ".join(f"{k} {n}" for k, n in p["not_act"].items()) or "-",
                         pct(v["either"], v["n"]), v["either"] - v["both"], pct(v["either_act"], v["n"]),
                         f"{v['block_residual'].get('median', '-')} / {v['block_residual'].get('p90', '-')} / {v['block_residual'].get('max', '-')}"])
        print_table(["transform", "expect", "copy is keeper", "pairwise: why not act (pairs)", "verify_pair passes",
                     "orders disagree", f"passes and lbph<={ACT}", "worst block med / p90 / max"], rows,
                    title="diagnostics: which copy the keep rules keep, why a grouped pair is not act (first failed condition of "
                          "tier_of), and verify_pair run directly on every (original, copy) pair in both argument orders")
        tot = pairwise_totals(run)
        print(f"pairwise false pairs (keeper -> member of different originals, all folders): act {tot['act']['false']}, "
              f"any {tot['any']['false']}; precision act {tot['act']['precision']}, any {tot['any']['precision']}")
        for name, s in run["pairwise"].items():
            for ex in s["false_examples"]:
                print(f"  pairwise false pair ({name}): {ex}")
            if s["report_transforms_in_act"]:
                print(f"  pairwise report-tier transform in act ({name}): {s['report_transforms_in_act']}")

    nat, nh = run["natural"], res["hashes"]["natural"]
    print(f"\n(b) corpus/natural: {nh['pairs']['copy']} copy pairs, {nh['pairs']['distinct_shot']} distinct-shot pairs, "
          f"{nh['pairs']['unrelated']} unrelated pairs")
    rows = [["dedupd act tier", pct(nat["copy_act"], nat["copy_pairs"]), nat["distinct_act_violations"], nat["unrelated_act"]],
            ["dedupd any tier", pct(nat["copy_any"], nat["copy_pairs"]), nat["distinct_report"], nat["unrelated_any"]]]
    rows += [[lb, pct(m["copy"], nh["pairs"]["copy"]), m["distinct_shot"], m["unrelated"]] for lb, m in nh["methods"].items()]
    print_table(["method", "copy recall", "distinct-shot pairs", "unrelated pairs"], rows,
                title="natural look-alikes (dedupd act row: distinct-shot pairs = violations; any row: distinct-shot pairs in report)")
    for v in nat["violations"]:
        print(f"  VIOLATION distinct shots in act: {v}")
    if res["natural_distinct"]:
        keys = list(res["natural_distinct"][0]["tiers"])
        rows = [[d["group"], d["a"][-38:], d["b"][-38:], d["lbph"], d["lbph_rot"],
                 "-" if d["verify"] is None else f"{'SAME' if d['verify']['same'] else 'differ'} ({d['verify']['reason']}, "
                                                 f"block {d['verify']['block']}, mean {d['verify']['mean']}; "
                                                 f"b,a: {d['verify']['reason_b_a']})"]
                + [d["tiers"][k] or "-" for k in keys] for d in res["natural_distinct"]]
        print_table(["group", "a", "b", "lbph", "lbph+rot", "verify_pair"] + [f"dedupd {k}" for k in keys], rows,
                    title=f"natural distinct_shot pairs within LBPH {REPORT} (upright or a variant) or grouped by dedupd: "
                          "the verifier's verdict on the daemon's thumbnails and dedupd's tier per threshold pair")
    for v in nh["unrelated_within_report"]:
        print(f"  unrelated pair within LBPH {REPORT}: {v}")
    if nat["distinct_in_report_groups"]:
        print(f"  distinct-shot pairs in report, by group: {nat['distinct_in_report_groups']}")
    print(f"  copy pairs not grouped: {len(nat['copies_missed'])} (listed in the JSON)")

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

    rows = [[c["r"], f"{100 * c['real_within']:.1f}%" if c["real_within"] is not None else "-", c["real_max"],
             c["negatives_through_variant"], c["negatives_only_through_variant"]] for c in hc["rotated_curve"]]
    print_table(["r", f"{'/'.join(TURNED)} within r", "their max", "different originals within r through a variant",
                 f"... of which upright > {REPORT}"], rows,
                title="rotated radius: best of the 7 rotated/mirrored variants (what thresholds.rotated keeps and removes)")
    rows = [[t, b["n"], b["median"], b["p95"], b["larger"], b["within_5"], b["within_10"], b["within_20"]]
            for t, b in hc.get("bpp_ratios", {}).items()]
    print_table(["transform", "same-size copies", "bpp copy/original median", "p95", "copy larger",
                 "... by <= 5 %", "<= 10 %", "<= 20 %"], rows,
                title="bytes per pixel, copy / original, over copies with the original's size and losslessness "
                      "(keep.BPP_TIE: a larger copy within the tolerance ties, the next rule decides)")

    ql = hc.get("quality_ladder") or {}
    if ql:
        print_table(["qualities", "JPEG originals", "size ratio median", "p90", "within 10 %"],
                    [[k, v["n"], v["median"], v["p90"], f"{100 * v['within_10']:.0f}%"] for k, v in ql.items()],
                    title="a real JPEG quality step: each JPEG original re-encoded at two qualities (OpenCV), size ratio")
    kt = hc.get("keep_ties") or {}
    if kt:
        rows = [[t, v["n"]] + [v[f"{x:.2f}"] for x in TIES] for t, v in kt.items()]
        print_table(["transform", "pairs"] + [f"copy kept, tie {100 * x:.0f} %" for x in TIES], rows,
                    title="keep rules (schema default order) on each (original, copy) pair, bytes per pixel within the "
                          "tolerance counted as a tie (keep.best_copy; the product uses keep.BPP_TIE)")

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
        current = str(res["min_side"])
        print_table(["MIN_SIDE", "act transforms: median", "p90", "max", f"within {ACT}", "nearest different originals"],
                    [[k + (" (current)" if k == current else ""), v["act_median"], v["act_p90"], v["act_max"],
                      f"{100 * v['act_within_act']:.1f}%", v["nearest_negative"]] for k, v in wi.items()],
                    title="(e) decode.MIN_SIDE what-if: LBPH original -> copy distance over the 12 act transforms")

    if len(res["runs"]) > 1:
        print_sweep(res["runs"])

    rows = []
    for r in res["targets"]:
        h = r["holds"]
        rows.append([r["method"],
                     f"{_f(r['act_recall_min'][0])} ({r['act_recall_min'][1]}) {'ok' if h['act_recall'] else 'FAIL'}",
                     f"{r['false_act']} {'ok' if h['no_false_act'] else 'FAIL'}",
                     f"{_f(r['report_recall_min'][0])} ({r['report_recall_min'][1]}) {'ok' if h['report_recall'] else 'FAIL'}",
                     f"{r['precision']} {'ok' if h['precision'] else 'FAIL'}"])
    print_table(["method", "act recall >= 0.99 (worst act transform)", "false act pairs = 0",
                 "report recall >= 0.90 (worst listed transform)", "pair precision >= 0.995"], rows,
                title=f"(g) targets at act {ACT} / report {REPORT} (hash columns: one threshold for both questions; "
                      "false act pairs = copies of different originals + natural distinct_shot + natural unrelated)")
    for r in res["targets"]:
        print(f"  {r['method']}: act < 0.99: {r['act_below']}; report < 0.90: {r['report_below']}; false act: {r['false_act_detail']}")


def print_sweep(runs: list[dict]) -> None:
    keys = [f"{r['act']}/{r['report']}" for r in runs]
    order = sorted(range(len(runs)), key=lambda i: (runs[i]["act"], runs[i]["report"]))
    rows = []
    for t in T.TRANSFORMS:
        cells = []
        for i in order:
            p = pairwise_per(runs[i]).get(t.name) or runs[i]["combined"]["per_transform"][t.name]
            cells.append(f"{pct(p['act'], p['n'])} / {pct(p['any'], p['n'])}")
        rows.append([t.name, t.expect] + cells)
    print_table(["transform", "expect"] + [keys[i] for i in order], rows,
                title="(f) threshold sweep, act / report: dedupd act-tier / any-tier recall per transform "
                      "(pairwise folders; combined when --no-pairwise)")
    rows = []
    for i in order:
        r = runs[i]
        per = pairwise_per(r) or r["combined"]["per_transform"]
        a, n = _pooled(per, TARGET_ACT, "act")
        v, _ = _pooled(per, TARGET_ACT, "verified")
        rp, rn = _pooled(per, TARGET_REPORT, "any")
        ca, cn = _pooled(r["combined"]["per_transform"], TARGET_ACT, "act")
        tot = pairwise_totals(r) if r.get("pairwise") else {k: {"false": r["combined"]["false_pairs"][k],
                                                                "precision": r["combined"]["precision"][k]} for k in ("act", "any")}
        nat = r["natural"]
        rows.append([keys[i], pct(a, n), pct(v, n), pct(ca, cn), pct(rp, rn), tot["act"]["false"] + r["combined"]["false_pairs"]["act"],
                     tot["any"]["false"], r["combined"]["false_pairs"]["any"], tot["any"]["precision"],
                     nat["distinct_act_violations"], nat["unrelated_act"], nat["distinct_report"], nat["unrelated_any"],
                     pct(nat["copy_any"], nat["copy_pairs"])])
    print_table(["act/report", "act recall (12 act tr.)", "verified", "combined act recall", "report recall (10 listed)",
                 "false act (pairwise + combined)", "false any pairwise", "false any combined", "precision any",
                 "natural distinct in act", "natural unrelated in act", "natural distinct in report",
                 "natural unrelated in report", "natural copies grouped"], rows,
                title="(f) threshold sweep: pooled over the pairwise folders unless noted")


def product_defaults() -> tuple[int, int, float, int | None]:
    """The act/report/rotated thresholds and min_quality a config without those keys gets (the schema
    defaults; rotated None for a product without that key)."""
    from dedupd.daemon.config import load_config
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.yaml")
        with open(path, "w") as f:
            f.write(f"state_dir: {json.dumps(d)}\nroots: [{{path: {json.dumps(d)}}}]\n")
        c = load_config(path)
    return int(c.act_threshold), int(c.report_threshold), float(c.min_quality), getattr(c, "rotated_threshold", None)


PRODUCT_SNAPSHOT: dict = {}  # set by use_product(): the commit whose code is measured


def _git(*a) -> str | None:
    r = subprocess.run(["git", "-C", str(common.REPO), *a], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def use_product(commit: str, workdir: str) -> None:
    """Measure the product code of `commit` rather than the working tree: daemon/, index/ and
    kernels/ at that commit are extracted (git archive) into workdir/product-<sha>/dedupd and put
    first on the import path of this process and of every dedupctl it starts. Other people's
    uncommitted edits in the checkout then cannot change a run half-way. Call before any dedupd import."""
    sha = _git("rev-parse", "--short", commit)
    if not sha:
        raise SystemExit(f"--product-commit {commit}: not a commit of {common.REPO}")
    root = os.path.join(os.path.abspath(workdir), f"product-{sha}")
    if not os.path.isdir(os.path.join(root, "dedupd")):
        os.makedirs(os.path.join(root, "dedupd"))
        archive = subprocess.run(["git", "-C", str(common.REPO), "archive", sha, "daemon", "index", "kernels"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", os.path.join(root, "dedupd")], input=archive, check=True)
    sys.path.insert(0, root)
    os.environ["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    PRODUCT_SNAPSHOT.update(commit=sha, path=root)


def product_revision() -> dict:
    """The commit the product code was measured at, and whether daemon/, index/ or kernels/ had local changes
    (never, for a --product-commit snapshot)."""
    if PRODUCT_SNAPSHOT:
        sha = PRODUCT_SNAPSHOT["commit"]
        return {"commit": sha, "snapshot": PRODUCT_SNAPSHOT["path"], "product_code_modified": False,
                "product_trees": {d: _git("rev-parse", "--short", f"{sha}:{d}") for d in ("daemon", "index", "kernels")}}
    return {"commit": _git("rev-parse", "--short", "HEAD"),
            "product_trees": {d: _git("rev-parse", "--short", f"HEAD:{d}") for d in ("daemon", "index", "kernels")},
            "product_code_modified": bool(_git("status", "--porcelain", "--", "daemon", "index", "kernels"))}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> int:
    global ACT, REPORT, ROTATED, CROPS
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--originals", type=int, default=None, help="photos sampled as originals (default 120; --quick 12)")
    p.add_argument("--all", action="store_true", help="use every photo in corpus/photos")
    p.add_argument("--workdir", default=None, help="keep the copies here (reused when present) instead of a temp dir")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--act", type=int, default=None, help="act threshold for the scan and the LBPH column (default: the product's)")
    p.add_argument("--report", type=int, default=None, help="report threshold (default: the product's)")
    p.add_argument("--rotated", type=int, default=None,
                   help="thresholds.rotated for the scans (default: the product's; capped at each scan's report radius)")
    p.add_argument("--crops", action="store_true", help="scan with match_crops: true (off by default in the product)")
    p.add_argument("--product-commit", default=None,
                   help="measure the product code of this commit (extracted into --workdir) instead of the working tree")
    p.add_argument("--no-pairwise", action="store_true", help="skip the per-transform folders (combined folder only)")
    p.add_argument("--sweep-act", type=_ints, default=[], help="also scan at these act thresholds, e.g. 8,10,12,16")
    p.add_argument("--sweep-report", type=_ints, default=[],
                   help="... crossed with these report thresholds, e.g. 20,24,28 (pairs with report < act are skipped)")
    p.add_argument("--no-whatif", action="store_true", help="skip (e), the MIN_SIDE what-if")
    p.add_argument("--no-scan", action="store_true", help="skip dedupctl (hash distances and decode scale only)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="skip originals above this many pixels (default: none; --quick 2,000,000)")
    args = p.parse_args(argv)
    corpus = common.check_corpus(args.corpus)
    started = time.perf_counter()
    if args.product_commit:
        if not args.workdir:
            raise SystemExit("--product-commit needs --workdir (the snapshot is extracted there)")
        use_product(args.product_commit, args.workdir)
    ROTATED = args.rotated
    CROPS = args.crops
    revision = product_revision()
    default_act, default_report, min_quality, default_rotated = product_defaults()
    ACT = default_act if args.act is None else args.act
    REPORT = default_report if args.report is None else args.report
    if REPORT < ACT:
        raise SystemExit(f"--report {REPORT} must be >= --act {ACT}")
    sweep = [(a, r) for a in (args.sweep_act or [ACT]) for r in (args.sweep_report or [REPORT])
             if r >= a and (a, r) != (ACT, REPORT)] if (args.sweep_act or args.sweep_report) else []
    rows = common.read_manifest(corpus)
    max_px = args.max_pixels or (2_000_000 if args.quick else None)
    pool = [r["abspath"] for r in rows if r["path"].startswith("photos/") and (not max_px or r["width"] * r["height"] <= max_px)]
    n_orig = None if args.all else (args.originals or (12 if args.quick else 120))
    originals = common.sample(pool, n_orig)

    from dedupd.daemon.decode import MIN_SIDE
    tmp = None
    workdir = args.workdir or (tmp := tempfile.mkdtemp(prefix="dedupd-bench-accuracy-"))
    seconds = {}
    try:
        note(f"making {len(T.TRANSFORMS)} copies of {len(originals)} originals in {workdir} ...")
        t0 = time.perf_counter()
        files = make_copies(originals, os.path.join(workdir, "copies"), args.workers)
        pairwise = None if args.no_pairwise or args.no_scan else make_pairwise(files, os.path.join(workdir, "pairwise"))
        seconds["make_copies"] = round(time.perf_counter() - t0, 1)
        truth = natural_truth(corpus)
        note(f"  {len(files)} files in {seconds['make_copies']:.0f} s; hashing every file with LBPH, imagehash pHash/dHash and PDQ ...")
        t0 = time.perf_counter()
        h = hash_files([f["path"] for f in files], args.workers)
        hn = hash_files([r["abspath"] for r in truth], args.workers)
        dist, dist_n = distances(h), distances(hn)
        hashes = {"copies": score_hashes_copies(files, dist), "natural": score_hashes_natural(truth, dist_n)}
        seconds["hash_baselines"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        ver = verify_copies(files, h, dist, ACT)
        hashes["copies"]["bpp_ratios"] = bpp_ratios(files, h["records"])
        hashes["copies"]["keep_ties"] = keep_tie_sweep(files, h["records"])
        hashes["copies"]["quality_ladder"] = quality_ladder(originals, args.workers)
        seconds["verify_direct"] = round(time.perf_counter() - t0, 1)
        runs = []
        if not args.no_scan:
            t0 = time.perf_counter()
            for act, report in [(ACT, REPORT)] + sweep:
                runs.append(run_dedupd(act, report, files, pairwise, corpus, truth, workdir, args.workers, h["records"], min_quality))
            seconds["scans"] = round(time.perf_counter() - t0, 1)
        else:
            empty = Grouping({"groups": []})
            runs.append({"act": ACT, "report": REPORT, "combined": score_copies(files, empty),
                         "natural": score_natural(natural_pairs(truth), empty), "natural_groups": {"groups": []},
                         "seconds": {"combined": 0.0}})
        nat_detail = natural_detail(truth, hn, dist_n, runs, REPORT)
        note("decode-scale consistency ...")
        t0 = time.perf_counter()
        ds = decode_scale(originals)
        whatif = {} if args.no_whatif else min_side_whatif(files, args.workers, sides=sorted({64, MIN_SIDE, 256}))
        seconds["decode_scale_whatif"] = round(time.perf_counter() - t0, 1)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    for r in runs:
        r.pop("natural_groups", None)
    seconds["total"] = round(time.perf_counter() - started, 1)
    revision_end = product_revision()
    changed = {k: revision[k] != revision_end[k] for k in ("product_trees", "product_code_modified")}
    if any(changed.values()):
        note(f"WARNING: the product changed during the run: {revision} -> {revision_end}")
    res = {"bench": "accuracy", "quick": args.quick, "originals": len(originals), "files": len(files), "match_crops": CROPS,
           "thresholds": {"act": ACT, "report": REPORT, "rotated": ROTATED if ROTATED is not None else default_rotated,
                          **BASELINES},
           "product_defaults": {"act": default_act, "report": default_report, "rotated": default_rotated,
                                "min_quality": min_quality},
           "min_side": MIN_SIDE, "pairwise": pairwise is not None, "revision": revision, "revision_end": revision_end,
           "transforms": {t.name: {"expect": t.expect, "what": t.what} for t in T.TRANSFORMS},
           "runs": runs, "hashes": hashes, "verify_copies": ver, "natural_distinct": nat_detail,
           "targets": targets(runs[0], hashes["copies"], hashes["natural"]) if not args.no_scan else [],
           "decode_scale": ds, "min_side_whatif": whatif, "seconds": seconds,
           "machine": common.machine(), "versions": common.versions("numpy", "numba", "cv2", "PIL", "imagehash", "pdqhash")}
    print_results(res, len(files))
    print(f"\nproduct at {revision['commit']}{' (daemon/index/kernels modified)' if revision['product_code_modified'] else ''}"
          + (f", product code CHANGED during the run (at the end: {revision_end['commit']})" if any(changed.values()) else ""))
    print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    common.emit_json(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
