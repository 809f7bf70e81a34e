"""Random user activity in photo folders, with a ledger of what the user expects to keep.

`Churn.step()` does one thing a user or a sync client does: create a photo, let a
duplicate arrive (an exact copy, or the same crop re-encoded: an `act`-tier copy),
save a new version (written beside the file and renamed over it, as editors do),
rename or delete a file, make a folder or rename one. Writes go through a `*.part`
name (excluded from scans, like a browser download) and are renamed into place, so
the daemon never sees a half-written photo under a real name.

The ledger maps every live path to the sha256 the user last wrote there. dedupd may
turn a path into a hard link, a symlink or a stub `<path>.dedup` at any moment; the
ledger's bytes must then be in the quarantine. `lost(...)` in `reliability_kit`
checks exactly that. A path the user means to touch is looked up as itself or, when
dedupd replaced it by a stub, as its stub; when neither exists the user's file
vanished, which is recorded in `anomalies` (never expected).
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter
from pathlib import Path

from reliability_kit import photo_bytes

OPS = {"create": 30, "exact_copy": 10, "act_copy": 10, "modify": 15, "rename": 15, "delete": 15,
       "mkdir": 3, "rename_dir": 2}
ACT_VARIANTS = ((".jpg", 70), (".png", 0), (".webp", 90), (".jpg", 95))


class Churn:
    def __init__(self, roots: list[Path], seed: int, target_files: int = 400):
        self.rng = random.Random(seed)
        self.roots = [Path(r) for r in roots]
        self.target = target_files
        self.ledger: dict[str, bytes] = {}
        self.origin: dict[str, int] = {}  # path -> photo seed (its copies re-encode the same crop)
        self.dirs = [r / f"d{i}" for r in self.roots for i in range(3)]
        self.counts: Counter = Counter()
        self.anomalies: list[str] = []
        self._seed = seed * 1_000_003
        self._names = 0

    def step(self) -> str:
        """One random operation; returns its name."""
        live = len(self.ledger)
        weights = dict(OPS)
        if live > self.target:  # a bounded tree: memory must not grow because the data does
            weights["delete"] += 60
        if live < 10:
            weights = {"create": 1}
        op = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        getattr(self, "_" + op)()
        self.counts[op] += 1
        return op

    # -- operations ------------------------------------------------------------------------

    def _create(self) -> None:
        self._seed += 1
        self._write(self._new_path(".jpg"), photo_bytes(self._seed), self._seed)

    def _exact_copy(self) -> None:
        src = self._pick()
        if src is not None:
            self._write(self._new_path(".jpg"), photo_bytes(self.origin[src]), self.origin[src])

    def _act_copy(self) -> None:
        src = self._pick()
        if src is not None:
            ext, quality = self.rng.choice(ACT_VARIANTS)
            self._write(self._new_path(ext), photo_bytes(self.origin[src], ext, quality), self.origin[src])

    def _modify(self) -> None:
        path = self._pick()
        if path is not None:
            self._seed += 1
            self._write(Path(path), photo_bytes(self._seed, Path(path).suffix), self._seed)

    def _rename(self) -> None:
        path = self._pick()
        if path is None:
            return
        new = self._new_path(Path(path).suffix)
        new.parent.mkdir(parents=True, exist_ok=True)
        if self._on_actual(path, lambda name: os.rename(name, str(new) + name[len(path):])):  # a stub keeps .dedup
            self.ledger[str(new)] = self.ledger.pop(path)
            self.origin[str(new)] = self.origin.pop(path)

    def _delete(self) -> None:
        path = self._pick()
        if path is not None and self._on_actual(path, os.unlink):
            del self.ledger[path], self.origin[path]

    def _mkdir(self) -> None:
        parent = self.rng.choice(self.dirs)
        self._names += 1
        new = parent / f"sub{self._names}"
        new.mkdir(parents=True, exist_ok=True)
        self.dirs.append(new)

    def _rename_dir(self) -> None:
        movable = [d for d in self.dirs if d.parent not in self.roots and d.is_dir()]
        if not movable:
            return
        old = self.rng.choice(movable)
        self._names += 1
        new = old.parent / f"moved{self._names}"
        os.rename(old, new)
        prefix = str(old) + os.sep
        self.dirs = [new / d.relative_to(old) if d == old or str(d).startswith(prefix) else d for d in self.dirs]
        for table in (self.ledger, self.origin):
            for p in [p for p in table if p.startswith(prefix)]:
                table[str(new) + os.sep + p[len(prefix):]] = table.pop(p)

    # -- helpers -----------------------------------------------------------------------------

    def _pick(self) -> str | None:
        return self.rng.choice(list(self.ledger)) if self.ledger else None

    def _new_path(self, ext: str) -> Path:
        self._names += 1
        return self.rng.choice(self.dirs) / f"img{self._names:06d}{ext}"

    def _write(self, path: Path, data: bytes, origin: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        part.write_bytes(data)
        os.replace(part, path)
        self.ledger[str(path)] = hashlib.sha256(data).digest()
        self.origin[str(path)] = origin

    def _on_actual(self, path: str, fn) -> bool:
        """Call fn(name) on the name the user's file has now: itself, or the stub dedupd
        put in its place (tried again once when dedupd swapped it in between)."""
        for _ in range(3):
            name = next((n for n in (path, path + ".dedup") if os.path.lexists(n)), None)
            if name is None:
                break
            try:
                fn(name)
                return True
            except FileNotFoundError:
                self.counts["raced_dedupd"] += 1
        self.anomalies.append(f"{path}: neither the file nor its stub exists")
        del self.ledger[path], self.origin[path]
        return False
