"""Partition type identifiers, attribute bits and their names, each stated once.

The values that fill the fields declared in :mod:`._structs` (as pyelftools keeps
``elf/enums.py`` beside ``elf/structs.py``): GPT partition type GUIDs and attribute bits
(UEFI 2.10 5.3.3, Tables 5-7 and 5-8), MBR partition types and the boot indicator (UEFI
5.2.1-5.2.3).  The GPT and MBR writers, their readers and ``sysexport inspect`` import them.
"""
from __future__ import annotations

import uuid

# --- GPT partition type GUIDs (UEFI Table 5-7 and the registries of the systems named) ----
GPT_TYPE_ESP = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
"""EFI System Partition (UEFI 5.3.3, Table 5-7)."""
GPT_TYPE_BIOS_BOOT = uuid.UUID("21686148-6449-6E6F-744E-656564454649")
"""GRUB's BIOS boot partition ("Hah!IdontNeedEFI")."""
GPT_TYPE_LINUX_FS = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
"""Linux filesystem data."""
GPT_TYPE_MS_BASIC_DATA = uuid.UUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
"""Microsoft basic data (FAT/NTFS data partitions)."""

GPT_TYPE_NAMES = {
    GPT_TYPE_ESP: "EFI System",
    GPT_TYPE_BIOS_BOOT: "BIOS boot",
    GPT_TYPE_LINUX_FS: "Linux filesystem",
    GPT_TYPE_MS_BASIC_DATA: "Microsoft basic data",
}
"""PartitionTypeGUID -> name (the names sgdisk and fdisk show)."""

# --- GPT partition attribute bits (UEFI 5.3.3, Table 5-8) --------------------------------
GPT_ATTR_REQUIRED_PARTITION = 1 << 0
"""Bit 0: the platform needs this partition to function; do not delete or modify it."""
GPT_ATTR_NO_BLOCK_IO_PROTOCOL = 1 << 1
"""Bit 1: firmware must not produce an EFI_BLOCK_IO_PROTOCOL for this partition."""
GPT_ATTR_LEGACY_BIOS_BOOTABLE = 1 << 2
"""Bit 2: legacy BIOS bootable (the GPT equivalent of an active MBR entry)."""

# --- MBR partition record (UEFI 5.2.1, Table 5-2) ----------------------------------------
MBR_TYPE_EMPTY = 0x00
"""OSType of an unused record."""
MBR_TYPE_GPT_PROTECTIVE = 0xEE
"""OSType of the protective MBR's single record (UEFI 5.2.3)."""
MBR_TYPE_EFI_SYSTEM = 0xEF
"""OSType of an EFI system partition in a legacy MBR (UEFI 5.2.2)."""

MBR_TYPE_NAMES = {
    MBR_TYPE_EMPTY: "empty",
    MBR_TYPE_GPT_PROTECTIVE: "GPT protective",
    MBR_TYPE_EFI_SYSTEM: "EFI System",
}
"""OSType -> name."""

BOOT_INDICATOR_ACTIVE = 0x80
"""BootIndicator of a bootable (legacy "active") record; 0x00 otherwise."""
BOOT_INDICATOR_INACTIVE = 0x00
