"""Typed errors of the actions package; each docstring is the default message.

Per-file problems met while *executing* an action never raise: the executor
returns an aborted `Outcome` with a reason kind. What raises is what must stop the
daemon or a `dedupctl` command: journal failures, and refusals of user commands
(undo, restore) whose message says what to do.
"""

from __future__ import annotations

from dedupd.daemon.errors import FileProblem
from dedupd.kernels.errors import DedupdError


class NotRegular(FileProblem):
    """not a regular file (directory, symlink, device, ...); dedupd only replaces regular files"""

    kind = "not_regular"


class ActionError(DedupdError):
    """An action could not be carried out."""


class JournalError(ActionError):
    """The action journal failed; dedupd stops so that no replacement goes unrecorded."""


class JournalCorrupt(JournalError):
    """A journal record is malformed."""

    def __init__(self, seq: int, detail: str):
        self.seq, self.detail = seq, detail
        super().__init__(f"journal entry {seq} is malformed: {detail}; the quarantine folders still "
                         f"hold the bytes; move the journal directory aside and keep it for support")


class InvalidTransition(JournalError):
    """A journal entry cannot move to the requested state."""


class UnknownAction(ActionError, KeyError):
    """No such action in the journal."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else (self.__doc__ or "").strip()


class StubError(ActionError, ValueError):
    """The file is not a valid dedupd stub."""


class UndoRefused(ActionError):
    """The action cannot be undone."""


class RestoreRefused(ActionError):
    """The stub cannot be restored."""
