"""The system area of a remastered plain ISO: MBR boot code and partitions, laid out anew.

The ISO9660 writer never writes its 32 KiB system area (ECMA-119 6.2.1); images made by
xorriso keep an MBR there (isohybrid boot code, a partition table) and often a GPT.  A
remaster writes them again for the new layout, as :func:`finish_with_system_area`:

1. the ISO is planned and placed as ``ISO9660.finish()`` would (padding included);
2. partitions that covered a file of the tree (grub-mkrescue's ``/efi.img`` as the EFI
   System Partition) cover that file's new extent; partitions that followed the ISO
   (xorriso ``-append_partition``) follow it again, their bytes copied from the source, and
   so does the ESP of a hybrid source when an El Torito entry boots it (a FAT volume is
   position independent);
   a partition that started at 0 and covered the ISO (isohybrid's MBR partition 1) covers
   the new ISO; pieces of the ISO itself (xorriso's gap and HFS+ partitions) are left out;
3. the MBR: the source's boot code, re-patched when it is an isohybrid code naming the El
   Torito boot image (:mod:`sysexport.boot.isohybrid`), and either a protective entry (a
   source with a GPT; the GPT for 512-byte blocks written with its arrays in the system
   area and its backup at the end, UEFI 5.3) or the partitions as MBR entries.

Without boot code or partitions in the source, the system area stays zero, as a plain
``ISO9660.finish()`` leaves it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InternalError
from ..extent import Extent, align_up
from ..iso9660._structs import SECTOR_BYTES
from ..output import Output
from ..partition.gpt import GPT
from ..partition.mbr import MBR, MBRPartition
from .boot import _gpt_type, bios_boot_path, grub_core_partition, isohybrid_kind, mbr_bootable, mbr_code
from .data import ExtentsData
from .source import Source, SourcePartition

if TYPE_CHECKING:
    from . import RemasteredISO9660

GPT_BACKUP_BYTES = 512 + 128 * 128
"""The backup header and its 128-entry array at the end of the device (UEFI 5.3.2)."""
GPT_ENTRIES_OFFSET = 1024
"""The primary array right after the primary header (LBA 2), inside the system area."""


@dataclass
class Placed:
    """A partition of the new image: the source's record, its byte range, its data."""

    part: SourcePartition
    device_offset: int
    size_bytes: int
    data: Any = None


def _place(iso: RemasteredISO9660, source: Source, iso_size: int) -> tuple[list[Placed], int]:
    """Every partition carried, with its new place; returns them and the device's end."""
    placed: list[Placed] = []
    end = iso_size
    booted = set(getattr(iso, "remaster_boot_partitions", {}).values())
    for p in source.partitions:
        if p.role == "file" and p.path is not None:
            where = iso.lookup(p.path)
            if where.device_offset is not None:
                placed.append(Placed(p, where.device_offset, align_up(where.size_bytes, 512)))
        elif p.role == "extra" or (p.role == "esp" and p.number in booted):
            offset = align_up(end, SECTOR_BYTES)
            data = ExtentsData(source.file, [(p.device_offset, p.size_bytes)], p.size_bytes,
                               f"{source.name}: partition {p.number}")
            placed.append(Placed(p, offset, align_up(p.size_bytes, 512), data))
            end = offset + align_up(p.size_bytes, 512)
        elif p.role == "iso" and p.device_offset == 0 and not p.table.startswith("gpt"):
            placed.append(Placed(p, 0, iso_size))       # isohybrid's partition 1: the whole ISO
    return placed, end


def _boot_code(iso: RemasteredISO9660, source: Source, placed: list[Placed]) -> bytes | None:
    """The MBR's boot code for the new layout: an isohybrid code naming the El Torito
    image's new place, GRUB's boot.img naming its BIOS boot partition's (whose core is
    patched to match), or the source's code as it was."""
    code = mbr_code(source)
    if code is None:
        return None
    core_part = grub_core_partition(source, code)
    item = next((i for i in placed if i.part is core_part), None)
    if core_part is not None and item is not None:
        from ..boot.grub import patch_bios_boot
        from ..data import BytesData
        from .boot import MAX_CORE_BYTES, _read_partition
        patched, core = patch_bios_boot(code, _read_partition(source, core_part, MAX_CORE_BYTES), item.device_offset)
        item.data = BytesData(core)
        iso.remaster_notes.append(f"MBR: GRUB boot.img, re-patched for the BIOS boot partition at byte "
                                  f"{item.device_offset}")
        return patched
    kind = isohybrid_kind(code)
    path = bios_boot_path(source)
    if kind is not None and path is not None:
        from ..boot.isohybrid import patch_isohybrid_mbr
        where = iso.lookup(path)
        if where.device_offset is None:
            raise InternalError(f"{path}: the El Torito boot image has no extent after plan()")
        iso.remaster_notes.append(f"MBR: {kind} isohybrid code, re-patched for {path}")
        return patch_isohybrid_mbr(code, where.device_offset // SECTOR_BYTES, kind)
    iso.remaster_notes.append("MBR: boot code kept as it was")
    return code


def _gpt(placed: list[Placed], device_size: int, identity: Any) -> tuple[GPT, Any]:
    gpt = GPT(block_size=512)
    extents: dict[int, tuple[int, int]] = {}
    data: dict[int, Any] = {}
    for item in placed:
        p = item.part
        part = gpt.add_partition(_gpt_type(p), size_bytes=item.size_bytes, name=p.name[:36],
                                 attributes=p.attributes)
        index = part.index or 0
        extents[index] = (item.device_offset, item.size_bytes)
        if item.data is not None:
            data[index] = item.data
    first_usable = align_up(GPT_ENTRIES_OFFSET + 128 * 128, 512) // 512
    layout = gpt.layout(device_size, extents=extents, data=data, identity=identity,
                        primary_entries_offset=GPT_ENTRIES_OFFSET,
                        first_usable_lba=first_usable)
    return gpt, layout


def _mbr_entries(placed: list[Placed]) -> list[MBRPartition | None]:
    out: list[MBRPartition | None] = [None] * 4
    for item in placed:
        p = item.part
        slot = p.number - 1 if 1 <= p.number <= 4 and out[p.number - 1] is None else \
            next((i for i, e in enumerate(out) if e is None), None)
        if slot is None:
            continue
        type_id = int(p.type, 16) if p.type.startswith("0x") else 0x83
        out[slot] = MBRPartition(type_id, item.device_offset // 512, item.size_bytes // 512,
                                 bootable=False)
    return out


def finish_with_system_area(iso: RemasteredISO9660, source: Source) -> Any:
    """``ISO9660.finish()`` with the source's system area written anew (module docstring)."""
    iso._require_unfinished("finish()")
    if iso.filename is None and iso.filehandle is None:
        from ..errors import InvalidInputError
        raise InvalidInputError("ISO9660: set filename or filehandle before finish()")
    plan = iso.plan()
    iso_size = align_up(plan.end_bytes + iso.padding_bytes, SECTOR_BYTES)
    plan = iso.place(plan, volume_size_bytes=iso_size)
    placed, end = _place(iso, source, iso_size)
    boot_extents = {}
    for index, number in getattr(iso, "remaster_boot_partitions", {}).items():
        item = next((i for i in placed if i.part.number == number), None)
        if item is None:
            raise InternalError(f"El Torito entry {index}: its partition {number} was not placed")
        boot_extents[index] = Extent(item.device_offset, item.size_bytes, f"partition {number}")
    if boot_extents:
        plan = iso.place(plan, boot_extents=boot_extents)
    code = _boot_code(iso, source, placed)
    with_gpt = any(p.table.startswith("gpt") for p in source.partitions) and \
        any(item.part.table.startswith("gpt") for item in placed)
    device_size = align_up(end, 512) + (GPT_BACKUP_BYTES if with_gpt else 0)
    with Output(iso.filename, iso.filehandle) as out:
        out.prepare(device_size)
        iso.write(out.fd, plan)
        if with_gpt:
            from ..identity import BuildIdentity
            gpt, layout = _gpt([i for i in placed if i.part.table.startswith("gpt")], device_size,
                               BuildIdentity(plan.content_digest) if iso.reproducible else BuildIdentity(None))
            gpt.write(out.fd, layout)
            mbr = MBR.protective(device_size, 512, bootable=mbr_bootable(source))
        else:
            for item in placed:
                if item.data is not None:
                    item.data.write_to(out.fd, item.device_offset)
            mbr = MBR(partitions=_mbr_entries(placed), disk_signature=_disk_signature(source), strict=False)
            if placed and mbr_bootable(source):
                first = next((e for e in mbr.partitions if e is not None), None)
                if first is not None:
                    first.bootable = True
        if code is not None:
            mbr.set_boot_code(code)
        if code is not None or placed:
            out_bytes = mbr.to_bytes()
            _pwrite(out.fd, out_bytes, 0)
            for item in placed:
                iso.remaster_notes.append(f"partition {item.part.number} ({item.part.name or item.part.type}) at "
                                          f"byte {item.device_offset}, {item.size_bytes} bytes")
    iso._mark_finished()
    return plan


def _disk_signature(source: Source) -> int:
    sig = int.from_bytes(source.mbr[440:444], "little")
    return sig or uuid.uuid4().int & 0xFFFFFFFF


def _pwrite(fd: int, blob: bytes, offset: int) -> None:
    from ..data import pwrite_all
    pwrite_all(fd, blob, offset)
