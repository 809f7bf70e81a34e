"""A tree of hostile and broken input, made from real photos (issue 6, part 1).

`build(root)` writes, next to a few good photos and their duplicates, every kind of
input a NAS share can throw at dedupd: truncated JPEG/PNG/WebP/TIFF/GIF at several cut
points, flipped header bytes, zero-byte files, 1x1 and 100000x1 images, headers
claiming 60000x60000 pixels, a PNG zlib bomb, a non-image named .jpg, a JPEG named
.png, FIFOs, sockets and device nodes, symlink loops, unreadable files and folders,
non-UTF-8 and newline-containing names, and paths near PATH_MAX.

Each hostile entry says which outcomes are acceptable (`Entry.expect`): an error kind
of `dedupd.daemon.errors` ("truncated", "corrupt", ...), "indexed" (a valid image
under an odd name or in an odd shape), or "unseen" (passed over by the walker, counted
under `Entry.skip`). Every hostile picture that can decode is unique in the tree, so
nothing hostile may ever be acted on. Device nodes need root; without it they are
left out and `HostileTree.missing` says why.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from badbytes import claim_size, crop, cut, flip, gif_bytes, zlib_bomb_png
from testimages import encode, photo, resize, write

DECODE_KINDS = frozenset({"unsupported_format", "corrupt", "truncated", "too_large", "empty"})
NOBODY = 65534  # the uid/gid a root test run drops to, so that mode 000 really locks
PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
CUTS = (16, 0.3, 0.7, 0.99)  # bytes kept: a bare header, then fractions of the file


@dataclass(frozen=True)
class Entry:
    name: str  # a short id for messages
    path: str  # absolute; non-UTF-8 names as os.fsdecode gives them
    expect: frozenset[str]  # acceptable outcomes: an error kind, "indexed" or "unseen"
    skip: str = ""  # the walker's skip kind for this path ("symlink", "not_regular", ...)
    # for mode-000 files and folders, what happens when the reader is not root (root
    # reads them anyway: CAP_DAC_OVERRIDE); None: the same as for root
    locked_expect: frozenset[str] | None = None
    locked_skip: str = ""

    def outcomes(self, reader_is_root: bool) -> frozenset[str]:
        return self.expect if reader_is_root or self.locked_expect is None else self.locked_expect

    def skip_kind(self, reader_is_root: bool) -> str:
        return self.skip if reader_is_root or self.locked_expect is None else self.locked_skip


@dataclass
class HostileTree:
    root: Path
    entries: list[Entry] = field(default_factory=list)
    good: dict[str, Path] = field(default_factory=dict)  # good photos and their duplicates
    replaced: tuple[str, ...] = ()  # keys of `good` a destructive mode replaces
    missing: dict[str, str] = field(default_factory=dict)  # entries not made, and why

    def add(self, name: str, path: Path | str, expect, skip: str = "", locked_expect=None, locked_skip: str = "") -> None:
        def as_set(x):
            return None if x is None else frozenset({x} if isinstance(x, str) else x)
        self.entries.append(Entry(name, str(path), as_set(expect), skip, as_set(locked_expect), locked_skip))

    def expected_skips(self, reader_is_root: bool) -> Counter:
        """The walker's skip counts this tree must produce."""
        return Counter(k for e in self.entries if (k := e.skip_kind(reader_is_root)))

    def hostile_paths(self) -> set[str]:
        return {e.path for e in self.entries}



# -- the tree -------------------------------------------------------------------------


def build(root: Path) -> HostileTree:
    """Write the hostile tree under `root` (created). Call as root for device nodes."""
    tree = HostileTree(root)
    _good(tree)
    _broken_formats(tree)
    _odd_shapes(tree)
    _not_images(tree)
    _special_files(tree)
    _odd_names(tree)
    _locked(tree)
    return tree


def _good(t: HostileTree) -> None:
    """Good photos with act-tier and exact duplicates: what a destructive mode replaces."""
    astro, coffee = photo("astronaut"), photo("coffee")
    r = t.root / "good"
    t.good = {
        "astro": write(r / "originals/astronaut.jpg", encode(astro, ".jpg", 95), 1_600_000_000),
        "astro_q75": write(r / "copies/astronaut_q75.jpg", encode(astro, ".jpg", 75), 1_650_000_000),
        "astro_half": write(r / "copies/astronaut_half.jpg", encode(resize(astro, 0.5), ".jpg", 90), 1_650_000_000),
        "coffee": write(r / "originals/coffee.jpg", encode(coffee, ".jpg", 95), 1_600_000_000),
        "coffee_exact": write(r / "backup/coffee.jpg", encode(coffee, ".jpg", 95), 1_650_000_000),
    }
    t.replaced = ("astro_q75", "astro_half", "coffee_exact")


def _broken_formats(t: HostileTree) -> None:
    """Truncations at several cut points, flipped magic and header bytes, header bombs."""
    chelsea, camera = photo("chelsea"), photo("camera")
    sources = {"jpeg": encode(chelsea, ".jpg", 90), "png": encode(chelsea, ".png"),
               "webp": encode(chelsea, ".webp", 80), "tiff": encode(chelsea, ".tif"), "gif": gif_bytes(camera)}
    ext = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "tiff": ".tif", "gif": ".gif"}
    d = t.root / "broken"
    for fmt, data in sources.items():
        for point in CUTS:
            label = f"{fmt}_cut_{point if isinstance(point, int) else int(point * 100)}{'b' if isinstance(point, int) else 'pct'}"
            t.add(label, write(d / f"{label}{ext[fmt]}", cut(data, point)), "truncated")
        t.add(f"{fmt}_flipped_magic", write(d / f"{fmt}_flipped_magic{ext[fmt]}", flip(data, 0, 4)), "unsupported_format")
        t.add(f"{fmt}_flipped_header", write(d / f"{fmt}_flipped_header{ext[fmt]}", flip(data, 4, 40)),
              DECODE_KINDS - {"empty"})
    small = resize(photo("rocket"), 0.1)
    bombs = t.root / "bombs"
    for fmt, e in (("png", ".png"), ("jpeg", ".jpg"), ("gif", ".gif"), ("bmp", ".bmp"), ("webp", ".webp"), ("tiff", ".tif")):
        data = gif_bytes(small) if fmt == "gif" else encode(small, e)
        t.add(f"{fmt}_claims_60000", write(bombs / f"claims_60000{e}", claim_size(data, fmt, 60000, 60000)), "too_large")
    t.add("png_zlib_bomb", write(bombs / "zlib_bomb.png", zlib_bomb_png(12000, 12000)), "too_large")
    t.add("empty_jpg", write(t.root / "empty/empty.jpg", b""), "empty")
    t.add("empty_png", write(t.root / "empty/empty.png", b""), "empty")


def _odd_shapes(t: HostileTree) -> None:
    """Valid images of extreme shapes: each a distinct picture, indexed, never acted on."""
    d = t.root / "shapes"
    rocket, camera = photo("rocket"), photo("camera")
    t.add("one_px_png", write(d / "one_px.png", encode(rocket[200:201, 300:301], ".png")), "indexed")
    t.add("one_px_jpg", write(d / "one_px.jpg", encode(camera[100:101, 50:51], ".jpg")), "indexed")
    wide = cv2.resize(rocket[213:214], (100_000, 1), interpolation=cv2.INTER_LINEAR)
    tall = cv2.resize(camera[:, 256:257], (1, 100_000), interpolation=cv2.INTER_LINEAR)
    t.add("wide_100000x1", write(d / "wide_100000x1.png", encode(wide, ".png")), "indexed")
    t.add("tall_1x100000", write(d / "tall_1x100000.png", encode(tall, ".png")), "indexed")


def _not_images(t: HostileTree) -> None:
    d = t.root / "misnamed"
    t.add("text_as_jpg", write(d / "notes.jpg", b"shopping list: milk, eggs\n" * 40), "unsupported_format")
    t.add("pdf_as_jpg", write(d / "scan.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" * 10), "unsupported_format")
    noise = np.random.default_rng(6).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    t.add("noise_as_png", write(d / "noise.png", b"\x00" + noise), "unsupported_format")
    t.add("jpeg_as_png", write(d / "really_a_jpeg.png", encode(crop("clock", 0), ".jpg", 90)), "indexed")
    t.add("png_as_jpg", write(d / "really_a_png.jpg", encode(crop("coins", 1), ".png")), "indexed")


def _special_files(t: HostileTree) -> None:
    """FIFOs, sockets, device nodes and symlinks with image names: never opened."""
    d = t.root / "special"
    d.mkdir(parents=True)
    os.mkfifo(d / "fifo.jpg")
    t.add("fifo", d / "fifo.jpg", "unseen", skip="not_regular")
    os.mknod(d / "socket.png", 0o644 | stat.S_IFSOCK)  # a socket inode; mknod needs no root for it
    t.add("socket", d / "socket.png", "unseen", skip="not_regular")
    if os.geteuid() == 0:  # /dev/null and /dev/zero under image names: reading zero never ends
        for name, minor in (("null.jpg", 3), ("zero.jpg", 5)):
            os.mknod(d / name, 0o644 | stat.S_IFCHR, os.makedev(1, minor))
            t.add(f"chardev_{name}", d / name, "unseen", skip="not_regular")
    else:
        t.missing["device nodes"] = "os.mknod(S_IFCHR) needs root (CAP_MKNOD)"
    loops = t.root / "loops"
    loops.mkdir()
    os.symlink("b.jpg", loops / "a.jpg")
    os.symlink("a.jpg", loops / "b.jpg")
    os.symlink("missing.jpg", loops / "dangling.jpg")
    os.symlink(".", loops / "self")  # a directory loop without an image name: silently passed over
    os.symlink("..", loops / "up.jpg")  # a loop back to the root, named like an image
    for name in ("a.jpg", "b.jpg", "dangling.jpg", "up.jpg"):
        t.add(f"symlink_{name}", loops / name, "unseen", skip="symlink")



def _odd_names(t: HostileTree) -> None:
    """Names no program expects, each holding a distinct real photo: indexed, never acted on."""
    d = t.root / "names"
    d.mkdir(parents=True)
    raw = os.fsencode(str(d)) + b"/caf\xe9-\xff\xfe.jpg"  # Latin-1 and invalid bytes: not UTF-8
    with open(raw, "wb") as f:
        f.write(encode(crop("moon", 0), ".jpg", 90))
    t.add("non_utf8_name", os.fsdecode(raw), "indexed")
    t.add("newline_name", write(d / "two\nlines.jpg", encode(crop("immunohistochemistry", 0), ".jpg", 90)), "indexed")
    t.add("control_chars_name", write(d / "-rf \t\r\x1b[31m.jpg", encode(crop("hubble_deep_field", 1), ".jpg", 90)), "indexed")
    fits = deep_path(t.root / "deep", PATH_MAX - 1, "fits.jpg", encode(resize(photo("motorcycle_left"), 0.3), ".jpg", 90))
    t.add("path_max_minus_1", fits, "indexed")
    too_deep = deep_path(t.root / "deeper", PATH_MAX + 300, "lost.jpg", encode(crop("coins", 0), ".jpg", 90))
    # the walker reaches the folder whose own path is too long for any call, and reports it
    t.add("beyond_path_max", too_deep, "unseen")
    t.add("beyond_path_max_dir", os.path.dirname(too_deep), "unseen", skip="unreadable_dir")


def deep_path(base: Path, length: int, name: str, payload: bytes) -> str:
    """Write `payload` at base/<255-byte folders>/.../name whose absolute path is exactly
    `length` bytes. Folders are made through descriptors: past PATH_MAX no path call works."""
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    path = str(base)
    try:
        while (room := length - len(path) - 1 - len(name)) > 0:  # bytes still to fill before "/name"
            if room == 1:
                name = "x" + name
                break
            part = "d" * min(255, room - 1)
            os.mkdir(part, dir_fd=fd)
            fd, old = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(old)
            path += "/" + part
        with os.fdopen(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd), "wb") as f:
            f.write(payload)
    finally:
        os.close(fd)
    return path + "/" + name


def build_locked(root: Path) -> HostileTree:
    """Only the mode-000 entries, next to one readable photo (for a scan as NOBODY)."""
    tree = HostileTree(root)
    write(root / "open/chelsea.jpg", encode(photo("chelsea"), ".jpg", 90))
    _locked(tree)
    return tree


def _locked(t: HostileTree) -> None:
    """A mode-000 file and a mode-000 folder, each holding a distinct real photo."""
    d = t.root / "locked"
    secret = write(d / "secret.jpg", encode(resize(photo("retina"), 0.2), ".jpg", 90))
    inside = write(d / "sealed/inside.jpg", encode(crop("cell", 0), ".jpg", 90))
    t.add("locked_file", secret, "indexed", locked_expect="unreadable")
    t.add("locked_dir", inside.parent, "unseen", locked_expect="unseen", locked_skip="unreadable_dir")
    t.add("locked_dir_file", inside, "indexed", locked_expect="unseen")
    for path in (secret, inside.parent):
        os.chmod(path, 0)


@contextlib.contextmanager
def unprivileged(*writable: Path) -> Iterator[None]:
    """Run the body with effective uid/gid `NOBODY` when we are root, so that mode 000
    locks as it does for a service user (root reads everything: CAP_DAC_OVERRIDE);
    `writable` paths are handed to that user first. Without root: as we are."""
    if os.geteuid() != 0:
        yield
        return
    for path in writable:
        os.chown(path, NOBODY, NOBODY)
    os.setegid(NOBODY)
    os.seteuid(NOBODY)  # glibc applies it to every thread of the process
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


# -- what the tests compare -------------------------------------------------------------


def outcome(records: dict, entry: Entry) -> str:
    """What the index says happened to `entry`: "indexed", an error kind, or "unseen"."""
    record = records.get(entry.path)
    if record is None:
        return "unseen"
    return "indexed" if record.state == "ok" else record.error


def snapshot(paths) -> dict[str, tuple]:
    """(type, inode, size, mtime, sha256 or link target) of each path, to prove nothing
    was touched; paths no call can reach (past PATH_MAX) map to their errno."""
    import hashlib

    out = {}
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError as e:
            out[path] = ("error", e.errno)
            continue
        if stat.S_ISREG(st.st_mode):
            try:
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
            except PermissionError:
                content = "locked"
        else:
            content = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
        out[path] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_size, st.st_mtime_ns, content)
    return out
