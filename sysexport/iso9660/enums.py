"""Constants and name tables of ECMA-119 (ISO 9660), Joliet and El Torito, each stated once.

The values that fill the fields declared in :mod:`._structs` live here (as pyelftools
keeps ``elf/enums.py`` beside ``elf/structs.py``); the writer, the reader, El Torito and
``sysexport inspect`` import them from this module.  Rock Ridge's (SUSP/RRIP) constants
live beside their declarations in :mod:`._rrstructs`.
"""
from __future__ import annotations

# --- ECMA-119 8.1.1: volume descriptor types ----------------------------------------------
VD_TYPE_BOOT_RECORD = 0         # ECMA-119 8.2
VD_TYPE_PRIMARY = 1             # ECMA-119 8.4
VD_TYPE_SUPPLEMENTARY = 2       # ECMA-119 8.5 (Joliet)
VD_TYPE_TERMINATOR = 255        # ECMA-119 8.3

# --- ECMA-119 9.1.6: file flags of a directory record -----------------------------------
FLAG_HIDDEN = 0x01          # bit 0: Existence ("hidden")
FLAG_DIRECTORY = 0x02       # bit 1: Directory
FLAG_ASSOCIATED = 0x04      # bit 2: Associated File
FLAG_RECORD = 0x08          # bit 3: Record format in the extended attribute record
FLAG_PROTECTION = 0x10      # bit 4: Protection in the extended attribute record
FLAG_MULTI_EXTENT = 0x80    # bit 7: not the final directory record of the file
USER_FLAGS = FLAG_HIDDEN | FLAG_ASSOCIATED
"""The flags a caller may set on a file (FileInfo.ISO9660_flags); the others are the writer's."""

# --- Joliet: escape sequences of the supplementary volume descriptor (ECMA-119 8.5.6) ---
JOLIET_ESCAPE_LEVEL1 = b"%/@"
JOLIET_ESCAPE_LEVEL2 = b"%/C"
JOLIET_ESCAPE_LEVEL3 = b"%/E"   # the one the writer records (UCS-2 level 3)
JOLIET_ESCAPES = {JOLIET_ESCAPE_LEVEL1: 1, JOLIET_ESCAPE_LEVEL2: 2, JOLIET_ESCAPE_LEVEL3: 3}
"""Joliet specification: escape sequence -> UCS-2 level."""

# --- El Torito 1.0 -----------------------------------------------------------------------
EL_TORITO_ID = b"EL TORITO SPECIFICATION"
"""El Torito 2.0: boot system identifier of the boot record volume descriptor (zero padded to 32)."""

BOOT_X86 = 0      # El Torito 2.1: platform ID 80x86
BOOT_PPC = 1      # Power PC
BOOT_MAC = 2      # Mac
BOOT_EFI = 0xEF   # UEFI 2.x, 12.3.2.1 (EFI platform ID)
PLATFORM_NAMES = {BOOT_X86: "x86 BIOS", BOOT_PPC: "PowerPC", BOOT_MAC: "Mac", BOOT_EFI: "UEFI"}
"""Platform ID (validation entry, section headers) -> the name ``sysexport inspect`` shows."""

EMU_NONE = 0        # El Torito 2.2: boot media type, no emulation
EMU_FLOPPY12 = 1    # 1.2 MB diskette
EMU_FLOPPY144 = 2   # 1.44 MB diskette
EMU_FLOPPY288 = 3   # 2.88 MB diskette
EMU_HDD = 4         # hard disk
MEDIA_TYPE_NAMES = {EMU_NONE: "no emulation", EMU_FLOPPY12: "1.2M floppy", EMU_FLOPPY144: "1.44M floppy",
                    EMU_FLOPPY288: "2.88M floppy", EMU_HDD: "hard disk"}
"""Boot media type (initial and section entries, bits 0-3) -> name."""

BOOTABLE = 0x88             # El Torito 2.2: boot indicator of a bootable entry
NOT_BOOTABLE = 0x00         # ... and of one that is not
HEADER_MORE = 0x90          # El Torito 2.3: header indicator, more headers follow
HEADER_LAST = 0x91          # ... this is the last section header
EXTENSION_INDICATOR = 0x44  # El Torito 2.5: a section entry extension follows
VIRTUAL_SECTOR_BYTES = 512  # El Torito 2.2: sector_count counts virtual 512-byte sectors
