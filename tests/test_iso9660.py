"""sysexport.iso9660.ISO9660: whole images checked by readers nobody here wrote (docs/testing.md).

One rich image (unicode names, 3000 entries in a directory, names colliding after
mangling, depth 12, every file type, hard links, empty files and directories, sizes
around 2048) is built once and read by isoinfo, isovfy, xorriso, bsdtar, 7-Zip, pycdlib,
libcdio, blkid, dumpet and the Linux kernel.  Other tests cover interchange level 1,
determinism, El Torito bytes and a GRUB boot under SeaBIOS, the two-phase API of the
hybrid writer, a file over 4 GiB, and input errors.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import struct
import subprocess

import pytest

from helpers import need, out, run

from sysexport import BOOT_EFI, BOOT_X86, FLAG_HIDDEN, ISO9660
from sysexport.data import DataSource
from sysexport.errors import CallOrderError, InternalError, InvalidInputError
from sysexport.extent import Extent
from sysexport.fileinfo import walk_host_tree

MTIME = 1_600_000_000
IS_ROOT = os.geteuid() == 0
BOOT_IMAGE = b"\xfa\xeb\xfe" + bytes(61) + bytes(range(256)) * 20   # 5184 bytes, patched with a boot info table


def make_source(root: str) -> str:
    """The host tree of the rich image."""
    os.makedirs(root)

    def put(rel: str, data: bytes) -> None:
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)

    put("héllo wörld.txt", b"hello\n")
    put("日本語/ファイル名.txt", "こんにちは".encode())
    put("emoji \U0001F600 name.txt", b"emoji\n")
    put("a:b?c*d.txt", b"forbidden in joliet\n")
    put("x" * 120 + ".extension", b"long name\n")
    put("y" * 100 + ".md", b"long name 2\n")
    put("y" * 101 + ".md", b"long name 3\n")
    for i in range(40):
        put(f"collide/longfilename{i:02d}.txt", f"collide {i}\n".encode())
    for i in range(3000):
        put(f"many/f{i:04d}", f"{i}".encode())
    deep = "/".join("d%02d" % i for i in range(1, 13))
    put(f"{deep}/deep.txt", b"twelve levels down\n")
    os.makedirs(os.path.join(root, "d01/d02/d03/d04/d05/d06/d07/d08/d09/other"))
    for size in (0, 1, 2047, 2048, 2049, 4095, 4096, 65537):
        put(f"sizes/s{size}", bytes((i * 7 + size) % 251 for i in range(size)))
    os.makedirs(os.path.join(root, "empty dir"))
    put("links/original", b"hard linked data\n" * 300)
    os.link(os.path.join(root, "links/original"), os.path.join(root, "links/second name"))
    os.symlink("../héllo wörld.txt", os.path.join(root, "links/rel"))
    os.symlink("/etc/./passwd", os.path.join(root, "links/abs"))
    os.symlink("../" * 3 + "/".join(["component%03d" % i for i in range(40)]), os.path.join(root, "links/long"))
    os.symlink(".", os.path.join(root, "links/dot"))
    os.mkfifo(os.path.join(root, "links/fifo"))
    os.chmod(os.path.join(root, "sizes/s2049"), 0o751)
    os.chmod(os.path.join(root, "empty dir"), 0o700)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (MTIME + 7, MTIME), follow_symlinks=False)
    return root


SPECIALS = [
    ("chr640", "dev/null", (1, 3), {"uid": 0, "gid": 5, "mtime": MTIME}),
    ("blk600", "dev/loop0", (7, 0), {"mtime": MTIME}),
    ("sock755", "dev/socket", {"uid": 1000, "gid": 1000, "mtime": MTIME}),
    ("file600", "owned.txt", b"owned\n", {"uid": 1234, "gid": 5678, "mtime": MTIME}),
]


def build(path: str, src: str, exclude: str | None = None, **attrs) -> ISO9660:
    iso = ISO9660(path, volume_label="Rich Test", **attrs)
    for spec in walk_host_tree(src):
        if exclude is None or not (spec["name"] + "/").startswith(exclude + "/"):
            iso.add(spec)
    for spec in SPECIALS:
        iso.add(spec)
    iso.add(("file", "shortname/override.txt", b"override\n", {"ISO9660_shortname": "OVR.TXT"}))
    iso.add_boot_catalog_entry(BOOT_X86, data=BOOT_IMAGE, boot_info_table=True)
    iso.boot_catalog_hidden = True
    iso.finish()
    return iso


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        base = tmp_path_factory.mktemp("rich")
        src = make_source(str(base / "src"))
        image = str(base / "rich.iso")
        iso = build(image, src)
        want = _regular_digest(src)
        want["owned.txt"] = hashlib.sha256(b"owned\n").hexdigest()
        want["shortname/override.txt"] = hashlib.sha256(b"override\n").hexdigest()
        yield dict(base=base, src=src, image=image, iso=iso, want=want)
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]


def _regular_digest(root: str) -> dict[str, str]:
    """{relative path: sha256} of the regular files under root (fifos are never opened)."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            if not stat.S_ISREG(os.lstat(p).st_mode):
                continue
            rel = os.path.relpath(p, root)
            if not rel.startswith("[BOOT]"):
                with open(p, "rb") as f:
                    result[rel] = hashlib.sha256(f.read()).hexdigest()
    return result


def test_isoinfo_descriptors(rich):
    need("isoinfo")
    text = out(["isoinfo", "-d", "-i", rich["image"]])
    assert "Volume id: Rich Test" in text          # as given, as xorriso records it
    assert "Joliet with UCS level 3 found" in text
    assert "Rock Ridge signatures version 1 found" in text
    assert "El Torito VD version 1 found" in text
    assert "Logical block size is: 2048" in text
    size = int(re.search(r"Volume size is: (\d+)", text).group(1))
    assert size * 2048 == os.path.getsize(rich["image"])


def test_isoinfo_listings(rich):
    need("isoinfo")
    rr = out(["isoinfo", "-l", "-R", "-i", rich["image"]])
    assert "héllo wörld.txt" in rr and "rel -> ../héllo wörld.txt" in rr
    assert re.search(r"crw-r-----\s+1\s+0\s+5\s+0 .* null", rr)
    assert re.search(r"-rw-------\s+1\s+2322\s+13056\s+6 .* owned.txt", rr)   # isoinfo prints ids in octal
    assert re.search(r"-rwxr-x--x\s+1\s+0\s+0\s+2049 .* s2049", rr) or re.search(r"-rwxr-x--x.*2049 .* s2049", rr)
    joliet = out(["isoinfo", "-l", "-J", "-i", rich["image"]])
    assert "a_b_c_d.txt" in joliet and "emoji _ name.txt" in joliet     # isoinfo prints Latin-1 only
    assert re.search(r"-rw-r--r--\s+2\s+0\s+0\s+5100 .* second name", rr)     # hard link count
    plain = out(["isoinfo", "-l", "-i", rich["image"]])
    assert "OVR.TXT;1" in plain and "RR_MOVED" not in plain      # depth 12 in place (Rock Ridge on)
    assert "Directory listing of /D01/D02/D03/D04/D05/D06/D07/D08/D09/D10/D11/D12/\n" in plain
    # records of the 3000-entry directory in ECMA-119 9.3 order
    many = re.search(r"Directory listing of /MANY/\n(.*?)\n\n", plain, re.S).group(1)
    idents = [ln.split()[-1] for ln in many.splitlines()[2:]]
    assert len(idents) == 3000 and idents == sorted(idents)


def test_isovfy(rich):
    need("isovfy")
    text = out(["isovfy", rich["image"]])
    assert "No errors found" in text, text[-3000:]


def test_xorriso_listing_rock_ridge(rich):
    need("xorriso")
    text = out(["xorriso", "-indev", rich["image"], "-find", "/", "-exec", "lsdl"])
    deep = "/" + "/".join("d%02d" % i for i in range(1, 13))
    assert f"'{deep}/deep.txt'" in text
    assert "rr_moved" not in text.lower()           # relocation invisible in the Rock Ridge view
    assert re.search(r"lrwxrwxrwx .* '/links/abs' -> '/etc/./passwd'", text)
    long_target = "../" * 3 + "/".join(["component%03d" % i for i in range(40)])
    assert f"'/links/long' -> '{long_target}'" in text
    assert re.search(r"brw------- .* 7,0 .* '/dev/loop0'", text)
    assert re.search(r"srwxr-xr-x\s+1 1000\s+1000 .* '/dev/socket'", text)
    assert re.search(r"prw-r--r-- .* '/links/fifo'", text)
    assert re.search(r"drwx------ .* '/empty dir'", text)
    assert "Sep 13  2020" in text   # mtime 1600000000 (UTC) kept


def test_xorriso_el_torito(rich):
    need("xorriso")
    text = out(["xorriso", "-indev", rich["image"], "-report_el_torito", "plain"])
    assert re.search(r"El Torito boot img :\s+1\s+BIOS\s+y\s+none\s+0x0000\s+0x00\s+11\b", text), text


def test_bsdtar_extract(rich):
    need("bsdtar")
    dest = rich["base"] / "bsdtar"
    os.makedirs(dest)
    run(["bsdtar", "-xf", rich["image"], "-C", str(dest)])
    got = _regular_digest(str(dest))
    # bsdtar strips a leading "a:" (a drive letter to it) and makes a socket an empty file.
    assert got.pop("b?c*d.txt") == rich["want"]["a:b?c*d.txt"]
    assert got.pop("dev/socket") == hashlib.sha256(b"").hexdigest()
    assert got == {k: v for k, v in rich["want"].items() if k != "a:b?c*d.txt"}
    assert os.readlink(dest / "links/rel") == "../héllo wörld.txt"
    assert os.stat(dest / "links/original").st_ino == os.stat(dest / "links/second name").st_ino
    assert int(os.stat(dest / "sizes/s2049").st_mtime) == MTIME


def test_7zip_extract(rich):
    need("7zz")
    dest = rich["base"] / "7z"
    run(["7zz", "x", "-tiso", rich["image"], f"-o{dest}"])
    got = _regular_digest(str(dest))
    # 7-Zip reads Joliet: the names Joliet cannot hold are shortened or replaced.
    want = {k: v for k, v in rich["want"].items() if not k.startswith(("links/", "x" * 64, "y" * 64))
            and "\U0001F600" not in k and ":" not in k}
    assert {k: got[k] for k in want} == want
    assert got["emoji _ name.txt"] == rich["want"]["emoji \U0001F600 name.txt"]
    assert got["a_b_c_d.txt"] == rich["want"]["a:b?c*d.txt"]
    longs = sorted(k for k in got if k.startswith("y" * 50))
    assert len(longs) == 2 and all(len(k) <= 64 and k.endswith(".md") for k in longs)
    assert got["links/original"] == got["links/second name"]


def test_xorriso_extract(rich):
    need("xorriso")
    dest = rich["base"] / "osirrox"
    run(["xorriso", "-osirrox", "on", "-indev", rich["image"], "-extract", "/", str(dest)])
    assert _regular_digest(str(dest)) == rich["want"]
    assert os.readlink(dest / "links/long").startswith("../../../component000/")


def test_pycdlib_walks(rich):
    pycdlib = pytest.importorskip("pycdlib")
    iso = pycdlib.PyCdlib()
    iso.open(rich["image"])
    try:
        counts = {}
        for kind in ("rr_path", "joliet_path", "iso_path"):
            n = 0
            for root, dirs, files in iso.walk(**{kind: "/"}):
                for f in files:
                    path = root.rstrip("/") + "/" + f
                    rec = iso.get_record(**{kind: path})
                    # pycdlib lists a relocated directory's CL placeholder as a file but
                    # then treats it as the directory it points at.
                    if rec.is_dir() or (kind != "joliet_path" and rec.rock_ridge is not None
                                        and rec.rock_ridge.is_symlink()):
                        continue
                    buf = io.BytesIO()
                    iso.get_file_from_iso_fp(buf, **{kind: path})
                    if kind == "rr_path":
                        want = rich["want"].get(path[1:])
                        if want is not None:
                            assert hashlib.sha256(buf.getvalue()).hexdigest() == want, path
                    n += 1
            counts[kind] = n
        assert counts["rr_path"] >= len(rich["want"])
        rec = iso.get_record(rr_path="/owned.txt")
        assert rec.rock_ridge.get_file_mode() == 0o100600
        assert iso.get_record(rr_path="/links/abs").rock_ridge.symlink_path() == b"/etc/./passwd"
    finally:
        iso.close()


def test_libcdio(rich):
    need("iso-info", "iso-read")
    text = out(["iso-info", "-f", "-i", rich["image"]])
    assert "/MANY/F2999.;1" in text or "/many/f2999" in text
    dest = str(rich["base"] / "cdio-read")
    run(["iso-read", "-i", rich["image"], "-e", "/sizes/s65537", "-o", dest])
    with open(dest, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == rich["want"]["sizes/s65537"]


def test_blkid(rich):
    need("blkid")
    text = out(["blkid", "-p", "-o", "export", rich["image"]])
    assert "TYPE=iso9660" in text
    assert "LABEL=Rich Test" in text or "LABEL=Rich\\ Test" in text
    assert re.search(r"UUID=2023-11-14-22-13-20-\d\d\n", text)    # centiseconds from the content digest


def test_dumpet(rich):
    need("dumpet")
    text = out(["dumpet", "-i", rich["image"]])
    assert "Entry is bootable" in text and "Load Sectors: 11" in text


@pytest.mark.slow
def test_linux_kernel_views(rich):
    """The Linux kernel's isofs, in its Rock Ridge, Joliet and plain views, in one boot."""
    from helpers.linuxvm import linux_views
    os.makedirs(rich["base"] / "vm", exist_ok=True)
    views = linux_views(rich["base"] / "vm", rich["image"])
    rr = views["rr"]
    files = {k: v["sha256"] for k, v in rr.items() if v["type"] == "f"}
    want = rich["want"]
    assert {k: files.get(k) for k in want} == want
    assert not [k for k in rr if "rr_moved" in k.lower()]
    assert rr["owned.txt"]["uid"] == 1234 and rr["owned.txt"]["gid"] == 5678 and rr["owned.txt"]["mode"] == 0o600
    assert rr["dev/null"]["type"] == "c" and rr["dev/null"]["rdev"] == (1, 3)
    assert rr["dev/loop0"]["type"] == "b" and rr["dev/loop0"]["rdev"] == (7, 0)
    assert rr["dev/socket"]["type"] == "s" and rr["links/fifo"]["type"] == "p"
    assert rr["links/long"]["target"] == os.readlink(os.path.join(rich["src"], "links/long"))
    assert rr["sizes/s2049"]["mtime"] == MTIME and rr["sizes/s2049"]["mode"] == 0o751
    assert rr["empty dir"]["type"] == "d" and rr["empty dir"]["mode"] == 0o700
    joliet = {k: v["sha256"] for k, v in views["joliet"].items() if v["type"] == "f"}
    assert joliet["日本語/ファイル名.txt"] == want["日本語/ファイル名.txt"]
    assert joliet["d01/d02/d03/d04/d05/d06/d07/d08/d09/d10/d11/d12/deep.txt"] == want[
        "d01/d02/d03/d04/d05/d06/d07/d08/d09/d10/d11/d12/deep.txt"]
    plain = {k: v["sha256"] for k, v in views["plain"].items() if v["type"] == "f"}
    assert plain["sizes/s2049"] == want["sizes/s2049"]
    assert sum(1 for k in plain if k.startswith("collide/")) == 40
    # The 3000-entry directory in every view, every file's bytes.
    many = {k: v for k, v in want.items() if k.startswith("many/")}
    assert len(many) == 3000
    for name, view in (("rr", rr), ("joliet", views["joliet"])):
        assert {k: view[k]["sha256"] for k in many} == many, name
    assert sorted(v for k, v in plain.items() if k.startswith("many/")) == sorted(many.values())


def test_deterministic(tmp_path, sde):
    """Same input and time, same bytes (no dict/set order, clock or randomness)."""
    images = []
    for n in range(2):
        iso = ISO9660(str(tmp_path / f"{n}.iso"))
        iso.interchange_level = 1
        for i in reversed(range(30)):
            iso.add(("file", f"d/longfilename{i:02d}.txt", str(i).encode(), {"mtime": MTIME}))
        iso.add(("sym", "d/link", b"longfilename00.txt"))
        iso.add_boot_catalog_entry(BOOT_X86, data=b"x" * 100)
        iso.finish()
        with open(tmp_path / f"{n}.iso", "rb") as f:
            images.append(f.read())
    assert images[0] == images[1]
    assert b"20231114221320" in images[0][16 * 2048:17 * 2048]   # SOURCE_DATE_EPOCH in the PVD dates


def test_hidden_flag(tmp_path, sde):
    need("isoinfo")
    iso = ISO9660(str(tmp_path / "h.iso"))
    iso.add(("file", "hidden.txt", b"hidden\n", {"ISO9660_flags": FLAG_HIDDEN}))
    iso.add(("file", "shown.txt", b"shown\n"))
    iso.finish()
    plain = out(["isoinfo", "-l", "-i", str(tmp_path / "h.iso")])
    assert re.search(r"\[\s*\d+ 01\]\s+HIDDEN.TXT;1", plain) and re.search(r"\[\s*\d+ 00\]\s+SHOWN.TXT;1", plain)


def test_level1_names(tmp_path, sde):
    need("isoinfo", "bsdtar")
    iso = ISO9660(str(tmp_path / "l1.iso"), interchange_level=1, rock_ridge=None, joliet=False)
    for i in range(40):
        iso.add(("file", f"dir.with.dots/longfilename{i:02d}.txt", f"{i}\n".encode()))
    iso.finish()
    plain = out(["isoinfo", "-l", "-i", str(tmp_path / "l1.iso")])
    names = re.findall(r"\s(\S+;1)\s*$", plain, re.M)
    assert len(names) == 40 and len(set(names)) == 40
    assert all(re.fullmatch(r"[A-Z0-9_]{1,8}\.[A-Z0-9_]{0,3};1", n) for n in names), names
    assert "DIR_WITH" in plain
    need("isovfy")
    assert "No errors found" in out(["isovfy", str(tmp_path / "l1.iso")])
    dest = tmp_path / "x"
    os.makedirs(dest)
    run(["bsdtar", "-xf", str(tmp_path / "l1.iso"), "-C", str(dest)])
    assert sorted(v for v in _regular_digest(str(dest)).values()) == sorted(
        hashlib.sha256(f"{i}\n".encode()).hexdigest() for i in range(40))


def _read_at(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def test_el_torito_bytes(tmp_path, sde):
    """Catalog and boot info table checked byte by byte, values computed here."""
    need("xorriso", "dumpet")
    image = str(tmp_path / "boot.iso")
    iso = ISO9660(image)
    payload = bytes(range(256)) * 40 + b"tail"
    iso.add(("file", "boot/x86.img", payload))
    iso.add(("file", "efi.img", b"\x00" * 4096))
    entry = iso.add_boot_catalog_entry(BOOT_X86, path="boot/x86.img", boot_info_table=True, load_size=4)
    iso.add_boot_catalog_entry(BOOT_EFI, path="efi.img", section_id=b"UEFI")
    iso.finish()
    data = open(image, "rb").read()
    assert data[17 * 2048 + 1:17 * 2048 + 6] == b"CD001" and data[17 * 2048 + 7:17 * 2048 + 30] == b"EL TORITO SPECIFICATION"
    cat_lba = struct.unpack_from("<I", data, 17 * 2048 + 0x47)[0]
    cat = data[cat_lba * 2048:cat_lba * 2048 + 2048]
    assert sum(struct.unpack("<16H", cat[:32])) & 0xFFFF == 0 and cat[0] == 1 and cat[30:32] == b"\x55\xaa"
    assert cat[32] == 0x88 and cat[33] == 0
    count, rba = struct.unpack_from("<HI", cat, 38)
    assert count == 4 and entry.load_size == 4
    assert rba * 2048 == iso.lookup("boot/x86.img").device_offset
    assert cat[64] == 0x91 and cat[65] == 0xEF and cat[68:72] == b"UEFI"
    efi_count, efi_rba = struct.unpack_from("<HI", cat, 96 + 6)
    assert efi_count == 8 and efi_rba * 2048 == iso.lookup("efi.img").device_offset
    stored = data[rba * 2048:rba * 2048 + len(payload)]
    bi_pvd, bi_file, bi_length, bi_csum = struct.unpack_from("<4I", stored, 8)
    words = payload[64:] + bytes(-len(payload[64:]) % 4)
    csum = sum(struct.unpack("<%dI" % (len(words) // 4), words)) & 0xFFFFFFFF
    assert (bi_pvd, bi_file, bi_length, bi_csum) == (16, rba, len(payload), csum)
    assert stored[:8] == payload[:8] and stored[64:] == payload[64:]
    text = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    assert re.search(r"El Torito boot img :\s+1\s+BIOS\s+y\s+none\s+0x0000\s+0x00\s+4\s+%d" % rba, text), text
    assert re.search(r"El Torito boot img :\s+2\s+UEFI\s+y\s+none\s+0x0000\s+0x00\s+8\s+%d" % efi_rba, text), text
    assert "El Torito cat path : /boot.catalog" in text
    d = out(["dumpet", "-i", image])
    assert "Section Header Entry" in d or "Header Indicator: 0x91" in d


def _boot_until(image: str, workdir: str, needle: bytes, deadline_s: float = 60,
                extra: list[str] = ()) -> bytes:
    """Boot image as a CD in qemu; stop once ``needle`` appears on the serial port (or at the deadline)."""
    import time
    log = os.path.join(workdir, "serial.log")
    p = subprocess.Popen(["qemu-system-x86_64", "-nic", "none", "-nographic", "-no-reboot", "-m", "512",
                          "-monitor", "none", "-display", "none", "-serial", f"file:{log}", *extra,
                          "-cdrom", image, "-boot", "d"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and p.poll() is None:
            if os.path.exists(log) and needle in open(log, "rb").read():
                break
            time.sleep(0.3)
    finally:
        p.kill()
        p.wait()
    return open(log, "rb").read() if os.path.exists(log) else b""


@pytest.mark.slow
def test_grub_boots_from_cd_under_seabios(tmp_path, sde):
    need("grub-mkimage", "qemu-system-x86_64", "/usr/lib/grub/i386-pc/cdboot.img")
    eltorito = str(tmp_path / "eltorito.img")
    run(["grub-mkimage", "-O", "i386-pc-eltorito", "-p", "/boot/grub", "-o", eltorito,
         "biosdisk", "iso9660", "normal", "echo", "serial", "terminal"])
    cfg = (b'serial --unit=0 --speed=115200\nterminal_output serial console\n'
           b'echo "BOOT-OK platform=${grub_platform} root=${root}"\n')
    image = str(tmp_path / "grub.iso")
    iso = ISO9660(image, volume_label="GRUBTEST")
    iso.add({"name": "boot/grub/i386-pc/eltorito.img", "mode": 0o100644, "data_path": eltorito})
    iso.add(("file", "boot/grub/grub.cfg", cfg))
    iso.add_boot_catalog_entry(BOOT_X86, path="boot/grub/i386-pc/eltorito.img", boot_info_table=True, load_size=4)
    iso.finish()
    log = _boot_until(image, str(tmp_path), b"BOOT-OK platform=pc root=")
    assert b"BOOT-OK platform=pc root=hd96" in log or b"BOOT-OK platform=pc root=cd" in log, log[-2000:]


def test_two_phase_api(tmp_path, sde):
    """plan() with a reserved gap, files placed later, write() into a sized file (hybrid's use)."""
    need("bsdtar", "isovfy")
    iso = ISO9660()
    iso.add(("file", "own.txt", b"own data\n"))
    iso.add(("file", "shared.bin", b"S" * 5000), placed_later=True)
    iso.add(("file", "shared2.bin", b"T" * 10), placed_later=True)
    iso.add_boot_catalog_entry(BOOT_EFI, extent=Extent(0, 2048))
    plan = iso.plan(reserve_after_descriptors=16384)
    end = plan.end_bytes
    gap = plan.reserved_extent
    assert gap.device_offset == 16 * 2048 + 4 * 2048 and gap.size_bytes == 16384
    assert iso.lookup("shared.bin").device_offset is None and not plan.complete
    with pytest.raises(CallOrderError):
        iso.add(("file", "late.txt", b"too late"))
    shared_at = end + 8192
    nodes = {n.info.name: n for n in iso.tree.walk()}
    plan = iso.place(plan, [(nodes["shared.bin"], shared_at), (nodes["shared2.bin"], shared_at + 6144)],
                     volume_size_bytes=shared_at + 16384, boot_extents={0: Extent(shared_at, 8192)})
    assert plan.complete and plan.volume_size_bytes == shared_at + 16384
    path = str(tmp_path / "two.iso")
    with open(path, "wb") as f:
        f.truncate(plan.volume_size_bytes)
        f.seek(0)
        f.write(b"\xAA" * 32768)
        f.seek(gap.device_offset)
        f.write(b"\xBB" * gap.size_bytes)
        f.seek(shared_at)
        f.write(b"S" * 5000)
        f.seek(shared_at + 6144)
        f.write(b"T" * 10)
        f.flush()
        iso.write(f.fileno(), plan)
    assert _read_at(path, 0, 32768) == b"\xAA" * 32768
    assert _read_at(path, gap.device_offset, gap.size_bytes) == b"\xBB" * gap.size_bytes
    assert iso.lookup("shared.bin").device_offset == shared_at
    dest = tmp_path / "x"
    os.makedirs(dest)
    run(["bsdtar", "-xf", path, "-C", str(dest)])
    assert (dest / "shared.bin").read_bytes() == b"S" * 5000 and (dest / "own.txt").read_bytes() == b"own data\n"
    text = out(["isoinfo", "-d", "-i", path])
    assert int(re.search(r"Volume size is: (\d+)", text).group(1)) * 2048 == shared_at + 16384
    cat_lba = struct.unpack_from("<I", _read_at(path, 17 * 2048, 2048), 0x47)[0]
    count, rba = struct.unpack_from("<HI", _read_at(path, cat_lba * 2048, 64), 38)
    assert (count, rba * 2048) == (16, shared_at)
    # An unplaced "placed later" file is a bug of the caller's layout.
    iso2 = ISO9660()
    iso2.add(("file", "late.bin", b"x"), placed_later=True)
    plan2 = iso2.plan()
    with open(tmp_path / "y.iso", "wb") as f:
        f.truncate(1 << 20)
        with pytest.raises(InternalError):
            iso2.write(f.fileno(), plan2)
    # A plan made stale by a later plan() is refused.
    iso2.plan()
    with pytest.raises(CallOrderError):
        iso2.write(0, plan2)


def test_hard_links_share_an_extent(tmp_path, sde):
    iso = ISO9660(str(tmp_path / "h.iso"))
    for name in ("a", "b/c"):
        iso.add({"name": name, "mode": 0o100644, "data": b"same", "dev": 1, "ino": 99, "nlink": 2})
    iso.finish()
    assert iso.lookup("a").device_offset == iso.lookup("b/c").device_offset


@pytest.mark.slow
def test_file_over_4gib(tmp_path, sde):
    """A sparse 4 GiB + 3000 byte file: multi-extent records, read back by bsdtar and listed by xorriso."""
    need("bsdtar", "xorriso", "isoinfo")
    big = str(tmp_path / "big.bin")
    size = (1 << 32) + 3000
    with open(big, "wb") as f:
        f.truncate(size)
        f.seek(0)
        f.write(b"head")
        f.seek((1 << 32) - 2)
        f.write(b"across the 4 GiB line")
        f.seek(size - 4)
        f.write(b"tail")
    image = str(tmp_path / "big.iso")
    iso = ISO9660(image)
    iso.add({"name": "data/big.bin", "mode": 0o100644, "data_path": big})
    iso.add(("file", "data/after.txt", b"after\n"))
    iso.finish()
    assert os.stat(image).st_blocks * 512 < 64 << 20     # still sparse
    plain = out(["isoinfo", "-l", "-i", image])
    sizes = [int(m) for m in re.findall(r"^-\S+\s+\S+\s+\S+\s+\S+\s+(\d+) .*BIG\.BIN;1", plain, re.M)]
    assert sizes == [0xFFFFF800, size - 0xFFFFF800], plain
    text = out(["xorriso", "-indev", image, "-find", "/data/big.bin", "-exec", "lsdl"])
    assert re.search(r"-rw-r--r--\s+1 0\s+0\s+%d .* '/data/big.bin'" % size, text), text
    want = hashlib.sha256()
    with open(big, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            want.update(chunk)
    got = hashlib.sha256()
    p = subprocess.Popen(["bsdtar", "-xOf", image, "data/big.bin"], stdout=subprocess.PIPE)
    n = 0
    for chunk in iter(lambda: p.stdout.read(1 << 22), b""):
        got.update(chunk)
        n += len(chunk)
    assert p.wait() == 0
    assert n == size and got.hexdigest() == want.hexdigest()


def test_input_errors(tmp_path):
    iso = ISO9660(str(tmp_path / "e.iso"), interchange_level=1)
    with pytest.raises(InvalidInputError, match="interchange level 1"):
        iso.add({"name": "huge", "mode": 0o100644, "data": _FakeBig()})
    with pytest.raises(InvalidInputError, match="d-characters"):
        iso.add(("file", "x", b"", {"ISO9660_shortname": "lower.txt"}))
    with pytest.raises(InvalidInputError, match="ISO9660_flags"):
        iso.add(("file", "y", b"", {"ISO9660_flags": 2}))
    with pytest.raises(InvalidInputError, match="exactly one of"):
        iso.add_boot_catalog_entry(BOOT_X86, data=b"x", path="y")
    with pytest.raises(InvalidInputError, match="rock_ridge"):
        iso.rock_ridge = "2.0"
    assert not os.path.exists(tmp_path / "e.iso")


class _FakeBig(DataSource):
    """A source that claims 4 GiB (never read: add() must refuse it first)."""

    size_bytes = 1 << 32


@pytest.mark.slow
def test_file_over_4gib_linux(tmp_path, sde):
    """The Linux kernel maps both extents of a multi-extent file: size, and the bytes at the
    start, across the 4 GiB line (the extent boundary) and at the end (reading all 4 GiB
    under TCG would take minutes; bsdtar reads it whole in test_file_over_4gib)."""
    from helpers.linuxvm import run_linux
    big = str(tmp_path / "big.bin")
    size = (1 << 32) + 3000
    marks = {0: b"head", 0xFFFFF800 - 10: b"extent boundary crossed", (1 << 32) - 2: b"4 GiB line",
             size - 4: b"tail"}
    with open(big, "wb") as f:
        f.truncate(size)
        for offset, data in marks.items():
            f.seek(offset)
            f.write(data)
    image = str(tmp_path / "big.iso")
    iso = ISO9660(image)
    iso.add({"name": "big.bin", "mode": 0o100644, "data_path": big})
    iso.finish()
    script = ["mkdir -p /m", "mount -t iso9660 -o ro /dev/sr0 /m", "stat -c 'SIZE %s' /m/big.bin"]
    for offset, data in marks.items():
        script.append(f"echo MARK {offset} $(dd if=/m/big.bin bs=1 skip={offset} count={len(data)} 2>/dev/null"
                      " | od -An -tx1 | tr -d ' \\n')")
    text = run_linux(str(tmp_path), "\n".join(script) + "\n", cdrom=image)
    assert f"SIZE {size}" in text, text
    for offset, data in marks.items():
        assert f"MARK {offset} {data.hex()}" in text, text


@pytest.mark.slow
def test_grub_efi_boots_from_cd_under_ovmf(tmp_path, sde):
    """An EFI catalog entry pointing at a FAT image (mkfs.fat + mtools) with GRUB's BOOTX64.EFI."""
    import shutil
    code, vars_ = "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"
    need("grub-mkimage", "qemu-system-x86_64", "mkfs.fat", "mcopy", "mmd", code, vars_,
         "/usr/lib/grub/x86_64-efi/kernel.img")
    efi = str(tmp_path / "BOOTX64.EFI")
    run(["grub-mkimage", "-O", "x86_64-efi", "-p", "/boot/grub", "-o", efi,
         "fat", "part_gpt", "iso9660", "normal", "echo", "serial", "terminal", "efi_gop"])
    cfg = tmp_path / "grub.cfg"
    cfg.write_bytes(b'serial --unit=0 --speed=115200\nterminal_output serial console\n'
                    b'echo "BOOT-OK platform=${grub_platform} root=${root}"\n')
    fat = str(tmp_path / "efiboot.img")
    run(["truncate", "-s", "4M", fat])
    run(["mkfs.fat", "-n", "EFIBOOT", fat])
    env = {"MTOOLS_SKIP_CHECK": "1"}
    run(["mmd", "-i", fat, "::/EFI", "::/EFI/BOOT", "::/boot", "::/boot/grub"], env_extra=env)
    run(["mcopy", "-i", fat, efi, "::/EFI/BOOT/BOOTX64.EFI"], env_extra=env)
    run(["mcopy", "-i", fat, str(cfg), "::/boot/grub/grub.cfg"], env_extra=env)
    image = str(tmp_path / "efi.iso")
    iso = ISO9660(image, volume_label="EFITEST")
    iso.add({"name": "efiboot.img", "mode": 0o100644, "data_path": fat})
    iso.add({"name": "boot/grub/grub.cfg", "mode": 0o100644, "data_path": str(cfg)})  # GRUB's root is the CD
    iso.add_boot_catalog_entry(BOOT_EFI, path="efiboot.img")
    iso.finish()
    vars_copy = str(tmp_path / "vars.fd")
    shutil.copyfile(vars_, vars_copy)
    log = _boot_until(image, str(tmp_path), b"BOOT-OK platform=efi", deadline_s=90,
                      extra=["-drive", f"if=pflash,format=raw,readonly=on,file={code}",
                             "-drive", f"if=pflash,format=raw,file={vars_copy}"])
    assert b"BOOT-OK platform=efi" in log, log[-3000:]


@pytest.mark.parametrize("rock_ridge", ["1.12", None])
def test_rock_ridge_variants(tmp_path, sde, rock_ridge):
    """RRIP 1.12 (PX with inode numbers, ER "IEEE_P1282") and no Rock Ridge at all (then
    a symlink and a tree past ECMA-119's eight levels are refused)."""
    need("xorriso", "isovfy", "bsdtar")
    image = str(tmp_path / "v.iso")
    iso = ISO9660(image, rock_ridge=rock_ridge)
    iso.add(("file600", "Mixed Case Name.txt", b"data\n", {"uid": 7, "mtime": MTIME}))
    if rock_ridge:
        iso.add(("sym", "link", b"Mixed Case Name.txt"))
        iso.add(("file", "a/b/c/d/e/f/g/h/i/deep", b"deep\n"))
    else:
        with pytest.raises(InvalidInputError, match="symlink cannot be recorded without Rock Ridge"):
            iso.add(("sym", "link", b"Mixed Case Name.txt"))
        with pytest.raises(InvalidInputError, match=r"level 9.*ECMA-119 6\.8\.2\.1"):
            iso.add(("file", "a/b/c/d/e/f/g/h/i/deep", b"deep\n"))
        iso.add(("file", "a/b/c/d/e/f/g/deep", b"deep\n"))
    iso.finish()
    data = open(image, "rb").read()
    assert (b"IEEE_P1282" in data) == (rock_ridge == "1.12")
    assert (b"RRIP_1991A" in data) is False
    assert "No errors found" in out(["isovfy", image])
    text = out(["xorriso", "-indev", image, "-find", "/", "-exec", "lsdl"])
    if rock_ridge:
        assert re.search(r"-rw-------\s+1 7\s+0\s+5 .* '/Mixed Case Name.txt'", text), text
        assert "'/link' -> 'Mixed Case Name.txt'" in text and "'/a/b/c/d/e/f/g/h/i/deep'" in text
        pycdlib = pytest.importorskip("pycdlib")
        p = pycdlib.PyCdlib()
        p.open(image)
        try:
            assert p.get_record(rr_path="/Mixed Case Name.txt").rock_ridge.rr_version == "1.12"
        finally:
            p.close()
    else:
        assert "'/Mixed Case Name.txt'" in text and "'/link'" not in text   # xorriso reads Joliet
        assert b"SP\x07\x01\xbe\xef" not in data
    dest = tmp_path / "x"
    os.makedirs(dest)
    run(["bsdtar", "-xf", image, "-C", str(dest)])
    assert (dest / "Mixed Case Name.txt").read_bytes() == b"data\n"   # from RR, or from Joliet
