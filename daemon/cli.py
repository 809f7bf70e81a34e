"""`dedupctl`: scan, groups, query, status, reindex, config check.

Exit codes: 0 success; 1 partial (some files could not be read or decoded, some
actions could not be undone); 2 usage or configuration error; 3 the index or state
directory is unusable; 4 the command needs the running daemon and it is not running.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from dedupd.daemon import cli_daemon, render
from dedupd.daemon.config import Config, find_config_file, load_config
from dedupd.daemon.config.schema import SCHEMA
from dedupd.daemon.control import ControlError, DaemonDown
from dedupd.daemon.errors import ConfigError, UsageError
from dedupd.daemon.query import query_file
from dedupd.daemon.scan import Scanner
from dedupd.daemon.state import index_path, open_index
from dedupd.index.errors import IndexFailure
from dedupd.kernels.errors import DedupdError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_STATE = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 on usage errors, as we want; keep its text
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dedupctl", description="Control dedupd: scan, review groups, status, undo, purge, restore.")
    p.add_argument("--config", help="config file (default: $DEDUPD_CONFIG, ./config.yaml, /etc/dedupd/config.yaml)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("scan", help="index new and changed images under the roots (or PATHs) and regroup")
    s.add_argument("paths", nargs="*", metavar="PATH")
    s.add_argument("--json", action="store_true", help="print the scan report as JSON")
    s.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    g = sub.add_parser("groups", help="list the current groups of near-duplicates")
    g.add_argument("--json", action="store_true")
    g.add_argument("--tier", choices=("exact", "act", "report"), help="only members of this tier")
    q = sub.add_parser("query", help="indexed images near FILE")
    q.add_argument("file")
    q.add_argument("--json", action="store_true")
    q.add_argument("--radius", type=int, help="Hamming radius (default: thresholds.report)")
    st = sub.add_parser("status", help="what the index holds")
    st.add_argument("--json", action="store_true")
    r = sub.add_parser("reindex", help="throw the index away and scan everything again")
    r.add_argument("--no-progress", action="store_true")
    cli_daemon.add_parsers(sub)
    c = sub.add_parser("config", help="check a config file or print the schema")
    c.add_argument("action", choices=("check", "schema"))
    c.add_argument("file", nargs="?")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "config":
            return _config(args)
        config = load_config(find_config_file(args.config))
        return COMMANDS[args.command](config, args)
    except (UsageError, ConfigError) as exc:
        print(f"dedupctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DaemonDown as exc:
        print(f"dedupctl: {exc}", file=sys.stderr)
        return cli_daemon.EXIT_DOWN
    except ControlError as exc:
        print(f"dedupctl: the daemon says: {exc}", file=sys.stderr)
        return EXIT_STATE
    except IndexFailure as exc:
        print(f"dedupctl: {exc}", file=sys.stderr)
        return EXIT_STATE
    except DedupdError as exc:
        print(f"dedupctl: {exc}", file=sys.stderr)
        return EXIT_STATE
    except KeyboardInterrupt:
        print("dedupctl: interrupted; the index keeps every batch committed so far", file=sys.stderr)
        return 130


def _scan(config: Config, args) -> int:
    for path in args.paths:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file or directory")
    if not args.paths and not config.roots:
        raise UsageError("no roots in the config and no PATH given: nothing to scan")
    _refuse_if_daemon_runs(config, "use `dedupctl rescan` to have the daemon scan")
    with open_index(config) as index:
        report = Scanner(config, index, progress=False if args.no_progress else None).run(args.paths or None)
    print(json.dumps(report.to_json(), sort_keys=True) if getattr(args, "json", False) else render.scan_report(report))
    return EXIT_PARTIAL if report.failed or report.unavailable else EXIT_OK


def _refuse_if_daemon_runs(config: Config, hint: str) -> None:
    """The daemon owns the index while it runs (one writer)."""
    try:
        cli_daemon.client(config, timeout=2.0).request("status")
    except (DaemonDown, ControlError):
        return
    raise UsageError(f"the daemon is running ({config.socket_path}); {hint}")


def _reindex(config: Config, args) -> int:
    _refuse_if_daemon_runs(config, "stop it first (systemctl stop dedupd), then reindex")
    path = index_path(config)
    if os.path.isdir(path):
        shutil.rmtree(path)
    args.paths, args.json = [], False
    return _scan(config, args)


def _query(config: Config, args) -> int:
    if not os.path.isfile(args.file):
        raise UsageError(f"{args.file}: not a file")
    with open_index(config, readonly=True) as index:
        hits = query_file(config, index, os.path.abspath(args.file), args.radius)
    print(json.dumps({"file": os.path.abspath(args.file), "matches": hits}, indent=1) if args.json else render.matches(hits))
    return EXIT_OK


def _config(args) -> int:
    if args.action == "schema":
        print(render.schema(SCHEMA))
        return EXIT_OK
    source = find_config_file(args.file)
    config = load_config(source)
    print(f"{source}: valid ({len(config.roots)} root(s), destructive: "
          f"{', '.join(r.path for r in config.roots if r.destructive) or 'none'})")
    return EXIT_OK


COMMANDS = {
    "scan": _scan, "groups": cli_daemon.groups, "query": _query, "status": cli_daemon.status, "reindex": _reindex,
    "pause": cli_daemon.pause_resume, "resume": cli_daemon.pause_resume, "rescan": cli_daemon.rescan,
    "undo": cli_daemon.undo, "purge": cli_daemon.purge, "restore": cli_daemon.restore,
}

if __name__ == "__main__":
    sys.exit(main())
