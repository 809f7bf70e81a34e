"""decide(): which members of which groups become actions, on real files."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from dedupd.daemon.actions.plan import Action, Skip
from dedupd.daemon.config import parse_config
from dedupd.daemon.decide import decide, root_of
from dedupd.daemon.grouping import Group, Member
from dedupd.index.records import FileRecord
from testimages import encode, photo, resize, write

OLD = 1_600_000_000


def record(path) -> FileRecord:
    st = os.lstat(path)
    data = open(path, "rb").read()
    return FileRecord(0, str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                      width=1, height=1, format="jpeg", content_hash=hashlib.sha256(data).digest())


@pytest.fixture()
def tree(tmp_path):
    astro = photo("astronaut")
    return {
        "keep": write(tmp_path / "a/astronaut.jpg", encode(astro, ".jpg", 95), OLD),
        "act": write(tmp_path / "a/copies/astronaut_half.jpg", encode(resize(astro, 0.5), ".jpg", 90), OLD),
        "report": write(tmp_path / "a/copies/astronaut_rot.jpg", encode(astro[::-1].copy(), ".jpg", 90), OLD),
        "other_root": write(tmp_path / "b/astronaut_q70.jpg", encode(astro, ".jpg", 70), OLD),
    }


def config(tmp_path, mode_a="hardlink", mode_b="report", settle=5.0):
    return parse_config(
        f"state_dir: {tmp_path / 'state'}\n"
        f"roots: [{{path: {tmp_path / 'a'}, mode: {mode_a}}}, {{path: {tmp_path / 'b'}, mode: {mode_b}}}]\n"
        f"daemon: {{settle_seconds: {settle}}}\n"
    )


def group(tree, *members) -> Group:
    return Group("g", record(tree["keep"]), tuple(Member(record(tree[name]), 4, "identity", tier, True) for name, tier in members))


def run(cfg, groups, *, available=lambda p: True, replaced=lambda r: False, now=None):
    """`now` defaults to an hour from now: the files' ctime (just written) is long settled."""
    return decide(groups, cfg, available=available, already_replaced=replaced, now=now or time.time() + 3600)


def test_only_act_and_exact_members_of_destructive_roots_become_actions(tmp_path, tree):
    d = run(config(tmp_path), [group(tree, ("act", "act"), ("report", "report"), ("other_root", "act"))])
    assert [a.target.path for a in d.plan.actions] == [str(tree["act"])]  # b is report-only; rot is report tier
    action = d.plan.actions[0]
    assert isinstance(action, Action) and action.kind == "hardlink" and action.tier == "act"
    assert action.keeper.path == str(tree["keep"]) and action.root == str(tmp_path / "a")
    assert d.plan.describe()[0].startswith("hardlink")


def test_report_mode_everywhere_plans_nothing(tmp_path, tree):
    d = run(config(tmp_path, mode_a="report"), [group(tree, ("act", "act"), ("other_root", "exact"))])
    assert d.plan.actions == () and d.plan.skipped == () and d.deferred == ()


def test_unavailable_root_is_skipped_with_a_reason(tmp_path, tree):
    d = run(config(tmp_path), [group(tree, ("act", "act"))], available=lambda p: not p.endswith("/a"))
    assert d.plan.actions == () and [s.reason for s in d.plan.skipped] == ["root_unavailable"]


def test_keeper_in_a_protected_folder_is_never_used(tmp_path, tree):
    trash = write(tmp_path / "a/#recycle/astronaut.jpg", tree["keep"].read_bytes(), OLD)
    g = Group("g", record(trash), (Member(record(tree["act"]), 0, "identity", "act", True),))
    d = run(config(tmp_path), [g])
    assert d.plan.actions == () and isinstance(d.plan.skipped[0], Skip)
    assert d.plan.skipped[0].reason == "keeper_in_protected_folder"


def test_files_not_yet_quiet_are_deferred_not_judged(tmp_path, tree):
    os.utime(tree["act"], None)  # written just now
    d = run(config(tmp_path, settle=60), [group(tree, ("act", "act"))], now=time.time())
    assert d.plan.actions == () and d.deferred == (str(tree["act"]),)
    later = run(config(tmp_path, settle=60), [group(tree, ("act", "act"))], now=time.time() + 61)
    assert [a.target.path for a in later.plan.actions] == [str(tree["act"])]


def test_already_replaced_and_same_inode_members_are_left(tmp_path, tree):
    d = run(config(tmp_path), [group(tree, ("act", "act"))], replaced=lambda r: True)
    assert d.plan.actions == () and d.plan.skipped == ()
    link = tmp_path / "a/copies/link.jpg"
    os.link(tree["keep"], link)
    tree["link"] = link
    d = run(config(tmp_path), [group(tree, ("link", "exact"))])
    assert d.plan.actions == () and d.plan.skipped == ()


def test_root_of_matches_whole_components(tmp_path):
    cfg = config(tmp_path)
    assert root_of(str(tmp_path / "a/x.jpg"), cfg.roots).path == str(tmp_path / "a")
    assert root_of(str(tmp_path / "ab/x.jpg"), cfg.roots) is None
