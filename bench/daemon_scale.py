"""The daemon with a large index: start to READY=1, memory, and a new copy acted on.

An index of N synthetic records (`--n`, default 1,000,000; bench/synth.py: records, codes,
5 % near-duplicate edges, stored groups and census, written through the batched index API;
their paths lie outside every root, so no scan sweeps them) plus a root in hardlink mode with
three real corpus photos. The index is built once and kept under `--cache` (default
/tmp/dedupd-bench-cache; `--rebuild` makes it again); each run copies it into its own state
directory. The real `dedupd` runs with NOTIFY_SOCKET pointing at a socket of ours:

  ready      seconds from exec to READY=1 (target <= 5 s at 1M);
  memory     /proc/<pid>/smaps_rollup at READY and after the first round: Rss, Anonymous
             (the heap: ours) and file-backed (LMDB pages mapped from data.mdb, which the
             kernel can drop, and shared libraries), Rss without data.mdb, Pss (shared
             pages split among the processes mapping them: the decode workers map the same
             libraries), and the decode workers' Rss (target: daemon <= 300 MB);
  new copy   an exact copy written into the root; seconds until it is a hard link of its
             keeper, and that minus the settle time (target <= 2 s);
  idle       memory once more after SAVE_IDLE + STORE_WAIT seconds without changes: the
             daemon has stored the groups by then (`Service._save_groups_when_idle`).

Run:  /tmp/venv/bin/python bench/daemon_scale.py [--n 1000000] [--workdir DIR] [--cache DIR] [--rebuild] [--quick]
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import common
import synth
from common import note, print_table

SETTLE = 0.5
STORE_WAIT = 5.0  # seconds allowed for the idle store of the groups (1-2 s at 1M)
DEFAULT_CACHE = "/tmp/dedupd-bench-cache"
SYNTH_VERSION = 3  # bump when what `_build_index` writes changes: cached indexes are then rebuilt


def _build_index(config, n: int) -> dict:
    """Write the synthetic index into `config`'s state directory; returns the build's timings."""
    from dedupd.daemon.regroup import GroupCache
    from dedupd.daemon.grouping import Thresholds
    from dedupd.daemon.state import open_index
    from dedupd.daemon.status import CENSUS_KEY, Census, store_groups

    t0 = time.perf_counter()
    with open_index(config) as index:
        fill_s = synth.fill(index, synth.synthetic_items(n, "/srv/elsewhere"), n,
                            on_batch=lambda k: k % 100_000 == 0 and note(f"  {k:,} records ({k / (time.perf_counter() - t0):,.0f}/s)"))
        groups = GroupCache(index, config, Thresholds.from_config(config)).full()
        store_groups(index, groups)  # what Scanner.save_groups stores
        census = Census()
        for i in range(n):
            census.formats[synth.FORMATS[i % len(synth.FORMATS)]] += 1
        index.set_meta(CENSUS_KEY, census.to_json())
        size = index.stats()["file_bytes"]
    total = time.perf_counter() - t0
    return {"build_s": round(total, 1), "records_per_s": round(n / fill_s), "data_mdb_mb": size >> 20}


def _cached_index(config, n: int, cache: str, rebuild: bool) -> dict:
    """Copy a synthetic index of `n` records into `config`'s state directory, building it in
    `cache` first unless a build for the same settings is there (keyed by everything it depends on)."""
    from dedupd.daemon.state import index_path
    from dedupd.index.base import SCHEMA_VERSION
    from dedupd.kernels import ALGORITHMS

    algo = ALGORITHMS[config.algorithm]
    key = f"n{n}-schema{SCHEMA_VERSION}-{algo.name}{algo.version}-r{config.report_threshold}-a{config.act_threshold}-s{SYNTH_VERSION}"
    home = os.path.join(cache, key)
    info_path = os.path.join(home, "build.json")
    if rebuild or not os.path.exists(info_path):
        shutil.rmtree(home, ignore_errors=True)
        building = home + f".building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        info = _build_index(dataclasses.replace(config, state_dir=building), n)
        with open(os.path.join(building, "build.json"), "w") as f:
            json.dump(info, f)
        os.rename(building, home)  # a build cut short never looks finished
        info["cached"] = False
    else:
        with open(info_path) as f:
            info = dict(json.load(f), cached=True)
    target = index_path(config)
    os.makedirs(target, exist_ok=True)
    t0 = time.perf_counter()
    shutil.copyfile(os.path.join(index_path(dataclasses.replace(config, state_dir=home)), "data.mdb"),
                    os.path.join(target, "data.mdb"))
    info["copy_s"] = round(time.perf_counter() - t0, 1)
    info["cache"] = home
    return info


def _memory(pid: int) -> dict:
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1]) // 1024
    lmdb_kb, current = 0, ""
    with open(f"/proc/{pid}/smaps") as f:  # the pages of data.mdb mapped into the daemon
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:
                current = head[-1] if len(head) >= 6 else ""
            elif head and head[0] == "Rss:" and current.endswith("data.mdb"):
                lmdb_kb += int(head[1])
    workers = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            workers += [int(c) for c in f.read().split()]
    worker_rss = []
    for w in workers:
        try:
            with open(f"/proc/{w}/status") as f:
                worker_rss.append(next(int(x.split()[1]) // 1024 for x in f if x.startswith("VmRSS")))
        except OSError:
            pass
    return {"rss_mb": fields.get("Rss", 0), "anonymous_mb": fields.get("Anonymous", 0),
            "file_backed_mb": fields.get("Rss", 0) - fields.get("Anonymous", 0), "lmdb_mb": lmdb_kb // 1024,
            "rss_without_lmdb_mb": fields.get("Rss", 0) - lmdb_kb // 1024, "pss_mb": fields.get("Pss", 0),
            "workers_rss_mb": worker_rss}


def _wait_notify(sock: socket.socket, what: bytes, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096)
        except socket.timeout:
            break
        if what in msg:
            return time.monotonic()
    raise TimeoutError(f"no {what!r} within {timeout} s")


def run(workdir: str, n: int, corpus, cache: str, rebuild: bool) -> dict:
    from dedupd.daemon.config import load_config
    from dedupd.daemon.service import SAVE_IDLE

    root = os.path.join(workdir, "photos")
    os.makedirs(root)
    photos = sorted(p for p in common.list_images(corpus / "photos") if p.endswith(".jpg"))[:3]
    for p in photos:
        shutil.copy2(p, root)
    cfg = os.path.join(workdir, "dedupd.yaml")
    with open(cfg, "w") as f:
        f.write(f"state_dir: {workdir}/state\nroots: [{{path: {root}, mode: hardlink}}]\nworkers: 2\n"
                f"daemon: {{settle_seconds: {SETTLE}, rescan_minutes: 0}}\n")
    config = load_config(cfg)
    note(f"an index of {n:,} records (cache {cache}) ...")
    out = {"n": n, "index": _cached_index(config, n, cache, rebuild)}
    note(f"index ready: {out['index']}")
    notify_path = os.path.join(workdir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "dedupd.daemon.service", "--config", cfg], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "daemon.log"), "w"))
    try:
        out["ready_s"] = round(_wait_notify(sock, b"READY=1", 120) - t0, 2)
        out["memory_at_ready"] = _memory(proc.pid)
        note(f"READY after {out['ready_s']} s; waiting for the first round ...")
        t1 = time.monotonic()
        _wait_notify(sock, b"groups (exact", 1800)
        out["first_round_s"] = round(time.monotonic() - t1, 1)
        out["memory_after_first_round"] = _memory(proc.pid)
        keeper = os.path.join(root, os.path.basename(photos[0]))
        copy = os.path.join(root, "new_copy.jpg")
        t2 = time.monotonic()
        shutil.copy2(keeper, copy)
        while os.stat(copy).st_ino != os.stat(keeper).st_ino:
            if time.monotonic() - t2 > 120:
                raise TimeoutError("the copy was not linked within 120 s")
            time.sleep(0.02)
        out["new_copy_linked_s"] = round(time.monotonic() - t2, 2)
        out["settle_s"] = SETTLE
        out["memory_after_new_copy"] = _memory(proc.pid)
        # the daemon stores the groups once it has been idle for SAVE_IDLE seconds (O(groups):
        # its transient memory shows here, not in the rows above)
        time.sleep(SAVE_IDLE + STORE_WAIT)
        out["memory_after_groups_stored"] = _memory(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        sock.close()
    return out


def main(argv=None) -> int:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--workdir", default=None)
    p.add_argument("--cache", default=DEFAULT_CACHE, help=f"where built indexes are kept between runs (default {DEFAULT_CACHE})")
    p.add_argument("--rebuild", action="store_true", help="build the index again even if the cache has it")
    args = p.parse_args(argv)
    corpus = common.check_corpus(args.corpus)
    n = 20_000 if args.quick else args.n
    workdir = args.workdir or tempfile.mkdtemp(prefix="dedupd-daemon-scale-")
    os.makedirs(workdir, exist_ok=True)
    try:
        r = run(workdir, n, corpus, args.cache, args.rebuild)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nthe daemon with {n:,} indexed files (settle_seconds {SETTLE})")
    print_table(["measure", "value", "target"], [
        ["index build (synthetic, s)" + (" (cached)" if r["index"]["cached"] else ""), r["index"]["build_s"], ""],
        ["index build rate (records/s)", r["index"]["records_per_s"], ">= 20,000"],
        ["data.mdb (MB)", r["index"]["data_mdb_mb"], ""],
        ["exec -> READY=1 (s)", r["ready_s"], "<= 5"],
        ["first round after READY (s)", r["first_round_s"], ""],
        [f"new exact copy -> hard link, settle_seconds {SETTLE} included (s)", r["new_copy_linked_s"], "<= 2 + settle"],
    ])
    print_table(["when", "Rss MB", "Anonymous MB", "file-backed MB", "of which LMDB data.mdb MB", "Rss without data.mdb MB",
                 "Pss MB", "decode workers Rss MB"],
                [[k, m["rss_mb"], m["anonymous_mb"], m["file_backed_mb"], m["lmdb_mb"], m["rss_without_lmdb_mb"], m["pss_mb"],
                  " + ".join(map(str, m["workers_rss_mb"]))]
                 for k, m in ((k, r[k]) for k in ("memory_at_ready", "memory_after_first_round", "memory_after_new_copy",
                                                  "memory_after_groups_stored"))],
                title="memory (/proc/<pid>/smaps_rollup; target: daemon <= 300 MB)")
    common.emit_json({"bench": "daemon_scale", "machine": common.machine(), "results": r})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
