"""Named failpoints for crash and fault-injection tests.

`hit(name)` is a no-op in production. Two ways to arm one:
- the environment variable `DEDUPD_FAILPOINT=name` makes the process SIGKILL itself
  when it reaches `name` (crash-consistency tests run the real code in a subprocess);
- `inject(name, exc)` (a context manager, in-process) makes `hit(name)` raise `exc`
  (fault injection: EMLINK, ENOSPC, ... where the real condition cannot be made).
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

ENV = "DEDUPD_FAILPOINT"
_injected: dict[str, BaseException] = {}


def hit(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    exc = _injected.get(name)
    if exc is not None:
        raise exc


@contextmanager
def inject(name: str, exc: BaseException):
    _injected[name] = exc
    try:
        yield
    finally:
        _injected.pop(name, None)
