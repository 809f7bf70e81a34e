"""Shared fixtures. `tests/` is on sys.path (pytest's default import mode), so test
modules import `testimages` directly."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# CI runs on a shared 2-core machine: a slow example is not a failure. Tests that need
# other settings (the fuzzers' long runs) set them explicitly.
settings.register_profile("dedupd", deadline=None)
settings.load_profile("dedupd")

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "manifest.csv").is_file():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    return CORPUS
