"""Configuration: one schema, loaded and validated with every problem reported."""

from dedupd.daemon.config.load import Config, Root, find_config_file, load_config, parse_config
from dedupd.daemon.config.schema import DESTRUCTIVE_MODES, MODES, SCHEMA

__all__ = ["Config", "Root", "find_config_file", "load_config", "parse_config", "DESTRUCTIVE_MODES", "MODES", "SCHEMA"]
