"""From groups to a plan: which copies to replace now, and which to leave and why.

Only `exact` and verified `act` members are ever acted on (SAFETY.md rule 11), only
in roots whose mode is destructive (rule 10), only when both files are in available
roots (rule 18), never with a keeper in a trash/snapshot/quarantine folder (rule 12),
and only once both files have been quiet for the settle period (rule 17): a file still
being written is deferred, not judged. The plan is a value; `Plan.describe()` is the
dry run, and the executor (`dedupd.daemon.actions.executor`) carries it out.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from dedupd.daemon.actions.plan import Action, Plan, Skip, plan_replacement
from dedupd.daemon.config import Config, Root
from dedupd.daemon.grouping import Group
from dedupd.daemon.keep import in_never_keep_folder
from dedupd.index.records import FileRecord

ACTABLE_TIERS = ("exact", "act")


@dataclass(frozen=True)
class Decision:
    plan: Plan
    deferred: tuple[str, ...] = ()  # paths not yet quiet: look again after the settle period


def root_of(path: str, roots: Iterable[Root]) -> Root | None:
    for root in roots:
        if path == root.path or path.startswith(root.path.rstrip(os.sep) + os.sep):
            return root
    return None


def decide(
    groups: Iterable[Group],
    config: Config,
    *,
    available: Callable[[str], bool],
    already_replaced: Callable[[FileRecord], bool],
    now: float | None = None,
) -> Decision:
    """Plan the replacement of every actable member of `groups`.

    `available(root_path)`: the root is mounted and healthy. `already_replaced(record)`:
    the file at the record's path is a replacement we made (its inode is the journal's
    result), so there is nothing left to do.
    """
    now = time.time() if now is None else now
    actions: list[Action] = []
    skipped: list[Skip] = []
    deferred: list[str] = []
    for group in groups:
        for member in group.members:
            if member.tier not in ACTABLE_TIERS:
                continue
            outcome = _decide_member(group.keep, member.record, member.tier, config, available, already_replaced, now)
            if isinstance(outcome, Action):
                actions.append(outcome)
            elif isinstance(outcome, Skip):
                skipped.append(outcome)
            elif outcome == "defer":
                deferred.append(member.record.path)
    return Decision(Plan(tuple(actions), tuple(skipped)), tuple(deferred))


def _decide_member(keeper: FileRecord, target: FileRecord, tier: str, config: Config, available, already_replaced, now):
    root = root_of(target.path, config.roots)
    if root is None or not root.destructive:
        return None  # report mode: the group is the report
    keeper_root = root_of(keeper.path, config.roots)
    if not available(root.path) or keeper_root is None or not available(keeper_root.path):
        return Skip(target.path, "root_unavailable", "a root involved is not mounted or not healthy")
    if in_never_keep_folder(keeper.path):
        return Skip(target.path, "keeper_in_protected_folder", keeper.path)
    if (target.dev, target.ino) == (keeper.dev, keeper.ino) or already_replaced(target):
        return None  # done already
    quiet_since = now - config.settle_seconds
    if max(target.mtime_ns, target.ctime_ns, keeper.mtime_ns, keeper.ctime_ns) / 1e9 > quiet_since:
        return "defer"
    return plan_replacement(
        target.path, target.content_hash, keeper.path, keeper.content_hash,
        mode=root.mode, fallback=root.hardlink_fallback, root=root.path, tier=tier,
    )
