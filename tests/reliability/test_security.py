"""A NAS shared by several accounts (issue 6, part 3).

A user who can write to one root must not, through dedupd:
- gain read access to another user's photo (no hard link across owners or modes; no
  act-tier stub or reflink from another user's file, which would copy its bytes; a
  symlink grants nothing: the kernel checks the keeper's own permissions);
- make the daemon read, link, overwrite or delete anything outside the configured
  roots (symlinks inside a root, `..` and outside keepers in stub files, folders
  swapped for symlinks before or while the daemon acts, a planted quarantine);
- get a stub restored outside its root, or restored with another owner or set-id bits;
- reach the control socket unless its mode and group allow (and, reaching it, undo,
  purge or restore unless root or the daemon's user).

The daemon tests share one real `dedupd` (module fixture `nas`) on a tree holding
every arrangement at once; tests that need other uids (chown) or mounts skip when not
root. The rest drive the real executor, journal and restore in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reliability_kit import ROOT_ONLY, Daemon, index_rows, photo_bytes, sha

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon" / "actions"))
from actions_kit import make_pair, mounted  # noqa: E402

from dedupd.daemon.actions import Executor, Journal, RestoreRefused, UndoRefused, plan_replacement, purge  # noqa: E402
from dedupd.daemon.actions import restore_stub, undo  # noqa: E402
from dedupd.daemon.actions import stub as stubs  # noqa: E402
from dedupd.daemon.actions.plan import Action, Skip  # noqa: E402
from dedupd.daemon.control import ControlServer, ControlSocketError  # noqa: E402

ALICE, BOB, EVE = 12001, 12002, 12003  # EVE: in no group the socket allows
NOBODY, NOGROUP = 65534, 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY)


def put(path: Path, data: bytes, uid: int | None = None, mode: int = 0o644, mtime: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    if uid is not None and os.geteuid() == 0:
        os.chown(path, uid, uid)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def state(path: Path) -> tuple:
    """What must not change about a file outside the roots."""
    st = os.lstat(path)
    return sha(path), st.st_ino, st.st_nlink, st.st_mtime_ns, st.st_uid, st.st_mode


def states(folder: Path) -> dict:
    return {p: state(p) for p in folder.rglob("*") if p.is_file()}


def atimes(folder: Path) -> dict:
    """Access times (read before any `state`, which reads the bytes)."""
    return {p: os.lstat(p).st_atime_ns for p in folder.rglob("*") if p.is_file()}


# -- the shared daemon -------------------------------------------------------------------


@pytest.fixture(scope="module")
def nas(tmp_path_factory):
    base = tmp_path_factory.mktemp("nas")
    outside = base / "outside"
    with mounted("tmpfs", outside, "size=8m,strictatime") as where:  # strictatime: any read moves atime
        t = _tree(base, outside)
        before = states(outside)
        read_before = atimes(outside)  # after `states`, which read them
        d = Daemon(base, [(t["shared"], "hardlink"), (t["stubs"], "stub"), (t["links"], "symlink"),
                          (t["planted"], "hardlink")],
                   extra=", mode: '0660', group: nogroup" if os.geteuid() == 0 else "")
        os.chmod(d.short, 0o755)  # only the socket's own mode and group decide who reaches it
        try:
            d.start()
            d.wait_for(lambda: os.stat(t["same2"]).st_ino == os.stat(t["same1"]).st_ino
                       and Path(str(t["stub_ctl_copy"]) + ".dedup").exists(), 90, "the control pairs replaced")
            d.request("rescan", paths=[str(t["evildir"] / "sub")])  # a rescan through a symlinked folder
            d.settled()
            yield {"d": d, "t": t, "outside": outside, "before": before, "read_before": read_before,
                   "strictatime": where is not None}
        finally:
            d.close()


def _tree(base: Path, outside: Path) -> dict[str, Path]:
    shared, stubs_root, links, planted = (base / n for n in ("shared", "stubs", "links", "planted"))
    secret = photo_bytes(101)
    t = {"shared": shared, "stubs": stubs_root, "links": links, "planted": planted, "outside": outside,
         "secret_sha": hashlib.sha256(secret).digest()}
    t["alice_photo"] = put(shared / "alice/photo.jpg", photo_bytes(102), ALICE, 0o600, 1_500_000_000)
    t["bob_copy"] = put(shared / "bob/photo_copy.jpg", photo_bytes(102), BOB, 0o644, 1_600_000_000)
    t["mode_a"] = put(shared / "bob/mode_a.jpg", photo_bytes(103), BOB, 0o644, 1_500_000_000)
    t["mode_b"] = put(shared / "bob/mode_b.jpg", photo_bytes(103), BOB, 0o600, 1_600_000_000)
    t["same1"] = put(shared / "bob/same1.jpg", secret, BOB, 0o644, 1_500_000_000)
    t["same2"] = put(shared / "bob/same2.jpg", secret, BOB, 0o644, 1_600_000_000)
    # outside the roots: the same bytes, reachable only through symlinks a user made
    t["secret"] = put(outside / "secret.jpg", secret)
    t["inner"] = put(outside / "dir/sub/inner.jpg", secret)
    t["evil"] = shared / "bob/evil.jpg"
    t["evil"].symlink_to(t["secret"])
    t["evildir"] = shared / "bob/evildir"
    t["evildir"].symlink_to(outside / "dir")
    # alice's big original, bob's small re-encoded copy in a stub root; a same-owner pair as control
    t["alice_big"] = put(shared / "alice/big.jpg", photo_bytes(104, size=192), ALICE, 0o600, 1_500_000_000)
    t["bob_small"] = put(stubs_root / "bob/small.jpg", photo_bytes(104, ".jpg", 80, size=192, scale=0.5),
                         BOB, 0o644, 1_600_000_000)
    t["stub_ctl_keep"] = put(stubs_root / "bob/ctl.jpg", photo_bytes(105, size=192), BOB, 0o644, 1_500_000_000)
    t["stub_ctl_copy"] = put(stubs_root / "bob/ctl_copy.jpg", photo_bytes(105, ".jpg", 70, size=192, scale=0.5),
                             BOB, 0o644, 1_600_000_000)
    t["link_copy"] = put(links / "bob/photo_copy.jpg", photo_bytes(102), BOB, 0o644, 1_600_000_000)
    # a quarantine folder a user made in a root they can write to
    (planted / ".dedupd-quarantine").mkdir(parents=True)
    os.chmod(planted / ".dedupd-quarantine", 0o777)
    if os.geteuid() == 0:
        os.chown(planted / ".dedupd-quarantine", BOB, BOB)
    t["planted_a"] = put(planted / "bob/a.jpg", photo_bytes(106), BOB, 0o644, 1_500_000_000)
    t["planted_b"] = put(planted / "bob/b.jpg", photo_bytes(106), BOB, 0o644, 1_600_000_000)
    return t


def reasons(nas) -> dict:
    return nas["d"].status()["actions"]["not_done_by_reason"]


@root_only
def test_no_hard_link_across_owners_or_modes(nas):
    t = nas["t"]
    assert os.stat(t["same2"]).st_ino == os.stat(t["same1"]).st_ino  # the daemon does link where it may
    assert os.stat(t["bob_copy"]).st_ino != os.stat(t["alice_photo"]).st_ino
    assert (os.stat(t["bob_copy"]).st_uid, os.stat(t["alice_photo"]).st_mode & 0o777) == (BOB, 0o600)
    assert os.stat(t["mode_b"]).st_ino != os.stat(t["mode_a"]).st_ino
    assert os.stat(t["mode_b"]).st_mode & 0o777 == 0o600
    assert reasons(nas).get("metadata_differs", 0) >= 2


@root_only
def test_another_users_photo_never_becomes_readable_through_a_stub_or_symlink(nas):
    """bob's small copy of alice's private original stays bob's (a stub would be
    restored as a copy of alice's bytes); bob's exact copy in a symlink root may point
    at alice's 0600 file, but bob cannot read it through the link."""
    t = nas["t"]
    assert Path(str(t["stub_ctl_copy"]) + ".dedup").is_file()  # the stub root does act for one owner
    assert t["bob_small"].is_file() and not Path(str(t["bob_small"]) + ".dedup").exists()
    assert reasons(nas).get("owner_differs", 0) >= 1
    assert _read_as(BOB, t["link_copy"]) in ("Permission denied", sha(t["alice_photo"]).hex())
    assert _read_as(BOB, t["alice_photo"]) == "Permission denied"
    if t["link_copy"].is_symlink():
        assert _read_as(BOB, t["link_copy"]) == "Permission denied"


@root_only
def test_plan_never_copies_another_users_bytes_into_a_file(tmp_path):
    """Across owners an act-tier reflink or stub would give bob alice's other bytes;
    the exact tier (bob's own bytes) and symlinks (no access of their own) may go on."""
    keeper = put(tmp_path / "r/alice.jpg", photo_bytes(7), ALICE, 0o644)
    for tier in ("exact", "act"):
        data = photo_bytes(7) if tier == "exact" else photo_bytes(7, ".jpg", 60)
        target = put(tmp_path / f"r/bob_{tier}.jpg", data, BOB, 0o644)
        for mode in ("hardlink", "symlink", "reflink", "stub"):
            plan = plan_replacement(target, sha(target), keeper, sha(keeper), mode=mode, fallback="reflink",
                                    root=tmp_path / "r", tier=tier)
            if tier == "act" and mode != "symlink":  # hardlink falls back to reflink (owners differ)
                assert isinstance(plan, Skip) and plan.reason == "owner_differs", (tier, mode, plan)
            else:
                assert isinstance(plan, Action), (tier, mode, plan)


def test_symlinks_inside_a_root_lead_nowhere(nas):
    """A symlinked file and a symlinked folder (even named in `dedupctl rescan`) are
    never read, indexed, linked, replaced or removed."""
    t, outside = nas["t"], nas["outside"]
    if nas["strictatime"]:  # every read moves atime there: the daemon read nothing outside
        assert atimes(outside) == nas["read_before"]
    assert states(outside) == nas["before"]
    assert sorted(p.name for p in outside.rglob("*")) == ["dir", "inner.jpg", "secret.jpg", "sub"]
    assert os.readlink(t["evil"]) == str(t["secret"]) and os.readlink(t["evildir"]) == str(outside / "dir")
    paths = {r[0] for r in index_rows(nas["d"].loaded())}
    assert not [p for p in paths if "evil" in p or p.startswith(str(outside))]


@root_only
def test_a_quarantine_folder_a_user_made_is_not_used(nas):
    t = nas["t"]
    assert os.stat(t["planted_b"]).st_ino != os.stat(t["planted_a"]).st_ino
    assert list((t["planted"] / ".dedupd-quarantine").iterdir()) == []
    assert reasons(nas).get("quarantine_unsafe", 0) >= 1


def _python_for_others() -> str:
    """A Python interpreter other users may run (a venv under /root is not one)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        real = Path(os.path.realpath(candidate))
        if real.is_file() and all(os.stat(p).st_mode & 0o001 for p in (real, *real.parents)):
            return str(real)
    pytest.skip("no Python interpreter here that another user may run")


def _read_as(uid: int, path: Path) -> str:
    """sha256 hex of `path` read as `uid`, or the error it gets."""
    code = ("import hashlib, sys\n"
            "try:\n    print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())\n"
            "except OSError as e:\n    print(e.strerror)\n")
    out = subprocess.run([_python_for_others(), "-c", code, str(path)], preexec_fn=_drop(uid, uid),
                         capture_output=True, text=True, timeout=60, env={})
    return out.stdout.strip() or out.stderr


def _drop(uid: int, gid: int):
    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return drop


def _ask_as(uid: int, gid: int, sock: str, cmd: str, args: dict | None = None) -> dict:
    """Send one request as another user (a raw client: no dedupd import, no caches)."""
    code = ("import json, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n    s.connect(sys.argv[1])\n"
            "except OSError as e:\n    print(json.dumps({'connect': e.strerror})); sys.exit()\n"
            "s.sendall(json.dumps({'cmd': sys.argv[2], 'args': json.loads(sys.argv[3])}).encode() + b'\\n')\n"
            "print(s.makefile().readline())\n")

    out = subprocess.run([_python_for_others(), "-c", code, sock, cmd, json.dumps(args or {})], preexec_fn=_drop(uid, gid),
                         capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@root_only
def test_control_socket_only_for_its_group_and_undo_only_for_root(nas):
    d = nas["d"]
    st = os.stat(d.socket_path)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, NOGROUP)
    assert _ask_as(EVE, EVE, d.socket_path, "status") == {"connect": "Permission denied"}
    member = _ask_as(NOBODY, NOGROUP, d.socket_path, "status")
    assert member["ok"] and member["result"]["daemon"]["running"]
    for cmd, args in (("undo", {"since": 0}), ("purge", {"older_than_days": 0}),
                      ("restore", {"stub": str(nas["t"]["stub_ctl_copy"]) + ".dedup"})):
        answer = _ask_as(NOBODY, NOGROUP, d.socket_path, cmd, args)
        assert not answer["ok"] and "only allowed to root" in answer["error"], (cmd, answer)
    assert Path(str(nas["t"]["stub_ctl_copy"]) + ".dedup").is_file()  # nothing was undone or restored


def test_restore_through_the_daemon_refuses_a_stub_naming_a_file_outside(nas):
    t = nas["t"]
    forged = forge(t["shared"] / "bob/stolen.jpg.dedup", str(t["shared"] / "bob/../../outside/secret.jpg"),
                   t["secret_sha"])
    with pytest.raises(Exception, match="not a plain path inside a configured root"):
        nas["d"].request("restore", stub=str(forged))
    assert not (t["shared"] / "bob/stolen.jpg").exists() and forged.exists()


# -- restore: a stub is the user's file, its text is not trusted --------------------------


def forge(path: Path, keeper: str, keeper_sha: bytes, *, uid: int | None = None, mode: int = 0o644,
          action: str = "20260101T000000Z-0badf00d") -> Path:
    owner = os.stat(path.parent) if path.parent.exists() else None
    uid = uid if uid is not None else (owner.st_uid if owner else os.geteuid())
    data = stubs.render(stubs.Stub(keeper=keeper, keeper_sha256=keeper_sha, sha256=keeper_sha, size=1, mode=mode,
                                   uid=uid, gid=uid, atime_ns=0, mtime_ns=0, action=action))
    return put(path, data)


@pytest.fixture()
def journal(tmp_path):
    with Journal.open(str(tmp_path / "state")) as j:
        yield j


def test_a_forged_stub_never_reads_outside_the_roots(tmp_path, journal):
    root, outside = tmp_path / "root", tmp_path / "outside"
    secret = put(outside / "dir/secret.jpg", photo_bytes(21))
    (root / "bob").mkdir(parents=True)
    (root / "bob/link").symlink_to(outside / "dir")
    keepers = [str(root / "bob/../../outside/dir/secret.jpg"),  # `..` in the stub
               str(secret),  # a plain path outside every root
               str(root / "bob/link/secret.jpg")]  # a root path through a symlinked folder
    for n, keeper in enumerate(keepers):
        stub = forge(root / f"bob/x{n}.jpg.dedup", keeper, sha(secret))
        with pytest.raises(RestoreRefused):
            restore_stub(str(stub), journal, roots=[str(root)])
        assert not (root / f"bob/x{n}.jpg").exists() and stub.exists()
    # and a stub that itself sits outside, named through the symlinked folder
    outside_stub = forge(outside / "dir/y.jpg.dedup", str(root / "bob/x0.jpg.dedup"), b"\0" * 32)
    with pytest.raises(RestoreRefused, match="without following a symlink"):
        restore_stub(str(root / "bob/link/y.jpg.dedup"), journal, roots=[str(root)])
    with pytest.raises(RestoreRefused, match="outside every configured root"):
        restore_stub(str(outside_stub), journal, roots=[str(root)])
    assert sorted(p.name for p in (outside / "dir").iterdir()) == ["secret.jpg", "y.jpg.dedup"]


def test_a_stub_never_restores_with_another_owner_or_set_id_bits(tmp_path, journal):
    """Without a journal entry, a stub may only ask for what its owner could do by
    hand: a copy of their own file, owned by them, without set-id bits."""
    root = tmp_path / "root"
    mine = put(root / "bob/mine.jpg", photo_bytes(22))
    other = 0 if os.geteuid() != 0 else BOB  # a uid the stub file does not belong to
    claims = {"another owner": dict(uid=other), "setuid": dict(mode=0o4755)}
    for n, (what, claim) in enumerate(claims.items()):
        stub = forge(root / f"bob/c{n}.jpg.dedup", str(mine), sha(mine), **claim)
        with pytest.raises(RestoreRefused):
            restore_stub(str(stub), journal, roots=[str(root)])
        assert not (root / f"bob/c{n}.jpg").exists(), what
    fine = forge(root / "bob/ok.jpg.dedup", str(mine), sha(mine))
    assert restore_stub(str(fine), journal, roots=[str(root)]) == str(root / "bob/ok.jpg")
    assert sha(root / "bob/ok.jpg") == sha(mine) and stat.S_IMODE(os.stat(root / "bob/ok.jpg").st_mode) == 0o644


def test_an_edited_stub_is_restored_from_the_journal_not_from_its_text(tmp_path, journal):
    pair = make_pair(tmp_path / "root", "exact")
    outside = put(tmp_path / "outside/secret.jpg", photo_bytes(23))
    action = pair.plan("stub")
    assert Executor(journal).execute(action).status == "done"
    purge(journal, older_than_seconds=0)
    stub_path = Path(pair.target + ".dedup")
    real = stubs.parse(stub_path.read_bytes())
    edited = stubs.Stub(keeper=str(outside), keeper_sha256=sha(outside), sha256=real.sha256, size=real.size,
                        mode=0o4755, uid=0, gid=0, atime_ns=real.atime_ns, mtime_ns=real.mtime_ns, action=real.action)
    stub_path.write_bytes(stubs.render(edited))
    assert restore_stub(str(stub_path), journal, roots=[pair.root]) == pair.target
    st = os.stat(pair.target)
    assert sha(pair.target) == pair.keeper_hash != sha(outside)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_mtime_ns) == (
        stat.S_IMODE(action.target.mode), action.target.uid, action.target.mtime_ns)


# -- renames racing the daemon ---------------------------------------------------------------


def _outside_copy(pair, outside: Path) -> dict:
    """Identical files outside the root under the same names, for the swaps to aim at."""
    for name in ("album", "best"):
        (outside / name).mkdir(parents=True, exist_ok=True)
    put(outside / "album" / os.path.basename(pair.target), Path(pair.target).read_bytes())
    put(outside / "best/keeper.jpg", Path(pair.keeper).read_bytes())
    return states(outside)


def _swap_for_link(folder: Path, to: Path) -> None:
    folder.rename(folder.with_name(folder.name + ".moved"))
    folder.symlink_to(to)


def test_a_folder_or_file_swapped_for_a_symlink_before_acting_leads_nowhere(tmp_path, journal):
    outside = tmp_path / "outside"
    for case in ("target folder", "keeper folder", "target file", "keeper file"):
        pair = make_pair(tmp_path / case.replace(" ", "_"), "exact")
        before = _outside_copy(pair, outside)
        action = pair.plan("hardlink")
        which = "album" if case.startswith("target") else "best"
        if case.endswith("folder"):
            _swap_for_link(Path(pair.root) / which, outside / which)
        else:
            victim = Path(pair.target if which == "album" else pair.keeper)
            victim.rename(victim.with_name(victim.name + ".moved"))
            victim.symlink_to(outside / which / victim.name)
        outcome = Executor(journal).execute(action)
        assert outcome.status == "aborted" and outcome.reason in ("changed", "vanished"), (case, outcome)
        assert states(outside) == before, case
        assert list(Path(pair.root).rglob(".dedupd-tmp-*")) == []


def test_folder_swaps_racing_the_executor_never_reach_outside(tmp_path, journal):
    """A thread flips the target's folder between the real one and a symlink to an
    outside copy while actions run: outside stays as it was; no byte is lost."""
    pair = make_pair(tmp_path / "root", "exact")
    outside = tmp_path / "outside"
    album, moved = Path(pair.root) / "album", Path(pair.root) / "album.real"
    targets = [Path(pair.target).with_name(f"copy{i}.jpg") for i in range(40)]
    for t in targets:
        shutil.copy2(pair.target, t)
        put(outside / "album" / t.name, t.read_bytes())
    before = states(outside)
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            album.rename(moved)
            album.symlink_to(outside / "album")
            time.sleep(0.001)
            album.unlink()
            moved.rename(album)
            time.sleep(0.002)

    def replace(t):
        plan = plan_replacement(str(t), pair.target_hash, pair.keeper, pair.keeper_hash, mode="hardlink",
                                fallback="skip", root=pair.root, tier="exact")
        return Executor(journal).execute(plan).status if isinstance(plan, Action) else plan.reason

    raced, calm = targets[:30], targets[30:]
    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for t in raced:  # any outcome may happen here (done, vanished, aborted...), only safety is asserted
            replace(t)
    finally:
        stop.set()
        flipper.join()  # the flipper always ends with the real folder in place
    # The race left nothing behind that stops later work (how many raced actions got through
    # depends on the machine's timing, so the liveness check runs once the folder is still).
    assert [replace(t) for t in calm] == ["done"] * len(calm)
    assert states(outside) == before
    assert list(Path(pair.root).rglob(".dedupd-tmp-*")) == []
    for t in targets:  # each copy is still there, a regular file with its bytes (or the keeper's, the same)
        assert stat.S_ISREG(os.lstat(t).st_mode) and sha(t) == pair.target_hash


def test_undo_refuses_a_target_folder_that_became_a_symlink(tmp_path, journal):
    pair = make_pair(tmp_path / "root", "exact")
    outside = tmp_path / "outside"
    action = pair.plan("hardlink")
    assert Executor(journal).execute(action).status == "done"
    before = _outside_copy(pair, outside)
    _swap_for_link(Path(pair.root) / "album", outside / "album")
    with pytest.raises((UndoRefused, OSError)):
        undo(journal, action.action_id)
    assert states(outside) == before
    assert journal.get(action.action_id).state == "done"
    assert sha(journal.get(action.action_id).quarantine_path) == pair.target_hash


def test_purge_and_undo_never_follow_a_quarantine_swapped_for_a_symlink(tmp_path, journal):
    """A user who can write to the root renames the quarantine away and puts a symlink
    to a folder of theirs in its place, holding another name of the original: undo
    and purge must not link from it or delete in it."""
    pair = make_pair(tmp_path / "root", "exact")
    action = pair.plan("hardlink")
    assert Executor(journal).execute(action).status == "done"
    entry = journal.get(action.action_id)
    outside = tmp_path / "outside"
    decoy = outside / action.action_id / os.path.basename(entry.quarantine_path)
    decoy.parent.mkdir(parents=True)
    os.link(entry.quarantine_path, decoy)
    quarantine = Path(pair.root) / ".dedupd-quarantine"
    quarantine.rename(Path(pair.root) / "renamed-away")
    quarantine.symlink_to(outside)
    with pytest.raises((UndoRefused, OSError)):
        undo(journal, action.action_id)
    report = purge(journal, older_than_seconds=0)
    assert report.entries == [] and report.problems
    assert decoy.is_file() and os.stat(decoy).st_ino == pair.target_ino
    assert journal.get(action.action_id).state == "done"
    assert os.stat(pair.target).st_ino == pair.keeper_ino  # still our hard link


def test_a_quarantine_symlink_a_user_planted_is_not_followed(tmp_path, journal):
    pair = make_pair(tmp_path / "root", "exact")
    outside = tmp_path / "outside"
    outside.mkdir()
    (Path(pair.root) / ".dedupd-quarantine").symlink_to(outside)
    outcome = Executor(journal).execute(pair.plan("hardlink"))
    assert outcome.status == "aborted" and list(outside.iterdir()) == []
    assert sha(pair.target) == pair.target_hash and os.stat(pair.target).st_ino == pair.target_ino


@root_only
def test_a_quarantine_folder_another_user_owns_is_not_used(tmp_path, journal):
    pair = make_pair(tmp_path / "root", "exact")
    q = Path(pair.root) / ".dedupd-quarantine"
    q.mkdir(mode=0o700)
    os.chown(q, BOB, BOB)
    outcome = Executor(journal).execute(pair.plan("hardlink"))
    assert (outcome.status, outcome.reason) == ("aborted", "quarantine_unsafe")
    assert list(q.iterdir()) == [] and os.stat(pair.target).st_ino == pair.target_ino


def test_a_symlink_planted_at_the_control_lock_is_not_followed(tmp_path):
    sock = tmp_path / "run/ctl.sock"
    sock.parent.mkdir()
    aim = tmp_path / "elsewhere/created-by-dedupd"
    aim.parent.mkdir()
    Path(str(sock) + ".lock").symlink_to(aim)
    server = ControlServer(str(sock), lambda request: {})
    with pytest.raises(ControlSocketError):
        server.start()
    assert not aim.exists() and not sock.exists()
