"""Remastering (issue 13): ISO9660.from_image, ISO9660Hybrid.from_image, VFAT.from_image and
``sysexport remaster``, checked by readers nobody here wrote.

Sources: a sysexport hybrid, xorriso (-as mkisofs -R -J, plain and with isolinux + an
isohybrid MBR), genisoimage (-R -J) and grub-mkrescue.  Every remaster is read back by
bsdtar (every file's bytes against the source's), xorriso (the Rock Ridge listing, the El
Torito report, the system area), isoinfo (descriptors), pycdlib (walks and reads), and
for hybrids sgdisk, fdisk, mtools and fsck.fat on the ESP.  Boots are in
test_remaster_boot.py (slow).
"""
from __future__ import annotations

import os
import random
import re
import stat
import struct
import subprocess
import sys

import pytest

from helpers import cut, need, out, run, sha256_file

from sysexport import ISO9660, ISO9660Hybrid, VFAT

MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}
ISOHDPFX = "/usr/lib/ISOLINUX/isohdpfx.bin"
ISOLINUX = "/usr/lib/ISOLINUX/isolinux.bin"
LONG_NAME = "a-file-name-longer-than-the-sixty-four-characters-joliet-can-hold-in-one-record.txt"


def make_tree(root: str) -> str:
    """Files of every kind a remaster must carry: hard links, a symlink, a fifo and (as
    root) a device, a long name, an empty file, owners and modes, a multi-sector file, a
    deep directory."""
    rnd = random.Random(13)
    os.makedirs(f"{root}/sub/deep/er", exist_ok=True)
    os.makedirs(f"{root}/isolinux", exist_ok=True)
    with open(f"{root}/a.txt", "w") as f:
        f.write("one\n")
    os.link(f"{root}/a.txt", f"{root}/hard.txt")
    os.symlink("a.txt", f"{root}/link")
    with open(f"{root}/sub/big.bin", "wb") as f:
        f.write(rnd.randbytes(300_001))
    with open(f"{root}/sub/deep/er/z.txt", "w") as f:
        f.write("z\n")
    open(f"{root}/empty", "wb").close()
    with open(f"{root}/sub/{LONG_NAME}", "w") as f:
        f.write("long\n")
    os.chmod(f"{root}/sub/deep", 0o700)
    os.mkfifo(f"{root}/sub/fifo")
    if os.geteuid() == 0:
        os.chown(f"{root}/sub/big.bin", 1000, 1001)
        os.mknod(f"{root}/sub/null", 0o620 | stat.S_IFCHR, os.makedev(1, 3))
    with open(f"{root}/isolinux/isolinux.cfg", "w") as f:
        f.write("SERIAL 0 115200\nSAY remaster-isolinux-ok\n")
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """{kind: image path} of the source images (and the tree they hold)."""
    need("xorriso", "genisoimage", "grub-mkrescue", "bsdtar", "isoinfo")
    d = tmp_path_factory.mktemp("remaster-sources")
    tree = make_tree(str(d / "tree"))
    images = {"tree": tree, "dir": str(d)}
    images["xorriso"] = str(d / "xorriso.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-joliet-long", "-V", "XORR", "-publisher", "PUB",
         "-o", images["xorriso"], tree])
    images["genisoimage"] = str(d / "geni.iso")
    run(["genisoimage", "-R", "-J", "-V", "GENI", "-A", "APPLICATION", "-o", images["genisoimage"], tree])
    if os.path.exists(ISOLINUX) and os.path.exists(ISOHDPFX):
        import shutil
        shutil.copy(ISOLINUX, f"{tree}/isolinux/isolinux.bin")
        images["isohybrid"] = str(d / "isohybrid.iso")
        run(["xorriso", "-as", "mkisofs", "-R", "-J", "-V", "ISOHY", "-b", "isolinux/isolinux.bin",
             "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
             "-isohybrid-mbr", ISOHDPFX, "-o", images["isohybrid"], tree])
        images["genisoimage-eltorito"] = str(d / "geni-eltorito.iso")
        run(["genisoimage", "-R", "-J", "-V", "GENIBOOT", "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
             "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-o", images["genisoimage-eltorito"], tree])
        os.unlink(f"{tree}/isolinux/isolinux.bin")
    rescue = d / "rescue"
    os.makedirs(rescue / "boot/grub")
    (rescue / "boot/grub/grub.cfg").write_text(GRUB_CFG)
    (rescue / "payload.bin").write_bytes(random.Random(7).randbytes(100_000))
    images["grub-mkrescue"] = str(d / "rescue.iso")
    run(["grub-mkrescue", "-o", images["grub-mkrescue"], str(rescue)])
    images["hybrid"] = str(d / "hybrid.img")
    run([sys.executable, "-m", "sysexport", "build", tree, "-o", images["hybrid"], "--label", "OURS"])
    return images


GRUB_CFG = """serial --unit=0 --speed=115200
terminal_output serial console
if [ -e /payload.bin ]; then set p=yes; else set p=no; fi
echo "remaster-boot: platform=${grub_platform} payload=${p} END"
"""


def tree_digest(root) -> dict[str, str]:
    """{relative path: sha256} of every regular file under root (lstat: symlinks, fifos
    and devices are not opened; helpers.tree_digest would block on a fifo)."""
    result = {}
    for dirpath, _dirs, names in os.walk(root):
        for fn in names:
            p = os.path.join(dirpath, fn)
            if stat.S_ISREG(os.lstat(p).st_mode):
                result[os.path.relpath(p, root)] = sha256_file(p)
    return result


def extract(image: str, dest: str) -> dict[str, str]:
    os.makedirs(dest, exist_ok=True)
    # Device nodes are compared in xorriso's listing: genisoimage's PN entry is one bsdtar
    # cannot make a node of ("Invalid argument").
    run(["bsdtar", "-xf", image, "-C", dest, "--exclude", "sub/null"])
    return tree_digest(dest)


def patched_boot_images(image: str) -> dict[str, list[tuple[int, int]]]:
    """{path: byte ranges its writer patches} of the El Torito images with a boot info
    table (bytes 8..63) or GRUB's grub2-boot-info (2548..2555), and the catalog (all of it)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for entry in eltorito(image):
        ranges = []
        if "boot-info-table" in entry[6]:
            ranges.append((8, 64))
        if "grub2-boot-info" in entry[6]:
            ranges.append((2548, 2556))
        if ranges:
            out[entry[5].lstrip("/")] = ranges
    return out


def same_files(src: str, dest: str, tmp_path, removed: str | None = None,
               changed: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file of ``src`` has its bytes in ``dest`` (bsdtar extracts both), boot images
    but for the bytes that name their new place, the catalog aside (its LBAs are new);
    but for what is under ``removed`` (gone) and the ``changed`` paths (new or replaced)."""
    old_dir, new_dir = str(tmp_path / "old"), str(tmp_path / "new")
    old, new = extract(src, old_dir), extract(dest, new_dir)
    patched = patched_boot_images(src)
    assert patched == patched_boot_images(dest)
    for path, ranges in patched.items():
        a = bytearray(open(f"{old_dir}/{path}", "rb").read())
        b = bytearray(open(f"{new_dir}/{path}", "rb").read())
        for lo, hi in ranges:
            a[lo:hi] = b[lo:hi] = bytes(hi - lo)
        assert a == b, path
        old.pop(path), new.pop(path)
    for catalog in ("boot.catalog", "isolinux/boot.cat"):
        assert (catalog in old) == (catalog in new)
        old.pop(catalog, None), new.pop(catalog, None)
    if removed is not None:
        old = {k: v for k, v in old.items() if not k.startswith(removed + "/")}
        assert not any(k.startswith(removed + "/") for k in new)
    for path in changed:
        old[path] = new[path]
    assert new == old
    return new


def listing(image: str) -> dict[str, tuple[str, ...]]:
    """xorriso's Rock Ridge listing: {path: (mode string, uid, gid, size or device, date,
    symlink target)}, link counts aside."""
    text = out(["xorriso", "-indev", image, "-find", "/", "-exec", "lsdl"])
    result = {}
    for line in text.splitlines():
        m = re.match(r"(\S+)\s+\d+\s+(\d+)\s+(\d+)\s+(\S+)\s+(\w+ +\d+ +[\d:]+)\s+'(.*)'( -> '(.*)')?$", line)
        assert m or not line.strip() or line.startswith("xorriso"), line
        if m:
            result[m.group(6)] = (m.group(1), m.group(2), m.group(3), m.group(4), m.group(5), m.group(8) or "")
    return result


def plain_names(image: str) -> set[str]:
    """The primary tree's names as a reader without Rock Ridge and Joliet sees them
    (isoinfo -f), the boot catalog's aside (the writer names it after its Rock Ridge name)."""
    names = {ln.strip() for ln in out(["isoinfo", "-f", "-i", image]).splitlines()}
    return {n for n in names if not re.search(r"/BOOT\.CAT(ALOG)?;1$", n)}


def eltorito(image: str) -> list[tuple[str, ...]]:
    """(platform, bootable, emulation, load segment, load size, path, options) of each catalog entry."""
    text = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    entries: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"El Torito boot img :\s+(\d+)\s+(\S+)\s+(\S)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)", line)
        if m:
            entries[m.group(1)] = [m.group(2), m.group(3), m.group(4), m.group(5), m.group(7), "", ""]
        m = re.match(r"El Torito img path :\s+(\d+)\s+(.*)$", line)
        if m:
            entries[m.group(1)][5] = m.group(2)
        m = re.match(r"El Torito img opts :\s+(\d+)\s+(.*)$", line)
        if m:
            entries[m.group(1)][6] = m.group(2)
    return [tuple(v) for _k, v in sorted(entries.items())]


def descriptor(image: str) -> dict[str, str]:
    text = out(["isoinfo", "-d", "-i", image])
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines()) if v}


def check_pycdlib(image: str, joliet: bool) -> None:
    pycdlib = pytest.importorskip("pycdlib")
    iso = pycdlib.PyCdlib()
    iso.open(image)
    try:
        import io
        for kind in (["rr_path"] + (["joliet_path"] if joliet else [])):
            for top, _dirs, files in iso.walk(**{kind: "/"}):
                for name in files:
                    path = f"{top.rstrip('/')}/{name}"
                    if kind == "rr_path" and iso.get_record(rr_path=path).rock_ridge.is_symlink():
                        continue                    # Rock Ridge symlinks have no data to read
                    iso.get_file_from_iso_fp(io.BytesIO(), **{kind: path})
    finally:
        iso.close()


SOURCES = ["xorriso", "genisoimage", "isohybrid", "genisoimage-eltorito", "grub-mkrescue", "hybrid"]


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("cls", [ISO9660, ISO9660Hybrid])
def test_unchanged_remaster_keeps_everything(sources, tmp_path, kind, cls):
    """Without changes, every reader sees what it saw in the source: the same files with
    the same bytes (bsdtar), the same Rock Ridge metadata (xorriso), the same El Torito
    entries (xorriso), labels and identifiers (isoinfo); pycdlib walks and reads it."""
    if kind not in sources:
        pytest.skip(f"{kind}: its tools are not installed")
    src = sources[kind]
    dest = str(tmp_path / "out.img")
    writer = cls.from_image(src, dest)
    writer.finish()
    same_files(src, dest, tmp_path)
    new_list, old_list = listing(dest), listing(src)
    if kind.startswith("genisoimage") and "/sub/null" in old_list:
        # genisoimage's PN holds Linux's 32-bit dev_t in its low word, which xorriso reads as
        # (0, 1048579) and Linux and sysexport as (1, 3); the remaster writes (1, 3) in the
        # form every reader agrees on (DESIGN.md: the PN ambiguity).
        assert new_list.pop("/sub/null")[3] == "1,3" and old_list.pop("/sub/null")[3] == "0,1048579"
    assert new_list == old_list
    old_plain = plain_names(src)
    if all(re.fullmatch(r"[A-Z0-9_./;]+", n) for n in old_plain):
        assert plain_names(dest) == old_plain
    else:               # xorriso's isohybrid run recorded lower case, not d-characters: the writer's own
        assert all(re.fullmatch(r"[A-Z0-9_./;]+", n) for n in plain_names(dest))
    assert eltorito(dest) == eltorito(src)
    old, new = descriptor(src), descriptor(dest)
    for key in ("Volume id", "Publisher id", "Application id", "Data preparer id", "System id"):
        assert new.get(key) == old.get(key), key
    check_pycdlib(dest, joliet="NO Joliet present" not in out(["isoinfo", "-d", "-i", src]))
    blkid = out(["blkid", "-p", "-o", "export", dest]) if _have("blkid") else ""
    if blkid:
        assert re.search(r"^UUID=(.*)$", blkid, re.M).group(1) == \
            re.search(r"^UUID=(.*)$", out(["blkid", "-p", "-o", "export", src]), re.M).group(1)
    if cls is ISO9660Hybrid:
        check_hybrid(dest, tmp_path)


def _have(tool: str) -> bool:
    import shutil
    return shutil.which(tool) is not None


def check_hybrid(image: str, tmp_path) -> None:
    """sgdisk and fdisk read both GPTs; the ESP passes fsck.fat and mtools lists it."""
    need("sgdisk", "fdisk", "fsck.fat", "mdir")
    assert "No problems found" in out(["sgdisk", "-v", image])
    assert "Disklabel type: gpt" in out(["fdisk", "-b", "512", "-l", image])
    import sysexport
    with sysexport.open(image) as img:
        esp = next(s for s in img.structures if s.kind == "partition" and "EFI System" in s.summary)
    esp_img = cut(image, esp.offset, esp.size, tmp_path / "esp.img")
    run(["fsck.fat", "-n", esp_img])
    run(["mdir", "-/", "-b", "-i", esp_img, "::/"], env_extra=MTOOLS_ENV)


def test_hard_links_share_one_extent(sources, tmp_path):
    """a.txt and hard.txt are one file in the source; isoinfo shows them at one extent in
    the remaster too."""
    dest = str(tmp_path / "out.iso")
    ISO9660.from_image(sources["xorriso"], dest).finish()
    text = out(["isoinfo", "-l", "-R", "-i", dest])
    lbas = {m.group(2): m.group(1) for m in re.finditer(r"\[\s*(\d+) \d+\]\s+(\S+)\s*$", text, re.M)}
    assert lbas["a.txt"] == lbas["hard.txt"]
    assert lbas["a.txt"] != lbas["link"] if "link" in lbas else True


def test_joliet_names_kept(sources, tmp_path):
    """genisoimage cuts a long name to 64 characters in Joliet, xorriso -joliet-long keeps
    103: each remaster's Joliet tree shows the names its source's did (isoinfo -J).
    (A symlink, a fifo and a device, which genisoimage also lists in Joliet as empty files,
    are in Rock Ridge only.)"""
    for kind in ("genisoimage", "xorriso"):
        dest = str(tmp_path / f"{kind}.iso")
        ISO9660.from_image(sources[kind], dest).finish()
        names = {ln.strip() for ln in out(["isoinfo", "-f", "-J", "-i", dest]).splitlines()}
        old = {ln.strip() for ln in out(["isoinfo", "-f", "-J", "-i", sources[kind]]).splitlines()}
        assert any(len(n.rsplit("/", 1)[-1]) == (64 if kind == "genisoimage" else len(LONG_NAME)) for n in old)
        assert names == old - {"/link", "/sub/fifo", "/sub/null"}, kind


def test_grub_mkrescue_system_area(sources, tmp_path):
    """The plain-ISO remaster of a grub-mkrescue image: the GRUB hybrid MBR names the new
    core (0x1b0 = eltorito.img's 512-byte LBA + 4), the core's blocklist its LBA + 5, a GPT
    (sgdisk, fdisk) whose EFI System Partition is the bytes of /efi.img, which the El
    Torito EFI entry names; Gap and HFS+ pieces of the source are gone."""
    need("sgdisk", "fdisk")
    dest = str(tmp_path / "out.iso")
    iso = ISO9660.from_image(sources["grub-mkrescue"], dest)
    iso.finish()
    assert "No problems found" in out(["sgdisk", "-v", dest])
    parts = out(["sgdisk", "-p", dest])
    assert "EF00" in parts and "HFS" not in parts.upper().split("NAME")[-1]
    report = out(["xorriso", "-indev", dest, "-report_el_torito", "plain", "-report_system_area", "plain"])
    assert "grub2-mbr" in report and "grub2-boot-info" in report and "boot-info-table" in report
    lba = {m.group(2): int(m.group(1)) for m in re.finditer(r"\[\s*(\d+) \d+\]\s+(\S+)\s*$",
                                                            out(["isoinfo", "-l", "-R", "-i", dest]), re.M)}
    with open(dest, "rb") as f:
        mbr = f.read(512)
        f.seek(lba["eltorito.img"] * 2048 + 2548)
        blocklist = struct.unpack("<Q", f.read(8))[0]
        f.seek(lba["efi.img"] * 2048)
        efi_head = f.read(512)
    assert struct.unpack_from("<Q", mbr, 0x1B0)[0] == lba["eltorito.img"] * 4 + 4
    assert blocklist == lba["eltorito.img"] * 4 + 5
    assert mbr[:2] == b"\xeb\x63"                   # GRUB's jump again, no APM block 0
    fd = out(["fdisk", "-l", dest])
    start = int(re.search(r"out\.iso1\s+(\d+)", fd).group(1))
    assert start * 512 == lba["efi.img"] * 2048 and efi_head[510:] == b"\x55\xaa"


def test_isohybrid_mbr_repatched(sources, tmp_path):
    """xorriso's isohybrid image: the syslinux MBR names isolinux.bin's new LBA (x4 at 432)
    and its MBR partition 1 spans the new ISO from 0 (fdisk)."""
    if "isohybrid" not in sources:
        pytest.skip("isolinux is not installed")
    dest = str(tmp_path / "out.iso")
    ISO9660.from_image(sources["isohybrid"], dest).finish()
    lba = {m.group(2): int(m.group(1)) for m in re.finditer(r"\[\s*(\d+) \d+\]\s+(\S+)\s*$",
                                                            out(["isoinfo", "-l", "-R", "-i", dest]), re.M)}
    with open(dest, "rb") as f:
        mbr = f.read(512)
    assert struct.unpack_from("<I", mbr, 432)[0] == lba["isolinux.bin"] * 4
    report = out(["xorriso", "-indev", dest, "-report_system_area", "plain"])
    assert "isohybrid" in report
    size = os.path.getsize(dest)
    m = re.search(r"out\.iso1\s+\*?\s*(\d+)\s+(\d+)\s+(\d+)", out(["fdisk", "-l", dest]))
    assert m and int(m.group(1)) == 0 and int(m.group(3)) * 512 == size


def test_cli_add_remove_replace_relabel(sources, tmp_path):
    """``sysexport remaster`` with every change: bsdtar sees the new tree, every unchanged
    file with its old bytes; isoinfo the new label; El Torito as before."""
    new_file = tmp_path / "new.txt"
    new_file.write_bytes(b"replaced\n" * 1000)
    add = tmp_path / "add"
    (add / "docs").mkdir(parents=True)
    (add / "docs" / "added.txt").write_text("added\n")
    (add / "a.txt").write_text("overlaid\n")
    for kind in ("xorriso", "grub-mkrescue", "hybrid"):
        src = sources[kind]
        dest = str(tmp_path / f"{kind}.out")
        remove = "sub/deep" if kind != "grub-mkrescue" else "boot/grub/fonts"
        replace = "sub/big.bin" if kind != "grub-mkrescue" else "payload.bin"
        run([sys.executable, "-m", "sysexport", "remaster", src, "-o", dest, "--remove", remove,
             "--replace", f"{replace}={new_file}", "--add-tree", f"{add}:extra", "--label", "RELABELED"])
        (tmp_path / kind).mkdir()
        same_files(src, dest, tmp_path / kind, removed=remove,
                   changed=(replace, "extra/docs/added.txt", "extra/a.txt"))
        assert (tmp_path / kind / "new" / replace).read_bytes() == new_file.read_bytes()
        assert (tmp_path / kind / "new" / "extra/a.txt").read_text() == "overlaid\n"
        assert descriptor(dest)["Volume id"] == "RELABELED"
        assert eltorito(dest) == eltorito(src)
        if kind == "hybrid":
            esp = cut(dest, *_esp_range(dest), tmp_path / f"{kind}.esp")
            assert "LABEL=RELABELED" in out(["blkid", "-p", "-o", "export", esp])


def test_api_rename_and_remove(sources, tmp_path):
    """from_image, then the writer's own remove() and rename() (issue 13's API)."""
    dest = str(tmp_path / "out.img")
    h = ISO9660Hybrid.from_image(sources["hybrid"], dest)
    h.rename("sub/big.bin", "sub/moved.bin")
    h.remove("empty")
    h.finish()
    old = extract(sources["hybrid"], str(tmp_path / "old"))
    new = extract(dest, str(tmp_path / "new"))
    assert new["sub/moved.bin"] == old["sub/big.bin"] and "sub/big.bin" not in new and "empty" not in new
    check_hybrid(dest, tmp_path)
    need("mcopy")
    import sysexport
    with sysexport.open(dest) as img:
        esp = next(s for s in img.structures if s.kind == "partition" and "EFI System" in s.summary)
    esp_img = cut(dest, esp.offset, esp.size, tmp_path / "esp2.img")
    run(["mcopy", "-i", esp_img, "::/sub/moved.bin", str(tmp_path / "moved.bin")], env_extra=MTOOLS_ENV)
    assert (tmp_path / "moved.bin").read_bytes() == (tmp_path / "old" / "sub" / "big.bin").read_bytes()


def test_vfat_from_image(sources, tmp_path):
    """VFAT.from_image of the hybrid's ESP: fsck.fat passes, mtools gives every file back."""
    need("fsck.fat", "mcopy")
    dest = str(tmp_path / "esp.img")
    fat = VFAT.from_image(sources["hybrid"], dest)
    fat.finish()
    run(["fsck.fat", "-n", dest])
    got = tmp_path / "got"
    got.mkdir()
    run(["mcopy", "-s", "-n", "-i", dest, "::/*", str(got)], env_extra=MTOOLS_ENV)
    import sysexport
    with sysexport.open(sources["hybrid"]) as img:
        esp = next(s for s in img.structures if s.kind == "partition" and "EFI System" in s.summary)
    src_esp = cut(sources["hybrid"], esp.offset, esp.size, tmp_path / "src-esp.img")
    want = tmp_path / "want"
    want.mkdir()
    run(["mcopy", "-s", "-n", "-i", src_esp, "::/*", str(want)], env_extra=MTOOLS_ENV)
    assert tree_digest(got) == tree_digest(want) and tree_digest(got)


def test_output_may_be_the_source(sources, tmp_path):
    """Remastering a file onto itself: written beside it and renamed, read until then."""
    import shutil
    src = str(tmp_path / "self.iso")
    shutil.copy(sources["xorriso"], src)
    before = extract(src, str(tmp_path / "before"))
    run([sys.executable, "-m", "sysexport", "remaster", src, "-o", src, "--label", "SELF"])
    assert extract(src, str(tmp_path / "after")) == before
    assert descriptor(src)["Volume id"] == "SELF"


def test_an_open_handle_of_the_source_is_refused(sources, tmp_path):
    import shutil
    from sysexport.errors import InvalidInputError
    src = str(tmp_path / "self.iso")
    shutil.copy(sources["xorriso"], src)
    with open(src, "r+b") as fh:
        with pytest.raises(InvalidInputError, match="source image"):
            ISO9660.from_image(src, fh)


@pytest.mark.parametrize("args,message", [
    (["--remove", "no/such"], "--remove no/such: no such file or directory"),
    (["--replace", "a.txt=/nonexistent/file"], "--replace a.txt: replacement /nonexistent/file: cannot stat"),
    (["--replace", "no/such=/etc/hostname"], "--replace no/such: no such file or directory"),
    (["--replace", "sub=/etc/hostname"], "--replace sub: not a regular file"),
    (["--remove", "/"], "the root directory cannot be removed"),
])
def test_bad_changes_one_error_no_output(sources, tmp_path, args, message):
    dest = tmp_path / "out.iso"
    p = subprocess.run([sys.executable, "-m", "sysexport", "remaster", sources["xorriso"], "-o", str(dest)] + args,
                       capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and p.stderr.startswith("sysexport: error: "), p.stderr
    assert message in p.stderr
    assert not dest.exists() and os.listdir(tmp_path) == []


def test_not_an_image(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x01" * 100_000)
    dest = tmp_path / "out.iso"
    for src in (str(junk), str(tmp_path / "missing.iso")):
        p = subprocess.run([sys.executable, "-m", "sysexport", "remaster", src, "-o", str(dest)],
                           capture_output=True, text=True)
        assert p.returncode == 1 and p.stderr.count("\n") == 1 and "sysexport: error:" in p.stderr, p.stderr
        assert not dest.exists()


def test_a_fat_image_is_not_remastered_as_an_iso(sources, tmp_path):
    from sysexport.errors import InvalidInputError
    fat = str(tmp_path / "fat.img")
    VFAT.from_image(sources["hybrid"], fat).finish()
    with pytest.raises(InvalidInputError, match="not an ISO 9660 image"):
        ISO9660.from_image(fat, str(tmp_path / "x.iso"))


def test_file_data_is_streamed_not_read(sources, tmp_path, monkeypatch):
    """No file's data is read when the writer is made: every regular file's source is an
    extent reader of the source image (or a decompressing stream), read at finish()."""
    from sysexport.remaster.data import ExtentsData
    iso = ISO9660.from_image(sources["xorriso"], str(tmp_path / "o.iso"))
    files = [n.info for n in iso.tree.walk() if n.info.is_file and n.info.size]
    assert files and all(isinstance(i.source, ExtentsData) for i in files)
    calls = []
    monkeypatch.setattr(ExtentsData, "read_all", lambda self, limit=0: calls.append(self) or b"")
    iso.finish()
    assert calls == []
    assert stat.S_ISREG(os.stat(tmp_path / "o.iso").st_mode)


def test_appended_partition_and_its_efi_entry_follow(sources, tmp_path):
    """xorriso -append_partition 2 0xef efi.img with the EFI entry naming it (archiso's and
    live-build's way): the remaster appends the partition again after its ISO, byte for byte
    (mtools lists it), and the El Torito entry names its new place (xorriso)."""
    need("mkfs.fat", "mmd", "mcopy")
    d = tmp_path
    efi = str(d / "efi.img")
    run(["mkfs.fat", "-C", efi, "2048"])
    run(["mmd", "-i", efi, "::/EFI", "::/EFI/BOOT"], env_extra=MTOOLS_ENV)
    (d / "loader").write_bytes(random.Random(5).randbytes(70_000))
    run(["mcopy", "-i", efi, str(d / "loader"), "::/EFI/BOOT/BOOTX64.EFI"], env_extra=MTOOLS_ENV)
    src = str(d / "appended.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-V", "APPENDED", "-append_partition", "2", "0xef", efi,
         "-e", "--interval:appended_partition_2:all::", "-no-emul-boot", "-o", src, sources["tree"]])
    dest = str(d / "out.iso")
    ISO9660.from_image(src, dest).finish()
    same_files(src, dest, d)
    m = re.search(r"out\.iso2\s+(\d+)\s+\d+\s+(\d+)", out(["fdisk", "-l", dest]))
    assert m, out(["fdisk", "-l", dest])
    start, sectors = int(m.group(1)), int(m.group(2))
    assert sectors * 512 == os.path.getsize(efi) and start * 512 >= int(descriptor(dest)["Volume size is"]) * 2048
    assert cut(dest, start * 512, sectors * 512, d / "esp.img") and open(d / "esp.img", "rb").read() == \
        open(efi, "rb").read()
    report = out(["xorriso", "-indev", dest, "-report_el_torito", "plain"])
    lba = int(re.search(r"El Torito boot img :\s+1\s+UEFI.*\s(\d+)\s*$", report, re.M).group(1))
    assert lba * 2048 == start * 512


def test_names_per_namespace_kept(sources, tmp_path):
    """genisoimage -hide (not in ISO 9660/Rock Ridge) and -hide-joliet (not in Joliet): the
    remaster's trees show each entry where the source's did (isoinfo, both trees)."""
    src = str(tmp_path / "hidden.iso")
    run(["genisoimage", "-R", "-J", "-V", "HIDDEN", "-hide", "big.bin", "-hide-joliet", "a.txt",
         "-o", src, sources["tree"]])

    def trees(image: str) -> tuple[set[str], set[str]]:
        return ({ln.strip() for ln in out(["isoinfo", "-f", "-R", "-i", image]).splitlines()},
                {ln.strip() for ln in out(["isoinfo", "-f", "-J", "-i", image]).splitlines()})

    rr, joliet = trees(src)
    assert "/sub/big.bin" not in rr and "/sub/big.bin" in joliet and "/a.txt" in rr and "/a.txt" not in joliet
    dest = str(tmp_path / "out.iso")
    ISO9660.from_image(src, dest).finish()
    new_rr, new_joliet = trees(dest)
    assert new_rr == rr
    assert new_joliet == joliet - {"/link", "/sub/fifo", "/sub/null"}     # Rock Ridge only (see above)


def test_eltorito_only_image_and_emulation_kept(tmp_path):
    """A boot image in no directory (El Torito-only, given as bytes) and a floppy
    emulation entry with its load segment: the remaster's catalog has both (xorriso), the
    image's bytes where the catalog points."""
    floppy = bytearray(random.Random(9).randbytes(1440 * 1024))
    floppy[510:512] = b"\x55\xaa"
    hidden = random.Random(8).randbytes(4096)
    src = str(tmp_path / "src.iso")
    iso = ISO9660(src, volume_label="ETONLY")
    iso.add(("file644", "boot/floppy.img", bytes(floppy)))
    iso.add_boot_catalog_entry(path="boot/floppy.img", media_type=2, load_segment=0x7C0)
    iso.add_boot_catalog_entry(platform=0xEF, data=hidden)
    iso.finish()
    dest = str(tmp_path / "out.iso")
    ISO9660.from_image(src, dest).finish()
    assert eltorito(dest) == eltorito(src)
    report = out(["xorriso", "-indev", dest, "-report_el_torito", "plain"])
    lba = int(re.search(r"El Torito boot img :\s+2\s+UEFI.*\s(\d+)\s*$", report, re.M).group(1))
    with open(dest, "rb") as f:
        f.seek(lba * 2048)
        assert f.read(len(hidden)) == hidden
    assert "floppy.img" in out(["isoinfo", "-f", "-R", "-i", dest])


def test_zisofs_files_are_decompressed(sources, tmp_path):
    """xorriso's zisofs files: the reader decompresses them as the remaster writes them
    (bsdtar reads the same bytes from both images)."""
    src = str(tmp_path / "z.iso")
    run(["xorriso", "-outdev", src, "-zisofs", "level=6", "-map", sources["tree"], "/", "--",
         "-set_filter_r", "--zisofs", "/", "--", "-commit"])
    dest = str(tmp_path / "out.iso")
    ISO9660.from_image(src, dest).finish()
    same_files(src, dest, tmp_path)
    text = out(["isoinfo", "-l", "-R", "-i", dest])
    assert re.search(r"\s300001\s", text)             # stored whole now, no ZF entry


def test_hybrid_extra_partition_copied(sources, tmp_path):
    """A hybrid built with an extra partition: the remaster carries it byte for byte (sgdisk
    lists it with its type and name)."""
    need("sgdisk")
    data = tmp_path / "linux.part"
    data.write_bytes(random.Random(4).randbytes(3 * 4096))
    src = str(tmp_path / "src.img")
    run([sys.executable, "-m", "sysexport", "build", sources["tree"], "-o", src, "--partition", f"linux:{data}"])
    dest = str(tmp_path / "out.img")
    ISO9660Hybrid.from_image(src, dest).finish()
    assert "No problems found" in out(["sgdisk", "-v", dest])
    info = out(["sgdisk", "-i", "2", dest])
    assert "0FC63DAF-8483-4772-8E79-3D69D8477DE4" in info and "linux.part" in info
    first = int(re.search(r"First sector: (\d+)", info).group(1))
    with open(dest, "rb") as f:
        f.seek(first * 512)
        assert f.read(len(data.read_bytes())) == data.read_bytes()


def test_plain_iso_to_hybrid_esp_gets_the_efi_image_files(sources, tmp_path):
    """grub-mkrescue's image made a hybrid: its ESP (fsck.fat, mtools) holds the tree and
    the files of /efi.img, the UEFI loader among them with the same bytes."""
    need("mcopy")
    dest = str(tmp_path / "out.img")
    ISO9660Hybrid.from_image(sources["grub-mkrescue"], dest).finish()
    check_hybrid(dest, tmp_path)
    import sysexport
    with sysexport.open(dest) as img:
        esp = next(s for s in img.structures if s.kind == "partition" and "EFI System" in s.summary)
    esp_img = cut(dest, esp.offset, esp.size, tmp_path / "esp.img")
    run(["mcopy", "-i", esp_img, "::/efi/boot/bootx64.efi", str(tmp_path / "loader.efi")], env_extra=MTOOLS_ENV)
    old = extract(sources["grub-mkrescue"], str(tmp_path / "old"))
    efi = cut(str(tmp_path / "old" / "efi.img"), 0, os.path.getsize(tmp_path / "old" / "efi.img"),
              tmp_path / "efi.img")
    run(["mcopy", "-i", efi, "::/efi/boot/bootx64.efi", str(tmp_path / "want.efi")], env_extra=MTOOLS_ENV)
    assert (tmp_path / "loader.efi").read_bytes() == (tmp_path / "want.efi").read_bytes()
    assert old


def test_hostile_sources_give_one_error(sources, tmp_path):
    """A seeded mutation of real sources (descriptors, path tables, directories, the boot
    catalog, the MBR and GPT): remastering either works or raises one SysExportError, within
    a time bound, never another exception; nothing is left where it failed."""
    import time
    from sysexport.errors import SysExportError
    rnd = random.Random(1313)
    kinds = [k for k in ("xorriso", "grub-mkrescue", "hybrid", "isohybrid") if k in sources]
    outcomes = {"ok": 0, "error": 0}
    for case in range(int(os.environ.get("REMASTER_FUZZ_CASES", "40"))):
        kind = kinds[case % len(kinds)]
        data = bytearray(open(sources[kind], "rb").read(1 << 20))
        for _ in range(rnd.randint(1, 40)):
            at = rnd.choice([rnd.randrange(0, 1024), rnd.randrange(32768, 34816), rnd.randrange(32768, 65536),
                             rnd.randrange(32768, 131072), rnd.randrange(len(data))])
            data[at] = rnd.randrange(256)
        src = tmp_path / f"case{case}.img"
        src.write_bytes(bytes(data) + open(sources[kind], "rb").read()[1 << 20:])
        dest = tmp_path / f"case{case}.out"
        start = time.monotonic()
        try:
            cls = ISO9660Hybrid if case % 2 else ISO9660
            cls.from_image(str(src), str(dest)).finish()
            outcomes["ok"] += 1
        except SysExportError:
            outcomes["error"] += 1
            assert not dest.exists()
        assert time.monotonic() - start < 20, f"case {case} ({kind}) took too long"
        src.unlink()
        if dest.exists():
            dest.unlink()
    assert outcomes["ok"] and outcomes["error"], outcomes


def test_a_large_directory_is_paired_in_linear_time(tmp_path):
    """10,000 files in one directory: reading the source (Rock Ridge and Joliet trees paired
    entry by entry) takes seconds, not the minutes a pairwise search took."""
    import time
    tree = tmp_path / "flat"
    tree.mkdir()
    for i in range(10_000):
        (tree / f"file-{i}.txt").write_text(f"{i}\n")
    src = str(tmp_path / "flat.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-o", src, str(tree)])
    from sysexport.remaster import read_source
    start = time.monotonic()
    source = read_source(src)
    assert time.monotonic() - start < 30
    assert len(source.entries) == 10_001 and not any(e.hidden_from for e in source.entries.values())
    source.image.close()


def esp_files(image: str, tmp_path, name: str) -> dict[str, str]:
    """{path: sha256} of every file of the image's ESP, as mtools copies them out."""
    import sysexport
    with sysexport.open(image) as img:
        esp = next(s for s in img.structures if s.kind == "partition" and "EFI System" in s.summary)
    esp_img = cut(image, esp.offset, esp.size, tmp_path / f"{name}.esp")
    dest = tmp_path / f"{name}.files"
    dest.mkdir()
    run(["mcopy", "-s", "-n", "-i", esp_img, "::/*", str(dest)], env_extra=MTOOLS_ENV)
    return tree_digest(dest)


def test_hybrid_keeps_what_each_file_system_held(tmp_path):
    """A hybrid with files of the ESP only, of the ISO only and shared: the remaster's ESP
    (mtools) and ISO (bsdtar) hold exactly what the source's did, the ESP's label too."""
    need("mcopy")
    src = str(tmp_path / "src.img")
    h = ISO9660Hybrid(src, volume_label="THREEWAYS", esp_label="MYESP")
    h.add(("file644", "both.txt", b"both\n"))
    h.add(("file644", "EFI/BOOT/only-esp.txt", b"esp\n", {"hybrid_target": "esp"}))
    h.add(("file644", "only-iso.bin", random.Random(2).randbytes(5000), {"hybrid_target": "iso"}))
    h.add(("sym", "link", b"both.txt"))
    h.finish()
    dest = str(tmp_path / "out.img")
    ISO9660Hybrid.from_image(src, dest).finish()
    check_hybrid(dest, tmp_path)
    assert esp_files(dest, tmp_path, "new") == esp_files(src, tmp_path, "old")
    assert set(esp_files(dest, tmp_path, "again")) == {"both.txt", "EFI/BOOT/only-esp.txt"}
    (tmp_path / "x").mkdir()
    same_files(src, dest, tmp_path / "x")
    assert set(extract(dest, str(tmp_path / "iso"))) == {"both.txt", "only-iso.bin"}
    assert "MYESP" in out(["blkid", "-p", "-o", "export", cut(dest, *_esp_range(dest), tmp_path / "e.img")])


def _esp_range(image: str) -> tuple[int, int]:
    import sysexport
    with sysexport.open(image) as img:
        esp = next(s for s in img.structures if s.kind == "partition" and "EFI System" in s.summary)
    return esp.offset, esp.size


@pytest.mark.parametrize("cls", [ISO9660, ISO9660Hybrid])
def test_remasters_are_reproducible(sources, tmp_path, cls):
    """A remaster keeps the source's volume dates, so its identifiers (GPT GUIDs, the FAT
    serial, the volume UUID) derive from the content: the same source and changes give the
    same bytes.  A new default_time gives a new UUID (blkid)."""
    outs = []
    for i in range(2):
        dest = str(tmp_path / f"out{i}.img")
        cls.from_image(sources["grub-mkrescue"], dest).finish()
        outs.append(open(dest, "rb").read())
    assert outs[0] == outs[1]
    w = cls.from_image(sources["grub-mkrescue"], str(tmp_path / "later.img"))
    w.default_time = 1_800_000_000
    w.finish()
    uuid = re.search(r"^UUID=(.*)$", out(["blkid", "-p", "-o", "export", str(tmp_path / "later.img")]), re.M)
    assert uuid and uuid.group(1).startswith("2027-01-15-08-00-00")


@pytest.mark.slow
def test_a_file_of_more_than_4_gib(tmp_path):
    """xorriso's multi-extent file (4.6 GiB, level 3): the remaster records it in several
    extents again (isoinfo), bsdtar reads its last bytes; a hybrid stores it in the ISO only.
    Memory stays flat: the bytes are copied extent by extent."""
    tree = tmp_path / "huge"
    tree.mkdir()
    size = 4600 << 20
    with open(tree / "big.bin", "wb") as f:
        f.truncate(size)
        f.seek(size - 4)
        f.write(b"tail")
    src = str(tmp_path / "huge.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-iso-level", "3", "-o", src, str(tree)])
    os.unlink(tree / "big.bin")
    for cls in (ISO9660, ISO9660Hybrid):
        dest = str(tmp_path / "out.img")
        cls.from_image(src, dest).finish()
        sizes = [int(m.group(1)) for m in re.finditer(r"^\S+\s+\d+\s+\d+\s+\d+\s+(\d+) .* big\.bin\s*$",
                                                        out(["isoinfo", "-l", "-R", "-i", dest]), re.M)]
        assert len(sizes) == 2 and sum(sizes) == size
        p = subprocess.run(f"bsdtar -xOf {dest} big.bin | tail -c 4", shell=True, capture_output=True)
        assert p.stdout == b"tail"
        os.unlink(dest)


def test_bad_tree_and_boot_image_changes(sources, tmp_path):
    """Removing a boot image the catalog names, and a tree whose file stands where the
    image has a directory: one error line each, naming the path, and no output."""
    if "isohybrid" not in sources:
        pytest.skip("isolinux is not installed")
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "sub").write_text("a file where the image has a directory\n")
    for src, args, message in (
            (sources["isohybrid"], ["--remove", "isolinux"], "El Torito catalog entry 0 boots from isolinux/isolinux.bin"),
            (sources["xorriso"], ["--add-tree", str(clash)], "sub is a directory in"),
            (sources["xorriso"], ["--add-tree", str(tmp_path / "missing")], "not a directory")):
        dest = tmp_path / "out.iso"
        p = subprocess.run([sys.executable, "-m", "sysexport", "remaster", src, "-o", str(dest)] + args,
                           capture_output=True, text=True)
        assert p.returncode == 1 and p.stderr.count("\n") == 1 and message in p.stderr, p.stderr
        assert not dest.exists()


def test_host_files_added_do_not_touch_the_carried_ones(sources, tmp_path):
    """from_image, then small host files added around the carried ones (add_tree, a file
    replaced by remove and add): every carried file keeps its bytes in both file systems
    (bsdtar, mtools).  VFAT's writer gathers small host files into one buffer whose gaps
    would overwrite files written between them; a remaster's writers write host files on
    their own."""
    need("mcopy")
    add = tmp_path / "add"
    (add / "docs").mkdir(parents=True)
    (add / "docs" / "added.txt").write_text("added\n")
    (add / "a.txt").write_text("overlaid\n")
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * 9000)
    dest = str(tmp_path / "out.img")
    h = ISO9660Hybrid.from_image(sources["hybrid"], dest)
    h.add_tree(str(add), "extra")
    h.remove("sub/big.bin")
    h.add({"name": "sub/big.bin", "mode": 0o100644, "data_path": str(small)})
    h.finish()
    (tmp_path / "x").mkdir()
    same_files(sources["hybrid"], dest, tmp_path / "x", changed=("sub/big.bin", "extra/a.txt", "extra/docs/added.txt"))
    old_esp, new_esp = esp_files(sources["hybrid"], tmp_path, "old"), esp_files(dest, tmp_path, "new")
    assert new_esp.pop("sub/big.bin") == sha256_file(small)
    for name in ("extra/a.txt", "extra/docs/added.txt"):
        new_esp.pop(name)
    old_esp.pop("sub/big.bin")
    assert new_esp == old_esp
    fat = str(tmp_path / "fat.img")
    v = VFAT.from_image(sources["hybrid"], fat)
    v.add({"name": "aaa.txt", "mode": 0o100644, "data_path": str(small)})
    v.add({"name": "zzz.txt", "mode": 0o100644, "data_path": str(small)})
    v.finish()
    got = tmp_path / "fatfiles"
    got.mkdir()
    run(["mcopy", "-s", "-n", "-i", fat, "::/*", str(got)], env_extra=MTOOLS_ENV)
    files = tree_digest(got)
    assert files.pop("aaa.txt") == files.pop("zzz.txt") == sha256_file(small)
    assert files == esp_files(sources["hybrid"], tmp_path, "old2")
