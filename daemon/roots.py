"""Is a root really there? (SAFETY.md rule 18.)

An unmounted share leaves an empty mount point: scanning it would report every file
deleted. So each root carries a marker file, `<root>/.dedupd-root`, holding an id, and
`<state_dir>/roots.json` remembers per root its id, `st_dev` and whether it has a
marker. A root is *unavailable* when its path is missing, not a directory or
unreadable; or it had a marker and the marker is now missing or names another root
(an empty mount point); or it is read-only (no marker possible) and its `st_dev`
changed. The service neither purges index entries of an unavailable root nor acts on it.

The marker is written by `mark()` after a successful full scan of a root that has
none, under a temporary name first (rule 2's prefix, excluded from scans) and linked
into place, so a crash never leaves a half-written marker. It is not an image name, so
no scan looks at it.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import uuid

from dedupd.daemon.config.schema import TEMP_PREFIX
from dedupd.kernels.errors import DedupdError

log = logging.getLogger(__name__)

MARKER = ".dedupd-root"
STATE_FILE = "roots.json"
_HEADER = "dedupd root marker: do not delete. Without it dedupd treats this folder as an unmounted share.\n"


class RootStateError(DedupdError):
    """The root state file is unreadable or corrupt."""


class RootHealth:
    def __init__(self, state_dir: str):
        self.state_file = os.path.join(state_dir, STATE_FILE)
        self._known: dict[str, dict] = self._load()
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def check(self, root_path: str) -> str:
        """"available" or "unavailable"; the reason is `last_reason(root_path)`."""
        root_path = os.path.abspath(root_path)
        reason = self._problem(root_path)
        with self._lock:
            self._reasons[root_path] = reason
        return "unavailable" if reason else "available"

    def last_reason(self, root_path: str) -> str:
        return self._reasons.get(os.path.abspath(root_path), "")

    def mark(self, root_path: str, *, write: bool = True) -> None:
        """After a successful full scan: write the marker if there is none, `write` is
        true (the service passes false for report-only roots: report mode writes nothing
        into a user's tree) and the root is writable, and remember id, st_dev and whether
        the marker exists. A root whose
        remembered marker is missing or foreign is left alone (it is not this root)."""
        root_path = os.path.abspath(root_path)
        with self._lock:
            record = self._known.get(root_path)
            try:
                st = os.stat(root_path)
                found = _read_marker(root_path)
            except OSError as exc:
                log.warning("%s: cannot mark the root: %s", root_path, exc.strerror or exc)
                return
            if record and record["marker"] and found != record["id"]:
                return
            root_id = found or (record or {}).get("id") or uuid.uuid4().hex
            if found == "":  # a marker without an id (edited?): not trusted, not overwritten
                log.warning("%s: %s holds no id; falling back to the st_dev check", root_path, MARKER)
            has_marker = bool(found) or (found is None and write and _write_marker(root_path, root_id))
            self._known[root_path] = {"id": root_id, "dev": st.st_dev, "marker": has_marker}
            self._save()

    def forget(self, root_path: str) -> None:
        """Drop what is remembered about a root (an admin replaced the tree on purpose);
        the next `mark()` adopts it as new."""
        with self._lock:
            if self._known.pop(os.path.abspath(root_path), None) is not None:
                self._save()

    # -- internals --------------------------------------------------------------------

    def _problem(self, root: str) -> str:
        try:
            st = os.stat(root)  # the root path itself may be an admin's symlink
            if not stat.S_ISDIR(st.st_mode):
                return f"{root} is not a directory"
            with os.scandir(root) as entries:
                next(entries, None)
        except FileNotFoundError:
            return f"{root} does not exist (share not mounted, or removed?)"
        except PermissionError:
            return f"{root} cannot be read (permission denied)"
        except OSError as exc:  # ESTALE, ENOTCONN, EIO: a share that went away
            return f"{root} cannot be read: {exc.strerror or exc}"
        record = self._known.get(root)
        if record is None:
            return ""  # never marked: nothing to compare with yet
        if record["marker"]:
            return self._marker_problem(root, record["id"])
        if st.st_dev != record["dev"]:
            return (f"{root} is on another filesystem than at its last scan (st_dev {record['dev']} -> {st.st_dev}) "
                    "and, being read-only, has no marker to tell: share not mounted?")
        return ""

    def _marker_problem(self, root: str, root_id: str) -> str:
        try:
            found = _read_marker(root)
        except OSError as exc:
            return f"{root}: its marker {MARKER} cannot be read: {exc.strerror or exc}"
        if found is None:
            return (f"{root}: its marker {MARKER} is missing: an empty mount point (share not mounted?) or a "
                    f"replaced tree. If the tree was replaced on purpose, remove its entry from {self.state_file}.")
        if found != root_id:
            return f"{root}: its marker {MARKER} belongs to another tree (id {found}, expected {root_id})"
        return ""

    def _load(self) -> dict[str, dict]:
        try:
            with open(self.state_file, encoding="utf-8") as f:
                data = json.load(f)
            roots = data["roots"]
            for record in roots.values():
                record["id"], record["dev"], record["marker"]  # noqa: B018 - shape check
            return roots
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RootStateError(
                f"{self.state_file}: cannot read the remembered roots ({exc!r}). Without it an unmounted share could "
                "look like a tree whose files were all deleted. Fix or delete the file: the roots are learned again "
                "at the next full scan (check first that every share is mounted)."
            ) from exc

    def _save(self) -> None:
        tmp = self.state_file + ".tmp"
        os.makedirs(os.path.dirname(self.state_file) or ".", exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "roots": self._known}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)
        _fsync_dir(os.path.dirname(self.state_file) or ".")


def _read_marker(root: str) -> str | None:
    """The id in `<root>/.dedupd-root`, None if there is no marker, "" if it holds no id."""
    try:
        fd = os.open(os.path.join(root, MARKER), os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        text = os.read(fd, 4096).decode("utf-8", "replace")
    finally:
        os.close(fd)
    for line in text.splitlines():
        if line.startswith("id: "):
            return line[4:].strip()
    return ""


def _write_marker(root: str, root_id: str) -> bool:
    """Create the marker; False if the root is not writable (read-only share, EACCES)."""
    tmp = os.path.join(root, f"{TEMP_PREFIX}root-{uuid.uuid4().hex[:12]}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError:
        return False
    try:
        try:
            os.write(fd, f"{_HEADER}id: {root_id}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, os.path.join(root, MARKER))  # EEXIST: another writer won; read back below
    except FileExistsError:
        pass
    except OSError as exc:
        log.warning("%s: cannot write the root marker: %s", root, exc.strerror or exc)
        return False
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    _fsync_dir(root)
    try:
        return _read_marker(root) == root_id
    except OSError:
        return False


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
