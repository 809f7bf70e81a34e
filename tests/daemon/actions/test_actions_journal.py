"""The journal: states and transitions, totals, queries, the jsonl mirror, strict parsing."""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupd.daemon.actions import (Action, FileState, InvalidTransition, Journal, JournalCorrupt,
                                   UnknownAction)
from dedupd.daemon.actions.journal import parse_record

HASH = bytes(range(32))


def state(path: str, ino: int, size: int = 1000) -> FileState:
    return FileState(path, 1, ino, size, 10, 11, 1, 0, 0, 0o100644, HASH)


def action(i: int, path: str | None = None, size: int = 1000) -> Action:
    path = path or f"/r/a/{i}.jpg"
    return Action(f"20261129T000000Z-{i:08x}", "hardlink", "exact", "/r", state(path, 100 + i, size),
                  state(f"/r/b/{i}.jpg", 500 + i))


def begin(journal: Journal, a: Action):
    return journal.begin(a, f"/r/.dedupd-quarantine/{a.action_id}/x", f"/r/a/.dedupd-tmp-{a.action_id}",
                         a.target.path)


@pytest.fixture
def journal(tmp_path):
    with Journal.open(str(tmp_path)) as j:
        yield j


def test_protocol_states_and_mirror(journal, tmp_path):
    a = action(1)
    e = begin(journal, a)
    assert (e.seq, e.state, e.bytes) == (1, "intent", 1000)
    for s in ("quarantined", "staged", "swapped"):
        journal.advance(a.action_id, s)
    done = journal.advance(a.action_id, "done", result_ino=500 + 1)
    assert done.state == "done" and done.result_ino == 501 and done.created == e.created
    assert journal.get(a.action_id) == done
    lines = [json.loads(x) for x in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [x["state"] for x in lines] == ["intent", "quarantined", "staged", "swapped", "done"]
    assert lines[-1]["target"]["content_hash"] == HASH.hex()


def test_invalid_transitions_are_refused(journal):
    a = action(1)
    begin(journal, a)
    with pytest.raises(InvalidTransition, match="from intent to undone"):
        journal.advance(a.action_id, "undone")
    journal.advance(a.action_id, "aborted", reason="changed")
    with pytest.raises(InvalidTransition):
        journal.advance(a.action_id, "done")
    with pytest.raises(InvalidTransition, match="fixed"):
        journal.advance(a.action_id, "aborted", created=0.0)
    with pytest.raises(UnknownAction, match="no action nope"):
        journal.get("nope")


def test_totals_unfinished_and_queries(journal):
    ids = [action(i, size=100 * (i + 1)) for i in range(5)]
    for a in ids:
        begin(journal, a)
    for a in ids[:3]:
        journal.advance(a.action_id, "done")
    journal.advance(ids[0].action_id, "purged")
    journal.advance(ids[3].action_id, "aborted", reason="changed", quarantine_kept=True)
    t = journal.totals()
    assert t["pending_bytes"] == 200 + 300 and t["reclaimed_bytes"] == 100
    assert t["quarantine_entries"] == 3 and t["quarantine_bytes"] == 200 + 300 + 400
    assert t["by_state"] == {"done": 2, "purged": 1, "aborted": 1, "intent": 1}
    assert [e.action_id for e in journal.unfinished()] == [ids[4].action_id]
    assert [e.action_id for e in journal.entries(states=["done"])] == [ids[1].action_id, ids[2].action_id]
    assert list(journal.entries(since=time.time() + 60)) == []
    assert len(list(journal.entries(since=time.time() - 60))) == 5


def test_totals_survive_reopen(tmp_path):
    with Journal.open(str(tmp_path)) as j:
        begin(j, action(1))
        j.advance(action(1).action_id, "done")
        before = j.totals()
    with Journal.open(str(tmp_path)) as j:
        assert j.totals() == before and before["pending_bytes"] == 1000


def test_last_done_for_path(journal):
    first, second = action(1, "/r/a/same.jpg"), action(2, "/r/a/same.jpg")
    for a in (first, second):
        begin(journal, a)
        journal.advance(a.action_id, "done")
    journal.advance(second.action_id, "undoing")
    assert journal.last_done_for("/r/a/same.jpg").action_id == first.action_id
    assert journal.last_done_for("/r/a/other.jpg") is None
    assert [e.action_id for e in journal.entries(path="/r/a/same.jpg")] == [first.action_id, second.action_id]


def _record(journal: Journal) -> dict:
    a = action(1)
    return begin(journal, a).to_record()


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("state"), "field 'state'"),
    (lambda r: r.update(state="sideways"), "unknown state"),
    (lambda r: r.update(kind="copy"), "unknown kind"),
    (lambda r: r.update(bytes="12"), "field 'bytes'"),
    (lambda r: r.update(result_ino=True), "field 'result_ino'"),
    (lambda r: r.update(v=2), "record version"),
    (lambda r: r.update(extra=1), "unknown field"),
    (lambda r: r["target"].update(content_hash="zz"), "target.content_hash"),
    (lambda r: r["keeper"].pop("ino"), "keeper must be an object"),
    (lambda r: r["keeper"].update(ino="7"), "keeper.ino"),
])
def test_malformed_records_name_their_seq(journal, mutate, message):
    rec = _record(journal)
    mutate(rec)
    with pytest.raises(JournalCorrupt, match=message) as err:
        parse_record(42, json.dumps(rec).encode())
    assert err.value.seq == 42 and "entry 42" in str(err.value)


def test_not_json_or_not_an_object(journal):
    for raw in (b"{", b"[1]", b"\xff\xfe"):
        with pytest.raises(JournalCorrupt):
            parse_record(3, raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parser_raises_only_journal_corrupt(raw):
    """Fuzz seed: whatever the bytes, a typed error or an Entry, never anything else."""
    try:
        parse_record(9, raw)
    except JournalCorrupt:
        pass


def test_mirror_write_failure_is_a_journal_error(tmp_path):
    from dedupd.daemon.actions import JournalError

    with Journal.open(str(tmp_path)) as j:
        os.close(j._mirror)
        j._mirror = os.open(os.devnull, os.O_RDONLY)  # writes fail with EBADF
        with pytest.raises(JournalError, match="journal.jsonl"):
            begin(j, action(1))


def test_a_damaged_journal_stops_at_open_naming_the_entry(tmp_path):
    with Journal.open(str(tmp_path)) as j:
        begin(j, action(1))
        begin(j, action(2))
        store = j._store
        with store._env.begin(write=True) as txn:
            txn.put((2).to_bytes(8, "big"), b'{"v": 1, "action_id": "x"}', db=store._entries)
    with pytest.raises(JournalCorrupt, match="journal entry 2 is malformed"):
        Journal.open(str(tmp_path))
