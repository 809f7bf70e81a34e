"""The control socket with real unix sockets, real threads and (as root) a real other user."""

from __future__ import annotations

import grp
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from dedupd.daemon.control import (
    MAX_REQUEST,
    AlreadyRunning,
    ControlClient,
    ControlError,
    ControlServer,
    ControlSocketError,
    DaemonDown,
)
from dedupd.kernels.errors import DedupdError

NOBODY = 65534


@pytest.fixture
def folder():
    """A short folder under /tmp: AF_UNIX paths must stay under 108 bytes, pytest's tmp_path may not."""
    path = tempfile.mkdtemp(dir="/tmp", prefix="ctl")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def echo(request: dict) -> dict:
    if request["cmd"] == "fail":
        raise ValueError("that did not work: " + request["args"].get("why", ""))
    if request["cmd"] == "crash":
        raise RuntimeError("boom")
    if request["cmd"] == "unjsonable":
        return {"a set": {1, 2}}
    return dict(request)


@pytest.fixture
def served(folder):
    """A started echo server; yields its socket path."""
    path = os.path.join(folder, "run", "control.sock")
    server = ControlServer(path, echo, read_timeout=0.5)
    server.start()
    yield path
    server.stop()


def raw_exchange(path: str, payload: bytes, timeout: float = 10) -> dict:
    """Send raw bytes (no client-side checks) and read the one-line answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def control_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("dedupd-control")]


# -- requests and answers ---------------------------------------------------------------


def test_a_request_reaches_the_handler_with_the_kernel_reported_uid(served):
    result = ControlClient(served).request("status", verbose=True, root="/srv/ä")
    assert result == {"cmd": "status", "args": {"verbose": True, "root": "/srv/ä"}, "peer_uid": os.geteuid()}


def test_the_client_cannot_claim_another_uid(served):
    answer = raw_exchange(served, b'{"cmd": "undo", "args": {}, "peer_uid": 12345}\n')
    assert answer == {"ok": True, "result": {"cmd": "undo", "args": {}, "peer_uid": os.geteuid()}}


def test_handler_errors_come_back_with_their_message_and_the_server_keeps_serving(served):
    client = ControlClient(served)
    with pytest.raises(ControlError, match="that did not work: no journal"):
        client.request("fail", why="no journal")
    with pytest.raises(ControlError, match="RuntimeError: boom"):
        client.request("crash")
    with pytest.raises(ControlError, match="not JSON"):
        client.request("unjsonable")
    assert client.request("ping")["cmd"] == "ping"


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"{not json\n", "not JSON"),
        (b"\xff\xfe\n", "not JSON"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"args": {}}\n', '"cmd" must be a non-empty string'),
        (b'{"cmd": 7}\n', '"cmd" must be a non-empty string'),
        (b'{"cmd": "status", "args": [1]}\n', '"args" must be a JSON object'),
        (b"\n", "without a message"),
    ],
)
def test_malformed_requests_get_an_error_answer(served, payload, message):
    answer = raw_exchange(served, payload)
    assert answer["ok"] is False and message in answer["error"]
    assert ControlClient(served).request("ping")["cmd"] == "ping"


def test_a_request_over_one_mebibyte_is_refused_and_one_under_it_served(served):
    answer = raw_exchange(served, b"x" * (MAX_REQUEST + 1))
    assert answer == {"ok": False, "error": "request larger than 1 MiB"}
    big = "y" * (MAX_REQUEST - 100)
    assert ControlClient(served).request("store", blob=big)["args"]["blob"] == big


def test_a_request_without_newline_is_taken_at_end_of_stream(served):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(served)
        sock.sendall(b'{"cmd": "status"}')
        sock.shutdown(socket.SHUT_WR)
        answer = json.loads(sock.makefile("rb").readline())
    assert answer["ok"] is True and answer["result"]["cmd"] == "status"


# -- concurrency --------------------------------------------------------------------------


def test_silent_clients_block_nobody(folder):
    path = os.path.join(folder, "c.sock")
    server = ControlServer(path, echo, read_timeout=60.0)  # a serial server would make the ping time out
    server.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent, \
             socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as halfway:
            silent.connect(path)
            halfway.connect(path)
            halfway.sendall(b'{"cmd": "sta')
            assert ControlClient(path, timeout=10).request("ping")["cmd"] == "ping"
            for sock in (silent, halfway):  # still connected, still unanswered
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
            started = time.monotonic()
            server.stop()  # must not wait out the 60 s read timeout
            assert time.monotonic() - started < 10
            assert control_threads() == []
    finally:
        server.stop()


def test_a_silent_client_is_answered_with_an_error_after_the_read_timeout(folder):
    path = os.path.join(folder, "c.sock")
    server = ControlServer(path, echo, read_timeout=0.5)
    server.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent, \
             socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as halfway:
            silent.connect(path)
            halfway.connect(path)
            halfway.sendall(b'{"cmd": "sta')
            for sock in (silent, halfway):
                sock.settimeout(30)
                answer = json.loads(sock.makefile("rb").readline())
                assert answer == {"ok": False, "error": "nothing complete arrived within 0.5 s"}
    finally:
        server.stop()


def test_concurrent_clients_each_get_their_own_answer(served):
    failures: list[str] = []

    def client(n: int) -> None:
        c = ControlClient(served)
        for i in range(10):
            result = c.request("echo", n=n, i=i)
            if result["args"] != {"n": n, "i": i}:
                failures.append(f"{n}/{i}: {result}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == [] and not any(t.is_alive() for t in threads)


def test_a_slow_command_does_not_hold_up_a_quick_one(folder):
    release = threading.Event()

    def handler(request: dict) -> dict:
        if request["cmd"] == "undo":
            assert release.wait(30)
        return {"done": request["cmd"]}

    path = os.path.join(folder, "c.sock")
    server = ControlServer(path, handler)
    server.start()
    try:
        slow: dict = {}
        worker = threading.Thread(target=lambda: slow.update(ControlClient(path, timeout=60).request("undo")))
        worker.start()
        assert ControlClient(path).request("status") == {"done": "status"}
        assert slow == {}  # still waiting: the status answer did not wait for it
        release.set()
        worker.join(30)
        assert slow == {"done": "undo"}
    finally:
        release.set()
        server.stop()


def test_connections_beyond_max_clients_are_told_the_daemon_is_busy(folder):
    path = os.path.join(folder, "c.sock")
    server = ControlServer(path, echo, read_timeout=5.0, max_clients=2)
    server.start()
    try:
        with socket.socket(socket.AF_UNIX) as a, socket.socket(socket.AF_UNIX) as b:
            a.connect(path)
            b.connect(path)  # two silent clients hold both slots (accepted in order)
            with pytest.raises(ControlError, match="busy"):
                ControlClient(path).request("status")
    finally:
        server.stop()


# -- start-up and shut-down ---------------------------------------------------------------


def test_stale_socket_is_replaced(folder):
    path = os.path.join(folder, "c.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens: what a SIGKILLed daemon leaves
    with pytest.raises(DaemonDown, match="nothing answers"):
        ControlClient(path).request("status")
    server = ControlServer(path, echo)
    server.start()
    try:
        assert ControlClient(path).request("status")["cmd"] == "status"
    finally:
        server.stop()


def test_a_second_server_is_refused_and_the_first_keeps_its_socket(served):
    second = ControlServer(served, echo)
    with pytest.raises(AlreadyRunning, match=f"another dedupd is already running \\(socket {served} answers\\)"):
        second.start()
    assert ControlClient(served).request("status")["cmd"] == "status"


def test_a_foreign_listener_on_the_path_is_not_taken_over(folder):
    path = os.path.join(folder, "c.sock")
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(path)
        other.listen(1)
        with pytest.raises(AlreadyRunning, match="answers"):
            ControlServer(path, echo).start()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_a_file_that_is_not_a_socket_is_left_alone(folder):
    path = os.path.join(folder, "c.sock")
    with open(path, "w") as f:
        f.write("precious")
    with pytest.raises(ControlSocketError, match="not a socket"):
        ControlServer(path, echo).start()
    with open(path) as f:
        assert f.read() == "precious"


def test_stop_removes_the_socket_joins_threads_and_allows_a_restart(folder):
    path = os.path.join(folder, "c.sock")
    server = ControlServer(path, echo)
    server.start()
    assert server.alive() and "dedupd-control" in control_threads()
    server.stop()
    assert not server.alive() and not os.path.exists(path)
    assert control_threads() == []
    with pytest.raises(DaemonDown, match="no control socket"):
        ControlClient(path).request("status")
    again = ControlServer(path, echo)
    again.start()  # the lock was released
    try:
        assert ControlClient(path).request("status")["cmd"] == "status"
    finally:
        again.stop()


def test_the_parent_folder_is_created_and_nothing_else_is_left_in_it(folder):
    path = os.path.join(folder, "run", "dedupd", "control.sock")
    server = ControlServer(path, echo, mode=0o600)
    server.start()
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o755 & ~umask
        assert sorted(os.listdir(os.path.dirname(path))) == ["control.sock", "control.sock.lock"]
    finally:
        server.stop()


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o666])
def test_mode_bits_are_applied(folder, mode):
    path = os.path.join(folder, "c.sock")
    server = ControlServer(path, echo, mode=mode)
    server.start()
    try:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == mode
    finally:
        server.stop()


def test_the_group_is_applied(folder):
    candidates = [g for g in grp.getgrall() if g.gr_gid != os.getegid()
                  and (os.geteuid() == 0 or g.gr_gid in os.getgroups())]
    if not candidates:
        pytest.skip("this user belongs to no group other than its primary one")
    group = candidates[0]
    path = os.path.join(folder, "c.sock")
    server = ControlServer(path, echo, group=group.gr_name)
    server.start()
    try:
        assert os.lstat(path).st_gid == group.gr_gid
    finally:
        server.stop()


def test_an_unknown_group_is_a_clear_error_and_leaves_nothing_behind(folder):
    path = os.path.join(folder, "c.sock")
    with pytest.raises(ControlSocketError, match="no group named 'no-such-group-dedupd'"):
        ControlServer(path, echo, group="no-such-group-dedupd").start()
    assert not os.path.exists(path)
    server = ControlServer(path, echo)
    server.start()
    server.stop()


def test_a_path_too_long_for_a_unix_socket_is_refused(folder):
    path = os.path.join(folder, "d" * 100, "control.sock")
    with pytest.raises(ControlSocketError, match="too long"):
        ControlServer(path, echo).start()


def test_errors_are_dedupd_errors():
    assert all(issubclass(e, DedupdError) for e in (DaemonDown, ControlError, ControlSocketError, AlreadyRunning))


# -- other users (real uids) --------------------------------------------------------------


def run_as_nobody(code: str) -> str:
    """Run `code` in a child that imports dedupd as root, then drops to uid/gid nobody."""
    prelude = textwrap.dedent("""
        import os, sys, json, socket
        from dedupd.daemon.control import ControlClient, ControlServer, ControlSocketError
        os.setgroups([]); os.setgid(%d); os.setuid(%d)
    """ % (NOBODY, NOBODY))
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")


@needs_root
def test_another_user_is_seen_with_its_own_uid(folder):
    os.chmod(folder, 0o755)
    path = os.path.join(folder, "c.sock")
    server = ControlServer(path, echo, mode=0o666)
    server.start()
    try:
        out = run_as_nobody(f"print(json.dumps(ControlClient({path!r}).request('undo')))")
        assert json.loads(out)["peer_uid"] == NOBODY
    finally:
        server.stop()


@needs_root
def test_mode_keeps_other_users_out_with_a_clear_message(folder):
    os.chmod(folder, 0o755)
    path = os.path.join(folder, "c.sock")
    server = ControlServer(path, echo, mode=0o660)
    server.start()
    try:
        out = run_as_nobody(f"""
            try:
                ControlClient({path!r}).request('status')
            except ControlSocketError as exc:
                print(exc)
        """)
        assert "permission denied" in out and "control.group" in out
    finally:
        server.stop()


def test_a_group_the_daemon_may_not_use_is_a_clear_error(folder):
    path = os.path.join(folder, "c.sock")
    if os.geteuid() != 0:
        foreign = next((g.gr_name for g in grp.getgrall() if g.gr_gid not in os.getgroups()), None)
        if foreign is None:
            pytest.skip("this user is a member of every group")
        with pytest.raises(ControlSocketError, match="not permitted"):
            ControlServer(path, echo, group=foreign).start()
        assert not os.path.exists(path)
        return
    os.chmod(folder, 0o777)
    out = run_as_nobody(f"""
        try:
            ControlServer({path!r}, lambda r: r, group='root').start()
        except ControlSocketError as exc:
            print(exc)
        print(os.path.exists({path!r}))
    """)
    assert "not permitted" in out and "control.group" in out and out.endswith("False")
