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

import os

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
    for mode in FOUR:
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


@pytest.mark.slow
def test_linux_mounts_the_partition_of_partition_offset(tmp_path):
    """archiso's -partition_offset 16 image as a disk: Linux mounts /dev/sda1 (the second
    tree) and /dev/sda (the first) as iso9660 and reads the same files in both, for our
    image as for xorriso's."""
    import shutil
    from helpers.linuxvm import run_linux
    need_media_tools()
    ours, theirs, tree = make_both("archiso", tmp_path)
    script = ("set -e; mkdir -p /m; mount -t iso9660 -o ro /dev/sda1 /m; cd /m; "
              "find . -type f -exec md5sum {} + > /tmp/p; cd /; umount /m; mount -t iso9660 -o ro /dev/sda /m; "
              "cd /m; find . -type f -exec md5sum {} + > /tmp/w; cat /tmp/p; echo ====; cat /tmp/w")
    seen = []
    for image in (ours, theirs):
        disk = str(tmp_path / (os.path.basename(image) + ".disk"))
        shutil.copyfile(image, disk)
        text = run_linux(tmp_path, script, disks=[disk], wait_devices=["/dev/sda1"])
        part, _, whole = text.partition("====")
        part_sums = sorted(line for line in part.splitlines() if "  ./" in line and "boot.cat" not in line)
        whole_sums = sorted(line for line in whole.splitlines() if "  ./" in line and "boot.cat" not in line)
        assert part_sums and part_sums == whole_sums, text
        seen.append(part_sums)
    expected = {os.path.relpath(os.path.join(d, f), tree) for d, _s, fs in os.walk(tree) for f in fs}
    assert {line.split("  ./", 1)[1] for line in seen[0]} == expected
    assert {line.split("  ./", 1)[1] for line in seen[1]} == expected
