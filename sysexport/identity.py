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
    # One f-string: the fields joined by NULs, str() of the counts, repr() of times and target.
    # A float's repr is the costly part (shortest round trip): a time that is the very
    # object of mtime (the host walk shares it when ctime equals mtime) is printed once.
    mtime = info.mtime
    m = repr(mtime)
    a = m if info.atime is mtime else repr(info.atime)
    c = m if info.ctime is mtime else repr(info.ctime)
    return (f"{info.name}\0{info.mode:o}\0{info.uid!s}\0{info.gid!s}\0{info.size!s}\0{m}\0{a}\0{c}\0"
            f"{info.rdev_major!s}:{info.rdev_minor!s}\0{info.target!r}\0{info.hybrid_target!s}\0{content}"
            ).encode("utf-8", "surrogateescape")


def content_digest(entries: Iterable[FileInfo], *extra: object) -> bytes:
    """A digest of ``entries`` (in the order given: writers give their sorted tree) and
    ``extra`` (labels, partitions, the time): sha256 over each ``extra`` value's repr and a
    NUL, then each entry's :func:`entry_identity` and a newline.

    A hybrid digests every shared entry twice (its ISO and its ESP), and the entries of a
    tree mostly differ in their names only: the part of an identity after the name is made
    once for every distinct tuple of the fields it shows (see :class:`_Tails`), and the
    bytes go to the hash in batches.  The digest is the same as entry by entry."""
    h = hashlib.sha256(b"sysexport-content-v1\0")
    for value in extra:
        h.update(repr(value).encode("utf-8", "surrogateescape") + b"\0")
    tails = _Tails()
    line = tails.identity_line
    batch: list[bytes] = []
    for info in entries:
        batch.append(line(info))
        if len(batch) >= _BATCH_ENTRIES:
            h.update(b"".join(batch))
            batch.clear()
            if not tails.on:
                line = _identity_line
    h.update(b"".join(batch))
    return h.digest()


def _identity_line(info: FileInfo) -> bytes:
    return entry_identity(info) + b"\n"


_BATCH_ENTRIES = 1024
"""Identities joined before they go to the hash (one update call for so many)."""


class _Tails:
    """:func:`entry_identity` of a record and a newline, its part after the name made once
    for every distinct key: the fields that part shows, with the type of each time (1 and
    1.0 are equal keys but print differently).  A float time of zero is never remembered
    (0.0 and -0.0 too print differently).  At most :data:`MAX` tails are kept; a tree whose
    tails are mostly distinct (every file its own time) stops remembering them."""

    MAX = 4096
    __slots__ = ("memo", "misses", "seen", "on")

    def __init__(self) -> None:
        self.memo: dict[tuple[object, ...], bytes] = {}
        self.misses = self.seen = 0
        self.on = True

    def identity_line(self, info: FileInfo) -> bytes:
        if not self.on or isinstance(info.source, BytesData):
            return entry_identity(info) + b"\n"
        self.seen += 1
        mtime, atime, ctime = info.mtime, info.atime, info.ctime
        key = (info.mode, info.uid, info.gid, info.size, mtime, mtime.__class__, atime, atime.__class__, ctime,
               ctime.__class__, info.rdev_major, info.rdev_minor, info.target, info.hybrid_target)
        tail = self.memo.get(key)
        if tail is None:
            tail = entry_identity(info)[len(info.name.encode("utf-8", "surrogateescape")):] + b"\n"
            self._remember(key, tail, mtime, atime, ctime)
        return info.name.encode("utf-8", "surrogateescape") + tail

    def _remember(self, key: tuple[object, ...], tail: bytes, *times: object) -> None:
        self.misses += 1
        if any(t.__class__ is float and not t for t in times):
            return
        memo = self.memo
        if len(memo) >= self.MAX:
            memo.clear()
        memo[key] = tail
        if self.misses > 512 and self.misses * 4 > self.seen * 3:
            self.on = False                 # mostly distinct: remembering costs more than it saves


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
