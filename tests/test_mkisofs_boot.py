"""sysexport mkisofs images boot as xorriso's do (slow: qemu, TCG).

live-build's and archiso's command lines (test_mkisofs.py makes the trees: Debian's
isolinux for BIOS, a GRUB EFI loader in efi.img / an appended efiboot.img for UEFI), each
image booted four ways: BIOS from CD (El Torito, isolinux.bin), BIOS from disk (the
isohybrid MBR, isohdpfx.bin, patched with isolinux.bin's address), UEFI from CD (the El
Torito EFI entry), UEFI from disk (the MBR's 0xEF partition or the GPT's ESP).  xorriso's
image of the same command line is booted too, as the control: a mode that fails for both
is the test's fault, one that fails only for ours is sysexport's.  The --sysexport-hybrid
image also boots UEFI from a disk with 4096-byte sectors (its 4K GPT).
"""
from __future__ import annotations

import pytest

from helpers.qemuboot import boot_firmware
from test_mkisofs import make_both, need_media_tools

from sysexport.cli import main

EXPECT = {"bios-cd": "BOOT-OK isolinux", "bios-disk": "BOOT-OK isolinux",
          "uefi-cd": "BOOT-OK grub platform=efi", "uefi-disk": "BOOT-OK grub platform=efi",
          "uefi-disk4k": "BOOT-OK grub platform=efi"}
FOUR = ("bios-cd", "bios-disk", "uefi-cd", "uefi-disk")


def _boot(image: str, workdir, mode: str) -> None:
    log = boot_firmware(mode, image, str(workdir), expect=EXPECT[mode], deadline_s=120)
    assert EXPECT[mode] in log, f"{mode}: {image} did not boot; serial log:\n{log[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["live-build", "archiso"])
@pytest.mark.parametrize("mode", FOUR)
def test_boots_as_xorrisos_image(case, mode, tmp_path):
    need_media_tools()
    ours, theirs, _tree = make_both(case, tmp_path)
    _boot(theirs, tmp_path, mode)           # the control
    _boot(ours, tmp_path, mode)


@pytest.mark.slow
def test_grub_mkrescue_line_boots(tmp_path):
    """GRUB's own path: boot_hybrid.img (--grub2-mbr) starts the El Torito image's core from
    a disk once --grub2-boot-info told it where it lies."""
    need_media_tools()
    ours, theirs, _tree = make_both("grub-mkrescue", tmp_path)
    expect = dict(EXPECT, **{"bios-cd": "BOOT-OK grub platform=pc", "bios-disk": "BOOT-OK grub platform=pc"})
    for mode in ("bios-cd", "bios-disk", "uefi-cd"):
        for image in (theirs, ours):
            log = boot_firmware(mode, image, str(tmp_path), expect=expect[mode], deadline_s=120)
            assert expect[mode] in log, f"{mode}: {image}\n{log[-3000:]}"


@pytest.mark.slow
def test_archiso_uefi_only_boots_uefi(tmp_path):
    need_media_tools()
    ours, theirs, _tree = make_both("archiso-uefi", tmp_path)
    for mode in ("uefi-cd", "uefi-disk"):
        _boot(theirs, tmp_path, mode)
        _boot(ours, tmp_path, mode)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["live-build", "archiso"])
def test_sysexport_hybrid_boots_five_ways(case, tmp_path):
    need_media_tools()
    from test_mkisofs import CASES
    args, tree = CASES[case](tmp_path)
    image = str(tmp_path / "hybrid.img")
    assert main(["mkisofs", *args, "--sysexport-hybrid", "-o", image, tree]) == 0
    for mode in FOUR + ("uefi-disk4k",):
        _boot(image, tmp_path, mode)
