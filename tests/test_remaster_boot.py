"""Remastered images boot (slow): a `sysexport live` image and a grub-mkrescue image, each
changed by ``sysexport remaster`` (a file replaced, a tree added), in qemu with SeaBIOS and
OVMF, from CD and from disk, judged by what GRUB (and Linux) print on the serial port.

The live image's boot code is re-patched for its new BIOS boot partition, its El Torito
entries point at the new boot image and ESP; grub-mkrescue's GRUB finds its volume by the
ISO's UUID (its modification date), which the remaster keeps, and its hybrid MBR and the
GPT naming /efi.img are rebuilt for the new layout.  Every mode is first booted from the
source: a mode the source does not boot is not asked of the remaster.
"""
from __future__ import annotations

import os
import random
import re
import sys

import pytest

from helpers import need, out, run, sha256_file
from helpers.qemuboot import MARKER_LINE, boot_firmware, boot_report, need_grub

pytestmark = pytest.mark.slow

INIT_SCRIPT = r"""
mkdir -p /iso /esp
for view in iso esp; do
  if [ $view = iso ]; then mount -t iso9660 -o ro,iocharset=utf8 /dev/sda /$view || echo "MOUNT-FAIL $view"
  else mount -t vfat -o ro,iocharset=utf8 /dev/sda1 /$view || echo "MOUNT-FAIL $view"; fi
  cd /$view/payload && find . -type f | sort | while read -r f; do
    echo "SUM $view $(sha256sum "$f")"
  done
  cd /
  umount /$view
done
"""
RESCUE_CFG = """serial --unit=0 --speed=115200
terminal_output serial console
if [ -e /payload.bin ]; then set p=yes; else set p=no; fi
if [ -e /added/new.txt ]; then set a=yes; else set a=no; fi
echo "remaster-boot: platform=${grub_platform} payload=${p} added=${a} END"
"""
RESCUE_LINE = re.compile(r"remaster-boot: platform=(\w+) payload=(\w+) added=(\w+) END")


def sums_of(root) -> dict[str, str]:
    out_ = {}
    for top, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(top, n)
            out_["./" + os.path.relpath(p, root)] = sha256_file(p)
    return out_


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A `sysexport live` image and its remaster (a payload file replaced, a tree added)."""
    need_grub()
    from helpers import linuxvm
    linuxvm.need_linux()
    d = tmp_path_factory.mktemp("remaster-live")
    payload = d / "payload"
    payload.mkdir()
    rnd = random.Random(13)
    for size in (0, 1, 2049, 300_000):
        (payload / f"s{size}.bin").write_bytes(rnd.randbytes(size))
    kernel, _ = linuxvm.find_kernel()
    initrd = linuxvm.build_initramfs(str(d / "initrd.img"), INIT_SCRIPT, wait_devices=["/dev/sda1"])
    source = str(d / "live.img")
    from sysexport.cli import main
    assert main(["live", "--kernel", kernel, "--initrd", initrd, "--cmdline", "console=ttyS0 quiet panic=-1",
                 "--add-tree", f"{payload}:payload", "--label", "LIVESRC", "--timeout", "0", "-o", source]) == 0
    replacement = d / "replacement.bin"
    replacement.write_bytes(rnd.randbytes(5000))
    extra = d / "extra"
    extra.mkdir()
    (extra / "new.txt").write_text("added by remaster\n")
    image = str(d / "remastered.img")
    assert main(["remaster", source, "-o", image, "--replace", f"payload/s2049.bin={replacement}",
                 "--add-tree", f"{extra}:payload/added", "--label", "REMASTERED"]) == 0
    iso_image = str(d / "remastered.iso")
    assert main(["remaster", source, "-o", iso_image, "--format", "iso", "--label", "REMASTERED"]) == 0
    expected = sums_of(payload)
    expected["./s2049.bin"] = sha256_file(replacement)
    expected["./added/new.txt"] = sha256_file(extra / "new.txt")
    return {"source": source, "image": image, "iso": iso_image, "sums": expected, "dir": d}


def test_live_remaster_structure(live):
    """sgdisk: both the ESP and a BIOS boot partition; the MBR's boot.img names the new
    BIOS boot partition (kernel_sector at 0x5C)."""
    need("sgdisk", "xorriso")
    image = live["image"]
    assert "No problems found" in out(["sgdisk", "-v", image])
    parts = out(["sgdisk", "-p", image])
    assert "EF00" in parts and "EF02" in parts
    start = int(re.search(r"^\s*\d+\s+(\d+)\s+\d+\s+\S+ \S+\s+EF02", parts, re.M).group(1))
    with open(image, "rb") as f:
        mbr = f.read(512)
    assert int.from_bytes(mbr[0x5C:0x64], "little") == start
    assert out(["xorriso", "-indev", image, "-report_el_torito", "plain"]).count("El Torito boot img :") == 2


@pytest.mark.parametrize("mode,expected", [("bios-cd", ("pc", "cd")), ("bios-disk", ("pc", "hd0")),
                                           ("uefi-cd", ("efi", "cd0")), ("uefi-disk", ("efi", "hd0")),
                                           ("uefi-disk4k", ("efi", "hd0"))])
def test_live_remaster_boots_five_ways(live, tmp_path, mode, expected):
    text = boot_firmware(mode, live["image"], str(tmp_path), expect=MARKER_LINE,
                         deadline_s=90 if mode.startswith("bios") else 150)
    assert boot_report(text) == expected


def test_live_remastered_as_a_plain_iso_structure(live):
    """sgdisk: the ESP and the BIOS boot partition after the ISO; the El Torito EFI entry
    names the ESP's first block, the MBR's boot.img the BIOS boot partition's (xorriso)."""
    image = live["iso"]
    assert "No problems found" in out(["sgdisk", "-v", image])
    parts = out(["sgdisk", "-p", image])
    esp = int(re.search(r"^\s*\d+\s+(\d+)\s+\d+\s+\S+ \S+\s+EF00", parts, re.M).group(1))
    bios = int(re.search(r"^\s*\d+\s+(\d+)\s+\d+\s+\S+ \S+\s+EF02", parts, re.M).group(1))
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    efi_lba = int(re.search(r"El Torito boot img :\s+2\s+UEFI.*\s(\d+)\s*$", report, re.M).group(1))
    assert efi_lba * 4 == esp
    with open(image, "rb") as f:
        assert int.from_bytes(f.read(512)[0x5C:0x64], "little") == bios


@pytest.mark.parametrize("mode,expected", [("bios-cd", ("pc", "cd")), ("bios-disk", ("pc", "hd0")),
                                           ("uefi-cd", ("efi", "cd0")), ("uefi-disk", ("efi", "hd0"))])
def test_live_remastered_as_a_plain_iso_boots(live, tmp_path, mode, expected):
    """The live hybrid remastered as a plain ISO: the ESP and GRUB's BIOS boot partition
    follow the ISO (the EFI entry and the MBR's boot.img name their new places), so it
    still boots from CD and from disk."""
    text = boot_firmware(mode, live["iso"], str(tmp_path), expect=MARKER_LINE,
                         deadline_s=90 if mode.startswith("bios") else 150)
    assert boot_report(text) == expected


@pytest.mark.parametrize("mode", ["bios-disk", "uefi-disk"])
def test_live_remaster_boots_linux_with_the_changes(live, tmp_path, mode):
    """Linux mounts the remaster's ISO view and ESP: every payload file, the replaced one
    with its new bytes and the added one, has the expected sha256 in both."""
    from helpers import linuxvm
    text = boot_firmware(mode, live["image"], str(tmp_path), expect=linuxvm.END_RE, deadline_s=240)
    status, printed, problems = linuxvm.script_output(text)
    assert status == 0 and not problems and "MOUNT-FAIL" not in printed, printed
    seen: dict[str, dict[str, str]] = {"iso": {}, "esp": {}}
    for line in printed.splitlines():
        if line.startswith("SUM "):
            _, view, rest = line.split(" ", 2)
            digest, name = rest.split("  ", 1)
            seen[view][name] = digest
    assert seen["iso"] == live["sums"] and seen["esp"] == live["sums"]


@pytest.fixture(scope="module")
def rescue(tmp_path_factory):
    """A grub-mkrescue image and its plain-ISO remaster (payload replaced, a tree added)."""
    need_grub()
    need("grub-mkrescue", "xorriso")
    d = tmp_path_factory.mktemp("remaster-rescue")
    tree = d / "tree"
    (tree / "boot/grub").mkdir(parents=True)
    (tree / "boot/grub/grub.cfg").write_text(RESCUE_CFG)
    (tree / "payload.bin").write_bytes(random.Random(3).randbytes(200_000))
    source = str(d / "rescue.iso")
    run(["grub-mkrescue", "-o", source, str(tree)])
    (d / "new-payload.bin").write_bytes(b"new payload\n")
    (d / "extra").mkdir()
    (d / "extra/new.txt").write_text("added\n")
    images = {}
    for fmt in ("iso", "hybrid"):
        images[fmt] = str(d / f"remastered-{fmt}.img")
        run([sys.executable, "-m", "sysexport", "remaster", source, "-o", images[fmt], "--format", fmt,
             "--replace", f"payload.bin={d / 'new-payload.bin'}", "--add-tree", f"{d / 'extra'}:added"])
    return {"source": source, "images": images, "dir": d}


@pytest.mark.parametrize("fmt", ["iso", "hybrid"])
@pytest.mark.parametrize("mode,platform", [("bios-cd", "pc"), ("bios-disk", "pc"), ("uefi-cd", "efi"),
                                           ("uefi-disk", "efi")])
def test_grub_mkrescue_remaster_boots(rescue, tmp_path, mode, platform, fmt):
    """Booted as the source boots (checked first), the remaster, a plain ISO or a hybrid
    (whose ESP holds the tree and the files of /efi.img), reaches its grub.cfg, which sees
    the replaced payload and the added tree."""
    deadline = 90 if mode.startswith("bios") else 150
    src_dir = tmp_path / "source"
    src_dir.mkdir()
    text = boot_firmware(mode, rescue["source"], str(src_dir), expect=RESCUE_LINE, deadline_s=deadline)
    m = RESCUE_LINE.search(text)
    if m is None:
        pytest.skip(f"the grub-mkrescue source itself does not boot {mode} here")
    assert m.groups() == (platform, "yes", "no")
    text = boot_firmware(mode, rescue["images"][fmt], str(tmp_path), expect=RESCUE_LINE, deadline_s=deadline)
    m = RESCUE_LINE.search(text)
    assert m, text[-2000:]
    assert m.groups() == (platform, "yes", "yes")


def test_grub_mkrescue_hybrid_boots_from_a_4k_disk(rescue, tmp_path):
    """The hybrid remaster has a GPT for 4096-byte sectors too, which the source lacks:
    OVMF boots it from such a disk (the source finds nothing there, docs/testing.md)."""
    text = boot_firmware("uefi-disk4k", rescue["images"]["hybrid"], str(tmp_path), expect=RESCUE_LINE,
                         deadline_s=150)
    m = RESCUE_LINE.search(text)
    assert m, text[-2000:]
    assert m.groups() == ("efi", "yes", "yes")


ISOLINUX_DIR = "/usr/lib/ISOLINUX"
LDLINUX = "/usr/lib/syslinux/modules/bios/ldlinux.c32"


@pytest.fixture(scope="module")
def isolinux(tmp_path_factory):
    """An isohybrid image as xorriso makes one (isolinux with a boot info table, syslinux's
    isohdpfx.bin MBR) and its remasters as a plain ISO and as a hybrid, isolinux.cfg
    replaced by one that says another line."""
    need("xorriso", f"{ISOLINUX_DIR}/isolinux.bin", f"{ISOLINUX_DIR}/isohdpfx.bin", LDLINUX)
    import shutil
    d = tmp_path_factory.mktemp("remaster-isolinux")
    tree = d / "tree"
    (tree / "isolinux").mkdir(parents=True)
    shutil.copy(f"{ISOLINUX_DIR}/isolinux.bin", tree / "isolinux")
    shutil.copy(LDLINUX, tree / "isolinux")
    (tree / "isolinux/isolinux.cfg").write_text("SERIAL 0 115200\nSAY isolinux-source-ok\n")
    (tree / "data.bin").write_bytes(random.Random(11).randbytes(1 << 20))
    source = str(d / "source.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-V", "ISOLINUX", "-b", "isolinux/isolinux.bin",
         "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
         "-isohybrid-mbr", f"{ISOLINUX_DIR}/isohdpfx.bin", "-o", source, str(tree)])
    cfg = d / "isolinux.cfg"
    cfg.write_text("SERIAL 0 115200\nSAY isolinux-remaster-ok\n")
    images = {}
    for fmt in ("iso", "hybrid"):
        images[fmt] = str(d / f"remastered-{fmt}.img")
        run([sys.executable, "-m", "sysexport", "remaster", source, "-o", images[fmt], "--format", fmt,
             "--replace", f"isolinux/isolinux.cfg={cfg}", "--remove", "data.bin"])
    return {"source": source, "images": images}


def loose(word: str) -> re.Pattern:
    """``word`` on the serial port, where isolinux's serial and console copies of a line
    may interleave control characters into it."""
    return re.compile("[\\x00-\\x1f]*".join(re.escape(ch) for ch in word))


@pytest.mark.parametrize("fmt", ["iso", "hybrid"])
@pytest.mark.parametrize("mode", ["bios-cd", "bios-disk"])
def test_isolinux_remaster_boots(isolinux, tmp_path, mode, fmt):
    """isolinux starts from CD (El Torito, boot info table re-patched) and from disk
    (isohdpfx.bin re-patched with isolinux.bin's new address) and reads the new config."""
    src = tmp_path / "source"
    src.mkdir()
    try:
        boot_firmware(mode, isolinux["source"], str(src), expect=loose("isolinux-source-ok"), deadline_s=60)
    except AssertionError:
        pytest.skip(f"the xorriso source itself does not boot {mode} here")
    text = boot_firmware(mode, isolinux["images"][fmt], str(tmp_path), expect=loose("isolinux-remaster-ok"),
                         deadline_s=60)
    assert loose("isolinux-remaster-ok").search(text) and not loose("isolinux-source-ok").search(text)
