"""The local control socket: `dedupctl` asks, the running `dedupd` answers.

Protocol (one connection per request, UTF-8 JSON, one line each way):
    client → `{"cmd": "status", "args": {...}}\\n`
    server → `{"ok": true, "result": ...}\\n` or `{"ok": false, "error": "message"}\\n`
A request is at most 1 MiB. The server reads each connection in its own short-lived
thread with a read timeout, so a client that connects and says nothing delays no one;
at most `max_clients` connections are served at once (more get a "busy" answer).
The handler receives `{"cmd", "args", "peer_uid"}`, where `peer_uid` comes from the
kernel (SO_PEERCRED), never from the client. It runs in those connection threads, so
it must be thread-safe; whatever it raises becomes an error answer, never a dead server.

Start-up: a lock file `PATH.lock` (flock) makes one server the owner of PATH; a socket
left at PATH that nobody answers on is stale and removed; one that answers means another
dedupd runs. The socket is bound inside a fresh 0700 directory, given its mode and group
there, then renamed into place, so it is never reachable with the wrong permissions
(no process-wide umask change, which would race with other threads creating files).
"""

from __future__ import annotations

import fcntl
import grp
import json
import logging
import os
import selectors
import socket
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Callable

from dedupd.kernels.errors import DedupdError

log = logging.getLogger("dedupd.control")

MAX_REQUEST = 1 << 20  # bytes, newline excluded
SUN_PATH_MAX = 107  # bytes of an AF_UNIX path (sun_path is 108 with the NUL)
_UCRED = struct.Struct("iII")  # struct ucred: pid_t pid; uid_t uid; gid_t gid

Handler = Callable[[dict], dict]


class ControlSocketError(DedupdError):
    """The control socket cannot be used."""


class AlreadyRunning(ControlSocketError):
    """Another dedupd is already running."""


class DaemonDown(DedupdError):
    """dedupd is not running (its control socket does not answer)."""


class ControlError(DedupdError):
    """dedupd could not carry out the request."""


class _BadRequest(Exception):
    """A request the server answers with an error instead of passing it to the handler."""


class ControlServer:
    """Serves `handler` on a unix stream socket at `path` from a daemon thread."""

    def __init__(self, path: str, handler: Handler, *, mode: int = 0o660, group: str = "",
                 read_timeout: float = 5.0, max_clients: int = 32):
        self.path = os.path.abspath(path)
        self.handler = handler
        self.mode = mode & 0o777
        self.group = group
        self.read_timeout = read_timeout
        self._slots = threading.BoundedSemaphore(max_clients)
        self._workers: dict[threading.Thread, socket.socket] = {}  # connection threads
        self._workers_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._lock_fd = -1
        self._ino = 0

    def start(self) -> None:
        """Bind and listen with `mode` and `group`, then serve in a daemon thread.
        Raises AlreadyRunning, or ControlSocketError with what to fix."""
        if self._thread is not None:
            raise ControlSocketError(f"the control server on {self.path} is already started")
        gid = _group_id(self.group)
        _check_length(self.path)
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
            self._lock_fd = _take_lock(self.path)
        except OSError as exc:
            raise ControlSocketError(f"cannot create the control socket {self.path}: {exc}") from None
        try:
            _remove_stale(self.path)
            self._listener = _bind(self.path, self.mode, gid, self.group)
        except OSError as exc:
            _release_lock(self._lock_fd)
            raise ControlSocketError(f"cannot create the control socket {self.path}: {exc}") from None
        except BaseException:
            _release_lock(self._lock_fd)
            raise
        self._ino = os.lstat(self.path).st_ino
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="dedupd-control", daemon=True)
        self._thread.start()
        log.info("control socket %s (mode %04o%s)", self.path, self.mode, f", group {self.group}" if self.group else "")

    def stop(self) -> None:
        """Stop accepting, unlink the socket (if it is still ours), join the threads."""
        if self._thread is None:
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=10)
        self._listener.close()
        try:
            if os.lstat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._end_conversations()
        _release_lock(self._lock_fd)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._thread = None

    def _end_conversations(self, grace: float = 2.0) -> None:
        """Wake connections still waiting for a request (they are answered with an error) and
        give the threads `grace` seconds; a handler that is still busy is left to finish."""
        with self._workers_lock:
            workers = dict(self._workers)
        for conn in workers.values():
            try:
                conn.shutdown(socket.SHUT_RD)
            except OSError:
                pass  # already closed by its thread
        deadline = time.monotonic() + grace
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        busy = sum(worker.is_alive() for worker in workers)
        if busy:
            log.warning("control socket stopped with %d request(s) still being handled", busy)

    def alive(self) -> bool:
        """True while the accepting thread runs (the service checks it before pinging the watchdog)."""
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    # -- serving ---------------------------------------------------------------------

    def _serve(self) -> None:
        self._listener.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._listener:
                        self._accept()

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # the client left before we got to it
        except OSError as exc:  # EMFILE and friends: log, keep serving
            log.warning("control socket: accept failed: %s", exc)
            self._stopping.wait(0.1)
            return
        conn.setblocking(True)
        if not self._slots.acquire(blocking=False):
            _send_quietly(conn, _encode(_failure("dedupd is busy: too many control connections; try again")))
            conn.close()
            return
        worker = threading.Thread(target=self._converse, args=(conn,), name="dedupd-control-conn", daemon=True)
        with self._workers_lock:
            self._workers[worker] = conn
        worker.start()

    def _converse(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(self.read_timeout)
                _send_quietly(conn, self._answer(conn))
        except Exception:  # a bug here must not take the server down
            log.exception("control socket: unexpected error while answering")
        finally:
            self._slots.release()
            with self._workers_lock:
                self._workers.pop(threading.current_thread(), None)

    def _answer(self, conn: socket.socket) -> bytes:
        """The encoded response to the request on `conn`."""
        try:
            request = _parse(_read_line(conn, MAX_REQUEST, self.read_timeout))
        except _BadRequest as exc:
            return _encode(_failure(str(exc)))
        request["peer_uid"] = _peer_uid(conn)
        try:
            result = self.handler(request)
        except Exception as exc:
            log.info("control: %s from uid %s failed: %s", request["cmd"], request["peer_uid"], _describe(exc))
            return _encode(_failure(_describe(exc)))
        try:
            return _encode({"ok": True, "result": result})
        except (TypeError, ValueError) as exc:
            log.error("control: the answer to %s is not JSON: %s", request["cmd"], exc)
            return _encode(_failure(f"internal error: the answer to {request['cmd']} is not JSON ({exc})"))


class ControlClient:
    """Sends one request per connection to the daemon's control socket."""

    def __init__(self, path: str, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout

    def request(self, cmd: str, **args) -> dict:
        """The handler's result for `cmd`. Raises DaemonDown (no socket, or nobody listens),
        ControlError (the daemon answered with an error, or did not answer in time), or
        ControlSocketError (the socket exists but may not be used: permissions)."""
        with self._connect() as sock:
            try:
                sock.sendall(_encode({"cmd": cmd, "args": args}))
                raw = _read_line(sock, None, self.timeout)
            except _BadRequest as exc:
                raise ControlError(f"dedupd did not answer {cmd!r}: {exc}") from None
            except OSError as exc:
                raise ControlError(f"the connection to dedupd broke during {cmd!r}: {exc}") from None
        try:
            response = json.loads(raw)
        except ValueError as exc:
            raise ControlError(f"dedupd sent an unreadable answer to {cmd!r}: {exc}") from None
        if isinstance(response, dict) and response.get("ok") is True:
            return response.get("result")
        error = response.get("error") if isinstance(response, dict) else None
        raise ControlError(str(error or f"dedupd refused {cmd!r} without saying why"))

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
            return sock
        except FileNotFoundError:
            problem = DaemonDown(f"dedupd is not running: there is no control socket {self.path}")
        except ConnectionRefusedError:
            problem = DaemonDown(f"dedupd is not running: nothing answers on {self.path} (a stale socket)")
        except PermissionError:
            problem = ControlSocketError(f"permission denied on {self.path}: run as root or as a member of "
                                         "the socket's group (control.group in the config)")
        except TimeoutError:
            problem = ControlError(f"dedupd does not accept connections on {self.path} within {self.timeout:g} s (hung?)")
        except OSError as exc:
            problem = ControlSocketError(f"cannot connect to {self.path}: {exc}")
        sock.close()
        raise problem


# -- wire helpers ------------------------------------------------------------------------


def _read_line(conn: socket.socket, limit: int | None, timeout: float) -> bytes:
    """Bytes up to the first newline (or EOF). Raises _BadRequest when longer than
    `limit`, empty, or not complete within `timeout` seconds."""
    buf = bytearray()
    while True:
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            raise _BadRequest(f"nothing complete arrived within {timeout:g} s") from None
        newline = chunk.find(b"\n")
        buf += chunk if newline < 0 else chunk[:newline]
        if limit is not None and len(buf) > limit:
            raise _BadRequest(f"request larger than {limit // (1 << 20)} MiB")
        if newline >= 0 or not chunk:
            break
    if not buf.strip():
        raise _BadRequest("the connection closed without a message")
    return bytes(buf)


def _parse(raw: bytes) -> dict:
    """The request as the handler sees it (without peer_uid). Raises _BadRequest."""
    try:
        message = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise _BadRequest(f"malformed request: not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise _BadRequest("malformed request: expected a JSON object {\"cmd\": ..., \"args\": {...}}")
    cmd, args = message.get("cmd"), message.get("args", {})
    if not isinstance(cmd, str) or not cmd:
        raise _BadRequest("malformed request: \"cmd\" must be a non-empty string")
    if not isinstance(args, dict):
        raise _BadRequest("malformed request: \"args\" must be a JSON object")
    return {"cmd": cmd, "args": args}


def _encode(message: dict) -> bytes:
    return json.dumps(message, ensure_ascii=False, allow_nan=False).encode() + b"\n"


def _failure(error: str) -> dict:
    return {"ok": False, "error": error}


def _describe(exc: BaseException) -> str:
    """A handler's exception as the user should read it."""
    text = str(exc)
    if isinstance(exc, (DedupdError, ValueError, PermissionError, TimeoutError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _send_quietly(conn: socket.socket, data: bytes) -> None:
    try:
        conn.sendall(data)
    except OSError as exc:  # the client hung up or stopped reading: its loss
        log.debug("control socket: answer not delivered: %s", exc)


def _peer_uid(conn: socket.socket) -> int:
    _, uid, _ = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return uid


# -- start-up helpers --------------------------------------------------------------------


def _group_id(group: str) -> int:
    """The gid for `group` (a name or a number); -1 for "leave it"."""
    if not group:
        return -1
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ControlSocketError(f"control.group: there is no group named {group!r} on this system") from None


def _check_length(path: str) -> None:
    # the staging name ".cXXXXXXXX/s" is 12 bytes, like "control.sock"; check both
    staged = os.path.join(os.path.dirname(path), ".c" + "x" * 8, "s")
    longest = max(len(os.fsencode(path)), len(os.fsencode(staged)))
    if longest > SUN_PATH_MAX:
        raise ControlSocketError(f"control.socket {path!r} is too long for a unix socket "
                                 f"({longest} bytes, at most {SUN_PATH_MAX}); choose a shorter path")


def _take_lock(path: str) -> int:
    # O_NOFOLLOW: a symlink planted at the lock's name (the socket may live in a shared
    # folder) must not make the daemon create or open a file elsewhere.
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        if _answers(path):
            raise AlreadyRunning(f"another dedupd is already running (socket {path} answers)") from None
        raise AlreadyRunning(f"another dedupd is already running or starting (it holds {path}.lock)") from None


def _release_lock(fd: int) -> None:
    # the lock file stays: unlinking it would let a third process lock a new inode
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(path)
            return True
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except OSError as exc:  # cannot tell: do not guess that it is stale
            raise ControlSocketError(f"cannot tell whether {path} belongs to a running dedupd ({exc}); "
                                     "remove it if no dedupd runs") from None


def _remove_stale(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlSocketError(f"{path} exists and is not a socket; move it away or set control.socket to another path")
    if _answers(path):
        raise AlreadyRunning(f"another dedupd is already running (socket {path} answers)")
    log.info("removing stale control socket %s (nothing answers on it)", path)
    os.unlink(path)


def _bind(path: str, mode: int, gid: int, group: str) -> socket.socket:
    """A listening socket at `path` with `mode` and `gid`, set before anyone can reach it."""
    staging = tempfile.mkdtemp(prefix=".c", dir=os.path.dirname(path))  # 0700
    staged = os.path.join(staging, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(staged)
        os.chmod(staged, mode)
        if gid != -1:
            _chgrp(staged, gid, group)
        sock.listen(64)
        os.rename(staged, path)
        return sock
    except BaseException:
        sock.close()
        raise
    finally:
        if os.path.lexists(staged):
            os.unlink(staged)
        os.rmdir(staging)


def _chgrp(path: str, gid: int, group: str) -> None:
    try:
        os.chown(path, -1, gid)
    except PermissionError:
        raise ControlSocketError(f"control.group: cannot give the control socket to group {group!r}: not permitted "
                                 f"(uid {os.geteuid()} is not a member; add the daemon's user to it, or run as root)") from None
