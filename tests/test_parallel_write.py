"""The hybrid's ESP written by a forked child (sysexport/parallel.py, issue 16).

Both paths (a child process; the ESP thread when ``SYSEXPORT_WRITE_PROCESSES=0`` or when
forking is not safe) must give byte-identical images, checked by fsck.fat, mtools, bsdtar
and xorriso.  The faults are real: a source removed or shrunk between plan() and write(),
the child killed by SIGKILL, SIGTERM / SIGHUP / SIGINT sent to the building process or to
its whole process group, a signal handler's SystemExit while the parent waits.  After
each: no output, no child process left, no sysexport thread left (conftest), nothing
written into the descriptor numbers the output had.
"""
from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import cut, default_signals, need, run, sha256_file, tree_digest
from helpers.hybrid_checks import gpt_partitions
from sysexport import ISO9660Hybrid
from sysexport import parallel
from sysexport.data import PROGRESS, FileObjData
from sysexport.errors import InternalError, OutputError, SourceError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20
REG = stat.S_IFREG | 0o644
ENV = "SYSEXPORT_WRITE_PROCESSES"


@pytest.fixture(autouse=True)
def runner_threads_ignored(monkeypatch):
    """pytest-xdist's execnet keeps an I/O thread of its own in each worker (a raw
    ``_thread``, outside ``threading``'s count, seen in /proc/self/task): the test runner's,
    which neither the child nor the image touch.  The check still sees every thread
    started after this point."""
    runner = set(os.listdir("/proc/self/task")) - {str(threading.get_native_id())}
    monkeypatch.setattr(parallel, "_os_threads", lambda: len(set(os.listdir("/proc/self/task")) - runner))


def children() -> set[int]:
    """The pids of this process's children (every thread's), from /proc."""
    found: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                found.update(int(p) for p in f.read().split())
        except OSError:
            pass
    return found


def make_tree(root: Path, small: int = 300, seed: int = 0) -> Path:
    """Small files (batched by the FAT writer), a few larger ones, an empty one, a sparse
    one, a hard link and a symlink, in nested directories."""
    rnd = random.Random(seed)
    for i in range(small):
        d = root / f"d{i % 7}" / f"e{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file-{i}.txt").write_bytes(rnd.randbytes(rnd.randrange(0, 5000)))
    (root / "big").mkdir()
    for i, size in enumerate((70_000, 3 * MIB + 17, 9 * MIB)):
        (root / "big" / f"b{i}.bin").write_bytes(rnd.randbytes(size))
    (root / "empty").write_bytes(b"")
    with open(root / "sparse.raw", "wb") as f:
        f.write(rnd.randbytes(5000))
        f.truncate(32 * MIB)
        f.seek(32 * MIB - 100)
        f.write(b"end" * 33)
    os.link(root / "big" / "b0.bin", root / "hardlink.bin")
    os.symlink("big/b1.bin", root / "link")
    return root


def build(tree: Path, target: Path, monkeypatch: pytest.MonkeyPatch, processes: bool) -> parallel.ChildUsage | None:
    """Build a hybrid of ``tree`` in this process by one path; the child's usage (None for
    the thread path)."""
    monkeypatch.setenv(ENV, "1" if processes else "0")
    before = parallel.last_child
    img = ISO9660Hybrid(str(target))
    img.add_tree(str(tree))
    img.finish()
    after = parallel.last_child
    if processes:
        assert after is not None and after is not before, "the forked path was not taken"
        assert after.pid not in children()
        return after
    assert after is before, "SYSEXPORT_WRITE_PROCESSES=0 still forked"
    return None


def test_both_paths_give_the_same_bytes(tmp_path, sde, monkeypatch):
    """Fork and thread: the same image, byte for byte; fsck.fat, mtools, bsdtar and xorriso
    read every file of it."""
    need("fsck.fat", "mcopy", "bsdtar", "xorriso")
    tree = make_tree(tmp_path / "tree")
    forked, threaded = tmp_path / "forked.img", tmp_path / "threaded.img"
    usage = build(tree, forked, monkeypatch, processes=True)
    build(tree, threaded, monkeypatch, processes=False)
    assert sha256_file(forked) == sha256_file(threaded)
    assert usage is not None and usage.max_rss_bytes > 0 and os.WIFEXITED(usage.status)
    files = tree_digest(tree)
    (esp,) = gpt_partitions(str(forked))
    esp_img = cut(forked, esp[0], esp[1], tmp_path / "esp.img")
    run(["fsck.fat", "-n", "-V", esp_img])
    (tmp_path / "fat").mkdir()
    run(["mcopy", "-s", "-n", "-i", esp_img, "::*", str(tmp_path / "fat")], env_extra={"MTOOLS_SKIP_CHECK": "1"})
    assert tree_digest(tmp_path / "fat") == files        # the symlink is the ISO's alone
    (tmp_path / "iso").mkdir()
    run(["bsdtar", "-xf", str(forked), "-C", str(tmp_path / "iso")])
    assert tree_digest(tmp_path / "iso") == files
    run(["xorriso", "-osirrox", "on", "-indev", str(forked), "-extract", "/", str(tmp_path / "xorriso")])
    assert tree_digest(tmp_path / "xorriso") == files


def test_cli_build_both_paths(tmp_path):
    """``sysexport build`` (a fresh process: the fork path by default) and with
    SYSEXPORT_WRITE_PROCESSES=0: the same bytes."""
    tree = make_tree(tmp_path / "tree", small=100, seed=3)
    images = []
    for value in ("", "0"):
        target = tmp_path / f"out{value or 'fork'}.img"
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", PYTHONPATH=ROOT, **{ENV: value})
        p = subprocess.run([sys.executable, "-m", "sysexport", "build", str(tree), "-o", str(target), "-q"],
                           capture_output=True, env=env, timeout=300)
        assert p.returncode == 0 and not p.stderr, p.stderr
        images.append(sha256_file(target))
    assert images[0] == images[1]


def test_mkisofs_hybrid_both_paths(tmp_path):
    """The mkisofs front end's hybrid goes through the same write(): the same bytes either way."""
    tree = make_tree(tmp_path / "tree", small=50, seed=4)
    images = []
    for value in ("", "0"):
        target = tmp_path / f"m{value or 'fork'}.iso"
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", PYTHONPATH=ROOT, **{ENV: value})
        p = subprocess.run([sys.executable, "-m", "sysexport", "mkisofs", "--sysexport-hybrid", "-R", "-J",
                            "-o", str(target), str(tree)], capture_output=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr
        images.append(sha256_file(target))
    assert images[0] == images[1]


# --------------------------------------------------------------------------- when to fork
def test_fork_refusal_reasons(tmp_path, monkeypatch):
    assert parallel.fork_refusal() is None
    monkeypatch.setenv(ENV, "0")
    assert parallel.fork_refusal() == f"{ENV}=0"
    monkeypatch.delenv(ENV)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert parallel.fork_refusal() == "other threads are running"
    finally:
        stop.set()
        t.join()
    import _thread
    held = _thread.allocate_lock()
    held.acquire()
    left = _thread.allocate_lock()
    left.acquire()

    def raw() -> None:                                  # a C library's thread, as Python sees it: not at all
        held.acquire()
        left.release()

    _thread.start_new_thread(raw, ())
    try:
        assert threading.active_count() == 1
        assert parallel.fork_refusal() == "other threads are running"
    finally:
        held.release()
        left.acquire()
    deadline = time.monotonic() + 10
    while parallel.fork_refusal() is not None and time.monotonic() < deadline:
        time.sleep(0.01)                                # the raw thread has ended
    assert parallel.fork_refusal() is None
    import io
    from sysexport.remaster.data import ViewFileData
    with open(tmp_path / "f", "wb+") as f:
        f.write(b"x" * 10)
        assert parallel.fork_refusal([FileObjData(f, 10)]) is None       # copied at offsets

        class Reader:                                   # seek and read only: no descriptor
            name = "a reader"

            def seek(self, pos):
                return f.seek(pos)

            def read(self, n):
                return f.read(n)

        assert parallel.fork_refusal([FileObjData(Reader(), 10)]) == "a reader is read through a shared file position"

        class View:
            name = "iso9660"
        assert "shared file position" in (parallel.fork_refusal([ViewFileData(View(), "/z.txt", 3)]) or "")
    assert parallel.fork_refusal([FileObjData(io.BytesIO(b"abc"), 3)]) is None
    # In a forked child (the caller's own fork): never again.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                        # pragma: no cover (the child)
        try:
            os.write(w, (parallel.fork_refusal() or "none").encode())
        finally:
            os._exit(0)
    os.close(w)
    answer = os.read(r, 200).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert answer == "this process is a forked child"


def test_a_caller_with_threads_gets_the_thread_path(tmp_path, sde, monkeypatch):
    """A library caller running a thread of its own: the ESP is written by the
    sysexport-esp-write thread (seen by the progress callback), no child forked."""
    tree = make_tree(tmp_path / "tree", small=20)
    seen: set[str] = set()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    token = PROGRESS.set(lambda n: seen.add(threading.current_thread().name))
    before = parallel.last_child
    try:
        img = ISO9660Hybrid(str(tmp_path / "t.img"))
        img.add_tree(str(tree))
        img.finish()
    finally:
        PROGRESS.reset(token)
        stop.set()
        other.join()
    assert parallel.last_child is before
    assert "sysexport-esp-write" in seen


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("fault", ["vanished", "shrunk"])
def test_a_source_error_in_the_child_is_the_same_error(tmp_path, sde, monkeypatch, fault):
    """A source the ESP reads vanishes (ENOENT) or shrinks between plan() and write():
    both paths raise the same SourceError with the same message; nothing is left."""
    tree = make_tree(tmp_path / "tree", small=30)
    victim = tree / "big" / "b2.bin"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    errors = []
    for processes in (True, False):
        monkeypatch.setenv(ENV, "1" if processes else "0")
        img = ISO9660Hybrid(str(out_dir / "x.img"))
        img.add_tree(str(tree))
        before = parallel.last_child
        saved = victim.read_bytes()
        if fault == "vanished":
            victim.unlink()
        else:
            os.truncate(victim, 1000)
        try:
            with pytest.raises(SourceError) as e:
                img.finish()
        finally:
            victim.write_bytes(saved)
        errors.append((type(e.value), str(e.value), e.value.path, e.value.errno))
        assert (parallel.last_child is not before) == processes
        assert os.listdir(out_dir) == []
        assert not children()
    assert errors[0] == errors[1]
    assert str(victim) in errors[0][1]


class Unpicklable(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.callback = lambda: None        # a lambda does not pickle


def test_an_error_that_does_not_pickle_comes_back_as_text(tmp_path, sde, monkeypatch):
    """An exception the child cannot pickle: an InternalError with its type and text.  A
    bug's exception (not one of ours) comes back as its own type, with the child's
    traceback as a note."""
    from sysexport.vfat.writer import VFAT
    tree = make_tree(tmp_path / "tree", small=5)
    for exc, expect_type, text in ((Unpicklable("cannot travel"), InternalError, "Unpicklable: cannot travel"),
                                   (ZeroDivisionError("a bug"), ZeroDivisionError, "a bug")):
        def broken(self, fd, plan, exc=exc):
            raise exc
        monkeypatch.setattr(VFAT, "write", broken)
        img = ISO9660Hybrid(str(tmp_path / "x.img"))
        img.add_tree(str(tree))
        before = parallel.last_child
        with pytest.raises(expect_type) as e:
            img.finish()
        assert parallel.last_child is not before
        assert text in str(e.value)
        if expect_type is ZeroDivisionError:
            assert any("in the forked writer" in n and "broken" in n for n in getattr(e.value, "__notes__", []))
        assert not (tmp_path / "x.img").exists()


def test_a_killed_child_is_an_error_naming_the_signal(tmp_path, sde, monkeypatch):
    """SIGKILL to the child mid-write (the OOM killer's way): an OutputError naming
    SIGKILL; the parent does not hang; no output.  The child's ESP write reports its first
    bytes and then waits (a stand-in for a long write, so that it cannot finish before the
    kill); the parent's progress callback kills it on that first report."""
    from sysexport.data import report_progress
    from sysexport.vfat.writer import VFAT

    def long_write(self, fd, plan, *args, **kwargs):
        report_progress(1)
        time.sleep(120)
    monkeypatch.setattr(VFAT, "write", long_write)
    monkeypatch.setattr(parallel, "PROGRESS_STEP_BYTES", 1)       # the child sends its first byte's total
    tree = make_tree(tmp_path / "tree", small=30, seed=8)
    killed: list[int] = []

    def hook(n: int) -> None:
        if not killed:
            (pid,) = children()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    img = ISO9660Hybrid(str(tmp_path / "x.img"))
    img.add_tree(str(tree))
    token = PROGRESS.set(hook)
    started = time.monotonic()
    try:
        with pytest.raises(OutputError) as e:
            img.finish()
    finally:
        PROGRESS.reset(token)
    assert time.monotonic() - started < 60                 # the kill ended it, not the wait
    assert killed and "killed by SIGKILL (signal 9)" in str(e.value) and str(killed[0]) in str(e.value)
    assert not (tmp_path / "x.img").exists() and not children()


# --------------------------------------------------------------------------- progress
def test_progress_reaches_the_parent(tmp_path, sde, monkeypatch):
    """Every byte of file data is reported to the parent's callback, in this process, in
    steps (a 9 MiB file moves it more than once), the same total as the thread path."""
    tree = make_tree(tmp_path / "tree", small=40)
    totals = []
    for processes in (True, False):
        calls: list[tuple[int, int]] = []
        token = PROGRESS.set(lambda n: calls.append((os.getpid(), n)))
        try:
            build(tree, tmp_path / f"p{processes}.img", monkeypatch, processes)
        finally:
            PROGRESS.reset(token)
        assert {pid for pid, _ in calls} == {os.getpid()}
        totals.append(sum(n for _, n in calls))
        if processes:
            assert len(calls) >= 3, calls
    data = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
    # (the FAT has no hard links: hardlink.bin's bytes are counted, and stored, twice)
    assert totals[0] == totals[1] == data


def test_cli_progress_lines_from_the_child(tmp_path):
    """``sysexport build --progress`` off a terminal: the percentage lines up to 100%,
    from the forked child's totals."""
    tree = make_tree(tmp_path / "tree", small=10, seed=5)
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop(ENV, None)
    p = subprocess.run([sys.executable, "-m", "sysexport", "build", str(tree), "-o", str(tmp_path / "o.img"),
                        "--progress"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    percents = [line for line in p.stderr.splitlines() if "%" in line]
    assert len(percents) >= 3 and "100%" in percents[-1], p.stderr


# --------------------------------------------------------------------------- the child's hygiene
HYGIENE = r"""
import atexit, os, sys
sys.path.insert(0, {root!r})
from sysexport import ISO9660Hybrid, parallel
log = sys.argv[2]
def note(what):
    with open(log, "a") as f:
        f.write(f"{{what}} {{os.getpid()}}\n")
atexit.register(note, "atexit")
class Final:
    def __del__(self):
        note("finalizer")
cycle = Final()
cycle.me = cycle                      # only the cyclic collector frees it
del cycle
sys.stdout.write("unflushed-text\n")  # a pipe: block-buffered, still in the buffer
img = ISO9660Hybrid()
img.add_tree(sys.argv[3])
plan = img.plan()                     # write() itself: the collector is on (finish() pauses it)
fd = os.open(sys.argv[1] + "/x.img", os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, plan.device_size_bytes)
img.write(fd, plan)
os.close(fd)
assert parallel.last_child is not None
note(f"child={{parallel.last_child.pid}}")
import gc; gc.collect()
"""


def test_the_child_runs_no_atexit_handlers_flushes_nothing_and_finalizes_nothing(tmp_path):
    tree = make_tree(tmp_path / "tree", small=10)
    script = tmp_path / "hygiene.py"
    script.write_text(HYGIENE.format(root=ROOT))
    log = tmp_path / "log"
    p = subprocess.run([sys.executable, str(script), str(tmp_path), str(log), str(tree)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "unflushed-text\n"
    lines = log.read_text().splitlines()
    kinds = sorted(line.split()[0].split("=")[0] for line in lines)
    assert kinds == ["atexit", "child", "finalizer"], lines         # each once: none from the child
    assert len({line.split()[-1] for line in lines}) == 1, lines     # all from the parent's pid
    assert sha256_file(tmp_path / "x.img")


# --------------------------------------------------------------------------- signals
SIGNALLED = r"""
import os, sys, time
sys.path.insert(0, {root!r})
from sysexport import ISO9660Hybrid, parallel
from sysexport.data import PROGRESS
parallel.PROGRESS_STEP_BYTES = 1      # a frame per file: the child stops on a full pipe
target, tree, go = sys.argv[1], sys.argv[2], sys.argv[3]

def children():
    with open(f"/proc/self/task/{{os.getpid()}}/children") as f:
        return f.read().split()

def hook(n):
    if not hook.said:
        hook.said = True
        print("writing", children()[0], flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.02)
hook.said = False
PROGRESS.set(hook)
img = ISO9660Hybrid(target)
img.add_tree(tree)
img.finish()
print("finished", flush=True)
"""


def many_small(root: Path, count: int = 12000) -> Path:
    root.mkdir()
    for i in range(count):
        (root / f"f{i}").write_bytes(b"%d" % i)
    return root


def gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    return not os.path.exists(f"/proc/{pid}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["sigterm", "sighup", "sigint"])
@pytest.mark.parametrize("group", [False, True], ids=["process", "group"])
def test_a_signal_leaves_no_output_and_no_child(tmp_path, sig, group):
    """A signal to the building process (or its process group, as a terminal's Ctrl-C
    sends) while the child writes: the process ends by the signal, the child is gone
    (killed and reaped by the parent), the target is as it was and nothing is beside it."""
    tree = many_small(tmp_path / "tree")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "out.img"
    target.write_bytes(b"previous image")
    go = tmp_path / "go"
    script = tmp_path / "child.py"
    script.write_text(SIGNALLED.format(root=ROOT))
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    env.pop(ENV, None)
    p = subprocess.Popen([sys.executable, str(script), str(target), str(tree), str(go)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, preexec_fn=default_signals, start_new_session=group)
    try:
        assert p.stdout is not None
        line = p.stdout.readline().split()
        assert line[:1] == [b"writing"], (line, p.stderr.read() if p.stderr else b"")
        child = int(line[1])
        if group:
            os.killpg(p.pid, sig)
        else:
            p.send_signal(sig)
        assert gone(child), f"the writing child {child} outlived the signal"
        go.touch()                          # the progress callback returns (SIGINT unwinds through it)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == -sig, (p.returncode, p.stderr.read() if p.stderr else b"")
    assert os.listdir(out_dir) == ["out.img"] and target.read_bytes() == b"previous image"


def test_a_handlers_exit_while_waiting_kills_the_child_first(tmp_path, sde):
    """A SIGUSR1 handler raising SystemExit while the parent waits for the child: the
    child is killed and reaped before the output is cleaned up; nothing reaches the
    descriptor numbers the output had; no output."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set in the main thread")  # pragma: no cover
    tree = many_small(tmp_path / "tree", 3000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    img = ISO9660Hybrid(str(out_dir / "hybrid.img"))
    img.add_tree(str(tree))
    state: dict[str, int] = {}

    def hook(n: int) -> None:
        if "child" not in state:
            (state["child"],) = children()
            os.kill(os.getpid(), signal.SIGUSR1)

    def handler(signum, frame):
        raise SystemExit(143)

    old = signal.signal(signal.SIGUSR1, handler)
    occupant = tempfile.TemporaryFile(dir=tmp_path)
    dups: list[int] = []
    token = PROGRESS.set(hook)
    try:
        with pytest.raises(SystemExit):
            img.finish()
        assert not children() and state["child"] > 0
        dups = [os.dup(occupant.fileno()) for _ in range(16)]      # the numbers the output had
        time.sleep(0.3)
        assert os.fstat(occupant.fileno()).st_size == 0
        assert os.listdir(out_dir) == []
    finally:
        PROGRESS.reset(token)
        signal.signal(signal.SIGUSR1, old)
        for fd in dups:
            os.close(fd)
        occupant.close()


def test_a_remaster_forks_too(tmp_path, sde, monkeypatch):
    """A remaster's files are extents of the source image's open file, copied at explicit
    offsets: the ESP is written by a child as well, the image byte-identical to the thread
    path's, its files those of the source (bsdtar, and mtools on the ESP)."""
    need("bsdtar", "mcopy")
    tree = make_tree(tmp_path / "tree", small=20)
    src = tmp_path / "src.img"
    build(tree, src, monkeypatch, processes=True)
    images = []
    for processes in (True, False):
        monkeypatch.setenv(ENV, "1" if processes else "0")
        before = parallel.last_child
        ISO9660Hybrid.from_image(str(src), str(tmp_path / f"new{processes}.img")).finish()
        assert (parallel.last_child is not before) == processes
        images.append(sha256_file(tmp_path / f"new{processes}.img"))
    assert images[0] == images[1]
    (tmp_path / "x").mkdir()
    run(["bsdtar", "-xf", str(tmp_path / "newTrue.img"), "-C", str(tmp_path / "x")])
    assert tree_digest(tmp_path / "x") == tree_digest(tree)
    (esp,) = gpt_partitions(str(tmp_path / "newTrue.img"))
    esp_img = cut(tmp_path / "newTrue.img", esp[0], esp[1], tmp_path / "esp.img")
    (tmp_path / "fat").mkdir()
    run(["mcopy", "-s", "-n", "-i", esp_img, "::*", str(tmp_path / "fat")], env_extra={"MTOOLS_SKIP_CHECK": "1"})
    assert tree_digest(tmp_path / "fat") == tree_digest(tree)


def test_cli_build_takes_the_fork_path(tmp_path, sde, monkeypatch):
    """``sysexport build``'s sources (its own walk of the host tree) are all safe to read
    in a child: the build forks (a new source type that is not would silently lose the
    second core; this says so)."""
    from sysexport import cli
    monkeypatch.delenv(ENV, raising=False)
    tree = make_tree(tmp_path / "tree", small=30, seed=6)
    before = parallel.last_child
    try:
        cli.main(["build", str(tree), "-o", str(tmp_path / "b.img"), "-q"])
    except SystemExit as e:
        assert not e.code, e
    assert parallel.last_child is not before and parallel.last_child is not None
    assert os.WIFEXITED(parallel.last_child.status) and os.WEXITSTATUS(parallel.last_child.status) == 0


def test_a_progress_bar_on_a_terminal_still_forks(tmp_path, sde, monkeypatch):
    """tqdm draws the bar from update() alone (no monitor thread): a build showing a bar on a
    terminal is still the process's one thread, so its ESP is written by a child."""
    import pty
    from sysexport.progress import progress
    monkeypatch.delenv(ENV, raising=False)
    tree = make_tree(tmp_path / "tree", small=30, seed=7)
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as term:
            before = parallel.last_child
            with progress(1, "writing", "on", stream=term) as meter:
                assert meter is not None and meter._bar is not None     # a real tqdm bar
                img = ISO9660Hybrid(str(tmp_path / "bar.img"))
                img.add_tree(str(tree))
                img.finish()
            assert parallel.last_child is not before and parallel.last_child is not None
            assert os.WIFEXITED(parallel.last_child.status) and os.WEXITSTATUS(parallel.last_child.status) == 0
    finally:
        os.close(follower)
        os.close(leader)
