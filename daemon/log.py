"""Logging for the service: one event per line on stderr, with the systemd priority
prefix (`<3>` error ... `<7>` debug) that journald turns into the entry's priority.

A message never spans lines (a path with a newline in it stays on one line), so every
line is exactly one event for `journalctl` and for grep.
"""

from __future__ import annotations

import logging
import sys

_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}

log = logging.getLogger("dedupd")


class SystemdFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\r", "\\r").replace("\n", "\\n")
        return f"<{_PRIORITY.get(record.levelno, 6)}>{text}"


def setup(level: int = logging.INFO, stream=None) -> logging.Logger:
    """Send the `dedupd` logger to `stream` (stderr) in the systemd format; idempotent."""
    for handler in list(log.handlers):
        log.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(SystemdFormatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    return log
