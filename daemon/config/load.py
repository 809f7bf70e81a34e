"""Load and validate a YAML configuration against `schema.SCHEMA`.

Every problem is collected (never just the first), each with its path; defaults are
filled in; relative paths are resolved against the config file's folder. The result
is an immutable `Config`.
"""

from __future__ import annotations

import difflib
import math
import os
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dedupd.daemon.config.schema import ALWAYS_EXCLUDE, CROP_DEFAULT, DESTRUCTIVE_MODES, ROTATED_DEFAULT, SCHEMA, Field
from dedupd.daemon.errors import ConfigError

CONFIG_ENV = "DEDUPD_CONFIG"
SYSTEM_CONFIG = "/etc/dedupd/config.yaml"


@dataclass(frozen=True)
class Root:
    path: str
    mode: str = "report"
    watch: str = "inotify"
    hardlink_fallback: str = "skip"

    @property
    def destructive(self) -> bool:
        return self.mode in DESTRUCTIVE_MODES


@dataclass(frozen=True)
class Config:
    state_dir: str
    roots: tuple[Root, ...]
    algorithm: str
    act_threshold: int
    report_threshold: int
    match_rotations: bool
    min_quality: float
    extensions: tuple[str, ...]
    exclude: tuple[str, ...]
    pixel_limit: int
    workers: int
    keep: tuple[str, ...]
    keep_path_priority: tuple[str, ...]
    settle_seconds: float = 5.0
    rescan_minutes: int = 60
    storm_events: int = 1000
    poll_seconds: float = 30.0
    retention_days: float = 30.0
    socket_path: str = ""  # resolved: never empty after load
    socket_mode: int = 0o660
    socket_group: str = ""
    source: str = ""
    rotated_threshold: int = ROTATED_DEFAULT  # resolved: never above report_threshold
    match_crops: bool = False
    crop_threshold: int = CROP_DEFAULT  # resolved: never above report_threshold

    @property
    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)


def find_config_file(explicit: str | None = None) -> Path:
    """--config, then $DEDUPD_CONFIG, then ./config.yaml, then /etc/dedupd/config.yaml."""
    for candidate in (explicit, os.environ.get(CONFIG_ENV)):
        if candidate:
            return Path(candidate)
    for candidate in (Path("config.yaml"), Path(SYSTEM_CONFIG)):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        [f"no configuration found: pass --config FILE, set {CONFIG_ENV}, or create ./config.yaml or {SYSTEM_CONFIG}"]
    )


def load_config(path: str | os.PathLike) -> Config:
    """Read, validate and resolve a config file; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text: {exc}"], str(path)) from exc
    return parse_config(text, source=str(path), base_dir=path.resolve().parent)


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        pos = f"line {where.line + 1}, column {where.column + 1}: " if where else ""
        raise ConfigError([f"{pos}not valid YAML: {getattr(exc, 'problem', None) or exc}"], source) from exc
    except (ValueError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors let these through: a date like 2001-13-45, an integer of
        # more than 4300 digits, nesting deeper than Python's recursion limit
        raise ConfigError([f"not valid YAML: a value cannot be read ({_show(str(exc))})"], source) from exc
    if data is None:
        data = {}
    problems: list[str] = []
    value = _check(SCHEMA, data, "", problems, base_dir or Path.cwd())
    try:
        _check_relations(value, problems)
    except (KeyError, TypeError, AttributeError):
        pass  # a value involved is already reported as malformed
    if problems:
        raise ConfigError(problems, source)
    return _to_config(value, source)


def _check(spec: Field, value: Any, where: str, problems: list[str], base: Path) -> Any:
    """Validate `value` against `spec`, append problems, return it with defaults filled."""
    label = where or "(top level)"
    kind = spec.kind
    if kind == "record":
        if not isinstance(value, dict):
            problems.append(f"{label}: must be a mapping of keys to values, not {_type_name(value)}")
            return {}
        out = {}
        for key in value:
            if key not in spec.fields:
                hint = difflib.get_close_matches(_key_text(key), list(spec.fields), n=1)
                also = f" (did you mean {hint[0]!r}?)" if hint else f"; known keys: {', '.join(spec.fields)}"
                problems.append(f"{_join(where, key)}: unknown key{also}")
        for key, sub in spec.fields.items():
            if key in value and value[key] is not None:
                out[key] = _check(sub, value[key], _join(where, key), problems, base)
            elif sub.required:
                problems.append(f"{_join(where, key)}: is required ({sub.doc})")
            else:
                out[key] = _check(sub, {}, _join(where, key), [], base) if sub.kind == "record" else sub.default
        return out
    if kind == "list":
        if not isinstance(value, list):
            problems.append(f"{label}: must be a list, not {_type_name(value)}")
            return []
        if len(value) < spec.min_items:
            problems.append(f"{label}: needs at least {spec.min_items} item(s)")
        return [_check(spec.item, v, f"{where}[{i}]", problems, base) for i, v in enumerate(value)]
    return _check_scalar(spec, value, label, problems, base)


def _check_scalar(spec: Field, value: Any, label: str, problems: list[str], base: Path) -> Any:
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            problems.append(f"{label}: must be true or false, not {_show(value)}")
        return value
    if kind in ("int", "float"):
        ok = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            problems.append(f"{label}: must be {'a whole number' if kind == 'int' else 'a number'}, not {_show(value)}")
            return value
        if isinstance(value, float) and not math.isfinite(value):  # .nan passes every comparison
            problems.append(f"{label}: must be a finite number, not {value}")
            return value
        if spec.minimum is not None and value < spec.minimum:
            problems.append(f"{label}: must be at least {spec.minimum:g}, not {_show(value)}")
        if spec.maximum is not None and value > spec.maximum:
            problems.append(f"{label}: must be at most {spec.maximum:g}, not {_show(value)}")
        return value
    if not isinstance(value, str) or not value:
        problems.append(f"{label}: must be a non-empty string, not {_show(value)}")
        return value
    if kind == "enum" and value not in spec.choices:
        problems.append(f"{label}: must be one of {', '.join(spec.choices)}, not {_show(value)}")
    if kind == "path":
        return _check_path(value, label, problems, base)
    return value


def _check_path(value: str, label: str, problems: list[str], base: Path) -> str:
    """`value` resolved against `base`; a name no system call can take is a problem."""
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        problems.append(f"{label}: {_show(value)} cannot be a file name (it holds a lone surrogate)")
        return value
    if "\0" in value:
        problems.append(f"{label}: {_show(value)} cannot be a file name (it holds a NUL character)")
        return value
    return os.path.normpath(os.path.join(base, os.path.expanduser(value)))


def _check_relations(v: dict, problems: list[str]) -> None:
    """Constraints that involve more than one key."""
    t = v["thresholds"]
    if t["act"] > t["report"]:
        problems.append(f"thresholds.act: must not exceed thresholds.report ({t['act']} > {t['report']})")
    if isinstance(t["rotated"], int) and t["rotated"] > t["report"]:
        problems.append(f"thresholds.rotated: must not exceed thresholds.report ({t['rotated']} > {t['report']}); "
                        "rotated and mirrored matches are a subset of the report tier")
    if isinstance(t["crop"], int) and t["crop"] > t["report"]:
        problems.append(f"thresholds.crop: must not exceed thresholds.report ({t['crop']} > {t['report']}); "
                        "crops are a subset of the report tier")
    if v["algorithm"] != "lbph" and t["report"] > 64:
        problems.append(f"thresholds.report: {v['algorithm']} codes have 64 bits; a radius of {t['report']} is meaningless")
    seen: dict[str, int] = {}
    for i, root in enumerate(v["roots"]):
        p = root["path"]
        for j, other in seen.items():
            if p == j or p.startswith(j.rstrip(os.sep) + os.sep) or j.startswith(p.rstrip(os.sep) + os.sep):
                problems.append(f"roots[{i}].path: overlaps roots[{other}].path ({p} and {j}); roots must not nest")
        seen[p] = i
    mode = v["control"]["mode"]
    if isinstance(mode, str) and not (mode.isdigit() and set(mode) <= set("01234567") and int(mode, 8) <= 0o777):
        problems.append(f"control.mode: must be octal permission bits such as 0660, not {mode!r}")
    for i, ext in enumerate(v["extensions"]):
        if isinstance(ext, str) and not ext.startswith("."):
            problems.append(f"extensions[{i}]: must start with a dot, like .jpg, not {ext!r}")


def _to_config(v: dict, source: str) -> Config:
    return Config(
        state_dir=v["state_dir"],
        roots=tuple(Root(**r) for r in v["roots"]),
        algorithm=v["algorithm"],
        act_threshold=v["thresholds"]["act"],
        report_threshold=v["thresholds"]["report"],
        match_rotations=v["match_rotations"],
        min_quality=float(v["min_quality"]),
        extensions=tuple(e.lower() for e in v["extensions"]),
        exclude=tuple(v["exclude"]) + tuple(p for p in ALWAYS_EXCLUDE if p not in v["exclude"]),
        pixel_limit=v["pixel_limit"],
        workers=v["workers"],
        keep=tuple(v["keep"]),
        keep_path_priority=tuple(v["keep_path_priority"]),
        settle_seconds=float(v["daemon"]["settle_seconds"]),
        rescan_minutes=v["daemon"]["rescan_minutes"],
        storm_events=v["daemon"]["storm_events"],
        poll_seconds=float(v["daemon"]["poll_seconds"]),
        retention_days=float(v["quarantine"]["retention_days"]),
        socket_path=v["control"]["socket"] or os.path.join(v["state_dir"], "control.sock"),
        socket_mode=int(v["control"]["mode"], 8),
        socket_group=v["control"]["group"],
        source=source,
        rotated_threshold=min(ROTATED_DEFAULT, v["thresholds"]["report"]) if v["thresholds"]["rotated"] is None
        else v["thresholds"]["rotated"],
        match_crops=v["match_crops"],
        crop_threshold=min(CROP_DEFAULT, v["thresholds"]["report"]) if v["thresholds"]["crop"] is None
        else v["thresholds"]["crop"],
    )


def _join(where: str, key: Any) -> str:
    return f"{where}.{_key_text(key)}" if where else _key_text(key)


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else _show(key)


def _show(value: Any) -> str:
    """A short repr for a message: a YAML alias bomb or a 5000-digit number in a config
    must not make the error message itself huge or fail (int to str is capped at 4300 digits)."""
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):
        return f"<a {type(value).__name__} too large to show>"


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlong, _REPR.maxlevel = 80, 80, 40, 3


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(value), type(value).__name__)
