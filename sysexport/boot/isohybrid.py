"""Isohybrid MBRs: x86 boot code that starts an El Torito boot image from a disk.

An isohybrid image is an ISO 9660 image whose first sector is also an MBR, so that a BIOS
booting the image as a disk (a USB stick) runs the same boot loader as one booting it as
a CD.  The MBR's boot code cannot find the boot image itself: whoever writes the image
patches the image's address into the code area.  Two such codes are in use:

``syslinux``
    isohdpfx.bin, isohdppx.bin and their ``_c``/``_f`` variants (Debian: isolinux,
    /usr/lib/ISOLINUX), 432 bytes.  Bytes 432..435 hold the LBA of the El Torito boot
    image (isolinux.bin) in 512-byte units, little-endian; 436..439 are zero.  Syslinux's
    isohybrid and libisofs (xorriso ``-isohybrid-mbr``) write it so; the code then reads
    isolinux.bin with the BIOS's extended read and jumps into it.
``grub2``
    GRUB's boot_hybrid.img (grub-pc-bin, /usr/lib/grub/i386-pc), what grub-mkrescue
    passes as xorriso ``--grub2-mbr``.  Bytes 0x1b0..0x1b7 hold, as a 64-bit little-endian
    number, the 512-byte block address of GRUB's core image: the El Torito boot image
    (cdboot.img, 2048 bytes, followed by the core) starts at 2048-byte block ``LBA``, so
    the core is at ``LBA * 4 + 4``.

Both keep bytes 440..511 (disk signature, partition table) for the image writer.  The
public API::

    isohybrid_contribution(mbr_code, boot_path) -> BootContribution
    patch_isohybrid_mbr(mbr_code, boot_lba, kind=None) -> bytes    (440 bytes)
    detect_isohybrid_mbr(mbr) -> "syslinux" | "grub2" | None
    boot_lba_of(mbr) -> int | None                                  (the patched address)
    grub2_boot_info(boot_lba, size) -> (offset, bytes)              (--grub2-boot-info)

A coordinator that knows where the boot image landed (the hybrid, the mkisofs image)
calls ``finalize`` of the contribution with that extent; a remaster re-patches a
source's MBR with :func:`patch_isohybrid_mbr` once the boot image has moved.
"""
from __future__ import annotations

import os
import struct

from ..contribution import BootContribution, BootPatches, PlacedBoot
from ..errors import InternalError, InvalidInputError

ISOHYBRID_CODE_BYTES = 432
"""Bytes of code an isohybrid MBR brings (isohdpfx.bin is exactly this long); the
address fields follow it, the disk signature at 440."""
SYSLINUX_BOOT_LBA_OFFSET = 432
"""syslinux: 32-bit LE LBA (512-byte units) of the El Torito boot image; 436..439 zero."""
GRUB2_CORE_SECTOR_OFFSET = 0x1B0
"""GRUB boot_hybrid.img: 64-bit LE 512-byte block address of the core image."""
GRUB2_CORE_AFTER_CDBOOT = 4
"""cdboot.img takes the boot image's first 2048 bytes: the core starts 4 blocks later."""
PATCHED_BYTES = 440
"""What :func:`patch_isohybrid_mbr` returns: the boot code up to the disk signature."""
ISO_BLOCK_BYTES = 2048
KINDS = ("syslinux", "grub2")

_SYSLINUX_MARK = b"isolinux.bin missing or corrupt"
"""A message every syslinux isohybrid MBR prints (isohdpfx.S, isohdppx.S)."""
_GRUB_MARKS = (b"GRUB \0", b"Geom\0", b"Hard Disk\0", b"Read\0", b" Error")
"""The messages of GRUB's boot.S, in boot.img and boot_hybrid.img."""


def detect_isohybrid_mbr(mbr: bytes) -> str | None:
    """Which isohybrid boot code ``mbr`` (its first 432 bytes or more) holds: ``"syslinux"``
    (isohdp[fp]x*.bin), ``"grub2"`` (boot_hybrid.img), or None (no such code, or GRUB's
    plain boot.img, which names its core in a field at 0x5c instead).

    GRUB's boot.img and boot_hybrid.img carry the same messages; in boot.img the floppy
    probe code lies at 0x1b0..0x1b7 (so that field is code), boot_hybrid.img moves it
    before the messages to free those eight bytes.  The message "Floppy" therefore lies
    before the messages in boot_hybrid.img and after them in boot.img.  (grub-mkrescue's
    images start with an Apple partition map signature over boot.S's first bytes: the
    code is recognised by its messages, not by its first bytes.)
    """
    code = bytes(mbr[:ISOHYBRID_CODE_BYTES])
    if len(code) < ISOHYBRID_CODE_BYTES:
        return None
    if _SYSLINUX_MARK in code:
        return "syslinux"
    if all(m in code for m in _GRUB_MARKS):
        floppy = code.find(b"Floppy")
        if 0 <= floppy < code.find(b"GRUB \0"):
            return "grub2"
    return None


def read_mbr_code(source: bytes | str | os.PathLike[str]) -> bytes:
    """The boot code of an isohybrid MBR file (or bytes): its first 432 bytes, which must
    be there; the rest of a 512-byte file (zeros, a partition table) is not kept."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fsdecode(source)
        try:
            with open(path, "rb") as f:
                data = f.read(512)
        except OSError as e:
            raise InvalidInputError(f"isohybrid MBR {path}: cannot read it: {e.strerror}") from None
        where = f"isohybrid MBR {path}"
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "isohybrid MBR code"
    else:
        raise InvalidInputError(f"isohybrid MBR: expected bytes or a path, found {type(source).__name__}")
    if len(data) < ISOHYBRID_CODE_BYTES:
        raise InvalidInputError(f"{where}: {len(data)} bytes; an isohybrid MBR has {ISOHYBRID_CODE_BYTES} bytes "
                                "of code (syslinux isohdpfx.bin, GRUB boot_hybrid.img)")
    return data[:ISOHYBRID_CODE_BYTES]


def patch_isohybrid_mbr(mbr_code: bytes, boot_lba: int, kind: str | None = None) -> bytes:
    """The first 440 bytes of the MBR: ``mbr_code``'s 432 bytes of code with the address
    of the El Torito boot image, which starts at 2048-byte block ``boot_lba``, written
    where ``kind`` (default: :func:`detect_isohybrid_mbr`) reads it (see the module
    docstring).  An unknown code is refused: its address field is not known."""
    code = read_mbr_code(mbr_code)
    kind = kind or detect_isohybrid_mbr(code)
    if kind not in KINDS:
        raise InvalidInputError("isohybrid MBR: neither syslinux's isohdp[fp]x.bin nor GRUB's boot_hybrid.img "
                                "(give kind='syslinux' or 'grub2' for another code with the same fields)")
    if isinstance(boot_lba, bool) or not isinstance(boot_lba, int) or boot_lba < 0:
        raise InvalidInputError(f"isohybrid MBR: boot image LBA must be a non-negative integer, found {boot_lba!r}")
    if kind == "syslinux":
        if boot_lba * 4 > 0xFFFFFFFF:
            raise InvalidInputError(f"isohybrid MBR: boot image at 2048-byte block {boot_lba} lies past the "
                                    "2 TiB its 32-bit address field reaches")
        return code + struct.pack("<II", boot_lba * 4, 0)
    return code[:GRUB2_CORE_SECTOR_OFFSET] + struct.pack("<Q", boot_lba * 4 + GRUB2_CORE_AFTER_CDBOOT)


def boot_lba_of(mbr: bytes) -> int | None:
    """The boot image's 2048-byte block that an isohybrid MBR names (None: not one, or the
    address is not a whole block)."""
    kind = detect_isohybrid_mbr(mbr)
    if kind is None or len(mbr) < PATCHED_BYTES:
        return None
    if kind == "syslinux":
        (sectors,) = struct.unpack_from("<I", mbr, SYSLINUX_BOOT_LBA_OFFSET)
    else:
        (core,) = struct.unpack_from("<Q", mbr, GRUB2_CORE_SECTOR_OFFSET)
        sectors = core - GRUB2_CORE_AFTER_CDBOOT
    return sectors // 4 if sectors >= 0 and sectors % 4 == 0 else None


GRUB2_BOOT_INFO_OFFSET = 2548
"""xorriso --grub2-boot-info: byte 2048 + 500 of GRUB's El Torito image (i386-pc-eltorito:
cdboot.img, then the core's first sector, whose blocklist start field lies at 500) holds
the 512-byte block address of that sector + 1, 64-bit LE: so boot_hybrid.img's jump to
the core finds the rest of it when started from a disk."""
GRUB2_BOOT_INFO_ADDEND = 5


def grub2_boot_info(boot_lba: int, image_size_bytes: int) -> tuple[int, bytes]:
    """(offset inside the boot image, bytes) of xorriso's ``--grub2-boot-info`` patch for a
    GRUB El Torito image at 2048-byte block ``boot_lba``."""
    if image_size_bytes < GRUB2_BOOT_INFO_OFFSET + 8:
        raise InvalidInputError(f"--grub2-boot-info: the boot image has {image_size_bytes} bytes; GRUB's "
                                f"El Torito image has its boot info at byte {GRUB2_BOOT_INFO_OFFSET}")
    return GRUB2_BOOT_INFO_OFFSET, struct.pack("<Q", boot_lba * 4 + GRUB2_BOOT_INFO_ADDEND)


def isohybrid_contribution(mbr_code: bytes | str | os.PathLike[str], boot_path: str,
                           kind: str | None = None) -> BootContribution:
    """A contribution that makes the MBR's boot code ``mbr_code`` (bytes or a file:
    isohdpfx.bin, boot_hybrid.img) and patches into it, once the layout is known, the
    address of ``boot_path``: the El Torito BIOS boot image already added to the image
    (isolinux/isolinux.bin, boot/grub/i386-pc/eltorito.img)."""
    code = read_mbr_code(mbr_code)
    kind = kind or detect_isohybrid_mbr(code)
    if kind not in KINDS:
        where = os.fsdecode(mbr_code) if isinstance(mbr_code, (str, os.PathLike)) else "bytes given"
        raise InvalidInputError(f"isohybrid MBR {where}: neither syslinux's isohdp[fp]x.bin nor GRUB's "
                                "boot_hybrid.img, so where to patch the boot image's address is unknown")
    if not isinstance(boot_path, str) or not boot_path.strip("/"):
        raise InvalidInputError(f"isohybrid MBR: boot_path must name the El Torito boot image, found {boot_path!r}")

    def finalize(placed: PlacedBoot) -> BootPatches:
        if len(placed.files) != 1:
            raise InternalError(f"isohybrid MBR: told {len(placed.files)} file extents, asked for one")
        offset, _size = placed.files[0]
        if offset is None or offset % ISO_BLOCK_BYTES:
            raise InvalidInputError(f"isohybrid MBR: the boot image {boot_path} has no 2048-byte aligned extent "
                                    f"in the image (found {offset}); is it an empty file?")
        return BootPatches(mbr_boot_code=patch_isohybrid_mbr(code, offset // ISO_BLOCK_BYTES, kind))

    return BootContribution(mbr_boot_code=code, locate=(boot_path,), finalize=finalize)
