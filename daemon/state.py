"""Open the index that lives in the configured state directory."""

from __future__ import annotations

import os

from dedupd.daemon.config import Config
from dedupd.daemon.errors import ConfigError
from dedupd.index import LmdbIndex
from dedupd.kernels import ALGORITHMS


def index_path(config: Config) -> str:
    return os.path.join(config.state_dir, "index")


def open_index(config: Config, *, readonly: bool = False):
    """The LMDB index for `config`; created on first use unless `readonly`."""
    algo = ALGORITHMS[config.algorithm]
    path = index_path(config)
    if readonly and not os.path.exists(os.path.join(path, "data.mdb")):
        raise ConfigError([f"state_dir: no index at {path} yet: run `dedupctl scan` first"], config.source)
    if not readonly:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ConfigError([f"state_dir: cannot create {path}: {exc.strerror}"], config.source) from exc
    index = LmdbIndex.open(path, code_bits=algo.bits, algo=algo.name, algo_version=algo.version, readonly=readonly)
    edge_radius = index.get_meta("edge_radius")
    if edge_radius is None and not readonly:
        index.set_meta("edge_radius", config.report_threshold)
    elif edge_radius is not None and config.report_threshold > edge_radius:
        index.close()
        raise ConfigError(
            [f"thresholds.report: {config.report_threshold} is wider than the radius the index was built with "
             f"({edge_radius}); run `dedupctl reindex` to rebuild it"],
            config.source,
        )
    return index
