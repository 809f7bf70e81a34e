"""A record's extra codes as searchable rows: box codes and crop windows under alias ids.

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

A record may also carry window codes (`FileRecord.crop_codes`, `dedupd.daemon.cropcodes`:
the codes of windows around the picture's strongest keypoints, how a crop of it is found).
Each is a row of `codes` too, under the alias id `BOX_ALIAS | slot << SLOT_SHIFT | file_id`
with slot 1, 2, ... (the box row is slot 0), added, replaced and dropped with the record like
the box row (`alias_rows` lists what a record should have). Ascending ids put every box row
before every window row (`split_windows`).

Anything that means "the records' codes" (`all_codes`, `range_search`, counts of files)
never sees an alias row; alias rows are searched only on request (`range_search_many(...,
boxes=True)`: box and window rows alike, `slot_of` tells them apart) and listed by
`all_box_codes` (the box rows) and `all_crop_codes` (the window rows).
"""

from __future__ import annotations

import numpy as np

from .base import is_searchable
from .records import MAX_CROP_CODES, FileRecord  # noqa: F401 (slots 1..MAX_CROP_CODES)

BOX_ALIAS = 1 << 62
SLOT_SHIFT = 40  # file ids stay below 2**40 (`codec.LOOKUP_ID_MAX`)
ID_MASK = (1 << SLOT_SHIFT) - 1
WINDOW_ALIAS = BOX_ALIAS | 1 << SLOT_SHIFT  # the smallest window row id


def alias(file_id: int, slot: int = 0) -> int:
    """The id of `file_id`'s alias row `slot` (0: its box row; 1, 2, ...: its window rows)."""
    return BOX_ALIAS | slot << SLOT_SHIFT | file_id


def is_alias(row_id: int) -> bool:
    return row_id >= BOX_ALIAS


def is_window(row_id: int) -> bool:
    return row_id >= WINDOW_ALIAS


def owner(row_id: int) -> int:
    """The file id a row belongs to (itself for a record's own row)."""
    return row_id & ID_MASK


def owners(row_ids: np.ndarray) -> np.ndarray:
    """`owner` of every id of an int64 array."""
    return np.asarray(row_ids, np.int64) & np.int64(ID_MASK)


def box_of(rec: FileRecord) -> tuple[int, int] | None:
    """The code the record's box row holds, as two ints (None: no box row)."""
    box = rec.box_code
    return (int(box[0]), int(box[1])) if box is not None and is_searchable(rec) else None


def alias_rows(rec: FileRecord) -> dict[int, tuple[int, int]]:
    """Every alias row the record should have, {alias id: code}: its box row and its window
    rows, none unless it is searchable."""
    if not is_searchable(rec):
        return {}
    rows = {alias(rec.file_id, slot): (int(c[0]), int(c[1])) for slot, c in enumerate(rec.crop_codes, 1)}
    box = rec.box_code
    if box is not None:
        rows[alias(rec.file_id)] = (int(box[0]), int(box[1]))
    return rows


def row_changes(old: FileRecord | None, new: FileRecord | None) -> list[tuple[int, tuple[int, int] | None]]:
    """The alias-row changes (row id, code or None: drop) that turn `old`'s rows into `new`'s
    (either may be None: a record added or removed), ids ascending."""
    before = alias_rows(old) if old is not None else {}
    after = alias_rows(new) if new is not None else {}
    changes = [(i, None) for i in before if i not in after]
    changes += [(i, code) for i, code in after.items() if before.get(i) != code]
    return sorted(changes)


def split_windows(ids: np.ndarray) -> int:
    """The first alias row of ids (ascending alias ids) that is a window row."""
    return int(np.searchsorted(ids, WINDOW_ALIAS))


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
