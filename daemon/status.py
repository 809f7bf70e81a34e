"""What `dedupctl status` reports, computed from the index (read-only)."""

from __future__ import annotations

from collections import Counter

from dedupd.daemon.config import Config
from dedupd.index.records import STATE_OK


def collect_status(config: Config, index) -> dict:
    formats: Counter = Counter()
    errors: Counter = Counter()
    sizes: dict[str, tuple[int, int, int]] = {}
    for r in index.iter_records():
        if r.state == STATE_OK:
            formats[r.format] += 1
        else:
            errors[r.error] += 1
        sizes[r.path] = (r.dev, r.ino, r.size)
    tiers: Counter = Counter()
    reclaimable: Counter = Counter()
    groups = 0
    for g in index.iter_groups():
        groups += 1
        keeper_inode = sizes.get(g["keep"], (0, 0, 0))[:2]
        counted: set = set()
        for m in g["members"]:
            tiers[m["tier"]] += 1
            dev, ino, size = sizes.get(m["path"], (0, 0, 0))
            if m["tier"] in ("exact", "act") and (dev, ino) != keeper_inode and (dev, ino) not in counted:
                counted.add((dev, ino))  # two names of one inode free its bytes once
                reclaimable[m["tier"]] += size
    return {
        "config": config.source,
        "roots": [{"path": r.path, "mode": r.mode, "destructive": r.destructive} for r in config.roots],
        "files_indexed": len(index),
        "images_by_format": dict(sorted(formats.items())),
        "decode_errors_by_kind": dict(sorted(errors.items())),
        "groups": groups,
        "members_by_tier": {t: tiers.get(t, 0) for t in ("exact", "act", "report")},
        "reclaimable_bytes": {"exact": reclaimable["exact"], "act": reclaimable["act"],
                              "total": reclaimable["exact"] + reclaimable["act"]},
        "index": index.stats(),
        "last_scan": index.get_meta("last_scan"),
    }
