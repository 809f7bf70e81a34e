"""Shared helpers for the benchmarks: corpus listing, timing, medians, tables, the JSON line.

Every benchmark prints a human table and exactly one JSON line (a line starting with `{`),
takes `--corpus PATH` (default `<repo>/../shared/corpus`) and `--quick` for a smoke run.
The machine is shared and noisy: compare things side by side in one run, interleaved
(`interleaved`), repeated, and report medians.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")


# -- arguments and environment ---------------------------------------------------------------

def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                   help=f"the shared corpus folder (default: {DEFAULT_CORPUS})")
    p.add_argument("--quick", action="store_true", help="short smoke run (< 60 s)")
    return p


def check_corpus(corpus: Path) -> Path:
    corpus = corpus.resolve()
    if not (corpus / "photos").is_dir():
        sys.exit(f"corpus not found at {corpus} (expected a photos/ folder); pass --corpus PATH")
    return corpus


def machine() -> dict:
    """What the numbers were measured on."""
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (0.0, 0.0, 0.0)
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "loadavg": [round(x, 2) for x in load],
    }


def versions(*modules: str) -> dict:
    out = {}
    for name in modules:
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except ImportError:
            out[name] = None
    return out


# -- corpus ------------------------------------------------------------------------------------

def read_manifest(corpus: Path) -> list[dict]:
    """Rows of corpus/manifest.csv with int width/height/bytes and an absolute `abspath`."""
    rows = []
    with open(corpus / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            row["width"], row["height"], row["bytes"] = int(row["width"]), int(row["height"]), int(row["bytes"])
            row["abspath"] = str(corpus / row["path"])
            rows.append(row)
    return rows


def list_images(folder: Path) -> list[str]:
    """Every image file under `folder`, sorted, as absolute path strings."""
    out = []
    for dirpath, _, names in os.walk(folder):
        out.extend(os.path.join(dirpath, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(out)


def sample(items: Sequence, k: int | None, seed: int = 20240601) -> list:
    """A deterministic sample of k items (all, sorted, when k is None or >= len)."""
    items = sorted(items)
    if k is None or k >= len(items):
        return items
    return sorted(random.Random(seed).sample(items, k))


def warm_page_cache(paths: Iterable[str]) -> int:
    """Read every file once; returns the bytes read."""
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 24):
                total += len(chunk)
    return total


# -- timing ------------------------------------------------------------------------------------

def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def interleaved(cases: dict[str, Callable[[], object]], repeats: int,
                on_round: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, list[float]]:
    """Run every case once per round, `repeats` rounds, rotating the order each round.

    Returns seconds per case per round. Rotating the order spreads slow phases of a noisy
    machine (another job, thermal, page cache) evenly over the cases.
    """
    names = list(cases)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        this_round = {}
        for name in names[k:] + names[:k]:
            this_round[name], _ = timed(cases[name])
            out[name].append(this_round[name])
        if on_round:
            on_round(r, this_round)
    return out


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if len(xs) else float("nan")


def percentile(xs: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation, like numpy's default."""
    if not len(xs):
        return float("nan")
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


# -- output ------------------------------------------------------------------------------------

def fmt(x: object, digits: int = 3) -> str:
    if isinstance(x, float):
        if x != x:
            return "-"
        if x == 0:
            return "0"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 100:
            return f"{x:.1f}"
        return f"{x:.{digits}g}"
    if x is None:
        return "-"
    return str(x)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> str:
    """A plain-text table (markdown-compatible pipes), numbers right-aligned."""
    cells = [[fmt(c) for c in row] for row in rows]
    raw_rows = cells
    widths = [max([len(h)] + [len(r[i]) for r in raw_rows]) for i, h in enumerate(headers)]
    numeric = [all(_looks_numeric(r[i]) for r in raw_rows) and raw_rows for i in range(len(headers))]

    def line(vals):
        return "| " + " | ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                                 for i, (v, w) in enumerate(zip(vals, widths))) + " |"

    out = []
    if title:
        out.append(f"\n{title}")
    out.append(line(list(headers)))
    out.append("|" + "|".join(("-" * (w + 1) + ":") if numeric[i] else ("-" * (w + 2))
                              for i, w in enumerate(widths)) + "|")
    out.extend(line(r) for r in raw_rows)
    return "\n".join(out)


def _looks_numeric(s: str) -> bool:
    s = s.replace(",", "").replace("%", "").replace("x", "").strip()
    if s in ("-", ""):
        return True
    try:
        float(s)
        return True
    except ValueError:
        return False


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> None:
    print(table(headers, rows, title), flush=True)


def note(msg: str) -> None:
    """Progress and remarks go to stderr so stdout stays tables + one JSON line."""
    print(msg, file=sys.stderr, flush=True)


def emit_json(obj: dict) -> None:
    """The one machine-readable line of a benchmark run."""
    print(json.dumps(obj, separators=(",", ":"), sort_keys=True, default=_json_default), flush=True)


def _json_default(o):
    try:
        import numpy as np
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def rounded(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if x == x else x
