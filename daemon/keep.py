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

`bytes_per_pixel` is a compression proxy, not a measurement: a re-encode at the same
quality, a brightened or a noisier copy of one picture is a few percent larger than its
source. So two copies whose bytes per pixel differ by at most `BPP_TIE` count as equal
there and the next rule decides (`oldest`, usually). "Within 10 %" is not transitive, so
a plain sort key cannot express it: `KeepKey.among` compares each file with its peers
(the copies it competes with, e.g. its neighbours in the near-duplicate graph); a file
within the tolerance of the best of its peers ranks as that best.

Two JPEGs quantized alike (the same `FileRecord.encoding`: the same quantization tables and
sampling) were saved at the same fidelity, so a difference in their bytes per pixel is
content, not quality: noise added to a copy makes it 1.1-4x larger (docs/accuracy.md §4),
and without this rule the noisy copy was the keeper of 95 of 120 noise pairs. Such a file
ranks as the best of its peers with the same encoding, and the next rule decides.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping, Sequence

from dedupd.index.records import FileRecord

# Folder names a keeper must never live in (matched per path component, case-insensitive).
NEVER_KEEP_DIRS = (
    "@eadir", "#recycle", "#snapshot", ".snapshots", ".zfs", ".trash*", "@gmt-*", ".dedupd-quarantine",
    "$recycle.bin", ".thumbnails", "thumbs", "thumbnails", "trash", ".trashes", "recycle bin",
)
# Measured on the 369 corpus photos (docs/accuracy.md §4): re-saving a picture at JPEG quality 92
# instead of 90 adds 4 % (median; p90 9 %), 88 -> 92 adds 12 %, 85 -> 92 21 %. Of the q92
# re-encodes (EXIF-rotated copies, +8 % brightness) that came out larger than their original,
# 84-85 % are within 10 % (within 20 %: 85-86 %; the rest re-encode a more compressed original).
# 10 % ties those and still lets a real quality step decide.
BPP_TIE = 0.10


_NEVER_KEEP = re.compile("|".join(fnmatch.translate(pat) for pat in NEVER_KEEP_DIRS))


def in_never_keep_folder(path: str) -> bool:
    return _never_keep_dir(os.path.dirname(path))


@functools.lru_cache(maxsize=1 << 16)
def _never_keep_dir(folder: str) -> bool:
    # cached per folder: the keep key asks for every file, and a library has few folders
    return any(_NEVER_KEEP.match(part.lower()) for part in folder.split(os.sep))


def bytes_per_pixel(r: FileRecord) -> float:
    return r.size / r.pixels if r.pixels else 0.0


def _priority(paths: Sequence[str]) -> Callable[[FileRecord], int]:
    prefixes = [p.rstrip(os.sep) + os.sep for p in paths]

    def rank(r: FileRecord) -> int:
        return next((i for i, p in enumerate(prefixes) if r.path.startswith(p)), len(prefixes))

    return rank


@dataclass(frozen=True)
class KeepKey:
    """A sort key over FileRecords: the best keeper sorts first (call it on a record).

    Without peers `bytes_per_pixel` compares exactly; `among` and `best_copy` make it
    tolerant. Unknown rule names raise KeyError."""

    rules: tuple[str, ...]
    path_priority: tuple[str, ...] = ()
    representative: Mapping[int, float] = field(default_factory=dict)
    bpp_tie: float = BPP_TIE
    # the best bytes per pixel among a record's peers (0.0: none known)
    ceiling: Callable[[FileRecord], float] = field(default=lambda r: 0.0, compare=False)
    # the best bytes per pixel among a record's peers quantized alike (0.0: none known)
    alike: Callable[[FileRecord], float] = field(default=lambda r: 0.0, compare=False)

    def __post_init__(self):
        unknown = [r for r in self.rules if r not in _RULES]
        if unknown:
            raise KeyError(f"unknown keep rule(s): {', '.join(unknown)}")
        object.__setattr__(self, "_rank_path", _priority(self.path_priority))

    def __call__(self, r: FileRecord) -> tuple:
        # never-keep folders first, the configured rules next, the path last so ties are stable
        return (in_never_keep_folder(r.path), *(_RULES[name](self, r) for name in self.rules), r.path)

    def before_bpp(self, r: FileRecord) -> tuple:
        """The values of the rules ahead of `bytes_per_pixel`: only files equal there compete on it."""
        head = self.rules[: self.rules.index("bytes_per_pixel")] if "bytes_per_pixel" in self.rules else self.rules
        return (in_never_keep_folder(r.path), *(_RULES[name](self, r) for name in head))

    def among(self, records: Mapping[int, FileRecord], peers: Mapping[int, Iterable[int]]) -> "KeepKey":
        """This order with a tolerant `bytes_per_pixel`: the bytes per pixel of file i within
        `bpp_tie` of the best among i's peers (the ids peers[i] that are equal to i on the
        rules ahead of `bytes_per_pixel`) counts as that best."""
        if "bytes_per_pixel" not in self.rules:
            return self
        head: dict[int, tuple] = {}  # file id -> before_bpp, computed once per file

        def rank(i: int) -> tuple:
            if i not in head:
                head[i] = self.before_bpp(records[i])
            return head[i]

        best: dict[int, float] = {}
        alike: dict[int, float] = {}
        for i, near in peers.items():
            rivals = [records[j] for j in near if j in records and rank(j) == rank(i)]
            best[i] = max((bytes_per_pixel(r) for r in rivals), default=0.0)
            if i in records and records[i].encoding:
                alike[i] = max((bytes_per_pixel(r) for r in rivals if r.encoding == records[i].encoding), default=0.0)
        return replace(self, ceiling=lambda r: best.get(r.file_id, 0.0), alike=lambda r: alike.get(r.file_id, 0.0))

    def _bpp(self, r: FileRecord) -> float:
        own, best = max(bytes_per_pixel(r), self.alike(r)), self.ceiling(r)
        return -best if own < best <= own * (1.0 + self.bpp_tie) else -own


_RULES: dict[str, Callable[[KeepKey, FileRecord], object]] = {
    "most_pixels": lambda k, r: -r.pixels,
    "lossless": lambda k, r: 0 if r.lossless else 1,
    "bytes_per_pixel": KeepKey._bpp,
    "has_exif": lambda k, r: 0 if r.has_exif else 1,
    "oldest": lambda k, r: r.mtime_ns,
    "path_priority": lambda k, r: k._rank_path(r),
    "shortest_path": lambda k, r: len(r.path),
    "representative": lambda k, r: -k.representative.get(r.file_id, 0.0),
}


def keep_key(rules: Sequence[str], path_priority: Sequence[str] = (),
             representative: Mapping[int, float] | None = None, bpp_tie: float = BPP_TIE) -> KeepKey:
    """A sort key: the best keeper sorts first. Unknown rule names raise KeyError.
    `representative`: file id -> PageRank score, for the `representative` rule."""
    return KeepKey(tuple(rules), tuple(path_priority), representative or {}, bpp_tie)


def best_copy(records: Sequence[FileRecord], key: KeepKey) -> FileRecord:
    """The keeper among copies that all compete with each other: `bytes_per_pixel` is
    tolerant across the whole set."""
    best: dict[tuple, float] = {}  # before_bpp -> the best bytes per pixel there
    alike: dict[tuple, float] = {}  # (before_bpp, encoding) -> the same among files quantized alike
    for r in records:
        k, bpp = key.before_bpp(r), bytes_per_pixel(r)
        best[k] = max(best.get(k, 0.0), bpp)
        if r.encoding:
            alike[k, r.encoding] = max(alike.get((k, r.encoding), 0.0), bpp)
    return min(records, key=replace(key, ceiling=lambda r: best[key.before_bpp(r)],
                                    alike=lambda r: alike.get((key.before_bpp(r), r.encoding), 0.0)))


def may_replace(keeper: FileRecord, member: FileRecord) -> bool:
    """True when replacing `member` by `keeper` loses no fidelity (pixels, losslessness, EXIF)."""
    return (
        keeper.pixels >= member.pixels
        and (keeper.lossless or not member.lossless)
        and (keeper.has_exif or not member.has_exif)
        and not in_never_keep_folder(keeper.path)
    )
