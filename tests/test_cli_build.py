"""`sysexport build` with the options of issue 14, each checked by readers nobody here wrote.

isoinfo -d for the identifiers; xorriso -report_el_torito and dumpet for the El Torito
entries (their LBAs compared with isoinfo's listing, the boot info table read back);
bsdtar (the ISO, Rock Ridge) and mtools (the ESP) for --exclude, --iso-only and DIR:DEST;
fdisk for --mbr-bootable; the isohybrid MBR's patched address against isoinfo's LBA of the
boot file; isoinfo's Rock Ridge modes against xorriso's own ``-as mkisofs -r`` image of the
same tree for -r, bsdtar's listing of the initramfs likewise.  Slow: the isohybrid image
boots isolinux from disk and from CD under SeaBIOS.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import struct

import pytest

from helpers import need, out, run
from helpers.qemuboot import boot_firmware

from sysexport.cli import main

ISOLINUX_BIN = "/usr/lib/ISOLINUX/isolinux.bin"
ISOHDPFX = "/usr/lib/ISOLINUX/isohdpfx.bin"
LDLINUX = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}
ISO_BLOCK = 2048


@pytest.fixture(autouse=True)
def _sde(sde):
    return sde


def build(*args: str) -> None:
    assert main(["build", *map(str, args)]) == 0


def write(root, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return str(root)


def iso_listing(image: str) -> dict[str, tuple[str, int, int, int]]:
    """{path: (mode string, uid, gid, LBA)} of every entry, from ``isoinfo -l -R``."""
    need("isoinfo")
    entries: dict[str, tuple[str, int, int, int]] = {}
    directory = "/"
    line_re = re.compile(r"^(\S{10})\s+\d+\s+(\d+)\s+(\d+)\s+\d+\s+\w+\s+\d+\s+\d+\s+\[\s*(\d+)\s+\d+\]\s+(.*?)\s*$")
    for line in out(["isoinfo", "-l", "-R", "-i", image]).splitlines():
        if line.startswith("Directory listing of "):
            directory = line[len("Directory listing of "):].strip()
            continue
        m = line_re.match(line)
        if not m:
            continue
        name = m.group(5).split(" -> ")[0]
        if name in (".", ".."):
            continue
        entries[directory + name] = (m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)))
    return entries


def tar_listing(archive: str) -> dict[str, tuple[str, int, int]]:
    """{path: (mode string, uid, gid)} of every entry, from ``bsdtar -tvf`` (ISO images and
    cpio archives alike; unlike isoinfo it shows set-id and sticky bits)."""
    need("bsdtar")
    entries = {}
    for line in out(["bsdtar", "-tvnf", archive]).splitlines():
        cols = line.split(None, 8)
        name = cols[8].split(" -> ")[0].rstrip("/")
        if name not in (".", ""):
            entries[name] = (cols[0], int(cols[2]), int(cols[3]))
    return entries


def esp_offset(image: str) -> int:
    need("sfdisk")
    table = json.loads(out(["sfdisk", "--json", image]))["partitiontable"]
    return int(table["partitions"][0]["start"]) * table.get("sectorsize", 512)


def esp_names(image: str) -> set[str]:
    """Every path mtools sees in the ESP (directories with a trailing '/')."""
    need("mdir")
    listing = out(["mdir", "-/", "-b", "-i", f"{image}@@{esp_offset(image)}", "::"], env_extra=MTOOLS_ENV)
    return {line.strip()[3:] for line in listing.splitlines() if line.startswith("::/")}


def iso_names(image: str) -> set[str]:
    need("bsdtar")
    return {line.rstrip("/") for line in out(["bsdtar", "-tf", image]).splitlines() if line not in (".", "")}


def isolinux_tree(root) -> str:
    need(ISOLINUX_BIN, LDLINUX)
    files = {"isolinux/isolinux.bin": open(ISOLINUX_BIN, "rb").read(),
             "isolinux/ldlinux.c32": open(LDLINUX, "rb").read(),
             "isolinux/isolinux.cfg": b"SERIAL 0 115200\nSAY BUILD-CLI-ISOLINUX-OK\nPROMPT 0\n",
             "hello.txt": b"hello\n"}
    return write(root, files)


def el_torito(image: str) -> list[tuple[str, int, int]]:
    """(platform, load size, LBA) of every catalog entry, from ``xorriso -report_el_torito plain``."""
    need("xorriso")
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    rows = re.findall(r"El Torito boot img :\s+\d+\s+(\w+)\s+y\s+none\s+\S+\s+\S+\s+(\d+)\s+(\d+)", report)
    return [(p, int(size), int(lba)) for p, size, lba in rows]


def dumpet_entries(image: str) -> list[tuple[str, int]]:
    """(platform id of the entry's section, load LBA) of every entry, from ``dumpet -i``."""
    need("dumpet")
    text = out(["dumpet", "-i", image])
    platforms = re.findall(r"PlatformId: (0x[0-9a-f]+)", text)
    lbas = [int(x) for x in re.findall(r"Load LBA: (\d+)", text)]
    return list(zip(platforms, lbas))


# ------------------------------------------------------------------------------ identifiers

def test_identifiers_as_isoinfo_reads_them(tmp_path):
    image = tmp_path / "ids.img"
    build(write(tmp_path / "t", {"a.txt": b"a\n"}), "-o", image, "--publisher", "The Publisher",
          "--preparer", "Prepared by me", "--application", "MY APP 1.0", "--system", "MYSYS", "--label", "IDS")
    text = out(["isoinfo", "-d", "-i", str(image)])
    # The primary descriptor holds a-characters (ECMA-119 7.4.1): the writer records upper case.
    assert "Publisher id: THE PUBLISHER" in text
    assert "Data preparer id: PREPARED BY ME" in text
    assert "Application id: MY APP 1.0" in text
    assert "System id: MYSYS" in text
    assert "Volume id: IDS" in text
    plain = tmp_path / "plain.img"
    build(write(tmp_path / "t", {}), "-o", plain)
    text = out(["isoinfo", "-d", "-i", str(plain)])
    assert "Application id: SYSEXPORT" in text and "System id: LINUX" in text      # the defaults stay


# ------------------------------------------------------------------------------ El Torito

def test_bios_and_efi_entries_point_at_their_files(tmp_path):
    need("mkfs.fat")
    src = isolinux_tree(tmp_path / "t")
    efi_img = tmp_path / "t" / "boot" / "efi.img"
    efi_img.parent.mkdir()
    run(["mkfs.fat", "-C", str(efi_img), "1440"])
    image = str(tmp_path / "boot.img")
    build(src, "-o", image, "--bios-boot", "isolinux/isolinux.bin", "--efi-boot", "/boot/efi.img")
    listing = iso_listing(image)
    bios_lba = listing["/isolinux/isolinux.bin"][3]
    efi_lba = listing["/boot/efi.img"][3]
    # 1440 KiB = 2880 sectors of 512 bytes: the whole file, below El Torito's 16-bit count.
    assert el_torito(image) == [("BIOS", 4, bios_lba), ("UEFI", 2880, efi_lba)]
    assert dumpet_entries(image) == [("0x00", bios_lba), ("0xef", efi_lba)]
    # The boot info table (mkisofs -boot-info-table): PVD at 16, the file's own LBA and length.
    with open(image, "rb") as f:
        f.seek(bios_lba * ISO_BLOCK + 8)
        pvd, own, length = struct.unpack("<III", f.read(12))
    assert (pvd, own, length) == (16, bios_lba, os.path.getsize(ISOLINUX_BIN))
    # The patched boot image lives in the ISO only; the FAT image is shared with the ESP.
    names = esp_names(image)
    assert "isolinux/isolinux.bin" not in names and "isolinux/ldlinux.c32" in names
    assert "boot/efi.img" in names
    assert esp_offset(image) <= efi_lba * ISO_BLOCK            # the ISO names the ESP's bytes


def test_efi_entry_naming_the_esp_first_then_bios(tmp_path):
    src = isolinux_tree(tmp_path / "t")
    image = str(tmp_path / "esp.img")
    build(src, "-o", image, "--efi-boot", "esp", "--bios-boot", "isolinux/isolinux.bin", "--no-boot-info-table",
          "--bios-boot-load-size", "8")
    listing = iso_listing(image)
    entries = dumpet_entries(image)
    # The ESP entry is added when the image is planned: after the BIOS one in the catalog.
    assert entries[0] == ("0x00", listing["/isolinux/isolinux.bin"][3])
    assert entries[1] == ("0xef", esp_offset(image) // ISO_BLOCK)
    assert el_torito(image)[0][:2] == ("BIOS", 8)
    with open(image, "rb") as f:                  # no boot info table: the file's own bytes
        f.seek(listing["/isolinux/isolinux.bin"][3] * ISO_BLOCK)
        assert f.read(64) == open(ISOLINUX_BIN, "rb").read(64)
    assert "isolinux/isolinux.bin" in esp_names(image)     # not patched, so shared


def test_efi_file_entry_first_is_the_default(tmp_path):
    need("mkfs.fat")
    src = write(tmp_path / "t", {"x": b"x"})
    run(["mkfs.fat", "-C", str(tmp_path / "t" / "efi.img"), "720"])
    image = str(tmp_path / "e.img")
    build(src, "-o", image, "--efi-boot", "efi.img")
    assert el_torito(image) == [("UEFI", 1440, iso_listing(image)["/efi.img"][3])]
    assert dumpet_entries(image)[0][0] == "0xef"


# ------------------------------------------------------------------------------ what goes in

def test_exclude_iso_only_and_several_sources(tmp_path):
    a = write(tmp_path / "a", {"keep.txt": b"k\n", "x.o": b"o", "sub/y.o": b"o", "sub/top.txt": b"sub\n",
                               "top.txt": b"root\n", "cache/c1": b"c", "cache/deep/c2": b"c",
                               "big.squashfs": b"s" * 5000, "secret/key": b"k", "bracket[1].txt": b"b"})
    b = write(tmp_path / "b", {"extra.txt": b"e\n", "z.o": b"o"})
    image = str(tmp_path / "sel.img")
    build(f"{a}", f"{b}:opt/b", "-o", image, "--exclude", "*.o", "--exclude", "cache", "--exclude", "/top.txt",
          "--iso-only", "*.squashfs", "--iso-only", "secret", "--iso-only", "bracket[[]1].txt")
    iso = iso_names(image)
    assert iso == {"keep.txt", "sub", "sub/top.txt", "big.squashfs", "secret", "secret/key",
                   "bracket[1].txt", "opt", "opt/b", "opt/b/extra.txt"}
    esp = esp_names(image)
    assert esp == {"keep.txt", "sub/", "sub/top.txt", "opt/", "opt/b/", "opt/b/extra.txt"}
    need("bsdtar")
    assert out(["bsdtar", "-xOf", image, "opt/b/extra.txt"]) == "e\n"
    assert out(["bsdtar", "-xOf", image, "big.squashfs"]) == "s" * 5000


def test_excluded_directory_is_not_read(tmp_path, capsys):
    """A name that is not UTF-8 fails a build; inside an excluded directory it is never seen."""
    src = tmp_path / "t"
    (src / "junk").mkdir(parents=True)
    (src / "ok.txt").write_bytes(b"ok\n")
    with open(os.path.join(os.fsencode(src / "junk"), b"\xff-not-utf8.bin"), "wb") as f:
        f.write(b"x")
    image = tmp_path / "x.img"
    assert main(["build", str(src), "-o", str(image)]) == 1
    assert "not valid UTF-8" in capsys.readouterr().err and not image.exists()
    build(src, "-o", image, "--exclude", "/junk")
    assert iso_names(str(image)) == {"ok.txt"} and esp_names(str(image)) == {"ok.txt"}


def test_file_of_4_gib_needs_iso_only(tmp_path, capsys):
    src = tmp_path / "t"
    src.mkdir()
    with open(src / "huge.img", "wb") as f:         # sparse: no bytes on disk
        f.truncate(4 << 30)
    image = tmp_path / "huge.img"
    assert main(["build", str(src), "-o", str(image)]) == 1
    err = capsys.readouterr().err
    assert "huge.img" in err and "--iso-only" in err and not image.exists()


@pytest.mark.slow
def test_file_of_4_gib_iso_only_is_read_by_xorriso(tmp_path):
    src = tmp_path / "t"
    src.mkdir()
    size = (4 << 30) + 4096
    with open(src / "huge.img", "wb") as f:
        f.seek(size - 5)
        f.write(b"tail\n")
    (src / "small.txt").write_bytes(b"small\n")
    image = str(tmp_path / "huge-iso.img")
    build(str(src), "-o", image, "--iso-only", "huge.img")
    need("xorriso")
    text = out(["xorriso", "-indev", image, "-find", "/huge.img", "-exec", "lsdl", "--"])
    assert str(size) in text, text
    assert esp_names(image) == {"small.txt"}
    tail = run(["xorriso", "-osirrox", "on", "-indev", image, "-extract", "/huge.img", str(tmp_path / "x")])
    assert tail.returncode == 0
    with open(tmp_path / "x", "rb") as f:
        f.seek(size - 5)
        assert f.read() == b"tail\n"


# ------------------------------------------------------------------------------ the MBR

def test_mbr_bootable_as_fdisk_reads_it(tmp_path):
    need("fdisk", "sgdisk")
    src = write(tmp_path / "t", {"a": b"a"})
    flagged, plain = str(tmp_path / "f.img"), str(tmp_path / "p.img")
    build(src, "-o", flagged, "--mbr-bootable")
    build(src, "-o", plain)

    def protective_row(image: str) -> list[str]:
        rows = [line.split() for line in out(["fdisk", "-t", "dos", "-l", image]).splitlines()
                if line.startswith(image)]
        assert len(rows) == 1, rows
        return rows[0]

    assert protective_row(flagged)[1] == "*" and protective_row(flagged)[-2:] == ["ee", "GPT"]
    assert protective_row(plain)[1] != "*"
    assert "No problems found" in out(["sgdisk", "-v", flagged])


def test_isohybrid_mbr_names_the_boot_file(tmp_path):
    need(ISOHDPFX)
    src = isolinux_tree(tmp_path / "t")
    image = str(tmp_path / "hy.img")
    build(src, "-o", image, "--bios-boot", "isolinux/isolinux.bin", "--isohybrid-mbr", ISOHDPFX, "--efi-boot", "esp")
    lba = iso_listing(image)["/isolinux/isolinux.bin"][3]
    assert el_torito(image)[0] == ("BIOS", 4, lba)
    with open(image, "rb") as f:
        mbr = f.read(512)
    assert struct.unpack_from("<II", mbr, 432) == (lba * 4, 0)
    assert mbr[:432] == open(ISOHDPFX, "rb").read(432)
    report = out(["xorriso", "-indev", image, "-report_system_area", "plain"])
    assert "MBR isohybrid" in report, report
    assert "No problems found" in out(["sgdisk", "-v", image])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bios-disk", "bios-cd"])
def test_isohybrid_image_boots_isolinux(tmp_path, mode):
    need(ISOHDPFX)
    src = isolinux_tree(tmp_path / "t")
    image = str(tmp_path / "hy.img")
    build(src, "-o", image, "--bios-boot", "isolinux/isolinux.bin", "--isohybrid-mbr", ISOHDPFX, "--mbr-bootable")
    text = boot_firmware(mode, image, str(tmp_path), expect="BUILD-CLI-ISOLINUX-OK", deadline_s=60)
    assert "BUILD-CLI-ISOLINUX-OK" in text


# ------------------------------------------------------------------------------ owners and modes

def mode_tree(root) -> str:
    """Entries of every kind with odd modes and owners (owners only when run as root)."""
    root.mkdir()
    specs = {"f600": 0o600, "f4755": 0o4755, "f710": 0o710, "f2644": 0o2644, "f000": 0o000}
    for name, mode in specs.items():
        (root / name).write_bytes(name.encode())
        os.chmod(root / name, mode)
    (root / "d700").mkdir()
    os.chmod(root / "d700", 0o700)
    (root / "d1777").mkdir()
    os.chmod(root / "d1777", 0o1777)
    (root / "d644").mkdir()
    os.chmod(root / "d644", 0o644)
    (root / "d700" / "inner").write_bytes(b"i")
    os.symlink("f600", root / "link")
    os.mkfifo(root / "fifo", 0o620)
    if os.geteuid() == 0:
        os.chown(root / "f600", 1000, 1001)
        os.chown(root / "d700", 1234, 5678)
        os.lchown(root / "link", 42, 43)
    return str(root)


def test_rational_rock_as_xorriso_mkisofs_r(tmp_path):
    need("xorriso")
    src = mode_tree(tmp_path / "t")
    ours, theirs = str(tmp_path / "r.img"), str(tmp_path / "x.iso")
    build(src, "-o", ours, "-r")
    run(["xorriso", "-as", "mkisofs", "-r", "-o", theirs, src])
    want = tar_listing(theirs)
    assert tar_listing(ours) == want
    assert want["f4755"] == ("-r-xr-xr-x", 0, 0) and want["d644"][0] == "dr--r--r--"     # the rule itself
    assert want["d1777"][0] == "dr-xr-xr-x" and want["link"][0] == "lr-xr-xr-x"
    # isoinfo reads the same Rock Ridge modes (it does not show set-id bits: bsdtar above does).
    assert {p: v[:3] for p, v in iso_listing(ours).items()} == {p: v[:3] for p, v in iso_listing(theirs).items()}


def test_owner_root_keeps_modes(tmp_path):
    src = mode_tree(tmp_path / "t")
    image = str(tmp_path / "o.img")
    build(src, "-o", image, "--owner", "root")
    listing = tar_listing(image)
    assert set(listing) == {"f600", "f4755", "f710", "f2644", "f000", "d700", "d1777", "d644", "d700/inner",
                            "link", "fifo"}
    for path, (mode, uid, gid) in listing.items():
        assert (mode, uid, gid) == (stat.filemode(os.lstat(os.path.join(src, path)).st_mode), 0, 0), path
    if os.geteuid() == 0:                   # without --owner the host's owners stay
        build(src, "-o", tmp_path / "k.img")
        kept = tar_listing(str(tmp_path / "k.img"))
        assert kept["f600"][1:] == (1000, 1001) and kept["d700"][1:] == (1234, 5678) and kept["link"][1:] == (42, 43)


def test_initramfs_rational_rock_and_owner_root(tmp_path):
    need("xorriso")
    src = mode_tree(tmp_path / "t")
    theirs = str(tmp_path / "x.iso")
    run(["xorriso", "-as", "mkisofs", "-r", "-o", theirs, src])
    rational = str(tmp_path / "r.cpio")
    assert main(["initramfs", src, "-o", rational, "-r"]) == 0
    assert tar_listing(rational) == tar_listing(theirs)
    rooted = str(tmp_path / "o.cpio")
    assert main(["initramfs", src, "-o", rooted, "--owner", "root"]) == 0
    for path, (mode, uid, gid) in tar_listing(rooted).items():
        assert (mode, uid, gid) == (stat.filemode(os.lstat(os.path.join(src, path)).st_mode), 0, 0), path


def test_the_demo_tree_is_the_default(tmp_path):
    """No DIR: the bundled demo tree, found through the package (not the working directory)."""
    image = str(tmp_path / "demo.img")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        build("-o", image)
    finally:
        os.chdir(cwd)
    assert {"README.txt", "docs/café.txt", "EFI/BOOT/README.txt"} <= iso_names(image)
    assert "docs/café.txt" in esp_names(image)


@pytest.mark.slow
def test_demo_build_from_an_installed_wheel(tmp_path):
    """A wheel of this checkout (built from a copy, so the checkout stays clean), installed in a
    fresh venv, builds the demo image from another directory, with nothing of the checkout on
    the path; bsdtar and mtools see the demo tree's files."""
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(repo, name), src / name)
    shutil.copytree(os.path.join(repo, "sysexport"), src / "sysexport", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    import importlib.util
    # setuptools and wheel as installed when there (offline), else pip's isolated build environment.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("wheel") else []
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(tmp_path / "wheels"),
         str(src)])
    (wheel,) = (tmp_path / "wheels").iterdir()
    run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp_path / "venv")])
    venv_python = str(tmp_path / "venv" / "bin" / "python")
    run([venv_python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([venv_python, "-c", "import sysexport; print(sysexport.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "venv")), where
    p = subprocess.run([str(tmp_path / "venv" / "bin" / "sysexport"), "build", "-o", "demo.img"], cwd=work,
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    image = str(work / "demo.img")
    assert {"README.txt", "readme-link", "docs/café.txt", "docs/notes/A long file name with spaces.txt",
            "boot/grub.cfg", "EFI/BOOT/README.txt"} <= iso_names(image)
    assert {"docs/café.txt", "EFI/BOOT/README.txt"} <= esp_names(image)
    assert out(["bsdtar", "-xOf", image, "docs/café.txt"]) == open(
        os.path.join(repo, "sysexport", "demo", "docs", "café.txt"), encoding="utf-8").read()
