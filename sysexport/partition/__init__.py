"""Partition tables: the MBR (legacy and GPT-protective) and the GUID Partition Table.

UEFI 2.10 chapter 5.  :class:`GPT` writes one table for one block size; a hybrid image
derives a second one (:meth:`GPT.derive`) describing the same partitions.
"""
from __future__ import annotations

from .gpt import (GPT, GPT_ATTR_LEGACY_BIOS_BOOTABLE, GPT_ATTR_NO_BLOCK_IO_PROTOCOL, GPT_ATTR_REQUIRED_PARTITION,
                  GPT_TYPE_BIOS_BOOT, GPT_TYPE_ESP, GPT_TYPE_LINUX_FS, GPT_TYPE_MS_BASIC_DATA, GPTLayout,
                  GPTPartition)
from .mbr import MBR, MBR_TYPE_EFI_SYSTEM, MBR_TYPE_GPT_PROTECTIVE, MBRPartition

__all__ = ["MBR", "MBRPartition", "MBR_TYPE_GPT_PROTECTIVE", "MBR_TYPE_EFI_SYSTEM",
           "GPT", "GPTPartition", "GPTLayout", "GPT_TYPE_ESP", "GPT_TYPE_BIOS_BOOT", "GPT_TYPE_LINUX_FS",
           "GPT_TYPE_MS_BASIC_DATA", "GPT_ATTR_REQUIRED_PARTITION", "GPT_ATTR_NO_BLOCK_IO_PROTOCOL",
           "GPT_ATTR_LEGACY_BIOS_BOOTABLE"]
