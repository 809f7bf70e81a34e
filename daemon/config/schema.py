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
HARDLINK_FALLBACKS = ("skip", "reflink", "stub")
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
# Names of our own that no scan or watch may ever look at, whatever `exclude` says:
# the per-root quarantine and the temporary names replacements are built under.
QUARANTINE_DIR = ".dedupd-quarantine"
TEMP_PREFIX = ".dedupd-tmp-"
ALWAYS_EXCLUDE = (QUARANTINE_DIR + "/", TEMP_PREFIX + "*")

# Keep rules: EXIF before bytes per pixel (a same-size re-encode a few percent larger must not
# win over the camera original it could then never replace); bytes per pixel within 10 % is a
# tie (dedupd.daemon.keep.BPP_TIE). Measured in docs/accuracy.md §4.
DEFAULT_KEEP = ("most_pixels", "lossless", "has_exif", "bytes_per_pixel", "oldest", "path_priority", "shortest_path")
CROP_DEFAULT = 20  # docs/accuracy.md §12: 15 % crops meet their original's windows within 20 bits in 98-99 %; distinct photos' closest windows 24
ROTATED_DEFAULT = 20  # docs/accuracy.md §6: real rotations/mirrors <= 14 bits; different photos through a variant: none <= 20, 82 <= 24

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
        "hardlink_fallback": Field(
            "enum",
            "mode hardlink only: what to do when a copy and its keeper differ in owner, group, mode or "
            "extended attributes (a hard link has one of each; SAFETY.md rule 14): skip it, or use a "
            "reflink or a stub instead.",
            default="skip",
            choices=HARDLINK_FALLBACKS,
        ),
    },
)

DAEMON = Field(
    "record",
    "How the dedupd service watches and rescans.",
    fields={
        "settle_seconds": Field("float", "A new or changed file is looked at once its size and mtime have been still this long.", default=5.0, minimum=0),
        "rescan_minutes": Field("int", "Minutes between full reconciliation scans (events only lower latency; the scan is the truth). 0: only at start and after a watch error.", default=60, minimum=0),
        "storm_events": Field("int", "More events than this in one directory within one settle period collapse into a rescan of that directory.", default=1000, minimum=1),
        "poll_seconds": Field("float", "Interval of the polling watcher (roots with watch: poll).", default=30.0, minimum=0.1),
    },
)

QUARANTINE = Field(
    "record",
    "Replaced files are kept (hard-linked, no copy) in <root>/.dedupd-quarantine until retention expires.",
    fields={
        "retention_days": Field("float", "Days a replaced file's bytes are kept for `dedupctl undo`; the daemon purges older entries.", default=30.0, minimum=0),
    },
)

CONTROL = Field(
    "record",
    "The daemon's control socket (JSON requests from dedupctl).",
    fields={
        "socket": Field("path", "Unix socket path; empty means <state_dir>/control.sock. Under systemd use /run/dedupd/control.sock.", default=""),
        "mode": Field("str", "Permission bits of the socket, in octal: who may talk to the daemon.", default="0660"),
        "group": Field("str", "Group that owns the socket (empty: the daemon's group).", default=""),
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
                "act": Field("int", "A pair this close (and verified) is the same picture: the `act` tier.", default=24, minimum=0, maximum=128),
                "report": Field("int", "A pair this close is shown for review: the `report` tier.", default=28, minimum=0, maximum=128),
                "rotated": Field(
                    "int",
                    f"A pair that matches only through a rotated or mirrored variant counts when this close (at most "
                    f"`report`; unset: {ROTATED_DEFAULT}, or `report` if that is smaller). Real rotations and mirrors "
                    "stay within ~14 bits; different photos come closer through one of 8 variants than upright.",
                    default=None, minimum=0, maximum=128,
                ),
                "crop": Field(
                    "int",
                    f"With match_crops, a window of one picture this close to a window of another makes the pair a crop "
                    f"candidate (at most `report`; unset: {CROP_DEFAULT}, or `report` if that is smaller). Candidates are "
                    "confirmed pixel by pixel and reported, never acted on.",
                    default=None, minimum=0, maximum=128,
                ),
            },
        ),
        "match_crops": Field(
            "bool",
            "Also look for crops (a copy keeping part of a picture, maybe resized): reported, never acted on. "
            "Costs ~7 ms of CPU per new file and ~6 more codes per file in the index and in RAM "
            "(docs/accuracy.md §12); turning it on for an existing index needs `dedupctl reindex`.",
            default=False,
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
            default=list(DEFAULT_KEEP),
            item=Field("enum", "a keep rule", choices=KEEP_RULES),
        ),
        "keep_path_priority": Field("list", "Folders whose copies are preferred as keepers, best first (used by the path_priority rule).", default=[], item=Field("path", "a folder")),
        "daemon": DAEMON,
        "quarantine": QUARANTINE,
        "control": CONTROL,
    },
)
