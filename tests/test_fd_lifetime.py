"""No write after the descriptor is closed: the library's threads and deferred writes.

Seen as a flaky test: a later test's ``subprocess.run(["losetup", ...])`` read about a
hundred random-looking bytes before "/dev/loop0" from its stdout pipe.  A compressing CPIO
whose output failed (ENOSPC, EFBIG) left its gzip/xz compressor unfinished; when the sink
was garbage collected, the compressor's close() wrote its last block and trailer into the
output's descriptor number, long closed and by then the pipe of that subprocess.  A CPIO
writer dropped before finish() had the same fault with up to four queued chunks, and a
signal handler raising SystemExit while the hybrid joined its ESP thread let the output
close under the thread's writes.

Each test makes the fault real (an RLIMIT_FSIZE the kernel enforces, a real signal, real
threads), then gives the closed numbers to a file or pipe of its own, as the next
``open()`` or ``pipe()`` of the process would, and checks that nothing arrives there.
"""
from __future__ import annotations

import fcntl
import gc
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sysexport import CPIO, ISO9660Hybrid
from sysexport.cpio.sink import zstd_module
from sysexport.data import PROGRESS
from sysexport import hybrid as hybrid_mod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20
REG = 0o100644
COMPRESSIONS = ["gzip", "xz"] + (["zstd"] if zstd_module is not None else [])


def random_file(path: Path, size: int, seed: int = 0) -> Path:
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def sysexport_threads(before: list[threading.Thread] = []) -> list[threading.Thread]:
    """The sysexport threads running now (they have a frame: is_alive() may say False of a
    running thread whose join was interrupted), less those in ``before``."""
    running = sys._current_frames()
    return [t for t in threading.enumerate() if t.name.startswith("sysexport-") and t.ident in running
            and t not in before]


def wait_for_threads(before: list[threading.Thread], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while sysexport_threads(before) and time.monotonic() < deadline:
        time.sleep(0.01)


class Squatter:
    """Takes the lowest free descriptor numbers (where a closed output's numbers are) with
    duplicates of one pipe's write end; :meth:`received` says what was written there."""

    def __init__(self, count: int = 16) -> None:
        self.read_fd, write_fd = os.pipe()
        self.fds = [write_fd] + [os.dup(write_fd) for _ in range(count)]

    def received(self) -> bytes:
        for fd in self.fds:
            os.close(fd)
        fcntl.fcntl(self.read_fd, fcntl.F_SETFL, os.O_NONBLOCK)
        try:
            return os.read(self.read_fd, 1 << 20)
        except BlockingIOError:
            return b""
        finally:
            os.close(self.read_fd)


CHILD_EFBIG = r"""
import gc, os, resource, sys, threading
sys.path.insert(0, sys.argv[1])
from sysexport import CPIO
from sysexport.errors import OutputError
target, data_path, compress = sys.argv[2], sys.argv[3], sys.argv[4]
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))   # EFBIG past 1 MiB
c = CPIO(target, compress=compress, default_time=0)
c.add({"name": "big.bin", "mode": 0o100644, "data_path": data_path})
try:
    c.finish()
    sys.exit("finish() passed the file size limit")
except OutputError as e:
    err = e
assert "EFBIG" in str(err), str(err)
r, w = os.pipe()                      # the closed output's numbers, as subprocess.run's pipe
squat = [w] + [os.dup(w) for _ in range(16)]
alive = [t.name for t in threading.enumerate() if t.name.startswith("sysexport-")]
del err, c
gc.collect()                          # the sink and its compressor go now
for fd in squat:
    os.close(fd)
got = os.read(r, 1 << 20)
print(f"{len(got)} {alive}")
"""


@pytest.mark.parametrize("compress", COMPRESSIONS)
def test_compressor_of_a_failed_output_writes_nothing_later(tmp_path, compress):
    """The compressing thread fails (EFBIG from the kernel); the error reaches finish(), the
    thread is gone, and the unfinished compressor, collected later, writes nothing into the
    descriptor numbers the output had."""
    data = random_file(tmp_path / "big.bin", 3 * MIB)
    target = tmp_path / "out" / "initrd.img"
    target.parent.mkdir()
    p = subprocess.run([sys.executable, "-c", CHILD_EFBIG, ROOT, str(target), str(data), compress],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "[]"], f"bytes written after close, threads left: {p.stdout}"
    assert "Exception ignored" not in p.stderr, p.stderr
    assert os.listdir(target.parent) == []


@pytest.mark.parametrize("compress", COMPRESSIONS)
def test_dropped_compressing_writer_stops_before_its_output_closes(tmp_path, compress):
    """A CPIO dropped before finish() with chunks still queued for its compressor: the
    thread is stopped when the writer is collected, before the temporary output is closed,
    and nothing reaches the numbers the output had."""
    data = random_file(tmp_path / "big.bin", 8 * MIB)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = sysexport_threads()
    c = CPIO(str(out_dir / "initrd.img"), compress=compress, default_time=0, window_entries=1)
    c.add({"name": "a.bin", "mode": REG, "data_path": str(data)})
    c.add({"name": "b.bin", "mode": REG, "data_path": str(data)})    # a.bin is queued now
    del c
    gc.collect()
    squat = Squatter()
    assert sysexport_threads(before) == []
    time.sleep(0.5)                     # what an outliving thread would write, it writes now
    assert squat.received() == b""
    assert os.listdir(out_dir) == []


@pytest.mark.parametrize("compress", COMPRESSIONS)
def test_source_error_with_compression_stops_the_thread(tmp_path, compress):
    """An error in the adding thread (a source shrank) with the compressor busy: the thread
    is joined and its compressor closed before finish() raises; nothing comes later."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        random_file(src / f"f{i}.bin", 3 * MIB, seed=i)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = sysexport_threads()
    c = CPIO(str(out_dir / "initrd.img"), compress=compress, default_time=0)
    c.add_tree(str(src))
    os.truncate(src / "f2.bin", 100)
    with pytest.raises(Exception, match="f2.bin") as e:
        c.finish()
    squat = Squatter()
    assert sysexport_threads(before) == []
    del e, c
    gc.collect()
    assert squat.received() == b""
    assert os.listdir(out_dir) == []


class Stop(BaseException):
    """What a signal handler raises (a SIGTERM handler's sys.exit() raises SystemExit)."""


def test_join_uninterrupted_waits_through_a_handlers_exception():
    """A real signal whose handler raises while the main thread joins the ESP writer: the
    join goes on until the thread is done, then the exception is raised.  (Python 3.11's
    Thread.join, so interrupted, marks the running thread stopped: is_alive() says False.)"""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set in the main thread")  # pragma: no cover
    done, finished = threading.Event(), threading.Event()

    def work() -> None:
        time.sleep(0.6)
        finished.set()
        done.set()

    worker = threading.Thread(target=work, name="sysexport-test-worker")

    def handler(signum, frame):
        raise Stop()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        worker.start()
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Stop):
            hybrid_mod._join_uninterrupted(worker, done)
        assert finished.is_set() and not worker.is_alive()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        worker.join()


def _in_join(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "_join_uninterrupted":
            return True
        frame = frame.f_back
    return False


def test_hybrid_interrupted_while_its_esp_thread_writes(tmp_path, monkeypatch):
    """ISO9660Hybrid.finish(): SIGUSR1 arrives (its handler raises SystemExit, as a
    SIGTERM handler calling sys.exit() does) while the main thread waits for the ESP
    thread; the ESP's remaining file data must still go into the image's own descriptor,
    never into a file that takes its number after the output is closed.  (The thread
    path, as a process with threads of its own gets it; the forked ESP writer's version
    is in tests/test_parallel_write.py.)"""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set in the main thread")  # pragma: no cover
    monkeypatch.setenv("SYSEXPORT_WRITE_PROCESSES", "0")
    main = threading.main_thread()
    squatted = threading.Event()
    state = {"sent": False}
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    img = ISO9660Hybrid(str(out_dir / "hybrid.img"))
    for i in range(6):
        img.add({"name": f"f{i}.bin", "mode": REG, "data_path": str(random_file(tmp_path / f"f{i}.bin", MIB, i))})

    def hook(n: int) -> None:
        if threading.current_thread().name != "sysexport-esp-write" or state["sent"]:
            return
        state["sent"] = True
        deadline = time.monotonic() + 30
        while not _in_join(main) and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(main.ident or 0, signal.SIGUSR1)
        squatted.wait(1.0)              # without the fix: the output is closed and taken now

    def handler(signum, frame):
        raise SystemExit(143)

    before = sysexport_threads()
    old = signal.signal(signal.SIGUSR1, handler)
    occupant = tempfile.TemporaryFile(dir=tmp_path)
    dups: list[int] = []
    token = PROGRESS.set(hook)
    try:
        with pytest.raises(SystemExit):
            img.finish()
        dups = [os.dup(occupant.fileno()) for _ in range(16)]     # the numbers the output had
        squatted.set()
        wait_for_threads(before)
        assert state["sent"]
        assert os.fstat(occupant.fileno()).st_size == 0, "the ESP thread wrote after the output was closed"
        assert os.listdir(out_dir) == []
    finally:
        PROGRESS.reset(token)
        signal.signal(signal.SIGUSR1, old)
        squatted.set()
        for fd in dups:
            os.close(fd)
        occupant.close()
