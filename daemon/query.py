"""`dedupctl query FILE`: the indexed images near one file, with distance and variant."""

from __future__ import annotations

import os
from dataclasses import replace

from dedupd.daemon.config import Config
from dedupd.daemon.errors import UsageError
from dedupd.daemon.fingerprinting import check_crop, check_pair, fingerprint_file
from dedupd.daemon.grouping import Thresholds, admit, tier_of
from dedupd.daemon.linking import lookup
from dedupd.daemon.walk import FileRef
from dedupd.index.edges import CROP_VARIANT, VARIANT_NAMES, Edge, variant_name


def query_file(config: Config, index, path: str, radius: int | None = None) -> list[dict]:
    """Matches sorted by distance; each names the variant that maps FILE onto the match
    and the tier the pair would get with FILE as the keeper. A match through a rotated or
    mirrored variant counts as grouping counts it (`grouping.admit`: within
    thresholds.rotated, informative hashes); `radius` widens only the upright search. Box
    codes are searched too (FILE's box code, the indexed files' box codes: variant "box"), and
    with match_crops the window codes (variant "crop": counted once confirmed as a crop)."""
    st = os.stat(path)
    result = fingerprint_file(FileRef.from_stat(path, st), config.algorithm, config.pixel_limit, crops=config.match_crops)
    if result.variants is None:
        raise UsageError(f"{path}: cannot be fingerprinted ({result.record.error})")
    queries = result.variants if config.match_rotations else result.variants[:1]
    radius = config.report_threshold if radius is None else radius
    thresholds = Thresholds.from_config(config)
    wide = Thresholds(thresholds.act, max(radius, thresholds.report), thresholds.min_quality, thresholds.rotations,
                      thresholds.rotated_radius, thresholds.crops, thresholds.crop_radius)
    crop_radius = thresholds.crop_radius if config.match_crops else -1
    best = lookup(index, 0, queries, [radius] * len(queries), result.record.box_code, radius,  # 0: FILE is not indexed
                  config.act_threshold, result.crop_queries, crop_radius)
    out = []
    for file_id, found in best.items():
        other = index.get(file_id)
        if found.variant == CROP_VARIANT:  # counted only once confirmed
            found = replace(found, verified=check_crop(result.record, other, result.thumb, None, config.pixel_limit))
        edge = admit(found, result.record, other, wide)
        if edge is None or edge.distance > radius:
            continue
        if edge.variant == CROP_VARIANT:
            verified = edge.verified
        else:
            verified = edge.variant == 0 and edge.distance <= config.act_threshold and check_pair(
                result.record, other, result.thumb, None, config.pixel_limit)
        out.append({
            "path": other.path,
            "distance": edge.distance,
            "variant": variant_name(edge.variant),
            "tier": tier_of(result.record, other, Edge(0, file_id, edge.distance, edge.variant, verified), thresholds),
            "verified": verified,
            "same_file": (other.dev, other.ino) == (st.st_dev, st.st_ino),
        })
    return sorted(out, key=lambda m: (m["distance"], VARIANT_NAMES.index(m["variant"]), m["path"]))
