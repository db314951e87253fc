"""ISO 9660 (ECMA-119) with Joliet, Rock Ridge (SUSP 1.12, RRIP 1.09/1.12) and El Torito.

The writer is :class:`sysexport.iso9660.writer.ISO9660`; declarations are in ``_structs``.
"""
from __future__ import annotations

from .eltorito import (BOOT_EFI, BOOT_MAC, BOOT_PPC, BOOT_X86, EMU_FLOPPY12, EMU_FLOPPY144, EMU_FLOPPY288,
                       EMU_HDD, EMU_NONE, BootEntry)
from .layout import FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_HIDDEN, FLAG_MULTI_EXTENT, FLAG_PROTECTION, FLAG_RECORD
from .writer import ISO9660

__all__ = ["ISO9660", "BootEntry", "BOOT_X86", "BOOT_PPC", "BOOT_MAC", "BOOT_EFI", "EMU_NONE", "EMU_FLOPPY12",
           "EMU_FLOPPY144", "EMU_FLOPPY288", "EMU_HDD", "FLAG_HIDDEN", "FLAG_DIRECTORY", "FLAG_ASSOCIATED",
           "FLAG_RECORD", "FLAG_PROTECTION", "FLAG_MULTI_EXTENT"]
