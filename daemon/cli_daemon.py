"""`dedupctl` commands that talk to the running daemon, or work without it.

With the daemon up, every request goes through its control socket: the daemon's main
thread is the only one that changes files (ARCHITECTURE.md section 1). With the daemon
down, `status` and `groups` answer from the index read-only and say so; `undo`,
`purge` and `restore` work on the journal directly (the daemon's next start reconciles
the index); `pause`, `resume` and `rescan` need the daemon.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import time

from dedupd.daemon import render
from dedupd.daemon.config import Config
from dedupd.daemon.control import ControlClient, DaemonDown
from dedupd.daemon.errors import UsageError
from dedupd.daemon.state import open_index
from dedupd.daemon.status import collect_status

EXIT_OK, EXIT_PARTIAL, EXIT_DOWN = 0, 1, 4
LONG = 900.0  # seconds a client waits for work the daemon does on its main thread (after the current scan batch)


def add_parsers(sub) -> None:
    for name, text in (("pause", "stop acting (watching and queueing go on)"), ("resume", "act again after pause")):
        sub.add_parser(name, help=f"daemon: {text}")
    r = sub.add_parser("rescan", help="daemon: rescan every root now (or only PATHs)")
    r.add_argument("paths", nargs="*", metavar="PATH")
    u = sub.add_parser("undo", help="put replaced files back from the quarantine, bytes and metadata exactly")
    u.add_argument("what", nargs="?", metavar="PATH|ACTION_ID", help="a replaced file's path or an action id")
    u.add_argument("--since", metavar="TIME", help="every action since TIME (ISO 8601 like 2026-11-29T18:00, or an age like 2h, 3d)")
    u.add_argument("--json", action="store_true")
    p = sub.add_parser("purge", help="free the quarantined bytes of actions older than the retention (or --older-than)")
    p.add_argument("--older-than", type=float, metavar="DAYS")
    p.add_argument("--json", action="store_true")
    s = sub.add_parser("restore", help="turn a stub FILE.dedup back into the image file")
    s.add_argument("stub", metavar="FILE.dedup")


def client(config: Config, timeout: float = 10.0) -> ControlClient:
    return ControlClient(config.socket_path, timeout=timeout)


def status(config: Config, args) -> int:
    try:
        result = client(config).request("status")
    except DaemonDown as exc:
        with open_index(config, readonly=True) as index:
            result = collect_status(config, index)
        result["daemon"] = {"running": False, "detail": str(exc)}
        result["actions"] = _journal_totals(config)
    print(json.dumps(result, indent=1, sort_keys=True) if args.json else render.status(result))
    return EXIT_OK


def groups(config: Config, args) -> int:
    try:
        found = client(config).request("groups", tier=args.tier)["groups"]
    except DaemonDown:
        with open_index(config, readonly=True) as index:
            found = list(index.iter_groups())
        if args.tier:
            found = [dict(g, members=[m for m in g["members"] if m["tier"] == args.tier]) for g in found]
            found = [g for g in found if g["members"]]
    print(json.dumps({"groups": found}, indent=1) if args.json else render.groups(found))
    return EXIT_OK


def pause_resume(config: Config, args) -> int:
    result = _daemon_only(config, args.command)
    print("paused: no action is taken until `dedupctl resume`" if result["paused"] else "resumed")
    return EXIT_OK


def rescan(config: Config, args) -> int:
    paths = [os.path.abspath(p) for p in args.paths]
    result = _daemon_only(config, "rescan", timeout=LONG, paths=paths)
    print("rescanned: " + ", ".join(result["rescanned"]))
    return EXIT_OK


def undo(config: Config, args) -> int:
    if bool(args.what) == bool(args.since):
        raise UsageError("dedupctl undo: name one PATH or ACTION_ID, or give --since TIME")
    request = {"since": parse_time(args.since)} if args.since else _path_or_id(args.what)
    try:
        result = client(config, LONG).request("undo", **request)
    except DaemonDown:
        result = _local(config, "undo", request)
    rows = result["results"]
    if args.json:
        print(json.dumps(result, indent=1))
    elif not rows:
        print("nothing to undo")
    for row in rows if not args.json else ():
        print(f"{'undone' if row['undone'] else 'NOT undone'}: {row['path']} (action {row['action_id']})"
              + (f": {row['error']}" if not row["undone"] else ""))
    return EXIT_OK if all(r["undone"] for r in rows) else EXIT_PARTIAL


def purge(config: Config, args) -> int:
    request = {"older_than_days": args.older_than}
    try:
        result = client(config, LONG).request("purge", **request)
    except DaemonDown:
        result = _local(config, "purge", request)
    print(json.dumps(result) if args.json else
          f"purged {result['entries']} quarantine entr(ies); {render.size(result['bytes_freed'])} freed")
    return EXIT_OK


def restore(config: Config, args) -> int:
    request = {"stub": os.path.abspath(args.stub)}
    try:
        result = client(config, LONG).request("restore", **request)
    except DaemonDown:
        result = _local(config, "restore", request)
    print(f"restored {result['restored']}")
    return EXIT_OK


def parse_time(text: str) -> float:
    """An age (`90m`, `2h`, `3d`, `1w`) or an ISO 8601 local time (`2026-11-29T18:00[:SS]`) → unix time."""
    age = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip())
    if age:
        return time.time() - float(age.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[age.group(2)]
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(text.strip(), fmt))
        except ValueError:
            continue
    if text.strip().endswith("Z"):
        try:
            return float(calendar.timegm(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%SZ")))
        except ValueError:
            pass
    raise UsageError(f"--since: {text!r} is neither an age like 2h / 3d nor a time like 2026-11-29T18:00")


def _path_or_id(what: str) -> dict:
    if os.sep in what or os.path.lexists(what):
        return {"path": os.path.abspath(what)}
    return {"action_id": what}


def _daemon_only(config: Config, cmd: str, timeout: float = 10.0, **args) -> dict:
    try:
        return client(config, timeout).request(cmd, **args)
    except DaemonDown as exc:
        raise DaemonDown(f"{exc}; `dedupctl {cmd}` needs the running daemon (systemctl start dedupd)") from exc


def _local(config: Config, cmd: str, args: dict) -> dict:
    """The daemon is down: run the command on the journal directly."""
    from dedupd.daemon.local_ops import run_local  # the journal and index are opened only here

    return run_local(config, cmd, args)


def _journal_totals(config: Config) -> dict:
    from dedupd.daemon.local_ops import journal_totals

    return journal_totals(config)
