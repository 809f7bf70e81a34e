"""What the index stores about one file.

A `FileRecord` is immutable; the index assigns `file_id` on first insert (pass 0). It has
slots, no `__dict__` (22 fields: ~120 bytes less per record than with a dict).
`code` is the fingerprint as two uint64 words (word 0 holds bits 0..63, word 1 bits
64..127; 64-bit algorithms leave word 1 at zero). Records of files that could not be
decoded are stored too (state "error", code None), so that an unchanged broken file
is not decoded again on every scan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

STATE_OK = "ok"
STATE_ERROR = "error"

# Formats whose bytes keep every pixel exactly (used by the keep policy).
LOSSLESS_FORMATS = frozenset({"png", "tiff", "bmp", "gif"})
MAX_CROP_CODES = 255  # window codes a record may hold (alias slots 1..255, `dedupd.index.boxes`)


@dataclass(frozen=True, slots=True)
class FileRecord:
    file_id: int
    path: str  # absolute; non-UTF-8 names kept through os.fsdecode (surrogateescape)
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    width: int = 0  # as displayed, after EXIF orientation
    height: int = 0
    format: str = ""  # jpeg, png, webp, tiff, bmp, gif, ...
    content_hash: bytes = b""  # sha256 of the file's bytes (32 bytes)
    code: tuple[int, int] | None = None
    algo: str = ""
    algo_version: int = 0
    quality: float = 0.0  # contrast of the hashed image; near 0 = flat, hash unreliable
    has_exif: bool = False
    state: str = STATE_OK
    error: str = ""  # error kind when state == "error"
    chroma: float = 0.0  # mean colourfulness (max - min of B, G, R) of a small rendering; ~0 = greyscale
    encoding: int = 0  # JPEG: fingerprint of its quantization (dedupd.daemon.imageinfo); 0 = unknown / not JPEG
    # the code of the picture's content box (uniform edge bars cut off, `dedupd.kernels.contentbox`), same
    # algorithm as `code`; None when the picture has no bars. Searchable beside `code` (`dedupd.index.boxes`)
    box_code: tuple[int, int] | None = None
    # codes of windows around the picture's strongest keypoints (`dedupd.daemon.cropcodes`), strongest
    # first, same algorithm as `code`: how a crop of the picture is found. Empty unless crops are matched
    # (config `match_crops`). Searchable beside `code` as alias rows (`dedupd.index.boxes`)
    crop_codes: tuple[tuple[int, int], ...] = ()

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def lossless(self) -> bool:
        return self.format in LOSSLESS_FORMATS

    def same_stat(self, dev: int, ino: int, size: int, mtime_ns: int) -> bool:
        """True when a file with this stat is, for our purposes, unchanged."""
        return (self.dev, self.ino, self.size, self.mtime_ns) == (dev, ino, size, mtime_ns)

    def with_(self, **changes) -> "FileRecord":
        return replace(self, **changes)
