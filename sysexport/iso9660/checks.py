"""The checks of an ISO 9660 writer's settings and of a device number Rock Ridge records.

ECMA-119 8.4 (the volume descriptor's text fields and Volume Space Size), RRIP 1.12 4.1.2
(PN) against what Linux's 32-bit dev_t holds.
"""
from __future__ import annotations

import unicodedata

from ..errors import InvalidInputError
from ..fileinfo import normalize_name
from ._structs import SECTOR_BYTES

SYSTEM_ID_CHARS = 32
"""System Identifier: 32 bytes (ECMA-119 8.4.5); Joliet's copy holds 16 UCS-2 characters."""
LONG_ID_CHARS = 128
"""Volume set, publisher, data preparer, application identifiers: 128 bytes (8.4.13-8.4.16);
Joliet's copies hold 64 UCS-2 characters."""
MAX_PADDING_BYTES = (1 << 32) * SECTOR_BYTES
"""Volume Space Size is 32 bits of 2048-byte sectors."""
LINUX_MAJOR_MAX = (1 << 12) - 1
LINUX_MINOR_MAX = (1 << 20) - 1
"""Linux keeps a device number in a 32-bit dev_t, 12 bits of major and 20 of minor (MKDEV)."""


def validate_identifier(field: str, value: object, size: int) -> str:
    """A volume descriptor text field: a str whose primary-descriptor form (upper case,
    accents dropped, ECMA-119 7.4 a-characters, anything else '_') fits ``size`` bytes, with
    no control characters and only characters of the Basic Multilingual Plane (Joliet's
    UCS-2 copy keeps case and accents, and holds the first ``size // 2`` characters)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"ISO9660 {field}: expected a str, found {value!r}")
    for i, ch in enumerate(value):
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF or code > 0xFFFF:
            raise InvalidInputError(f"ISO9660 {field} {value!r}: character {ch!r} at {i} cannot be recorded "
                                    "(control characters and characters outside UCS-2 are not allowed)")
    pvd = value if value.isascii() else "".join(
        ch for ch in unicodedata.normalize("NFKD", value) if not unicodedata.combining(ch))
    if len(pvd) > size:
        raise InvalidInputError(f"ISO9660 {field} {value!r}: {len(pvd)} characters, the volume descriptor's "
                                f"field holds {size} (ECMA-119 8.4)")
    return value


def validate_flag(field: str, value: object) -> bool:
    """An on/off attribute: True or False."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"ISO9660 {field}: expected True or False, found {value!r}")
    return value


def validate_boot_catalog_path(value: object) -> str:
    """The catalog's name in the trees: a path of the image (checked as file-info names are),
    not the root."""
    if not isinstance(value, str):
        raise InvalidInputError(f"ISO9660 boot_catalog_path: expected a str, found {value!r}")
    try:
        name = normalize_name(value)
    except InvalidInputError as e:
        raise InvalidInputError(f"ISO9660 boot_catalog_path: {e}") from None
    if not name:
        raise InvalidInputError(f"ISO9660 boot_catalog_path {value!r}: names the root; give a file name "
                                "(or set boot_catalog_hidden)")
    return value


def validate_padding_bytes(value: object) -> int:
    """Zero bytes after the last file: 0 .. the most a 32-bit Volume Space Size holds."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PADDING_BYTES:
        raise InvalidInputError(f"ISO9660 padding_bytes: expected an integer 0..{MAX_PADDING_BYTES}, found {value!r}")
    return value


def linux_pn_view(major: int, minor: int) -> tuple[int, int]:
    """The device Linux isofs makes of the PN entry written for (major, minor) (glibc's
    makedev split in two 32-bit halves; fs/isofs/rock.c, MKDEV into a 32-bit dev_t)."""
    dev = ((major & 0x00000FFF) << 8) | ((major & 0xFFFFF000) << 32) | (minor & 0xFF) | ((minor & 0xFFFFFF00) << 12)
    high, low = (dev >> 32) & 0xFFFFFFFF, dev & 0xFFFFFFFF
    if low & ~0xFF and high == 0:
        ma, mi = low >> 8, low & 0xFF
    else:
        ma, mi = high, low
    kdev = ((ma << 20) | mi) & 0xFFFFFFFF
    return kdev >> 20, kdev & LINUX_MINOR_MAX


def check_pn_device(where: str, major: int, minor: int) -> None:
    """Refuse a device number Linux cannot represent (major >= 2**12 or minor >= 2**20),
    saying what Linux isofs would read from its Rock Ridge PN entry instead."""
    if major > LINUX_MAJOR_MAX or minor > LINUX_MINOR_MAX:
        seen = linux_pn_view(major, minor)
        raise InvalidInputError(
            f"{where}: device ({major}, {minor}) does not fit Linux's 32-bit dev_t (major 0..{LINUX_MAJOR_MAX}, "
            f"minor 0..{LINUX_MINOR_MAX}); Linux would read its Rock Ridge PN entry as device {seen}")
