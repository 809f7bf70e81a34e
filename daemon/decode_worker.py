"""A decode worker process (SAFETY.md rule 22): `python -m dedupd.daemon.decode_worker`.

Started by `dedupd.daemon.decode_pool.ProcessDecoder` as a fresh interpreter (never a
fork of the daemon, which holds an LMDB environment and threads), with only the two
pipe descriptors it talks over. Before it reads any job it

- has OPENCV_IO_MAX_IMAGE_PIXELS set to the pixel limit (by its parent, before
  `import cv2`: OpenCV reads it once);
- caps its address space (RLIMIT_AS) at what it uses after start-up plus
  `memory_for(pixel_limit)`: a decode that needs more fails inside this process
  (`decode_memory`), never in the daemon;
- skips the numba kernels (see `_without_kernels`): it measures the decoded picture with
  the numpy area sums of `dedupd.kernels.area` (from OpenCV's summed-area table up to
  8.4 MP, `decode_job.area_sums`), so it sends back the fingerprint's exact
  input and the verification thumbnail, never the image (`decode_job.DecodedFile`).

Protocol (`decode_wire`): jobs come in from the daemon (a trusted writer) as pickled lists
[(job id, kind, args), ...] (`read_jobs`). Answers go out as `decode_wire` frames,
plain numbers and array bytes that the daemon parses with bounds checks, never a pickle
(what this process writes is the first thing a file that took it over would control): a
TAG_READY frame (pid, address-space cap) first, then for every job, in order, its result
(TAG_DECODED, TAG_THUMB, TAG_NO_THUMB) or TAG_PROBLEM (kind, path, detail). End of input
ends the worker.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import sys

MIB = 1 << 20
# A decode at the pixel limit P needs at most: the file (an uncompressed 16-bit RGB file is
# ~6P bytes), a progressive JPEG's coefficients (2 bytes x 3 components = 6P), the 16-bit
# pixels (6P) or 8-bit ones (3P), grey (P): 16 bytes a pixel covers every path, plus slack.
BYTES_PER_PIXEL = 16
SLACK = 256 * MIB


def memory_for(pixel_limit: int) -> int:
    """Address space a worker may use beyond its start-up size."""
    return BYTES_PER_PIXEL * pixel_limit + SLACK


def _without_kernels() -> None:
    """Register the package `dedupd.kernels` without running its __init__, which loads
    every numba kernel (2 s, ~100 MB): the worker needs only `dedupd.kernels.errors`,
    the root of the typed errors it raises, and the numpy-only `dedupd.kernels.area`."""
    if "dedupd.kernels" not in sys.modules:
        spec = importlib.util.find_spec("dedupd.kernels")
        sys.modules["dedupd.kernels"] = importlib.util.module_from_spec(spec)


def _limit_memory(headroom: int) -> int:
    """Cap the address space at the current size + `headroom`; returns the cap."""
    with open("/proc/self/status") as f:
        vm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    limit = vm_kib * 1024 + headroom
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def _jobs() -> dict:
    """job kind -> (what computes it, how its result is framed)."""
    from dedupd.daemon import decode_wire
    from dedupd.daemon.decode_job import decode_file, load_thumb

    return {"decode": (decode_file, decode_wire.decoded), "thumb": (load_thumb, decode_wire.thumb)}


def _answer(job_id: int, job: tuple, args: tuple, problem_type) -> bytes:
    """The answer frame of one job: its result, or the per-file problem it raised."""
    from dedupd.daemon import decode_wire  # already loaded by _jobs: a dictionary look-up

    fn, framed = job
    try:
        return framed(job_id, fn(*args))
    except problem_type as p:
        kind = p.kind
        if kind == "corrupt" and "Insufficient memory" in p.detail:  # OpenCV's allocation failure
            kind = "decode_memory"
        return decode_wire.problem(job_id, kind, p.path, p.detail)
    except MemoryError:
        return decode_wire.problem(job_id, "decode_memory", str(args[0]),
                                   "the decode needs more memory than the worker may use")


def main(argv: list[str]) -> int:
    fd_in, fd_out, pixel_limit, headroom = (int(a) for a in argv)
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(pixel_limit)  # the parent set it too; before cv2
    _without_kernels()
    jobs = _jobs()
    import cv2

    from dedupd.daemon.decode_wire import read_jobs, ready, write_all
    from dedupd.daemon.errors import FileProblem
    from dedupd.daemon.failpoints import hit

    cv2.setNumThreads(1)  # one decode per worker; the pool runs one worker per core
    write_all(fd_out, ready(os.getpid(), _limit_memory(headroom)))
    while (batch := read_jobs(fd_in)) is not None:  # None: end of input
        for job_id, kind, args in batch:
            hit("decode_worker.job")  # DEDUPD_FAILPOINT=decode_worker.job: a worker dying mid-file
            write_all(fd_out, _answer(job_id, jobs[kind], args, FileProblem))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
