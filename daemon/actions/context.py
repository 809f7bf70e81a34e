"""The state of one action while it executes: names, open descriptors and what has
been done so far (so an abort undoes exactly that, and nothing else)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from dedupd.daemon import failpoints
from dedupd.daemon.config.schema import QUARANTINE_DIR, TEMP_PREFIX

from .plan import STUB_SUFFIX, Action


@dataclass(frozen=True)
class Names:
    """Where an action's files live: the paths the journal records."""

    quarantine_path: str  # <root>/.dedupd-quarantine/<action_id>/<basename>
    temp_path: str  # <target dir>/.dedupd-tmp-<action_id>
    final_path: str  # the target, or <target>.dedup for a stub

    @classmethod
    def of(cls, action: Action) -> "Names":
        path = action.target.path
        quarantine = os.path.join(action.root, QUARANTINE_DIR, action.action_id, os.path.basename(path))
        temp = os.path.join(os.path.dirname(path), TEMP_PREFIX + action.action_id)
        final = path + STUB_SUFFIX if action.kind == "stub" else path
        return cls(quarantine, temp, final)


@dataclass
class Run:
    action: Action
    names: Names
    on_own_write: Callable[[str], None]
    step: str = "begin"  # the last step reached, for messages
    tdir: int = -1  # the target's directory
    kdir: int = -1  # the keeper's directory
    qbase: int = -1  # <root>/.dedupd-quarantine
    qdir: int = -1  # <root>/.dedupd-quarantine/<action_id>
    tfd: int = -1  # the verified target
    kfd: int = -1  # the verified keeper
    target_atime_ns: int = 0
    quarantined: bool = False  # the quarantine link exists (we made it)
    temp_ino: int | None = None  # inode we made under the temp name
    final_linked: bool = False  # stub: <name>.dedup is our stub
    swapped: bool = False  # the target name holds our replacement (or, stub, is gone)
    fds: list = field(default_factory=list)

    @property
    def tname(self) -> str:
        return os.path.basename(self.action.target.path)

    @property
    def kname(self) -> str:
        return os.path.basename(self.action.keeper.path)

    @property
    def pname(self) -> str:
        return os.path.basename(self.names.temp_path)

    @property
    def qname(self) -> str:
        return os.path.basename(self.names.quarantine_path)

    @property
    def fname(self) -> str:
        return os.path.basename(self.names.final_path)

    def hit(self, step: str) -> None:
        """Record the step and pass its failpoint `<kind>.<step>`."""
        self.step = step
        failpoints.hit(f"{self.action.kind}.{step}")

    def own(self, path: str) -> None:
        """Tell the watcher that the next change to `path` is ours."""
        self.on_own_write(path)

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()
