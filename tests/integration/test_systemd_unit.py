"""systemd/dedupd.service: the keys the design requires, consistent with the config schema,
and clean under `systemd-analyze verify` where that tool exists."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from dedupd.daemon.config.schema import SCHEMA

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "dedupd.service"


def parse_unit(text: str) -> dict[str, list[tuple[str, str, list[str]]]]:
    """section -> [(key, value, comment lines just above)]; keys may repeat, as in systemd."""
    sections: dict[str, list[tuple[str, str, list[str]]]] = {}
    section, comments = "", []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            comments = []
        elif line.startswith(("#", ";")):
            comments.append(line)
        elif line.startswith("["):
            section, comments = line.strip("[]"), []
            sections[section] = []
        else:
            key, _, value = line.partition("=")
            sections[section].append((key.strip(), value.strip(), comments))
            comments = []
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str, list[str]]]]:
    return parse_unit(UNIT.read_text())


def values(unit, key: str, section: str = "Service") -> list[str]:
    return [v for k, v, _ in unit[section] if k == key]


def value(unit, key: str, section: str = "Service") -> str:
    found = values(unit, key, section)
    assert len(found) == 1, f"{key}= should appear once in [{section}], found {found}"
    return found[0]


def environment(unit) -> dict[str, str]:
    return dict(item.split("=", 1) for line in values(unit, "Environment") for item in line.split())


def seconds(span: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span))


def test_notify_service_with_watchdog_reload_and_restart(unit):
    assert value(unit, "Type") == "notify"
    assert value(unit, "NotifyAccess") == "main"
    assert value(unit, "ExecStart") == "/usr/local/bin/dedupd --config /etc/dedupd/config.yaml"
    assert value(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert seconds(value(unit, "WatchdogSec")) == 60
    assert value(unit, "Restart") == "on-failure"
    assert value(unit, "KillMode") == "mixed"
    # long enough to finish an action; longer than a watchdog period
    assert seconds(value(unit, "TimeoutStopSec")) >= 120
    assert value(unit, "WantedBy", "Install") == "multi-user.target"


def test_directories_agree_with_the_config_schema(unit):
    state, cache, runtime = (value(unit, k) for k in ("StateDirectory", "CacheDirectory", "RuntimeDirectory"))
    assert (state, cache, runtime) == ("dedupd", "dedupd", "dedupd")
    assert SCHEMA.fields["state_dir"].default == f"/var/lib/{state}"
    socket_doc = SCHEMA.fields["control"].fields["socket"].doc
    assert f"/run/{runtime}/control.sock" in socket_doc
    assert environment(unit)["NUMBA_CACHE_DIR"].startswith(f"/var/cache/{cache}/")
    # OpenCV's ceiling must never be tighter than the config's own pixel limit
    assert int(environment(unit)["OPENCV_IO_MAX_IMAGE_PIXELS"]) >= SCHEMA.fields["pixel_limit"].default


def test_hardening(unit):
    required = {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectHome": "read-only",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "no",  # numba JIT: "yes" would kill the daemon
        "SystemCallArchitectures": "native",
        "Nice": "19",
        "IOSchedulingClass": "idle",
        "CPUSchedulingPolicy": "batch",
    }
    assert {key: value(unit, key) for key in required} == required
    assert values(unit, "ReadWritePaths"), "destructive roots need ReadWritePaths="
    assert all(v.startswith("-/") for v in values(unit, "ReadWritePaths")), "an unmounted root must not stop the start"


def test_lines_an_admin_adapts_say_so(unit):
    for key in ("ExecStart", "ReadWritePaths", "ProtectHome"):
        (_, _, comments), = [entry for entry in unit["Service"] if entry[0] == key]
        assert any("CHANGE" in c for c in comments), f"{key}= needs a CHANGE comment above it"
    for key in ("MemoryDenyWriteExecute", "KillMode", "TimeoutStopSec", "WatchdogSec"):
        (_, _, comments), = [entry for entry in unit["Service"] if entry[0] == key]
        assert comments, f"{key}= needs a comment saying why"
    text = UNIT.read_text()
    for optional in ("#User=", "#Group=", "#MemoryHigh=", "#MemoryMax=", "#RequiresMountsFor=", "#ReadOnlyPaths="):
        assert re.search(rf"^{optional}", text, re.M), f"the unit should offer {optional} as a commented example"


def analyze(unit_text: str, folder: Path) -> str:
    """`systemd-analyze verify` output for `unit_text`, with ExecStart pointing at a real
    executable (the check otherwise stops at the missing /usr/local/bin/dedupd)."""
    fake = folder / "dedupd"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    path = folder / "dedupd.service"
    path.write_text(unit_text.replace("/usr/local/bin/dedupd", str(fake)))
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, SYSTEMD_LOG_COLOR="0"))
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else f"\nexit status {done.returncode}")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_is_clean(tmp_path):
    assert analyze(UNIT.read_text(), tmp_path) == ""
    # the check is real: a misspelt key and a bad value are reported
    broken = UNIT.read_text().replace("Type=notify", "Type=notifyy").replace("Nice=19", "Nicee=19")
    report = analyze(broken, tmp_path)
    assert "notifyy" in report and "Nicee" in report
