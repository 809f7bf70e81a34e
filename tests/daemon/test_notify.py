"""The sd_notify client against real AF_UNIX datagram sockets (path and abstract namespace)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from dedupd.daemon.notify import Notifier


@pytest.fixture
def path_socket():
    """A datagram socket bound to a short filesystem path, as systemd's /run/systemd/notify."""
    folder = tempfile.mkdtemp(dir="/tmp", prefix="ntf")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()
    os.unlink(path)
    os.rmdir(folder)


@pytest.fixture
def abstract_socket():
    """A datagram socket in the abstract namespace; NOTIFY_SOCKET names it with a leading @."""
    name = f"dedupd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    yield "@" + name, sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(65536).decode().splitlines()


def test_ready_with_status_reaches_a_path_socket(path_socket):
    path, sock = path_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.ready("ready; scanning")
    assert received(sock) == ["READY=1", "STATUS=ready; scanning"]


def test_every_message_reaches_an_abstract_socket(abstract_socket):
    address, sock = abstract_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    notifier.ready()
    notifier.watchdog()
    notifier.status("scanning /srv/photos")
    notifier.stopping()
    assert [received(sock) for _ in range(4)] == [
        ["READY=1"],
        ["WATCHDOG=1"],
        ["STATUS=scanning /srv/photos"],
        ["STOPPING=1"],
    ]


def test_reloading_carries_the_monotonic_clock_in_microseconds(path_socket):
    path, sock = path_socket
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier.from_env({"NOTIFY_SOCKET": path}).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = received(sock)
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after


def test_send_joins_fields_and_keeps_one_line_per_field(path_socket):
    path, sock = path_socket
    assert Notifier(path).send(STATUS="two\nlines", ERRNO=5) is True
    assert sock.recv(65536) == b"STATUS=two lines\nERRNO=5\n"


def test_without_notify_socket_everything_is_a_no_op():
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.send(READY=1) is False
    notifier.ready("x")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()
    assert notifier.watchdog_interval() is None


def test_a_failing_send_is_logged_and_returns_false(caplog):
    gone = f"/tmp/dedupd-test-{uuid.uuid4().hex}"  # nothing is bound there
    notifier = Notifier(gone)
    with caplog.at_level(logging.WARNING, logger="dedupd.notify"):
        assert notifier.send(READY=1) is False
        notifier.ready()  # must not raise either
    assert "READY=1" in caplog.text and gone in caplog.text


def test_a_non_unix_address_disables_notifications(caplog):
    with caplog.at_level(logging.WARNING, logger="dedupd.notify"):
        notifier = Notifier("vsock:2:1234")
    assert not notifier.enabled and "vsock" in caplog.text
    assert notifier.send(READY=1) is False


@pytest.mark.parametrize(
    "usec, pid, expected",
    [
        ("60000000", None, 30.0),        # WatchdogSec=60: ping every 30 s
        ("60000000", "self", 30.0),      # addressed to this process
        ("60000000", "other", None),     # meant for another process (a parent, a wrapper)
        ("", None, None),                # no watchdog configured
        ("0", None, None),
        ("sixty", None, None),           # garbage is no watchdog, not a crash
    ],
)
def test_watchdog_interval(path_socket, usec, pid, expected):
    path, _ = path_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": usec}
    if pid is not None:
        env["WATCHDOG_PID"] = str(os.getpid() if pid == "self" else os.getpid() + 1)
    assert Notifier.from_env(env).watchdog_interval() == expected


def test_a_real_child_process_reports_ready_through_the_environment(path_socket):
    """The way systemd uses it: the variable is inherited and read by the daemon process."""
    path, sock = path_socket
    code = "from dedupd.daemon.notify import Notifier; Notifier.from_env().ready('child up')"
    env = dict(os.environ, NOTIFY_SOCKET=path)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert received(sock) == ["READY=1", "STATUS=child up"]
