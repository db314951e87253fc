"""The source's MBR boot code and extra partitions, carried into a remastered hybrid.

Three kinds of boot code record an address that moves when the image is rebuilt, and are
re-patched for the new layout:

* GRUB's boot.img with its core in a BIOS boot partition (``sysexport live``): the
  code's ``kernel_sector`` (0x5C) names the partition; the partition's bytes are carried
  and both are patched where the new partition lies (:func:`sysexport.boot.grub.patch_bios_boot`);
* syslinux's isohdpfx.bin and GRUB's boot_hybrid.img (xorriso ``-isohybrid-mbr``,
  grub-mkrescue's ``--grub2-mbr``): they name the El Torito BIOS boot image, which is
  located again (:mod:`sysexport.boot.isohybrid`).  xorriso writes an Apple Partition
  Map's block 0 over boot_hybrid.img's first 8 bytes on grub-mkrescue images; a remaster
  writes no APM, so those bytes become GRUB's own jump again;
* any other code is kept as it is.

Extra partitions (past everything the ISO holds) are copied byte for byte, read from the
source when the image is written.
"""
from __future__ import annotations

import uuid
from typing import Any

from ..boot._structs import GRUB_BOOT_MACHINE_KERNEL_ADDR, GrubBootCode
from ..contribution import BootContribution, BootPatches, PartitionRequest, PlacedBoot
from ..errors import InvalidInputError
from ..iso9660.eltorito import BOOT_X86
from ..partition.enums import GPT_TYPE_BIOS_BOOT
from .data import ExtentsData
from .source import Source, SourcePartition

APM_BLOCK0_MAGIC = b"ER"
"""An Apple Partition Map's driver descriptor (block 0) starts with "ER" (Inside Macintosh)."""
GRUB_BOOT_JUMP = b"\xeb\x63" + b"\x90" * 6
"""The first 8 bytes of GRUB's boot.img and boot_hybrid.img: a jump over the BPB area."""
MAX_CORE_BYTES = 4 << 20
"""GRUB's core in a BIOS boot partition is read whole (to patch its blocklist): at most this."""


def mbr_code(source: Source) -> bytes | None:
    """The source's boot code (440 bytes), with an APM block 0 over GRUB's code undone."""
    code = source.mbr_boot_code
    if code is None:
        return None
    if code.startswith(APM_BLOCK0_MAGIC):
        from ..boot.isohybrid import detect_isohybrid_mbr
        repaired = GRUB_BOOT_JUMP + code[len(GRUB_BOOT_JUMP):]
        if detect_isohybrid_mbr(repaired) is not None:
            return repaired
    return code


def mbr_bootable(source: Source) -> bool:
    """Whether one of the source MBR's partition records is marked active (0x80)."""
    from ..partition.mbr import MBR
    try:
        old = MBR.parse(source.mbr)
    except Exception:
        return False
    return any(p is not None and p.bootable for p in old.partitions)


def isohybrid_kind(code: bytes) -> str | None:
    """"syslinux", "grub2" or None (:func:`sysexport.boot.isohybrid.detect_isohybrid_mbr`)."""
    from ..boot.isohybrid import detect_isohybrid_mbr
    return detect_isohybrid_mbr(code)


def bios_boot_path(source: Source) -> str | None:
    """The El Torito x86 boot image's path (what an isohybrid MBR names)."""
    for b in source.boot:
        if b.platform == BOOT_X86 and b.path is not None:
            return b.path
    return None


def grub_core_partition(source: Source, code: bytes) -> SourcePartition | None:
    """The BIOS boot partition GRUB's boot.img names (``kernel_sector`` = its first LBA)."""
    try:
        boot = GrubBootCode.parse(code[:440])
    except Exception:
        return None
    if boot.kernel_address != GRUB_BOOT_MACHINE_KERNEL_ADDR:
        return None
    for p in source.partitions:
        if p.role == "extra" and p.device_offset == boot.kernel_sector * 512 \
                and p.type.lower() == str(GPT_TYPE_BIOS_BOOT).lower():
            return p
    return None


def _read_partition(source: Source, p: SourcePartition, limit: int) -> bytes:
    if p.size_bytes > limit:
        raise InvalidInputError(f"{source.name}: BIOS boot partition {p.number}: {p.size_bytes} bytes, "
                                f"more than the {limit} a GRUB core takes")
    source.file.seek(p.device_offset)
    data = source.file.read(p.size_bytes)
    if len(data) != p.size_bytes:
        raise InvalidInputError(f"{source.name}: partition {p.number} runs past the end of the image")
    return data


def grub_core_contribution(source: Source, code: bytes, p: SourcePartition) -> BootContribution:
    """GRUB's boot.img and its core (the BIOS boot partition's bytes), patched where the
    new partition lands."""
    from ..boot.grub import patch_bios_boot
    core = _read_partition(source, p, MAX_CORE_BYTES)

    def finalize(placed: PlacedBoot) -> BootPatches:
        (offset, _size), = placed.partitions
        patched_code, patched_core = patch_bios_boot(code, core, offset)
        return BootPatches(mbr_boot_code=patched_code, partition_data=(patched_core,))

    return BootContribution(partitions=(PartitionRequest(GPT_TYPE_BIOS_BOOT, p.size_bytes, p.name or
                                                         "BIOS boot partition", core),),
                            mbr_boot_code=code[:440], finalize=finalize)


def carry_hybrid_boot(hybrid: Any, source: Source) -> list[str]:
    """MBR boot code and extra partitions of ``source`` into ``hybrid`` (see the module
    docstring).  Returns notes on what was re-patched, copied or left out."""
    notes: list[str] = []
    code = mbr_code(source)
    if mbr_bootable(source):
        hybrid.mbr_bootable = True          # BIOSes that boot only an active partition; pycdlib's isohybrid check
    core_part = grub_core_partition(source, code) if code is not None else None
    if code is not None and core_part is not None:
        hybrid.contribute(grub_core_contribution(source, code, core_part))
        notes.append(f"MBR: GRUB boot.img, re-patched for the BIOS boot partition (partition {core_part.number})")
    elif code is not None:
        kind = isohybrid_kind(code)
        path = bios_boot_path(source)
        if kind is not None and path is not None:
            from ..boot.isohybrid import isohybrid_contribution
            hybrid.contribute(isohybrid_contribution(code, path, kind))
            notes.append(f"MBR: {kind} isohybrid code, re-patched for {path}")
        else:
            hybrid.mbr_boot_code = code
            notes.append("MBR: boot code kept as it was")
    for p in source.partitions:
        if p.role != "extra" or p is core_part:
            if p.role == "iso":
                notes.append(f"partition {p.number} ({p.name or p.type}) is part of the source ISO: not carried")
            continue
        type_guid = _gpt_type(p)
        hybrid.add_partition(type_guid, data=ExtentsData(source.file, [(p.device_offset, p.size_bytes)],
                                                         p.size_bytes, f"{source.name}: partition {p.number}"),
                             name=p.name[:36], attributes=p.attributes)
        notes.append(f"partition {p.number} ({p.name or p.type}): {p.size_bytes} bytes copied")
    return notes


MBR_TO_GPT = {"0xef": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "0x83": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
              "0x0c": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "0x07": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"}
"""GPT types for the MBR types of partitions carried from an MBR-only source."""


def _gpt_type(p: SourcePartition) -> uuid.UUID:
    if p.table.startswith("gpt"):
        return uuid.UUID(p.type)
    return uuid.UUID(MBR_TO_GPT.get(p.type.lower(), "0FC63DAF-8483-4772-8E79-3D69D8477DE4"))


GRUB2_BOOT_INFO_OFFSET = 2548
"""xorriso's grub2-boot-info: at byte 2548 of the El Torito boot image (the first blocklist
of the core behind cdboot.img), the image's 512-byte LBA + 5, as a 64-bit number."""
GRUB2_BOOT_INFO_ADD = 5


def patch_grub2_boot_info(plan: Any, source: Source) -> Any:
    """``plan`` (an ISOPlan) with the GRUB blocklist of each boot image that carried one
    (:attr:`SourceBootEntry.grub2_boot_info`) naming the image's new place, so that GRUB's
    boot_hybrid.img MBR finds the rest of the core when the image boots as a disk."""
    import dataclasses
    import struct
    from ..iso9660._structs import FIRST_DESCRIPTOR_LBA
    from ..iso9660.eltorito import patch_boot_info_table
    paths = {b.path for b in source.boot if b.grub2_boot_info and b.path is not None}
    tables = {b.path for b in source.boot if b.boot_info_table and b.path is not None}
    if not paths:
        return plan
    owned = []
    for payload, patched in plan.owned:
        if payload.info.name in paths and payload.extent is not None:
            data = patched if patched is not None else payload.info.source.read_all(64 << 20)
            if len(data) >= GRUB2_BOOT_INFO_OFFSET + 8:
                value = payload.extent.device_offset // 512 + GRUB2_BOOT_INFO_ADD
                data = data[:GRUB2_BOOT_INFO_OFFSET] + struct.pack("<Q", value) + data[GRUB2_BOOT_INFO_OFFSET + 8:]
                if payload.info.name in tables:     # its checksum covers the bytes just patched
                    data = patch_boot_info_table(data, FIRST_DESCRIPTOR_LBA, payload.extent.device_offset // 2048)
                patched = data
        owned.append((payload, patched))
    return dataclasses.replace(plan, owned=tuple(owned))
