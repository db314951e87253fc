"""ISO9660 writer at its edges, each case read by readers nobody here wrote (docs/testing.md).

* Deep directories: a 30-level tree written in place (the default with Rock Ridge) and
  relocated to RR_MOVED (``relocate_deep_dirs=True``, nested relocations under a top-level
  name sorting before RR_MOVED), read by GRUB (grub-fstest), bsdtar, pycdlib (ISO 9660,
  Joliet and Rock Ridge facades), isoinfo and, as a slow test, the Linux kernel; the path
  tables checked byte by byte against the directories.
* Rock Ridge off: depth beyond 8 levels, paths over 255 bytes at levels 1 and 2, and
  symlinks, devices, fifos and sockets refused with InvalidInputError.
* Root entries named rr_moved, with and without relocation.
* One section per file up to 0xFFFFFFFF bytes at every level (isoinfo -l, xorriso).
* Generated names at their level's limits (hypothesis), read back by isoinfo and xorriso;
  Joliet names at 64 UCS-2 units; name components over 255 bytes.
* El Torito emulation images checked (floppy sizes, the hard disk's MBR).
* Volume labels as xorriso records them (isoinfo -d, blkid, grub-probe).
"""
from __future__ import annotations

import hashlib
import io
import os
import random
import re
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import need, out, run, tree_digest

from sysexport import BOOT_X86, EMU_FLOPPY12, EMU_FLOPPY144, EMU_FLOPPY288, EMU_HDD, ISO9660
from sysexport.data import DataSource
from sysexport.errors import InvalidInputError
from sysexport.iso9660 import hierarchy
from sysexport.iso9660 import names as iso_names

MTIME = 1_600_000_000
SECTOR = 2048
DEPTH = 30
A = [f"a{i:02d}" for i in range(1, DEPTH + 1)]
Z = [f"z{i:02d}" for i in range(1, 13)]


# ------------------------------------------------------------------------------ deep trees

def deep_files() -> dict[str, bytes]:
    """A file in every directory of a01/.../a30 (a top-level name sorting before RR_MOVED,
    so relocation nests four times under it) and one 12 levels down z01/.../z12."""
    files = {"/".join(A[:i]) + f"/f{i:02d}.txt": f"a level {i}\n".encode() for i in range(1, DEPTH + 1)}
    files["/".join(A) + "/empty"] = b""
    files["/".join(Z) + "/z12.txt"] = b"z twelve\n"
    files["top.txt"] = b"top\n"
    return files


DEEP_LINK = ("/".join(A) + "/link", "f30.txt")


def build_deep(path: str, relocate: bool) -> str:
    iso = ISO9660(path, volume_label="DEEP", relocate_deep_dirs=relocate, default_time=MTIME)
    for name, data in deep_files().items():
        iso.add(("file", name, data, {"mtime": MTIME}))
    iso.add(("sym", DEEP_LINK[0], DEEP_LINK[1], {"mtime": MTIME}))
    iso.finish()
    return path


def physical(path: str) -> str:
    """Where a file of the deep tree lies in the directory records with relocation: every
    directory that would sit at level 9 starts again under .rr_moved (at level 3)."""
    parts = path.split("/")
    level, out_parts = 1, []
    for part in parts[:-1]:
        level += 1
        if level > hierarchy.MAX_DEPTH:
            out_parts, level = [".rr_moved"], 3
        out_parts.append(part)
    return "/".join(out_parts + parts[-1:])


def iso_ident_path(path: str) -> str:
    """The ISO 9660 path (identifiers) of a deep-tree file."""
    parts = path.split("/")
    head = [p.upper() for p in parts[:-1]]
    stem, _, ext = parts[-1].rpartition(".")
    leaf = f"{stem.upper()}.{ext.upper()};1" if stem else f"{parts[-1].upper()}.;1"
    return "/" + "/".join(head + [leaf])


@pytest.fixture(scope="module", params=[False, True], ids=["in-place", "relocated"])
def deep(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("deep")
    image = build_deep(str(base / "deep.iso"), request.param)
    return dict(base=base, image=image, relocate=request.param)


def _digest(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def test_deep_bsdtar(deep):
    """libarchive reads both: in place trivially, relocated because every directory under
    RR_MOVED lies before the others (hierarchy.extent_order)."""
    need("bsdtar")
    dest = deep["base"] / "bsdtar"
    os.makedirs(dest)
    run(["bsdtar", "-xf", deep["image"], "-C", str(dest)])
    assert tree_digest(dest) == _digest(deep_files())
    assert os.readlink(dest / DEEP_LINK[0]) == DEEP_LINK[1]
    assert not (dest / "rr_moved").exists() and not (dest / ".rr_moved").exists()


def test_relocation_in_path_table_order_is_refused_by_bsdtar(tmp_path, monkeypatch):
    """The libarchive rule the relocated layout exists for: with directory extents in path
    table order, a01 (before RR_MOVED) brings the outer CL before the nested ones and
    bsdtar rejects the whole image."""
    need("bsdtar")
    monkeypatch.setattr(hierarchy, "extent_order", lambda dirs: list(dirs))
    image = build_deep(str(tmp_path / "bad.iso"), True)
    p = subprocess.run(["bsdtar", "-tf", image], capture_output=True, text=True)
    assert p.returncode != 0 and "Failed to connect 'CL' pointer to 'RE'" in p.stderr, p.stderr


def test_deep_grub(deep):
    """GRUB's iso9660 driver reads Rock Ridge names but does not follow CL: in place it
    finds every file at its path; relocated, at its place under /.rr_moved."""
    need("grub-fstest")
    files = deep_files()
    for i, (name, data) in enumerate(sorted(files.items())):
        if not data:
            continue
        where = physical(name) if deep["relocate"] else name
        dest = deep["base"] / f"grub-{i}"
        run(["grub-fstest", deep["image"], "cp", f"(loop0)/{where}", str(dest)])
        assert dest.read_bytes() == data, name
    listing = out(["grub-fstest", deep["image"], "ls", "(loop0)/" + "/".join(A) + "/"])
    if deep["relocate"]:
        assert "f30.txt" not in listing       # a08 is a CL placeholder to GRUB: nothing below it
    else:
        assert listing.split() == ["empty", "f30.txt", "link"]


def test_deep_pycdlib(deep):
    """pycdlib's Rock Ridge, Joliet and ISO 9660 facades: every file at its path (in the
    ISO view of the relocated image, at its place under RR_MOVED)."""
    pycdlib = pytest.importorskip("pycdlib")
    files = deep_files()
    iso = pycdlib.PyCdlib()
    iso.open(deep["image"])
    try:
        def read(**kw) -> bytes:
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, **kw)
            return buf.getvalue()
        for name, data in files.items():
            assert read(rr_path="/" + name) == data, name
            assert read(joliet_path="/" + name) == data, name
            where = physical(name).replace(".rr_moved", "rr_moved") if deep["relocate"] else name
            assert read(iso_path=iso_ident_path(where)) == data, name
        assert iso.get_record(rr_path="/" + DEEP_LINK[0]).rock_ridge.symlink_path() == DEEP_LINK[1].encode()
        seen = set()
        for root, dirs, names in iso.walk(rr_path="/"):
            seen.update((root.rstrip("/") + "/" + n)[1:] for n in names)
        assert set(files) | {DEEP_LINK[0]} <= seen
        joliet = set()
        for root, dirs, names in iso.walk(joliet_path="/"):
            joliet.update((root.rstrip("/") + "/" + n)[1:] for n in names)
        assert joliet == set(files)
        plain_dirs = [root for root, _d, _n in iso.walk(iso_path="/")]
        assert any(r.startswith("/RR_MOVED") for r in plain_dirs) == deep["relocate"]
        assert max(r.count("/") for r in plain_dirs) == (7 if deep["relocate"] else DEPTH)
    finally:
        iso.close()


def test_deep_isoinfo(deep):
    need("isoinfo")
    image = deep["image"]
    rr = out(["isoinfo", "-R", "-l", "-i", image])
    plain = out(["isoinfo", "-l", "-i", image])
    joliet = out(["isoinfo", "-J", "-l", "-i", image])
    full = "/" + "/".join(A) + "/"
    assert f"Directory listing of {full}\n" in joliet
    if deep["relocate"]:
        assert "Directory listing of /RR_MOVED/A26/A27/A28/A29/A30/\n" in plain
        assert "Directory listing of /.rr_moved/a26/a27/a28/a29/a30/\n" in rr
    else:
        assert "RR_MOVED" not in plain and "rr_moved" not in rr
        assert f"Directory listing of {full.upper()}\n" in plain
        assert f"Directory listing of {full}\n" in rr
    for name, data in deep_files().items():
        if not data:
            continue
        where = physical(name) if deep["relocate"] else name
        assert run(["isoinfo", "-R", "-i", image, "-x", "/" + where]).stdout == data, name
        assert run(["isoinfo", "-J", "-i", image, "-x", "/" + name]).stdout == data, name


def _directories(data: bytes, lba: int, size: int) -> list[tuple[bytes, int, int, int]]:
    """(identifier, LBA, data length, flags) of each record of one directory (ECMA-119 9.1)."""
    out_recs = []
    for sector in range(0, size, SECTOR):
        pos = lba * SECTOR + sector
        end = pos + SECTOR
        while pos < end and data[pos]:
            n = data[pos]
            ident = data[pos + 33:pos + 33 + data[pos + 32]]
            out_recs.append((ident, struct.unpack_from("<I", data, pos + 2)[0],
                             struct.unpack_from("<I", data, pos + 10)[0], data[pos + 25]))
            pos += n
    return out_recs


def test_deep_path_tables_match_the_directories(deep):
    """Both path tables (ECMA-119 6.9, 9.4), decoded here: one record per directory, in
    level / parent number / identifier order, each naming its directory's extent and its
    parent's number; the in-place tree reaches level 31."""
    data = open(deep["image"], "rb").read()
    pvd = data[16 * SECTOR:17 * SECTOR]
    table_size = struct.unpack_from("<I", pvd, 132)[0]
    l_lba, m_lba = struct.unpack_from("<I", pvd, 140)[0], struct.unpack_from(">I", pvd, 148)[0]
    root_lba, root_size = struct.unpack_from("<I", pvd, 158)[0], struct.unpack_from("<I", pvd, 166)[0]

    def table(lba: int, fmt: str) -> list[tuple[bytes, int, int]]:
        recs, pos, end = [], lba * SECTOR, lba * SECTOR + table_size
        while pos < end:
            n = data[pos]
            ext_lba, parent = struct.unpack_from(fmt + "IH", data, pos + 2)
            recs.append((data[pos + 8:pos + 8 + n], ext_lba, parent))
            pos += 8 + n + n % 2
        return recs

    lt, mt = table(l_lba, "<"), table(m_lba, ">")
    assert lt == mt
    # The directories, walked from the root's records (parent LBA of each).
    dirs = {root_lba: (b"\x00", root_lba)}
    todo = [(root_lba, root_size)]
    while todo:
        lba, size = todo.pop()
        for ident, child, length, flags in _directories(data, lba, size):
            if ident in (b"\x00", b"\x01") or not flags & 2:
                continue
            dirs[child] = (ident, lba)
            todo.append((child, length))
    assert len(lt) == len(dirs)
    assert lt[0] == (b"\x00", root_lba, 1)
    levels = [1]
    for number, (ident, ext_lba, parent) in enumerate(lt[1:], start=2):
        assert parent < number
        assert dirs[ext_lba][0] == ident
        assert lt[parent - 1][1] == dirs[ext_lba][1]        # the parent's extent
        levels.append(levels[parent - 1] + 1)
    keys = [(levels[i], lt[i][2], lt[i][0]) for i in range(1, len(lt))]
    assert keys == sorted(keys)
    assert max(levels) == (8 if deep["relocate"] else DEPTH + 1)


@pytest.mark.slow
def test_deep_linux(deep):
    """The Linux kernel's isofs: every file at its path in the Rock Ridge and Joliet
    views; the plain view shows the tree in place, or RR_MOVED."""
    from helpers.linuxvm import linux_views
    vm = deep["base"] / "vm"
    os.makedirs(vm, exist_ok=True)
    views = linux_views(vm, deep["image"])
    want = _digest(deep_files())
    for view in ("rr", "joliet"):
        got = {k: v.get("sha256") for k, v in views[view].items() if v["type"] == "f"}
        assert got == want, view
    assert views["rr"][DEEP_LINK[0]]["target"] == DEEP_LINK[1]
    assert not [k for k in views["rr"] if "rr_moved" in k]
    plain = {k for k, v in views["plain"].items() if v["type"] == "f"}
    assert any(k.startswith("rr_moved/") for k in plain) == deep["relocate"]
    if not deep["relocate"]:
        assert plain == set(want) | {DEEP_LINK[0]}      # the symlink as the empty file ISO 9660 records


# ------------------------------------------------------------------------------ Rock Ridge off

def test_no_rock_ridge_eight_levels_read_by_isovfy(tmp_path):
    """Eight levels (the root and seven more) is the most ECMA-119 6.8.2.1 allows."""
    need("isovfy", "isoinfo")
    image = str(tmp_path / "eight.iso")
    iso = ISO9660(image, rock_ridge=None)
    eight = "/".join(f"l{i}" for i in range(2, 9))          # levels 2..8
    iso.add(("file", f"{eight}/leaf.txt", b"leaf\n"))
    iso.finish()
    assert "No errors found" in out(["isovfy", image])
    assert run(["isoinfo", "-i", image, "-x", "/" + eight.upper() + "/LEAF.TXT;1"]).stdout == b"leaf\n"


@pytest.mark.parametrize("name,is_dir", [("a/b/c/d/e/f/g/h/file", False), ("a/b/c/d/e/f/g/h", True)])
def test_no_rock_ridge_nine_levels_refused(tmp_path, name, is_dir):
    image = tmp_path / "nine.iso"
    iso = ISO9660(str(image), rock_ridge=None)
    spec = ("dir", name) if is_dir else ("file", name, b"x")
    with pytest.raises(InvalidInputError, match=r"a/b/c/d/e/f/g/h is at level 9.*ECMA-119 6\.8\.2\.1"):
        iso.add(spec)
    iso.finish()
    assert image.exists()           # the refused entry is not in it, the rest is written
    # Rock Ridge turned off after add(): plan() refuses it.
    iso = ISO9660(str(tmp_path / "later.iso"))
    iso.add(spec)
    iso.rock_ridge = None
    with pytest.raises(InvalidInputError, match=r"6\.8\.2\.1"):
        iso.plan()


@pytest.mark.parametrize("spec,kind", [
    (("sym", "link", "target"), "symlink"),
    (("chr", "dev/null", (1, 3)), "character device"),
    (("blk", "dev/sda", (8, 0)), "block device"),
    (("fifo", "run/pipe"), "fifo"),
    (("sock", "run/sock"), "socket"),
])
def test_no_rock_ridge_special_files_refused(tmp_path, spec, kind):
    """Neither ISO 9660 nor Joliet can describe them: refused, never silently dropped."""
    image = tmp_path / "special.iso"
    iso = ISO9660(str(image), rock_ridge=None)
    with pytest.raises(InvalidInputError, match=rf"{spec[1]}: a {kind} cannot be recorded without Rock Ridge"):
        iso.add(spec)
    assert not image.exists()
    iso = ISO9660(str(tmp_path / "later.iso"))
    iso.add(spec)
    iso.rock_ridge = None
    with pytest.raises(InvalidInputError, match=f"a {kind} cannot be recorded without Rock Ridge"):
        iso.plan()


def _long_path(total: int) -> str:
    """A level-2 path of ``total`` bytes of identifiers: seven 31-character directories and
    a file whose identifier (NAME.EXT;1) fills the rest."""
    dirs = [chr(ord("A") + i) * 31 for i in range(7)]
    used = sum(map(len, dirs)) + len(dirs)          # with a '/' after each
    stem = "F" * (total - used - len(".TXT;1"))
    return "/".join(dirs + [stem + ".TXT"])


@pytest.mark.parametrize("level", [2, 3])
def test_no_rock_ridge_path_length(tmp_path, level):
    """ECMA-119 6.8.2.1: at levels 1 and 2 a path takes at most 255 bytes; 255 is read by
    isoinfo, 256 is refused at level 2 (level 3 has no such limit)."""
    need("isoinfo")
    for total in (255, 256):
        image = str(tmp_path / f"p{level}-{total}.iso")
        iso = ISO9660(image, rock_ridge=None, joliet=False, interchange_level=level)
        name = _long_path(total)
        iso.add(("file", name, b"far\n"))
        assert len(name) + len(";1") == total
        if level == 2 and total > 255:
            with pytest.raises(InvalidInputError, match=r"takes 256 bytes.*6\.8\.2\.1.*level 2"):
                iso.finish()
            continue
        iso.finish()
        assert run(["isoinfo", "-i", image, "-x", "/" + name + ";1"]).stdout == b"far\n"


# ------------------------------------------------------------------------------ rr_moved names

def test_root_rr_moved_in_place(tmp_path):
    """Without relocation there is no relocation directory: a root directory rr_moved is
    an ordinary one in every view (libarchive takes any root directory of that name for
    the relocation directory and never lists it, only what is in it)."""
    need("isoinfo", "bsdtar", "xorriso")
    image = str(tmp_path / "rrm.iso")
    iso = ISO9660(image)
    iso.add(("file", "rr_moved/sub/f.txt", b"mine\n"))
    iso.add(("file", "/".join(A[:12]) + "/deep.txt", b"deep\n"))
    iso.finish()
    assert "Directory listing of /rr_moved/sub/" in out(["isoinfo", "-R", "-l", "-i", image])
    assert "Directory listing of /rr_moved/sub/" in out(["isoinfo", "-J", "-l", "-i", image])
    assert "'/rr_moved/sub/f.txt'" in out(["xorriso", "-indev", image, "-find", "/", "-type", "f"])
    dest = tmp_path / "x"
    os.makedirs(dest)
    run(["bsdtar", "-xf", image, "-C", str(dest)])
    assert (dest / "rr_moved/sub/f.txt").read_bytes() == b"mine\n"


@pytest.mark.parametrize("spec", [("dir", "rr_moved"), ("file", "rr_moved/x", b"x"), ("dir", ".rr_moved"),
                                  ("file", ".rr_moved", b"x")])
def test_root_rr_moved_with_relocation_refused(tmp_path, spec):
    iso = ISO9660(str(tmp_path / "r.iso"), relocate_deep_dirs=True)
    iso.add(spec)
    iso.add(("file", "/".join(A[:12]) + "/deep.txt", b"deep\n"))
    with pytest.raises(InvalidInputError, match=r"rr_moved.*relocation directory.*relocate_deep_dirs"):
        iso.plan()
    # Nothing to relocate: no relocation directory, no clash.
    iso = ISO9660(str(tmp_path / "r2.iso"), relocate_deep_dirs=True)
    iso.add(spec)
    iso.finish()


def test_root_rr_moved_look_alikes_with_relocation(tmp_path):
    """Names that only map to the identifier RR_MOVED keep it; the relocation directory
    takes RR_MOV01 and its Rock Ridge name .rr_moved, and every reader tells them apart."""
    need("isoinfo", "bsdtar", "xorriso")
    image = str(tmp_path / "look.iso")
    iso = ISO9660(image, relocate_deep_dirs=True)
    iso.add(("file", "RR_Moved/inside.txt", b"look-alike\n"))
    iso.add(("file", "rr-moved", b"file\n"))
    iso.add(("file", "/".join(A[:12]) + "/deep.txt", b"deep\n"))
    iso.finish()
    plain = out(["isoinfo", "-l", "-i", image])
    assert "Directory listing of /RR_MOV01/A08/" in plain and "Directory listing of /RR_MOVED/" in plain
    joliet = out(["isoinfo", "-J", "-l", "-i", image])
    root = joliet.split("Directory listing of /\n")[1].split("\n\n")[0]
    assert [ln.split("]")[-1].strip() for ln in root.splitlines()[2:]] == ["RR_Moved", "a01", "rr-moved"]
    found = out(["xorriso", "-indev", image, "-find", "/", "-type", "f"])
    assert "'/RR_Moved/inside.txt'" in found and "'/rr-moved'" in found
    assert "'/" + "/".join(A[:12]) + "/deep.txt'" in found
    dest = tmp_path / "x"
    os.makedirs(dest)
    run(["bsdtar", "-xf", image, "-C", str(dest)])
    assert tree_digest(dest) == _digest({"RR_Moved/inside.txt": b"look-alike\n", "rr-moved": b"file\n",
                                         "/".join(A[:12]) + "/deep.txt": b"deep\n"})


# ------------------------------------------------------------------------------ sections

class SparseSource(DataSource):
    """A file of any size whose bytes are zeros but for a marker at each end (written
    sparse: the image stays small on disk)."""

    __slots__ = ("size_bytes",)

    def __init__(self, size_bytes: int) -> None:
        self.size_bytes = size_bytes

    def describe(self) -> str:
        return f"sparse source of {self.size_bytes} bytes"

    def write_to(self, out_fd: int, offset: int) -> None:
        os.pwrite(out_fd, b"HEAD", offset)
        os.pwrite(out_fd, b"TAIL", offset + self.size_bytes - 4)

    def read_all(self, limit: int = 1 << 20) -> bytes:
        raise AssertionError("not read")


SIZES = {"sect.bin": 0xFFFFF800, "over.bin": 0xFFFFF801, "max.bin": 0xFFFFFFFF}


@pytest.mark.parametrize("level", [1, 2, 3])
def test_one_section_up_to_4gib_less_one(tmp_path, level):
    """Levels 1 and 2 record a file in one extent (ECMA-119 10.1, 10.2); at level 3 a file
    of 0xFFFFF801..0xFFFFFFFF bytes is one extent too, as xorriso writes it.  Only 4 GiB
    and more (level 3) is split into sections of 0xFFFFF800 bytes."""
    need("isoinfo", "xorriso")
    image = str(tmp_path / f"l{level}.iso")
    iso = ISO9660(image, interchange_level=level)
    for name, size in SIZES.items():
        iso.add({"name": name, "mode": 0o100644, "data": SparseSource(size)})
    if level == 3:
        iso.add({"name": "big.bin", "mode": 0o100644, "data": SparseSource((1 << 32) + 1)})
    iso.finish()
    listing = out(["isoinfo", "-l", "-i", image])
    # (size, identifier) of every record; isoinfo prints a multi-extent record's flags as
    # "FFFF" without the closing bracket.
    records = re.findall(r"^\S+\s+\d+\s+\d+\s+\d+\s+(\d+) .*?\[\s*\d+ [0-9A-F]+\]?\s+(\S+)\s*$", listing,
                         re.M)
    for name, size in SIZES.items():
        ident = name.upper().replace(".BIN", ".BIN;1")
        assert [int(s) for s, n in records if n == ident] == [size], (name, records)
    if level == 3:
        assert [int(s) for s, n in records if n == "BIG.BIN;1"] == [0xFFFFF800, (1 << 32) + 1 - 0xFFFFF800]
    sizes = out(["xorriso", "-indev", image, "-find", "/", "-type", "f", "-exec", "lsdl"])
    for name, size in SIZES.items():
        assert re.search(rf"\s{size}\s.*'/{name}'", sizes), sizes
    # The data of the one-section files is where their records say: marker at both ends.
    with open(image, "rb") as f:
        for name, size in SIZES.items():
            lba = int(re.search(rf"\[\s*(\d+) 00\]\s+{name.upper()};1", listing).group(1))
            f.seek(lba * SECTOR)
            assert f.read(4) == b"HEAD"
            f.seek(lba * SECTOR + size - 4)
            assert f.read(4) == b"TAIL"


# ------------------------------------------------------------------------------ names at limits

def _within(ident: bytes, is_dir: bool, level: int) -> bool:
    """ECMA-119 7.5, 7.6 and 10: d-characters; level 1: 8.3 files, 8-character
    directories; levels 2 and 3: name + extension at most 30 characters (the separators
    '.' and ';1' not counted), directories at most 31."""
    text = ident.decode("ascii")
    if is_dir:
        return 0 < len(text) <= (8 if level == 1 else 31) and set(text) <= iso_names.D_CHARACTERS
    body, sep, version = text.partition(";")
    stem, dot, ext = body.partition(".")
    if (sep, version, dot) != (";", "1", ".") or not (stem or ext) or not set(stem + ext) <= iso_names.D_CHARACTERS:
        return False
    return (len(stem) <= 8 and len(ext) <= 3) if level == 1 else len(stem) + len(ext) <= 30


NAME_PIECES = st.sampled_from(list("aAbBzZ09._-~ é日") + ["longfilename", ".tar.gz", "x" * 40, "." + "b" * 29,
                                                          "." + "c" * 30, "d" * 28, "." + "e" * 8])
# Whole names at the limits: name + extension of 30 (level 2/3) or 8.3 (level 1) characters.
LIMIT_NAMES = st.sampled_from(["a." + "b" * 29, "ab." + "c" * 28, "d" * 30, "e" * 31, "abcdefgh.ijk", "abcdefgh"])
BASE_NAMES = st.one_of(LIMIT_NAMES, st.lists(NAME_PIECES, min_size=1, max_size=6).map("".join))


def _look_alikes(name: str) -> st.SearchStrategy[str]:
    """Names that map to the same d-characters as ``name``: they collide."""
    return st.sampled_from([name, name.upper(), name.swapcase(), name.replace("_", "-"), name.replace("_", " ")])


COLLIDING = st.lists(BASE_NAMES, min_size=1, max_size=12).flatmap(
    lambda bases: st.lists(st.tuples(st.sampled_from(bases).flatmap(_look_alikes), st.booleans()),
                           min_size=1, max_size=60))


@settings(max_examples=150, deadline=None)
@given(children=COLLIDING, level=st.sampled_from([1, 2, 3]), seed=st.randoms())
@example(children=[("a." + "b" * 29, False), ("A." + "b" * 29, False)], level=2, seed=random.Random(0))
def test_generated_names_respect_their_level(children, level, seed):
    kids = {}
    for name, is_dir in children:
        name = name.strip("/") or "_"
        if name not in (".", ".."):
            kids.setdefault(name, is_dir)
    entries = [(name, name, is_dir, None) for name, is_dir in kids.items()]
    result = iso_names.assign_iso_names(entries, level)
    for name, _n, is_dir, _o in entries:
        assert _within(result[name], is_dir, level), (name, result[name], level)
    keys = [iso_names.clash_key(v) for v in result.values()]
    assert len(set(keys)) == len(keys)
    shuffled = list(entries)
    seed.shuffle(shuffled)
    assert iso_names.assign_iso_names(shuffled, level) == result


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(children=COLLIDING, level=st.sampled_from([1, 2, 3]))
def test_generated_names_read_by_isoinfo_and_xorriso(tmp_path, children, level):
    """The names of an image (no Rock Ridge, no Joliet: the ISO 9660 names are all there
    is) as isoinfo and xorriso list them: at their level's limits, every file there."""
    need("isoinfo", "xorriso")
    kids = {}
    for name, is_dir in children:
        name = name.replace("/", "_").strip(".") or "_"
        kids.setdefault(name, is_dir)
    image = str(tmp_path / "names.iso")
    iso = ISO9660(image, rock_ridge=None, joliet=False, interchange_level=level)
    for i, (name, is_dir) in enumerate(sorted(kids.items())):
        iso.add(("dir", f"d/{name}") if is_dir else ("file", f"d/{name}", f"{i}\n".encode()))
    iso.finish()
    listing = out(["isoinfo", "-l", "-i", image])
    body = re.search(r"Directory listing of /D/\n(.*?)(?:\n\n|\Z)", listing, re.S).group(1)
    idents = []
    for line in body.splitlines()[2:]:
        is_dir = line.startswith("d")
        ident = line.split("]")[-1].strip()
        idents.append(ident)
        assert _within(ident.encode(), is_dir, level), (ident, level)
    assert len(idents) == len(kids) and len({iso_names.clash_key(i.encode()) for i in idents}) == len(kids)
    found = out(["xorriso", "-rockridge", "off", "-joliet", "off", "-indev", image, "-find", "/", "-type", "f"])
    assert len(re.findall(r"^'/D/", found, re.M)) == sum(1 for d in kids.values() if not d), found


@settings(max_examples=100, deadline=None)
@given(names=st.lists(st.lists(st.sampled_from(list("ab.~_ é日") + ["\U0001F600", "x" * 30, ".txt"]),
                              min_size=1, max_size=8).map("".join), min_size=1, max_size=40, unique=True),
       seed=st.randoms())
def test_joliet_names_fit_and_differ(names, seed):
    """Joliet names: at most 64 UCS-2 units, unique, the same whatever the order of add()."""
    entries = [(n, n, i % 3 == 0) for i, n in enumerate(names) if n not in (".", "..") and "/" not in n]
    result = iso_names.assign_joliet_names(entries)
    values = list(result.values())
    assert len(set(values)) == len(values)
    assert all(0 < len(v) <= 2 * iso_names.JOLIET_MAX_CHARS for v in values)
    shuffled = list(entries)
    seed.shuffle(shuffled)
    assert iso_names.assign_joliet_names(shuffled) == result


def test_joliet_long_names_read_by_isoinfo_and_7zip(tmp_path):
    """Names over 64 characters, colliding once shortened: 64 units, distinct, read by
    isoinfo's and 7-Zip's Joliet readers with their bytes."""
    need("isoinfo", "7zz")
    image = str(tmp_path / "j.iso")
    iso = ISO9660(image)
    names = [("n" * 70) + f"{i}.txt" for i in range(5)] + ["m" * 64, "m" * 65]
    for i, name in enumerate(names):
        iso.add(("file", f"j/{name}", f"{i}\n".encode()))
    iso.finish()
    listing = out(["isoinfo", "-J", "-l", "-i", image])
    got = [ln.split("]")[-1].strip() for ln in listing.split("Directory listing of /j/\n")[1].splitlines()[2:]
           if ln.strip()]
    assert len(got) == len(names) == len(set(got)) and all(len(n) <= 64 for n in got)
    assert all(n.endswith(".txt") for n in got if n.startswith("n"))
    dest = tmp_path / "7z"
    run(["7zz", "x", "-tiso", image, f"-o{dest}"])
    contents = sorted((dest / "j" / n).read_bytes() for n in os.listdir(dest / "j"))
    assert contents == sorted(f"{i}\n".encode() for i in range(len(names)))


def test_name_component_over_255_bytes_refused(tmp_path):
    """Rock Ridge NM could hold it (rockridge.py splits it over NM entries), Linux
    (NAME_MAX) and most readers cannot: add() refuses it (the file-info check every writer
    shares); 255 bytes is read back by xorriso."""
    need("xorriso")
    image = str(tmp_path / "n.iso")
    iso = ISO9660(image)
    name = "é" * 127 + "x"
    iso.add(("file", "d/" + name, b"fits: 255 bytes\n"))
    with pytest.raises(InvalidInputError, match="255"):
        iso.add(("file", "d/" + "é" * 128, b"256 bytes\n"))
    iso.finish()
    assert f"'/d/{name}'" in out(["xorriso", "-indev", image, "-find", "/d", "-type", "f"])


# ------------------------------------------------------------------------------ El Torito

def hdd_image(partitions: list[tuple[int, int, int]], sectors: int = 64, signature: bool = True) -> bytes:
    """A disk image whose MBR holds ``partitions`` (type, first LBA, sector count)."""
    mbr = bytearray(512)
    for i, (ptype, first, count) in enumerate(partitions):
        base = 446 + 16 * i
        mbr[base + 4] = ptype
        struct.pack_into("<II", mbr, base + 8, first, count)
    if signature:
        mbr[510:512] = b"\x55\xaa"
    return bytes(mbr) + bytes((sectors - 1) * 512)


@pytest.mark.parametrize("media,size", [(EMU_FLOPPY12, 1_228_800), (EMU_FLOPPY144, 1_474_560),
                                        (EMU_FLOPPY288, 2_949_120)])
def test_floppy_emulation_sizes(tmp_path, media, size):
    """A floppy image is exactly its diskette's size (El Torito 2.2): given as data, checked
    by add_boot_catalog_entry(); given by path, by plan()."""
    need("xorriso")
    iso = ISO9660(str(tmp_path / "bad.iso"))
    for wrong in (size - 1, size + 512):
        with pytest.raises(InvalidInputError, match=f"exactly {size} bytes.*found {wrong}"):
            iso.add_boot_catalog_entry(BOOT_X86, data=bytes(wrong), media_type=media)
    iso.add(("file", "floppy.img", bytes(size - 512)))
    iso.add_boot_catalog_entry(BOOT_X86, path="floppy.img", media_type=media)
    with pytest.raises(InvalidInputError, match=f"floppy.img.*exactly {size} bytes"):
        iso.plan()
    image = str(tmp_path / "ok.iso")
    iso = ISO9660(image)
    iso.add(("file", "floppy.img", bytes(size)))
    iso.add_boot_catalog_entry(BOOT_X86, path="floppy.img", media_type=media)
    iso.add_boot_catalog_entry(BOOT_X86, data=bytes(size), media_type=media)
    iso.finish()
    text = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    kind = {EMU_FLOPPY12: "fd1.2", EMU_FLOPPY144: "fd1.4", EMU_FLOPPY288: "fd2.8"}[media]
    assert len(re.findall(rf"El Torito boot img :\s+\d\s+BIOS\s+y\s+{re.escape(kind)}\s", text)) == 2, text


@pytest.mark.parametrize("image,error", [
    (bytes(64 * 512), "signature 55 AA"),
    (b"\x55\xaa" * 100, "signature 55 AA"),
    (hdd_image([]), "exactly one partition.*found 0"),
    (hdd_image([(0x83, 1, 20), (0x0C, 21, 20)]), "exactly one partition.*found 2"),
    (hdd_image([(0x83, 1, 64)]), "inside the image's 64 sectors"),
    (hdd_image([(0x83, 0, 10)]), "after its master boot record"),
])
def test_hard_disk_emulation_needs_one_partition(tmp_path, image, error):
    """El Torito 1.0 section 3.3: a hard-disk image starts with an MBR holding exactly one
    partition (libisofs checks the same)."""
    iso = ISO9660(str(tmp_path / "e.iso"))
    with pytest.raises(InvalidInputError, match=error):
        iso.add_boot_catalog_entry(BOOT_X86, data=image, media_type=EMU_HDD)
    iso.add(("file", "hdd.img", image))
    iso.add_boot_catalog_entry(BOOT_X86, path="hdd.img", media_type=EMU_HDD)
    with pytest.raises(InvalidInputError, match="hdd.img.*" + error):
        iso.plan()


def test_hard_disk_emulation_system_type(tmp_path):
    """The entry's System Type is the partition's type (El Torito 2.2), taken from the MBR
    when not given; another one is an error.  xorriso and dumpet read it back."""
    need("xorriso", "dumpet")
    disk = hdd_image([(0x0C, 1, 63)])
    iso = ISO9660(str(tmp_path / "e.iso"))
    with pytest.raises(InvalidInputError, match="system_type 0x83 must be the partition's type 0x0c"):
        iso.add_boot_catalog_entry(BOOT_X86, data=disk, media_type=EMU_HDD, system_type=0x83)
    image = str(tmp_path / "hd.iso")
    iso = ISO9660(image)
    iso.add(("file", "boot/hdd.img", disk))
    iso.add_boot_catalog_entry(BOOT_X86, path="boot/hdd.img", media_type=EMU_HDD)
    iso.add_boot_catalog_entry(BOOT_X86, data=disk, media_type=EMU_HDD, system_type=0x0C)
    iso.finish()
    text = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    assert len(re.findall(r"El Torito boot img :\s+\d\s+BIOS\s+y\s+hd\s+0x0000\s+0x0c\s", text)) == 2, text
    assert out(["dumpet", "-i", image]).count("System type: 12 (0x0c)") == 2


# ------------------------------------------------------------------------------ labels

@pytest.mark.parametrize("label,joliet", [
    ("My Live 2026", "My Live 2026"),
    ("Café Live", "Café Live"),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "ABCDEFGHIJKLMNOP"),     # 32 bytes: the PVD full
    ("Live USB 20.04 amd64", "Live USB 20.04 a"),
])
def test_labels_as_xorriso_records_them(tmp_path, label, joliet):
    """The PVD records the label as given (xorriso's -volid does), Joliet its first 16
    characters; isoinfo, blkid (which joins the two) and GRUB read the whole label."""
    need("isoinfo", "blkid", "grub-probe")
    image = str(tmp_path / "l.iso")
    iso = ISO9660(image, volume_label=label)
    iso.add(("file", "a.txt", b"a\n"))
    iso.finish()
    assert (iso.pvd_label, iso.joliet_label) == (label, joliet)
    data = open(image, "rb").read(19 * SECTOR)
    assert data[16 * SECTOR + 40:16 * SECTOR + 72] == label.encode().ljust(32)
    assert data[17 * SECTOR + 40:17 * SECTOR + 72].decode("utf-16-be").rstrip() == joliet
    assert f"Volume id: {label}\n" in out(["isoinfo", "-d", "-i", image])
    assert out(["blkid", "-p", "-s", "LABEL", "-o", "value", image]).strip() == label
    assert out(["grub-probe", "-t", "fs_label", "-d", image]).strip() == label


@pytest.mark.parametrize("label,error", [
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "33 bytes"),
    ("é" * 17, "34 bytes"),
    ("two\nlines", "control character"),
    ("", "non-empty"),
])
def test_labels_refused(tmp_path, label, error):
    with pytest.raises(InvalidInputError, match=error):
        ISO9660(str(tmp_path / "l.iso"), volume_label=label)
    iso = ISO9660(str(tmp_path / "l.iso"))
    with pytest.raises(InvalidInputError, match=error):
        iso.volume_label = label
    assert iso.volume_label == "CDROM"


def test_labels_without_joliet(tmp_path):
    iso = ISO9660(str(tmp_path / "l.iso"), volume_label="No Joliet", joliet=False)
    assert (iso.pvd_label, iso.joliet_label) == ("No Joliet", None)


def test_hybrid_passes_relocation_on(tmp_path):
    from sysexport import ISO9660Hybrid
    h = ISO9660Hybrid(str(tmp_path / "h.img"), relocate_deep_dirs=True)
    assert h.iso.relocate_deep_dirs is True and h.relocate_deep_dirs is True
    h.relocate_deep_dirs = False
    assert h.iso.relocate_deep_dirs is False
    with pytest.raises(InvalidInputError, match="relocate_deep_dirs"):
        h.relocate_deep_dirs = "yes"
