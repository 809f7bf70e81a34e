"""Box codes as searchable rows: the alias id of a record's second code.

A record whose picture has uniform bars at its edges (a letterboxed copy, a picture in a
plain frame) carries a second code, the LBPH of its content box (`FileRecord.box_code`,
`dedupd.kernels.contentbox`). The index keeps it as a row of the same `codes` table as the
records' own codes, under the alias id `BOX_ALIAS | file_id`: the row exists exactly while
the record is searchable (`base.is_searchable`) and has a box code, and the writers of both
index implementations add, replace and drop it with the record.

Real file ids stay far below the alias bit (the lookup tables refuse ids from 2**40 on,
`codec.LOOKUP_ID_MAX`), and 2**62 keeps alias ids positive in the int64 id arrays of the
in-RAM code tables. Alias rows sort after every record's row, so a table of all rows is the
records' rows followed by the box rows (`split_at`).

Anything that means "the records' codes" (`all_codes`, `range_search`, counts of files)
never sees an alias row; box rows are searched only on request (`range_search_many(...,
boxes=True)`) and listed by `all_box_codes`.
"""

from __future__ import annotations

import numpy as np

from .base import is_searchable
from .records import FileRecord

BOX_ALIAS = 1 << 62


def alias(file_id: int) -> int:
    """The id of `file_id`'s box row."""
    return BOX_ALIAS | file_id


def is_alias(row_id: int) -> bool:
    return row_id >= BOX_ALIAS


def owner(row_id: int) -> int:
    """The file id a row belongs to (itself for a record's own row)."""
    return row_id & ~BOX_ALIAS


def owners(row_ids: np.ndarray) -> np.ndarray:
    """`owner` of every id of an int64 array."""
    return np.asarray(row_ids, np.int64) & np.int64(BOX_ALIAS - 1)


def box_of(rec: FileRecord) -> tuple[int, int] | None:
    """The code the record's box row holds, as two ints (None: no box row)."""
    box = rec.box_code
    return (int(box[0]), int(box[1])) if box is not None and is_searchable(rec) else None


def split_at(ids: np.ndarray) -> int:
    """The first row of ids (ascending) that is an alias: rows before it are the records' own."""
    return int(np.searchsorted(ids, BOX_ALIAS))


def query_mask(boxes, k: int) -> np.ndarray:
    """Which of k queries also search the box rows: `boxes` True or False for all of them, or
    a sequence of k bools (ValueError otherwise)."""
    if isinstance(boxes, (bool, np.bool_)):
        return np.full(k, bool(boxes))
    mask = np.asarray(boxes)
    if mask.shape != (k,) or (mask.dtype != bool and k):
        raise ValueError(f"boxes must be a bool or one bool per query ({k}), not {boxes!r}")
    return mask.astype(bool)


def split_changes(changes: list) -> tuple[list, list]:
    """(changes of records' rows, changes of box rows) of a list of (row id, code or None)."""
    own, box = [], []
    for change in changes:
        (box if change[0] >= BOX_ALIAS else own).append(change)
    return own, box
