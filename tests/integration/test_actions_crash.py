"""Crash consistency of the actions (SAFETY.md E): a process is SIGKILLed at every
failpoint of every mode (execute, undo, restore), then `recover()` runs here and the
invariants must hold: every original's bytes at its path or in quarantine with a
journal entry, no temp names, the keeper unchanged, every entry terminal.

One `sys.executable -c DRIVER` process imports dedupd once (warm imports) and forks
one child per case; the child opens the journal itself (never across fork), arms
`DEDUPD_FAILPOINT` and runs the real code until it kills itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon" / "actions"))
from actions_kit import Pair, check_invariants, make_pair, reflink_dir, sha, temp_names  # noqa: E402

from dedupd.daemon.actions import (FAILPOINTS, RESTORE_FAILPOINTS, UNDO_FAILPOINTS, Executor, Journal,  # noqa: E402
                                   purge, recover)
from dedupd.daemon.actions.stub import parse  # noqa: E402

DRIVER = r"""
import json, os, sys
from dedupd.daemon import failpoints
from dedupd.daemon.actions import Executor, Journal, plan_replacement, restore_stub, undo

def run(case):
    os.environ[failpoints.ENV] = case["failpoint"]
    with Journal.open(case["state"]) as journal:
        if case["op"] == "execute":
            action = plan_replacement(case["target"], bytes.fromhex(case["target_hash"]), case["keeper"],
                                      bytes.fromhex(case["keeper_hash"]), mode=case["kind"], fallback="skip",
                                      root=case["root"], tier=case["tier"])
            print(Executor(journal).execute(action), file=sys.stderr)
        elif case["op"] == "undo":
            undo(journal, case["action_id"])
        else:
            restore_stub(case["stub"], journal)

for line in sys.stdin:
    case = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            run(case)
        except BaseException as e:
            print(repr(e), file=sys.stderr)
            code = 1
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
                      "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1}), flush=True)
"""
TIERS = {"hardlink": "exact", "symlink": "act", "reflink": "exact", "stub": "act"}


@pytest.fixture(scope="module")
def driver():
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=str(Path(__file__).resolve().parents[2]))

    def crash(case: dict) -> dict:
        proc.stdin.write(json.dumps(case) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, "the crash driver died"
        return json.loads(line)

    yield crash
    proc.stdin.close()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Where a case's tree goes: per kind, since reflinks need a filesystem that clones."""
    with reflink_dir(tmp_path_factory.mktemp("reflink")) as (where, why):
        def make(kind: str, tmp_path: Path) -> Path:
            if kind != "reflink":
                return tmp_path / "root"
            if where is None:
                pytest.skip(why)
            return Path(where) / tmp_path.name / "root"

        yield make


def _case(pair: Pair, state: Path, kind: str, failpoint: str, op: str = "execute", **extra) -> dict:
    return {"op": op, "failpoint": failpoint, "state": str(state), "root": pair.root, "kind": kind,
            "tier": pair.tier, "target": pair.target, "keeper": pair.keeper,
            "target_hash": pair.target_hash.hex(), "keeper_hash": pair.keeper_hash.hex(), **extra}


def _recover_twice(state: Path) -> Journal:
    journal = Journal.open(str(state))
    first = recover(journal)
    assert first.problems == []
    second = recover(journal)  # idempotent: nothing left to do
    assert (second.rolled_forward, second.rolled_back, second.temps_removed) == ([], [], [])
    return journal


def _check_replacement(pair: Pair, entry) -> None:
    """A done entry: the quarantine holds the original, the target name our replacement."""
    assert os.lstat(entry.quarantine_path).st_ino == pair.target_ino
    assert sha(entry.quarantine_path) == pair.target_hash
    if entry.kind == "hardlink":
        assert os.lstat(pair.target).st_ino == pair.keeper_ino
    elif entry.kind == "symlink":
        assert os.path.islink(pair.target) and os.path.samefile(pair.target, pair.keeper)
    elif entry.kind == "reflink":
        assert sha(pair.target) == pair.keeper_hash
    else:
        assert not os.path.lexists(pair.target)
        assert parse(Path(entry.final_path).read_bytes()).action == entry.action_id


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_crash_during_execute(failpoint, driver, data_dir, tmp_path):
    kind = failpoint.split(".")[0]
    pair = make_pair(data_dir(kind, tmp_path), TIERS[kind])
    result = driver(_case(pair, tmp_path / "state", kind, failpoint))
    assert result["signal"] == signal.SIGKILL, f"{failpoint} was never reached: {result}"
    with _recover_twice(tmp_path / "state") as journal:
        check_invariants(journal, pair)
        (entry,) = journal.entries()
        assert entry.state in ("done", "rolled_back")
        if entry.state == "done":
            _check_replacement(pair, entry)
        else:
            assert os.lstat(pair.target).st_ino == pair.target_ino
            assert not os.path.lexists(pair.target + ".dedup")
            assert not os.path.exists(os.path.dirname(entry.quarantine_path))


def _done_action(pair: Pair, state: Path, kind: str) -> str:
    with Journal.open(str(state)) as journal:
        action = pair.plan(kind)
        outcome = Executor(journal).execute(action)
    assert outcome.status == "done", outcome
    return action.action_id


@pytest.mark.parametrize("failpoint", UNDO_FAILPOINTS)
def test_crash_during_undo(failpoint, driver, data_dir, tmp_path):
    kind = failpoint.split(".")[1]
    pair = make_pair(data_dir(kind, tmp_path), TIERS[kind])
    action_id = _done_action(pair, tmp_path / "state", kind)
    result = driver(_case(pair, tmp_path / "state", kind, failpoint, op="undo", action_id=action_id))
    assert result["signal"] == signal.SIGKILL, f"{failpoint} was never reached: {result}"
    with _recover_twice(tmp_path / "state") as journal:
        check_invariants(journal, pair)
        entry = journal.get(action_id)
        assert entry.state in ("done", "undone")
        if entry.state == "undone":
            assert os.lstat(pair.target).st_ino == pair.target_ino
            assert sha(pair.target) == pair.target_hash
            assert not os.path.lexists(entry.quarantine_path) and not os.path.lexists(pair.target + ".dedup")
        else:
            _check_replacement(pair, entry)


@pytest.mark.parametrize("failpoint", RESTORE_FAILPOINTS)
def test_crash_during_restore_from_keeper(failpoint, driver, tmp_path):
    pair = make_pair(tmp_path / "root", "act")
    action_id = _done_action(pair, tmp_path / "state", "stub")
    with Journal.open(str(tmp_path / "state")) as journal:
        assert purge(journal, older_than_seconds=0).entries == [action_id]
    stub = pair.target + ".dedup"
    result = driver(_case(pair, tmp_path / "state", "stub", failpoint, op="restore", stub=stub))
    assert result["signal"] == signal.SIGKILL, f"{failpoint} was never reached: {result}"
    with _recover_twice(tmp_path / "state") as journal:
        entry = journal.get(action_id)
        assert entry.state in ("purged", "restored")
        _check_after_restore(pair, entry.state, stub)


def _check_after_restore(pair: Pair, state: str, stub: str) -> None:
    assert temp_names(pair.root) == []
    assert sha(pair.keeper) == pair.keeper_hash
    if state == "restored":  # a copy of the keeper under the original name, the stub gone
        assert sha(pair.target) == pair.keeper_hash and not os.path.lexists(stub)
    else:  # not restored: the stub is still there, the name still free
        assert parse(Path(stub).read_bytes()) and not os.path.lexists(pair.target)


def test_every_step_has_a_failpoint():
    """The list the tests enumerate is the executor's own: one name per step and mode."""
    from dedupd.daemon.actions.executor import STEPS

    assert len(FAILPOINTS) == len(set(FAILPOINTS)) == sum(len(s) for s in STEPS.values())
    for kind in ("hardlink", "symlink", "reflink", "stub"):
        assert f"{kind}.intent" in FAILPOINTS and f"{kind}.done" in FAILPOINTS
        assert f"{kind}.quarantined" in FAILPOINTS and f"{kind}.staged" in FAILPOINTS
