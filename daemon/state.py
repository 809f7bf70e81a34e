"""Open the index that lives in the configured state directory."""

from __future__ import annotations

import os
from typing import Callable

from dedupd.daemon.config import Config
from dedupd.daemon.errors import ConfigError
from dedupd.index import LmdbIndex
from dedupd.kernels import ALGORITHMS


def index_path(config: Config) -> str:
    return os.path.join(config.state_dir, "index")


def open_index(config: Config, *, readonly: bool = False, on_upgrade: Callable[[int], None] | None = None):
    """The LMDB index for `config`; created on first use unless `readonly`. An index of an
    older schema is upgraded in place by a writer, calling `on_upgrade(records done)` as it goes."""
    algo = ALGORITHMS[config.algorithm]
    path = index_path(config)
    if readonly and not os.path.exists(os.path.join(path, "data.mdb")):
        raise ConfigError([f"state_dir: no index at {path} yet: run `dedupctl scan` first"], config.source)
    if not readonly:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ConfigError([f"state_dir: cannot create {path}: {exc.strerror}"], config.source) from exc
    index = LmdbIndex.open(path, code_bits=algo.bits, algo=algo.name, algo_version=algo.version, readonly=readonly,
                           on_upgrade=on_upgrade)
    problems = edge_radius_problems(config, index, record=not readonly)
    if problems:
        index.close()
        raise ConfigError(problems, config.source)
    return index


def edge_radius_problems(config: Config, index, *, record: bool = False) -> list[str]:
    """What in `config` asks for a wider search than the index's stored edges were made
    with (a scan finds upright matches within the report radius, rotated or mirrored ones
    within the rotated radius, crops within the crop radius if the index was built with
    `match_crops`; a wider one needs `dedupctl reindex`). With `record`, a
    new index stores the radii it is being built with, and an index opened without
    `match_crops` forgets its crop radius (the files it indexes get no window codes, so
    turning crops on again needs a reindex)."""
    report = index.get_meta("edge_radius")
    if report is None:
        if record:
            index.set_meta("edge_radius", config.report_threshold)
            index.set_meta("edge_rotated_radius", config.rotated_threshold if config.match_rotations else -1)
            index.set_meta("edge_crop_radius", config.crop_threshold if config.match_crops else -1)
        return []
    # an index made before the rotated radius was stored searched every variant at the report radius
    rotated = index.get_meta("edge_rotated_radius")
    rotated = report if rotated is None else rotated
    problems = []
    if config.report_threshold > report:
        problems.append(f"thresholds.report: {config.report_threshold} is wider than the radius the index was built "
                        f"with ({report}); run `dedupctl reindex` to rebuild it")
    if config.match_rotations and config.rotated_threshold > rotated:
        built = f"({rotated})" if rotated >= 0 else "(built without match_rotations)"
        problems.append(f"thresholds.rotated: {config.rotated_threshold} is wider than the radius the index's rotated "
                        f"matches were found with {built}; run `dedupctl reindex` to rebuild it")
    crop = index.get_meta("edge_crop_radius", -1)  # an index made before crops were matched has none
    if record and crop >= 0 and not config.match_crops:
        index.set_meta("edge_crop_radius", -1)  # files indexed from now on get no window codes
    if config.match_crops and config.crop_threshold > crop:
        built = f"({crop})" if crop >= 0 else "(built without match_crops: its files have no window codes)"
        problems.append(f"thresholds.crop: {config.crop_threshold} is wider than the radius the index's crop matches "
                        f"were found with {built}; run `dedupctl reindex` to rebuild it")
    return problems
