"""dedupd.index: file records and exact Hamming range search.

`LmdbIndex` is the on-disk store; `MemoryIndex` its in-memory twin with the same
interface (`Index`). Both answer `range_search` exactly: every record with a code
within the radius, sorted by (distance, file id), from an in-RAM table of the codes
(`codetable`) searched by a fused scan or by multi-index hashing, whichever its cost
model expects to be faster (docs/performance.md, Index).
"""

from .base import SCHEMA_VERSION, Index, IndexMeta, default_m, is_searchable
from .errors import (IndexCorrupt, IndexFailure, IndexLocked, IndexMismatch, IndexMissing,
                     InvalidRecord, PathConflict, RecordNotFound)
from .lmdb_index import LmdbIndex
from .memory import MemoryIndex
from .records import STATE_ERROR, STATE_OK, FileRecord

__all__ = [
    "SCHEMA_VERSION", "Index", "IndexMeta", "default_m", "is_searchable",
    "IndexFailure", "IndexCorrupt", "IndexMismatch", "IndexMissing", "IndexLocked",
    "InvalidRecord", "PathConflict", "RecordNotFound",
    "LmdbIndex", "MemoryIndex", "FileRecord", "STATE_OK", "STATE_ERROR",
]
