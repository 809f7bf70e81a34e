"""Fixtures for the index tests: every conformance test runs against both implementations."""

from __future__ import annotations

import pytest

from dedupd.index import LmdbIndex, MemoryIndex

IMPLEMENTATIONS = ["memory", "lmdb"]


def pytest_collect_file(file_path, parent):
    # The shared suite is named conformance.py (not test_*.py): collect it here, unless
    # it was named on the command line (pytest collects those itself).
    if file_path.name == "conformance.py" and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def open_index(kind: str, path, code_bits: int = 128, m: int | None = None,
               algo: str = "lbph", algo_version: int = 1):
    if kind == "memory":
        return MemoryIndex(code_bits, m, algo, algo_version)
    return LmdbIndex.open(path, code_bits=code_bits, m=m, algo=algo, algo_version=algo_version)


@pytest.fixture(params=IMPLEMENTATIONS)
def make_index(request, tmp_path):
    """A factory of fresh, empty indexes of one implementation; closes them afterwards."""
    opened = []

    def make(**kwargs):
        ix = open_index(request.param, tmp_path / f"index{len(opened)}", **kwargs)
        opened.append(ix)
        return ix

    make.kind = request.param
    yield make
    for ix in opened:
        ix.close()


@pytest.fixture
def index(make_index):
    return make_index()
