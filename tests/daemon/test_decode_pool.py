"""Decode worker processes (SAFETY.md rule 22): real processes, real limits, real photos."""

from __future__ import annotations

import hashlib
import os
import signal

import cv2
import numpy as np
import pytest

from dedupd.daemon import decode_wire
from dedupd.daemon.decode import decode_image
from dedupd.daemon.decode_job import DecodedFile
from dedupd.daemon.decode_pool import ProcessDecoder, ThreadDecoder
from dedupd.daemon.errors import FileProblem
from dedupd.daemon.fingerprinting import check_pair, fingerprint_file
from dedupd.daemon.verify import THUMB_SIDE, thumbnail
from dedupd.daemon.walk import FileRef
from dedupd.kernels import fingerprint, fingerprint_area
from dedupd.kernels.errors import UnknownAlgorithm
from testimages import encode, photo, resize, write

LIMIT = 100_000_000


def ref(path) -> FileRef:
    return FileRef.from_stat(str(path), os.stat(path))


@pytest.fixture(scope="module")
def pool():
    with ProcessDecoder(2, LIMIT, timeout=30) as p:
        yield p


def test_workers_give_the_records_threads_give(pool, tmp_path):
    paths = [write(tmp_path / f"{n}.{ext}", encode(photo(n), f".{ext}")) for n, ext in
             [("astronaut", "jpg"), ("coffee", "png"), ("chelsea", "webp")]]
    for p in paths:
        via_worker = fingerprint_file(ref(p), "lbph", LIMIT, pool)
        in_thread = fingerprint_file(ref(p), "lbph", LIMIT, ThreadDecoder(LIMIT))
        assert via_worker.record == in_thread.record and via_worker.record.state == "ok"
        assert np.array_equal(via_worker.variants, in_thread.variants)
        assert np.array_equal(via_worker.thumb, in_thread.thumb)
    a, b = (fingerprint_file(ref(p), "lbph", LIMIT, pool).record for p in paths[:2])
    assert check_pair(a, a, None, None, LIMIT, pool)  # thumbnails re-read by a worker
    assert not check_pair(a, b, None, None, LIMIT, pool)


@pytest.mark.parametrize("algo", ["lbph", "phash", "dhash"])
def test_a_worker_sends_the_area_sums_and_the_thumbnail_never_the_image(pool, tmp_path, algo):
    """SAFETY.md rule 22: what comes back of a 1600x2400 PNG is a few tens of KB whatever
    its size, and it fingerprints exactly as the decoded picture itself would."""
    big = write(tmp_path / "big.png", encode(resize(photo("coffee"), 4), ".png"))
    gray = decode_image(big.read_bytes()).gray
    assert gray.shape == (1600, 2400)
    got = pool.decode(str(big), algo)
    assert isinstance(got, DecodedFile) and got.area.shape == gray.shape
    assert len(decode_wire.decoded(0, got)) < 100_000  # what crosses the pipe (the grey image alone is 3.8 MB)
    assert max(got.thumb.shape) == THUMB_SIDE and np.array_equal(got.thumb, thumbnail(gray))
    want = fingerprint(gray, algo)
    have = fingerprint_area(got.area, algo)
    assert (have.code.tobytes(), have.variants.tobytes(), have.quality) == (want.code.tobytes(), want.variants.tobytes(), want.quality)
    in_thread = ThreadDecoder(LIMIT).decode(str(big), algo)
    assert in_thread.area.sums.keys() == got.area.sums.keys()
    assert all(np.array_equal(in_thread.area.sums[k], got.area.sums[k]) for k in got.area.sums)


def test_an_unknown_algorithm_never_reaches_a_worker(pool, tmp_path):
    p = write(tmp_path / "a.jpg", encode(photo("coffee"), ".jpg"))
    pids = pool.pids()
    for decoder in (pool, ThreadDecoder(LIMIT)):
        with pytest.raises(UnknownAlgorithm):
            decoder.decode(str(p), "md5")
    assert pool.pids() == pids and fingerprint_file(ref(p), "lbph", LIMIT, pool).record.state == "ok"


def test_problems_come_back_typed_and_the_worker_lives_on(pool, tmp_path):
    broken = write(tmp_path / "cut.jpg", encode(photo("coffee"), ".jpg")[:2000])
    bomb = write(tmp_path / "bomb.png", encode(photo("coffee"), ".png"))
    pids = pool.pids()
    assert fingerprint_file(ref(broken), "lbph", LIMIT, pool).record.error == "truncated"
    small = ProcessDecoder(1, 1000)  # a pixel limit below the photo: refused from the header
    try:
        assert fingerprint_file(ref(bomb), "lbph", 1000, small).record.error == "too_large"
    finally:
        small.close()
    assert pool.pids() == pids


def test_workers_run_with_the_opencv_pixel_limit_and_an_address_space_cap(pool):
    for pid in pool.pids():
        env = dict(v.split(b"=", 1) for v in open(f"/proc/{pid}/environ", "rb").read().split(b"\0") if b"=" in v)
        assert env[b"OPENCV_IO_MAX_IMAGE_PIXELS"] == str(LIMIT).encode()
        limits = open(f"/proc/{pid}/limits").read()
        cap = next(line for line in limits.splitlines() if line.startswith("Max address space")).split()[3]
        assert cap != "unlimited" and int(cap) < 16 * LIMIT + (4 << 30)


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="pipe sizes are a Linux feature")
def test_the_answer_pipes_hold_a_whole_answer(pool, tmp_path):
    """A square photo's answer (sums + a 256x256 thumbnail, ~80 KB) fits the answer pipe, so a
    worker never blocks half-way through writing it (Linux's default pipe is 64 KB)."""
    import fcntl

    square = np.ascontiguousarray(photo("coffee")[:400, :400])
    p = write(tmp_path / "a.png", encode(square, ".png"))
    answer = len(decode_wire.decoded(0, pool.decode(str(p), "lbph")))
    assert answer > 64 << 10
    for worker in pool._workers:
        assert fcntl.fcntl(worker.answers.fileno(), fcntl.F_GETPIPE_SZ) >= answer


def test_a_stuck_decode_is_stopped_and_its_worker_replaced(tmp_path):
    big = write(tmp_path / "big.jpg", encode(resize(photo("astronaut"), 10), ".jpg", 95))  # 26 MP
    fine = write(tmp_path / "fine.jpg", encode(photo("coffee"), ".jpg"))
    with ProcessDecoder(1, LIMIT, timeout=0.002) as p:
        first = p.pids()
        assert fingerprint_file(ref(big), "lbph", LIMIT, p).record.error == "decode_timeout"
        assert p.stats["decode_timeout"] == 1
        p.timeout = 30
        assert fingerprint_file(ref(fine), "lbph", LIMIT, p).record.state == "ok"
        assert p.pids() != first and p.stats["started"] == 2


def test_a_decode_over_the_memory_cap_fails_in_the_worker(tmp_path):
    big = write(tmp_path / "big.png", encode(resize(photo("chelsea"), 6), ".png"))  # 1800x2700x3 = 15 MB of pixels
    fine = write(tmp_path / "fine.jpg", encode(photo("coffee"), ".jpg"))
    with ProcessDecoder(1, LIMIT, headroom=4 << 20) as p:
        assert fingerprint_file(ref(big), "lbph", LIMIT, p).record.error in ("decode_memory", "decode_crash")
        assert fingerprint_file(ref(fine), "lbph", LIMIT, p).record.state == "ok"


def test_a_worker_dying_mid_file_costs_that_file_only(tmp_path, monkeypatch):
    paths = [write(tmp_path / f"{n}.jpg", encode(photo(n), ".jpg")) for n in ("astronaut", "coffee", "chelsea")]
    monkeypatch.setenv("DEDUPD_FAILPOINT", "decode_worker.job")  # every worker SIGKILLs itself at its first job
    with ProcessDecoder(1, LIMIT, batch=3) as p:
        results = [fingerprint_file(ref(path), "lbph", LIMIT, p) for path in paths]
        assert [r.record.error for r in results] == ["decode_crash"] * 3
        assert p.stats["decode_crash"] == 3


def test_a_worker_topped_up_from_the_queue_answers_every_file_as_its_own(tmp_path):
    """Many files queued at once on one worker (two in flight at a time, the pipe topped up
    after each answer): every answer goes to the file it belongs to."""
    names = ["astronaut", "coffee", "chelsea", "camera", "rocket"]
    paths = [write(tmp_path / f"{n}{k}.png", encode(np.roll(photo(n), 7 * k, axis=1), ".png"))
             for k in range(3) for n in names]
    with ProcessDecoder(1, LIMIT, batch=2) as p:
        futures = [p.submit("decode", (str(path), LIMIT, "lbph")) for path in paths]
        got = [f.result(timeout=120) for f in futures]
    for path, answer in zip(paths, got):
        assert answer.content_hash == hashlib.sha256(path.read_bytes()).digest()


def test_files_in_flight_behind_a_crash_go_back_in_line(tmp_path, monkeypatch):
    """Every worker dies at its first job; with files queued behind it in the pipe, each file
    is still tried on a worker of its own and counted once."""
    paths = [write(tmp_path / f"{n}.jpg", encode(photo(n), ".jpg")) for n in ("astronaut", "coffee", "chelsea", "camera")]
    monkeypatch.setenv("DEDUPD_FAILPOINT", "decode_worker.job")
    with ProcessDecoder(1, LIMIT, batch=2) as p:
        futures = [p.submit("decode", (str(path), LIMIT, "lbph")) for path in paths]
        kinds = []
        for f in futures:
            with pytest.raises(FileProblem) as info:
                f.result(timeout=120)
            kinds.append(info.value.kind)
        assert kinds == ["decode_crash"] * 4 and p.stats["decode_crash"] == 4


def test_the_daemon_side_survives_a_killed_worker(pool, tmp_path):
    p = write(tmp_path / "a.jpg", encode(photo("astronaut"), ".jpg"))
    killed = pool.pids()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    for pid in pool.pids():
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead for sure before the next file
    results = [fingerprint_file(ref(p), "lbph", LIMIT, pool) for _ in range(4)]
    assert all(r.record.state == "ok" for r in results)  # a worker that died idle is replaced first
    assert not set(pool.pids()) & set(killed)


def test_a_malformed_answer_stops_its_worker_and_costs_that_file_only(tmp_path, monkeypatch):
    """What a worker writes is parsed as data (decode_wire); one that writes anything else is
    taken for compromised: stopped and replaced, its file counted as decode_crash."""
    paths = [write(tmp_path / f"{n}.jpg", encode(photo(n), ".jpg")) for n in ("astronaut", "coffee")]
    real_parse = decode_wire.parse

    def parse(tag, body):
        value = real_parse(tag, body)
        if isinstance(value, DecodedFile) and value.size == paths[0].stat().st_size:
            raise decode_wire.MalformedAnswer("a test's malformed answer")
        return value

    monkeypatch.setattr(decode_wire, "parse", parse)
    with ProcessDecoder(1, LIMIT) as p:
        first = p.pids()
        bad, good = (fingerprint_file(ref(path), "lbph", LIMIT, p) for path in paths)
        assert bad.record.error == "decode_crash" and p.stats["decode_crash"] == 1
        assert good.record.state == "ok" and p.pids() != first
