"""GRUB's on-disk pieces that sysexport patches: boot.img's fields and diskboot.img's blocklist.

Facts from GRUB 2.06's sources (grub-core/boot/i386/pc/boot.S, include/grub/i386/pc/boot.h,
include/grub/offsets.h, util/setup.c); the patches themselves are made by
:func:`sysexport.boot.grub.patch_bios_boot`.
"""
from __future__ import annotations

from construct import Bytes, Int8ul, Int16ul, Int64ul, Struct

from ..partition.mbr import BOOT_CODE_MAX_BYTES

SECTOR_BYTES = 512
MBR_BOOT_CODE_BYTES = BOOT_CODE_MAX_BYTES
"""Bytes of boot code before the MBR's disk signature (UEFI 2.x 5.2.1, Table 5-1)."""
GRUB_BOOT_MACHINE_KERNEL_ADDR = 0x8000
"""boot.img's load address of the first core sector (include/grub/i386/pc/boot.h)."""
GRUB_BOOT_DRIVE_FROM_BIOS = 0xFF
"""boot.img ``boot_drive``: 0xff means "the drive number the BIOS passed in DL"."""
GRUB_DRIVE_CHECK_NOPS = b"\x90\x90"
"""grub-bios-setup replaces the 2-byte ``jmp`` at boot_drive_check with two nops for a hard
disk, enabling the workaround for BIOSes that pass a bogus DL (util/setup.c)."""
GRUB_FIRST_BLOCKLIST_OFFSET = SECTOR_BYTES - 12
"""diskboot.img's first blocklist entry occupies the last 12 bytes of core.img's first
sector; further entries grow downwards (GRUB_BOOT_MACHINE_LIST_SIZE = 12)."""
GRUB_FIRST_BLOCKLIST_SEGMENT = 0x820
"""Load segment of core sector 1: GRUB_BOOT_I386_PC_KERNEL_SEG 0x800 + 512 >> 4."""

GrubBootCode = Struct(
    # GRUB's boot.img (grub-core/boot/i386/pc/boot.S, include/grub/i386/pc/boot.h), the
    # first 440 bytes that go into the MBR.
    "jump" / Bytes(3),                 # 0x00: jmp after_BPB; nop
    "bpb" / Bytes(0x5A - 0x03),        # 0x03: room for a FAT BPB (GRUB_BOOT_MACHINE_BPB_START..END)
    "kernel_address" / Int16ul,        # 0x5A: 0x8000, where the first core sector is loaded
    "kernel_sector" / Int64ul,         # 0x5C: GRUB_BOOT_MACHINE_KERNEL_SECTOR, LBA of core's first sector
    "boot_drive" / Int8ul,             # 0x64: GRUB_BOOT_MACHINE_BOOT_DRIVE, 0xff = use DL
    "cli" / Bytes(1),                  # 0x65: cli
    "boot_drive_check" / Bytes(2),     # 0x66: GRUB_BOOT_MACHINE_DRIVE_CHECK, jmp (nops on a hard disk)
    "code" / Bytes(MBR_BOOT_CODE_BYTES - 0x68),  # 0x68..0x1B7: the rest of the loader
)

GrubBlocklist = Struct(
    # struct grub_pc_bios_boot_blocklist (include/grub/offsets.h), packed, 12 bytes.
    "start" / Int64ul,                 # +0: first sector (LBA, 512-byte units, from the disk's start)
    "len" / Int16ul,                   # +8: number of sectors
    "segment" / Int16ul,               # +10: real-mode segment to load them to
)
