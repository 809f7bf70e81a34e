"""Hostile and broken input (issue 6, part 1): `dedupctl scan` and the real `dedupd`
daemon on a destructive (hardlink) root full of it.

For every hostile entry of `hostile.build`: the scan and the daemon finish, the file is
counted under a named kind (`decode_errors_by_kind`, the scan report's `errors` and
`skipped`), nothing hostile is acted on or changed, nothing crashes; the good photos
next to it are still indexed, grouped and, by the daemon, replaced. Decode memory:
`test_decode_memory_*` measure the peak RSS of a scan over decompression bombs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from dedupd.daemon.cli import main
from dedupd.daemon.config import load_config
from dedupd.daemon.scan import SKIP_KINDS_THAT_ARE_ERRORS
from dedupd.daemon.state import open_index
from badbytes import claim_size, gif_bytes, zlib_bomb_png
from hostile import build, build_locked, outcome, snapshot, unprivileged
from testimages import encode, photo, resize, write

IS_ROOT = os.geteuid() == 0
E2E = Path(__file__).resolve().parents[1] / "e2e" / "test_daemon_e2e.py"


def _e2e():
    """The e2e module's `Daemon` helper (a test module, so imported by path)."""
    spec = importlib.util.spec_from_file_location("dedupd_e2e_helpers", E2E)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def world():
    """A folder every user can traverse (pytest's tmp folders are 0700), so that a root
    run can scan as `NOBODY` and mode-000 entries really are unreadable."""
    base = Path(tempfile.mkdtemp(prefix="dedupd-hostile-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    for locked in base.glob("root/locked/**"):  # mode-000 folders back to 0755, or rmtree fails as non-root
        if locked.is_dir() and not locked.is_symlink():
            locked.chmod(0o755)
    shutil.rmtree(base, ignore_errors=True)


def write_config(base: Path, root: Path, mode: str = "hardlink", extra: str = "") -> str:
    (base / "state").mkdir(exist_ok=True)
    config = base / "dedupd.yaml"
    config.write_text(f"state_dir: '{base / 'state'}'\nroots: [{{path: '{root}', mode: {mode}}}]\nworkers: 2\n{extra}")
    return str(config)


def index_records(config: str) -> dict:
    with open_index(load_config(config), readonly=True) as index:
        return {r.path: r for r in index.iter_records()}


def warm_kernels() -> None:
    """Compile (or load) the numba kernels as the current user: NOBODY cannot write the cache."""
    from dedupd.daemon.decode import decode_image
    from dedupd.kernels import fingerprint

    fingerprint(decode_image(encode(photo("camera"), ".jpg")).gray)


def check_outcomes(tree, records: dict, reader_is_root: bool) -> Counter:
    """Every hostile entry ended as it may; returns the error kinds the index counts."""
    wrong = {e.name: (outcome(records, e), sorted(e.outcomes(reader_is_root))) for e in tree.entries
             if outcome(records, e) not in e.outcomes(reader_is_root)}
    assert not wrong, f"unexpected outcomes (got, allowed): {wrong}"
    return Counter(r.error for r in records.values() if r.state != "ok")


def check_good_groups(tree, groups: list[dict]) -> None:
    """The good duplicates are grouped with their originals; nothing hostile is in an
    exact or act tier (so nothing hostile could ever be acted on)."""
    members = {m["path"]: (g["keep"], m["tier"]) for g in groups for m in g["members"]}
    good = {k: str(p) for k, p in tree.good.items()}
    assert members[good["astro_q75"]] == (good["astro"], "act")
    assert members[good["astro_half"]] == (good["astro"], "act")
    assert members[good["coffee_exact"]] == (good["coffee"], "exact")
    hostile = tree.hostile_paths()
    acted = {p for p, (_, tier) in members.items() if tier in ("exact", "act")}
    keepers = {g["keep"] for g in groups if any(m["tier"] in ("exact", "act") for m in g["members"])}
    assert not (acted | keepers) & hostile


# -- dedupctl scan ----------------------------------------------------------------------


def test_scan_counts_every_hostile_file_and_still_groups_the_good_ones(world, capsys):
    tree = build(world / "root")
    config = write_config(world, tree.root)
    before = snapshot(tree.hostile_paths())
    code = main(["--config", config, "scan", "--json", "--no-progress"])
    captured = capsys.readouterr()
    assert captured.out.startswith("{"), (code, captured.err[-3000:])
    report = json.loads(captured.out)
    assert main(["--config", config, "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert main(["--config", config, "groups", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert code == 1  # partial: some files could not be read or decoded
    records = index_records(config)
    errors = check_outcomes(tree, records, IS_ROOT)
    skips = tree.expected_skips(IS_ROOT)
    walker_errors = Counter({k: n for k, n in skips.items() if k in SKIP_KINDS_THAT_ARE_ERRORS})
    assert report["errors"] == dict(errors + walker_errors)
    assert report["skipped"] == {k: n for k, n in skips.items() if k not in SKIP_KINDS_THAT_ARE_ERRORS}
    assert status["decode_errors_by_kind"] == dict(sorted(errors.items()))
    assert set(errors) <= {"unsupported_format", "corrupt", "truncated", "too_large", "empty", "unreadable"}
    assert report["fingerprinted"] == sum(1 for r in records.values() if r.state == "ok")
    check_good_groups(tree, groups)
    assert snapshot(tree.hostile_paths()) == before  # a scan changes no file


def test_unreadable_files_and_folders_are_counted(world):
    """Mode 000 locks only a user without CAP_DAC_OVERRIDE: a root run scans as NOBODY.
    The decode worker processes cannot be started as NOBODY where the interpreter lives
    under /root, so this scan decodes in its own threads (`ThreadDecoder`: the same
    read and decode code the workers run)."""
    from dedupd.daemon.decode_pool import ThreadDecoder
    from dedupd.daemon.scan import Scanner

    root = world / "root"
    tree = build_locked(root)
    config = load_config(write_config(world, root))
    warm_kernels()
    with unprivileged(world / "state"):
        with open_index(config) as index:
            scanner = Scanner(config, index, progress=False, decoder=ThreadDecoder(config.pixel_limit))
            report = scanner.run()
            scanner.close()
            records = {r.path: r for r in index.iter_records()}
    assert dict(report.errors) == {"unreadable": 1, "unreadable_dir": 1}
    check_outcomes(tree, records, reader_is_root=False)
    assert report.fingerprinted == 1  # the readable photo next to them


def test_device_nodes_are_passed_over(world, capsys):
    if not IS_ROOT:
        pytest.skip("os.mknod(S_IFCHR) needs root (CAP_MKNOD); the other special files are covered without it")
    root = world / "root"
    root.mkdir()
    for name, minor in (("null.jpg", 3), ("zero.png", 5)):  # reading /dev/zero would never end
        os.mknod(root / name, 0o644 | stat.S_IFCHR, os.makedev(1, minor))
    os.mknod(root / "loop.jpg", 0o644 | stat.S_IFBLK, os.makedev(7, 0))
    config = write_config(world, root)
    assert main(["--config", config, "scan", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == {"not_regular": 3} and report["seen"] == 0 and not report["errors"]


# -- the real daemon ------------------------------------------------------------------------


def test_daemon_acts_only_on_good_duplicates_and_stops_cleanly(world):
    tree = build(world / "root")
    hostile_before = snapshot(tree.hostile_paths())
    good_before = snapshot(str(p) for p in tree.good.values())
    d = _e2e().Daemon(world, [(tree.root, "hardlink")])
    try:
        d.start()  # asserts READY=1 arrives
        d.wait_for(lambda: d.status()["actions"].get("done_since_start", 0) >= len(tree.replaced) and d.idle(),
                   120, f"{len(tree.replaced)} replacements")
        arrivals, control = arrive_while_running(tree)
        d.wait_for(lambda: os.stat(control).st_ino == os.stat(tree.good["astro"]).st_ino, 60, "the live copy linked")
        d.wait_for(d.idle, 60, "idle after the arrivals")
        status = d.status()
        assert status["daemon"]["running"] and status["actions"]["done_since_start"] == len(tree.replaced) + 1
        assert status["decode_errors_by_kind"].get("empty", 0) >= 3  # two in the tree, one arrived
        assert d.stop() == 0, d.logtext()
    finally:
        d.close()
    quarantine = [os.path.join(d, n) for d, _, names in os.walk(tree.root / ".dedupd-quarantine") for n in names]
    quarantined = {v[4] for v in snapshot(quarantine).values()}
    for name in tree.replaced:  # the good duplicates became links to their originals; their bytes are kept
        keeper = tree.good["astro" if name.startswith("astro") else "coffee"]
        assert os.stat(tree.good[name]).st_ino == os.stat(keeper).st_ino
        assert good_before[str(tree.good[name])][4] in quarantined
    for name in ("astro", "coffee"):
        assert snapshot([str(tree.good[name])])[str(tree.good[name])][4] == good_before[str(tree.good[name])][4]
    assert snapshot(tree.hostile_paths()) == hostile_before  # nothing hostile was touched
    assert snapshot(arrivals) == arrivals
    journal = [json.loads(line) for line in (world / "state" / "journal.jsonl").read_text().splitlines()]
    targets = {e["target"]["path"] for e in journal} | {e["keeper"]["path"] for e in journal}
    assert targets == {str(tree.good[k]) for k in (*tree.replaced, "astro", "coffee")} | {str(control)}
    assert {e["state"] for e in journal if e["state"] not in ("intent", "quarantined", "staged", "swapped")} == {"done"}
    check_outcomes(tree, index_records(str(d.config)), IS_ROOT)
    leftovers = [n for _, dirs, files in os.walk(tree.root) for n in dirs + files if n.startswith(".dedupd-tmp-")]
    assert not leftovers  # os.walk, not rglob: it passes over the folders beyond PATH_MAX


def arrive_while_running(tree) -> tuple[dict, Path]:
    """Hostile files appearing under the running daemon (watch -> settle -> scan), and one
    good copy as the control that the daemon must still act on. Returns their snapshot."""
    live = tree.root / "incoming"
    live.mkdir()
    jpeg = encode(photo("astronaut"), ".jpg", 85)
    write(live / "cut.jpg", jpeg[: len(jpeg) // 2])
    write(live / "empty.jpg", b"")
    write(live / "notes.png", b"not a picture\n")
    os.mkfifo(live / "pipe.jpg")
    os.symlink("loop2.jpg", live / "loop1.jpg")
    os.symlink("loop1.jpg", live / "loop2.jpg")
    (live / "two\nlines.jpg").write_bytes(jpeg[:100])
    paths = [os.path.join(live, n) for n in os.listdir(live)]
    control = write(live / "astronaut_copy.jpg", jpeg)
    return snapshot(paths), control


# -- decode memory ----------------------------------------------------------------------------

# A fresh process scans one ordinary photo first (imports, numba kernels, LMDB, the decode
# workers: their peak must not hide the bomb's), resets its peak-RSS mark (Linux
# /proc/self/clear_refs), scans the bombs, then stops its decode workers so that getrusage
# reports their peak too (RUSAGE_CHILDREN counts reaped children only).
_MEASURE = """
import json, resource, sys, time
from dedupd.daemon.cli import main
from dedupd.daemon.config import load_config
from dedupd.daemon.decode_pool import shared_decoder
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
main(["--config", sys.argv[1], "scan", "--no-progress"])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base, t = status("VmRSS"), time.monotonic()
code = main(["--config", sys.argv[2], "scan", "--json", "--no-progress"])
seconds, growth = time.monotonic() - t, status("VmHWM") - base
config = load_config(sys.argv[2])
pool = shared_decoder(config.worker_count, config.pixel_limit, start=False)
if pool is not None:
    pool.close()
print("RUSAGE", json.dumps({"code": code, "seconds": seconds, "growth_kib": growth,
      "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
      "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""
BOMB_LIMIT = 25_000_000  # pixel_limit for the memory tests: a 25 MP bomb decodes in ~0.5 s
HEADER_BOMB_MIB = 16  # growth allowed while bombs are refused from their headers
DECODE_BOUND_MIB = 16  # growth of the scanning process allowed while a worker decodes a bomb


def measure_scan(base: Path, files: dict[str, bytes], pixel_limit: int = BOMB_LIMIT) -> dict:
    """How much a warm `dedupctl scan` process grows (peak RSS) scanning `files`, and the
    peak RSS of its decode workers."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("peak RSS is measured through Linux /proc/self/clear_refs")
    configs = []
    for name, tree in (("warm", {"photo.jpg": encode(photo("coffee"), ".jpg")}), ("bombs", files)):
        for file, data in tree.items():
            write(base / name / "root" / file, data)
        configs.append(write_config(base / name, base / name / "root", "report", f"pixel_limit: {pixel_limit}\n"))
    out = subprocess.run([sys.executable, "-c", _MEASURE, *configs], capture_output=True, text=True, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RUSAGE ")), None)
    assert line, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(line[len("RUSAGE "):])
    result["growth_mib"] = result["growth_kib"] / 1024
    result["workers_mib"] = result["children_kib"] / 1024
    result["report"] = json.loads(next(x for x in out.stdout.splitlines() if x.startswith("{")))
    return result


def test_decode_memory_bombs_refused_from_the_header(tmp_path):
    """Headers claiming 60000x60000 and a real 144-megapixel zlib bomb (140 KB) are
    refused before any decoder allocates: the scan's peak RSS does not move."""
    small = resize(photo("rocket"), 0.1)
    files = {f"claims{e}": claim_size(gif_bytes(small) if f == "gif" else encode(small, e), f, 60000, 60000)
             for f, e in (("png", ".png"), ("jpeg", ".jpg"), ("gif", ".gif"), ("webp", ".webp"), ("tiff", ".tif"))}
    files["zlib_bomb.png"] = zlib_bomb_png(12000, 12000)
    run = measure_scan(tmp_path, files)
    assert run["report"]["errors"] == {"too_large": len(files)}
    assert run["growth_mib"] < HEADER_BOMB_MIB, f"peak RSS grew {run['growth_mib']:.0f} MiB refusing header bombs"


@pytest.fixture(scope="module")
def bomb_run(tmp_path_factory) -> dict:
    """A scan of a 24 KB PNG of 25 megapixels (at pixel_limit): it inflates to 75 MB of
    BGR pixels and more in the decoder (~140 MiB when dedupd decoded in its own threads;
    ~570 MiB for a 97 KB PNG at the default 100 MP limit)."""
    return measure_scan(tmp_path_factory.mktemp("bomb"), {"bomb.png": zlib_bomb_png(5000, 5000)})


def test_decode_memory_bomb_within_the_pixel_limit_is_decoded_in_a_worker(bomb_run):
    """Decoded in a worker process, under its memory cap (SAFETY.md rule 22)."""
    from dedupd.daemon.decode_worker import memory_for

    assert bomb_run["code"] == 0 and bomb_run["report"]["fingerprinted"] == 1  # a black picture, but a picture
    assert 75 < bomb_run["workers_mib"] < memory_for(BOMB_LIMIT) / 2**20 + 512  # decoded there, under its cap


def test_decode_memory_bomb_leaves_the_scanning_process_at_its_baseline(bomb_run):
    """What the scanning process needs of a decoded file is small, and it is all the
    worker sends back (`decode_job.DecodedFile`): the exact 64x64 area sums the LBPH
    kernels read and the verification thumbnail (<= 256 px). A bomb does not grow it."""
    assert bomb_run["growth_mib"] < DECODE_BOUND_MIB, f"the scanning process grew {bomb_run['growth_mib']:.0f} MiB"
