"""Where untrusted bytes are decoded: worker processes with memory and time limits.

SAFETY.md rule 22. `ProcessDecoder` keeps `workers` decode worker processes
(`dedupd.daemon.decode_worker`): fresh interpreters started with only their two pipes,
never forks of the daemon (which holds an LMDB environment). Each has its address space
capped from the pixel limit; a file whose decode runs longer than `timeout` seconds gets
its worker killed and replaced, and the file is counted as `decode_timeout`; a worker
that dies mid-file (a decoder crash, the OOM killer) is replaced and the file counted as
`decode_crash`; an allocation over the cap is `decode_memory`. None of these stops a
scan or the daemon, and an error record is never acted on.

`ThreadDecoder` decodes in the calling thread instead (no isolation, no time limit):
what dedupd did before, kept for measurements (docs/performance.md, Pipeline) and for a
scan that cannot start processes. Both return the same `decode_job.DecodedFile`: the
area sums the fingerprint reads and the verification thumbnail, never the decoded
picture, so a decompression bomb within the pixel limit stays in the worker.

Jobs go to the workers in batches of up to `batch` (one pipe round trip for several
small files); answers come back one per file, so the time limit is per file. Answers are
`decode_wire` frames, parsed with bounds checks, never unpickled: the worker is the process
that reads untrusted bytes, so the daemon treats what it writes as data. A worker that writes
anything else is stopped and its file counted as `decode_crash`.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from dedupd.daemon import decode_wire
from dedupd.daemon.decode_job import DecodedFile, decode_file, load_thumb
from dedupd.daemon.decode_worker import memory_for
from dedupd.daemon.errors import FileProblem
from dedupd.kernels.area import sizes_for
from dedupd.kernels.errors import DedupdError

DEFAULT_TIMEOUT = 60.0  # seconds for one file; a 100 MP PNG decodes in ~2 s on a loaded 2-core VM
START_TIMEOUT = 60.0  # seconds for a worker to import numpy and OpenCV and say it is ready
ANSWER_PIPE_BYTES = 1 << 20  # Linux's default unprivileged maximum (/proc/sys/fs/pipe-max-size)
# the answer frames each job kind may get (a per-file problem is an answer to any job)
_ANSWER_TAGS = {"decode": {decode_wire.TAG_DECODED, decode_wire.TAG_PROBLEM},
                "thumb": {decode_wire.TAG_THUMB, decode_wire.TAG_NO_THUMB, decode_wire.TAG_PROBLEM}}


class DecodeTimeout(FileProblem):
    """took longer to decode than the time limit; its decode worker was stopped"""

    kind = "decode_timeout"


class DecodeCrashed(FileProblem):
    """made its decode worker process die"""

    kind = "decode_crash"


class WorkerProblem(FileProblem):
    """A per-file problem reported by a worker, under the worker's kind."""

    def __init__(self, kind: str, path: str, detail: str):
        self.kind, self.path, self.detail = kind, path, detail
        DedupdError.__init__(self, f"{path}: {kind}" + (f" ({detail})" if detail else ""))


class DecodeWorkersFailed(DedupdError):
    """The decode worker processes cannot be started."""


class ThreadDecoder:
    """Decodes in the calling thread (no isolation): the comparison baseline."""

    isolated = False

    def __init__(self, pixel_limit: int):
        self.pixel_limit = pixel_limit

    def decode(self, path: str, algo: str) -> DecodedFile:
        return decode_file(path, self.pixel_limit, algo)

    def thumb(self, path: str, size: int, mtime_ns: int, content_hash: bytes) -> np.ndarray | None:
        return load_thumb(path, size, mtime_ns, content_hash, self.pixel_limit)

    def close(self) -> None:
        pass


@dataclass
class _Job:
    kind: str
    args: tuple
    future: Future = field(default_factory=Future)


@dataclass
class _Worker:
    proc: subprocess.Popen
    requests: decode_wire.JobPipe  # jobs, pickled: the daemon is the trusted writer
    answers: decode_wire.AnswerReader  # answer frames, parsed as data
    ready: bool = False


class ProcessDecoder:
    """`workers` decode worker processes; `decode` and `thumb` may be called from any
    number of threads at once. `stats` counts started workers, timeouts and crashes."""

    isolated = True

    def __init__(self, workers: int, pixel_limit: int, *, timeout: float = DEFAULT_TIMEOUT, batch: int = 4,
                 headroom: int | None = None):
        self.pixel_limit, self.timeout, self.batch = pixel_limit, timeout, max(1, batch)
        self.headroom = memory_for(pixel_limit) if headroom is None else headroom
        self.stats = {"started": 0, "decode_timeout": 0, "decode_crash": 0}
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._workers: list[_Worker | None] = [self._spawn() for _ in range(max(1, workers))]
        self._threads = [threading.Thread(target=self._serve, args=(i,), name=f"dedupd-decode-{i}", daemon=True)
                         for i in range(len(self._workers))]
        for t in self._threads:
            t.start()

    # -- the calling side -----------------------------------------------------------------

    def decode(self, path: str, algo: str) -> DecodedFile:
        """Read, hash, decode and measure `path` for fingerprint algorithm `algo` in a worker
        (`decode_job.decode_file`); raises a `FileProblem`. An unknown `algo` raises
        UnknownAlgorithm here, before it could reach a worker."""
        sizes_for(algo)
        return self.submit("decode", (path, self.pixel_limit, algo)).result()

    def thumb(self, path: str, size: int, mtime_ns: int, content_hash: bytes) -> np.ndarray | None:
        """`decode_job.load_thumb` in a worker; None for any per-file problem."""
        try:
            return self.submit("thumb", (path, size, mtime_ns, content_hash, self.pixel_limit)).result()
        except FileProblem:
            return None

    def submit(self, kind: str, args: tuple) -> Future:
        job = _Job(kind, args)
        with self._cond:
            if self._closed:
                raise DecodeWorkersFailed("the decode workers were stopped")
            self._queue.append(job)
            self._cond.notify()
        return job.future

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w is not None]

    def close(self) -> None:
        """Stop the workers (each finishes its current file, then sees end of input)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)
        for job in self._queue:
            job.future.set_exception(DecodeWorkersFailed("the decode workers were stopped"))
        self._queue.clear()

    def __enter__(self) -> "ProcessDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one thread per worker ----------------------------------------------------------------

    def _serve(self, slot: int) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                break
            try:
                self._run(slot, jobs)
            except DecodeWorkersFailed as exc:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
        self._stop(slot)

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            return [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]

    def _run(self, slot: int, jobs: list[_Job]) -> None:
        worker = self._ready(slot)
        if worker.proc.poll() is not None:  # died while idle (killed from outside): not these files' fault
            worker = self._replace(slot)
        try:
            worker.requests.send([(n, job.kind, job.args) for n, job in enumerate(jobs)])
        except OSError:
            worker = self._replace(slot)
            worker.requests.send([(n, job.kind, job.args) for n, job in enumerate(jobs)])
        for n, job in enumerate(jobs):
            problem = self._answer(slot, worker, job, n)
            if problem is not None:  # the worker is gone: the rest of the batch goes back in line
                job.future.set_exception(problem)
                with self._cond:
                    self._queue.extendleft(reversed(jobs[n + 1:]))
                    self._cond.notify_all()
                return

    def _answer(self, slot: int, worker: _Worker, job: _Job, job_id: int) -> FileProblem | None:
        """Resolve `job` (number `job_id` of the batch) from the worker's next answer; a
        FileProblem if the worker had to go."""
        path = str(job.args[0])
        try:
            got_id, tag, body = worker.answers.next(self.timeout)
            if got_id != job_id or tag not in _ANSWER_TAGS[job.kind]:
                raise decode_wire.MalformedAnswer(f"answer {got_id} (tag {tag}) to {job.kind} job {job_id}")
            value = decode_wire.parse(tag, body)
        except decode_wire.AnswerTimeout:
            self.stats["decode_timeout"] += 1
            self._kill(slot)
            return DecodeTimeout(path, f"more than {self.timeout:g} s")
        except (EOFError, OSError):
            code = worker.proc.wait()
            self.stats["decode_crash"] += 1
            self._workers[slot] = None
            _close(worker)
            return DecodeCrashed(path, f"worker exit status {code}" if code >= 0 else f"worker killed by signal {-code}")
        except decode_wire.MalformedAnswer as exc:
            self.stats["decode_crash"] += 1
            self._kill(slot)
            return DecodeCrashed(path, f"its worker wrote {exc}; the worker was stopped")
        if tag == decode_wire.TAG_PROBLEM:
            job.future.set_exception(WorkerProblem(*value[1:]))
        else:
            job.future.set_result(value)
        return None

    # -- worker processes -------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        _widen(ans_w)
        env = dict(os.environ, OPENCV_IO_MAX_IMAGE_PIXELS=str(self.pixel_limit), OMP_NUM_THREADS="1")
        argv = [sys.executable, "-m", "dedupd.daemon.decode_worker", str(req_r), str(ans_w),
                str(self.pixel_limit), str(self.headroom)]
        try:
            proc = subprocess.Popen(argv, pass_fds=(req_r, ans_w), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, env=env, close_fds=True)
        except OSError as exc:
            for fd in (req_r, req_w, ans_r, ans_w):
                os.close(fd)
            raise DecodeWorkersFailed(f"cannot start a decode worker ({sys.executable}): {exc}") from exc
        os.close(req_r)
        os.close(ans_w)
        self.stats["started"] += 1
        return _Worker(proc, decode_wire.JobPipe(req_w), decode_wire.AnswerReader(ans_r))

    def _ready(self, slot: int) -> _Worker:
        worker = self._workers[slot] or self._replace(slot)
        if not worker.ready:
            try:
                _, tag, body = worker.answers.next(START_TIMEOUT)
                if tag != decode_wire.TAG_READY:
                    raise decode_wire.MalformedAnswer(f"a first answer with tag {tag}")
                decode_wire.parse(tag, body)
            except decode_wire.AnswerTimeout:
                self._kill(slot)
                raise DecodeWorkersFailed(f"a decode worker did not start within {START_TIMEOUT:g} s") from None
            except decode_wire.MalformedAnswer as exc:
                self._kill(slot)
                raise DecodeWorkersFailed(f"a decode worker did not say it was ready ({exc})") from None
            except (EOFError, OSError):
                code = worker.proc.wait()
                self._workers[slot] = None
                _close(worker)
                raise DecodeWorkersFailed(f"a decode worker exited at start (status {code}); see the log") from None
            worker.ready = True
        return worker

    def _replace(self, slot: int) -> _Worker:
        self._kill(slot)
        self._workers[slot] = self._spawn()
        return self._ready(slot)

    def _kill(self, slot: int) -> None:
        worker, self._workers[slot] = self._workers[slot], None
        if worker is not None:
            worker.proc.kill()
            worker.proc.wait()
            _close(worker)

    def _stop(self, slot: int) -> None:
        worker, self._workers[slot] = self._workers[slot], None
        if worker is None:
            return
        worker.requests.close()  # end of input: the worker exits
        try:
            worker.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()
        _close(worker)


def _widen(fd: int) -> None:
    """Give the answer pipe room for a whole answer (area sums + a thumbnail: up to ~82 KB
    for a small photo, a 256x256 thumbnail and 16 KB of sums; Linux's default pipe is 64 KB):
    the worker then writes it in one go and goes on to its next file instead of blocking
    until this process has read part of it, and we read it in one call. Measured on the
    small set with 77 KB answers (int64 sums), one worker, serial: worker CPU 3.37 -> 3.15 ms
    a file, 10.4 -> 8.5 ms wall (load ~6). Best effort: where the size cannot be set (not
    Linux, or above /proc/sys/fs/pipe-max-size) the default stays."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, ANSWER_PIPE_BYTES)
    except (AttributeError, OSError):
        pass


def _close(worker: _Worker) -> None:
    for conn in (worker.requests, worker.answers):
        try:
            conn.close()
        except OSError:
            pass


_shared: dict[tuple[int, int], ProcessDecoder] = {}
_shared_lock = threading.Lock()


def shared_decoder(workers: int, pixel_limit: int, *, start: bool = True) -> ProcessDecoder | None:
    """The process-wide decoder for these settings, started on first use and kept (a
    daemon re-makes its scanner on every reload; its workers stay warm). Decoders for
    other settings are closed; all are closed at exit. With `start=False`, None unless
    it exists."""
    key = (workers, pixel_limit)
    with _shared_lock:
        if key not in _shared and start:
            for other in list(_shared):
                _shared.pop(other).close()
            _shared[key] = ProcessDecoder(workers, pixel_limit)
        return _shared.get(key)


@atexit.register
def _close_shared() -> None:
    with _shared_lock:
        for key in list(_shared):
            _shared.pop(key).close()
