"""A rescan of N unchanged files (stat only) with N records in the index.

N tiny files are created under a temp root (`--files`, default 100,000) and their records
written straight through the index API (bench/synth.py: codes, 5 % near-duplicates with
edges), so a scan finds every file unchanged and reads none. Then, in one process:

  first   `Scanner(config, index).run()`: a fresh scanner, as `dedupctl scan` runs it
          (its first regroup is a full one: every record and edge);
  again   the same scanner once more, as the daemon's periodic rescan runs (incremental
          regroup: nothing changed, nothing regrouped);
  named   the same scanner on 100 named files (a daemon round of settled files);
  gone    one file deleted, then the full rescan again: not every record was seen, so
          the sweep reads every record's path once (`Index.paths_under`).

Each is timed; then `again` runs once more under cProfile, with one more file deleted so that
the sweep's path pass shows too (the functions where the time goes).

Run:  /tmp/venv/bin/python bench/scan_scale.py [--files 100000] [--workdir DIR] [--quick]
"""

from __future__ import annotations

import cProfile
import os
import pstats
import shutil
import tempfile
import time

import common
import synth
from common import note, print_table


def _config(workdir: str, root: str):
    from dedupd.daemon.config import load_config

    path = os.path.join(workdir, "dedupd.yaml")
    with open(path, "w") as f:
        f.write(f"state_dir: {workdir}/state\nroots: [{{path: {root}}}]\nworkers: 2\n")
    return load_config(path)


def _profiled(fn) -> tuple[float, object, list]:
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    result = prof.runcall(fn)
    seconds = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][3])  # cumulative time
    rows = [(f"{os.path.basename(k[0])}:{k[2]}", round(v[3], 3)) for k, v in top
            if not k[2].startswith("<") and "cProfile" not in k[0]][:14]
    return seconds, result, rows


def main(argv=None) -> int:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--workdir", default=None, help="where the files and the index go (default: a temp dir, removed)")
    args = p.parse_args(argv)
    n = 5_000 if args.quick else args.files
    workdir = args.workdir or tempfile.mkdtemp(prefix="dedupd-scan-scale-")
    os.makedirs(workdir, exist_ok=True)
    root = os.path.join(workdir, "photos")
    from dedupd.daemon.scan import Scanner
    from dedupd.daemon.state import open_index

    config = _config(workdir, root)
    try:
        t0 = time.perf_counter()
        items = list(synth.make_files(root, n))
        note(f"{n} files made in {time.perf_counter() - t0:.1f} s")
        with open_index(config) as index:
            secs = synth.fill(index, iter(items), n)
            note(f"{n} records written in {secs:.1f} s ({n / secs:,.0f}/s)")
            scanner = Scanner(config, index, progress=False)
            results = {}
            for name, paths in (("first", None), ("again", None), ("named", [i[0] for i in items[:: max(1, n // 100)]]),
                                ("gone", None)):
                if name == "gone":
                    os.unlink(items[-1][0])
                cpu0 = time.process_time()  # this process's CPU seconds: what the wall time is on an idle machine
                seconds, report = common.timed(lambda: scanner.run(paths))
                results[name] = {"seconds": round(seconds, 3), "cpu_seconds": round(time.process_time() - cpu0, 3),
                                 "seen": report.seen, "unchanged": report.unchanged,
                                 "removed": report.removed, "groups": report.groups}
                note(f"{name}: {seconds:.2f} s, {report.seen} seen, {report.unchanged} unchanged")
            os.unlink(items[-2][0])
            results["again"]["profile"] = _profiled(lambda: scanner.run())[2]  # with one file gone: the sweep's pass shows
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nrescan of {n:,} unchanged files, {n:,} records (target: 100,000 files <= 20 s)")
    print_table(["run", "seconds", "CPU seconds", "files/s", "seen", "unchanged", "removed", "groups"],
                [[k, r["seconds"], r["cpu_seconds"], round(r["seen"] / r["seconds"]), r["seen"], r["unchanged"], r["removed"], r["groups"]]
                 for k, r in results.items()])
    print_table(["function", "cumulative s"], results["again"]["profile"],
                title="profile of `again` with one more file gone (cProfile, ~2x slower)")
    common.emit_json({"bench": "scan_scale", "files": n, "machine": common.machine(), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
