"""Shared fixtures. `tests/` is on sys.path (pytest's default import mode), so test
modules import `testimages` directly."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "manifest.csv").is_file():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    return CORPUS
