"""Walk a tree and yield the image files in it, without following symlinks.

The walker never raises for a single bad entry: unreadable directories, symlinks,
FIFOs, sockets and device nodes are reported through `on_skip(path, kind)` and passed
over. Exclusion patterns (SAFETY.md rule 13) are matched against each path component;
a pattern ending in "/" matches directories only.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator


@dataclass(frozen=True)
class FileRef:
    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result) -> "FileRef":
        return cls(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


SkipHandler = Callable[[str, str], None]


class Excluder:
    """Decides from a name alone whether a directory or file is excluded.

    Each pattern list is matched with one regular expression (the patterns' `fnmatch`
    translations joined): a walk asks once for every name it sees."""

    def __init__(self, patterns: Iterable[str], extensions: Iterable[str]):
        patterns = list(patterns)
        self.dir_patterns = tuple(p.rstrip("/") for p in patterns if p.endswith("/"))
        self.any_patterns = tuple(p for p in patterns if not p.endswith("/"))
        self.extensions = tuple(e.lower() for e in extensions)
        self._dir_match = _any_of(self.dir_patterns + self.any_patterns)
        self._file_match = _any_of(self.any_patterns)

    def skip_dir(self, name: str) -> bool:
        return self._dir_match(name)

    def wanted_file(self, name: str) -> bool:
        return name.lower().endswith(self.extensions) and not self._file_match(name)


def _any_of(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a name matches any of `patterns` (`fnmatch.fnmatchcase` semantics)."""
    if not patterns:
        return lambda name: False
    match = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match
    return lambda name: match(name) is not None


def walk_dirs(root: str, excluder: Excluder,
              on_skip: SkipHandler = lambda p, k: None) -> Iterator[tuple[str, list[FileRef]]]:
    """Yield (directory, its wanted regular files) for every directory under `root`, `root`
    first (depth first, names sorted for determinism; a directory without wanted files is
    yielded with an empty list). A scan looks up one directory's files together.

    Every directory is listed through a descriptor opened without following a symlink, and
    must be the directory its parent's listing showed (device and inode): a folder swapped
    for a symlink, or for another folder, between the two is skipped (`symlink`/`changed`),
    never listed, so a scan cannot be led outside the root. The root itself may be a
    symlink (an administrator's choice in the config)."""
    stack: list[tuple[str, tuple[int, int] | None]] = [(root, None)]
    while stack:
        directory, expected = stack.pop()
        listed = _list(directory, expected, on_skip)
        if listed is None:
            continue
        fd, entries = listed
        subdirs, files = [], []
        prefix = directory if directory.endswith(os.sep) else directory + os.sep  # os.path.join, without its checks
        try:
            for entry in entries:
                path = prefix + entry.name
                try:
                    if entry.is_symlink():
                        if excluder.wanted_file(entry.name):
                            on_skip(path, "symlink")  # never followed inside a root (SAFETY.md rule 6)
                    elif entry.is_dir(follow_symlinks=False):
                        if not excluder.skip_dir(entry.name):
                            st = entry.stat(follow_symlinks=False)
                            subdirs.append((path, (st.st_dev, st.st_ino)))
                    elif excluder.wanted_file(entry.name):
                        st = entry.stat(follow_symlinks=False)
                        if stat.S_ISREG(st.st_mode):
                            files.append(FileRef.from_stat(path, st))
                        else:
                            on_skip(path, "not_regular")
                except FileNotFoundError:
                    on_skip(path, "vanished")
                except OSError:
                    on_skip(path, "unreadable")
        finally:
            os.close(fd)  # after the entries' stat calls, which are relative to it
        yield directory, files
        stack.extend(reversed(subdirs))


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _list(directory: str, expected: tuple[int, int] | None, on_skip: SkipHandler) -> tuple[int, list] | None:
    """(open descriptor, sorted entries) of `directory`, or None after reporting why not."""
    try:
        fd = os.open(directory, _DIR_FLAGS | (os.O_NOFOLLOW if expected is not None else 0))
    except FileNotFoundError:
        on_skip(directory, "vanished")
        return None
    except OSError as exc:
        on_skip(directory, "symlink" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else "unreadable_dir")
        return None
    try:
        st = os.fstat(fd)
        if expected is not None and (st.st_dev, st.st_ino) != expected:
            on_skip(directory, "changed")
        else:
            with os.scandir(fd) as it:
                return fd, sorted(it, key=lambda e: e.name)
    except OSError:
        on_skip(directory, "unreadable_dir")
    os.close(fd)
    return None


def walk(root: str, excluder: Excluder, on_skip: SkipHandler = lambda p, k: None) -> Iterator[FileRef]:
    """Yield every wanted regular file under `root` (depth first, sorted for determinism)."""
    for _, files in walk_dirs(root, excluder, on_skip):
        yield from files
