"""Faults beyond the daemon issue (issue 6, part 5): the LMDB map fills up, the state
directory's disk fills up, a root is unmounted and mounted again. Each ends with no
byte lost and the index equal to a fresh reindex. (The kill loop is
`test_kill_loop.py`.)

The map-full test runs the real scanner, executor and journal in-process with maps a
few hundred KiB large (the daemon opens its index with a 1 GiB map, so it would take
a very large tree to fill it for real), while another process reads the index. The
disk-full and unmount tests need root (a small tmpfs, a bind mount) and skip without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliability_kit import ROOT_ONLY, Daemon, index_diff, lost, photo_bytes, sha, temp_names

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon" / "actions"))
from actions_kit import mounted  # noqa: E402

from dedupd.daemon.actions import Executor, Journal  # noqa: E402
from dedupd.daemon.config.load import parse_config  # noqa: E402
from dedupd.daemon.decide import decide  # noqa: E402
from dedupd.daemon.scan import Scanner  # noqa: E402
from dedupd.daemon.state import index_path  # noqa: E402
from dedupd.index import LmdbIndex  # noqa: E402
from dedupd.index.journal_store import JournalStore  # noqa: E402
from dedupd.kernels import ALGORITHMS  # noqa: E402

root_only = pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY)


def photos(root: Path, n: int, first: int, copy_every: int = 10) -> dict[str, bytes]:
    """`n` photos; every `copy_every`-th is an exact copy of the one before it."""
    out = {}
    for i in range(n):
        seed = first + i - (1 if i % copy_every == copy_every - 1 else 0)
        p = root / f"set{first}" / f"img{i:04d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(photo_bytes(seed))
        os.utime(p, (1_600_000_000 + i, 1_600_000_000 + i))
        out[str(p)] = sha(p)
    return out


def linked(path: str) -> bool:
    return os.stat(path).st_nlink > 1


# -- LMDB map full ---------------------------------------------------------------------------

_READER = """
import sys, time
from dedupd.index import LmdbIndex
index = LmdbIndex.open(sys.argv[1], code_bits=int(sys.argv[2]), algo=sys.argv[3], algo_version=int(sys.argv[4]),
                       readonly=True)
while sys.stdin.readline().strip() != "stop":  # one read after every growth
    len(index)
print(len(index))  # after the last write
"""


def test_lmdb_map_full_grows_and_the_work_goes_on(tmp_path):
    """Index (32 KiB) and journal (64 KiB) maps fill up during a scan and a round of
    actions: both grow, every file is indexed and every copy replaced, and a reader in
    another process keeps reading through the growth."""
    root = tmp_path / "photos"
    expected = photos(root, 100, 1)
    config = parse_config(f"state_dir: '{tmp_path / 'state'}'\nroots:\n  - {{path: '{root}', mode: hardlink}}\n"
                          f"workers: 2\ndaemon: {{settle_seconds: 0}}\n")
    algo = ALGORITHMS[config.algorithm]
    os.makedirs(index_path(config))
    index = LmdbIndex.open(index_path(config), code_bits=algo.bits, algo=algo.name, algo_version=algo.version,
                           map_size=32 << 10)
    index.set_meta("edge_radius", config.report_threshold)
    reader = subprocess.Popen([sys.executable, "-c", _READER, index_path(config), str(algo.bits), algo.name,
                               str(algo.version)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    journal = Journal(JournalStore.open(tmp_path / "state/journal", map_size=64 << 10),
                      str(tmp_path / "state/journal.jsonl"))
    try:
        scanner = Scanner(config, index, progress=False)
        for _ in range(2):
            scanner.run()
            reader.stdin.write("go on\n")
            reader.stdin.flush()
        groups = scanner.regroup()
        plan = decide(groups, config, available=lambda p: True, already_replaced=lambda r: False,
                      now=time.time() + 3600).plan
        outcomes = [Executor(journal).execute(a).status for a in plan.actions]
        scanner.run()
        count = reader.communicate("stop\n", timeout=60)[0].split()[0]
        assert reader.returncode == 0 and int(count) == len(index) == len(expected)
        assert index.stats()["map_size"] >= 4 * (32 << 10)  # doubled at least twice
        assert outcomes and set(outcomes) == {"done"} and len(outcomes) >= len(expected) // 10
        assert journal.totals()["by_state"] == {"done": len(outcomes)}
    finally:
        journal.close()
        index.close()
        if reader.poll() is None:
            reader.kill()
    assert sum(linked(p) for p in expected) >= 2 * len(outcomes) - 1
    only_index, only_reindex = index_diff(config, tmp_path / "reindex")
    assert not only_index and not only_reindex
    assert lost([root], expected) == []


# -- the state directory's disk fills up ---------------------------------------------------------


def fill(folder: Path) -> Path:
    """A file that takes every free byte of `folder`'s filesystem."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096):  # megabytes, then the last partial one
            try:
                while os.write(fd, b"\0" * size) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@root_only
def test_state_directory_full_stops_acting_says_so_and_resumes(tmp_path):
    root = tmp_path / "photos"
    expected = photos(root, 60, 1)
    with mounted("tmpfs", tmp_path / "state", "size=48m") as state:
        if state is None:
            pytest.skip("cannot mount a tmpfs here")
        d = Daemon(tmp_path, [(root, "hardlink")], state_dir=Path(state))
        try:
            d.start()
            d.settled()
            filler = fill(Path(state))
            late = photos(root, 200, 1000)  # more than the free pages inside the index file can hold
            expected.update(late)
            d.wait_for(lambda: "full" in d.status()["daemon"].get("problem", ""), 60, "the status to say so")
            time.sleep(2)  # the copies are quiet now: a daemon that acted would act here
            assert d.proc.poll() is None
            assert not any(linked(p) for p in late)
            filler.unlink()
            d.wait_for(lambda: not d.status()["daemon"].get("problem"), 60, "the problem cleared")
            d.wait_for(lambda: sum(linked(p) for p in late) >= 2 * 19, 120, "the late copies replaced")
            d.settled()
            assert d.stop() == 0
        finally:
            d.close()
        only_index, only_reindex = index_diff(d.loaded(), tmp_path / "reindex")
    assert not only_index and not only_reindex, (only_index[:3], only_reindex[:3])
    assert lost([root], expected) == [] and temp_names(root) == []


# -- a root unmounted and mounted again ---------------------------------------------------------------


@root_only
def test_roots_unmounted_and_mounted_again(tmp_path):
    """Two shares, bind-mounted as roots, go away: their records stay and nothing is
    acted on; changes made meanwhile (new copies, a deletion) are found once they are
    back. One share is a filesystem of its own (st_dev changes when it goes), the other
    a folder of the same filesystem (st_dev never changes: only the root marker tells)."""
    shares = [tmp_path / "share-own-fs", tmp_path / "share-same-fs"]
    roots = [tmp_path / "photos-own-fs", tmp_path / "photos-same-fs"]
    with mounted("tmpfs", shares[0], "size=32m") as where:
        if where is None:
            pytest.skip("cannot mount a tmpfs here")
        expected = {}
        for i, (share, root) in enumerate(zip(shares, roots)):
            expected.update(photos(share, 40, 1 + 100 * i))
            root.mkdir()
            _bind(share, root)
        d = Daemon(tmp_path, [(roots[0], "hardlink"), (roots[1], "hardlink")])
        try:
            d.start()
            d.settled()
            indexed = d.status()["files_indexed"]
            for root in roots:
                subprocess.run(["umount", str(root)], check=True)
            d.request("rescan")
            assert [r["watch"] for r in d.status()["roots"]] == ["unavailable", "unavailable"]
            assert d.status()["files_indexed"] == indexed  # never "all deleted"
            late = {}
            for i, share in enumerate(shares):  # while they are away
                late.update(photos(share, 20, 500 + 100 * i))
                gone = sorted(p for p in expected if p.startswith(str(share)))[0]
                os.unlink(gone)
                del expected[gone]
            expected.update(late)
            time.sleep(2)
            assert not any(linked(p) for p in late)
            for share, root in zip(shares, roots):
                _bind(share, root)
            d.wait_for(lambda: sum(linked(p) for p in late) >= 2 * 4, 60, "the copies that arrived meanwhile replaced")
            d.settled()
            assert [r["watch"] for r in d.status()["roots"]] == ["inotify", "inotify"]
            assert d.stop() == 0
            only_index, only_reindex = index_diff(d.loaded(), tmp_path / "reindex")
            assert not only_index and not only_reindex, (only_index[:3], only_reindex[:3])
            assert lost(shares, expected) == []  # a share's tree and quarantine are its root's
        finally:
            d.close()
            for root in roots:
                subprocess.run(["umount", "-l", str(root)], capture_output=True)


def _bind(share: Path, root: Path) -> None:
    subprocess.run(["mount", "--bind", str(share), str(root)], check=True)
