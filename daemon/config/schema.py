"""The configuration schema: the single source of truth for keys, types, defaults and docs.

`validate()` in `load.py` walks this schema and reports every problem at once, each
with its path (`roots[1].mode: must be one of report, hardlink, ...`). `dedupctl
config show-schema` prints it, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODES = ("report", "hardlink", "symlink", "reflink", "stub")
DESTRUCTIVE_MODES = frozenset(MODES) - {"report"}
WATCH_KINDS = ("inotify", "poll")
ALGORITHMS = ("lbph", "phash", "dhash", "ahash")
KEEP_RULES = (
    "most_pixels",
    "lossless",
    "bytes_per_pixel",
    "has_exif",
    "oldest",
    "path_priority",
    "shortest_path",
    "representative",
)

# SAFETY.md rule 13: NAS metadata, snapshots, trash, our own quarantine, and
# names of files still being written. A pattern ending in "/" matches directories only.
DEFAULT_EXCLUDE = (
    "@eaDir/",
    "#recycle/",
    "#snapshot/",
    ".snapshots/",
    ".zfs/",
    ".Trash-*/",
    "@GMT-*",
    ".dedupd-quarantine/",
    "*.part",
    "*.crdownload",
    ".syncthing.*.tmp",
    "~syncthing~*",
)
DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif")


@dataclass(frozen=True)
class Field:
    """One key: its type, default and constraints. `kind` is one of
    str, path, int, float, bool, enum, list, record."""

    kind: str
    doc: str
    default: Any = None
    required: bool = False
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    item: "Field | None" = None  # for list
    fields: dict[str, "Field"] = field(default_factory=dict)  # for record
    min_items: int = 0


ROOT = Field(
    "record",
    "A directory tree to watch and deduplicate.",
    fields={
        "path": Field("path", "Absolute path of the tree (relative paths are taken from the config file's folder).", required=True),
        "mode": Field(
            "enum",
            "What to do with verified duplicates in this tree. Only `report` is safe by default; "
            "the others replace files and must be chosen per root.",
            default="report",
            choices=MODES,
        ),
        "watch": Field("enum", "How to notice changes: inotify, or poll for NFS/SMB mounts.", default="inotify", choices=WATCH_KINDS),
    },
)

SCHEMA = Field(
    "record",
    "dedupd configuration",
    fields={
        "state_dir": Field("path", "Where the index (LMDB) and the journal live. Local disk only.", default="/var/lib/dedupd"),
        "roots": Field("list", "The trees dedupd looks after.", default=[], item=ROOT),
        "algorithm": Field("enum", "Fingerprint used for lookup. lbph is the verified default; the others exist for comparison.", default="lbph", choices=ALGORITHMS),
        "thresholds": Field(
            "record",
            "Hamming distances (in bits of the fingerprint) that make a pair a candidate.",
            fields={
                "act": Field("int", "A pair this close (and verified) is the same picture: the `act` tier.", default=16, minimum=0, maximum=128),
                "report": Field("int", "A pair this close is shown for review: the `report` tier.", default=28, minimum=0, maximum=128),
            },
        ),
        "match_rotations": Field("bool", "Also look for copies rotated by 90/180/270 degrees or mirrored (reported, never acted on).", default=True),
        "min_quality": Field("float", "Images flatter than this (std. dev. of the hashed 64x64 image) never reach the act tier: their hashes carry little information.", default=4.0, minimum=0),
        "extensions": Field("list", "File name endings that are considered images (case-insensitive).", default=list(DEFAULT_EXTENSIONS), item=Field("str", "an ending such as .jpg")),
        "exclude": Field("list", "Glob patterns matched against each path component; a trailing / matches directories only.", default=list(DEFAULT_EXCLUDE), item=Field("str", "a glob pattern")),
        "pixel_limit": Field("int", "Images whose header claims more pixels than this are not decoded (decompression bombs).", default=100_000_000, minimum=1),
        "workers": Field("int", "Decode/fingerprint threads; 0 means one per CPU core.", default=0, minimum=0, maximum=256),
        "keep": Field(
            "list",
            "Which copy survives: rules applied in order, the first that tells two copies apart decides.",
            default=["most_pixels", "lossless", "bytes_per_pixel", "has_exif", "oldest", "path_priority", "shortest_path"],
            item=Field("enum", "a keep rule", choices=KEEP_RULES),
        ),
        "keep_path_priority": Field("list", "Folders whose copies are preferred as keepers, best first (used by the path_priority rule).", default=[], item=Field("path", "a folder")),
    },
)
