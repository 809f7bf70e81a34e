"""Which copy of a group survives: composable keep rules, and the fidelity guard.

Rules are applied in the configured order; the first rule that tells two copies apart
decides (a lexicographic sort key). The optional `representative` rule prefers the copy
with the highest PageRank over the near-duplicate graph (the copy closest to most of
the others); it helps when copies are alike in size, format and metadata, e.g. a folder
of re-exports at one resolution, where it picks the centre of the cluster rather than
an arbitrary name, so that more members fall within the act radius of the keeper. Two things are not configurable, because they are
safety rules (SAFETY.md rule 12): a copy inside a trash, snapshot, recycle, thumbnail
or quarantine folder is never preferred as keeper, and `may_replace` refuses to let a
copy be replaced by one of lower fidelity whatever the rules chose.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Callable, Mapping, Sequence

from dedupd.index.records import FileRecord

# Folder names a keeper must never live in (matched per path component, case-insensitive).
NEVER_KEEP_DIRS = (
    "@eadir", "#recycle", "#snapshot", ".snapshots", ".zfs", ".trash*", "@gmt-*", ".dedupd-quarantine",
    "$recycle.bin", ".thumbnails", "thumbs", "thumbnails", "trash", ".trashes", "recycle bin",
)


def in_never_keep_folder(path: str) -> bool:
    parts = [p.lower() for p in path.split(os.sep)[:-1]]
    return any(fnmatch.fnmatchcase(part, pat) for part in parts for pat in NEVER_KEEP_DIRS)


def _bytes_per_pixel(r: FileRecord) -> float:
    return r.size / r.pixels if r.pixels else 0.0


def _priority(paths: Sequence[str]) -> Callable[[FileRecord], int]:
    prefixes = [p.rstrip(os.sep) + os.sep for p in paths]

    def rank(r: FileRecord) -> int:
        return next((i for i, p in enumerate(prefixes) if r.path.startswith(p)), len(prefixes))

    return rank


def keep_key(rules: Sequence[str], path_priority: Sequence[str] = (),
             representative: Mapping[int, float] | None = None) -> Callable[[FileRecord], tuple]:
    """A sort key: the best keeper sorts first. Unknown rule names raise KeyError.
    `representative`: file id -> PageRank score, for the `representative` rule."""
    scores = representative or {}
    rule_keys: dict[str, Callable[[FileRecord], object]] = {
        "most_pixels": lambda r: -r.pixels,
        "lossless": lambda r: 0 if r.lossless else 1,
        "bytes_per_pixel": lambda r: -_bytes_per_pixel(r),
        "has_exif": lambda r: 0 if r.has_exif else 1,
        "oldest": lambda r: r.mtime_ns,
        "path_priority": _priority(path_priority),
        "shortest_path": lambda r: len(r.path),
        "representative": lambda r: -scores.get(r.file_id, 0.0),
    }
    chosen = [rule_keys[name] for name in rules]

    def key(r: FileRecord) -> tuple:
        # never-keep folders first, the configured rules next, the path last so ties are stable
        return (in_never_keep_folder(r.path), *(f(r) for f in chosen), r.path)

    return key


def may_replace(keeper: FileRecord, member: FileRecord) -> bool:
    """True when replacing `member` by `keeper` loses no fidelity (pixels, losslessness, EXIF)."""
    return (
        keeper.pixels >= member.pixels
        and (keeper.lossless or not member.lossless)
        and (keeper.has_exif or not member.has_exif)
        and not in_never_keep_folder(keeper.path)
    )
