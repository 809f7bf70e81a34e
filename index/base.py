"""The index interface shared by `LmdbIndex` and its in-memory twin `MemoryIndex`.

Also the small pieces both implementations need: the schema version, `IndexMeta`,
the substring count setting, and the normalisation/validation of codes, radii and records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from .errors import InvalidRecord
from .records import MAX_CROP_CODES, STATE_OK, FileRecord

# Bump on any change of the on-disk layout or record encoding.
SCHEMA_VERSION = 4  # 2: records carry chroma, edges a verified flag; 3: codes stored once (`codes`), MIH in RAM;
# 4: v4 records (compact, no second copy of a searchable code), 11-byte packed lookups (`by_inode`, `by_content`)
UPGRADABLE = (3,)  # schema versions the writer upgrades in place when it opens them (`migrate`)
CODE_BITS = (64, 128)
U64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class IndexMeta:
    """What an index was built for; opening it with other values needs a reindex."""

    schema_version: int
    algo: str
    algo_version: int
    code_bits: int
    m: int  # MIH substrings; 0: chosen from the number of codes at each build (mih.m_for)


def default_m(code_bits: int) -> int:
    """Substring count used when none is given: 0, i.e. about log2(n) bits per table (`mih.m_for`)."""
    check_code_bits(code_bits)
    return 0


def check_code_bits(code_bits: int) -> int:
    if code_bits not in CODE_BITS:
        raise ValueError(f"code_bits must be 64 or 128, not {code_bits!r}")
    return code_bits


def make_meta(code_bits: int, m: int | None, algo: str, algo_version: int) -> IndexMeta:
    """Validated `IndexMeta` for a new index."""
    check_code_bits(code_bits)
    m = default_m(code_bits) if m is None else m
    if not isinstance(m, int) or isinstance(m, bool) or not 0 <= m <= code_bits:
        raise ValueError(f"m must be 0 (automatic) or a substring count from 1 to {code_bits}, not {m!r}")
    if m and -(-code_bits // m) > 64:
        raise ValueError(f"substrings wider than 64 bits are not supported (m={m})")
    if not isinstance(algo, str) or not algo:
        raise ValueError("algo must be a non-empty string")
    return IndexMeta(SCHEMA_VERSION, algo, int(algo_version), code_bits, m)


def as_code(code: Any, code_bits: int) -> np.ndarray:
    """A query or record code as a (2,) uint64 array, validated for `code_bits`."""
    return as_codes(code, code_bits).reshape(2)


def as_codes(codes: Any, code_bits: int) -> np.ndarray:
    """Codes as a (k, 2) uint64 array (accepts one (2,) code or a tuple of two ints)."""
    if isinstance(codes, np.ndarray):
        arr = codes
        if arr.dtype != np.uint64:
            if arr.dtype.kind not in "iu" or (arr.size and arr.min() < 0):
                raise ValueError(f"codes must be uint64 words, got dtype {arr.dtype}")
            arr = arr.astype(np.uint64)
    else:
        try:
            arr = np.array(codes, dtype=np.uint64)
        except (OverflowError, ValueError, TypeError) as e:
            raise ValueError(f"codes must be pairs of uint64 words: {e}") from None
    if arr.size % 2 or arr.ndim > 2 or (arr.ndim == 2 and arr.shape[1] != 2):
        raise ValueError(f"codes must have shape (2,) or (k, 2), not {arr.shape}")
    arr = np.ascontiguousarray(arr.reshape(-1, 2))
    if code_bits == 64 and arr.size and arr[:, 1].any():
        raise ValueError("a 64-bit index takes codes whose word 1 is zero")
    return arr


def check_radius(radius: Any) -> int:
    """A search radius as an int >= 0 (ValueError otherwise)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be an integer >= 0, not {radius!r}")
    return int(radius)


def check_radii(radius: Any, k: int) -> np.ndarray:
    """The search radius of each of k queries as int64 (k,): one int >= 0 for all of them, or a
    sequence of ints >= 0, one per query.

    Raises ValueError for a negative or non-integer radius, or a sequence of another length."""
    if isinstance(radius, (int, np.integer)) and not isinstance(radius, bool):
        if radius < 0:
            raise ValueError(f"radius must be >= 0, not {radius}")
        return np.full(k, int(radius), dtype=np.int64)
    try:
        arr = np.asarray(radius)
    except (TypeError, ValueError) as e:  # pragma: no cover - ragged input
        raise ValueError(f"radius must be an int or one int per query: {e}") from None
    if arr.ndim != 1 or (arr.dtype.kind not in "iu" and arr.size):  # [] is float64 to numpy
        raise ValueError(f"radius must be an int or a sequence of ints (one per query), not {radius!r}")
    if len(arr) != k:
        raise ValueError(f"{len(arr)} radii for {k} queries: give one radius per query, or one int for all")
    if len(arr) and arr.min() < 0:
        raise ValueError(f"radii must be >= 0, got {int(arr.min())}")
    return arr.astype(np.int64)


def is_searchable(rec: FileRecord) -> bool:
    """Whether the record takes part in range searches (has a code and state ok)."""
    return rec.code is not None and rec.state == STATE_OK


def check_record(rec: FileRecord, meta: IndexMeta) -> None:
    """Reject records this index cannot hold; raises `InvalidRecord`."""
    if not isinstance(rec, FileRecord):
        raise InvalidRecord(f"expected a FileRecord, got {type(rec).__name__}")
    if not isinstance(rec.file_id, int) or not 0 <= rec.file_id <= U64_MAX:
        raise InvalidRecord(f"file_id out of range: {rec.file_id!r}")
    if rec.code is not None:
        if not _plain_code(rec.code, meta.code_bits):
            try:
                as_code(rec.code, meta.code_bits)
            except (ValueError, TypeError) as e:
                raise InvalidRecord(f"{rec.path!r}: {e}") from None
        if rec.algo and (rec.algo, rec.algo_version) != (meta.algo, meta.algo_version):
            raise InvalidRecord(
                f"{rec.path!r}: code from {rec.algo} v{rec.algo_version}, but the index holds "
                f"{meta.algo} v{meta.algo_version} codes"
            )
    if rec.box_code is not None and not _plain_code(rec.box_code, meta.code_bits):
        try:
            as_code(rec.box_code, meta.code_bits)
        except (ValueError, TypeError) as e:
            raise InvalidRecord(f"{rec.path!r}: box code: {e}") from None
    crops = rec.crop_codes
    if crops:
        if not isinstance(crops, tuple) or len(crops) > MAX_CROP_CODES:
            raise InvalidRecord(f"{rec.path!r}: crop codes must be a tuple of at most {MAX_CROP_CODES} codes")
        for code in crops:
            if not _plain_code(code, meta.code_bits):
                try:
                    as_code(code, meta.code_bits)
                except (ValueError, TypeError) as e:
                    raise InvalidRecord(f"{rec.path!r}: crop code: {e}") from None


def _plain_code(code: Any, code_bits: int) -> bool:
    """Fast path of the code check: a tuple of two in-range ints (what the daemon stores)."""
    return (type(code) is tuple and len(code) == 2 and type(code[0]) is int and type(code[1]) is int
            and 0 <= code[0] <= U64_MAX and (code[1] == 0 if code_bits == 64 else 0 <= code[1] <= U64_MAX))


@runtime_checkable
class Index(Protocol):
    """A store of `FileRecord`s with exact Hamming range search over their codes.

    Ids are assigned by the index (put a record with file_id 0), increase
    monotonically and are never reused. Records without a code, or not in state
    "ok", are stored but never returned by range searches. Both implementations
    search with `codetable.CodeTable` (a fused scan or multi-index hashing in RAM);
    `search_mode` ("auto", "scan", "mih") lets tests and benchmarks force a path.

    Box codes and crop window codes (`FileRecord.box_code`, `FileRecord.crop_codes`, `boxes`):
    rows of the same code table under alias ids, searched only by `range_search_many(...,
    boxes=True)` (or a bool per query: which of them) and listed by `all_box_codes` and
    `all_crop_codes`;
    `range_search`, `range_search_many` and `all_codes` see the records' own codes alone.

    Path lookups: `by_path(p)` is the record whose path is exactly `p` (or None);
    `by_paths(ps)` is {p: record} for those of `ps` that are indexed, the same answers
    as `by_path` but read together (LMDB: one read transaction per few thousand paths,
    keys in order: what a scan asks for a directory's files); `paths_under(prefixes)`
    is {file id: path} of every record whose path starts with one of the string
    prefixes (LMDB: one pass over the records reading only their paths). `get_many(ids)`
    is {id: record} for those of `ids` that are records (what `get` answers, without
    raising for the others; LMDB: a few thousand ids per read transaction).
    """

    meta: IndexMeta

    def put(self, rec: FileRecord) -> FileRecord: ...
    def put_many(self, recs: Iterable[FileRecord]) -> list[FileRecord]: ...
    def delete_many(self, file_ids: Iterable[int]) -> int: ...
    def get(self, file_id: int) -> FileRecord: ...
    def get_many(self, file_ids: Iterable[int]) -> dict[int, FileRecord]: ...
    def by_path(self, path: str) -> FileRecord | None: ...
    def by_paths(self, paths: Iterable[str]) -> dict[str, FileRecord]: ...
    def paths_under(self, prefixes: Iterable[str]) -> dict[int, str]: ...
    def by_inode(self, dev: int, ino: int) -> list[FileRecord]: ...
    def by_content(self, content_hash: bytes) -> list[FileRecord]: ...
    def range_search(self, code: Any, radius: int) -> list[tuple[int, int]]: ...
    def range_search_many(self, codes: np.ndarray, radius: "int | Sequence[int]", *,
                          boxes: "bool | Sequence[bool]" = False) -> list[list[tuple[int, int]]]: ...
    def iter_records(self) -> Iterator[FileRecord]: ...
    def all_codes(self) -> tuple[np.ndarray, np.ndarray]: ...  # fresh arrays, sorted by id
    def all_box_codes(self) -> tuple[np.ndarray, np.ndarray]: ...  # alias ids (`boxes`) and box codes, by id
    def all_crop_codes(self) -> tuple[np.ndarray, np.ndarray]: ...  # alias ids and window codes, by id
    def __len__(self) -> int: ...
    def get_meta(self, key: str, default: Any = None) -> Any: ...
    def set_meta(self, key: str, value: Any) -> None: ...
    def replace_groups(self, groups: Iterable[dict]) -> None: ...
    def iter_groups(self) -> Iterator[dict]: ...
    def stats(self) -> dict: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Index": ...
    def __exit__(self, *exc: object) -> None: ...
