"""Where an image goes: any target a user names (docs/architecture.md, "The rooms": output).

A writer's ``finish()`` opens an :class:`Output` around its ``write(fd, plan)``::

    with Output(filename, filehandle) as out:
        out.prepare(size_bytes)          # the image's byte range: checked, sized, zeroed
        writer.write(out.fd, plan)

What happens depends on the target (:attr:`Output.kind`):

``new``
    A regular file path, a symlink to one (its target is written; the symlink stays), or a
    name not there yet.  The image goes into a temporary file beside the target (unnamed,
    ``O_TMPFILE``, where the file system has it; else a ``.NAME.XXXX.tmp``), which is
    named and renamed over the target when complete (fsynced first, and the directory
    after, when the output is durable: see below).  An existing file keeps its mode and
    owner; a new one gets 0644 less the umask.  A failed or interrupted build (an error,
    SIGTERM, SIGHUP, SIGINT) leaves the target as it was and nothing beside it; two builds
    to one target each use their own temporary file and the last rename wins.
``inplace``
    A block device, a seekable character device, a caller's file handle on a regular file
    or a device: written in place, never renamed or replaced.  A block device must not be
    mounted, hold a mounted partition or be held by another device (device-mapper, RAID,
    swap), and must hold the image.
``stream``
    A pipe, a socket, standard output, a file opened for appending, a Python file object
    without a descriptor: the image is built in an unnamed temporary file in ``$TMPDIR``
    and copied to the target in order when complete.  A writer that writes every byte in
    order (CPIO, ``sequential=True``) is given the target itself instead.  A terminal is
    refused.
``null``
    ``/dev/null`` (or ``/dev/zero``): written, and gone.

Zeros.  The writers never write zeros where the target already reads as zeros: they leave
holes in a fresh file.  So an output knows whether it is fresh (:attr:`Output.fresh`: a
temporary file of ours) and, when it is not, :meth:`Output.prepare` zeroes the image's
byte range first, the cheapest correct way: on a regular file by punching a hole
(``fallocate(PUNCH_HOLE|KEEP_SIZE)``, else ``ZERO_RANGE``, else written zeros), and only
below the file's old end (bytes past it read as zeros); on a block device with the
``BLKZEROOUT`` ioctl (the kernel uses the device's write-zeroes or discard when it has
them, else writes zero pages itself), else written zeros.  Bytes outside the image's range
are never touched.  Then every byte of the range is either written or zero.  (The system
calls for devices, zeroing and copying out are in :mod:`sysexport.targetio`.)

Durability.  A build ends when the kernel has the image, not when the disk has it: like
``cp``, ``tar``, ``genisoimage`` and ``mksquashfs``, a regular file is left in the page
cache for the kernel to write back (an fsync of a 1 GiB image costs as long as the build
itself).  The process's own failures (an error, a signal) still leave the old file or
nothing; a crash of the machine or a power cut before the write-back may lose the new
image, as it would a copy.  A durable output (``Output(sync=True)``, or any output opened
inside :func:`durable`, which the commands' ``--sync`` uses) fsyncs the temporary file
before it is renamed into place and the directory after, so that the new image, or else
the old file, survives that too; a caller's file handle and a stream's file are fsynced
at the end.  A block or character device (a USB stick) is always flushed before the
image is called written: it is pulled out next.

Errors.  An ``OSError`` while the image is written, synced or renamed (ENOSPC, EIO, EROFS,
EACCES, ...) becomes an :class:`~sysexport.errors.OutputError` naming the target and the
errno; a source that cannot be read raises :class:`~sysexport.errors.SourceError`
(sysexport/data.py).
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import signal
import stat
import sys
import tempfile
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType, TracebackType
from typing import IO, Any, Iterator, Union

from .errors import InternalError, InvalidInputError, OutputError, SysExportError
from .targetio import (ZERO_METHODS, block_in_use, block_size, copy_to_fd, copy_to_object, fs_type, is_partition,
                       reread_partitions, write_zeros, zero_block, zero_file)

NEW, INPLACE, STREAM, NULL = "new", "inplace", "stream", "null"

_MEM_MAJOR = 1
"""Linux's memory character devices: 1:3 /dev/null, 1:5 /dev/zero, 1:7 /dev/full, and
/dev/mem, /dev/kmem, /dev/port, /dev/random... which are never an image's target."""
_DISCARDING = {(1, 3), (1, 5)}
_FULL = (1, 7)

_PROC_FD_DIR = re.compile(r"^/proc/(self|thread-self|\d+)(/task/\d+)?/fd$")

FileLike = Union[IO[bytes], Any]

SYNC: ContextVar[bool] = ContextVar("sysexport_sync", default=False)
"""Whether an :class:`Output` given no ``sync`` is durable (set by :func:`durable`)."""


@contextmanager
def durable(on: bool = True) -> Iterator[None]:
    """Make every :class:`Output` opened in the block (given no ``sync`` of its own) durable
    (the module docstring's "Durability"): how a caller asks it of a writer's ``finish()``,
    which opens the output itself, and what ``--sync`` does.  A context variable: it holds
    in this thread (and its asyncio tasks), not in threads started before or within."""
    token = SYNC.set(on)
    try:
        yield
    finally:
        SYNC.reset(token)


class Output:
    """Context manager giving the writers a file descriptor (:attr:`fd`) for an image.

    ``filename`` (a path: a file, a symlink, a block or character device, a FIFO) or
    ``filehandle`` (an open file object: a file, a device, a pipe, standard output, or a
    Python object with ``write()``); see the module docstring.  ``sequential=True`` says
    the writer writes every byte of its image in order from the descriptor's current
    position (CPIO's stream): a pipe is then written directly, without a temporary file.

    ``sync=True`` makes the output durable (fsynced before it is named; the module
    docstring's "Durability"), ``False`` not, None (the default) as :func:`durable` says.

    Call :meth:`prepare` for the image's byte range(s) before writing.
    """

    def __init__(self, filename: str | os.PathLike[str] | bytes | None = None,
                 filehandle: FileLike | None = None, *, sequential: bool = False,
                 sync: bool | None = None) -> None:
        if (filename is None) == (filehandle is None):
            raise InvalidInputError("output: give exactly one of filename or filehandle")
        self.filename: str | None = os.fsdecode(filename) if filename is not None else None
        self.filehandle = filehandle
        self.sequential = sequential
        self.sync = SYNC.get() if sync is None else bool(sync)
        """Durable: fsynced before the image is named (a device is flushed whatever this says)."""
        self.fd = -1
        self.kind = ""
        self.fresh = False
        """True when every byte not written reads as zero (a temporary file of ours)."""
        self.capacity: int | None = None
        """Bytes the target holds: a block device's size, a caller's file's size when it was
        opened; None when the target grows as needed (a new file, a stream)."""
        self.target = self.filename or ""
        """The path written (a symlink's target), for messages."""
        self._dir_fd = -1                   # the target's directory (kind new)
        self._name = ""                     # the target's name in that directory
        self._tmp_name: str | None = None   # a named temporary file in that directory
        self._tmp_unnamed = False           # the temporary file is an O_TMPFILE
        self._old: os.stat_result | None = None   # the file being replaced
        self._dest_fd = -1                  # a stream's destination
        self._own_fds: list[int] = []       # descriptors to close at the end
        self._dest_obj: Any = None          # a Python object written at the end
        self._block = False
        self._char = False
        self._zero_below: int | None = None # a caller's regular file: bytes past this read as zeros
        self._ranges: list[tuple[int, int]] = []
        self._whole_disk_path: str | None = None
        self._guarded = False
        self._done = False

    # -- opening ---------------------------------------------------------------------------
    def __enter__(self) -> Output:
        _guard_enter(self)
        self._guarded = True
        try:
            if self.filehandle is not None:
                self._open_handle(self.filehandle)
            else:
                self._open_path(self._path())
        except BaseException:
            self._close_all(success=False)
            raise
        return self

    def _path(self) -> str:
        if self.filename is None:
            raise InternalError("output: neither filename nor filehandle")
        if not self.filename:
            raise InvalidInputError("output: the file name is empty")
        return self.filename

    def describe(self) -> str:
        """The target as the caller named it."""
        if self.filename is not None:
            return self.filename
        name = getattr(self.filehandle, "name", None)
        if name == "<stdout>" or (isinstance(name, int) and name == 1):
            return "standard output"
        return str(name) if name is not None else f"filehandle {type(self.filehandle).__name__}"

    def _where(self) -> str:
        """The target for messages: the path given, and where a symlink led."""
        given = self.describe()
        if self.filename is not None and self.target and self.target != os.path.abspath(given):
            return f"{given} (-> {self.target})"
        return given

    def _open_path(self, path: str) -> None:
        resolved, magic = _resolve(path)
        self.target = resolved
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise _oserror(e, f"{path}: cannot look at the output path") from e
        if magic and st is not None and stat.S_ISREG(st.st_mode):
            # /dev/stdout, /dev/fd/N, /proc/self/fd/N naming an open regular file: that file,
            # in place (its path may be gone or not ours to rename over).
            fd = self._own(_open_out(path, os.O_WRONLY))
            self._open_fd(fd, os.fstat(fd))
            return
        if st is None or stat.S_ISREG(st.st_mode):
            self._open_new(resolved, st)
            return
        if stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"{path}: output path is a directory; name a file or a device")
        if stat.S_ISSOCK(st.st_mode):
            raise OutputError(f"{path}: output is a socket; a socket cannot be opened by name "
                              "(give an open one as filehandle)", path=path)
        if stat.S_ISBLK(st.st_mode):
            self._check_block_free(st.st_rdev, path)
            try:
                fd = self._own(os.open(path, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC))
            except OSError as e:
                if e.errno == errno.EBUSY:
                    raise OutputError(f"{path}: block device is in use (mounted, perhaps in another mount "
                                      "namespace, or held by another program or device): the kernel refused "
                                      "an exclusive open (EBUSY)", path=path, errno=e.errno) from e
                raise _oserror(e, f"{path}: cannot open the block device for writing") from e
            self._whole_disk_path = path if not is_partition(st.st_rdev) else None
            self._open_fd(fd, os.fstat(fd))
            return
        fd = self._own(_open_out(path, os.O_WRONLY))     # a FIFO blocks here until a reader opens it
        self._open_fd(fd, os.fstat(fd))

    def _open_handle(self, fh: FileLike) -> None:
        try:
            fh.flush()
        except (AttributeError, ValueError, OSError):
            pass
        try:
            fd = fh.fileno()
            if not isinstance(fd, int) or fd < 0:
                raise ValueError(fd)
        except (AttributeError, OSError, ValueError):
            if not callable(getattr(fh, "write", None)):
                raise InvalidInputError(f"{self.describe()}: filehandle must be a file object with fileno() or "
                                        f"write(), found {type(fh).__name__}") from None
            self._dest_obj = fh
            self._open_temp_stream()
            return
        try:
            st = os.fstat(fd)
        except OSError as e:
            raise _oserror(e, f"{self.describe()}: filehandle descriptor {fd} is not open") from e
        if stat.S_ISBLK(st.st_mode):
            self._check_block_free(st.st_rdev, self.describe())
            # Claim it as mkfs does: no one can mount it while the image is written.
            try:
                self._own(os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC))
            except OSError as e:
                if e.errno == errno.EBUSY:
                    raise OutputError(f"{self.describe()}: block device is in use (mounted, perhaps in another "
                                      "mount namespace, or held by another program or device): the kernel "
                                      "refused an exclusive open (EBUSY)", path=self.describe(), errno=e.errno) from e
        self._open_fd(fd, st)

    def _open_fd(self, fd: int, st: os.stat_result) -> None:
        """An open descriptor on an existing target: in place, a stream, or nothing."""
        where = self.describe()
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            flags = os.O_WRONLY
        if flags & os.O_ACCMODE == os.O_RDONLY:
            raise OutputError(f"{where}: the output is open for reading only (mode {_mode_text(flags)})", path=where)
        if os.isatty(fd):
            raise OutputError(f"{where}: is a terminal; an image is binary: redirect it (> FILE, | CMD) or "
                              "name a file", path=where)
        mode = st.st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISREG(mode) and flags & os.O_APPEND):
            self._stream_to(fd)
            return
        if stat.S_ISCHR(mode):
            dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if dev in _DISCARDING:
                self.kind, self.fd = NULL, fd
                return
            if dev[0] == _MEM_MAJOR and dev != _FULL:
                raise OutputError(f"{where}: character device {dev[0]}:{dev[1]} is a memory device, not a medium",
                                  path=where)
            try:
                os.pwrite(fd, b"", 0)
            except OSError as e:
                if e.errno == errno.ESPIPE:
                    raise OutputError(f"{where}: character device {dev[0]}:{dev[1]} cannot be written at offsets "
                                      f"(not seekable: ESPIPE); name a file, a block device or '-'",
                                      path=where, errno=e.errno) from e
            self.kind, self.fd, self._char = INPLACE, fd, True
            return
        if stat.S_ISBLK(mode):
            self.kind, self.fd, self._block = INPLACE, fd, True
            self.capacity = block_size(fd)
            return
        if stat.S_ISREG(mode):
            self.kind, self.fd = INPLACE, fd
            self.capacity = st.st_size
            self._zero_below = st.st_size
            return
        raise OutputError(f"{where}: cannot write an image to a file of type {_type_name(mode)}", path=where)

    def _open_new(self, target: str, old: os.stat_result | None) -> None:
        """A temporary file beside ``target``, renamed over it at the end."""
        directory, self._name = os.path.split(target)
        self._old = old
        self.kind, self.fresh = NEW, True
        try:
            self._dir_fd = self._own(os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError as e:
            raise _oserror(e, f"{self._where()}: cannot open the directory {directory or '.'} "
                              "to write the image beside it") from e
        if os.path.realpath(directory or ".") == "/dev" or fs_type(os.fstat(self._dir_fd).st_dev) == "devtmpfs":
            # /dev/sdX that is not there (unplugged, mistyped): never a regular file in /dev.
            raise OutputError(f"{self._where()}: no such device ({'a regular file' if old else 'nothing'} "
                              "is there, and an image is never written as a regular file in /dev); "
                              "is the device plugged in?", path=target, errno=errno.ENODEV)
        fd = _tmpfile(self._dir_fd, self._where())
        if fd is not None:
            self.fd, self._tmp_unnamed = self._own(fd), True
        else:
            for _ in range(100):
                name = f".{self._name}.{secrets.token_hex(4)}.tmp"
                try:
                    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                                 dir_fd=self._dir_fd)
                except FileExistsError:
                    continue
                except OSError as e:
                    raise _oserror(e, f"{self._where()}: cannot create the image beside it in "
                                      f"{directory or '.'}") from e
                self._tmp_name = name
                self.fd = self._own(fd)
                break
            else:
                raise OutputError(f"{self._where()}: cannot find a free temporary name beside it", path=target)

    def _stream_to(self, fd: int) -> None:
        if self.sequential:
            self.kind, self.fd = STREAM, fd
            return
        self._dest_fd = fd
        self._open_temp_stream()

    def _open_temp_stream(self) -> None:
        """The image is built in an unnamed file in $TMPDIR and copied out at the end."""
        self.kind, self.fresh = STREAM, True
        tmpdir = tempfile.gettempdir()
        try:
            dfd = os.open(tmpdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise _oserror(e, f"{self.describe()}: cannot open the temporary directory {tmpdir}") from e
        try:
            fd = _tmpfile(dfd, f"{self.describe()} (a temporary file in {tmpdir})")
            if fd is None:
                name = f".sysexport.{secrets.token_hex(6)}.tmp"
                try:
                    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dfd)
                    os.unlink(name, dir_fd=dfd)
                except OSError as e:
                    raise _oserror(e, f"{self.describe()}: cannot create a temporary file in {tmpdir}") from e
        finally:
            os.close(dfd)
        self.fd = self._own(fd)

    def _own(self, fd: int) -> int:
        self._own_fds.append(fd)
        return fd

    def _check_block_free(self, rdev: int, where: str) -> None:
        reason = block_in_use(rdev)
        if reason:
            raise OutputError(f"{where}: refusing to write to block device {os.major(rdev)}:{os.minor(rdev)}: "
                              f"{reason}; unmount it (or release it) first", path=where, errno=errno.EBUSY)

    # -- before writing --------------------------------------------------------------------
    def check_fits(self, end_bytes: int) -> None:
        """Raise OutputError when the target cannot hold ``end_bytes`` bytes (a device)."""
        if self._block and self.capacity is not None and end_bytes > self.capacity:
            raise OutputError(f"{self.describe()}: the image needs {end_bytes:,} bytes ({_mib(end_bytes)}), "
                              f"the device holds {self.capacity:,} bytes ({_mib(self.capacity)})",
                              path=self.describe(), errno=errno.ENOSPC)

    def prepare(self, size_bytes: int, start: int = 0) -> None:
        """The image occupies bytes ``start`` .. ``start + size_bytes`` of the target: check the
        target holds them, make a file that long, and zero them where the target does not
        already read as zeros.  Call it (once per range) before writing."""
        if not isinstance(size_bytes, int) or not isinstance(start, int) or size_bytes < 0 or start < 0:
            raise InternalError(f"output: prepare({size_bytes!r}, start={start!r})")
        end = start + size_bytes
        self.check_fits(end)
        self._ranges.append((start, size_bytes))
        where = self.describe()
        try:
            if self.kind == NULL or (self.kind == STREAM and not self.fresh):
                return
            if self.fresh:
                if os.fstat(self.fd).st_size < end:
                    os.ftruncate(self.fd, end)
                return
            if self._block:
                zero_block(self.fd, start, size_bytes)
            elif self._char:
                write_zeros(self.fd, start, size_bytes)
            else:
                below = self._zero_below if self._zero_below is not None else end
                if start < below:
                    zero_file(self.fd, start, min(end, below) - start)
                if os.fstat(self.fd).st_size < end:
                    os.ftruncate(self.fd, end)
        except OSError as e:
            raise _oserror(e, f"{where}: cannot prepare bytes {start:,}..{end:,} of the output") from e

    def set_size(self, size_bytes: int) -> None:
        """``prepare(size_bytes)``: the image is bytes 0 .. ``size_bytes``."""
        self.prepare(size_bytes)

    # -- finishing --------------------------------------------------------------------------
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            try:
                self._complete()
            except BaseException as e:
                self._close_all(success=False)
                if isinstance(e, OSError):
                    raise _oserror(e, f"{self._where()}: cannot complete the image") from e
                raise
            self._close_all(success=True)
            return
        self._close_all(success=False)
        if isinstance(exc, OSError) and not isinstance(exc, SysExportError):
            raise self._write_error(exc) from exc

    def _write_error(self, e: OSError) -> SysExportError:
        """An OSError raised while the image was written, as an OutputError."""
        if e.filename is not None and os.fsdecode(e.filename) not in (self.filename, self.target):
            return _oserror(e, f"{os.fsdecode(e.filename)}: cannot be read or written while writing "
                               f"{self._where()}")
        outcome = ""
        if self.kind == NEW:
            outcome = "; the existing file is unchanged" if self._old is not None else "; nothing was created"
        elif self.kind == INPLACE and self._block:
            outcome = "; the device holds a partial image"
        return _oserror(e, f"{self._where()}: cannot write the image{outcome}", path=self.target or self.describe())

    def _complete(self) -> None:
        if self.kind == NEW:
            self._install()
            return
        if self.kind == STREAM and self.fresh:
            self._copy_out()
            if self.sync and self._dest_fd >= 0:
                _fsync_if_possible(self._dest_fd)       # a pipe or socket: EINVAL, nothing to do
        elif self.kind == INPLACE and (self._block or self._char):
            _fsync_if_possible(self.fd)                 # a device: always, it is unplugged next
        elif self.sync and self.kind in (INPLACE, STREAM):
            _fsync_if_possible(self.fd)

    def _install(self) -> None:
        """Keep the old file's mode and owner, name the file, rename it over the target; when
        durable, fsync the file first and the directory after."""
        if self.sync:
            os.fsync(self.fd)
        old = self._old
        mode = 0o644 & ~_umask()
        if old is not None:
            mode = stat.S_IMODE(old.st_mode)
            if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()) and not _chown(self.fd, old):
                mode &= ~(stat.S_ISUID | stat.S_ISGID)     # as cp -p: no set-id bits for another owner
        os.fchmod(self.fd, mode)
        if self._tmp_unnamed:
            for _ in range(100):
                name = f".{self._name}.{secrets.token_hex(4)}.tmp"
                try:
                    os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=self._dir_fd, follow_symlinks=True)
                except FileExistsError:
                    continue
                self._tmp_name = name
                break
            else:
                raise OutputError(f"{self._where()}: cannot find a free temporary name beside it", path=self.target)
        if self._tmp_name is None:
            raise InternalError("output: no temporary file to rename")
        os.replace(self._tmp_name, self._name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        self._tmp_name = None
        self._done = True
        if not self.sync:
            return
        try:
            os.fsync(self._dir_fd)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EROFS):
                raise OutputError(f"{self._where()}: the image is in place, but its directory could not be "
                                  f"synced: {e.strerror} ({errno.errorcode.get(e.errno or 0, e.errno)})",
                                  path=self.target, errno=e.errno) from e

    def _copy_out(self) -> None:
        """Copy the finished temporary file to the stream (or the Python object)."""
        size = os.fstat(self.fd).st_size
        if self._dest_obj is not None:
            copy_to_object(self.fd, self._dest_obj, size, self._ranges, self.sequential, self.describe())
        else:
            copy_to_fd(self.fd, self._dest_fd, size)

    def _close_all(self, success: bool) -> None:
        try:
            if not success and self._tmp_name is not None:
                _unlink_quiet(self._tmp_name, self._dir_fd)
                self._tmp_name = None
            for fd in reversed(self._own_fds):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._own_fds.clear()
            if success and self._whole_disk_path is not None:
                reread_partitions(self._whole_disk_path)
        finally:
            if self._guarded:
                self._guarded = False
                _guard_exit(self)

    def _abandon(self) -> None:
        """From a signal handler: remove a named temporary file now (the process is ending)."""
        if self._tmp_name is not None and not self._done:
            _unlink_quiet(self._tmp_name, self._dir_fd)
            self._tmp_name = None


def output_target(path: str) -> dict[str, Any]:
    """The CLI's ``-o PATH``: ``-`` is standard output, anything else a path (the keyword
    arguments of a writer's constructor)."""
    if path == "-":
        return {"filehandle": sys.stdout.buffer}
    return {"filename": path}


# -- signals ---------------------------------------------------------------------------------
_GUARDED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name))
_active: list[Output] = []
_saved: dict[int, Any] = {}
_main_depth = 0
_lock = threading.Lock()


def _guard_enter(out: Output) -> None:
    """While an Output is open in the main thread, SIGTERM, SIGHUP and SIGINT whose action is
    the default (to end the process) first remove the temporary files of every open Output.
    A Python handler (SIGINT's KeyboardInterrupt) unwinds through ``__exit__``, which removes
    them; an ignored signal stays ignored."""
    global _main_depth
    with _lock:
        _active.append(out)
        if threading.current_thread() is not threading.main_thread():
            return
        _main_depth += 1
        if _main_depth > 1:
            return
    for sig in _GUARDED_SIGNALS:
        try:
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _on_signal)
                _saved[sig] = signal.SIG_DFL
        except (ValueError, OSError):
            pass


def _guard_exit(out: Output) -> None:
    global _main_depth
    with _lock:
        if out in _active:
            _active.remove(out)
        if threading.current_thread() is not threading.main_thread():
            return
        _main_depth -= 1
        if _main_depth > 0:
            return
    _restore_handlers()


def _restore_handlers() -> None:
    for sig, old in list(_saved.items()):
        try:
            if signal.getsignal(sig) is _on_signal:
                signal.signal(sig, old)
        except (ValueError, OSError):
            pass
        del _saved[sig]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Remove the temporary files, put the default action back and take it: the process
    ends by the signal, with the status a shell shows as 128 + the signal's number."""
    for out in list(_active):
        out._abandon()
    _restore_handlers()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


# -- helpers ---------------------------------------------------------------------------------
def _oserror(e: OSError, message: str, path: str | None = None) -> OutputError:
    """``message: strerror (ENAME)`` as an OutputError."""
    code = e.errno or 0
    text = e.strerror or os.strerror(code)
    name = errno.errorcode.get(code, str(code))
    if path is None and e.filename is not None:
        path = os.fsdecode(e.filename)
    return OutputError(f"{message}: {text} ({name})", path=path, errno=code or None)


def _fsync_if_possible(fd: int) -> None:
    """fsync ``fd``; nothing where it cannot be synced (a pipe, a socket, a read-only or
    pseudo file system: EINVAL, EROFS, ENOTSUP)."""
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP):
            raise


def _open_out(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as e:
        raise _oserror(e, f"{path}: cannot open the output for writing") from e


def _resolve(path: str) -> tuple[str, bool]:
    """The absolute path symlinks lead to, and whether one of them is a /proc/PID/fd link
    (/dev/stdout, /dev/fd/N): those name an open file, not a path."""
    current = os.path.abspath(path)
    for _ in range(40):
        parent = os.path.realpath(os.path.dirname(current))
        current = os.path.join(parent, os.path.basename(current))
        if _PROC_FD_DIR.match(parent):
            return current, True
        try:
            link = os.readlink(current)
        except OSError:
            return current, False
        current = os.path.join(parent, link)
    return current, False


def _tmpfile(dir_fd: int, where: str) -> int | None:
    """An unnamed file in the directory ``dir_fd`` (O_TMPFILE), or None where the file
    system (or /proc, needed to name it later) does not have it."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not _USE_O_TMPFILE or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(f"/proc/self/fd/{dir_fd}", flag | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None
        raise _oserror(e, f"{where}: cannot create the image in {os.readlink(f'/proc/self/fd/{dir_fd}')}",
                       path=where) from e


_USE_O_TMPFILE = True
"""Tests set this False to run the named-temporary-file path."""


def _chown(fd: int, old: os.stat_result) -> bool:
    """Give the new file the old one's owner and group; False when not allowed."""
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
        return True
    except PermissionError:
        pass
    try:
        os.fchown(fd, -1, old.st_gid)
    except PermissionError:
        pass
    return False


def _umask() -> int:
    """The process umask, read without changing it where /proc has it (thread-safe)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _unlink_quiet(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd if dir_fd >= 0 else None)
    except OSError:
        pass


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _mode_text(flags: int) -> str:
    return {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}.get(flags & os.O_ACCMODE, "?")


def _type_name(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISLNK, "symlink"), (stat.S_ISREG, "regular file")):
        if test(mode):
            return name
    return f"mode {mode:#o}"


def is_stdout(path: str) -> bool:
    """Whether the CLI's ``-o PATH`` is standard output (``-``, /dev/stdout, or the very file
    stdout is): its messages then go to stderr."""
    if path == "-":
        return True
    try:
        st, out = os.stat(path), os.fstat(1)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino)


_block_in_use = block_in_use
"""The name sysexport.image imports (a device's reason to refuse writing)."""

__all__ = ["Output", "SYNC", "durable", "output_target", "is_stdout", "NEW", "INPLACE", "STREAM", "NULL",
           "ZERO_METHODS"]
