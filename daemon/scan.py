"""One reconciliation pass: walk the roots, bring the index up to date, regroup.

Stages, each counted in the `ScanReport`:
1. walk: every wanted file under each available root (a missing root is reported as
   unavailable and its records are left alone: SAFETY.md rule 18);
2. classify: unchanged (same dev, ino, size, mtime_ns: nothing is read), renamed or
   hard-linked (same inode as a known record: the fingerprint is reused), or to do; the
   records of a directory's files are looked up together (`Index.by_paths`);
3. fingerprint the to-do files: read, hash and decode in the decode worker processes
   (`dedupd.daemon.decode_pool`, SAFETY.md rule 22), fingerprint in a thread pool (the
   numba kernels release the GIL); only this thread writes to the index;
4. link: each new fingerprint is looked up with its dihedral variants and the pairs
   within the report radius (rotated and mirrored variants: the rotated radius) are
   stored as edges. A file sees the files stored before it and those of its own batch
   (stored in the order they were walked, so ids and edges do not depend on thread
   timing). A scan with many files to fingerprint (`join_min_files`, a first scan)
   finds the pairs within each batch as it stores it, and the pairs with earlier
   batches and older files by one batch join at the end (`dedupd.daemon.linking`,
   docs/performance.md): the same edges as a lookup per file, at a fraction of the cost.
   Until that join has stored them, the index holds a marker (`PendingEdges`); a scan
   that finds one fingerprints the files it names again (their variants are not stored),
   so a crash or a stop in between loses no edge;
5. sweep: records under the scanned paths whose file is gone are removed: a named file
   costs one lookup; a directory costs nothing when every record of the index was seen
   (a full scan that found nothing gone), else one pass over the records' paths
   (`Index.paths_under`: path keys are hashed per directory, so a folder's subtree is
   not a key range);
6. group: star clustering, redone only for the components the changed files are in
   (`dedupd.daemon.regroup`); the snapshot is stored for `dedupctl groups` (at once, or
   when the daemon is idle: `autosave_groups`, `save_groups`).

The counts by format and error kind (`dedupd.daemon.status.Census`) and the groups are
kept up to date as records are written, so a round costs what it touched. A scan never
changes a user file.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from dedupd.daemon.config import Config
from dedupd.daemon.decode_pool import shared_decoder
from dedupd.daemon.cropcodes import STORED as STORED_WINDOWS
from dedupd.daemon.fingerprinting import Fingerprinted, check_crop, check_pair, fingerprint_file
from dedupd.daemon.grouping import Group, Thresholds
from dedupd.daemon.linking import (EDGE_WRITE, JOIN_MIN_FILES, DeferredEdges, PendingEdges, batch_hits, best_edges,
                                   box_batch_hits, code_changed, crop_batch_hits, lookup)
from dedupd.daemon.progress import Progress
from dedupd.daemon.regroup import GroupCache
from dedupd.daemon.status import CENSUS_KEY, Census, store_groups
from dedupd.daemon.walk import Excluder, FileRef, walk_dirs
from dedupd.index.edges import BOX_VARIANT, CROP_VARIANT, Edge
from dedupd.index.records import STATE_OK, FileRecord
from dedupd.kernels import ALGORITHMS

BATCH = 256
SKIP_KINDS_THAT_ARE_ERRORS = frozenset({"unreadable_dir", "unreadable", "vanished"})


class ScanCancelled(Exception):
    """Raised inside a scan when `Scanner.should_stop()` turns true (shutdown)."""


@dataclass
class ScanReport:
    roots: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    seen: int = 0
    unchanged: int = 0
    renamed: int = 0
    linked: int = 0  # new path of an already indexed inode (a hard link)
    fingerprinted: int = 0
    removed: int = 0
    edges: int = 0
    verified: int = 0  # candidate pairs checked pixel by pixel
    groups: int = 0
    errors: Counter = field(default_factory=Counter)  # files that failed, by kind (this scan)
    skipped: Counter = field(default_factory=Counter)  # entries passed over, by kind
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("errors", "skipped")}
        out["errors"] = dict(self.errors)
        out["skipped"] = dict(self.skipped)
        return out


class Scanner:
    """`decoder`: where files are read and decoded (default: the process-wide pool of
    `config.worker_count` worker processes, `decode_pool.shared_decoder`)."""

    def __init__(self, config: Config, index, *, progress: bool | None = None, decoder=None):
        self.config = config
        self.index = index
        self.progress = progress
        self.excluder = Excluder(config.exclude, config.extensions)
        self.thresholds = Thresholds.from_config(config)
        self.edge_radius = config.report_threshold  # upright matches
        self.rotated_radius = config.rotated_threshold  # matches through a rotation or mirror (grouping ignores wider ones)
        self.crop_radius = config.crop_threshold if config.match_crops else -1  # window matches; -1: crops not matched
        self.root_paths = frozenset(r.path for r in config.roots)
        self.decoder = decoder if decoder is not None else shared_decoder(config.worker_count, config.pixel_limit)
        self.groups = GroupCache(index, config, self.thresholds)
        self.census: Census | None = None  # read from the index at the first run
        self._seen: set[int] = set()  # during a run: ids of the records of the files seen so far
        self.autosave_groups = True  # store the groups at every regroup that changed them (False: the caller calls save_groups)
        self.groups_unsaved = False
        self.on_tick: Callable[[], None] = lambda: None  # called every batch: the service's liveness beat
        self.should_stop: Callable[[], bool] = lambda: False  # checked every batch: SIGTERM ends a scan early
        self.join_min_files = JOIN_MIN_FILES  # from this many files to fingerprint, link them by one join
        self._pending = PendingEdges()  # during a run: files whose edges a crashed scan left unstored

    # -- the pass ---------------------------------------------------------------------

    def run(self, paths: list[str] | None = None) -> ScanReport:
        started = time.monotonic()
        report = ScanReport()
        if self.census is None:
            self.census = Census.of_index(self.index)
        roots = outermost([os.path.abspath(p) for p in paths]) if paths else [r.path for r in self.config.roots]
        todo: list[FileRef] = []
        self._seen = seen_ids = set()  # ids of the records of files seen (`_delete` takes ids out)
        self._pending = PendingEdges.load(self.index)
        scanned_roots = []
        for root in roots:
            report.roots.append(root)
            if os.path.isfile(root) and not os.path.islink(root):  # one file named on the command line
                wanted = self.excluder.wanted_file(os.path.basename(root))
                batches = [(os.path.dirname(root), [FileRef.from_stat(root, os.lstat(root))] if wanted else [])]
            elif os.path.isdir(root) and not os.path.islink(root):
                batches = walk_dirs(root, self.excluder, lambda p, k: self._skipped(report, k))
            elif paths and root not in self.root_paths:
                batches = []  # a path that is gone (or is no longer a file): its records are swept
            else:
                report.unavailable.append(root)
                continue
            scanned_roots.append(root)
            for _, refs in batches:
                known = self.index.by_paths([ref.path for ref in refs]) if refs else {}
                for ref in refs:
                    report.seen += 1
                    if report.seen % 1000 == 0:
                        self._tick()
                    record = self._classify(ref, known, report)
                    if record is None:
                        todo.append(ref)
                    else:
                        seen_ids.add(record.file_id)
        fingerprinted = self._fingerprint_all(todo, report)
        seen_ids.update(fingerprinted)
        if self._pending:
            self._settle_pending(fingerprinted)
        report.removed = self._sweep(scanned_roots, seen_ids)
        self._seen = set()
        groups = self.regroup()
        report.groups = len(groups)
        report.seconds = round(time.monotonic() - started, 3)
        self.index.set_meta(CENSUS_KEY, self.census.to_json())
        self.index.set_meta("last_scan", {"finished": time.time(), **report.to_json()})
        if set(roots) >= self.root_paths:  # a full pass: what status shows (a daemon round names only a few paths)
            self.index.set_meta("last_full_scan", {"finished": time.time(), **report.to_json()})
        return report

    def regroup(self) -> list[Group]:
        """Every group, after regrouping what changed since the last call (everything at
        the first); the stored snapshot is rewritten when anything changed."""
        fresh = not self.groups.ready
        groups = self.groups.update()
        if fresh or self.groups.changed or self.groups.dropped:
            self.groups_unsaved = True
            if self.autosave_groups:
                self.save_groups()
        return groups

    def save_groups(self) -> bool:
        """Store the groups and their totals (`status.store_groups`) if they changed since the
        last store; O(groups): at a million files about a second, which the daemon keeps off
        the path from a settled file to its action (it stores when idle)."""
        if not self.groups_unsaved:
            return False
        store_groups(self.index, self.groups.all())
        self.groups_unsaved = False
        return True

    def close(self) -> None:
        """Release a decoder this scanner was given (the shared one stays for the next scanner)."""
        if self.decoder is not shared_decoder(self.config.worker_count, self.config.pixel_limit, start=False):
            self.decoder.close()

    # -- stages -----------------------------------------------------------------------

    def _tick(self) -> None:
        self.on_tick()
        if self.should_stop():
            raise ScanCancelled("the scan was stopped; every batch so far is committed")

    def _skipped(self, report: ScanReport, kind: str) -> None:
        (report.errors if kind in SKIP_KINDS_THAT_ARE_ERRORS else report.skipped)[kind] += 1

    def _classify(self, ref: FileRef, known: dict[str, FileRecord], report: ScanReport) -> FileRecord | None:
        """The up-to-date record for `ref` if no decode is needed, else None. `known`: the
        records of `ref`'s directory's files (`by_paths`), kept true by the writes made here."""
        existing = known.get(ref.path)
        if (existing is not None and existing.same_stat(ref.dev, ref.ino, ref.size, ref.mtime_ns) and self._current(existing)
                and existing.file_id not in self._pending):
            report.unchanged += 1
            if existing.state != STATE_OK:
                report.errors[existing.error] += 1
            return existing
        donor = next(
            (r for r in self.index.by_inode(ref.dev, ref.ino)
             if r.state == STATE_OK and self._current(r) and (r.size, r.mtime_ns) == (ref.size, ref.mtime_ns)
             and r.file_id not in self._pending),  # a pending record's edges are incomplete
            None,
        )
        if donor is None:
            return None
        if existing is not None:
            self._delete([existing])  # the name now holds another inode
        if not os.path.lexists(donor.path):  # the donor's old name is gone: a rename
            report.renamed += 1
            known.pop(donor.path, None)  # the old name holds no record now (its file vanished after the walk)
            self.groups.touch([donor.file_id])
            return self.index.put(donor.with_(path=ref.path, ctime_ns=ref.ctime_ns))
        report.linked += 1  # a second name of the same inode: a hard link
        record = self.index.put(donor.with_(file_id=0, path=ref.path, ctime_ns=ref.ctime_ns))
        self.census.add(record)
        edges = [replace(e, a=record.file_id) for e in self.index.edges_of(donor.file_id)]
        self.index.add_edges(edges)
        self.groups.touch([record.file_id, donor.file_id] + [e.b for e in edges])
        return record

    def _current(self, record: FileRecord) -> bool:
        """Fingerprinted with the configured algorithm and version (error records never
        need a re-decode)."""
        algo = ALGORITHMS[self.config.algorithm]
        return record.state != STATE_OK or (record.algo, record.algo_version) == (algo.name, algo.version)

    def _fingerprint_all(self, todo: list[FileRef], report: ScanReport) -> set[int]:
        """Fingerprint and store `todo`, in its order (the walk's: ids do not depend on
        which thread finishes first), in batches of BATCH; link each batch as it is stored,
        or, from `join_min_files` files on, link its cross-batch pairs by one join at the end."""
        ids: set[int] = set()
        if not todo:
            return ids
        bar = Progress("fingerprinting", len(todo), enabled=self.progress)
        algo, limit, decoder, crops = self.config.algorithm, self.config.pixel_limit, self.decoder, self.crop_radius >= 0
        deferred = DeferredEdges() if len(todo) >= self.join_min_files else None
        batch: list[Fingerprinted] = []
        # with decode workers, twice as many threads: one waits for its decode while another hashes
        threads = self.config.worker_count * (2 if getattr(decoder, "isolated", False) else 1)
        with ThreadPoolExecutor(threads, thread_name_prefix="dedupd-fp") as pool:
            pending: dict[Future, int] = {}
            done_early: dict[int, Fingerprinted] = {}  # finished before a file walked earlier
            refs = iter(todo)
            submitted = stored_upto = 0
            while True:
                # results wait in done_early for a file walked before them: a slow file (a large
                # picture, a hung worker until its timeout) must not let them pile up unbounded
                while len(pending) < 4 * threads and len(pending) + len(done_early) < 4 * threads + BATCH:
                    ref = next(refs, None)
                    if ref is None:
                        break
                    pending[pool.submit(fingerprint_file, ref, algo, limit, decoder, crops=crops)] = submitted
                    submitted += 1
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    done_early[pending.pop(fut)] = fut.result()
                    bar.advance()
                while stored_upto in done_early:  # batches of exactly BATCH files in walk order
                    batch.append(done_early.pop(stored_upto))
                    stored_upto += 1
                    if len(batch) == BATCH:
                        ids.update(self._store(batch, report, pool, deferred))
                        batch = []
                        self._tick()
            ids.update(self._store(batch, report, pool, deferred))
            if deferred is not None:
                self._link_deferred(deferred, report, pool)
        bar.close()
        return ids

    def _store(self, batch: list[Fingerprinted], report: ScanReport, pool: ThreadPoolExecutor,
               deferred: DeferredEdges | None = None) -> list[int]:
        """Write a batch of fingerprints (one transaction), then find, verify and store their
        edges: all of them (`_find_edges`), or with `deferred` those within the batch, the
        rest being left to `_link_deferred`."""
        records, replaced, reused = [], [], []
        known = self.index.by_paths([item.record.path for item in batch])
        for item in batch:
            existing = known.get(item.record.path)
            if existing is not None:
                self.census.remove(existing)
                self.groups.touch([existing.file_id], neighbours=True)  # a new code drops its edges
                replaced.append(existing)
                if item.variants is not None:
                    reused.append(existing.file_id)
            records.append(item.record.with_(file_id=existing.file_id if existing else 0))
            if item.record.state == STATE_OK:
                report.fingerprinted += 1
            else:
                report.errors[item.record.error] += 1
        if deferred is not None:
            self._mark_pending(reused)
        stored = self.index.put_many(records)
        for rec in stored:
            self.census.add(rec)
        self.groups.touch(r.file_id for r in stored)
        fresh = [(r, item) for r, item in zip(stored, batch) if item.variants is not None]
        if deferred is None:
            edges = self._find_edges(fresh)
        else:
            edges = self._batch_edges(fresh)
            before = {r.path: r for r in replaced}
            deferred.add([r.file_id for r, _ in fresh], np.stack([item.variants for _, item in fresh]) if fresh else None,
                         [code_changed(before.get(r.path), r) for r, _ in fresh], [r.box_code for r, _ in fresh],
                         [item.crop_queries for _, item in fresh] if self.crop_radius >= 0 else None)
        thumbs = {r.file_id: item.thumb for r, item in fresh}
        edges = self._verify(edges, {r.file_id: r for r in stored}, thumbs, pool, report)
        self.index.add_edges(edges)
        self.groups.touch(e.b for e in edges)
        report.edges += len(edges)
        return [r.file_id for r in stored]

    def _batch_edges(self, fresh: list[tuple[FileRecord, Fingerprinted]]) -> list[Edge]:
        """The edges `_find_edges` would find between the files of one batch (each file's
        variants against the others' upright codes), by brute force over the batch."""
        if len(fresh) < 2:
            return []
        rotated = self.rotated_radius if self.config.match_rotations else -1
        variants = np.stack([item.variants for _, item in fresh])
        f, g, distance, variant = batch_hits(variants, self.edge_radius, rotated)
        box_codes = np.array([r.box_code or (0, 0) for r, _ in fresh], np.uint64)
        bf, bg, bd = box_batch_hits(variants[:, 0], box_codes, np.array([r.box_code is not None for r, _ in fresh]),
                                    self.edge_radius)
        f, g, distance = np.concatenate([f, bf]), np.concatenate([g, bg]), np.concatenate([distance, bd])
        variant = np.concatenate([variant, np.full(len(bf), BOX_VARIANT, np.int64)])
        if self.crop_radius >= 0:
            cf, cg, cd = crop_batch_hits(variants[:, 0], box_codes, np.array([r.box_code is not None for r, _ in fresh]),
                                         [item.crop_queries for _, item in fresh], STORED_WINDOWS, self.crop_radius)
            f, g, distance = np.concatenate([f, cf]), np.concatenate([g, cg]), np.concatenate([distance, cd])
            variant = np.concatenate([variant, np.full(len(cf), CROP_VARIANT, np.int64)])
        ids = np.array([r.file_id for r, _ in fresh], np.int64)
        return best_edges(ids[f], ids[g], distance, variant, f, self.config.act_threshold)

    def _link_deferred(self, deferred: DeferredEdges, report: ScanReport, pool: ThreadPoolExecutor) -> None:
        """Find, verify and store the edges of a deferring scan's files to files of earlier
        batches and older files (one `selfjoin.variant_join`); `run` then settles the marker."""
        if len(deferred):
            rotated = self.rotated_radius if self.config.match_rotations else -1
            a, b, distance, variant, order = deferred.hits(self.index, self.edge_radius, rotated,
                                                           self.config.worker_count, self.crop_radius)
            edges = best_edges(a, b, distance, variant, order, self.config.act_threshold)
            for start in range(0, len(edges), EDGE_WRITE):
                chunk = self._verify(edges[start:start + EDGE_WRITE], {}, {}, pool, report)
                self.index.add_edges(chunk)
                self.groups.touch(e.b for e in chunk)
                report.edges += len(chunk)
                self._tick()

    def _mark_pending(self, reused: list[int]) -> None:
        """Extend the marker before a deferred batch is stored: from the next id on at the
        first batch (ids only grow), and the ids of re-fingerprinted files."""
        marker = self._pending
        if marker.from_id is None:
            all_ids, _ = self.index.all_codes()
            marker = PendingEdges(int(all_ids.max()) + 1 if len(all_ids) else 1, marker.ids)
        marker = marker.with_ids(reused)
        if marker != self._pending:
            marker.store(self.index)
            self._pending = marker

    def _settle_pending(self, handled: set[int]) -> None:
        """After this scan's edges are stored: the marker keeps only the pending files this
        scan did not fingerprint again (a daemon round names a few paths), or goes."""
        if not self._pending:
            return
        all_ids, _ = self.index.all_codes()  # pending files that are gone or errors need no edges
        marker = self._pending
        was = np.isin(all_ids, np.fromiter(marker.ids, np.int64, len(marker.ids)))
        if marker.from_id is not None:
            was |= all_ids >= marker.from_id
        left = all_ids[was & ~np.isin(all_ids, np.fromiter(handled, np.int64, len(handled)))]
        self._pending = PendingEdges(None, frozenset(left.tolist()))
        self._pending.store(self.index)

    def _find_edges(self, fresh: list[tuple[FileRecord, Fingerprinted]]) -> list[Edge]:
        """Every indexed file within the edge radius of a fresh one upright, or within the
        rotated radius through a rotated or mirrored variant (`grouping.admit` counts a
        variant match only that close; a wider pair within the report radius upright is
        found upright). At 10M files this is about 3x cheaper than all 8 at the report
        radius (docs/performance.md, Index at scale). Box codes within the report radius
        (a file's box code against every code and box code, its code against the box
        codes) are `BOX_VARIANT` edges (`linking.lookup`)."""
        edges = []
        for record, item in fresh:
            queries = item.variants if self.config.match_rotations else item.variants[:1]
            radii = [self.edge_radius] + [self.rotated_radius] * (len(queries) - 1)
            edges.extend(lookup(self.index, record.file_id, queries, radii, record.box_code, self.edge_radius,
                                self.config.act_threshold, item.crop_queries, self.crop_radius).values())
        return edges

    def _verify(self, edges: list[Edge], known: dict[int, FileRecord], thumbs: dict, pool, report: ScanReport) -> list[Edge]:
        """Pixel-verify the edges that could be act pairs (upright, within the act radius)
        and confirm the crop candidates (`CROP_VARIANT`), in the worker pool; thumbnails of
        files outside this batch are read from disk."""
        jobs = {}
        checks = {i: check_pair if e.variant == 0 and e.distance <= self.config.act_threshold else check_crop
                  for i, e in enumerate(edges)
                  if (e.variant == 0 and e.distance <= self.config.act_threshold) or e.variant == CROP_VARIANT}
        missing = {i for k in checks for i in (edges[k].a, edges[k].b)} - known.keys()
        known = {**known, **self.index.get_many(missing)} if missing else known
        for i, check in checks.items():
            e = edges[i]
            a, b = known[e.a], known[e.b]
            if min(a.quality, b.quality) >= self.config.min_quality:
                jobs[i] = pool.submit(check, a, b, thumbs.get(e.a), thumbs.get(e.b), self.config.pixel_limit, self.decoder)
        out = list(edges)
        for i, job in jobs.items():
            report.verified += 1
            if job.result():
                out[i] = replace(edges[i], verified=True)
        return out

    def _sweep(self, roots: list[str], seen_ids: set[int]) -> int:
        """Remove records under the scanned paths whose files were not seen. A path that
        is (or was) a file costs one lookup. Under directories: nothing to look at when
        every record of the index was seen (`seen_ids` holds only live ids: `_delete`
        takes ids out), else the ids under them from one pass over the records' paths."""
        gone, dirs = [], []
        named = self.index.by_paths(roots)
        for path in roots:
            record = named.get(path)
            if record is not None:
                if record.file_id not in seen_ids:
                    gone.append(record)
            elif not os.path.isfile(path):  # a directory, or a vanished path that may have been one
                dirs.append(path.rstrip(os.sep) + os.sep)
        if dirs and len(self.index) > len(seen_ids):
            unseen = [fid for fid in self.index.paths_under(dirs) if fid not in seen_ids]
            gone += self.index.get_many(unseen).values()
        return self._delete(gone)

    def _delete(self, records: list[FileRecord]) -> int:
        if not records:
            return 0
        self._seen.difference_update(r.file_id for r in records)
        self.groups.touch([r.file_id for r in records], neighbours=True)
        for r in records:
            self.census.remove(r)
        return self.index.delete_many([r.file_id for r in records])



def outermost(paths: list[str]) -> list[str]:
    """`paths` sorted, without duplicates and without those inside another of them that
    is a directory (walked in full: a settled folder and a file in it are looked at once).
    A path under one that is now a file or gone stays: only its own scan sweeps it."""
    chosen = set(paths)
    walked = {p for p in chosen if os.path.isdir(p) and not os.path.islink(p)}

    def inside_walked(path: str) -> bool:
        parent = os.path.dirname(path)
        while parent != path:
            if parent in walked:
                return True
            path, parent = parent, os.path.dirname(parent)
        return False

    return sorted(p for p in chosen if not inside_walked(p))
