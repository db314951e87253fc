"""What a newc archive and the Linux kernel's unpacker can hold (``init/initramfs.c``),
checked before an entry is written: sizes, times, names, device numbers, the trailer's name.
"""
from __future__ import annotations

import os

from ..errors import InvalidInputError
from ..fileinfo import FileInfo, source_date_epoch
from .newc import MAX_FIELD, TRAILER_NAME

COMPRESSIONS = ("gzip", "xz", "zstd")

PATH_MAX = 4096
"""The kernel skips an entry whose c_namesize (name and NUL) is more than PATH_MAX."""
LINUX_MAJOR_MAX = (1 << 12) - 1
"""The kernel makes a device number with MKDEV(major, minor) into a 32-bit dev_t: 12 bits of major, ..."""
LINUX_MINOR_MAX = (1 << 20) - 1
"""... and 20 bits of minor; larger numbers would be cut to other devices."""
MTIME_RULE = "newc's unsigned 32-bit c_mtime holds 0..4294967295 (1970-01-01 .. 2106-02-07 UTC)"


def validate_compress(value: object) -> str | None:
    """``compress``: None or one of :data:`COMPRESSIONS` (zstd only with the zstandard module)."""
    if value is not None and (not isinstance(value, str) or value not in COMPRESSIONS):
        raise InvalidInputError(f"CPIO compress: must be None or one of {', '.join(COMPRESSIONS)}, found {value!r}")
    from .sink import zstd
    if value == "zstd" and zstd() is None:
        raise InvalidInputError("CPIO compress: 'zstd' needs the Python module 'zstandard' "
                                "(pip install zstandard, or Debian's python3-zstandard)")
    return value


def validate_mtime(where: str, value: object) -> int | float:
    """A time newc can record: seconds 0..2**32-1 (fractions are dropped).  Times outside
    are refused rather than clamped, as GNU cpio refuses them ("field width not sufficient")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{where}: must be seconds since the epoch, found {value!r}")
    if not 0 <= value < MAX_FIELD + 1:          # False for NaN too
        raise InvalidInputError(f"{where}: {value!r} is outside what newc can record; {MTIME_RULE}")
    return value


def check_entry(info: FileInfo) -> None:
    """Refuse what newc or the Linux unpacker cannot hold (InvalidInputError naming the
    path, the field, the rule and the value)."""
    where = info.name or "/"
    if info.name == TRAILER_NAME:
        raise InvalidInputError(f"{where}: the name {TRAILER_NAME!r} marks the end of a newc archive; an entry "
                                "of that name would end the archive there (the kernel stops unpacking)")
    if len(info.name) >= PATH_MAX // 4:
        namesize = len(info.name.encode("utf-8")) + 1
        if namesize > PATH_MAX:
            raise InvalidInputError(f"{where[:60]}...: name of {namesize - 1} bytes; the kernel skips an entry "
                                    f"whose c_namesize (name and NUL) is more than PATH_MAX {PATH_MAX}")
    if info.size > MAX_FIELD:
        raise InvalidInputError(f"{where}: size {info.size} bytes; newc's c_filesize holds at most {MAX_FIELD} bytes")
    if info.mtime is not None:
        validate_mtime(f"{where}: mtime", info.mtime)
    if info.is_device and (info.rdev_major > LINUX_MAJOR_MAX or info.rdev_minor > LINUX_MINOR_MAX):
        raise InvalidInputError(
            f"{where}: device ({info.rdev_major}, {info.rdev_minor}); Linux unpacks a device number as "
            f"MKDEV(major, minor) in 32 bits: major 0..{LINUX_MAJOR_MAX}, minor 0..{LINUX_MINOR_MAX}")


def validate_default_time(value: object) -> int | float:
    """``default_time``: a time newc can record; a SOURCE_DATE_EPOCH outside is named as such."""
    try:
        return validate_mtime("CPIO default_time", value)
    except InvalidInputError:
        if value == source_date_epoch(0) and os.environ.get("SOURCE_DATE_EPOCH", "").strip():
            raise InvalidInputError(f"SOURCE_DATE_EPOCH={value}: outside what newc can record; {MTIME_RULE} "
                                    "(CPIO default_time is SOURCE_DATE_EPOCH)") from None
        raise


__all__ = ["COMPRESSIONS", "PATH_MAX", "LINUX_MAJOR_MAX", "LINUX_MINOR_MAX", "MTIME_RULE", "validate_compress",
           "validate_mtime", "validate_default_time", "check_entry"]
