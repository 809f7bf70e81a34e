"""Images per second of our per-file work vs a decode-only loop, imagehash and PDQ.

Same files, same thread pool (ThreadPoolExecutor, --workers, default 2), interleaved
rounds, medians. Two file sets, measured separately: large JPEGs (the corpus
`wallpaper_*` photos of >= 4 MP) and small images (< 0.3 MP).

  ours         dedupd.daemon.fingerprinting.fingerprint_file(ref, "lbph", 100_000_000, decoder):
               read + sha256 + reduced-scale JPEG decode (a progressive JPEG at 1/8 from its
               DC scans) + EXIF orientation + the exact 64x64 area sums (numpy,
               kernels/area.py) + the verification thumbnail in a decode worker process
               (decode_pool.ProcessDecoder, --workers processes, SAFETY.md rule 22), then
               LBPH with its 8 dihedral variants from the sums in the calling thread
               (2 x --workers threads, as a scan runs it) -- the per-file work of a scan.
  ours-threads the same with the decode, sums and thumbnail in the calling thread
               (ThreadDecoder, --workers threads): no isolation, the cost of the worker
               processes is ours/ours-threads.
  decode-only  read the bytes + decode_image (the same reduced decode), no hashing.
  imagehash    imagehash.phash(PIL.Image.open(path)): Pillow full decode, no EXIF transpose.
  pdq          pdqhash.compute on an OpenCV full colour decode (cv2.imread), an extra anchor.
  full-decode  read the bytes + cv2.imdecode(IMREAD_GRAYSCALE): what the reduced decode saves.

Each file's own time (in its worker thread) is recorded too, to split the large set into
baseline and progressive JPEGs. And each round's CPU time per file: this process's (all its
threads) plus, for ours, the decode worker processes' (schedstat). On idle cores the ratio of
images/s is the inverse ratio of CPU per file, so "decode-only CPU / ours CPU" is what the
small-set ratio comes to on a quiet machine, measured even on a loaded one.

Then, per set, where a file's CPU time goes on each side of the decode worker's pipe (one
thread, CPU time of that thread, interleaved rounds): "now" = the worker's job
(decode_job.decode_file: read, sha256, decode, area sums, thumbnail, framed by decode_wire)
and the scanning process's part (parse the frame, fingerprint_area, record); "grey" = the split before the
worker kept the image (the worker read, hashed, decoded and pickled the grey image; the
scanning process unpickled it, ran LBPH on it and made the thumbnail). Also the bytes that
cross the pipe per file.

With `--before TREE` (a checkout of an earlier commit, e.g. `git worktree add /tmp/before
<commit>`), per set, the per-file cost of the whole decode-worker round trip, before and
after, in one run: one calling thread, one worker process each (the earlier one started
from TREE's code, its pool class loaded from TREE too), each file through both in turn
(alternating which goes first, so load drifts cancel), medians of the rounds; CPU ms per
file of the worker process (schedstat, ns) and of this process (the caller and its
serving thread), and wall ms per file. And the same as `ours` runs it (--workers workers,
2 x --workers threads, the whole set per turn), rotating with the decode-only loop: CPU ms
per file of each version (this process + its workers) and decode-only's CPU over it, the
small-set ratio an idle machine would show, before and after, measured side by side.

Then, per set, the thread CPU of each step of a file's round trip in one thread (read,
read_whole, sha256, decode, area sums, thumbnail, the answer framed and parsed, fingerprint).

Then a whole `dedupctl scan` of the corpus photos (Scanner.run into a fresh index: walk,
fingerprint, link, verify, group, store) against fingerprinting the same files alone
(`ours`), interleaved, same decoder.

Run:  /tmp/venv/bin/python bench/throughput.py [--corpus PATH] [--workers 2] [--repeats 5] [--quick] [--before TREE]
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import common
from common import median, note, print_table, rounded

PIXEL_LIMIT = 100_000_000
LARGE_MIN_PIXELS = 4_000_000
SMALL_MAX_PIXELS = 300_000


def file_sets(corpus, quick: bool) -> dict[str, list[str]]:
    rows = common.read_manifest(corpus)
    large = [r["abspath"] for r in rows
             if os.path.basename(r["path"]).startswith("wallpaper_") and r["width"] * r["height"] >= LARGE_MIN_PIXELS]
    small = [r["abspath"] for r in rows if r["path"].startswith("photos/") and r["width"] * r["height"] < SMALL_MAX_PIXELS]
    if quick:
        large, small = common.sample(large, 6), common.sample(small, 60)
    return {"large": sorted(large), "small": sorted(small)}


def methods(decoder, threads_decoder) -> dict[str, Callable[[str], object]]:
    import cv2
    import imagehash
    import numpy as np
    import pdqhash
    from PIL import Image

    from dedupd.daemon.decode import decode_image
    from dedupd.daemon.fingerprinting import fingerprint_file
    from dedupd.daemon.walk import FileRef

    def ours(path: str, decoder=decoder):
        fp = fingerprint_file(FileRef.from_stat(path, os.stat(path)), "lbph", PIXEL_LIMIT, decoder)
        if fp.variants is None:
            raise RuntimeError(f"{path}: {fp.record.error}")
        return fp

    def ours_threads(path: str):
        return ours(path, threads_decoder)

    def decode_only(path: str):
        with open(path, "rb") as f:
            data = f.read()
        return decode_image(data, path, PIXEL_LIMIT)

    def full_decode(path: str):
        with open(path, "rb") as f:
            data = f.read()
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)

    def ih_phash(path: str):
        with Image.open(path) as im:
            return imagehash.phash(im)

    def pdq(path: str):
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        return pdqhash.compute(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    return {"ours": ours, "ours-threads": ours_threads, "decode-only": decode_only, "full-decode": full_decode,
            "imagehash": ih_phash, "pdq": pdq}


def run_set(name: str, paths: list[str], fns: dict, workers: int, repeats: int, decoder=None) -> dict:
    pixels = sum(_pixels(p) for p in paths)
    kinds = {p: _jpeg_kind(p) for p in paths}
    note(f"[{name}] {len(paths)} files, {pixels / 1e6:.1f} MP, {workers} workers, {repeats} rounds")
    per_file: dict[str, dict[str, list[float]]] = {m: {p: [] for p in paths} for m in fns}

    def clocked(m, fn):
        def run(path):
            t0 = time.perf_counter()
            fn(path)
            per_file[m][path].append(time.perf_counter() - t0)
        return run

    cpu: dict[str, list[float]] = {m: [] for m in fns}  # ms per file, this process + ours' workers

    # ours hands the decode to worker processes: twice the threads keep them busy (as a scan does)
    with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(2 * workers) as wide:
        def case(m, fn):
            ex = wide if m == "ours" else pool
            return lambda: list(ex.map(fn, paths))

        def charged(m, run):
            def go():
                pids = decoder.pids() if m == "ours" and decoder is not None else []
                w0, c0 = _schedstat(pids), time.process_time()
                run()
                c1, w1 = time.process_time(), _schedstat(pids)
                if decoder is None or m != "ours" or decoder.pids() == pids:  # a replaced worker's CPU is lost
                    cpu[m].append(1000 * (c1 - c0 + w1 - w0) / len(paths))
            return go

        for m, fn in fns.items():  # warm: numba, libraries, pool threads (untimed)
            case(m, fn)()
        secs = common.interleaved({m: charged(m, case(m, clocked(m, fn))) for m, fn in fns.items()}, repeats,
                                  on_round=lambda r, t: note(f"  round {r + 1}: " + ", ".join(
                                      f"{m} {len(paths) / s:.1f}/s" for m, s in t.items())))
    ips = {m: [len(paths) / s for s in v] for m, v in secs.items()}
    paired = {  # ratio of the same round, then the median: robust to slow rounds
        f"ours/{other}": rounded(median([a / b for a, b in zip(ips["ours"], ips[other])]))
        for other in fns if other != "ours"
    }
    by_kind = {}  # sum over files of each file's median thread time, per JPEG kind
    for kind in sorted(set(kinds.values())):
        files = [p for p in paths if kinds[p] == kind]
        by_kind[kind] = {"files": len(files), "ms_per_file": {
            m: rounded(1000 * sum(median(per_file[m][p]) for p in files) / len(files)) for m in fns}}
    return {
        "files": len(paths), "megapixels": round(pixels / 1e6, 2),
        "reductions": _reductions(paths),
        "ips_median": {m: rounded(median(v)) for m, v in ips.items()},
        "ips_min": {m: rounded(min(v)) for m, v in ips.items()},
        "ips_max": {m: rounded(max(v)) for m, v in ips.items()},
        "ratios": paired,
        "cpu_ms_per_file": {m: rounded(median(v)) if v else None for m, v in cpu.items()},
        "cpu_ratio_decode_only_to_ours": rounded(median(cpu["decode-only"]) / median(cpu["ours"]))
        if cpu.get("ours") and cpu.get("decode-only") else None,
        "thread_ms_per_file_by_kind": by_kind,
    }


def _schedstat(pids: list[int]) -> float:
    """Seconds on CPU of these processes (to the nanosecond: /proc/PID/schedstat); 0 for none."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def pipe_split(paths: list[str], repeats: int) -> dict:
    """CPU ms per file in a decode worker and in the scanning process, now and as it was with
    the grey image crossing the pipe, plus KB per file crossing it (see the module doc)."""
    import hashlib
    import pickle

    from dedupd.daemon import decode_wire
    from dedupd.daemon.decode import decode_image
    from dedupd.daemon.decode_job import decode_file, read_whole
    from dedupd.daemon.fingerprinting import fingerprint_decoded
    from dedupd.daemon.verify import thumbnail
    from dedupd.kernels import fingerprint

    def grey_worker(path):
        data, _ = read_whole(path, PIXEL_LIMIT)
        hashlib.sha256(data).digest()
        return pickle.dumps(decode_image(data, path, PIXEL_LIMIT), protocol=pickle.HIGHEST_PROTOCOL)

    def grey_caller(blob, path):
        gray = pickle.loads(blob).gray
        fingerprint(gray, "lbph")
        thumbnail(gray)

    def now_worker(path):
        return decode_wire.decoded(0, decode_file(path, PIXEL_LIMIT, "lbph"))

    def now_caller(blob, path):
        fingerprint_decoded(path, decode_wire.parse(decode_wire.TAG_DECODED, memoryview(blob)[decode_wire.FRAME.size:]),
                            "lbph")

    sides = {"grey": (grey_worker, grey_caller), "now": (now_worker, now_caller)}
    cpu = {f"{v}/{side}": [] for v in sides for side in ("worker", "caller")}
    sent = {v: 0 for v in sides}
    for r in range(repeats):
        for v in (list(sides) if r % 2 == 0 else list(reversed(sides))):
            work, use = sides[v]
            w = c = 0.0
            for path in paths:
                t0 = time.thread_time()
                blob = work(path)
                t1 = time.thread_time()
                use(blob, path)
                w, c = w + t1 - t0, c + time.thread_time() - t1
                if r == 0:
                    sent[v] += len(blob)
            cpu[f"{v}/worker"].append(1000 * w / len(paths))
            cpu[f"{v}/caller"].append(1000 * c / len(paths))
    return {"cpu_ms_per_file": {k: rounded(median(v)) for k, v in cpu.items()},
            "kb_per_file": {v: rounded(sent[v] / len(paths) / 1024) for v in sides}}


def parts(paths: list[str], repeats: int) -> dict:
    """Thread CPU ms per file of each step of a file's round trip, one thread, medians of
    `repeats` rounds: what the decode-only loop does (read, decode) and what ours adds."""
    import hashlib

    import cv2

    from dedupd.daemon import decode_wire
    from dedupd.daemon.decode import decode_image
    from dedupd.daemon.decode_job import DecodedFile, area_sums, read_whole
    from dedupd.daemon.fingerprinting import fingerprint_decoded
    from dedupd.daemon.verify import thumbnail

    cv2.setNumThreads(1)  # as in a decode worker
    steps = ["read (open + read)", "read_whole (fstat x2, header check)", "sha256", "decode_image",
             "area sums + AreaInput", "thumbnail", "frame the answer (decode_wire)",
             "parse the answer (AreaInput re-checked)", "fingerprint_area + record"]
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        acc = dict.fromkeys(steps, 0.0)

        def timed(step, fn, *a):
            t0 = time.thread_time()
            out = fn(*a)
            acc[step] += time.thread_time() - t0
            return out

        for path in paths:
            with open(path, "rb") as f:
                timed(steps[0], f.read)
            data, st = timed(steps[1], read_whole, path, PIXEL_LIMIT)
            digest = timed(steps[2], lambda: hashlib.sha256(data).digest())
            decoded = timed(steps[3], decode_image, data, path, PIXEL_LIMIT)
            area = timed(steps[4], area_sums, decoded.gray, "lbph")
            thumb = timed(steps[5], thumbnail, decoded.gray)
            got = DecodedFile(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest,
                              decoded.info, decoded.chroma, area, thumb)
            blob = timed(steps[6], decode_wire.decoded, 0, got)
            back = timed(steps[7], decode_wire.parse, decode_wire.TAG_DECODED, memoryview(blob)[decode_wire.FRAME.size:])
            timed(steps[8], fingerprint_decoded, path, back, "lbph")
        for k in steps:
            cpu[k].append(1000 * acc[k] / len(paths))
    return {k: rounded(median(v)) for k, v in cpu.items()}


def _pools(tree: str, workers: int) -> dict:
    """{"before": a ProcessDecoder of `tree`'s code (its pool class loaded from TREE, its
    workers started on TREE's dedupd), "after": ours}, each with `workers` workers."""
    import importlib.util
    import sys
    import tempfile

    from dedupd.daemon.decode_pool import ProcessDecoder

    root = tempfile.mkdtemp(prefix="dedupd-before-")
    os.makedirs(os.path.join(root, "dedupd"))
    for sub in ("daemon", "index", "kernels"):  # the package layout the editable install maps
        os.symlink(os.path.join(os.path.abspath(tree), sub), os.path.join(root, "dedupd", sub))
    name = f"dedupd_before_pool_{os.path.abspath(tree).replace(os.sep, '_')}"
    old_pool = sys.modules.get(name)
    if old_pool is None:
        spec = importlib.util.spec_from_file_location(name, os.path.join(tree, "daemon", "decode_pool.py"))
        old_pool = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = old_pool  # dataclasses look their module up
        spec.loader.exec_module(old_pool)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = root  # the earlier worker imports the earlier dedupd
    try:
        decoders = {"before": old_pool.ProcessDecoder(workers, PIXEL_LIMIT)}
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    decoders["after"] = ProcessDecoder(workers, PIXEL_LIMIT)
    return decoders


def _fingerprint(path: str, decoder) -> None:
    from dedupd.daemon.fingerprinting import fingerprint_file
    from dedupd.daemon.walk import FileRef

    if fingerprint_file(FileRef.from_stat(path, os.stat(path)), "lbph", PIXEL_LIMIT, decoder).variants is None:
        raise RuntimeError(f"{path}: not fingerprinted")


def before_after(paths: list[str], tree: str, repeats: int) -> dict:
    """CPU and wall ms per file through one decode worker, `tree`'s code against ours (see
    the module doc): {"before"|"after": {"worker", "caller", "wall"}}, medians of the rounds."""
    decoders = _pools(tree, 1)
    got: dict[str, dict[str, list[float]]] = {v: {"worker": [], "caller": [], "wall": []} for v in decoders}

    def one(v: str, path: str, acc: dict) -> None:
        decoder = decoders[v]
        w0, c0, t0 = _schedstat(decoder.pids()), time.process_time(), time.perf_counter()
        _fingerprint(path, decoder)
        t1, c1, w1 = time.perf_counter(), time.process_time(), _schedstat(decoder.pids())
        acc[v] = [x + d for x, d in zip(acc[v], (w1 - w0, c1 - c0, t1 - t0))]

    try:
        for r in range(repeats + 1):  # round 0 warms
            acc = {v: [0.0, 0.0, 0.0] for v in decoders}
            for i, path in enumerate(paths):  # file by file, alternating which goes first: load drifts cancel
                for v in (("before", "after") if (i + r) % 2 == 0 else ("after", "before")):
                    one(v, path, acc)
            if r:
                for v, (w, c, t) in acc.items():
                    got[v]["worker"].append(1000 * w / len(paths))
                    got[v]["caller"].append(1000 * c / len(paths))
                    got[v]["wall"].append(1000 * t / len(paths))
    finally:
        for decoder in decoders.values():
            decoder.close()
    return {v: {k: rounded(median(x)) for k, x in m.items()} for v, m in got.items()}


def before_after_parallel(paths: list[str], tree: str, workers: int, repeats: int) -> dict:
    """The same comparison as `ours` runs: `workers` decode workers and 2 x `workers` calling
    threads per version, the whole set per turn, before, after and the decode-only loop in
    rotating order each round. CPU ms per file: this process (all threads) plus the
    version's workers (schedstat); {"before"|"after": {"worker", "caller", "cpu", "wall",
    "decode-only/cpu"}, "decode-only": {"cpu", "wall"}}, medians of the rounds, the
    decode-only/cpu ratio per round then its median (on idle cores, the images/s ratio)."""
    from dedupd.daemon.decode import decode_image

    def decode_only(path: str):
        with open(path, "rb") as f:
            data = f.read()
        return decode_image(data, path, PIXEL_LIMIT)

    decoders = _pools(tree, workers)
    cases = ["before", "after", "decode-only"]
    got: dict[str, dict[str, list[float]]] = {v: {"worker": [], "caller": [], "cpu": [], "wall": []} for v in cases}
    try:
        with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(2 * workers) as wide:
            def run(v: str) -> None:
                if v == "decode-only":
                    list(pool.map(decode_only, paths))
                else:
                    list(wide.map(lambda p, d=decoders[v]: _fingerprint(p, d), paths))

            for v in cases:  # warm
                run(v)
            for r in range(repeats):
                for v in cases[r % 3:] + cases[:r % 3]:
                    pids = decoders[v].pids() if v in decoders else []
                    w0, c0, t0 = _schedstat(pids), time.process_time(), time.perf_counter()
                    run(v)
                    t1, c1, w1 = time.perf_counter(), time.process_time(), _schedstat(pids)
                    n = len(paths)
                    for k, x in (("worker", w1 - w0), ("caller", c1 - c0), ("cpu", w1 - w0 + c1 - c0), ("wall", t1 - t0)):
                        got[v][k].append(1000 * x / n)
    finally:
        for decoder in decoders.values():
            decoder.close()
    out = {v: {k: rounded(median(x)) for k, x in m.items() if x and (v in decoders or k in ("cpu", "wall"))}
           for v, m in got.items()}
    for v in decoders:
        out[v]["decode-only/cpu"] = rounded(median([a / b for a, b in zip(got["decode-only"]["cpu"], got[v]["cpu"])]))
    return out


def scan_vs_fingerprinting(corpus, fns: dict, decoder, workers: int, repeats: int) -> dict:
    """Seconds of a whole scan of corpus/photos into a fresh index vs `ours` on the same files."""
    import shutil
    import tempfile

    from dedupd.daemon.config import load_config
    from dedupd.daemon.scan import Scanner
    from dedupd.daemon.state import open_index

    photos = str(corpus / "photos")
    paths = common.list_images(corpus / "photos")
    work = tempfile.mkdtemp(prefix="dedupd-bench-scan-")
    cfg = os.path.join(work, "dedupd.yaml")
    with open(cfg, "w") as f:
        f.write(f"state_dir: {work}/state\nroots: [{{path: {photos}}}]\nworkers: {workers}\n")
    config = load_config(cfg)

    def scan():
        shutil.rmtree(os.path.join(work, "state"), ignore_errors=True)
        with open_index(config) as index:
            return Scanner(config, index, progress=False, decoder=decoder).run()

    with ThreadPoolExecutor(2 * workers) as wide:
        cases = {"scan": scan, "fingerprint": lambda: list(wide.map(fns["ours"], paths))}
        for fn in cases.values():
            fn()
        secs = common.interleaved(cases, repeats)
    shutil.rmtree(work, ignore_errors=True)
    ratio = median([a / b for a, b in zip(secs["scan"], secs["fingerprint"])])
    return {"files": len(paths), "scan_s": rounded(median(secs["scan"])),
            "fingerprint_s": rounded(median(secs["fingerprint"])), "scan/fingerprint": rounded(ratio)}


def _jpeg_kind(path: str) -> str:
    """"baseline" / "progressive" for JPEG (from the SOF marker), else the extension."""
    with open(path, "rb") as f:
        data = f.read(1 << 20)
    if data[:2] != b"\xff\xd8":
        return os.path.splitext(path)[1].lstrip(".").lower() or "other"
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1):
            return "jpeg-baseline"
        if marker == 0xC2:
            return "jpeg-progressive"
        i += 2 + length
    return "jpeg-other"


def _pixels(path: str) -> int:
    from dedupd.daemon.imageinfo import HEADER_BYTES, read_info
    with open(path, "rb") as f:
        info = read_info(f.read(HEADER_BYTES), path)
    return info.width * info.height


def _reductions(paths: list[str]) -> dict[str, int]:
    from collections import Counter

    from dedupd.daemon.decode import reduction_for
    from dedupd.daemon.imageinfo import HEADER_BYTES, read_info
    c: Counter = Counter()
    for p in paths:
        with open(p, "rb") as f:
            c[f"1/{reduction_for(read_info(f.read(HEADER_BYTES), p))}"] += 1
    return dict(sorted(c.items()))


def main(argv=None) -> int:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="threads in the pool, for every method (default 2)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 5; --quick 2)")
    p.add_argument("--before", default=None, metavar="TREE",
                   help="a checkout of an earlier commit: also compare the per-file decode-worker round trip with it")
    args = p.parse_args(argv)
    corpus = common.check_corpus(args.corpus)
    repeats = args.repeats or (2 if args.quick else 5)

    from dedupd.daemon.decode_pool import ProcessDecoder, ThreadDecoder
    from dedupd.kernels import warm
    warm()
    decoder = ProcessDecoder(args.workers, PIXEL_LIMIT)
    fns = methods(decoder, ThreadDecoder(PIXEL_LIMIT))
    sets = file_sets(corpus, args.quick)
    for paths in sets.values():
        common.warm_page_cache(paths)
    common.warm_page_cache(common.list_images(corpus / "photos"))

    results = {name: run_set(name, paths, fns, args.workers, repeats, decoder) for name, paths in sets.items()}
    for name, paths in sets.items():
        note(f"[{name}] CPU per file on each side of the pipe ...")
        results[name]["pipe_split"] = pipe_split(paths, repeats)
        results[name]["parts"] = parts(paths, repeats)
        if args.before:
            note(f"[{name}] per-file round trip through one worker, {args.before} vs this tree ...")
            results[name]["before_after"] = before_after(paths, args.before, repeats)
            note(f"[{name}] {args.workers} workers, {2 * args.workers} threads, {args.before} vs this tree vs decode-only ...")
            results[name]["before_after_parallel"] = before_after_parallel(paths, args.before, args.workers,
                                                                           max(repeats, 5))
    scan = scan_vs_fingerprinting(corpus, fns, decoder, args.workers, repeats)
    decoder.close()

    print(f"\nthroughput: images/s, median of {repeats} interleaved rounds, {args.workers} threads, warm page cache")
    rows = []
    for name, r in results.items():
        for m in fns:
            rows.append([f"{name} ({r['files']} files, {r['megapixels']} MP)", m, r["ips_median"][m],
                         f"{r['ips_min'][m]:.1f}..{r['ips_max'][m]:.1f}"])
    print_table(["set", "method", "images/s", "range"], rows)
    others = [m for m in fns if m != "ours"]
    print_table(["set"] + [f"ours/{m}" for m in others] + ["JPEG reductions"],
                [[n] + [f"{r['ratios'][f'ours/{m}']:.2f}x" for m in others]
                 + [" ".join(f"{k}:{v}" for k, v in r["reductions"].items())] for n, r in results.items()],
                title="ratios of images/s (median of per-round ratios; > 1 = ours faster)")
    print_table(["set"] + [f"{m} ms" for m in fns] + ["decode-only / ours"],
                [[n] + [r["cpu_ms_per_file"][m] for m in fns] + [f"{r['cpu_ratio_decode_only_to_ours']:.2f}x"]
                 for n, r in results.items()],
                title="CPU per file (this process + ours' decode workers; median of the rounds): on idle cores "
                      "ours/decode-only in images/s comes to decode-only / ours here")
    print_table(["set", "kind", "files"] + [f"{m} ms" for m in fns],
                [[n, kind, k["files"]] + [k["ms_per_file"][m] for m in fns]
                 for n, r in results.items() for kind, k in r["thread_ms_per_file_by_kind"].items()],
                title="mean per-file time in its worker thread (median over rounds), by file kind")
    print_table(["set", "split", "worker CPU ms", "scanning process CPU ms", "KB through the pipe"],
                [[n, v, r["pipe_split"]["cpu_ms_per_file"][f"{v}/worker"], r["pipe_split"]["cpu_ms_per_file"][f"{v}/caller"],
                  r["pipe_split"]["kb_per_file"][v]] for n, r in results.items() for v in ("grey", "now")],
                title="per file, one thread: the worker's job and the scanning process's part (grey = the grey image "
                      "crossed the pipe; now = area sums + thumbnail)")
    names = list(results)
    print_table(["step"] + [f"{n} ms" for n in names],
                [[k] + [results[n]["parts"][k] for n in names] for k in results[names[0]]["parts"]],
                title="thread CPU per file of each step, one thread (decode-only = the first and the fourth row)")
    if args.before:
        print_table(["set", "code", "worker CPU ms", "this process CPU ms", "wall ms"],
                    [[n, v, b[v]["worker"], b[v]["caller"], b[v]["wall"]]
                     for n, r in results.items() for b in [r["before_after"]] for v in ("before", "after")],
                    title=f"per file through one decode worker, one calling thread: {args.before} (before) vs this tree "
                          f"(after), median of {repeats} interleaved rounds")
        print_table(["set", "code", "worker CPU ms", "this process CPU ms", "CPU ms", "wall ms", "decode-only / CPU"],
                    [[n, v, b[v].get("worker", ""), b[v].get("caller", ""), b[v]["cpu"], b[v]["wall"],
                      f"{b[v]['decode-only/cpu']:.2f}x" if "decode-only/cpu" in b[v] else ""]
                     for n, r in results.items() for b in [r["before_after_parallel"]]
                     for v in ("before", "after", "decode-only")],
                    title=f"per file as ours runs ({args.workers} workers, {2 * args.workers} threads), {args.before} "
                          f"(before) vs this tree (after) vs the decode-only loop, median of {max(repeats, 5)} rotating rounds")
    print_table(["files", "scan s", "fingerprinting alone s", "scan / fingerprinting"],
                [[scan["files"], scan["scan_s"], scan["fingerprint_s"], f"{scan['scan/fingerprint']:.2f}x"]],
                title="a whole scan of corpus/photos vs fingerprinting its files (median of interleaved rounds)")
    common.emit_json({"bench": "throughput", "quick": args.quick, "workers": args.workers, "repeats": repeats,
                      "before": args.before,
                      "machine": common.machine(),
                      "versions": common.versions("numpy", "numba", "cv2", "PIL", "imagehash", "pdqhash"),
                      "sets": results, "scan": scan})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
