"""Errors raised by the index.

Every class derives from `IndexFailure`, itself a `DedupdError`. As elsewhere in
dedupd, a class's docstring is the message shown when no more specific text is
given; the LMDB implementation always adds the index path and what to do.
"""

from __future__ import annotations

from dedupd.kernels.errors import DedupdError

REINDEX_HINT = "run `dedupctl reindex` to rebuild it from the files"


class IndexFailure(DedupdError):
    """The index failed."""


class IndexCorrupt(IndexFailure):
    """The index is damaged or is not a dedupd index; run `dedupctl reindex` to rebuild it."""


class IndexMismatch(IndexFailure):
    """The index was built with other settings; run `dedupctl reindex` to rebuild it."""


class IndexMissing(IndexFailure):
    """There is no index yet; run a scan first."""


class IndexLocked(IndexFailure):
    """Another process writes to the index; stop it or open the index read-only."""


class RecordNotFound(IndexFailure, KeyError):
    """No such record in the index."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PathConflict(IndexFailure):
    """Another record already holds this path; update that record instead."""


class InvalidRecord(IndexFailure, ValueError):
    """The record cannot be stored in this index."""
