"""The decode workers' pipes: jobs in (pickles from the daemon), answers out (fixed binary frames,
parsed with bounds checks, never pickles).

A decode worker reads untrusted bytes (SAFETY.md rule 22). If a decoder bug ever let a file
take the worker over, what the worker writes to its answer pipe is the next thing such a file
controls, so the daemon must read it as data: `pickle.loads` would call whatever the stream
names. Here an answer is a frame of plain numbers and raw array bytes; `parse` checks every
length against the frame before it reads, builds the values through their own constructors
(`AreaInput` re-checks its sums' shapes, ranges and totals) and copies what it keeps out of the
receive buffer. Anything else is a `MalformedAnswer`, and the pool stops that worker.

It is also the cheaper way (docs/performance.md, Pipeline): no pickler on either side, the
sums and the thumbnail are copied once into the frame and once out of it, and `AnswerReader`
reads frames into one reused buffer (what the pipe holds in one `readv`, often several
answers at once) where `multiprocessing.connection` allocated a new one per message.

Jobs go the other way, from the trusted daemon: `JobPipe.send` writes a list of (job id, kind,
args) as one pickle behind a 4-byte length (`JOBS`), `read_jobs` reads it in the worker.
(multiprocessing's `Connection` did the same with a `ForkingPickler`, which copies the copyreg
dispatch table for every message.)

Answer frame: `FRAME` (body length, job id, tag), then the body. Bodies, all in native byte order
(the worker is a child of the daemon on the same machine):

- TAG_READY: pid, address-space cap (`READY`), the worker's first frame;
- TAG_DECODED: a `decode_job.DecodedFile`: `DECODED` (stat, sha256, chroma, the `ImageInfo`
  numbers, the picture's shape, how many resizes, the thumbnail's size), the format name, per
  resize `SUMS_HEAD` (h, w, bytes per value: 4 when 255*H*W < 2**31, as `AreaInput` pickles)
  and its h*w values, then the thumbnail's pixels;
- TAG_THUMB: `THUMB_HEAD` (h, w) and the pixels of a `decode_job.load_thumb` result;
  TAG_NO_THUMB (empty body) for its None;
- TAG_PROBLEM: `PROBLEM_HEAD` (byte lengths), then the problem's kind, path, detail in UTF-8
  (paths with undecodable bytes keep them: surrogatepass both ways).
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import time

import numpy as np

from dedupd.daemon.decode_job import DecodedFile
from dedupd.daemon.imageinfo import ImageInfo
from dedupd.daemon.verify import THUMB_SIDE
from dedupd.kernels.area import AreaInput
from dedupd.kernels.errors import DedupdError

JOBS = struct.Struct("=I")  # bytes of the pickled job list that follows
FRAME = struct.Struct("=IIB")  # body bytes, job id, tag
READY = struct.Struct("=qq")  # pid, address-space cap
# dev, ino, size, mtime_ns, ctime_ns, sha256, chroma, width, height, orientation, has_exif,
# encoding, len(format), area shape (H, W), number of resizes, thumbnail (h, w)
DECODED = struct.Struct("=QQqqq32sdqqB?qBqqBHH")
SUMS_HEAD = struct.Struct("=HHB")  # h, w, bytes per value (4 or 8)
THUMB_HEAD = struct.Struct("=HH")
PROBLEM_HEAD = struct.Struct("=HII")  # bytes of kind, path, detail

TAG_READY, TAG_DECODED, TAG_THUMB, TAG_NO_THUMB, TAG_PROBLEM = 1, 2, 3, 4, 5

# The reader's buffer per worker, which bounds the longest frame it takes: a small photo's
# answer is ~60-80 KB, the largest (a 256x256 thumbnail and pHash's sums as int64) under 110 KB.
# A read takes what the pipe holds up to the free space, so several answers often come in one.
# (bytearray zero-fills: this much of the daemon's resident memory per worker.)
BUFFER_BYTES = 256 << 10
_SUM_TYPES = {4: np.dtype(np.int32), 8: np.dtype(np.int64)}
_TEXT = ("utf-8", "surrogatepass")


class MalformedAnswer(DedupdError):
    """A decode worker wrote bytes that are not a well-formed answer; the worker is stopped."""


class AnswerTimeout(DedupdError):
    """No whole answer arrived within the time limit."""


# ------------------------------------------------------------------ jobs, daemon -> worker


class JobPipe:
    """The daemon's end of a worker's job pipe. Owns the descriptor."""

    def __init__(self, fd: int):
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def send(self, jobs: list[tuple]) -> None:
        """Write one list of (job id, kind, args); OSError (EPIPE) if the worker is gone."""
        payload = pickle.dumps(jobs, protocol=pickle.HIGHEST_PROTOCOL)
        write_all(self.fd, JOBS.pack(len(payload)) + payload)

    def close(self) -> None:
        """Close the descriptor (the worker sees end of input); once only, like AnswerReader.close."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def read_jobs(fd: int) -> list[tuple] | None:
    """The worker's side of `JobPipe.send`: the next list of jobs, None at end of input."""
    head = _read_exactly(fd, JOBS.size)
    if head is None:
        return None
    payload = _read_exactly(fd, JOBS.unpack(head)[0])
    if payload is None:
        return None
    return pickle.loads(payload)  # written by the daemon, the trusted side


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to the pipe (one write when the pipe has room: decode_pool widens the answer pipe)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# ------------------------------------------------------------------ answers, worker -> daemon


def frame(job_id: int, tag: int, *parts) -> bytes:
    """One frame: the header, then the concatenated `parts` (bytes-like) as its body."""
    body_len = sum(memoryview(p).nbytes for p in parts)
    return b"".join((FRAME.pack(body_len, job_id, tag), *parts))


def ready(pid: int, address_cap: int) -> bytes:
    return frame(0, TAG_READY, READY.pack(pid, address_cap))


def decoded(job_id: int, got: DecodedFile) -> bytes:
    """The frame of a decode job's result."""
    info, area = got.info, got.area
    fmt = info.format.encode("ascii")
    narrow = 255 * area.denominator < 2**31  # every sum is in [0, 255*H*W] (AreaInput checked): int32 holds it
    sums = []
    for (h, w), n in area.sums.items():
        arr = n.astype(np.int32) if narrow else n
        sums += [SUMS_HEAD.pack(h, w, arr.itemsize), arr]
    thumb = _pixels(got.thumb)
    head = DECODED.pack(got.dev, got.ino, got.size, got.mtime_ns, got.ctime_ns, got.content_hash, got.chroma,
                        info.width, info.height, info.orientation, info.has_exif, info.encoding, len(fmt),
                        area.shape[0], area.shape[1], len(area.sums), thumb.shape[0], thumb.shape[1])
    return frame(job_id, TAG_DECODED, head, fmt, *sums, thumb)


def thumb(job_id: int, pixels: np.ndarray | None) -> bytes:
    """The frame of a thumbnail job's result (None: the file is no longer what was indexed)."""
    if pixels is None:
        return frame(job_id, TAG_NO_THUMB)
    pixels = _pixels(pixels)
    return frame(job_id, TAG_THUMB, THUMB_HEAD.pack(*pixels.shape), pixels)


def problem(job_id: int, kind: str, path: str, detail: str) -> bytes:
    """The frame of a per-file problem."""
    texts = [str(t).encode(*_TEXT) for t in (kind, path, detail)]
    return frame(job_id, TAG_PROBLEM, PROBLEM_HEAD.pack(*map(len, texts)), *texts)


def _pixels(img: np.ndarray) -> np.ndarray:
    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8 or img.ndim != 2 or not (0 < max(img.shape) <= THUMB_SIDE) or min(img.shape) < 1:
        raise ValueError(f"a thumbnail is a 2-D uint8 array of at most {THUMB_SIDE} px, got {img.shape} {img.dtype}")
    return img


# ------------------------------------------------------------------ answers, the daemon's side


def parse(tag: int, body: memoryview):
    """The value a frame's body carries: ("ready", pid, cap), a `DecodedFile`, a thumbnail
    (uint8 array or None), or ("problem", kind, path, detail). Copies what it keeps: `body`
    may be reused afterwards. MalformedAnswer for anything that is not exactly one of those."""
    try:
        if tag == TAG_DECODED:
            return _decoded(body)
        if tag == TAG_THUMB:
            h, w = THUMB_HEAD.unpack_from(body)
            pixels = _array(body, THUMB_HEAD.size, np.dtype(np.uint8), h, w)
            _end(body, THUMB_HEAD.size + h * w)
            if min(h, w) < 1 or max(h, w) > THUMB_SIDE:
                raise MalformedAnswer(f"a {h}x{w} thumbnail")
            return pixels.copy()
        if tag == TAG_NO_THUMB:
            _end(body, 0)
            return None
        if tag == TAG_PROBLEM:
            lengths = PROBLEM_HEAD.unpack_from(body)
            at, texts = PROBLEM_HEAD.size, []
            for n in lengths:
                texts.append(_take(body, at, n).decode(*_TEXT))
                at += n
            _end(body, at)
            return ("problem", *texts)
        if tag == TAG_READY:
            _end(body, READY.size)
            return ("ready", *READY.unpack_from(body))
    except (struct.error, UnicodeDecodeError, ValueError) as exc:  # short bodies, bad text, bad sums
        raise MalformedAnswer(f"a malformed answer (tag {tag}): {exc}") from None
    raise MalformedAnswer(f"an answer with the unknown tag {tag}")


def _decoded(body: memoryview) -> DecodedFile:
    (dev, ino, size, mtime_ns, ctime_ns, content_hash, chroma, width, height, orientation, has_exif, encoding,
     fmt_len, sy, sx, n_sums, th, tw) = DECODED.unpack_from(body)
    at = DECODED.size
    fmt = _take(body, at, fmt_len).decode("ascii")
    at += fmt_len
    sums = {}
    for _ in range(n_sums):
        h, w, itemsize = SUMS_HEAD.unpack_from(body, at)
        at += SUMS_HEAD.size
        if itemsize not in _SUM_TYPES or (h, w) in sums:
            raise MalformedAnswer(f"the {h}x{w} sums: {itemsize} bytes per value, or twice")
        sums[(h, w)] = _array(body, at, _SUM_TYPES[itemsize], h, w)  # AreaInput checks and copies them
        at += h * w * itemsize
    pixels = _array(body, at, np.dtype(np.uint8), th, tw)
    _end(body, at + th * tw)
    if min(th, tw) < 1 or max(th, tw) > THUMB_SIDE:
        raise MalformedAnswer(f"a {th}x{tw} thumbnail")
    info = ImageInfo(fmt, width, height, orientation, has_exif, encoding)
    return DecodedFile(dev, ino, size, mtime_ns, ctime_ns, content_hash, info, chroma,
                       AreaInput((sy, sx), sums), pixels.copy())


def _take(body: memoryview, at: int, n: int) -> bytes:
    if at + n > len(body):
        raise MalformedAnswer(f"an answer cut short: {n} bytes wanted at {at} of {len(body)}")
    return bytes(body[at:at + n])


def _array(body: memoryview, at: int, dtype: np.dtype, h: int, w: int) -> np.ndarray:
    """A (h, w) view of the body at `at` (not a copy), after checking it lies inside."""
    n = h * w
    if at + n * dtype.itemsize > len(body):
        raise MalformedAnswer(f"an answer cut short: a {h}x{w} array at {at} of {len(body)} bytes")
    return np.frombuffer(body, dtype, n, at).reshape(h, w)


def _end(body: memoryview, at: int) -> None:
    if at != len(body):
        raise MalformedAnswer(f"an answer of {len(body)} bytes where {at} were expected")


class AnswerReader:
    """Frames from one worker's answer pipe, read into one reused buffer. Owns the descriptor.

    `next` returns the next whole frame as (job id, tag, body); the body is a view into the
    buffer, valid until the next call, so parse it (`parse` copies) before asking again."""

    def __init__(self, fd: int, capacity: int = BUFFER_BYTES):
        self.fd = fd
        self.max_body = capacity - FRAME.size
        self._buf = bytearray(capacity)
        self._view = memoryview(self._buf)
        self._start = self._end = 0  # unread bytes: _buf[_start:_end]
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def fileno(self) -> int:
        return self.fd

    def next(self, timeout: float) -> tuple[int, int, memoryview]:
        """The next frame. AnswerTimeout if none is whole within `timeout` seconds; EOFError
        when the worker closed its end (exited, killed) first; MalformedAnswer for a frame
        longer than the buffer holds (`max_body`)."""
        deadline = None
        while True:
            have = self._end - self._start
            if have >= FRAME.size:
                length, job_id, tag = FRAME.unpack_from(self._buf, self._start)
                if length > self.max_body:
                    raise MalformedAnswer(f"an answer of {length} bytes (at most {self.max_body})")
                whole = FRAME.size + length
                if have >= whole:
                    body = self._view[self._start + FRAME.size:self._start + whole]
                    self._start += whole
                    return job_id, tag, body
                wanted = whole
            else:
                wanted = FRAME.size
            if self._start + wanted > len(self._buf):  # move the partial frame to the front
                self._buf[:have] = self._buf[self._start:self._end]
                self._start, self._end = 0, have
            elif have == 0:
                self._start = self._end = 0
            if deadline is None:
                deadline = time.monotonic() + timeout
            wait_ms = max(0, int((deadline - time.monotonic()) * 1000) + 1)
            if not self._poll.poll(wait_ms):
                if time.monotonic() >= deadline:
                    raise AnswerTimeout(f"no answer within {timeout:g} s")
                continue
            got = os.readv(self.fd, [self._view[self._end:]])
            if got == 0:
                raise EOFError("the worker closed its answer pipe")
            self._end += got

    def close(self) -> None:
        """Close the descriptor (once: a second call must not close a number reused since)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            self._poll.unregister(fd)
            os.close(fd)
