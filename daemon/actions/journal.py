"""The action journal: one entry per action, moved through its states as the
replace protocol advances (SAFETY.md rules 7 and 21).

States, in protocol order: `intent` -> `quarantined` -> `staged` -> `swapped` ->
`done`. An action that stops early ends `aborted` (nothing of it remains; the
reason says why) or, when recovery at start-up undid it, `rolled_back`. A `done`
action is later `purged` (its quarantine link removed: the space is reclaimed) or
undone (`undoing` -> `undone`). A purged stub restored from its keeper goes
`restoring` -> `restored`. `undoing` and `restoring` exist so a crash in the middle
of an undo or restore is resolved by recovery like any other unfinished entry.

Every change is committed to the LMDB `JournalStore` at `<state_dir>/journal/`
before the call returns, then mirrored as one JSON line (flushed and fsynced) to
`<state_dir>/journal.jsonl` for humans. LMDB is the truth; the mirror is a log.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from typing import Iterable, Iterator

from dedupd.index.errors import IndexFailure
from dedupd.index.journal_store import JournalStore

from .errors import InvalidTransition, JournalCorrupt, JournalError, UnknownAction
from .plan import KINDS, TIERS, Action, FileState

RECORD_VERSION = 1
UNFINISHED = ("intent", "quarantined", "staged", "swapped", "undoing", "restoring")
TERMINAL = ("aborted", "rolled_back", "undone", "purged", "restored")
STATES = UNFINISHED + ("done",) + TERMINAL
_NEXT = {
    "intent": {"quarantined", "aborted", "rolled_back", "done"},
    "quarantined": {"staged", "aborted", "rolled_back", "done"},
    "staged": {"swapped", "aborted", "rolled_back", "done"},
    "swapped": {"done", "rolled_back"},
    "done": {"undoing", "purged"},
    "undoing": {"undone", "done"},
    "purged": {"restoring"},
    "restoring": {"restored", "purged"},
}


@dataclass(frozen=True)
class Entry:
    seq: int
    action_id: str
    kind: str
    tier: str
    root: str
    target: FileState
    keeper: FileState
    quarantine_path: str  # <root>/.dedupd-quarantine/<action_id>/<basename>
    temp_path: str  # <target dir>/.dedupd-tmp-<action_id>
    final_path: str  # the target path, or <target>.dedup for a stub
    state: str
    reason: str = ""  # why aborted / rolled back (a short kind)
    detail: str = ""
    result_ino: int = 0  # inode now at final_path (keeper's for a hardlink)
    temp_ino: int = 0  # inode made under temp_path (known once staged)
    quarantine_kept: bool = False  # an aborted action left the original in quarantine
    created: float = 0.0
    updated: float = 0.0
    bytes: int = 0  # the target's size

    def to_record(self) -> dict:
        rec = asdict(self)
        del rec["seq"]
        rec["v"] = RECORD_VERSION
        for side in ("target", "keeper"):
            rec[side]["content_hash"] = getattr(self, side).content_hash.hex()
        return rec

    def holds_quarantine(self) -> bool:
        """True when the journal says the quarantine link still holds the original."""
        return self.state in ("done", "undoing") or self.quarantine_kept


_TYPES = {"action_id": str, "kind": str, "tier": str, "root": str, "quarantine_path": str,
          "temp_path": str, "final_path": str, "state": str, "reason": str, "detail": str,
          "result_ino": int, "temp_ino": int, "quarantine_kept": bool, "created": (int, float),
          "updated": (int, float), "bytes": int}
_STATE_TYPES = {f.name: (bytes if f.name == "content_hash" else (str if f.name == "path" else int))
                for f in fields(FileState)}


def parse_record(seq: int, raw: bytes) -> Entry:
    """A stored record as an `Entry`. Raises `JournalCorrupt` naming `seq` when it is malformed."""
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: "[[[[..." too deep
        raise JournalCorrupt(seq, f"not JSON ({str(e)[:200]})") from None
    if not isinstance(rec, dict):
        raise JournalCorrupt(seq, "not a JSON object")
    if rec.get("v") != RECORD_VERSION:
        raise JournalCorrupt(seq, f"record version {rec.get('v')!r}, this dedupd reads {RECORD_VERSION}")
    out = {"seq": seq}
    for name, typ in _TYPES.items():
        value = rec.get(name)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise JournalCorrupt(seq, f"field {name!r} is missing or not {_typename(typ)}")
        out[name] = value
    for name, allowed in (("state", STATES), ("kind", KINDS), ("tier", TIERS)):
        if out[name] not in allowed:
            raise JournalCorrupt(seq, f"unknown {name} {out[name]!r}")
    out["target"] = _parse_state(seq, rec.get("target"), "target")
    out["keeper"] = _parse_state(seq, rec.get("keeper"), "keeper")
    unknown = set(rec) - set(_TYPES) - {"v", "target", "keeper"}
    if unknown:
        raise JournalCorrupt(seq, f"unknown field(s) {sorted(unknown)}")
    return Entry(**out)


def _parse_state(seq: int, rec: object, side: str) -> FileState:
    if not isinstance(rec, dict) or set(rec) != set(_STATE_TYPES):
        raise JournalCorrupt(seq, f"{side} must be an object with exactly {sorted(_STATE_TYPES)}")
    values = {}
    for name, typ in _STATE_TYPES.items():
        value = rec[name]
        if typ is bytes:
            try:
                value = bytes.fromhex(value) if isinstance(value, str) and len(value) == 64 else None
            except ValueError:
                value = None
            if value is None:
                raise JournalCorrupt(seq, f"{side}.content_hash is not 64 hex digits")
        elif not isinstance(value, typ) or isinstance(value, bool):
            raise JournalCorrupt(seq, f"{side}.{name} is not {_typename(typ)}")
        values[name] = value
    return FileState(**values)


def _typename(typ) -> str:
    return " or ".join(t.__name__ for t in typ) if isinstance(typ, tuple) else typ.__name__


class Journal:
    """Entries by action id over a `JournalStore`; one instance per process."""

    def __init__(self, store: JournalStore, mirror_path: str):
        self._store = store
        self.mirror_path = mirror_path
        self._counts: Counter = Counter()
        self._bytes: Counter = Counter()
        for entry in self.entries():  # also proves every record parses before work starts
            self._count(entry, +1)
        self._mirror = os.open(mirror_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @classmethod
    def open(cls, state_dir: str) -> "Journal":
        """The journal of `state_dir` (created if needed). Raises `JournalError`."""
        try:
            store = JournalStore.open(os.path.join(state_dir, "journal"))
        except IndexFailure as e:
            raise JournalError(str(e)) from e
        try:
            return cls(store, os.path.join(state_dir, "journal.jsonl"))
        except BaseException:
            store.close()
            raise

    # -- writing ----------------------------------------------------------------------
    def begin(self, action: Action, quarantine_path: str, temp_path: str, final_path: str) -> Entry:
        """Journal the intent of `action`; it is committed to disk when this returns (rule 7)."""
        now = time.time()
        entry = Entry(0, action.action_id, action.kind, action.tier, action.root, action.target,
                      action.keeper, quarantine_path, temp_path, final_path, "intent",
                      created=now, updated=now, bytes=action.target.size)
        seq = self._call("begin", self._store.append, entry.to_record())
        entry = replace(entry, seq=seq)
        self._count(entry, +1)
        self._log(entry)
        return entry

    def advance(self, action_id: str, state: str, **changes) -> Entry:
        """Move an entry to `state` (the same state: only `changes` are stored).

        Raises `InvalidTransition` for a move the state machine does not allow."""
        old = self.get(action_id)
        if state != old.state and state not in _NEXT.get(old.state, ()):
            raise InvalidTransition(f"action {action_id} cannot go from {old.state} to {state}")
        if {"seq", "action_id", "created"} & set(changes):
            raise InvalidTransition(f"action {action_id}: seq, action_id and created are fixed")
        new = replace(old, state=state, updated=time.time(), **changes)
        self._call("advance", self._store.update, old.seq, new.to_record())
        self._count(old, -1)
        self._count(new, +1)
        self._log(new)
        return new

    def _log(self, entry: Entry) -> None:
        line = json.dumps({"seq": entry.seq, **entry.to_record()}, sort_keys=True) + "\n"
        try:
            os.write(self._mirror, line.encode())
            os.fsync(self._mirror)
        except OSError as e:
            raise JournalError(f"cannot write {self.mirror_path}: {e.strerror}; free disk space "
                               f"or fix the state directory's permissions") from e

    def _call(self, op: str, fn, *args):
        try:
            return fn(*args)
        except IndexFailure as e:
            raise JournalError(f"journal {op} failed: {e}") from e

    # -- reading ----------------------------------------------------------------------
    def get(self, action_id: str) -> Entry:
        """Raises `UnknownAction` when `action_id` was never journaled."""
        seq = self._call("get", self._store.seq_of, action_id)
        raw = self._call("get", self._store.get, seq) if seq is not None else None
        if raw is None:
            raise UnknownAction(f"no action {action_id} in the journal (see `dedupctl journal`)")
        return parse_record(seq, raw)

    def entries(self, states: Iterable[str] | None = None, since: float | None = None,
                path: str | None = None) -> Iterator[Entry]:
        """Entries in journal order, filtered by state, creation time (>= since) and
        path (the target or the stub's name)."""
        wanted = set(states) if states is not None else None
        for entry in self._raw_entries(path):
            if wanted is not None and entry.state not in wanted:
                continue
            if since is not None and entry.created < since:
                continue
            if path is not None and path not in (entry.target.path, entry.final_path):
                continue
            yield entry

    def _raw_entries(self, path: str | None) -> Iterator[Entry]:
        if path is None:
            it = self._store.iter()
            while (item := self._call("iter", next, it, None)) is not None:
                yield parse_record(*item)
            return
        for seq in self._call("seqs_for_path", self._store.seqs_for_path, path):
            raw = self._call("get", self._store.get, seq)
            if raw is not None:
                yield parse_record(seq, raw)

    def unfinished(self) -> list[Entry]:
        return list(self.entries(states=UNFINISHED))

    def last_done_for(self, path: str) -> Entry | None:
        done = list(self.entries(states=("done",), path=path))
        return done[-1] if done else None

    def _count(self, entry: Entry, sign: int) -> None:
        self._counts[entry.state] += sign
        self._bytes[entry.state] += sign * entry.bytes
        if entry.quarantine_kept:
            self._counts["kept"] += sign
            self._bytes["kept"] += sign * entry.bytes

    def totals(self) -> dict:
        """pending_bytes: replaced, still in quarantine (freed by purge); reclaimed_bytes:
        purged; quarantine_entries/bytes: every original the quarantine holds."""
        held = ("done", "undoing", "kept")
        return {
            "pending_bytes": self._bytes["done"] + self._bytes["undoing"],
            "reclaimed_bytes": self._bytes["purged"],
            "quarantine_entries": sum(self._counts[s] for s in held),
            "quarantine_bytes": sum(self._bytes[s] for s in held),
            "by_state": {s: self._counts[s] for s in STATES if self._counts[s]},
        }

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        if self._mirror >= 0:
            os.close(self._mirror)
            self._mirror = -1
        self._store.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
