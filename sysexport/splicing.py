"""File data spliced into an image through a pipe of our own, 1 MiB a step (sysexport/data.py
uses it for every run of source data of :data:`SPLICE_MIN_BYTES` or more).

Why not copy_file_range alone: between two files of one file system (ext4 here) the kernel
copies by splicing through a pipe of its own, 16 pages long, so the output is written 64 KiB
a step.  Measured here (Linux 6.18, ext4, 10 x 100 MiB copied to the offsets of the
hybrid's layout, which are multiples of 4 KiB but not of 64 KiB; paired runs at load 4-6):
0.34-0.45 s of CPU with copy_file_range, 0.25-0.35 s spliced 1 MiB a step from source
offsets that are multiples of 1 MiB; copy_file_range at offsets that are multiples of
64 KiB took 0.27-0.35 s, and 1 MiB steps aligned to the output instead of the source
0.41-0.54 s (so the steps end at multiples of 1 MiB in the source).  The whole
``sysexport build`` of those files: 0.54-0.69 s of CPU before, 0.48-0.59 s after.

The pipe only holds references to the source's page-cache pages: nothing is copied into this
process, and memory does not grow with the file.  Whatever splice cannot do between two
files (an output opened for appending, a file system without splice) is left to
copy_file_range: :meth:`SplicePipe.copy` returns 0 before a byte is written.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import Callable

from .errors import SourceError

SPLICE_MIN_BYTES = 1 << 20
"""A run of source data at least this long is spliced; a shorter one goes by copy_file_range
(two calls a step and a pipe a file cost more than they save below it)."""
SPLICE_PIPE_BYTES = 1 << 20
"""The pipe's size: the default /proc/sys/fs/pipe-max-size, the most an unprivileged process
may ask for (F_SETPIPE_SZ)."""
REPORT_BYTES = 4 << 20
"""Progress is reported per this many bytes (sysexport.data.CHUNK_BYTES, as copy_file_range's
steps are)."""
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_HAVE_SPLICE = hasattr(os, "splice")
_NO_SPLICE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF, errno.ESPIPE, errno.EXDEV})
"""splice errors that mean "not between these files" (an output opened for appending, a file
system without splice), as opposed to a failed read or write."""


class SplicePipe:
    """A pipe of :data:`SPLICE_PIPE_BYTES` for splicing file data into one output (a regular
    file or a block device); :meth:`close` it when done."""

    __slots__ = ("read_fd", "write_fd")

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd

    @classmethod
    def for_output(cls, out_fd: int) -> SplicePipe | None:
        """A pipe for writing into ``out_fd``, or None where splicing is not worth it: the
        output is not a regular file or a block device, or the pipe cannot be made
        :data:`SPLICE_PIPE_BYTES` long (the user's pipe quota is used up)."""
        if not _HAVE_SPLICE:
            return None
        try:
            mode = os.fstat(out_fd).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
                return None
            read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        except OSError:
            return None
        pipe = cls(read_fd, write_fd)
        try:
            if fcntl.fcntl(write_fd, _F_SETPIPE_SZ, SPLICE_PIPE_BYTES) >= SPLICE_PIPE_BYTES:
                return pipe
        except OSError:
            pass
        pipe.close()
        return None

    def copy(self, src_fd: int, out_fd: int, src_pos: int, dst_pos: int, length: int, name: str,
             read_error: Callable[[OSError, int], Exception], report: Callable[[int], None]) -> int:
        """Splice ``length`` bytes of ``src_fd`` from ``src_pos`` into ``out_fd`` at ``dst_pos``;
        returns ``length``, or 0 when splice cannot join these two files (nothing written).
        A source that cannot be read raises ``read_error(error, offset)``, one that has
        shrunk a SourceError naming ``name``; an error of the output (ENOSPC, EIO) is raised
        as the OSError it is.  ``report`` is told the bytes written, per :data:`REPORT_BYTES`."""
        done = unreported = 0
        while done < length:
            try:
                at = src_pos + done             # steps end at multiples of the step in the source
                n = os.splice(src_fd, self.write_fd, min(SPLICE_PIPE_BYTES - at % SPLICE_PIPE_BYTES, length - done),
                              offset_src=at)
            except OSError as e:
                if done == 0 and e.errno in _NO_SPLICE:
                    return 0
                raise read_error(e, src_pos + done) from e
            if n == 0:
                raise SourceError(f"{name}: short read at offset {src_pos + done}: file shrank while copying",
                                  path=name)
            moved = 0
            while moved < n:
                try:
                    moved += os.splice(self.read_fd, out_fd, n - moved, offset_dst=dst_pos + done + moved)
                except OSError as e:
                    if done == 0 and moved == 0 and e.errno in _NO_SPLICE:
                        return 0            # the bytes in the pipe are dropped with it
                    raise
            done += n
            unreported += n
            if unreported >= REPORT_BYTES or done == length:
                report(unreported)
                unreported = 0
        return done

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


__all__ = ["REPORT_BYTES", "SPLICE_MIN_BYTES", "SPLICE_PIPE_BYTES", "SplicePipe"]
