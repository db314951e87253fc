"""sysexport mkisofs: archiso's and live-build's xorriso command lines, against xorriso.

Each command line runs twice, through ``sysexport mkisofs`` and through ``xorriso -as
mkisofs``, with Debian's isolinux (isolinux.bin, ldlinux.c32, isohdpfx.bin) and a GRUB
EFI loader in a FAT image made with mkfs.fat and mtools.  Then bsdtar, xorriso (-find,
-report_el_torito, -report_system_area), isoinfo, sgdisk, fdisk and blkid must see the
same files, labels, boot entries and partitions in both images.  The boots are in
test_mkisofs_boot.py (slow).

Where sysexport differs from xorriso on purpose (docs/cli.md): its GPT partition over the
ISO starts at the first usable LBA (xorriso's starts at 0 and overlaps the GPT), the boot
images marked -isohybrid-gpt-basdat are in the MBR only (not a second time in the GPT),
the padding lies before the appended partitions, and -partition_offset moves the
partition, not a second superblock (xorriso writes one so the partition mounts alone).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import need, out, run

from sysexport.boot.isohybrid import boot_lba_of
from sysexport.cli import main
from sysexport.mkisofs.options import parse_mkisofs_args
from sysexport.errors import UsageError

ISOLINUX_BIN = "/usr/lib/ISOLINUX/isolinux.bin"
ISOHDPFX = "/usr/lib/ISOLINUX/isohdpfx.bin"
LDLINUX = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
GRUB_EFI_DIR = "/usr/lib/grub/x86_64-efi"
ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
MTOOLS = {"MTOOLS_SKIP_CHECK": "1"}
GRUB_CFG = ("serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n"
            "echo \"BOOT-OK grub platform=${grub_platform}\"\nsleep 60\n")
ISOLINUX_CFG = "SERIAL 0 115200\nSAY BOOT-OK isolinux\nPROMPT 0\n"


def need_media_tools() -> None:
    need("xorriso", "isoinfo", "bsdtar", "sgdisk", "fdisk", "mkfs.fat", "mcopy", "grub-mkimage",
         ISOLINUX_BIN, ISOHDPFX, LDLINUX, f"{GRUB_EFI_DIR}/kernel.img", "/usr/lib/grub/i386-pc/boot_hybrid.img")


def efi_image(work, name: str = "efi.img") -> str:
    """A FAT image holding EFI/BOOT/BOOTX64.EFI: GRUB with an embedded config that prints
    BOOT-OK on the serial port (as live-build and archiso make theirs)."""
    cfg = work / "grub-embed.cfg"
    cfg.write_text(GRUB_CFG)
    loader = work / "BOOTX64.EFI"
    if not loader.exists():
        run(["grub-mkimage", "-O", "x86_64-efi", "-d", GRUB_EFI_DIR, "-o", str(loader), "-p", "/boot/grub",
             "-c", str(cfg), "normal", "echo", "serial", "terminal", "sleep", "configfile"])
    img = work / name
    run(["mkfs.fat", "-C", str(img), "2048"])
    run(["mmd", "-i", str(img), "::/EFI", "::/EFI/BOOT"], env_extra=MTOOLS)
    run(["mcopy", "-i", str(img), str(loader), "::/EFI/BOOT/BOOTX64.EFI"], env_extra=MTOOLS)
    return str(img)


def _common_tree(root, syslinux_dir: str) -> None:
    d = root / syslinux_dir
    d.mkdir(parents=True)
    shutil.copy(ISOLINUX_BIN, d)
    shutil.copy(LDLINUX, d)
    (d / "isolinux.cfg").write_text(ISOLINUX_CFG)
    (root / "live").mkdir()
    (root / "live" / "filesystem.squashfs").write_bytes(os.urandom(200_000))
    (root / "live" / "a name that is rather long for iso9660 and joliet.txt").write_text("long\n")
    (root / "live" / ("a name past Joliet's 64 characters that -joliet-long keeps whole, "
                      "to 103.txt")).write_text("longer\n")
    (root / "live" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "live" / "run.sh", 0o755)
    (root / ".disk").mkdir()
    (root / ".disk" / "info").write_text("sysexport test\n")


def live_build_case(work) -> tuple[list[str], str]:
    """live-build's binary_iso line (isolinux + GRUB efi.img in the tree)."""
    tree = work / "binary"
    _common_tree(tree, "isolinux")
    (tree / "boot" / "grub").mkdir(parents=True)
    shutil.move(efi_image(work), tree / "boot" / "grub" / "efi.img")
    args = ["-R", "-r", "-J", "-joliet-long", "-l", "-iso-level", "3", "-A", "Debian Live", "-p", "live-build",
            "-publisher", "Debian Live project", "-V", "DEBIAN_LIVE", "-b", "isolinux/isolinux.bin",
            "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
            "-eltorito-alt-boot", "-e", "boot/grub/efi.img", "-no-emul-boot", "-isohybrid-gpt-basdat",
            "-isohybrid-mbr", ISOHDPFX]
    return args, str(tree)


def archiso_case(work) -> tuple[list[str], str]:
    """mkarchiso's _build_iso_image for bios.syslinux + uefi.grub (an appended ESP image)."""
    tree = work / "iso"
    _common_tree(tree, "boot/syslinux")
    shutil.copy(ISOHDPFX, tree / "boot" / "syslinux")
    esp = efi_image(work, "efiboot.img")
    args = ["-iso-level", "3", "-full-iso9660-filenames", "-joliet", "-joliet-long", "-rational-rock",
            "-volid", "ARCH_202612", "-appid", "Arch Linux live/rescue DVD",
            "-publisher", "Arch Linux <https://archlinux.org>", "-preparer", "prepared by mkarchiso",
            "-eltorito-boot", "boot/syslinux/isolinux.bin", "-eltorito-catalog", "boot/syslinux/boot.cat",
            "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
            "-isohybrid-mbr", str(tree / "boot" / "syslinux" / "isohdpfx.bin"), "--mbr-force-bootable",
            "-partition_offset", "16", "-append_partition", "2", ESP_GUID, esp, "-isohybrid-gpt-basdat",
            "-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::", "-no-emul-boot"]
    return args, str(tree)


def archiso_uefi_case(work) -> tuple[list[str], str]:
    """mkarchiso for uefi.grub alone: a valid GPT (-appended_part_as_gpt), no isohybrid MBR."""
    tree = work / "iso"
    _common_tree(tree, "boot/syslinux")
    (tree / "EFI").mkdir()
    esp = efi_image(work, "efiboot.img")
    args = ["-iso-level", "3", "-full-iso9660-filenames", "-joliet", "-joliet-long", "-rational-rock",
            "-volid", "ARCH_UEFI", "-appid", "Arch", "-publisher", "Arch", "-preparer", "prepared by mkarchiso",
            "-partition_offset", "16", "-append_partition", "2", ESP_GUID, esp, "-appended_part_as_gpt",
            "-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::", "-no-emul-boot",
            "-eltorito-catalog", "EFI/boot.cat", "--mbr-force-bootable"]
    return args, str(tree)


def isohybrid_only_case(work) -> tuple[list[str], str]:
    """syslinux's isohybrid alone: the isohybrid table without a GPT (type 0x17)."""
    tree = work / "iso"
    _common_tree(tree, "isolinux")
    return ["-R", "-J", "-joliet-long", "-V", "HYBRID", "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
            "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-isohybrid-mbr", ISOHDPFX], str(tree)


def basdat_first_case(work) -> tuple[list[str], str]:
    """-isohybrid-gpt-basdat while the BIOS entry is described: xorriso marks isolinux.bin
    (an 0xEF MBR entry over it), not the EFI image."""
    args, tree = live_build_case(work)
    args = [a for a in args if a != "-isohybrid-gpt-basdat"]
    i = args.index("-eltorito-alt-boot")
    return args[:i] + ["-isohybrid-gpt-basdat"] + args[i:], tree


def plain_mbr_case(work) -> tuple[list[str], str]:
    """An appended ESP without isohybrid MBR or GPT: xorriso's plain MBR (0x83 over the ISO)."""
    tree = work / "iso"
    _common_tree(tree, "isolinux")
    esp = efi_image(work, "efiboot.img")
    return ["-R", "-J", "-joliet-long", "-V", "PLAIN", "-append_partition", "2", "0xef", esp, "-e",
            "--interval:appended_partition_2:all::", "-no-emul-boot"], str(tree)


GRUB_PC_DIR = "/usr/lib/grub/i386-pc"
GRUB_HYBRID = f"{GRUB_PC_DIR}/boot_hybrid.img"


def grub_mkrescue_case(work) -> tuple[list[str], str]:
    """grub-mkrescue's line without its HFS+ and Apple options: GRUB's El Torito image with
    --grub2-boot-info, boot_hybrid.img as --grub2-mbr, --protective-msdos-label, and an
    EFI image (--efi-boot) that is also the GPT's ESP (-efi-boot-part --efi-boot-image)."""
    tree = work / "rescue"
    _common_tree(tree, "isolinux")
    (tree / "boot" / "grub" / "i386-pc").mkdir(parents=True)
    cfg = work / "grub-bios.cfg"
    cfg.write_text(GRUB_CFG)
    run(["grub-mkimage", "-O", "i386-pc-eltorito", "-d", GRUB_PC_DIR, "-o",
         str(tree / "boot" / "grub" / "i386-pc" / "eltorito.img"), "-p", "/boot/grub", "-c", str(cfg),
         "biosdisk", "iso9660", "normal", "echo", "serial", "terminal", "sleep", "configfile"])
    shutil.move(efi_image(work), tree / "efi.img")
    (tree / "boot" / "grub" / "grub.cfg").write_text("# menu\n")
    return ["-graft-points", "--modification-date=2023111422132042", "-b", "boot/grub/i386-pc/eltorito.img",
            "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info",
            "--grub2-mbr", GRUB_HYBRID, "--efi-boot", "efi.img", "-efi-boot-part", "--efi-boot-image",
            "--protective-msdos-label", "-r"], str(tree)


CASES = {"live-build": live_build_case, "archiso": archiso_case, "archiso-uefi": archiso_uefi_case,
         "isohybrid-only": isohybrid_only_case, "basdat-first": basdat_first_case, "plain-mbr": plain_mbr_case, "grub-mkrescue": grub_mkrescue_case}


def make_both(case: str, work, sde: str = "1700000000") -> tuple[str, str, str]:
    """(ours, xorriso's, tree) for one command line, SOURCE_DATE_EPOCH set for both."""
    args, tree = CASES[case](work)
    ours, theirs = str(work / "ours.iso"), str(work / "xorriso.iso")
    env = dict(os.environ, SOURCE_DATE_EPOCH=sde)
    p = subprocess.run([sys.executable, "-m", "sysexport", "mkisofs", *args, "-o", ours, tree], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    run(["xorriso", "-no_rc", "-as", "mkisofs", *args, "-o", theirs, tree], env_extra={"SOURCE_DATE_EPOCH": sde})
    return ours, theirs, tree


# ------------------------------------------------------------------------------ what readers see

def bsdtar_files(image: str, dest) -> dict[str, bytes]:
    os.makedirs(dest)
    run(["bsdtar", "-xf", image, "-C", str(dest)])
    found = {}
    for dirpath, _dirs, files in os.walk(dest):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                found[os.path.relpath(p, dest)] = fh.read()
    return found


def xorriso_find(image: str) -> list[str]:
    text = out(["xorriso", "-indev", image, "-find", "/", "-exec", "lsdl", "--"])
    rows = []
    for line in text.splitlines():
        m = re.match(r"([-dl][-rwxsStT]{9})\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\d+\s+[\d:]+\s+'(.*)'", line)
        if m:
            perm, uid, gid, size, path = m.groups()
            rows.append(f"{perm} {uid} {gid} {size if perm[0] == '-' else ''} {path}")
    return sorted(rows)


def eltorito(image: str) -> list[tuple[str, ...]]:
    """(platform, bootable, emulation, load size, image path) of each catalog entry."""
    text = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    entries = {m.group(1): list(m.groups()[1:5])
               for m in re.finditer(r"El Torito boot img :\s+(\d+)\s+(\S+)\s+(\S)\s+(\S+)\s+\S+\s+\S+\s+(\d+)", text)}
    for n, path in re.findall(r"El Torito img path :\s+(\d+)\s+(\S+)", text):
        entries[n].append(path)
    for n, blocks in re.findall(r"El Torito img blks :\s+(\d+)\s+(\d+)", text):
        entries[n].append(f"blocks={blocks}")
    cat = re.search(r"El Torito cat path : (\S+)", text)
    return [("catalog", cat.group(1) if cat else "")] + [tuple(v) for _k, v in sorted(entries.items())]


def system_area(image: str) -> dict[str, object]:
    text = out(["xorriso", "-indev", image, "-report_system_area", "plain"])
    summary = re.search(r"System area summary: (.*)", text)
    mbr = re.findall(r"MBR partition      :\s+(\d+)\s+(0x..)\s+(0x..)\s+(\d+)\s+(\d+)", text)
    last_lba = os.path.getsize(image) // 512 - 1
    mbr = [row[:4] + ("to the end",) if row[2] in ("0xee", "0xcd") and int(row[4]) == last_lba else row
           for row in mbr]
    names = dict(re.findall(r"GPT partname local :\s+(\d+)\s+(\S+)", text))
    types = dict(re.findall(r"GPT type GUID      :\s+(\d+)\s+(\S+)", text))
    flags = dict(re.findall(r"GPT partition flags:\s+(\d+)\s+(\S+)", text))
    gpt = sorted((names[n], types[n], flags[n]) for n in names
                 if not re.fullmatch(r"ISOHybrid\d+", names[n]))
    return {"summary": summary.group(1).replace("cyl-align-off", "").split() if summary else [],
            "mbr": mbr, "gpt": gpt}


def isoinfo_d(image: str) -> list[str]:
    keep = ("Volume id:", "Publisher id:", "Data preparer id:", "Application id:", "Joliet with UCS",
            "Rock Ridge signatures", "Eltorito validation header", "    Bootable", "    Boot media",
            "    Load segment", "    Sys type", "    Nsect")
    text = out(["isoinfo", "-d", "-i", image])
    # Without -p each names the program that made it, as xorriso does.
    text = re.sub(r"(Data preparer id:) (XORRISO-|SYSEXPORT-)\S.*", r"\1 the program", text)
    return [line.rstrip() for line in text.splitlines() if line.startswith(keep)]


def isoinfo_names(image: str, flag: str) -> list[str]:
    p = subprocess.run(["isoinfo", "-l", flag, "-i", image], capture_output=True, text=True)
    if flag == "-J" and "Unable to find Joliet SVD" in p.stderr:
        return ["(no Joliet)"]
    assert p.returncode == 0, p.stderr
    text = p.stdout
    names = []
    current = ""
    for line in text.splitlines():
        m = re.match(r"Directory listing of (.*)", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"[-d][-rwx]{9}.*\]\s+(.*?)\s*$", line)
        if m and m.group(1) not in (".", ".."):
            names.append(current + m.group(1))
    return sorted(names)


def fdisk_rows(image: str) -> list[list[str]]:
    text = out(["fdisk", "-l", image])
    rows = []
    for line in text.splitlines():
        if line.startswith(image):
            fields = line[len(image):].split()
            boot = fields[1] == "*"
            rest = fields[2:] if boot else fields[1:]
            kind = " ".join(rest[5:]) if "basic data" in line else " ".join(rest[4:])
            # The partition over the ISO and the gaps around its files: their sizes are the
            # ISO's, which differ by the layout of the metadata (compared through the files).
            sectors = "ISO" if fields[0] == "1" or "basic data" in line else rest[2]
            rows.append([fields[0], "*" if boot else "", sectors, kind])
    return rows


def sgdisk_rows(image: str) -> list[str]:
    p = subprocess.run(["sgdisk", "-p", image], capture_output=True, text=True)
    text = p.stdout + p.stderr
    rows = [re.sub(r"^\s*\d+\s+\d+\s+\d+\s+", "", line).split()
            for line in text.splitlines() if re.match(r"\s+\d+\s+\d+\s+\d+\s+\S+", line)]
    names = [" ".join(r[3:]) for r in rows]
    return sorted(n for n in names if not re.fullmatch(r"ISOHybrid\d+", n)) or \
        (["invalid"] if "Invalid partition data" in text else [])


def blkid(image: str) -> dict[str, str]:
    text = out(["blkid", "-p", "-o", "export", image], ok_codes=(0, 2))
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v for k, v in fields.items() if k in ("TYPE", "LABEL", "PTTYPE", "APPLICATION_ID", "PUBLISHER_ID")}


# ------------------------------------------------------------------------------ the comparisons

def _mbr_rows(rows: list) -> list[tuple[str, ...]]:
    """(number, status, type, blocks) of each MBR entry; where each starts depends on the
    ISO's size, as does the size of entry 1 over the ISO (its metadata is laid out by
    another program), unless it spans the image or whole cylinders."""
    out = []
    for n, status, kind, _start, blocks in rows:
        if n == "1" and blocks != "to the end" and int(blocks) % 2048 and kind in ("0x83", "0x17", "0x00"):
            blocks = "ISO"
        out.append((n, status, kind, blocks))
    return out


def _comparable(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files with what names LBAs blanked: the boot catalog's bytes (its entries are
    compared through xorriso's report) and isolinux.bin's boot info table (bytes 8..63)."""
    out = {}
    for name, data in files.items():
        if name.endswith(("boot.cat", "boot.catalog")):
            data = b"catalog"
        elif name.endswith("isolinux.bin"):
            data = data[:8] + bytes(56) + data[64:]
        elif name.endswith("eltorito.img"):      # the boot info table and --grub2-boot-info
            data = data[:8] + bytes(56) + data[64:2548] + bytes(8) + data[2556:]
        out[name] = data
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_readers_see_the_same_image(case, tmp_path):
    need_media_tools()
    ours, theirs, tree = make_both(case, tmp_path)
    files = bsdtar_files(ours, tmp_path / "x-ours")
    assert _comparable(files) == _comparable(bsdtar_files(theirs, tmp_path / "x-xorriso"))
    with open(os.path.join(tree, "live", "filesystem.squashfs"), "rb") as f:
        assert files[os.path.join("live", "filesystem.squashfs")] == f.read()
    assert xorriso_find(ours) == xorriso_find(theirs)
    assert eltorito(ours) == eltorito(theirs)
    ours_sa, theirs_sa = system_area(ours), system_area(theirs)
    assert ours_sa["summary"] == theirs_sa["summary"]
    assert _mbr_rows(ours_sa["mbr"]) == _mbr_rows(theirs_sa["mbr"])
    assert ours_sa["gpt"] == theirs_sa["gpt"]
    assert isoinfo_d(ours) == isoinfo_d(theirs)
    for flag in ("-R", "-J"):
        assert isoinfo_names(ours, flag) == isoinfo_names(theirs, flag)
    assert fdisk_rows(ours) == fdisk_rows(theirs)
    assert sgdisk_rows(ours) == sgdisk_rows(theirs)
    assert blkid(ours) == blkid(theirs)


@pytest.mark.parametrize("case", ["live-build", "archiso"])
def test_isohybrid_mbr_names_the_boot_image(case, tmp_path):
    need_media_tools()
    ours, theirs, _tree = make_both(case, tmp_path)
    lbas = []
    for image in (ours, theirs):
        text = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
        lba = int(re.search(r"El Torito boot img :\s+1\s+BIOS.*\s(\d+)\s*$", text, re.M).group(1))
        with open(image, "rb") as f:
            assert boot_lba_of(f.read(512)) == lba
        lbas.append(lba)
    assert "isohybrid-suitable" in out(["xorriso", "-indev", ours, "-report_el_torito", "plain"])


@pytest.mark.parametrize("case", ["archiso", "archiso-uefi"])
def test_partition_offset_partition_mounts_alone(case, tmp_path):
    """-partition_offset 16: partition 1, cut out of the image, is an ISO 9660 volume of
    its own (the second superblock and tree), as in xorriso's image."""
    need_media_tools()
    ours, theirs, _tree = make_both(case, tmp_path)
    seen = []
    for image in (ours, theirs):
        assert re.search(r"Partition offset\s+:\s+16", out(["xorriso", "-indev", image, "-report_system_area",
                                                              "plain"]))
        part = str(tmp_path / (os.path.basename(image) + ".p1"))
        with open(image, "rb") as f, open(part, "wb") as g:
            f.seek(16 * 2048)
            g.write(f.read())                       # from the partition's start to the end
        label = blkid(part)
        whole = bsdtar_files(image, tmp_path / (os.path.basename(image) + ".whole"))
        inside = bsdtar_files(part, tmp_path / (os.path.basename(image) + ".inside"))
        assert _comparable(inside) == _comparable(whole)
        assert isoinfo_names(part, "-J") == isoinfo_names(image, "-J")
        seen.append((label["TYPE"], label["LABEL"], sorted(inside)))
    assert seen[0] == seen[1]


def test_gpt_of_a_protective_image_is_valid(tmp_path):
    """-appended_part_as_gpt: sgdisk finds no problem in ours (xorriso's lists its padding too)."""
    need_media_tools()
    ours, _theirs, _tree = make_both("archiso-uefi", tmp_path)
    assert "No problems found" in out(["sgdisk", "-v", ours])
    text = out(["sgdisk", "-p", ours])
    assert "EFI system partition" in text or "EF00" in text, text


def test_file_times_under_source_date_epoch_as_xorriso(tmp_path):
    """xorriso -as mkisofs with SOURCE_DATE_EPOCH: access and change times set to the
    modification time (both images read through Rock Ridge's TF)."""
    need_media_tools()
    import sysexport
    args, tree = isohybrid_only_case(tmp_path)
    os.utime(os.path.join(tree, ".disk", "info"), (1_600_000_000, 1_650_000_000))
    os.utime(os.path.join(tree, "live", "run.sh"), (1_800_000_000, 1_900_000_000))   # after SDE
    ours, theirs = str(tmp_path / "o.iso"), str(tmp_path / "t.iso")
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    subprocess.run([sys.executable, "-m", "sysexport", "mkisofs", *args, "-o", ours, tree], env=env, check=True)
    run(["xorriso", "-no_rc", "-as", "mkisofs", *args, "-o", theirs, tree],
        env_extra={"SOURCE_DATE_EPOCH": "1700000000"})
    def times(image: str, path: str) -> tuple:
        st = sysexport.open(image).view("rr").stat(path)
        return st.mtime, st.atime, st.ctime

    assert times(ours, "/.disk/info") == times(theirs, "/.disk/info") == (1_650_000_000,) * 3
    # A time past SOURCE_DATE_EPOCH: sysexport clamps it (as tar --clamp-mtime), xorriso keeps it.
    assert times(ours, "/live/run.sh") == (1_700_000_000,) * 3
    assert times(theirs, "/live/run.sh") == (1_900_000_000,) * 3


def test_reproducible_with_source_date_epoch(tmp_path):
    need_media_tools()
    args, tree = live_build_case(tmp_path)
    images = []
    for i, sde in enumerate(("1700000000", "1700000000", None)):
        image = str(tmp_path / f"r{i}.iso")
        env = dict(os.environ)
        env.pop("SOURCE_DATE_EPOCH", None)
        if sde:
            env["SOURCE_DATE_EPOCH"] = sde
        subprocess.run([sys.executable, "-m", "sysexport", "mkisofs", *args, "-o", image, tree], env=env,
                       check=True, capture_output=True)
        with open(image, "rb") as f:
            images.append(f.read())
    assert images[0] == images[1]
    assert images[0][440:444] != images[2][440:444]             # the MBR id, random without SDE
    uuid = out(["blkid", "-p", "-s", "UUID", "-o", "value", str(tmp_path / "r0.iso")]).strip()
    assert uuid == "2023-11-14-22-13-20-00", uuid               # 1700000000 as the volume dates


# ------------------------------------------------------------------------------ options

def _mkisofs(*args: str) -> int:
    return main(["mkisofs", *args])


def test_unsupported_option_is_one_line_and_exit_2(capsys, tmp_path):
    assert _mkisofs("-o", str(tmp_path / "x.iso"), "-hfs", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sysexport: error: mkisofs option -hfs is not supported (see 'sysexport mkisofs --help')"]
    assert _mkisofs("-iso-level", "4", "-o", "x", ".") == 2
    assert "ISO 9660:1999" in capsys.readouterr().err
    assert _mkisofs("-boot-load-size", "4") == 2
    assert "give -b or -e" in capsys.readouterr().err
    assert _mkisofs("-append_partition", "2", "0xef") == 2
    assert "expects 3 values" in capsys.readouterr().err
    assert _mkisofs("-e", "--interval:imgfile:0::") == 2
    assert not os.path.exists(tmp_path / "x.iso")


BAD = [
    (["-o", "{out}"], 2, "give at least one PATH"),
    (["-o", "{out}", "{tmp}/nosuch"], 1, "nosuch: cannot read it"),
    (["-b", "nope.bin", "-no-emul-boot", "-o", "{out}", "{tree}"], 1, "nope.bin"),
    (["-b", "f.bin", "-o", "{out}", "{tree}"], 1, "add -no-emul-boot"),
    (["-b", "f.bin", "-no-emul-boot", "-isohybrid-mbr", "{tree}/f.bin", "-o", "{out}", "{tree}"], 1,
     "432 bytes of code"),
    (["-isohybrid-mbr", ISOHDPFX, "-o", "{out}", "{tree}"], 1, "needs a BIOS El Torito image"),
    (["-isohybrid-gpt-basdat", "-o", "{out}", "{tree}"], 2, "needs -isohybrid-mbr"),
    (["-append_partition", "2", "0xef", "{tmp}/nosuch", "-o", "{out}", "{tree}"], 1, "nosuch"),
    (["-append_partition", "2", "0xef", "{tree}/f.bin", "-append_partition", "2", "0xef", "{tree}/f.bin"], 2,
     "given twice"),
    (["-append_partition", "5", "0x83", "{tree}/f.bin", "-o", "{out}", "{tree}"], 1, "an MBR has 4 slots"),
    (["-b", "f.bin", "-no-emul-boot", "-isohybrid-mbr", ISOHDPFX, "-append_partition", "1", "0x83",
      "{tree}/f.bin", "-o", "{out}", "{tree}"], 1, "slot 1 holds the ISO"),
    (["-e", "--interval:appended_partition_3:all::", "-no-emul-boot", "-o", "{out}", "{tree}"], 1,
     "names no -append_partition 3"),
    (["-partition_offset", "8", "-o", "{out}", "{tree}"], 2, "at least 16"),
    (["-V", "x" * 40, "-o", "{out}", "{tree}"], 1, "holds 32"),
    (["-sort", "{tmp}/nosuch", "-o", "{out}", "{tree}"], 1, "-sort"),
    (["-input-charset", "iso8859-1", "-o", "{out}", "{tree}"], 2, "only UTF-8"),
    (["-graft-points", "a={tree}/f.bin", "a={tree}/f.bin", "-o", "{out}"], 1, "added twice"),
]


@pytest.mark.parametrize("argv,status,message", BAD)
def test_bad_command_lines(argv, status, message, tmp_path, capsys):
    need(ISOHDPFX)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f.bin").write_bytes(b"x" * 100)
    out_path = tmp_path / "out.iso"
    args = [a.format(out=out_path, tmp=tmp_path, tree=tree) for a in argv]
    assert _mkisofs(*args) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sysexport: error: ") and message in err[0], err
    assert not out_path.exists()
    assert sorted(os.listdir(tmp_path)) == ["tree"]         # no temporary file left either


def _validated(doc: dict) -> dict:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from sysexport.schemas import load, load_all
    registry = referencing.Registry().with_resources(
        (sid, referencing.Resource.from_contents(s)) for sid, s in load_all().items())
    jsonschema.Draft202012Validator(load("mkisofs"), registry=registry).validate(doc)
    return doc


def test_json_matches_xorriso_and_fdisk(tmp_path, capsys):
    """--json: the schema's shape, and the values xorriso and fdisk read from the image."""
    import json
    need_media_tools()
    args, tree = live_build_case(tmp_path)
    image = str(tmp_path / "j.iso")
    assert _mkisofs(*args, "-o", image, tree, "--json") == 0
    doc = _validated(json.loads(capsys.readouterr().out))
    assert doc["mode"] == "mkisofs" and doc["image_size"] == os.path.getsize(image)
    assert doc["iso9660"]["label"] == "DEBIAN_LIVE"
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    lbas = [int(m) for m in re.findall(r"El Torito boot img :\s+\d+\s+\S+\s+\S\s+\S+\s+\S+\s+\S+\s+\d+\s+(\d+)",
                                        report)]
    assert [e["offset"] for e in doc["eltorito"]] == [lba * 2048 for lba in lbas]
    assert doc["system_area"]["isohybrid"] == {"kind": "syslinux", "boot_lba": lbas[0]}
    rows = [line.split() for line in out(["fdisk", "-l", "-o", "Device,Start,Sectors,Id", image]).splitlines()
            if line.startswith(image)]
    assert [(p["offset"] // 512, p["size"] // 512, f"{p['type']:x}") for p in doc["system_area"]["mbr_partitions"]] \
        == [(int(r[1]), int(r[2]), r[3]) for r in rows]
    assert _mkisofs(*args, "--sysexport-hybrid", "-o", str(tmp_path / "h.img"), tree, "--json") == 0
    hybrid = _validated(json.loads(capsys.readouterr().out))
    assert hybrid["mode"] == "hybrid" and hybrid["esp"]["fat_type"] in (12, 16, 32)
    assert _mkisofs(*args, "-quiet", "-o", image, tree) == 0
    assert capsys.readouterr().out == ""


def test_help(capsys):
    assert _mkisofs("--help") == 0
    assert "-isohybrid-mbr" in capsys.readouterr().out


def test_boot_entries_follow_eltorito_alt_boot():
    o = parse_mkisofs_args(["-b", "a.bin", "-no-emul-boot", "-boot-load-size", "4", "-eltorito-alt-boot",
                            "-e", "--interval:appended_partition_2:all::", "-no-emul-boot", "-isohybrid-gpt-basdat"])
    assert [(b.platform, b.path, b.appended, b.no_emul, b.load_size, b.gpt_basdat) for b in o.boot] == \
        [("bios", "a.bin", None, True, 4, False), ("efi", None, 2, True, None, True)]
    with pytest.raises(UsageError, match="eltorito-alt-boot"):
        parse_mkisofs_args(["-b", "a.bin", "-e", "b.img"])
    o = parse_mkisofs_args(["--modification-date=2023111422132000", "-graft-points", "a=b"])
    assert o.modification_date == 1700000000.0 and o.paths == ["a=b"]
    with pytest.raises(UsageError, match="not a date"):
        parse_mkisofs_args(["--modification-date=2023133122132000"])


def test_graft_points_exclude_hide_and_sort(tmp_path):
    need("xorriso", "isoinfo", "bsdtar")
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "keep" / "a.txt").write_bytes(b"a" * 5000)
    (src / "keep" / "b.txt").write_bytes(b"b" * 5000)
    (src / "keep" / "junk.tmp").write_text("no")
    (src / "skipdir").mkdir()
    (src / "skipdir" / "inside").write_text("no")
    with open(os.path.join(os.fsencode(src / "skipdir"), b"not utf-8 \xff"), "wb") as f:
        f.write(b"an excluded directory is never read: this name would fail the build")
    (src / "secret.txt").write_text("only in joliet")
    single = tmp_path / "single.cfg"
    single.write_text("one file\n")
    sort = tmp_path / "sort.txt"
    sort.write_text(f"{src}/keep/b.txt 10\nkeep/a.txt 5\n")
    image = str(tmp_path / "g.iso")
    assert _mkisofs("-J", "-graft-points", "-m", "*.tmp", "-m", "skipdir", "-hide", "secret.txt",
                    "-sort", str(sort), "-o", image, f"data={src}", f"etc/one.cfg={single}") == 0
    files = bsdtar_files(image, tmp_path / "x")
    assert sorted(files) == ["data/keep/a.txt", "data/keep/b.txt", "etc/one.cfg"]
    assert "data/secret.txt" in isoinfo_names(image, "-J")[0:] or \
        "/data/secret.txt" in isoinfo_names(image, "-J")
    assert all("secret" not in n for n in isoinfo_names(image, "-R"))
    listing = out(["isoinfo", "-l", "-R", "-i", image])
    lba = {m.group(2): int(m.group(1)) for m in re.finditer(r"\[\s*(\d+)\s+\d+\]\s+(\S+)\s*$", listing, re.M)}
    assert lba["b.txt"] < lba["a.txt"]              # the heavier weight first


def test_graft_points_exclude_and_hide_as_xorriso(tmp_path):
    """The same -graft-points, -m, -hide and -hide-joliet line: the Rock Ridge and Joliet
    trees list the same names in ours and in xorriso's."""
    need("xorriso", "isoinfo")
    src = tmp_path / "src"
    (src / "a" / "deep").mkdir(parents=True)
    for name in ("a/one.txt", "a/deep/two.txt", "a/drop.tmp", "rr-only.txt", "joliet-only.txt", "b.cfg"):
        (src / name).write_text(name)
    single = tmp_path / "single.bin"
    single.write_bytes(b"1")
    common = ["-R", "-J", "-graft-points", "-m", "*.tmp", "-hide", "joliet-only.txt", "-hide-joliet",
              "rr-only.txt"]
    paths = [f"/data={src}", f"/etc/x/single.bin={single}", f"/top={src}/b.cfg"]
    ours, theirs = str(tmp_path / "o.iso"), str(tmp_path / "t.iso")
    assert _mkisofs(*common, "-o", ours, *paths) == 0
    run(["xorriso", "-as", "mkisofs", *common, "-o", theirs, *paths])
    for flag in ("-R", "-J"):
        assert isoinfo_names(ours, flag) == isoinfo_names(theirs, flag), flag
    assert "/data/rr-only.txt" in isoinfo_names(ours, "-R")
    assert "/data/rr-only.txt" not in isoinfo_names(ours, "-J")
    assert "/data/joliet-only.txt" in isoinfo_names(ours, "-J")


def test_rational_rock_as_xorriso(tmp_path):
    need("xorriso")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x").write_text("x")
    os.chmod(src / "d" / "x", 0o751)
    (src / "w").write_text("w")
    os.chmod(src / "w", 0o620)
    ours, theirs = str(tmp_path / "o.iso"), str(tmp_path / "t.iso")
    assert _mkisofs("-r", "-o", ours, str(src)) == 0
    run(["xorriso", "-as", "mkisofs", "-r", "-o", theirs, str(src)])
    assert xorriso_find(ours) == xorriso_find(theirs)


def test_sysexport_hybrid_builds_the_esp_from_the_tree(tmp_path):
    need_media_tools()
    args, tree = live_build_case(tmp_path)
    image = str(tmp_path / "h.img")
    assert _mkisofs(*args, "--sysexport-hybrid", "-o", image, tree) == 0
    assert "No problems found" in out(["sgdisk", "-v", image])
    fdisk4k = out(["fdisk", "-b", "4096", "-l", image])
    assert "Disklabel type: gpt" in fdisk4k
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain", "-report_system_area", "plain"])
    assert "MBR isohybrid" in report and "UEFI" in report
    esp = tmp_path / "esp.img"
    start, size = _esp_extent(image)
    with open(image, "rb") as f, open(esp, "wb") as g:
        f.seek(start)
        g.write(f.read(size))
    listing = out(["mdir", "-/", "-b", "-i", str(esp), "::"], env_extra=MTOOLS)
    assert "::/EFI/BOOT/BOOTX64.EFI" in listing.upper()
    assert "::/live/filesystem.squashfs".upper() in listing.upper()      # stored once, for both


def test_sysexport_hybrid_keeps_files_fat_cannot_hold_in_the_iso(tmp_path):
    need("bsdtar", "sgdisk")
    src = tmp_path / "src"
    (src / "live").mkdir(parents=True)
    with open(src / "live" / "filesystem.squashfs", "wb") as f:
        f.truncate(5 << 30)                     # sparse: 5 GiB, past FAT's 4 GiB - 1
    (src / "small.txt").write_text("small\n")
    image = str(tmp_path / "big.img")
    assert _mkisofs("-iso-level", "3", "-R", "-J", "--sysexport-hybrid", "-o", image, str(src)) == 0
    listing = out(["bsdtar", "-tvf", image])
    assert re.search(r"\s5368709120 .*live/filesystem.squashfs", listing), listing
    assert "No problems found" in out(["sgdisk", "-v", image])


def _esp_extent(image: str) -> tuple[int, int]:
    text = out(["sgdisk", "-i", "1", image])
    first = int(re.search(r"First sector: (\d+)", text).group(1))
    last = int(re.search(r"Last sector: (\d+)", text).group(1))
    return first * 512, (last - first + 1) * 512
