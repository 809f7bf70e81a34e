"""Actions: plan a replacement (a value), execute it by the replace protocol of
SAFETY.md section A, journal every step, recover after a crash, undo, purge, restore.

    plan_replacement(...) -> Action | Skip       plan.py     (dry run: Plan.describe())
    Journal.open(state_dir)                      journal.py  (LMDB + journal.jsonl)
    Executor(journal).execute(action) -> Outcome executor.py (never raises per file)
    recover(journal) -> RecoveryReport           recover.py  (run before any new work)
    undo(journal, action_id), select(...)        undo.py
    purge(journal, older_than_seconds=...)       purge.py
    restore_stub(stub_path, journal) -> str      restore.py
    render(stub) / parse(bytes)                  stub.py
"""

from .errors import (ActionError, InvalidTransition, JournalCorrupt, JournalError, NotRegular,
                     RestoreRefused, StubError, UndoRefused, UnknownAction)
from .executor import FAILPOINTS, Executor, Outcome
from .journal import Entry, Journal
from .plan import Action, FileState, Plan, Skip, plan_replacement
from .purge import PurgeReport, purge
from .recover import RecoveryReport, recover
from .restore import RESTORE_FAILPOINTS, restore_stub
from .undo import UNDO_FAILPOINTS, UndoResult, select, undo

__all__ = [
    "Action", "FileState", "Plan", "Skip", "plan_replacement",
    "Journal", "Entry", "Executor", "Outcome", "FAILPOINTS", "UNDO_FAILPOINTS", "RESTORE_FAILPOINTS",
    "recover", "RecoveryReport", "undo", "select", "UndoResult", "purge", "PurgeReport", "restore_stub",
    "ActionError", "JournalError", "JournalCorrupt", "InvalidTransition", "UnknownAction",
    "NotRegular", "StubError", "UndoRefused", "RestoreRefused",
]
