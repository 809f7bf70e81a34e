"""Soak: the real `dedupd` under 30 minutes of churn; no leak, no lost byte, a true index.

Two roots, one in `hardlink` mode and one in `stub` mode, start with a small library
of real-photo crops. For `--minutes`, a churner (`tests/reliability/churn.py`)
creates photos, lets exact and re-encoded duplicates arrive, saves new versions,
renames and deletes files and folders, at `--rate` operations per second, keeping
the tree near `--files` files. Every `--sample` seconds the daemon's resident memory,
open descriptors and threads are read from /proc, with its status.

At the end the churn stops, the daemon settles and gets SIGTERM, and:
- growth: the last fifth of the samples against the second fifth (the first fifth
  is warm-up: caches, numba, the first groups): the median anonymous resident memory
  within +max(10 %, 16 MiB) (file-backed pages are LMDB's map and the libraries;
  they are reported, and follow the data), and the decode workers' total RSS alike,
  the medians of descriptors and threads at most +2 (both swing while a scan or an
  action runs, so a single sample says little; a leak moves the median);
- the index equals a fresh reindex of the same tree (`reliability_kit.index_diff`);
- bytes lost = 0: every content the churner's ledger expects is in a tree or in a
  quarantine; no dedupd temporary name is left; the churner never found a file of
  its own missing.

Not part of the CI run (it takes `--minutes`); a 2-minute smoke: `--minutes 2`.

Run:  /tmp/venv/bin/python bench/soak.py [--minutes 30] [--rate 5] [--files 400] [--seed 1]
Prints a table and one JSON line; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "reliability"))

import common  # noqa: E402
from churn import Churn  # noqa: E402
from reliability_kit import Daemon, index_diff, lost, temp_names  # noqa: E402

MIB = 1024


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=5.0, help="churn operations per second")
    p.add_argument("--files", type=int, default=400, help="the tree stays near this many files")
    p.add_argument("--sample", type=float, default=15.0, help="seconds between /proc samples")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the temp tree (its path is printed)")
    return p.parse_args(argv)


def run(args: argparse.Namespace, base: Path) -> dict:
    roots = [base / "hardlinked", base / "stubbed"]
    churn = Churn(roots, args.seed, target_files=args.files)
    for _ in range(args.files // 2):
        churn.step()
    d = Daemon(base, [(roots[0], "hardlink"), (roots[1], "stub")], settle=1.0, rescan_minutes=10)
    samples: list[dict] = []
    try:
        d.start()
        d.settled(timeout=600)
        churn_seconds = _churn(d, churn, args, samples)
        d.settled(timeout=600)
        final_status = d.status()
        assert d.stop() == 0, d.logtext()
        only_index, only_reindex = index_diff(d.loaded(), base / "reindex")
        return {
            "minutes": round(churn_seconds / 60, 2), "operations": dict(churn.counts),
            "files_at_end": len(churn.ledger), "files_indexed": final_status["files_indexed"],
            "actions": final_status["actions"], "samples": samples,
            "growth": growth(samples), "only_in_index": [str(r[0]) for r in only_index][:20],
            "only_in_reindex": [str(r[0]) for r in only_reindex][:20],
            "lost": lost(roots, churn.ledger), "temp_names": sum((temp_names(r) for r in roots), []),
            "anomalies": churn.anomalies[:20],
        }
    finally:
        d.close()


def _churn(d: Daemon, churn: Churn, args, samples: list[dict]) -> float:
    started = time.monotonic()
    end, next_sample = started + args.minutes * 60, started
    while (now := time.monotonic()) < end:
        if now >= next_sample:
            status = d.status()
            samples.append({"t": round(now - started, 1), **d.sample(), "indexed": status["files_indexed"],
                            "queue": status["daemon"]["queue_depth"],
                            "done": status["actions"].get("done_since_start", 0)})
            next_sample += args.sample
        churn.step()
        time.sleep(max(0.0, 1.0 / args.rate - (time.monotonic() - now)))
    return time.monotonic() - started


def growth(samples: list[dict]) -> dict:
    """Second fifth of the run against the last fifth (the first is warm-up)."""
    n = len(samples)
    if n < 10:
        return {"ok": True, "note": "too few samples to judge growth"}
    early, late = samples[n // 5: 2 * n // 5], samples[4 * n // 5:]
    out = {}
    for key in ("rss", "rss_anon", "rss_file", "children_rss"):
        for name, part in (("early", early), ("late", late)):
            out[f"{key}_mib_{name}"] = round(statistics.median(s[f"{key}_kb"] for s in part) / MIB, 1)
    out["rss_mib_max"] = round(max(s["rss_kb"] for s in samples) / MIB, 1)
    rss_early, rss_late = out["rss_anon_mib_early"] * MIB, out["rss_anon_mib_late"] * MIB
    steady = True
    for key in ("fds", "threads"):  # both swing while a scan or an action runs: judge the median
        for name, part in (("early", early), ("late", late)):
            out[f"{key}_{name}_median"] = statistics.median(s[key] for s in part)
            out[f"{key}_{name}_max"] = max(s[key] for s in part)
        steady = steady and out[f"{key}_late_median"] <= out[f"{key}_early_median"] + 2
    kids_early, kids_late = out["children_rss_mib_early"] * MIB, out["children_rss_mib_late"] * MIB
    out["ok"] = (steady and rss_late - rss_early <= max(0.10 * rss_early, 16 * MIB)
                 and kids_late - kids_early <= max(0.10 * kids_early, 16 * MIB))
    return out


def report(result: dict) -> bool:
    g = result["growth"]
    ok = (g["ok"] and not result["only_in_index"] and not result["only_in_reindex"] and not result["lost"]
          and not result["temp_names"] and not result["anomalies"])
    common.print_table(["check", "value"], [
        ("churn minutes", result["minutes"]),
        ("operations", sum(result["operations"].values())),
        ("files at end / indexed", f"{result['files_at_end']} / {result['files_indexed']}"),
        ("replaced (done since start)", result["actions"].get("done_since_start")),
        ("RSS MiB early -> late (max)", f"{g.get('rss_mib_early')} -> {g.get('rss_mib_late')} ({g.get('rss_mib_max')})"),
        ("  anonymous MiB early -> late", f"{g.get('rss_anon_mib_early')} -> {g.get('rss_anon_mib_late')}"),
        ("  file-backed MiB early -> late", f"{g.get('rss_file_mib_early')} -> {g.get('rss_file_mib_late')}"),
        ("worker processes' RSS MiB early -> late", f"{g.get('children_rss_mib_early')} -> {g.get('children_rss_mib_late')}"),
        ("fds median early -> late (max)",
         f"{g.get('fds_early_median')} -> {g.get('fds_late_median')} ({g.get('fds_late_max')})"),
        ("threads median early -> late (max)",
         f"{g.get('threads_early_median')} -> {g.get('threads_late_median')} ({g.get('threads_late_max')})"),
        ("index vs reindex", "equal" if not (result["only_in_index"] or result["only_in_reindex"]) else "DIFFERS"),
        ("bytes lost (paths)", len(result["lost"])),
        ("temp names left", len(result["temp_names"])),
        ("verdict", "PASS" if ok else "FAIL"),
    ], title="dedupd soak")
    common.emit_json({"bench": "soak", "ok": ok, "machine": common.machine(),
                      **{k: v for k, v in result.items() if k != "samples"},
                      "samples": result["samples"][:: max(1, len(result["samples"]) // 40)]})
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="dedupd-soak-"))
    try:
        ok = report(run(args, base))
    finally:
        if args.keep:
            print(f"tree kept at {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
