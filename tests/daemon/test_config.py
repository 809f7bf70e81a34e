from pathlib import Path

import pytest

from dedupd.daemon.config import load_config, parse_config
from dedupd.daemon.config.schema import DEFAULT_EXCLUDE, DEFAULT_KEEP, ROTATED_DEFAULT
from dedupd.daemon.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def test_shipped_config_is_valid_and_report_only():
    config = load_config(REPO / "config.yaml")
    assert config.roots and all(r.mode == "report" for r in config.roots)
    assert config.algorithm == "lbph"
    assert config.state_dir == str(REPO / ".dedupd" / "state")


def test_defaults_are_safe():
    config = parse_config("roots: [{path: /srv/photos}]")
    assert config.roots[0].mode == "report" and not config.roots[0].destructive
    assert set(DEFAULT_EXCLUDE) <= set(config.exclude)
    assert config.pixel_limit == 100_000_000
    assert config.act_threshold <= config.report_threshold


def test_every_problem_is_reported_with_its_path():
    found = problems(
        "roots: [{path: /a, mode: delete}, {mod: report}, {path: /b, watch: fast}]\n"
        "thresholds: {act: 30, report: 20}\n"
        "workerz: 3\npixel_limit: -1\nmatch_rotations: maybe\nkeep: [most_pixels, prettiest]\n"
    )
    expected = [
        "roots[0].mode: must be one of report, hardlink, symlink, reflink, stub, not 'delete'",
        "roots[1].mod: unknown key (did you mean 'mode'?)",
        "roots[1].path: is required",
        "roots[2].watch: must be one of inotify, poll",
        "thresholds.act: must not exceed thresholds.report",
        "workerz: unknown key (did you mean 'workers'?)",
        "pixel_limit: must be at least 1",
        "match_rotations: must be true or false",
        "keep[1]: must be one of",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in found), (text, found)
    assert len(found) == len(expected)


def test_yaml_syntax_error_names_the_line():
    found = problems("roots:\n  - path: /a\n   mode: [\n")
    assert len(found) == 1 and found[0].startswith("line ")


def test_top_level_must_be_a_mapping():
    assert problems("- just\n- a list\n") == ["(top level): must be a mapping of keys to values, not a list"]


def test_nested_roots_are_refused():
    assert any("roots must not nest" in p for p in problems("roots: [{path: /a}, {path: /a/b}]"))


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    f = tmp_path / "conf" / "dedupd.yaml"
    f.parent.mkdir()
    f.write_text("state_dir: state\nroots: [{path: ../photos}]\n")
    config = load_config(f)
    assert config.state_dir == str(tmp_path / "conf" / "state")
    assert config.roots[0].path == str(tmp_path / "photos")


def test_unreadable_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_64_bit_algorithms_refuse_wide_radii():
    assert any("64 bits" in p for p in problems("algorithm: dhash\nthresholds: {act: 5, report: 70}"))


def test_shipped_config_matches_the_schema_defaults_for_keep_and_thresholds():
    config, schema = load_config(REPO / "config.yaml"), parse_config("")
    assert config.keep == schema.keep == DEFAULT_KEEP
    assert config.keep.index("has_exif") < config.keep.index("bytes_per_pixel")
    assert (config.act_threshold, config.report_threshold, config.rotated_threshold) == \
        (schema.act_threshold, schema.report_threshold, schema.rotated_threshold) == (24, 28, ROTATED_DEFAULT)


def test_rotated_radius_defaults_and_limits():
    assert parse_config("thresholds: {act: 8, report: 16}").rotated_threshold == 16  # never above report
    assert parse_config("thresholds: {act: 8, report: 24, rotated: 12}").rotated_threshold == 12
    found = problems("thresholds: {act: 16, report: 24, rotated: 26}")
    assert found == ["thresholds.rotated: must not exceed thresholds.report (26 > 24); "
                     "rotated and mirrored matches are a subset of the report tier"]
    assert problems("thresholds: {rotated: -1}") == ["thresholds.rotated: must be at least 0, not -1"]
