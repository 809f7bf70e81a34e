"""Validation and encoding of duplicate groups (the derived snapshot the daemon stores)."""

from __future__ import annotations

import json
from typing import Iterator


def check_groups(groups: list[dict]) -> Iterator[tuple[str, str]]:
    """(id, JSON text) for each group; raises ValueError/TypeError before anything is stored."""
    seen: set[str] = set()
    out = []
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("id"), str) or not g["id"]:
            raise ValueError(f"a group must be a dict with a non-empty str 'id', got {g!r:.80}")
        if g["id"] in seen:
            raise ValueError(f"duplicate group id {g['id']!r}")
        seen.add(g["id"])
        out.append((g["id"], json.dumps(g)))
    return iter(out)
