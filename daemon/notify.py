"""The systemd notify protocol (sd_notify(3)), without libsystemd.

Under `Type=notify` systemd passes `$NOTIFY_SOCKET`: an `AF_UNIX` datagram socket,
a filesystem path or, when it starts with `@`, a name in the abstract namespace.
A message is one datagram of newline-separated `KEY=value` lines (`READY=1`,
`STATUS=...`, `WATCHDOG=1`, `RELOADING=1` with `MONOTONIC_USEC=`, `STOPPING=1`).
`$WATCHDOG_USEC` (and `$WATCHDOG_PID`, when set, naming the process meant) asks for
`WATCHDOG=1` at least that often; sd_watchdog_enabled(3) recommends every half of it.

Notification is best effort: outside systemd every call is a no-op, and a failing
send is logged and reported as False, never raised (a daemon must not die because
its supervisor's socket hiccuped).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("dedupd.notify")


SEND_TIMEOUT = 1.0  # seconds; systemd reads at once, so only a broken receiver makes us wait


class Notifier:
    """Sends state changes to the service manager; all methods are thread-safe."""

    def __init__(self, address: str = "", watchdog_usec: str = "", watchdog_pid: str = ""):
        """`address` is `$NOTIFY_SOCKET` as systemd sets it (empty: disabled)."""
        self.address = address
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid
        self.enabled = bool(address) and address[0] in "/@"
        if address and not self.enabled:  # e.g. vsock:..., which only VMs get
            log.warning("NOTIFY_SOCKET=%r is not a unix socket; systemd notifications are off", address)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Notifier":
        return cls(environ.get("NOTIFY_SOCKET", ""), environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", ""))

    def send(self, **fields: object) -> bool:
        """Send one datagram `KEY=value\\n...`; True when it was sent, False when
        disabled or when sending failed (logged). Newlines in values become spaces."""
        if not self.enabled or not fields:
            return False
        text = "".join(f"{key}={str(value).replace(chr(10), ' ')}\n" for key, value in fields.items())
        # "@name" is the abstract namespace: a leading NUL byte instead of the "@".
        target = b"\0" + self.address[1:].encode() if self.address[0] == "@" else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(SEND_TIMEOUT)  # a receiver that stopped reading must not wedge the daemon
                sock.sendto(text.encode(), target)
            return True
        except OSError as exc:
            log.warning("systemd notification %r to %s failed: %s", text.strip(), self.address, exc)
            return False

    def ready(self, status: str = "") -> None:
        """Start-up (or a reload) is complete; `status` is shown by `systemctl status`."""
        self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> None:
        self.send(STATUS=text)

    def watchdog(self) -> None:
        self.send(WATCHDOG=1)

    def reloading(self) -> None:
        """A reload starts; `ready()` ends it. MONOTONIC_USEC lets systemd (Type=notify-reload)
        tell this reload from an older one; time.monotonic_ns is CLOCK_MONOTONIC on Linux."""
        self.send(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)

    def stopping(self) -> None:
        self.send(STOPPING=1)

    def watchdog_interval(self) -> float | None:
        """Seconds between `watchdog()` pings (half of WATCHDOG_USEC), or None when systemd
        expects none from this process (no socket, no or invalid WATCHDOG_USEC, another pid)."""
        if not self.enabled or not self._watchdog_usec.isdigit() or int(self._watchdog_usec) == 0:
            return None
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None
        return int(self._watchdog_usec) / 2e6
