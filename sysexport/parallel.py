"""Two writes at once in two processes: a forked child beside the calling process (issue 16).

The hybrid's ISO metadata and its ESP (FAT, directories, every file's data) fill disjoint
byte ranges of one output.  Both are Python work that holds the GIL most of the time, so a
second *thread* gains little; after ``plan()`` everything they need is a value, so a
forked child can write one of them into the same descriptor (``pwrite`` at planned
offsets) while this process writes the other, and both cores work.

:func:`run_beside` does it; :func:`fork_refusal` says when it must not:

* ``os.fork`` is missing, or the environment variable :data:`WRITE_PROCESSES_ENV` is ``0``;
* another thread runs, a Python thread or a C library's (a lock it holds would stay held
  in the child forever): a library caller with threads of its own gets the thread path;
* this process is itself a forked child (of ours or of the caller's);
* a data source reads through a file position the two processes would share (a Python
  file object's ``seek`` and ``read``: each process's buffer would be wrong about the
  kernel's offset); sources that open their own descriptor, hold bytes, or read an open
  file only at explicit offsets (a remaster's extents) are safe.

The child, between ``fork`` and ``os._exit``:

* sets SIGINT, SIGTERM and SIGHUP to their default actions (so it never runs the parent's
  handlers, which remove the output's temporary file: the child never touches the output's
  name), asks the kernel to kill it when the parent dies (``PR_SET_PDEATHSIG``), and keeps
  the garbage collector off (no finalizer of the parent's objects runs in it);
* runs the work with :data:`sysexport.data.PROGRESS` sending running byte totals through a
  pipe (when the parent has a progress callback);
* sends the outcome (an exception pickled, or its text when it does not pickle) and leaves
  with ``os._exit``: no atexit handlers, no flush of inherited stdio buffers.

The parent runs its own work, then reads the pipe to its end and reaps the child.  On any
exception of its own (its work failed, Ctrl-C, a signal handler's ``SystemExit``) it
kills the child and reaps it before the exception goes on to the output's cleanup.  While
the child runs, a SIGTERM, SIGHUP or SIGINT whose action would end this process at once
(the default action, or :mod:`sysexport.output`'s handler that removes the temporary file
and re-raises the signal) first kills and reaps the child.
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import io
import os
import pickle
import signal
import struct
import sys
import threading
import time
import traceback
from contextvars import copy_context
from types import FrameType
from typing import Any, Callable, Iterable

from . import output as _output
from .data import PROGRESS, BytesData, DataSource, FileObjData, PathData
from .errors import InternalError, OutputError, SysExportError

WRITE_PROCESSES_ENV = "SYSEXPORT_WRITE_PROCESSES"
"""``0``: never fork, write the second part in a thread of this process (docs/guide.md)."""

PROGRESS_STEP_BYTES = 4 << 20
"""The child sends its running total after this many more bytes ..."""
PROGRESS_STEP_SECONDS = 0.1
"""... or after this long, whichever comes first."""

_FRAME = struct.Struct("<cQ")
"""A message on the pipe: a tag and a number.  ``P`` total: bytes written so far;
``K`` 0: done; ``E`` n: failed, n bytes of pickled exception follow; ``T`` n: failed, n
bytes of UTF-8 text follow (the exception did not pickle)."""

_GUARDED = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, n))
_PR_SET_PDEATHSIG = 1               # <linux/prctl.h>

_forked_child = False
"""True in any child forked from this process (ours, or the caller's os.fork)."""


def _mark_child() -> None:
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_child)


@dataclasses.dataclass(frozen=True)
class ChildUsage:
    """What the last child used (from ``wait4``): for measurements and tests."""

    pid: int
    max_rss_bytes: int
    """Its peak resident set (VmHWM; pages shared with the parent count)."""
    cpu_seconds: float
    """User plus system time."""
    status: int
    """The raw wait status."""


last_child: ChildUsage | None = None
"""The usage of the child :func:`run_beside` reaped last (None before the first)."""


def fork_refusal(sources: Iterable[DataSource | None] = ()) -> str | None:
    """Why :func:`run_beside` must not fork now (None: it may), ``sources`` being every data
    source either process will read (see the module docstring)."""
    if os.environ.get(WRITE_PROCESSES_ENV, "").strip() == "0":
        return f"{WRITE_PROCESSES_ENV}=0"
    if not hasattr(os, "fork"):
        return "os.fork is not available"
    if _forked_child:
        return "this process is a forked child"
    if threading.active_count() != 1 or threading.current_thread() is not threading.main_thread() \
            or _os_threads() > 1:
        return "other threads are running"
    for source in sources:
        if source is not None and not _own_position(source):
            return f"{source.describe()} is read through a shared file position"
    return None


def _os_threads() -> int:
    """The threads of this process the kernel knows (a C library's too: Python's count misses
    them), or 1 where /proc cannot say."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _own_position(source: DataSource) -> bool:
    """True when reading ``source`` in a forked child disturbs nothing the parent reads: a
    host path (each reader opens it), bytes, an in-memory file object, or an open file read
    only at explicit offsets (``copy_file_range``, ``splice``, ``pread``: a file object with
    a descriptor, and a remaster's extents of its source image).  A source read with
    ``seek`` and ``read`` (a remaster's zisofs file, a file object without a descriptor)
    is not: the child's seeks would move the kernel's offset under the parent's buffer."""
    if isinstance(source, (PathData, BytesData)):
        return True
    if isinstance(source, FileObjData):
        return isinstance(source.fileobj, io.BytesIO) or _has_descriptor(source.fileobj)
    remaster = sys.modules.get("sysexport.remaster.data")      # loaded when it made the source
    if remaster is not None:
        if isinstance(source, remaster.ExtentsData):            # FileObjData parts on its image
            return _has_descriptor(source.image)
        if isinstance(source, remaster.HostFileData):
            return _own_position(source.inner)
    return False


def _has_descriptor(fileobj: object) -> bool:
    """FileObjData.write_to copies by offsets exactly when its file object has a descriptor."""
    try:
        fd = fileobj.fileno()               # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    return isinstance(fd, int) and fd >= 0


def run_beside(child_work: Callable[[], None], parent_work: Callable[[], None], what: str) -> bool:
    """Run ``child_work`` in a forked child while this process runs ``parent_work``; return
    when both are done (True), or False at once when the fork itself failed (EAGAIN, ENOMEM:
    nothing ran; the caller does it another way).  ``what`` names the child's work in
    messages ("the ESP").  An exception of the child's work is raised here as the same type
    with the same message; the parent's own exception wins when both fail."""
    hook = PROGRESS.get()
    libc_prctl = _prctl()
    parent_pid = os.getpid()
    try:
        read_fd, write_fd = os.pipe()
    except OSError:                         # EMFILE, ENFILE: the caller does it in one process
        return False
    guard = _SignalGuard()
    # Blocked across the fork: a signal now is taken by the parent once the guard knows the
    # child (and kills it), or by the child once its handlers are the defaults.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _GUARDED)
    try:
        guard.install()
        try:
            pid = os.fork()
        except OSError:
            guard.restore()
            os.close(read_fd)
            os.close(write_fd)
            return False
        if pid == 0:
            _child_main(child_work, read_fd, write_fd, old_mask, hook is not None, libc_prctl, parent_pid)
        child = _Child(pid)
        guard.child = child
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)     # the parent's (the child never returns)
    try:
        os.close(write_fd)
        _parent_side(child, read_fd, hook, parent_work, what)
    finally:
        guard.restore()
    return True


def _parent_side(child: _Child, read_fd: int, hook: Callable[[int], None] | None,
                 parent_work: Callable[[], None], what: str) -> None:
    reader = _Reader(read_fd, hook)
    thread: threading.Thread | None = None
    late: BaseException | None = None
    try:
        if hook is not None:                # progress goes on while this process works
            context = copy_context()
            thread = threading.Thread(target=context.run, args=(reader.run,), name="sysexport-child-progress")
            thread.start()
        parent_work()
        if thread is None:
            reader.run()
        else:
            reader.done.wait()
    except BaseException:
        child.kill()
        raise
    finally:
        late = child.wait()
        if thread is not None:
            late = _join(thread, reader.done) or late
        os.close(read_fd)
    if late is not None:
        raise late
    reader.raise_outcome(child, what)


def _join(thread: threading.Thread, done: threading.Event) -> BaseException | None:
    """Join the progress reader (it ends at the pipe's end: the child is reaped by now)
    through any exception a signal handler raises; return the first such exception."""
    interrupted: BaseException | None = None
    while True:
        try:
            done.wait()
            thread.join()
            return interrupted
        except BaseException as e:
            interrupted = interrupted or e


# -- the child ---------------------------------------------------------------------------------
def _child_main(work: Callable[[], None], read_fd: int, write_fd: int, old_mask: Any, progress: bool,
                prctl: Callable[..., int] | None, parent_pid: int) -> None:
    """Everything the child does; it never returns (os._exit), whatever happens."""
    code = 70                               # EX_SOFTWARE: something failed before the outcome was sent
    try:
        for sig in _GUARDED:                # the parent's handlers (the output's, ours): default;
            if callable(signal.getsignal(sig)):     # an ignored signal stays ignored (nohup)
                signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        gc.disable()
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:      # the parent died before prctl: nobody waits for us
            os._exit(code)
        os.close(read_fd)
        sender = _ProgressSender(write_fd)
        PROGRESS.set(sender.add if progress else None)
        try:
            work()
        except BaseException as e:          # noqa: B902 - every outcome goes to the parent
            sender.flush()
            _send_error(write_fd, e)
            code = 1
        else:
            sender.flush()
            _write_all(write_fd, _FRAME.pack(b"K", 0))
            code = 0
    finally:
        os._exit(code)


class _ProgressSender:
    """The child's progress callback: a running total, sent now and then."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.total = 0
        self.sent = 0
        self.sent_at = time.monotonic()

    def add(self, n_bytes: int) -> None:
        self.total += n_bytes
        if self.total - self.sent >= PROGRESS_STEP_BYTES or time.monotonic() - self.sent_at >= PROGRESS_STEP_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.total != self.sent:
            _write_all(self.fd, _FRAME.pack(b"P", self.total))
            self.sent = self.total
        self.sent_at = time.monotonic()


def _send_error(fd: int, e: BaseException) -> None:
    """The exception, pickled (with the child's traceback as a note when it is not one of
    ours: a bug is then findable); its text when it does not pickle."""
    if not isinstance(e, (SysExportError, OSError)) and hasattr(e, "add_note"):
        e.add_note("in the forked writer:\n" + "".join(traceback.format_exception(e)).rstrip())
    try:
        blob = pickle.dumps(e)
        pickle.loads(blob)
        tag = b"E"
    except Exception:                       # noqa: B902 - any failure to pickle: send the text
        blob = f"{type(e).__name__}: {e}".encode("utf-8", "replace")
        tag = b"T"
    _write_all(fd, _FRAME.pack(tag, len(blob)) + blob)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _prctl() -> Callable[..., int] | None:
    """libc's prctl (looked up in the parent, so the child does no loading), or None."""
    try:
        func = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    func.restype = ctypes.c_int
    return func


# -- the parent --------------------------------------------------------------------------------
class _Child:
    """The forked child: killed at most until it is reaped (its pid is ours until then)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None

    def kill(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self) -> BaseException | None:
        """Reap the child, through any exception a signal handler raises meanwhile (the
        child is then killed); return the first such exception."""
        global last_child
        interrupted: BaseException | None = None
        while self.status is None:
            try:
                pid, status, usage = os.wait4(self.pid, 0)
            except ChildProcessError:       # reaped by someone else (a SIGCHLD handler)
                self.status = -1
                break
            except BaseException as e:      # noqa: B902 - a signal handler's exception
                interrupted = interrupted or e
                self.kill()
                continue
            if pid == self.pid:
                self.status = status
                last_child = ChildUsage(pid, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, status)
        return interrupted


class _Reader:
    """Reads the child's messages to the pipe's end: progress to ``hook``, then the outcome."""

    def __init__(self, fd: int, hook: Callable[[int], None] | None) -> None:
        self.fd = fd
        self.hook = hook
        self.done = threading.Event()
        self.reported = 0
        self.ok = False
        self.error: tuple[bytes, bytes] | None = None
        self.hook_error: BaseException | None = None

    def run(self) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return
                buf += chunk
                self._parse(buf)
        finally:
            self.done.set()

    def _parse(self, buf: bytearray) -> None:
        while len(buf) >= _FRAME.size:
            tag, value = _FRAME.unpack_from(buf)
            if tag in (b"E", b"T"):
                if len(buf) < _FRAME.size + value:
                    return
                self.error = (tag, bytes(buf[_FRAME.size:_FRAME.size + value]))
                del buf[:_FRAME.size + value]
                continue
            del buf[:_FRAME.size]
            if tag == b"K":
                self.ok = True
            elif tag == b"P" and self.hook is not None and self.hook_error is None:
                try:
                    self.hook(value - self.reported)
                except BaseException as e:  # noqa: B902 - raised by the parent after the child is done
                    self.hook_error = e
                self.reported = value

    def raise_outcome(self, child: _Child, what: str) -> None:
        """Raise what went wrong in the child (or in the progress callback), if anything."""
        if self.error is not None:
            tag, blob = self.error
            if tag == b"E":
                try:
                    err = pickle.loads(blob)
                except Exception as e:      # noqa: B902 - any unpickling failure
                    raise InternalError(f"writing {what} in a child process failed, and its error could not "
                                        f"be read back ({type(e).__name__}: {e})") from None
                if isinstance(err, BaseException):
                    raise err
                blob = repr(err).encode()
            raise InternalError(f"writing {what} in a child process failed: {blob.decode('utf-8', 'replace')}")
        if self.hook_error is not None:
            raise self.hook_error
        status = child.status
        if status is not None and status >= 0 and os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            raise OutputError(f"the process writing {what} (pid {child.pid}) was killed by {name} "
                              f"(signal {sig}); the image was not written")
        if not self.ok:
            code = os.WEXITSTATUS(status) if status is not None and status >= 0 and os.WIFEXITED(status) else None
            raise InternalError(f"the process writing {what} (pid {child.pid}) ended without saying it was done "
                                f"(exit status {code})")


class _SignalGuard:
    """While the child runs: a SIGTERM, SIGHUP or SIGINT that would end this process at once
    (default action, or the output's handler, which re-raises the signal) kills and reaps
    the child first.  Handlers that raise (KeyboardInterrupt, a SystemExit) are left as they
    are: the exception unwinds through :func:`run_beside`, which kills the child."""

    def __init__(self) -> None:
        self.child: _Child | None = None
        self.saved: dict[int, Any] = {}
        self.handler = self._on_signal

    def install(self) -> None:
        for sig in _GUARDED:
            try:
                current = signal.getsignal(sig)
                if current is signal.SIG_DFL or current is _output._on_signal:
                    signal.signal(sig, self.handler)
                    self.saved[sig] = current
            except (ValueError, OSError):
                pass

    def restore(self) -> None:
        for sig, old in list(self.saved.items()):
            try:
                if signal.getsignal(sig) is self.handler:
                    signal.signal(sig, old)
            except (ValueError, OSError):
                pass
            del self.saved[sig]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        child = self.child
        if child is not None:
            child.kill()
            child.wait()
        previous = self.saved.get(signum, signal.SIG_DFL)
        self.restore()
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


__all__ = ["WRITE_PROCESSES_ENV", "ChildUsage", "fork_refusal", "last_child", "run_beside"]
