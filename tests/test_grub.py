"""sysexport.boot.grub: GRUB images, the BIOS-disk patches, grub.cfg, make_bootable.

The firmware tests build reference media with standard tools (xorriso, mkfs.fat + mtools,
sgdisk, fdisk) around the images this module makes, and boot them in qemu (TCG) with
SeaBIOS and OVMF as in docs/testing.md: BIOS from CD, BIOS from disk, UEFI from CD
(an ESP past El Torito's 32 MiB), UEFI from disk with 512- and 4096-byte sectors.  A run
passes when GRUB prints the line of make_grub_cfg() on the serial port: platform, the root
device its early config found, and the marker file seen there.
"""
from __future__ import annotations

import os
import random
import struct

import pytest

from helpers import need, out, run
from helpers.qemuboot import (BOOT_LINE, MARKER_LINE, OVMF_CODE, OVMF_VARS, QEMU, boot_firmware, boot_report,  # noqa: F401
                      need_grub, serial_text)

from sysexport.boot import grub
from sysexport.errors import InvalidInputError, SysExportError

MARKER = "/boot/grub/sysexport-test-0123456789abcdef.marker"
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}
MIB = 1 << 20


# ------------------------------------------------------------------------------ reference media

@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The GRUB pieces for MARKER, built once for the module, and a grub.cfg."""
    need_grub()
    d = tmp_path_factory.mktemp("grub")
    mbr_code, core = grub.make_bios_disk_boot(MARKER)
    pieces = {"eltorito": grub.make_bios_eltorito_image(MARKER), "efi": grub.make_efi_image(MARKER),
              "mbr_code": mbr_code, "core": core,
              "grub.cfg": grub.make_grub_cfg(marker=MARKER, kernel=None).encode()}
    for name in ("efi", "grub.cfg"):
        (d / name).write_bytes(pieces[name])
    pieces["dir"] = d
    return pieces


def make_esp(path: str, images: dict, size_mib: int, payload_mib: int = 0, label: str = "ESPTEST") -> str:
    """A FAT ESP image with BOOTX64.EFI, boot/grub/grub.cfg, the marker and a payload."""
    need("mkfs.fat", "mmd", "mcopy")
    run(["mkfs.fat", "-C", "-n", label, path, str(size_mib * 1024)])
    d = images["dir"]
    marker_file = d / "marker"
    marker_file.write_bytes(b"marker\n")
    run(["mmd", "-i", path, "::/EFI", "::/EFI/BOOT", "::/boot", "::/boot/grub"], env_extra=MTOOLS_ENV)
    run(["mcopy", "-i", path, str(d / "efi"), "::/EFI/BOOT/BOOTX64.EFI"], env_extra=MTOOLS_ENV)
    run(["mcopy", "-i", path, str(d / "grub.cfg"), "::/boot/grub/grub.cfg"], env_extra=MTOOLS_ENV)
    run(["mcopy", "-i", path, str(marker_file), "::" + MARKER], env_extra=MTOOLS_ENV)
    if payload_mib:
        payload = d / f"payload-{payload_mib}"
        with open(payload, "wb") as f:
            f.write(random.Random(payload_mib).randbytes(payload_mib * MIB))
        run(["mcopy", "-i", path, str(payload), "::/payload.bin"], env_extra=MTOOLS_ENV)
    return path


def iso_tree(root, images: dict) -> str:
    """A directory for xorriso: grub.cfg, the marker and the El Torito image."""
    grub_dir = root / "boot" / "grub"
    (grub_dir / "i386-pc").mkdir(parents=True)
    (grub_dir / "grub.cfg").write_bytes(images["grub.cfg"])
    (root / MARKER.lstrip("/")).write_bytes(b"marker\n")
    (grub_dir / "i386-pc" / "eltorito.img").write_bytes(images["eltorito"])
    return str(root)


def put(image: str, offset: int, data: bytes | str) -> None:
    if isinstance(data, str):
        with open(data, "rb") as f:
            data = f.read()
    with open(image, "r+b") as f:
        f.seek(offset)
        f.write(data)


def eltorito_entries(iso: str) -> list[dict]:
    """The bootable entries of an El Torito catalog (El Torito 1.0, 2.0-2.4), parsed by hand."""
    with open(iso, "rb") as f:
        f.seek(17 * 2048)
        brvd = f.read(2048)
        assert brvd[1:6] == b"CD001" and brvd[7:30].rstrip(b"\0") == b"EL TORITO SPECIFICATION"
        f.seek(struct.unpack_from("<I", brvd, 0x47)[0] * 2048)
        cat = f.read(2048)
    result = []
    for off in range(32, 2048, 32):
        if cat[off] == 0x88:
            result.append({"offset": off, "media": cat[off + 1], "count": struct.unpack_from("<H", cat, off + 6)[0],
                           "lba": struct.unpack_from("<I", cat, off + 8)[0]})
    return result


# ------------------------------------------------------------------------------ unit tests

def test_find_grub_names_debian_packages(tmp_path):
    with pytest.raises(SysExportError, match="grub-pc-bin") as e:
        grub.find_grub("i386-pc", lib_dir=tmp_path)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(SysExportError, match="grub-efi-amd64-bin"):
        grub.find_grub("x86_64-efi", lib_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="platform"):
        grub.find_grub("sparc64-ieee1275")
    with pytest.raises(SysExportError, match="grub-efi-arm64-bin"):     # arm64: tests/test_arm64.py
        grub.find_grub("arm64-efi", lib_dir=tmp_path)
    (tmp_path / "x86_64-efi").mkdir()
    for name in grub.REQUIRED_FILES["x86_64-efi"]:
        (tmp_path / "x86_64-efi" / name).write_bytes(b"")
    with pytest.raises(SysExportError, match="grub-common"):
        grub.find_grub("x86_64-efi", lib_dir=tmp_path, mkimage="/nonexistent/grub-mkimage")


def test_find_grub_installed():
    need_grub()
    g = grub.find_grub("i386-pc")
    assert g.module_dir == "/usr/lib/grub/i386-pc" and os.path.basename(g.mkimage) in grub.MKIMAGE_NAMES
    files = grub.find_grub("x86_64-efi").module_files()
    assert "normal.mod" in files and "moddep.lst" in files and files == sorted(files)


def test_images_are_grub_images_and_deterministic(images):
    with open("/usr/lib/grub/i386-pc/cdboot.img", "rb") as f:
        cdboot = f.read()
    with open("/usr/lib/grub/i386-pc/diskboot.img", "rb") as f:
        diskboot = f.read()
    with open("/usr/lib/grub/i386-pc/boot.img", "rb") as f:
        boot = f.read()
    assert images["eltorito"][:len(cdboot)] == cdboot
    core = images["core"]
    assert len(core) % 512 == 0
    # diskboot.img with the sector count grub-mkimage wrote into its first blocklist.
    assert core[:508] == diskboot[:508] and core[510:512] == diskboot[510:512]
    assert struct.unpack_from("<H", core, 508)[0] == len(core) // 512 - 1
    assert images["mbr_code"] == boot[:440]
    efi = images["efi"]
    pe = struct.unpack_from("<I", efi, 0x3C)[0]
    assert efi[:2] == b"MZ" and efi[pe:pe + 4] == b"PE\0\0"
    assert struct.unpack_from("<H", efi, pe + 4)[0] == 0x8664          # IMAGE_FILE_MACHINE_AMD64
    assert grub.early_config(MARKER).encode() in efi                  # stored uncompressed in the PE
    assert grub.make_efi_image(MARKER) == efi
    assert grub.make_bios_eltorito_image(MARKER) == images["eltorito"]
    assert grub.make_bios_disk_boot(MARKER) == (images["mbr_code"], core)


def test_unknown_module_is_named():
    need_grub()
    with pytest.raises(InvalidInputError, match="no_such_module"):
        grub.make_efi_image(MARKER, extra_modules=["no_such_module"])


def test_patch_bios_boot_offsets(images):
    lba = 0x12345678 * 8
    mbr, core = grub.patch_bios_boot(images["mbr_code"], images["core"], lba * 512)
    assert len(mbr) == 440 and len(core) == len(images["core"])
    # Hand-derived from include/grub/i386/pc/boot.h and util/setup.c.
    assert mbr[0x5C:0x64] == struct.pack("<Q", lba)
    assert mbr[0x64] == 0xFF and mbr[0x66:0x68] == b"\x90\x90"
    assert mbr[:0x5C] == images["mbr_code"][:0x5C] and mbr[0x68:] == images["mbr_code"][0x68:]
    assert mbr[0x65] == images["mbr_code"][0x65]
    start, length, segment = struct.unpack_from("<QHH", core, 500)
    assert (start, length, segment) == (lba + 1, len(core) // 512 - 1, 0x820)
    assert core[:500] == images["core"][:500] and core[512:] == images["core"][512:]
    # Patching again (a second layout) gives the same as patching once.
    again = grub.patch_bios_boot(mbr, core, lba * 512)
    assert again == (mbr, core)


def test_patch_bios_boot_matches_raw_struct(images):
    rng = random.Random(7)
    for _ in range(200):
        lba = rng.randrange(1, 1 << 40)
        mbr, core = grub.patch_bios_boot(images["mbr_code"], images["core"], lba * 512)
        assert grub.GrubBootCode.parse(mbr).kernel_sector == struct.unpack_from("<Q", mbr, 0x5C)[0] == lba
        assert grub.GrubBlocklist.parse(core[500:512]).start == struct.unpack_from("<Q", core, 500)[0] == lba + 1


def test_patch_bios_boot_rejects(images):
    with pytest.raises(InvalidInputError, match="multiple of 512"):
        grub.patch_bios_boot(images["mbr_code"], images["core"], 4097)
    with pytest.raises(InvalidInputError, match="multiple of 512"):
        grub.patch_bios_boot(images["mbr_code"], images["core"], 0)
    with pytest.raises(InvalidInputError, match="boot.img"):
        grub.patch_bios_boot(bytes(440), images["core"], 1 << 20)
    with pytest.raises(InvalidInputError, match="diskboot"):
        grub.patch_bios_boot(images["mbr_code"], bytes(4096), 1 << 20)
    with pytest.raises(InvalidInputError, match="440"):
        grub.patch_bios_boot(b"\xeb", images["core"], 1 << 20)


def test_marker_rules():
    assert grub.check_marker(MARKER) == MARKER
    for bad in ("boot/x", "/a b", "/a/../b", "/a;b", "/$x", "/", "/a//b", ""):
        with pytest.raises(InvalidInputError, match="marker"):
            grub.check_marker(bad)
    a = grub.default_marker("x", 1)
    assert a == grub.default_marker("x", 1) != grub.default_marker("x", 2)
    assert grub.check_marker(a) and a.startswith("/boot/grub/sysexport-")


def test_grub_cfg_passes_grub_script_check(tmp_path):
    need("grub-script-check")
    cfg = grub.make_grub_cfg(marker=MARKER, cmdline='console=ttyS0  root=LABEL=LIVE x="a b" $HOME; y=""',
                             timeout_s=0)
    path = tmp_path / "grub.cfg"
    path.write_text(cfg)
    run(["grub-script-check", str(path)])
    line = next(x for x in cfg.splitlines() if x.strip().startswith("linux "))
    assert line.strip().split(" ", 2)[2] == "console=ttyS0 root=LABEL=LIVE 'x=a b' '$HOME;' y="
    with pytest.raises(InvalidInputError, match="double quote"):
        grub.make_grub_cfg(marker=MARKER, cmdline='a="b')
    for bad in ("it's", "a\\b"):
        with pytest.raises(InvalidInputError, match="backslash"):
            grub.make_grub_cfg(marker=MARKER, cmdline=bad)
    with pytest.raises(InvalidInputError, match="one line"):
        grub.make_grub_cfg(marker=MARKER, cmdline="a\nb")


# ------------------------------------------------------------------------------ make_bootable

def test_boot_contribution_records_everything(tmp_path, sde):
    """GRUB's contribution is a value: files, El Torito entry, EFI entry, the BIOS boot
    partition, boot.img, and the patches made once the partition is placed."""
    need_grub()
    from sysexport.contribution import PlacedBoot
    from sysexport.fileinfo import to_fileinfo
    from sysexport.iso9660.eltorito import BOOT_X86, EMU_NONE
    from sysexport.partition.gpt import GPT_TYPE_BIOS_BOOT
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel" * 100)
    contribution, setup = grub.boot_contribution(kernel=kernel, initrd=b"initrd-bytes",
                                                 cmdline="console=ttyS0 quiet", volume_label="TESTLIVE")
    names = {i.name: i for i in map(to_fileinfo, contribution.files)}
    assert setup.marker.startswith("/boot/grub/sysexport-") and setup.marker.lstrip("/") in names
    assert sorted(setup.files) == sorted(names)
    for name in ("boot/grub/grub.cfg", "boot/vmlinuz", "boot/initrd.img", "EFI/BOOT/BOOTX64.EFI",
                 "boot/grub/i386-pc/normal.mod", "boot/grub/x86_64-efi/normal.mod", "boot/grub/i386-pc/moddep.lst"):
        assert names[name].hybrid_target == "both", name
    assert names["boot/grub/i386-pc/eltorito.img"].hybrid_target == "iso"
    assert names["boot/vmlinuz"].size == 600 and names["boot/initrd.img"].source.read_all() == b"initrd-bytes"
    cfg = names["boot/grub/grub.cfg"].source.read_all().decode()
    assert "linux /boot/vmlinuz console=ttyS0 quiet" in cfg and "initrd /boot/initrd.img" in cfg
    assert contribution.efi_from_esp is True
    (entry,) = contribution.eltorito
    assert (entry.platform, entry.path, entry.media_type, entry.load_size, entry.boot_info_table) == \
        (BOOT_X86, "boot/grub/i386-pc/eltorito.img", EMU_NONE, 4, True)
    (part,) = contribution.partitions
    assert part.type_guid == GPT_TYPE_BIOS_BOOT and part.size_bytes % 4096 == 0
    assert part.size_bytes >= len(part.data)
    assert contribution.mbr_boot_code is not None and len(contribution.mbr_boot_code) == 440
    # Once placed, boot code and core point at the partition.
    patches = contribution.finalize(PlacedBoot(((3 * MIB, part.size_bytes),), 64 * MIB))
    assert struct.unpack_from("<Q", patches.mbr_boot_code, 0x5C)[0] == 3 * MIB // 512
    (core,) = patches.partition_data
    assert struct.unpack_from("<Q", core, 500)[0] == 3 * MIB // 512 + 1
    # Same input, same time: same marker and same images.
    again, setup2 = grub.boot_contribution(kernel=kernel, initrd=b"initrd-bytes", cmdline="console=ttyS0 quiet",
                                           volume_label="TESTLIVE")
    assert setup2.marker == setup.marker
    efi = [i for i in map(to_fileinfo, again.files) if i.name == "EFI/BOOT/BOOTX64.EFI"][0]
    assert efi.source.read_all(1 << 24) == names["EFI/BOOT/BOOTX64.EFI"].source.read_all(1 << 24)


def test_make_bootable_checks_before_adding(tmp_path):
    from sysexport import ISO9660Hybrid
    h = ISO9660Hybrid(str(tmp_path / "x.img"))
    with pytest.raises(SysExportError, match="grub-pc-bin"):
        grub.make_bootable(h, grub_lib_dir=tmp_path)
    need_grub()
    with pytest.raises(InvalidInputError, match="marker"):
        grub.make_bootable(h, marker="relative/path")
    assert list(h.iso.tree.walk()) == [h.iso.tree.root] and h.iso.boot_entries == []
    assert len(h.partitions) == 1 and not h.efi_boot


# ------------------------------------------------------------------------------ firmware

@pytest.mark.slow
def test_bios_from_cd(images, tmp_path):
    """SeaBIOS boots GRUB's El Torito image (load size 4, boot info table); root is the CD."""
    need("xorriso")
    iso = str(tmp_path / "cd.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-b", "boot/grub/i386-pc/eltorito.img", "-no-emul-boot",
         "-boot-load-size", "4", "-boot-info-table", "-o", iso, iso_tree(tmp_path / "tree", images)])
    text = boot_firmware("bios-cd", iso, str(tmp_path), deadline_s=60)
    assert boot_report(text) == ("pc", "cd")


@pytest.mark.slow
def test_bios_from_disk_bios_boot_partition(images, tmp_path):
    """GRUB's boot.img in sector 0, patched to load core.img from a GPT BIOS boot partition
    at 1 MiB; the early config finds the marker on the FAT ESP (gpt1)."""
    need("sgdisk")
    disk = str(tmp_path / "bios.img")
    with open(disk, "wb") as f:
        f.truncate(48 * MIB)
    run(["sgdisk", "-n", "1:4096:+32M", "-t", "1:EF00", "-n", "2:2048:4095", "-t", "2:EF02", disk])
    mbr, core = grub.patch_bios_boot(images["mbr_code"], images["core"], 2048 * 512)
    put(disk, 0, mbr)
    put(disk, 2048 * 512, core)
    put(disk, 4096 * 512, make_esp(str(tmp_path / "esp.img"), images, 32))
    assert "No problems found" in out(["sgdisk", "-v", disk])
    text = boot_firmware("bios-disk", disk, str(tmp_path), deadline_s=60)
    assert boot_report(text) == ("pc", "hd0,gpt1")


@pytest.mark.slow
def test_uefi_from_disk_512(images, tmp_path):
    need("sgdisk")
    disk = str(tmp_path / "uefi512.img")
    with open(disk, "wb") as f:
        f.truncate(40 * MIB)
    run(["sgdisk", "-n", "1:2048:+32M", "-t", "1:EF00", disk])
    put(disk, 2048 * 512, make_esp(str(tmp_path / "esp.img"), images, 32))
    text = boot_firmware("uefi-disk", disk, str(tmp_path))
    assert boot_report(text) == ("efi", "hd0,gpt1")


@pytest.mark.slow
def test_uefi_from_disk_4096(images, tmp_path):
    """A GPT written for 4096-byte sectors (fdisk -b 4096), the ESP's FAT with 512-byte
    sectors, on a virtio disk with logical_block_size=4096."""
    need("fdisk")
    disk = str(tmp_path / "uefi4k.img")
    with open(disk, "wb") as f:
        f.truncate(40 * MIB)
    run(["fdisk", "-b", "4096", disk], input=b"g\nn\n1\n256\n+32M\nt\n1\nw\n")
    assert "EFI System" in out(["fdisk", "-b", "4096", "-l", disk])
    put(disk, 256 * 4096, make_esp(str(tmp_path / "esp.img"), images, 32))
    text = boot_firmware("uefi-disk4k", disk, str(tmp_path))
    assert boot_report(text) == ("efi", "hd0,gpt1")


@pytest.mark.slow
@pytest.mark.parametrize("esp_mib,expected_count", [(52, 0), (24, 24 * 2048)])
def test_uefi_from_cd(images, tmp_path, esp_mib, expected_count):
    """OVMF boots the El Torito EFI entry of an ESP larger than 32 MiB with sector count 0
    (xorriso's convention, what sysexport's catalog writes past 65,535 sectors), and of a
    small ESP with its exact count.  GRUB itself cannot see the El Torito partition: its
    early config finds the marker on the CD's ISO view (cd0), as in the hybrid, whose ISO
    holds every shared file."""
    need("xorriso")
    tree = tmp_path / "tree"
    iso_tree(tree, images)
    make_esp(str(tree / "efi.img"), images, esp_mib, payload_mib=48 if esp_mib > 48 else 0)
    iso = str(tmp_path / "cd.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-e", "efi.img", "-no-emul-boot", "-o", iso, str(tree)])
    (entry,) = eltorito_entries(iso)
    assert entry["count"] == expected_count and entry["media"] == 0
    text = boot_firmware("uefi-cd", iso, str(tmp_path))
    assert boot_report(text) == ("efi", "cd0")


# ------------------------------------------------------------------------------ the hybrid

@pytest.fixture(scope="module")
def bootable_hybrid(tmp_path_factory):
    """A real ISO9660Hybrid made bootable by make_bootable, with a 48 MiB payload so that
    the ESP is past what El Torito's 16-bit count of 512-byte sectors describes."""
    need_grub()
    from sysexport import ISO9660Hybrid
    d = tmp_path_factory.mktemp("hybrid")
    payload = d / "payload.bin"
    payload.write_bytes(random.Random(48).randbytes(48 * MIB))
    image = str(d / "live.img")
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        h = ISO9660Hybrid(image, volume_label="GRUBTEST")
        h.add({"name": "data/payload.bin", "mode": 0o100644, "data_path": str(payload)})
        setup = grub.make_bootable(h, marker=MARKER)
        h.finish()
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old
    return {"image": image, "hybrid": h, "setup": setup, "dir": d}


def test_hybrid_boot_structures(bootable_hybrid):
    """What each firmware reads: catalog entries, MBR boot code LBA, core blocklist, ESP files."""
    need("sgdisk", "mcopy")
    image, h = bootable_hybrid["image"], bootable_hybrid["hybrid"]
    assert "No problems found" in out(["sgdisk", "-v", image])
    esp, bios_part = h.gpt.partitions[0], bootable_hybrid["setup"].bios_boot_partition
    assert esp.size_bytes > 65535 * 512
    entries = eltorito_entries(image)
    assert len(entries) == 2 and entries[0]["count"] == 4
    assert entries[1] == {"offset": entries[1]["offset"], "media": 0, "count": 0, "lba": esp.device_offset // 2048}
    with open(image, "rb") as f:
        sector0 = f.read(512)
        f.seek(bios_part.device_offset)
        core_first = f.read(512)
    assert struct.unpack_from("<Q", sector0, 0x5C)[0] == bios_part.device_offset // 512
    assert sector0[0x64] == 0xFF and sector0[0x66:0x68] == b"\x90\x90" and sector0[510:] == b"\x55\xaa"
    assert struct.unpack_from("<QHH", core_first, 500) == (bios_part.device_offset // 512 + 1,
                                                           struct.unpack_from("<H", core_first, 508)[0], 0x820)
    esp_img = cut_esp(image, esp, bootable_hybrid["dir"])
    listing = out(["mdir", "-/", "-b", "-i", esp_img, "::/"], env_extra=MTOOLS_ENV)
    for name in ("EFI/BOOT/BOOTX64.EFI", "boot/grub/grub.cfg", MARKER.lstrip("/"), "boot/grub/x86_64-efi/normal.mod"):
        assert "::/" + name in listing, name


def cut_esp(image: str, part, d) -> str:
    from helpers import cut
    return cut(image, part.device_offset, part.size_bytes, d / "esp.img")


@pytest.mark.slow
@pytest.mark.parametrize("mode,expected", [("bios-cd", ("pc", "cd")), ("bios-disk", ("pc", "hd0")),
                                           ("uefi-cd", ("efi", "cd0")), ("uefi-disk", ("efi", "hd0")),
                                           ("uefi-disk4k", ("efi", "hd0"))])
def test_hybrid_boots_five_ways(bootable_hybrid, tmp_path, mode, expected):
    """GRUB starts in each mode and its early config finds the marker; on disks the first
    device with the marker is the whole disk's ISO view (hd0), on CDs the CD."""
    deadline_s = 60 if mode.startswith("bios") else 90
    text = boot_firmware(mode, bootable_hybrid["image"], str(tmp_path), deadline_s=deadline_s)
    assert boot_report(text) == expected


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bios-disk", "uefi-cd"])
def test_grub_menu_boots_linux(tmp_path, mode):
    """make_bootable's own grub.cfg boots Debian's kernel with an initramfs written by CPIO,
    the command line arriving intact (a double-quoted word with a space included)."""
    need_grub()
    from helpers import linuxvm
    linuxvm.need_linux()
    from sysexport import ISO9660Hybrid
    kernel, _ = linuxvm.find_kernel()
    initrd = linuxvm.build_initramfs(str(tmp_path / "initrd.img"), 'echo "cmdline: $(cat /proc/cmdline)"\n')
    image = str(tmp_path / "linux.img")
    h = ISO9660Hybrid(image, volume_label="GRUBLINUX")
    cmdline = 'console=ttyS0 quiet panic=-1 sysexport.test="a b"'
    grub.make_bootable(h, kernel=kernel, initrd=initrd, cmdline=cmdline, timeout_s=0)
    h.finish()
    text = boot_firmware(mode, image, str(tmp_path), expect=linuxvm.END_RE, deadline_s=120)
    status, printed, problems = linuxvm.script_output(text)
    assert status == 0 and not problems, printed
    assert boot_report(text)[0] == ("pc" if mode.startswith("bios") else "efi")
    (line,) = [x for x in printed.splitlines() if x.startswith("cmdline: ")]
    # GRUB re-quotes the word with a space as a whole (see grub_linux_args).
    assert line == 'cmdline: BOOT_IMAGE=/boot/vmlinuz console=ttyS0 quiet panic=-1 "sysexport.test=a b"'


def test_bootable_hybrid_is_reproducible(tmp_path, sde):
    """Same input and SOURCE_DATE_EPOCH: the same bytes, GRUB images and patches included."""
    need_grub()
    from helpers import sha256_file
    from sysexport import ISO9660Hybrid
    digests = []
    for i in range(2):
        image = str(tmp_path / f"r{i}.img")
        h = ISO9660Hybrid(image, volume_label="REPRO")
        h.add(("file", "hello.txt", b"hello\n"))
        grub.make_bootable(h, kernel=b"not a kernel", cmdline="quiet", copy_modules=False)
        h.finish()
        digests.append(sha256_file(image))
    assert digests[0] == digests[1]
