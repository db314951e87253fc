"""The system side of an output (sysexport/output.py): block devices, mounts, zeroing a byte
range, and copying a finished image out to a stream.

:class:`sysexport.output.Output` decides what a target is and what must happen to it; the
calls here do it: a block device's size, whether it (or a partition of it) is mounted, in
use as swap or held by another device, the kernel asked to read a new partition table;
the cheapest correct way to make a range read as zeros (a hole punched, ``ZERO_RANGE``,
``BLKZEROOUT``, written zeros); ``sendfile`` of the temporary file to a pipe, or chunks to
a Python file object.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import stat
import struct
from typing import Any, Callable

from .errors import InternalError, OutputError

ZERO_CHUNK_BYTES = 4 << 20
"""Zeros are written (where nothing cheaper works) in chunks of this size."""
ZEROOUT_CHUNK_BYTES = 256 << 20
"""BLKZEROOUT is issued per this many bytes, so that a signal is seen between calls."""
COPY_CHUNK_BYTES = 1 << 30
"""Most bytes one sendfile() call copies to a stream."""

# <linux/fs.h>, <linux/falloc.h>
BLKZEROOUT = 0x127F                 # _IO(0x12, 127), arg: uint64_t range[2] = {start, length}
BLKGETSIZE64 = 0x80081272           # _IOR(0x12, 114, size_t)
BLKSSZGET = 0x1268                  # _IO(0x12, 104): logical block size
BLKRRPART = 0x125F                  # _IO(0x12, 95): re-read the partition table
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10


# -- block devices ---------------------------------------------------------------------------
def block_size(fd: int) -> int:
    """A block device's size in bytes (BLKGETSIZE64; the descriptor's position is kept)."""
    try:
        return int(struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, bytes(8)))[0])
    except OSError:
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, pos, os.SEEK_SET)
        return size


def _sys_block(rdev: int) -> str:
    return f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}"


def is_partition(rdev: int) -> bool:
    return os.path.exists(os.path.join(_sys_block(rdev), "partition"))


def block_in_use(rdev: int) -> str | None:
    """Why the block device ``rdev`` must not be written, or None: it (or one of its
    partitions) is mounted, in use as swap, or held by another device (device-mapper,
    RAID, bcache: /sys/class/block/NAME/holders)."""
    try:
        sysdir = os.path.realpath(_sys_block(rdev))
    except OSError:
        return None
    if not os.path.isdir(sysdir):
        return None
    devices = [(rdev, os.path.basename(sysdir), sysdir)]
    try:
        for entry in sorted(os.scandir(sysdir), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False) and os.path.exists(os.path.join(entry.path, "partition")):
                with open(os.path.join(entry.path, "dev")) as f:
                    major, minor = f.read().strip().split(":")
                devices.append((os.makedev(int(major), int(minor)), entry.name, entry.path))
    except (OSError, ValueError):
        pass
    mounts = _mounts()
    swaps = _swaps()
    for dev, name, path in devices:
        what = f"{name}" if dev == rdev else f"its partition {name}"
        for mdev, point in mounts:
            if mdev == dev:
                return f"{what} is mounted on {point}"
        if dev in swaps:
            return f"{what} is in use as swap"
        try:
            holders = sorted(os.listdir(os.path.join(path, "holders")))
        except OSError:
            holders = []
        if holders:
            return f"{what} is held by {', '.join(holders)} (device-mapper, RAID or another stacked device)"
    return None


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounts() -> list[tuple[int, str]]:
    """(device number, mount point) of every mount in this namespace: the number of the
    mounted file system (field 3 of /proc/self/mountinfo) and of its source device."""
    found: list[tuple[int, str]] = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or " - " not in line:
            continue
        point = _unescape(fields[4])
        try:
            major, minor = fields[2].split(":")
            found.append((os.makedev(int(major), int(minor)), point))
        except ValueError:
            pass
        after = line.split(" - ", 1)[1].split()
        if len(after) >= 2 and after[1].startswith("/dev/"):
            try:
                st = os.stat(_unescape(after[1]))
                if stat.S_ISBLK(st.st_mode):
                    found.append((st.st_rdev, point))
            except OSError:
                pass
    return found


def fs_type(dev: int) -> str | None:
    """The file system type of the mount whose device number is ``dev`` (from
    /proc/self/mountinfo; remembered per device number), or None."""
    if dev in _fs_types:
        return _fs_types[dev]
    found = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and " - " in line and fields[2] == f"{os.major(dev)}:{os.minor(dev)}":
                    found = line.split(" - ", 1)[1].split()[0]
                    break
    except (OSError, IndexError):
        pass
    if found is not None:
        _fs_types[dev] = found
    return found


_fs_types: dict[int, str] = {}


def _swaps() -> set[int]:
    found: set[int] = set()
    try:
        with open("/proc/swaps", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        if line.split():
            try:
                st = os.stat(_unescape(line.split()[0]))
                if stat.S_ISBLK(st.st_mode):
                    found.add(st.st_rdev)
            except OSError:
                pass
    return found


def reread_partitions(path: str) -> None:
    """Ask the kernel to read the new partition table of a whole disk (as partprobe does),
    so that its partitions appear; best effort (a loop device without partition scanning
    says EINVAL)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.ioctl(fd, BLKRRPART)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- zeroing ---------------------------------------------------------------------------------
_zeros = b""


def _zero_buffer() -> bytes:
    global _zeros
    if not _zeros:
        _zeros = bytes(ZERO_CHUNK_BYTES)
    return _zeros


def write_zeros(fd: int, start: int, length: int) -> None:
    zeros = memoryview(_zero_buffer())
    pos, end = start, start + length
    while pos < end:
        n = os.pwrite(fd, zeros[:min(end - pos, len(zeros))], pos)
        if n <= 0:
            raise OSError(errno.EIO, "short write while zeroing")
        pos += n


_fallocate: Callable[..., int] | None = None
_fallocate_looked_up = False


def libc_fallocate() -> Callable[..., int] | None:
    global _fallocate, _fallocate_looked_up
    if not _fallocate_looked_up:
        _fallocate_looked_up = True
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            func = libc.fallocate64 if hasattr(libc, "fallocate64") else libc.fallocate
            func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            func.restype = ctypes.c_int
            _fallocate = func
        except (OSError, AttributeError):
            _fallocate = None
    return _fallocate


ZERO_METHODS: dict[str, int] = {}
"""How many ranges were zeroed each way (punch-hole, zero-range, blkzeroout, write): for
tests and measurements."""


def _count(method: str) -> None:
    ZERO_METHODS[method] = ZERO_METHODS.get(method, 0) + 1


def zero_file(fd: int, start: int, length: int) -> None:
    """Make bytes start .. start+length of a regular file read as zeros, without changing
    its size: punch a hole, else zero the range, else write zeros."""
    if length <= 0:
        return
    func = libc_fallocate()
    if func is not None:
        for method, flags in (("punch-hole", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE),
                              ("zero-range", FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)):
            if func(fd, flags, start, length) == 0:
                _count(method)
                return
            err = ctypes.get_errno()
            if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV):
                raise OSError(err, os.strerror(err))
    _count("write")
    write_zeros(fd, start, length)


def zero_block(fd: int, start: int, length: int) -> None:
    """Zero bytes start .. start+length of a block device: BLKZEROOUT on the part aligned to
    512 bytes (the ioctl's unit), written zeros for the rest or where the ioctl fails."""
    if length <= 0:
        return
    end = start + length
    first = -(-start // 512) * 512
    last = end // 512 * 512
    if last - first < 512:
        _count("write")
        write_zeros(fd, start, length)
        return
    if first > start:
        write_zeros(fd, start, first - start)
    if end > last:
        write_zeros(fd, last, end - last)
    pos = first
    while pos < last:
        n = min(ZEROOUT_CHUNK_BYTES, last - pos)
        try:
            fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", pos, n))
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS):
                raise
            _count("write")
            write_zeros(fd, pos, last - pos)
            return
        pos += n
    _count("blkzeroout")


# -- streams ---------------------------------------------------------------------------------
def copy_to_fd(src: int, dst: int, size: int) -> None:
    """Copy bytes 0 .. size of src to dst in order (sendfile; read and write where the
    kernel cannot, e.g. to a file opened for appending)."""
    offset = 0
    use_sendfile = True
    while offset < size:
        want = min(COPY_CHUNK_BYTES, size - offset)
        if use_sendfile:
            try:
                n = os.sendfile(dst, src, offset, want)
            except BlockingIOError:
                _wait_writable(dst)
                continue
            except OSError as e:
                if e.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF) and offset == 0:
                    use_sendfile = False
                    continue
                raise
            if n == 0:
                raise OSError(errno.EIO, "the output accepted no more bytes")
            offset += n
            continue
        chunk = memoryview(os.pread(src, min(want, ZERO_CHUNK_BYTES), offset))
        if not chunk:
            raise InternalError("output: the temporary file ended early")
        while chunk:
            try:
                n = os.write(dst, chunk)
            except BlockingIOError:
                _wait_writable(dst)
                continue
            chunk = chunk[n:]
            offset += n


def _wait_writable(fd: int) -> None:
    import select
    select.select([], [fd], [])


def copy_to_object(src: int, dest: Any, size: int, ranges: list[tuple[int, int]], sequential: bool,
                    where: str) -> None:
    """Copy the image to a Python file object: each prepared range at its own offset when
    the object seeks (bytes outside them untouched), else everything from 0 in order."""
    seekable = False
    if not sequential:
        try:
            seekable = bool(dest.seekable()) if hasattr(dest, "seekable") else hasattr(dest, "seek")
        except (OSError, ValueError):
            seekable = False
    spans = sorted(ranges) if (seekable and ranges) else [(0, size)]
    try:
        for start, length in spans:
            if seekable:
                dest.seek(start)
            pos, end = start, min(start + length, size)
            while pos < end:
                chunk = os.pread(src, min(ZERO_CHUNK_BYTES, end - pos), pos)
                if not chunk:
                    raise InternalError("output: the temporary file ended early")
                dest.write(chunk)
                pos += len(chunk)
            if seekable and start + length > size:
                dest.write(bytes(start + length - size))
        flush = getattr(dest, "flush", None)
        if callable(flush):
            flush()
    except (OSError, ValueError) as e:
        if isinstance(e, OSError):
            raise
        raise OutputError(f"{where}: cannot write the image to the file object: {e}", path=where) from e


__all__ = ["BLKGETSIZE64", "BLKRRPART", "BLKSSZGET", "BLKZEROOUT", "COPY_CHUNK_BYTES", "FALLOC_FL_KEEP_SIZE",
           "FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_ZERO_RANGE", "ZERO_CHUNK_BYTES", "ZEROOUT_CHUNK_BYTES", "ZERO_METHODS",
           "block_in_use", "block_size", "copy_to_fd", "copy_to_object", "fs_type", "is_partition", "libc_fallocate",
           "reread_partitions", "write_zeros", "zero_block", "zero_file"]
