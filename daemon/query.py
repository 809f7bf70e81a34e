"""`dedupctl query FILE`: the indexed images near one file, with distance and variant."""

from __future__ import annotations

import os

from dedupd.daemon.config import Config
from dedupd.daemon.errors import UsageError
from dedupd.daemon.fingerprinting import check_pair, fingerprint_file
from dedupd.daemon.grouping import Thresholds, tier_of
from dedupd.daemon.walk import FileRef
from dedupd.index.edges import Edge
from dedupd.kernels.dihedral import DIHEDRAL


def query_file(config: Config, index, path: str, radius: int | None = None) -> list[dict]:
    """Matches sorted by distance; each names the variant that maps FILE onto the match
    and the tier the pair would get with FILE as the keeper."""
    st = os.stat(path)
    result = fingerprint_file(FileRef.from_stat(path, st), config.algorithm, config.pixel_limit)
    if result.variants is None:
        raise UsageError(f"{path}: cannot be fingerprinted ({result.record.error})")
    queries = result.variants if config.match_rotations else result.variants[:1]
    radius = config.report_threshold if radius is None else radius
    thresholds = Thresholds(config.act_threshold, config.report_threshold, config.min_quality, config.match_rotations)
    best: dict[int, tuple[int, int]] = {}
    for variant, hits in enumerate(index.range_search_many(queries, radius)):
        for file_id, distance in hits:
            if file_id not in best or (distance, variant) < best[file_id]:
                best[file_id] = (distance, variant)
    out = []
    for file_id, (distance, variant) in sorted(best.items(), key=lambda kv: (kv[1], kv[0])):
        other = index.get(file_id)
        verified = variant == 0 and distance <= config.act_threshold and check_pair(
            result.record, other, result.thumb, None, config.pixel_limit)
        out.append({
            "path": other.path,
            "distance": distance,
            "variant": DIHEDRAL[variant],
            "tier": tier_of(result.record, other, Edge(0, file_id, distance, variant, verified), thresholds),
            "verified": verified,
            "same_file": (other.dev, other.ino) == (st.st_dev, st.st_ino),
        })
    return out

