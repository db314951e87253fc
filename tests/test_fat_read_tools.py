"""The FAT view against the reference readers, on images the reference tools made.

mkfs.fat (FAT12, FAT16, FAT32; 512- and 4096-byte sectors; a small FAT32), filled by
mcopy/mattrib/mlabel (tests/helpers/fatimages.py), read by our FATView and by mtools
(mdir, mattrib, mcopy -m), 7-Zip (``7zz l -slt``, ``7zz x``), The Sleuth Kit (fls, icat,
istat) and libblkid; every entry's name, 8.3 name, size, times, attributes and bytes are
compared.  The Linux kernel's view is in tests/test_fat_read_linux.py (slow).

Reader quirks met here (docs/testing.md lists them): mtools 4.0.32 cannot read a small
FAT32 (it decides the type by the cluster count), The Sleuth Kit needs ``-f fat32`` for
one, 7-Zip prints 8.3 names' OEM bytes undecoded (they are read as cp437 here) and its
extraction names files by those bytes.
"""
from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
from datetime import datetime, timezone

import pytest

from helpers import need, out, run, tree_digest
from helpers.fatimages import MTOOLS_ENV, SIGMA_NAME, FATImage, build, shrink_fat32
from sysexport.vfat.view import FATView

IMAGES = {
    # name: (FAT type, MiB, sector size, sectors per cluster)
    "fat12": (12, 4, 512, None),
    "fat16": (16, 32, 512, None),
    "fat32": (32, 40, 512, None),
    "fat16-4k": (16, 32, 4096, 1),
    "fat32-4k": (32, 300, 4096, None),
}
SMALL = {"fat32-small": ("fat32", 60000), "fat32-4k-small": ("fat32-4k", 30000)}
ALL = list(IMAGES) + list(SMALL)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, FATImage]:
    tmp = str(tmp_path_factory.mktemp("fatimg"))
    made: dict[str, FATImage] = {}
    for name, (fat_type, mib, ss, spc) in IMAGES.items():
        made[name] = build(tmp, name, fat_type, mib, sector_size=ss, sectors_per_cluster=spc)
    for name, (base, clusters) in SMALL.items():
        made[name] = shrink_fat32(made[base], os.path.join(tmp, f"{name}.img"), clusters)
    return made


def ours(img: FATImage) -> tuple[FATView, dict[str, object]]:
    f = open(img.path, "rb")
    view = FATView(f)
    return view, {e.path.lstrip("/"): e for e in view.walk() if e.path != "/"}


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def shown_short(e) -> str:
    """The 8.3 name as readers show it: with the NT case bits when it is the only name."""
    return e.fields["short_name"] if e.fields["long_name_offset"] is not None else e.name


# --- the volume --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_type_labels_and_serial_as_blkid(images, name):
    need("blkid")
    img = images[name]
    text = out(["blkid", "-p", "-o", "export", img.path])
    tags = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    view, _ = ours(img)
    assert tags["TYPE"] == "vfat" and tags["VERSION"] == f"FAT{view.fat_type}" == f"FAT{img.fat_type}"
    assert tags["LABEL"] == view.label == img.label
    assert tags["LABEL_FATBOOT"] == view.boot_label == img.label
    assert tags["UUID"] == "1234-ABCD" == view.info()["volume_id"]
    assert int(tags["BLOCK_SIZE"]) == view.volume.sector_size == img.sector_size
    if name in SMALL:
        assert view.volume.cluster_count < 65525        # a small FAT32: FAT32 by the BPB, as blkid says
    assert view.check() == []


# --- 7-Zip -------------------------------------------------------------------------------------------------

def oem(raw: bytes) -> str:
    """7-Zip prints long names in UTF-8 but an 8.3 name's OEM bytes undecoded: read those as cp437."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def sevenzip_entries(path: str) -> dict[str, dict[str, str]]:
    need("7zz")
    p = subprocess.run(["7zz", "l", "-slt", "-tfat", path], capture_output=True, check=True)
    entries: dict[str, dict[str, str]] = {}
    for block in p.stdout.split(b"\n\n"):
        kv = dict(oem(line).split(" = ", 1) for line in block.splitlines() if b" = " in line)
        if "Path" in kv and "Folder" in kv:
            entries[kv["Path"]] = kv
    return entries


@pytest.mark.parametrize("name", ALL)
def test_every_entry_as_7zip_lists_it(images, name):
    img = images[name]
    view, mine = ours(img)
    theirs = sevenzip_entries(img.path)
    assert set(theirs) == set(mine)
    for path, e in mine.items():
        t = theirs[path]
        assert (t["Folder"] == "+") == e.is_dir, path
        if e.is_file:
            assert int(t["Size"]) == e.size, path
        assert t["Modified"] == utc(e.mtime), path
        # "Created = 2020-09-13 12:49:06.00": the 10 ms field
        assert t["Created"] == f"{utc(e.ctime)}.{round(e.ctime * 100) % 100:02d}", path
        assert t["Accessed"] == utc(e.atime), path
        letters = {"R": "read_only", "H": "hidden", "S": "system", "A": "archive"}
        assert set(t["Attributes"]) - {"D"} == {k for k, v in letters.items() if e.fields[v]}, path
        if "Short Name" in t:
            assert t["Short Name"] == shown_short(e), path
    assert set(mine) == set(img.files) | img.dirs


@pytest.mark.parametrize("name", ["fat16", "fat32-small"])
def test_bytes_as_7zip_extracts_them(images, name, tmp_path):
    img = images[name]
    run(["7zz", "x", "-tfat", "-y", img.path, f"-o{tmp_path}"])
    got = tree_digest(tmp_path)
    view, mine = ours(img)
    want = {p: hashlib.sha256(view.read("/" + p)).hexdigest() for p, e in mine.items() if e.is_file}
    raw_sigma = SIGMA_NAME.encode("cp437").decode("utf-8", "surrogateescape")
    want[raw_sigma] = want.pop(SIGMA_NAME)
    assert got == want
    assert {p: hashlib.sha256(d).hexdigest() for p, d in img.files.items()} == \
        {p: h for p, h in want.items() if p != raw_sigma} | {SIGMA_NAME: want[raw_sigma]}


# --- The Sleuth Kit ----------------------------------------------------------------------------------------

def fls(img: FATImage) -> dict[str, int]:
    need("fls")
    fstype = "fat32" if img.fat_type == 32 else "fat"      # small FAT32: TSK must be told
    text = out(["fls", "-r", "-p", "-f", fstype, img.path], env_extra={"TZ": "UTC"})
    found = {}
    for line in text.splitlines():
        m = re.match(r"^[rd-]/[rd-] (\*?\s*)(\d+):\t(.*)$", line)
        if m and not m.group(1).strip() and not m.group(3).endswith("(Volume Label Entry)"):
            found[m.group(3)] = int(m.group(2))
    return found


@pytest.mark.parametrize("name", ALL)
def test_names_and_bytes_as_sleuthkit(images, name):
    need("icat", "istat")
    img = images[name]
    view, mine = ours(img)
    theirs = fls(img)
    assert SIGMA_NAME not in theirs             # TSK shows '^' for the cp437 byte
    sigma = [p for p in theirs if p.endswith("IGMA.TXT") and "/" not in p]
    assert len(sigma) == 1
    theirs.pop(sigma[0])
    assert set(theirs) == set(mine) - {SIGMA_NAME}
    fstype = "fat32" if img.fat_type == 32 else "fat"
    for path, inode in theirs.items():
        e = mine[path]
        if e.is_dir or path.startswith("many/"):
            continue
        data = subprocess.run(["icat", "-f", fstype, img.path, str(inode)], capture_output=True, check=True).stdout
        assert data == view.read("/" + path), path
    for path in ("lower.txt", "README.TXT", "deep/a/b/c/d/e/leaf.txt", "fragmented.bin"):
        text = out(["istat", "-f", fstype, img.path, str(theirs[path])], env_extra={"TZ": "UTC"})
        e = mine[path]
        assert f"Written:\t{utc(e.mtime)} (UTC)" in text, path
        assert f"Accessed:\t{utc(e.atime)} (UTC)" in text, path
        assert f"Created:\t{utc(e.ctime)} (UTC)" in text, path


@pytest.mark.parametrize("name", ["fat12", "fat16", "fat32", "fat32-small"])
def test_extents_are_the_clusters_sleuthkit_names(images, name):
    """istat lists a file's sectors: our extents cover exactly those (the fragmented file too)."""
    img = images[name]
    view, mine = ours(img)
    fstype = "fat32" if img.fat_type == 32 else "fat"
    inodes = fls(img)
    ss = view.volume.sector_size
    for path in ("big.bin", "fragmented.bin", "README.TXT"):
        text = out(["istat", "-f", fstype, img.path, str(inodes[path])])
        sectors = [int(s) for s in text.split("Sectors:", 1)[1].split()]
        e = mine[path]
        ours_sectors = [s for off, size in e.extents for s in range(off // ss, (off + size + ss - 1) // ss)]
        want = -(-e.size // ss)
        assert sectors[:want] == ours_sectors[:want], path
    frag = mine["fragmented.bin"]
    assert len(frag.extents) == 2 and sum(s for _, s in frag.extents) == frag.size


# --- mtools ------------------------------------------------------------------------------------------------

MDIR_LINE = re.compile(r"^(.{8}) (.{3}) +(<DIR>|\d+) +(\d{4}-\d\d-\d\d) +(\d+):(\d\d)(?:  (.+)| )?$")


def mtools_rc(tmp: str) -> dict[str, str]:
    rc = os.path.join(tmp, "mtoolsrc437")
    with open(rc, "w") as f:
        f.write("default_codepage=437\n")
    return dict(MTOOLS_ENV, MTOOLSRC=rc)


@pytest.mark.parametrize("name", list(IMAGES))
def test_names_sizes_times_as_mdir_lists_them(images, name, tmp_path):
    need("mdir")
    img = images[name]
    view, mine = ours(img)
    text = out(["mdir", "-/", "-a", "-i", img.path, "::"], env_extra=mtools_rc(str(tmp_path)))
    seen = {}
    directory = ""
    for line in text.splitlines():
        if line.startswith("Directory for ::/"):
            directory = line[len("Directory for ::/"):]
            continue
        m = MDIR_LINE.match(line)
        if not m or m.group(1).strip() in (".", ".."):
            continue
        base, ext = m.group(1).rstrip(), m.group(2).rstrip()
        short = base + ("." + ext if ext else "")
        long = m.group(7)
        path = (directory + "/" if directory else "") + (long or short)
        seen[path] = (short, m.group(3), m.group(4), int(m.group(5)), int(m.group(6)))
    assert set(seen) == set(mine)
    for path, (short, size, day, hour, minute) in seen.items():
        e = mine[path]
        assert short == shown_short(e), path
        assert size == ("<DIR>" if e.is_dir else str(e.size)), path
        assert f"{day} {hour:02d}:{minute:02d}" == utc(e.mtime)[:16], path
    assert mine[SIGMA_NAME].fields["short_name"] == SIGMA_NAME       # cp437's 0xE4, as mtools with 437


@pytest.mark.parametrize("name", list(IMAGES))
def test_attributes_as_mattrib(images, name, tmp_path):
    need("mattrib")
    img = images[name]
    _, mine = ours(img)
    text = out(["mattrib", "-/", "-i", img.path, "::"], env_extra=mtools_rc(str(tmp_path)))
    for line in text.splitlines():
        flags, path = line[:12], line[12:].strip()
        if not path.startswith("::/") or path == "::/":
            continue
        e = mine[path[3:]]
        got = {"A": "archive", "S": "system", "H": "hidden", "R": "read_only"}
        assert {v for k, v in got.items() if k in flags} == \
            {v for v in got.values() if e.fields[v]}, path
    assert mine["readonly.txt"].mode == 0o100444 and mine["lower.txt"].mode == 0o100644
    assert mine["deep"].mode == 0o40755 and mine["deep"].fields["hidden"]


@pytest.mark.parametrize("name", ["fat12", "fat32-4k"])
def test_bytes_and_write_times_as_mcopy(images, name, tmp_path):
    need("mcopy")
    img = images[name]
    view, mine = ours(img)
    dest = tmp_path / "m"
    dest.mkdir()
    run(["mcopy", "-s", "-n", "-m", "-i", img.path, "::*", str(dest)], env_extra=mtools_rc(str(tmp_path)))
    got = tree_digest(dest)
    want = {p: hashlib.sha256(view.read("/" + p)).hexdigest() for p, e in mine.items() if e.is_file}
    assert got == want
    for p, e in mine.items():
        if e.is_file:
            assert os.stat(dest / p).st_mtime == e.mtime, p
    for p in ("README.TXT", "lower.txt", "Grüße.txt", "fragmented.bin", "deep/a/b/c/d/e/leaf.txt", SIGMA_NAME):
        typed = run(["mtype", "-i", img.path, "::/" + p], env_extra=mtools_rc(str(tmp_path))).stdout
        assert typed == view.read("/" + p), p


def test_creation_time_with_its_10ms_field_as_7zip(tmp_path):
    need("mkfs.fat", "mcopy", "7zz")
    img = str(tmp_path / "t.img")
    run(["mkfs.fat", "-C", "-F", "12", img, "1024"])
    src = tmp_path / "a.txt"
    src.write_bytes(b"a")
    os.utime(src, (1_000_000_000, 1_000_000_000))
    run(["mcopy", "-m", "-i", img, str(src), "::/a.txt"], env_extra=MTOOLS_ENV)
    for tenth in (0, 1, 99, 100, 155, 199):
        with open(img, "r+b") as f:
            at = FATView(f).stat("/a.txt").fields["entry_offset"]
            f.seek(at + 13)
            f.write(bytes([tenth]))
        with open(img, "rb") as f:
            e = FATView(f).stat("/a.txt")
        assert e.ctime == e.mtime + tenth / 100
        assert sevenzip_entries(img)["a.txt"]["Created"] == f"{utc(e.ctime)}.{tenth % 100:02d}"


# --- labels ------------------------------------------------------------------------------------------------

def _root_label_offset(path: str) -> int:
    with open(path, "rb") as f:
        view = FATView(f)
        off = view.volume.root().label_offset
    assert off is not None
    return off


def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _blkid(path: str) -> dict[str, str]:
    text = out(["blkid", "-p", "-o", "export", path])
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.mark.parametrize("fat_type", [12, 16, 32])
def test_both_labels(tmp_path, fat_type):
    """The boot sector's and the root directory's label, each alone and differing, as blkid
    (LABEL, LABEL_FATBOOT), fatlabel and mlabel -s see them."""
    need("mkfs.fat", "mlabel", "fatlabel", "blkid")
    img = str(tmp_path / "l.img")
    size = {12: 2, 16: 20, 32: 40}[fat_type]
    bs_lab = 71 if fat_type == 32 else 43

    def fresh(*extra: str) -> None:
        if os.path.exists(img):
            os.unlink(img)
        run(["mkfs.fat", "-C", "-F", str(fat_type), *extra, img, str(size * 1024)])

    def look() -> tuple[str | None, str | None]:
        with open(img, "rb") as f:
            v = FATView(f)
            return v.label, v.boot_label

    fresh()                                           # no label at all: "NO NAME" in the boot sector
    assert look() == (None, None)
    assert "LABEL" not in _blkid(img) and "LABEL_FATBOOT" not in _blkid(img)
    fresh("-n", "MKFSLABEL")                          # mkfs.fat -n writes both
    assert look() == ("MKFSLABEL", "MKFSLABEL")
    run(["mlabel", "-i", img, "::MLABELED"], env_extra=MTOOLS_ENV)     # mlabel rewrites both
    assert look() == ("MLABELED", "MLABELED")
    tags = _blkid(img)
    assert tags["LABEL"] == "MLABELED" and tags["LABEL_FATBOOT"] == "MLABELED"
    _patch(img, bs_lab, b"BOOTSECTOR ")               # they differ: blkid's LABEL is the root's
    if fat_type == 32:
        with open(img, "rb") as f:
            assert any("backup boot sector" in p for p in FATView(f).check())
        _patch(img, 6 * 512 + bs_lab, b"BOOTSECTOR ")   # BPB_BkBootSec 6, as fsck.fat wants it
    assert look() == ("MLABELED", "BOOTSECTOR")
    tags = _blkid(img)
    assert tags["LABEL"] == "MLABELED" and tags["LABEL_FATBOOT"] == "BOOTSECTOR"
    assert out(["fatlabel", img]).strip() == "MLABELED"
    _patch(img, _root_label_offset(img), b"\xe5")     # the root's label deleted: only the boot sector's
    assert look() == (None, "BOOTSECTOR")
    tags = _blkid(img)
    assert "LABEL" not in tags and tags["LABEL_FATBOOT"] == "BOOTSECTOR"
    assert "has no label" in out(["mlabel", "-s", "-i", img, "::"], env_extra=MTOOLS_ENV)
    run(["fatlabel", img, "FATLABEL"])                # fatlabel writes both again
    assert look() == ("FATLABEL", "FATLABEL")
    assert _blkid(img)["LABEL"] == "FATLABEL"
    with open(img, "rb") as f:
        assert FATView(f).check() == []


def test_label_in_code_page_437(tmp_path):
    """mlabel with code page 437 stores Σ as 0xE4; read back in cp437 (and cp850 gives 'õ')."""
    need("mkfs.fat", "mlabel")
    img = str(tmp_path / "l.img")
    run(["mkfs.fat", "-C", "-F", "12", img, "2048"])
    env = mtools_rc(str(tmp_path))
    run(["mlabel", "-i", img, "::ΣLABEL"], env_extra=env)
    with open(img, "rb") as f:
        assert FATView(f).label == "ΣLABEL"
        assert FATView(f, codepage=850).label == "õLABEL"
        assert FATView(f, codepage="cp850").label == "õLABEL"
    assert "ΣLABEL" in out(["mlabel", "-s", "-i", img, "::"], env_extra=env)


# --- small FAT32 made by mkfs.fat itself ---------------------------------------------------------------------

@pytest.mark.parametrize("ss", [512, 4096])
def test_mkfs_small_fat32_opens(tmp_path, ss):
    """mkfs.fat -F 32 on 40 MiB with 4 KiB clusters (or 4096-byte sectors): fewer than 65,525
    clusters, still FAT32 for Linux, blkid and us (mtools cannot read it)."""
    need("mkfs.fat", "blkid", "fsck.fat")
    img = str(tmp_path / "s.img")
    with open(img, "wb") as f:
        f.truncate(40 << 20)
    run(["mkfs.fat", "-F", "32", "-S", str(ss), "-s", str(4096 // ss), "-n", "SMALL32", img])
    with open(img, "rb") as f:
        v = FATView(f)
        assert v.fat_type == 32 and v.volume.cluster_count < 65525
        assert v.label == "SMALL32" == _blkid(img)["LABEL"] and _blkid(img)["VERSION"] == "FAT32"
        assert v.listdir("/") == [] and v.check() == []
    # the quirk that made tests/helpers/fatimages.py shrink images: mtools cannot write here
    p = subprocess.run(["mcopy", "-i", img, img, "::/x"], capture_output=True, env=dict(os.environ, **MTOOLS_ENV))
    assert p.returncode != 0 and b"No directory slots" in p.stderr


def test_fat_geometry_fields(images):
    """The BPB as read equals the bytes (every field in info()['bpb'])."""
    img = images["fat32"]
    with open(img.path, "rb") as f:
        head = f.read(90)
        v = FATView(f)
        bpb = v.info()["bpb"]
    assert bpb["BPB_BytsPerSec"] == struct.unpack_from("<H", head, 11)[0] == 512
    assert bpb["BPB_FATSz32"] == struct.unpack_from("<I", head, 36)[0]
    assert bpb["BS_VolID"] == 0x1234ABCD and bpb["BPB_RootClus"] == 2
    names = [n for n, _, _ in v.structures()]
    assert names[:4] == ["FAT boot sector", "FAT reserved sectors", "FAT 1", "FAT 2"]
