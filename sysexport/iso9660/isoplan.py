"""The plan an ISO 9660 writer returns (:meth:`~.writer.ISO9660.plan`) and what its
lookup() tells: values only, made by :mod:`.writer`."""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from ..errors import InternalError, InvalidInputError
from ..extent import Extent
from . import layout as _lay
from .layout import Payload


@dataclass(frozen=True, slots=True)
class RecordPlace:
    """One directory record that names an entry, in one namespace (what a caller who
    patches or checks an image's bytes needs; pycdlib's force_consistency view).

    ``namespace``: "iso9660" (the record carries the Rock Ridge entries), "joliet" or
    "fat"; ``identifier``: the name as recorded (``NAME.EXT;1``, the Joliet name, FAT's
    long name); ``record_offset``/``record_bytes``: the record's device offset and length
    (a FAT entry's long-name entries included); ``extent``: the bytes the record points at
    (device offset and data length; None for an empty file).  A file of 4 GiB or more has
    one record per section."""

    namespace: str
    identifier: str
    record_offset: int
    record_bytes: int
    extent: Extent | None


@dataclass(frozen=True, slots=True)
class Located:
    """What lookup() returns: where a file's (or directory's) bytes are on the device,
    and (``records``) every directory record that names it, namespace by namespace."""

    device_offset: int | None
    size_bytes: int
    records: tuple[RecordPlace, ...] = ()

    def record(self, namespace: str) -> RecordPlace:
        """The (first) record of ``namespace``; InvalidInputError when none names it."""
        for r in self.records:
            if r.namespace == namespace:
                return r
        raise InvalidInputError(f"no record names this entry in {namespace!r} (it is hidden from it, "
                                "or the image has no such tree)")


PathTable = tuple[tuple[_lay.DirOut, ...], int, Extent, Extent]
"""(directories in path table order, table size in bytes, L table extent, M table extent)."""


@dataclass(frozen=True, eq=False)
class ISOPlan:
    """The complete layout of an ISO 9660 image (what :meth:`ISO9660.plan` returns).

    ``end_bytes`` is the end of everything the ISO placed itself; ``volume_size_bytes`` the
    Volume Space Size the descriptors record (ECMA-119 8.4.8): ``end_bytes`` until
    :meth:`ISO9660.place` or :meth:`ISO9660.finish` says otherwise.  ``reserved_extent`` is
    the gap after the volume descriptors that is never written (the hybrid puts its
    512-byte GPT entry array there).  ``complete`` is False while files added with
    ``placed_later=True`` (or catalog entries given no extent) wait for :meth:`ISO9660.place`.

    The directory hierarchies and payloads it refers to belong to this plan; a later
    ``plan()`` of the same writer makes new ones (and this plan is then stale).
    """

    generation: int
    end_bytes: int
    volume_size_bytes: int
    reserved_extent: Extent
    descriptors: Extent
    catalog: Extent | None
    iso_dirs: tuple[_lay.DirOut, ...]
    joliet_dirs: tuple[_lay.DirOut, ...]
    tables: tuple[PathTable, ...]
    owned: tuple[tuple[Payload, bytes | None], ...]
    waiting: tuple[Payload, ...]
    boot_extents: tuple[Extent | None, ...]
    boot_own: tuple[Extent | None, ...]
    rr_mod: ModuleType | None
    extents: tuple[Extent, ...]
    centiseconds: int = 0
    """The centiseconds of the volume dates (the UUID blkid shows): from the content
    digest when reproducible, else random."""
    content_digest: bytes | None = None
    """Digest of everything added (reproducible builds only), for a coordinator's identifiers."""

    @property
    def complete(self) -> bool:
        """True when every file and catalog entry has its bytes placed."""
        return (all(p.offset >= 0 for p in self.waiting)
                and all(e is not None for e in self.boot_extents))


def _extent(d: _lay.DirOut) -> Extent:
    if d.extent is None:
        raise InternalError(f"{d.info.name or '/'}: directory without an extent after plan()")
    return d.extent
