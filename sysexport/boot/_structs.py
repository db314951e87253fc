"""GRUB's on-disk pieces that sysexport patches or reads: boot.img's fields, diskboot.img's
blocklist, GRUB's module area; and PE/COFF, the format of every UEFI image (shim, GRUB, the
kernel's EFI stub), as far as the Secure Boot checks read it.

Facts from GRUB 2.06's sources (grub-core/boot/i386/pc/boot.S, include/grub/i386/pc/boot.h,
include/grub/offsets.h, util/setup.c); the patches themselves are made by
:func:`sysexport.boot.grub.patch_bios_boot`.
"""
from __future__ import annotations

from construct import Array, Bytes, If, IfThenElse, Int8ul, Int16ul, Int32ul, Int64ul, Struct, this

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


# -- PE/COFF (the format of every UEFI image: shim, GRUB, the Linux kernel's EFI stub) -----------
#
# Microsoft's "PE Format" specification (the names and offsets below are its own): the MS-DOS
# stub's e_lfanew at 0x3C points at the "PE\0\0" signature, then the COFF file header, the
# optional header (PE32 or PE32+) with its data directories, then the section table.  Data
# directory 4 (IMAGE_DIRECTORY_ENTRY_SECURITY) is the attribute certificate table: unlike
# every other directory its VirtualAddress is a *file offset*; it holds WIN_CERTIFICATE
# entries, each 8-byte aligned; an Authenticode signature is one of type
# WIN_CERT_TYPE_PKCS_SIGNED_DATA (a PKCS#7 SignedData, what sbsign and signtool write and
# what shim and UEFI's db check).

IMAGE_DOS_SIGNATURE = b"MZ"
IMAGE_DOS_LFANEW_OFFSET = 0x3C
IMAGE_NT_SIGNATURE = b"PE\0\0"
IMAGE_NT_OPTIONAL_HDR32_MAGIC = 0x10B
IMAGE_NT_OPTIONAL_HDR64_MAGIC = 0x20B
IMAGE_NUMBEROF_DIRECTORY_ENTRIES = 16
IMAGE_DIRECTORY_ENTRY_SECURITY = 4
IMAGE_FILE_MACHINE_I386 = 0x014C
IMAGE_FILE_MACHINE_AMD64 = 0x8664
IMAGE_FILE_MACHINE_ARM64 = 0xAA64
IMAGE_FILE_MACHINE_RISCV64 = 0x5064
PE_MACHINE_NAMES = {IMAGE_FILE_MACHINE_I386: "i386", IMAGE_FILE_MACHINE_AMD64: "x86-64 (amd64)",
                    IMAGE_FILE_MACHINE_ARM64: "AArch64 (arm64)", IMAGE_FILE_MACHINE_RISCV64: "RISC-V 64 (riscv64)"}
WIN_CERT_REVISION_1_0 = 0x0100
WIN_CERT_REVISION_2_0 = 0x0200
WIN_CERT_TYPE_X509 = 0x0001
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002
WIN_CERT_TYPE_EFI_GUID = 0x0EF1
"""WIN_CERTIFICATE wCertificateType values (PE Format, "The Attribute Certificate Table";
UEFI 2.10 32.2.4 WIN_CERTIFICATE_EFI_GUID)."""
WIN_CERTIFICATE_ALIGN = 8

ImageDosHeader = Struct(
    # IMAGE_DOS_HEADER: only its magic and the offset of the PE signature matter to UEFI.
    "e_magic" / Bytes(2),              # 0x00: "MZ"
    "e_stub" / Bytes(IMAGE_DOS_LFANEW_OFFSET - 2),   # 0x02..0x3B: the MS-DOS header fields
    "e_lfanew" / Int32ul,              # 0x3C: file offset of the "PE\0\0" signature
)

ImageFileHeader = Struct(
    # IMAGE_FILE_HEADER, the COFF file header (20 bytes), right after "PE\0\0".
    "Machine" / Int16ul,               # +0: IMAGE_FILE_MACHINE_*
    "NumberOfSections" / Int16ul,      # +2
    "TimeDateStamp" / Int32ul,         # +4
    "PointerToSymbolTable" / Int32ul,  # +8
    "NumberOfSymbols" / Int32ul,       # +12
    "SizeOfOptionalHeader" / Int16ul,  # +16: the section table follows the optional header
    "Characteristics" / Int16ul,       # +18
)

ImageDataDirectory = Struct(
    "VirtualAddress" / Int32ul,        # an RVA; for the certificate table a file offset
    "Size" / Int32ul,
)

_pe32plus = this.Magic == IMAGE_NT_OPTIONAL_HDR64_MAGIC
ImageOptionalHeader = Struct(
    # IMAGE_OPTIONAL_HEADER32 / IMAGE_OPTIONAL_HEADER64 (PE32+: 64-bit ImageBase and sizes,
    # no BaseOfData).  Offsets are PE32+'s; PE32's differ from ImageBase on.
    "Magic" / Int16ul,                 # +0: 0x10B PE32, 0x20B PE32+
    "MajorLinkerVersion" / Int8ul,     # +2
    "MinorLinkerVersion" / Int8ul,     # +3
    "SizeOfCode" / Int32ul,            # +4
    "SizeOfInitializedData" / Int32ul,     # +8
    "SizeOfUninitializedData" / Int32ul,   # +12
    "AddressOfEntryPoint" / Int32ul,   # +16
    "BaseOfCode" / Int32ul,            # +20
    "BaseOfData" / If(this.Magic == IMAGE_NT_OPTIONAL_HDR32_MAGIC, Int32ul),   # PE32 only
    "ImageBase" / IfThenElse(_pe32plus, Int64ul, Int32ul),                  # +24
    "SectionAlignment" / Int32ul,      # +32
    "FileAlignment" / Int32ul,         # +36
    "MajorOperatingSystemVersion" / Int16ul,
    "MinorOperatingSystemVersion" / Int16ul,
    "MajorImageVersion" / Int16ul,
    "MinorImageVersion" / Int16ul,
    "MajorSubsystemVersion" / Int16ul,
    "MinorSubsystemVersion" / Int16ul,
    "Win32VersionValue" / Int32ul,     # +52
    "SizeOfImage" / Int32ul,           # +56
    "SizeOfHeaders" / Int32ul,         # +60
    "CheckSum" / Int32ul,              # +64
    "Subsystem" / Int16ul,             # +68: 10 EFI application, 11 boot service driver, ...
    "DllCharacteristics" / Int16ul,    # +70
    "SizeOfStackReserve" / IfThenElse(_pe32plus, Int64ul, Int32ul),   # +72
    "SizeOfStackCommit" / IfThenElse(_pe32plus, Int64ul, Int32ul),
    "SizeOfHeapReserve" / IfThenElse(_pe32plus, Int64ul, Int32ul),
    "SizeOfHeapCommit" / IfThenElse(_pe32plus, Int64ul, Int32ul),
    "LoaderFlags" / Int32ul,           # +104
    "NumberOfRvaAndSizes" / Int32ul,   # +108
    "DataDirectory" / Array(lambda ctx: min(ctx.NumberOfRvaAndSizes, IMAGE_NUMBEROF_DIRECTORY_ENTRIES),
                            ImageDataDirectory),    # +112: EXPORT, IMPORT, RESOURCE, EXCEPTION, SECURITY, ...
)

ImageNtHeaders = Struct(
    # What e_lfanew points at: the signature, the COFF header, the optional header.
    "Signature" / Bytes(4),            # "PE\0\0"
    "FileHeader" / ImageFileHeader,
    "OptionalHeader" / ImageOptionalHeader,
)

ImageSectionHeader = Struct(
    # IMAGE_SECTION_HEADER (40 bytes); the table starts right after the optional header
    # (e_lfanew + 24 + SizeOfOptionalHeader).
    "Name" / Bytes(8),                 # +0: NUL-padded (".text", "mods", ".sbat", ...)
    "VirtualSize" / Int32ul,           # +8
    "VirtualAddress" / Int32ul,        # +12
    "SizeOfRawData" / Int32ul,         # +16
    "PointerToRawData" / Int32ul,      # +20: file offset of the section's bytes
    "PointerToRelocations" / Int32ul,
    "PointerToLinenumbers" / Int32ul,
    "NumberOfRelocations" / Int16ul,
    "NumberOfLinenumbers" / Int16ul,
    "Characteristics" / Int32ul,       # +36
)
IMAGE_SIZEOF_SECTION_HEADER = 40

WinCertificate = Struct(
    # WIN_CERTIFICATE: one entry of the attribute certificate table; bCertificate follows
    # (dwLength - 8 bytes), and the next entry starts at the next multiple of 8.
    "dwLength" / Int32ul,              # +0: of the whole entry, header included
    "wRevision" / Int16ul,             # +4: WIN_CERT_REVISION_2_0
    "wCertificateType" / Int16ul,      # +6: WIN_CERT_TYPE_PKCS_SIGNED_DATA for Authenticode
)
WIN_CERTIFICATE_HEADER_BYTES = 8


# -- GRUB's module area (what grub-mkimage appends to its kernel: modules, config, prefix) ----
#
# include/grub/kernel.h (GRUB 2.06): in an EFI image the area is the PE section "mods"
# (util/mkimage.c); it starts with struct grub_module_info64 (on 64-bit targets; info32 on
# 32-bit ones), then objects, each a struct grub_module_header whose size counts the header.

GRUB_MODULE_MAGIC = 0x676D696D
"""struct grub_module_info magic: the bytes "mimg"."""
GRUB_MODS_SECTION = b"mods"
OBJ_TYPE_ELF = 0
OBJ_TYPE_MEMDISK = 1
OBJ_TYPE_CONFIG = 2
OBJ_TYPE_PREFIX = 3
OBJ_TYPE_PUBKEY = 4
OBJ_TYPE_DTB = 5
OBJ_TYPE_DISABLE_SHIM_LOCK = 6
GRUB_OBJ_TYPE_NAMES = {OBJ_TYPE_ELF: "module", OBJ_TYPE_MEMDISK: "memdisk", OBJ_TYPE_CONFIG: "config",
                       OBJ_TYPE_PREFIX: "prefix", OBJ_TYPE_PUBKEY: "pubkey", OBJ_TYPE_DTB: "dtb",
                       OBJ_TYPE_DISABLE_SHIM_LOCK: "disable_shim_lock"}

GrubModuleInfo64 = Struct(
    "magic" / Int32ul,                 # +0: GRUB_MODULE_MAGIC
    "padding" / Int32ul,               # +4
    "offset" / Int64ul,                # +8: of the first object, from this structure's start
    "size" / Int64ul,                  # +16: of the whole area, this structure included
)

GrubModuleHeader = Struct(
    "type" / Int32ul,                  # +0: OBJ_TYPE_*
    "size" / Int32ul,                  # +4: of the object, this header included
)
GRUB_MODULE_HEADER_BYTES = 8
