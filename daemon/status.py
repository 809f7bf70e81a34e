"""What `dedupctl status` reports, computed from the index (read-only) and the groups.

Counting images by format and errors by kind over every record is O(files): 10 s at a
million files. The scanner keeps those counts as it writes (`Census`) and stores them
in the index's metadata (`census`, with the record count they hold for), so the daemon
publishes a status at start and after every round without reading every record; only
an index whose stored census does not match its record count is counted in full.

The group totals (members by tier, reclaimable bytes: these need the size and inode of
every group file) are stored with the groups (`store_groups`), so the status at start
reads neither a record nor the groups themselves (at a million files with 5 %
duplicates, looking up the 100,000 group files took 11 s and parsing the 50,000 stored
groups 1.5 s); groups stored without their totals are looked up (`Index.by_paths`).
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from dedupd.daemon.config import Config
from dedupd.daemon.grouping import inode_and_size
from dedupd.index.records import STATE_OK, FileRecord

CENSUS_KEY = "census"
GROUP_TOTALS_KEY = "group_totals"  # GroupTotals.to_json() and the token of the groups they belong to
GROUPS_TOKEN_KEY = "groups_token"  # written after the groups: the totals hold if the tokens match


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


@dataclass(frozen=True)
class GroupTotals:
    """What the status says about the groups: how many, members by tier, and the bytes
    the exact and act members would free (two names of one inode, or a member that is
    the keeper's inode, free nothing)."""

    groups: int
    tiers: Counter
    reclaimable: Counter

    @classmethod
    def of_groups(cls, groups: list) -> "GroupTotals":
        """From `grouping.Group`s (their files carry every size and inode; read only for
        the exact and act members: this runs after every round, over every group)."""
        tiers: Counter = Counter()
        reclaimable: Counter = Counter()
        for g in groups:
            counted = None
            for m in g.members:
                tiers[m.tier] += 1
                if m.tier in ("exact", "act"):
                    if counted is None:
                        counted = {inode_and_size(g.keep)[:2]}
                    dev, ino, size = inode_and_size(m.record)
                    if (dev, ino) not in counted:
                        counted.add((dev, ino))
                        reclaimable[m.tier] += size
        return cls(len(groups), tiers, reclaimable)

    @classmethod
    def of_json(cls, groups: list[dict], sizes: dict[str, tuple[int, int, int]]) -> "GroupTotals":
        """From groups in JSON form and path -> (dev, ino, size) of their files (a file
        missing from `sizes` counts as zero bytes)."""
        tiers: Counter = Counter()
        reclaimable: Counter = Counter()
        for g in groups:
            counted = {sizes.get(g["keep"], (0, 0, 0))[:2]}
            for m in g["members"]:
                tiers[m["tier"]] += 1
                dev, ino, size = sizes.get(m["path"], (0, 0, 0))
                if m["tier"] in ("exact", "act") and (dev, ino) not in counted:
                    counted.add((dev, ino))
                    reclaimable[m["tier"]] += size
        return cls(len(groups), tiers, reclaimable)

    def to_json(self) -> dict:
        return {"groups": self.groups, "tiers": dict(self.tiers), "reclaimable": dict(self.reclaimable)}

    @classmethod
    def from_json(cls, data) -> "GroupTotals | None":
        try:
            return cls(int(data["groups"]), Counter(data["tiers"]), Counter(data["reclaimable"]))
        except (TypeError, KeyError, ValueError):
            return None


def store_groups(index, groups: list) -> None:
    """Store the groups (what `dedupctl groups` reads while the daemon is down) and their
    totals (what the status shows at the next start, before any record is read). The
    totals are written first with a new token and the token again after the groups: a
    crash between the writes leaves totals whose token does not match (`stored_totals`)."""
    token = secrets.token_hex(8)
    index.set_meta(GROUP_TOTALS_KEY, {"token": token, **GroupTotals.of_groups(groups).to_json()})
    # one group's JSON form at a time (`replace_groups` iterates once): the list of all of
    # them was ~14 MB more at 50,000 groups, left as free heap space after the store
    index.replace_groups(g.to_json() for g in groups)
    index.set_meta(GROUPS_TOKEN_KEY, token)


def stored_totals(index) -> GroupTotals | None:
    """The totals of the stored groups, if they were stored with them."""
    totals, token = index.get_meta(GROUP_TOTALS_KEY), index.get_meta(GROUPS_TOKEN_KEY)
    if not isinstance(totals, dict) or token is None or totals.get("token") != token:
        return None
    return GroupTotals.from_json(totals)


def totals_of_stored_groups(index, groups: list[dict] | None = None) -> GroupTotals:
    """The totals of the groups stored in the index (`groups`: them, if already read): the
    stored totals when they hold, else from the records of every group file (`by_paths`)."""
    totals = stored_totals(index)
    if totals is None:
        groups = groups if groups is not None else list(index.iter_groups())
        totals = GroupTotals.of_json(groups, _sizes(index, groups))
    return totals


def collect_status(config: Config, index, census: Census | None = None, totals: GroupTotals | None = None) -> dict:
    """The status document. `census` (default: `Census.of_index`) and `totals` (default:
    `totals_of_stored_groups`) spare the reads the caller already has."""
    census = census if census is not None else Census.of_index(index)
    totals = totals if totals is not None else totals_of_stored_groups(index)
    reclaimable = totals.reclaimable
    return {
        "config": config.source,
        "roots": [{"path": r.path, "mode": r.mode, "destructive": r.destructive} for r in config.roots],
        "files_indexed": len(index),
        "images_by_format": {k: v for k, v in sorted(census.formats.items()) if v},
        "decode_errors_by_kind": {k: v for k, v in sorted(census.errors.items()) if v},
        "groups": totals.groups,
        "members_by_tier": {t: totals.tiers.get(t, 0) for t in ("exact", "act", "report")},
        "reclaimable_bytes": {"exact": reclaimable["exact"], "act": reclaimable["act"],
                              "total": reclaimable["exact"] + reclaimable["act"]},
        "index": index.stats(),
        "last_scan": index.get_meta("last_scan"),
        "last_full_scan": index.get_meta("last_full_scan"),
    }


def _sizes(index, groups: list[dict]) -> dict[str, tuple[int, int, int]]:
    paths = [p for g in groups for p in [g["keep"]] + [m["path"] for m in g["members"]]]
    return {path: (rec.dev, rec.ino, rec.size) for path, rec in index.by_paths(paths).items()}
