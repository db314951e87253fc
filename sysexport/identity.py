"""The identifiers of one build: unique per build, or derived from its content when reproducible.

GPT disk and partition GUIDs, FAT volume serials, the GRUB marker and the ISO volume's
UUID (the creation date blkid shows, centiseconds included) must differ between images:
UEFI 2.x 5.3.1 requires unique GUIDs, and udev's by-partuuid, GRUB's ``search`` and
Windows tell media apart by them.  So they are random for every build, unless the build is
reproducible (SOURCE_DATE_EPOCH is set, or the writer was given ``default_time``): then
they derive from a digest of everything added (names, types, modes, owners, times, sizes,
link targets, device numbers and the content identity of each source: the bytes of
in-memory data, the size and time of a host file) and the time, so that the same input
gives the same bytes and two different reproducible images still differ.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Iterable

from .data import BytesData
from .fileinfo import FileInfo

SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"


def sde_is_set() -> bool:
    """True when the environment asks for a reproducible build (reproducible-builds.org)."""
    value = os.environ.get(SOURCE_DATE_EPOCH)
    return value is not None and bool(value.strip())


def entry_identity(info: FileInfo) -> bytes:
    """What identifies one entry's content and metadata, as bytes for a digest."""
    source = info.source
    if isinstance(source, BytesData):
        content = hashlib.sha256(source.data).hexdigest()
    else:
        content = ""
    return "\0".join((info.name, f"{info.mode:o}", str(info.uid), str(info.gid), str(info.size),
                      repr(info.mtime), repr(info.atime), repr(info.ctime),
                      f"{info.rdev_major}:{info.rdev_minor}", repr(info.target), info.hybrid_target,
                      content)).encode("utf-8", "surrogateescape")


def content_digest(entries: Iterable[FileInfo], *extra: object) -> bytes:
    """A digest of ``entries`` (in the order given: writers give their sorted tree) and
    ``extra`` (labels, partitions, the time)."""
    h = hashlib.sha256(b"sysexport-content-v1\0")
    for value in extra:
        h.update(repr(value).encode("utf-8", "surrogateescape") + b"\0")
    for info in entries:
        h.update(entry_identity(info))
        h.update(b"\n")
    return h.digest()


class BuildIdentity:
    """Where one image's identifiers come from: a digest (reproducible) or chance.

    ``BuildIdentity(digest)`` derives every identifier from ``digest`` and the name of
    the identifier; ``BuildIdentity(None)`` draws each from the system's random source.
    """

    __slots__ = ("digest",)

    def __init__(self, digest: bytes | None) -> None:
        self.digest = digest

    @property
    def reproducible(self) -> bool:
        return self.digest is not None

    def _bytes(self, what: str, n: int) -> bytes:
        if self.digest is None:
            return secrets.token_bytes(n)
        return hashlib.sha256(self.digest + b"\0" + what.encode("utf-8")).digest()[:n]

    def guid(self, what: str) -> uuid.UUID:
        """A version-4 formatted GUID (RFC 4122 4.4)."""
        return uuid.UUID(bytes=self._bytes(what, 16), version=4)

    def u32(self, what: str) -> int:
        """A 32-bit number (a FAT volume serial)."""
        return int.from_bytes(self._bytes(what, 4), "little")

    def below(self, what: str, n: int) -> int:
        """A number in 0..n-1 (n much smaller than 2**64)."""
        return int.from_bytes(self._bytes(what, 8), "little") % n

    def token(self, what: str, n_hex: int = 16) -> str:
        """``n_hex`` hexadecimal digits (a marker file name)."""
        return self._bytes(what, -(-n_hex // 2)).hex()[:n_hex]
