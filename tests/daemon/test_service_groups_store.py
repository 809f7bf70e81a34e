"""When the service stores the groups: after SAVE_IDLE seconds without activity, at the
latest SAVE_MAX seconds after the last store, never while paths settle, and at exit even
if the index fails (the store is O(groups): it must stay off the way to an action)."""

from __future__ import annotations

import pytest

from dedupd.daemon import service as service_mod
from dedupd.daemon.service import SAVE_IDLE, SAVE_MAX, Service


class FakeOps:
    def __init__(self, fail: bool = False):
        self.groups_unsaved, self.saves, self.fail = True, 0, fail

    def save_groups(self) -> bool:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.saves += 1
        self.groups_unsaved = False
        return True


class FakeSettler:
    def __init__(self, pending: int = 0):
        self.n = pending

    def pending(self) -> int:
        return self.n


@pytest.fixture()
def svc(monkeypatch):
    clock = {"now": 1000.0}
    monkeypatch.setattr(service_mod.time, "monotonic", lambda: clock["now"])
    s = Service("unused.yaml", environ={})
    s.ops, s.settler = FakeOps(), FakeSettler()
    s.clock = clock
    return s


def test_groups_are_stored_once_nothing_happened_for_save_idle_seconds(svc):
    svc.last_activity = svc.groups_saved_at = svc.clock["now"]
    svc.clock["now"] += SAVE_IDLE - 0.1
    svc._save_groups_when_idle()
    assert svc.ops.saves == 0  # a file copied right after a round is not kept waiting
    svc.clock["now"] += 0.2
    svc._save_groups_when_idle()
    assert svc.ops.saves == 1
    svc.clock["now"] += 3 * SAVE_IDLE
    svc._save_groups_when_idle()
    assert svc.ops.saves == 1  # nothing changed since: no write


def test_settling_paths_postpone_the_store_but_not_past_save_max(svc):
    svc.settler = FakeSettler(pending=3)
    svc.last_activity = svc.groups_saved_at = svc.clock["now"]
    svc.clock["now"] += SAVE_MAX - 1
    svc._save_groups_when_idle()
    assert svc.ops.saves == 0
    svc.clock["now"] += 1
    svc._save_groups_when_idle()
    assert svc.ops.saves == 1 and svc.groups_saved_at == svc.clock["now"]


def test_a_failed_store_at_exit_is_logged_not_raised(svc, caplog):
    svc.ops = FakeOps(fail=True)
    svc._save_groups_now("at exit")
    assert "could not be stored at exit" in caplog.text
    svc.ops = None
    svc._save_groups_now("at exit")  # a daemon that never got to build its operations
