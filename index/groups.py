"""Validation of what the app stores beside records: duplicate groups and metadata keys.

Both implementations call these before touching their tables, so that bad input
raises the same ValueError/TypeError everywhere and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

MAX_KEY_BYTES = 400  # LMDB keys are limited to 511 bytes


def _key_bytes(key: Any, what: str) -> bytes:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} must be a non-empty str, got {key!r:.80}")
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_KEY_BYTES:
        raise ValueError(f"{what} is longer than {MAX_KEY_BYTES} bytes: {key[:40]!r}...")
    return raw


def check_groups(groups: Iterable[dict]) -> list[tuple[bytes, bytes]]:
    """(id bytes, JSON bytes) for each group, sorted by id bytes. Bytes, not texts: what is
    stored, built once (50,000 groups are ~10 MB of JSON; a text and its bytes side by side
    were twice that at the peak of a store, left as free heap afterwards)."""
    out: dict[bytes, bytes] = {}
    for g in groups:
        if not isinstance(g, dict):
            raise ValueError(f"a group must be a dict, got {g!r:.80}")
        key = _key_bytes(g.get("id"), "a group's 'id'")
        if key in out:
            raise ValueError(f"duplicate group id {g['id']!r}")
        out[key] = json.dumps(g).encode()
    return sorted(out.items())


def check_meta(key: str, value: Any) -> tuple[bytes, str]:
    """(key bytes, JSON text) of one app metadata entry."""
    return _key_bytes(key, "a metadata key"), json.dumps(value)
