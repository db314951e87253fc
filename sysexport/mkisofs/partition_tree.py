"""-partition_offset: a second ISO 9660 superblock and tree, so that partition 1 mounts alone.

xorriso, given ``-partition_offset N`` (2048-byte blocks, 16 or more), lets the MBR/GPT
partition over the ISO start at block N and writes a second set of volume descriptors and
directory trees whose block addresses count from there: mounted from the whole disk (or
the CD) the image shows the first tree, mounted from the partition the second, both
naming the very same file data.  archiso relies on it ("otherwise ... the ISO 9660
partition will not be mountable").

Here the second tree is a second :class:`~sysexport.iso9660.writer.ISO9660` holding the same
entries, every file placed later at its bytes in the image minus the partition's start.
Its metadata (descriptors at the partition's byte 32768, directories, path tables) lies
in a gap the first ISO reserves right after its own descriptors.  It has no El Torito
entries (booting goes through the first superblock); the first tree's catalog is a plain
file of it, as in xorriso's.
:meth:`ISO9660.write` writes at the plan's offsets, so the second tree is written into a
temporary file its size (metadata only, sparse) and copied to the partition's place.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

from ..data import _pwrite_all
from ..extent import Extent, align_up
from ..fileinfo import FileInfo, to_fileinfo
from ..iso9660._structs import SYSTEM_AREA_BYTES
from ..iso9660.writer import ISO9660, ISOPlan
from ..tree import Node

SECTOR = 2048
COPY_CHUNK = 1 << 20
ATTRIBUTES = ("volume_label", "system", "volume_set", "publisher", "preparer", "application", "joliet",
              "rock_ridge", "interchange_level", "relocate_deep_dirs")


class PartitionTree:
    """The second superblock and tree of an image whose partition starts at ``base`` bytes."""

    def __init__(self, first: ISO9660, base: int, infos: Iterable[FileInfo]) -> None:
        self.base = base
        self.iso = ISO9660()
        for attr in ATTRIBUTES:
            setattr(self.iso, attr, getattr(first, attr))
        self.iso.default_time = first.default_time
        self.nodes: dict[int, Node] = {}
        self.catalog: FileInfo | None = None
        for info in infos:
            later = info.is_file and info.size > 0
            node = self.iso.add(info, placed_later=later)
            if later:
                self.nodes[id(info)] = node

    def add_catalog(self, path: str, size_bytes: int, mtime: float) -> None:
        """The first tree's El Torito catalog as a file of this one (xorriso's partition
        tree lists it too), placed at the catalog's bytes."""
        self.catalog = to_fileinfo({"name": path, "mode": 0o100444, "mtime": mtime, "data": bytes(size_bytes)})
        self.nodes[id(self.catalog)] = self.iso.add(self.catalog, placed_later=True)

    def plan_metadata(self) -> ISOPlan:
        """The second tree's own layout (offsets from the partition's start)."""
        return self.iso.plan()

    def reserve_bytes(self, plan: ISOPlan, descriptors_end: int) -> int:
        """How much the first ISO must leave free after its descriptors (which end at byte
        ``descriptors_end`` of the image) for this tree's metadata."""
        return align_up(self.base + plan.end_bytes - descriptors_end, SECTOR)

    def extent(self, plan: ISOPlan) -> Extent:
        """Where this tree's descriptors and metadata lie in the image."""
        return Extent(self.base + SYSTEM_AREA_BYTES, plan.end_bytes - SYSTEM_AREA_BYTES,
                      "partition's ISO 9660 metadata")

    def place(self, plan: ISOPlan, files: Iterable[tuple[FileInfo, int]], volume_end: int,
              centiseconds: int | None) -> ISOPlan:
        """Every file at its bytes in the image (``files``: info, device offset), relative
        to the partition; the volume up to ``volume_end`` of the image."""
        placed = [(self.nodes[id(info)], offset - self.base) for info, offset in files if id(info) in self.nodes]
        plan = self.iso.place(plan, placed, volume_size_bytes=volume_end - self.base)
        if centiseconds is not None:
            import dataclasses
            plan = dataclasses.replace(plan, centiseconds=centiseconds)
        return plan

    def write(self, fd: int, plan: ISOPlan) -> None:
        """Write the second tree's metadata at the partition's place in ``fd``."""
        with tempfile.TemporaryFile(prefix="sysexport-partition-tree-") as tmp:
            os.ftruncate(tmp.fileno(), plan.end_bytes)
            self.iso.write(tmp.fileno(), plan)
            offset = SYSTEM_AREA_BYTES
            while offset < plan.end_bytes:
                chunk = os.pread(tmp.fileno(), min(COPY_CHUNK, plan.end_bytes - offset), offset)
                if not chunk:
                    break
                _pwrite_all(fd, chunk, self.base + offset)
                offset += len(chunk)
