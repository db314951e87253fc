"""sysexport.boot.isohybrid: the isohybrid MBRs of syslinux and GRUB, patched as xorriso does.

The patched fields are checked against xorriso's own images (``-isohybrid-mbr``,
``--grub2-mbr``) of the same boot image: both must write the same eight bytes for the
LBA xorriso reports.  A hybrid with the syslinux MBR is recognised by xorriso as
"MBR isohybrid" and (slow) boots isolinux from a disk under SeaBIOS.
"""
from __future__ import annotations

import os
import re
import struct

import pytest

from helpers import need, out, run
from helpers.qemuboot import boot_firmware

from sysexport.boot import isohybrid
from sysexport.contribution import PlacedBoot
from sysexport.errors import InvalidInputError
from sysexport.fileinfo import walk_host_fileinfo
from sysexport.hybrid import ISO9660Hybrid
from sysexport.iso9660.eltorito import BOOT_X86

ISOLINUX_DIR = "/usr/lib/ISOLINUX"
ISOHDPFX = f"{ISOLINUX_DIR}/isohdpfx.bin"
ISOLINUX_BIN = f"{ISOLINUX_DIR}/isolinux.bin"
LDLINUX = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
GRUB_HYBRID = "/usr/lib/grub/i386-pc/boot_hybrid.img"
GRUB_BOOT = "/usr/lib/grub/i386-pc/boot.img"
SYSLINUX_MBRS = [f"{ISOLINUX_DIR}/{n}" for n in ("isohdpfx.bin", "isohdppx.bin", "extra/isohdpfx_c.bin",
                                                  "extra/isohdpfx_f.bin", "extra/isohdppx_c.bin",
                                                  "extra/isohdppx_f.bin")]


def _read(path: str, n: int = 512) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _isolinux_tree(root) -> str:
    """A tree with isolinux.bin, ldlinux.c32 and a config that prints BOOT-OK on the serial port."""
    d = root / "isolinux"
    d.mkdir(parents=True)
    for src in (ISOLINUX_BIN, LDLINUX):
        (d / os.path.basename(src)).write_bytes(_read(src, 1 << 20))
    (d / "isolinux.cfg").write_text("SERIAL 0 115200\nSAY BOOT-OK isolinux\n")
    (root / "hello.txt").write_text("hello\n")
    return str(root)


def _eltorito_lba(image: str) -> int:
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    m = re.search(r"El Torito boot img :\s+1\s+BIOS\s+y\s+none\s+\S+\s+\S+\s+\d+\s+(\d+)", report)
    assert m, report
    return int(m.group(1))


# ------------------------------------------------------------------------------ detection

@pytest.mark.parametrize("path", SYSLINUX_MBRS)
def test_detects_every_syslinux_isohybrid_mbr(path):
    need(path)
    assert isohybrid.detect_isohybrid_mbr(_read(path)) == "syslinux"


def test_detects_grub_hybrid_but_not_plain_boot_img():
    need(GRUB_HYBRID, GRUB_BOOT)
    assert isohybrid.detect_isohybrid_mbr(_read(GRUB_HYBRID)) == "grub2"
    assert isohybrid.detect_isohybrid_mbr(_read(GRUB_BOOT)) is None
    assert isohybrid.detect_isohybrid_mbr(bytes(512)) is None
    assert isohybrid.detect_isohybrid_mbr(b"short") is None


# ------------------------------------------------------------------------------ the fields, against xorriso

def test_syslinux_patch_equals_xorrisos(tmp_path):
    need("xorriso", ISOHDPFX, ISOLINUX_BIN)
    tree = _isolinux_tree(tmp_path / "tree")
    (tmp_path / "tree" / "pad.bin").write_bytes(os.urandom(300_000))   # moves isolinux.bin's LBA
    image = str(tmp_path / "x.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
         "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-isohybrid-mbr", ISOHDPFX,
         "-o", image, tree])
    lba = _eltorito_lba(image)
    mbr = _read(image)
    patched = isohybrid.patch_isohybrid_mbr(_read(ISOHDPFX), lba)
    assert len(patched) == isohybrid.PATCHED_BYTES
    assert patched == mbr[:440]
    assert isohybrid.boot_lba_of(mbr) == lba


def test_grub2_patch_equals_grub_mkrescues(tmp_path):
    need("grub-mkrescue", "xorriso", "mformat", GRUB_HYBRID)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "pad.bin").write_bytes(os.urandom(100_000))
    image = str(tmp_path / "rescue.iso")
    run(["grub-mkrescue", "-o", image, str(tmp_path / "tree")], timeout=300)
    mbr = _read(image)
    assert isohybrid.detect_isohybrid_mbr(mbr) == "grub2"
    lba = _eltorito_lba(image)
    patched = isohybrid.patch_isohybrid_mbr(_read(GRUB_HYBRID), lba)
    assert patched[0x1B0:0x1B8] == mbr[0x1B0:0x1B8] == struct.pack("<Q", lba * 4 + 4)
    assert isohybrid.boot_lba_of(mbr) == lba


# ------------------------------------------------------------------------------ bad input

def test_refuses_code_it_cannot_patch(tmp_path):
    need(GRUB_BOOT)
    with pytest.raises(InvalidInputError, match="neither syslinux"):
        isohybrid.isohybrid_contribution(GRUB_BOOT, "boot/x.img")
    with pytest.raises(InvalidInputError, match="432 bytes of code"):
        isohybrid.read_mbr_code(b"\x33\xed" * 10)
    missing = str(tmp_path / "nope.bin")
    with pytest.raises(InvalidInputError, match="nope.bin: cannot read it"):
        isohybrid.isohybrid_contribution(missing, "isolinux/isolinux.bin")
    with pytest.raises(InvalidInputError, match="2 TiB"):
        isohybrid.patch_isohybrid_mbr(_read(ISOHDPFX), 1 << 31)
    with pytest.raises(InvalidInputError, match="boot_path"):
        isohybrid.isohybrid_contribution(ISOHDPFX, "/")


def test_finalize_refuses_an_empty_boot_file():
    need(ISOHDPFX)
    c = isohybrid.isohybrid_contribution(ISOHDPFX, "isolinux/isolinux.bin")
    assert c.locate == ("isolinux/isolinux.bin",)
    assert c.finalize is not None
    with pytest.raises(InvalidInputError, match="no 2048-byte aligned extent"):
        c.finalize(PlacedBoot((), 1 << 20, ((None, 0),)))
    patches = c.finalize(PlacedBoot((), 1 << 20, ((2048 * 77, 38912),)))
    assert struct.unpack_from("<I", patches.mbr_boot_code or b"", 432)[0] == 77 * 4


# ------------------------------------------------------------------------------ in the hybrid

def _hybrid(tmp_path) -> str:
    tree = _isolinux_tree(tmp_path / "tree")
    image = str(tmp_path / "h.img")
    h = ISO9660Hybrid(image, default_time=0)
    for info in walk_host_fileinfo(tree):
        if info.name.startswith("isolinux/"):
            info.hybrid_target = "iso"          # a boot info table is written into the ISO's copy
        h.add(info)
    h.iso.add_boot_catalog_entry(platform=BOOT_X86, path="isolinux/isolinux.bin", load_size=4,
                                 boot_info_table=True)
    h.contribute(isohybrid.isohybrid_contribution(ISOHDPFX, "isolinux/isolinux.bin"))
    h.finish()
    return image


def test_hybrid_with_isohdpfx_is_isohybrid_to_xorriso(tmp_path):
    need("xorriso", ISOHDPFX, ISOLINUX_BIN, LDLINUX)
    image = _hybrid(tmp_path)
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain", "-report_system_area", "plain"])
    assert "System area summary: MBR isohybrid" in report, report
    assert isohybrid.boot_lba_of(_read(image)) == _eltorito_lba(image)
    assert "isohybrid-suitable" in report


@pytest.mark.slow
def test_hybrid_with_isohdpfx_boots_bios_from_disk(tmp_path):
    need("xorriso", ISOHDPFX, ISOLINUX_BIN, LDLINUX)
    image = _hybrid(tmp_path)
    for mode in ("bios-disk", "bios-cd"):
        log = boot_firmware(mode, image, str(tmp_path), expect="BOOT-OK isolinux", deadline_s=90)
        assert "BOOT-OK isolinux" in log, (mode, log[-2000:])
