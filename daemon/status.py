"""What `dedupctl status` reports, computed from the index (read-only) and the groups.

Counting images by format and errors by kind over every record is O(files): 10 s at a
million files. The scanner keeps those counts as it writes (`Census`) and stores them
in the index's metadata (`census`, with the record count they hold for), so the daemon
publishes a status at start and after every round without reading every record; only
an index whose stored census does not match its record count is counted in full.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from dedupd.daemon.config import Config
from dedupd.index.records import STATE_OK, FileRecord

CENSUS_KEY = "census"


@dataclass
class Census:
    """Records by format (state ok) and by error kind."""

    formats: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)

    def add(self, rec: FileRecord, sign: int = 1) -> None:
        if rec.state == STATE_OK:
            self.formats[rec.format] += sign
        else:
            self.errors[rec.error] += sign

    def remove(self, rec: FileRecord) -> None:
        self.add(rec, -1)

    @property
    def files(self) -> int:
        return sum(self.formats.values()) + sum(self.errors.values())

    @classmethod
    def count(cls, records: Iterable[FileRecord]) -> "Census":
        census = cls()
        for r in records:
            census.add(r)
        return census

    @classmethod
    def stored(cls, index) -> "Census | None":
        """The census stored in the index, if it holds for the index's record count."""
        stored = index.get_meta(CENSUS_KEY)
        if isinstance(stored, dict) and stored.get("files") == len(index):
            return cls(Counter(stored.get("formats", {})), Counter(stored.get("errors", {})))
        return None

    @classmethod
    def of_index(cls, index) -> "Census":
        """The stored census when it holds, else a full count."""
        return cls.stored(index) or cls.count(index.iter_records())

    def to_json(self) -> dict:
        return {"files": self.files, "formats": {k: v for k, v in self.formats.items() if v},
                "errors": {k: v for k, v in self.errors.items() if v}}


def collect_status(config: Config, index, groups: list[dict] | None = None, census: Census | None = None,
                   sizes: dict[str, tuple[int, int, int]] | None = None) -> dict:
    """The status document. `groups` (JSON form; default: as stored in the index),
    `census` (default: `Census.of_index`) and `sizes` (path -> (dev, ino, size) of group
    files; default: looked up by path) spare the reads the caller already has."""
    census = census if census is not None else Census.of_index(index)
    groups = groups if groups is not None else list(index.iter_groups())
    tiers, reclaimable = _tiers(groups, sizes if sizes is not None else _sizes(index, groups))
    return {
        "config": config.source,
        "roots": [{"path": r.path, "mode": r.mode, "destructive": r.destructive} for r in config.roots],
        "files_indexed": len(index),
        "images_by_format": {k: v for k, v in sorted(census.formats.items()) if v},
        "decode_errors_by_kind": {k: v for k, v in sorted(census.errors.items()) if v},
        "groups": len(groups),
        "members_by_tier": {t: tiers.get(t, 0) for t in ("exact", "act", "report")},
        "reclaimable_bytes": {"exact": reclaimable["exact"], "act": reclaimable["act"],
                              "total": reclaimable["exact"] + reclaimable["act"]},
        "index": index.stats(),
        "last_scan": index.get_meta("last_scan"),
        "last_full_scan": index.get_meta("last_full_scan"),
    }


def _sizes(index, groups: list[dict]) -> dict[str, tuple[int, int, int]]:
    out = {}
    for g in groups:
        for path in [g["keep"]] + [m["path"] for m in g["members"]]:
            rec = index.by_path(path)
            if rec is not None:
                out[path] = (rec.dev, rec.ino, rec.size)
    return out


def sizes_of(groups) -> dict[str, tuple[int, int, int]]:
    """path -> (dev, ino, size) of every file of `Group`s (records in hand, no reads)."""
    out = {}
    for g in groups:
        for r in [g.keep] + [m.record for m in g.members]:
            out[r.path] = (r.dev, r.ino, r.size)
    return out


def _tiers(groups: list[dict], sizes: dict) -> tuple[Counter, Counter]:
    tiers: Counter = Counter()
    reclaimable: Counter = Counter()
    for g in groups:
        keeper_inode = sizes.get(g["keep"], (0, 0, 0))[:2]
        counted: set = set()
        for m in g["members"]:
            tiers[m["tier"]] += 1
            dev, ino, size = sizes.get(m["path"], (0, 0, 0))
            if m["tier"] in ("exact", "act") and (dev, ino) != keeper_inode and (dev, ino) not in counted:
                counted.add((dev, ino))  # two names of one inode free its bytes once
                reclaimable[m["tier"]] += size
    return tiers, reclaimable
