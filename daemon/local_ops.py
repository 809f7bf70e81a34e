"""`undo`, `purge` and `restore` while the daemon is down: the same operations the
daemon runs on its main thread, here on the index and journal opened by dedupctl
(the one-writer locks make sure the daemon is not running at the same time)."""

from __future__ import annotations

import os

from dedupd.daemon.actions.journal import Journal
from dedupd.daemon.actions.recover import recover
from dedupd.daemon.config import Config
from dedupd.daemon.operations import Operations
from dedupd.daemon.scan import Scanner
from dedupd.daemon.state import open_index

JOURNAL_DIR = "journal"


def run_local(config: Config, cmd: str, args: dict) -> dict:
    index = open_index(config)
    try:
        journal = Journal.open(config.state_dir)
        try:
            recover(journal)  # SAFETY.md rule 21: unfinished actions are resolved before new work
            ops = Operations(config, index, journal, Scanner(config, index, progress=False), None, None, None)
            return getattr(ops, cmd)(args)
        finally:
            journal.close()
    finally:
        index.close()


def journal_totals(config: Config) -> dict:
    """Quarantine and reclaim totals; zeros when nothing was ever done (no journal yet)."""
    if not os.path.isdir(os.path.join(config.state_dir, JOURNAL_DIR)):
        return {}
    journal = Journal.open(config.state_dir)
    try:
        return journal.totals()
    finally:
        journal.close()
