"""Every ```python block of docs/guide.md runs as written, and its output files are valid.

A block may be preceded by a marker the rendered page does not show::

    <!-- test_docs: given=NAME check=NAME -->

``given`` names a function of :data:`GIVENS` that puts input files made by another tool
(xorriso) into the block's empty directory first; ``check`` names a function of
:data:`CHECKS` that, after the block ran, asks readers nobody here wrote (isoinfo,
xorriso, bsdtar, dumpet, sgdisk, pycdlib) whether the images the block wrote hold what
the block says they hold, and compares what the block printed with what those readers
see.  Every block of the section "Coming from pycdlib" must name a check.
"""
from __future__ import annotations

import ast
import io
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import need, out, run, tree_digest
from helpers.namespaces import bsdtar_paths, isoinfo_paths, pycdlib_files, xorriso_paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "guide.md")
CHECKED_SECTION = "Coming from pycdlib"
PYCDLIB_EXAMPLES = ("A new ISO", "Opening an existing ISO", "Walking the file system", "Extracting files",
                    "El Torito", "Rock Ridge", "Joliet", "Modifying a file in place", "Hard links",
                    "Consistency", "A hybrid bootable ISO")
"""The subsections of "Coming from pycdlib": one per example of pycdlib's guide."""

_BLOCK = re.compile(r"(?:<!-- test_docs: (?P<marker>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)


@dataclass(frozen=True)
class Block:
    """One ```python block: its code, the section (## heading) and subsection (###) it is
    in, and the names its marker gives."""

    code: str
    section: str
    subsection: str
    given: tuple[str, ...] = ()
    check: str | None = None


def parse_blocks(text: str) -> list[Block]:
    """The python blocks of ``text`` in order, each with its headings and marker."""
    blocks = []
    for m in _BLOCK.finditer(text):
        before = text[:m.start()]
        sections = re.findall(r"^## (.+)$", before, re.M)
        subsections = re.findall(r"^#{2,3} (.+)$", before, re.M)
        given: tuple[str, ...] = ()
        check = None
        for word in (m.group("marker") or "").split():
            key, _, value = word.partition("=")
            if key == "given":
                given = tuple(value.split(","))
            elif key == "check":
                check = value
            else:
                raise AssertionError(f"guide.md: unknown test_docs marker {word!r}")
        sub = subsections[-1] if subsections and subsections[-1] != (sections[-1] if sections else "") else ""
        blocks.append(Block(m.group("code"), sections[-1] if sections else "", sub, given, check))
    return blocks


BLOCKS = parse_blocks(Path(DOCS).read_text(encoding="utf-8"))

GIVENS: dict[str, Callable[[Path], None]] = {}
CHECKS: dict[str, Callable[[Path, str], None]] = {}


def given(name: str) -> Callable[[Callable[[Path], None]], Callable[[Path], None]]:
    def register(fn: Callable[[Path], None]) -> Callable[[Path], None]:
        GIVENS[name] = fn
        return fn
    return register


def check(name: str) -> Callable[[Callable[[Path, str], None]], Callable[[Path, str], None]]:
    def register(fn: Callable[[Path, str], None]) -> Callable[[Path, str], None]:
        CHECKS[name] = fn
        return fn
    return register


def run_block(block: Block, cwd: Path) -> str:
    """Make the block's given files in ``cwd``, run it there; its standard output.  The
    host files a block names (Debian's isolinux) must be installed (tools/test does it)."""
    need(*sorted(set(re.findall(r'"(/usr/lib/[^"]+)"', block.code))))
    for name in block.given:
        GIVENS[name](cwd)
    p = subprocess.run([sys.executable, "-c", block.code], cwd=cwd, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_guide_has_examples():
    assert len(BLOCKS) >= 5


def test_markers_name_known_functions():
    """Every given and check a marker names exists, and every check is used by a block."""
    for b in BLOCKS:
        assert all(g in GIVENS for g in b.given), b.given
        assert b.check is None or b.check in CHECKS, b.check
    assert set(CHECKS) == {b.check for b in BLOCKS if b.check}


def test_pycdlib_section_is_complete_and_checked():
    """One subsection per example of pycdlib's guide, each with a block a reader checks."""
    ours = [b for b in BLOCKS if b.section == CHECKED_SECTION]
    assert {b.subsection for b in ours} == set(PYCDLIB_EXAMPLES)
    unchecked = [b.subsection for b in ours if b.check is None]
    assert not unchecked, f"blocks of {CHECKED_SECTION!r} without a check: {unchecked}"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_guide_example_runs(tmp_path, sde, index):
    block = BLOCKS[index]
    printed = run_block(block, tmp_path)
    for name in os.listdir(tmp_path):
        path = str(tmp_path / name)
        if name.endswith((".img", ".iso")) and name not in ("esp.img", "bad.img", "initrd.img"):
            need("blkid")
            info = out(["blkid", "-p", "-o", "export", path], ok_codes=(0, 2))
            assert "TYPE=" in info or "PTTYPE=" in info, (name, info)
    assert not os.path.exists(tmp_path / "bad.img")
    if block.check is not None:
        CHECKS[block.check](tmp_path, printed)


# ---------------------------------------------------------------------------- readers' answers

def isoinfo_text(image: Path, *flags: str) -> str:
    need("isoinfo")
    return run(["isoinfo", *flags, "-i", str(image)]).stdout.decode("latin-1")


def isoinfo_records(image: Path, *flags: str) -> dict[str, tuple[int, int]]:
    """{path: (extent LBA, size)} of every file ``isoinfo -l`` lists (with ``flags``: -R, -J)."""
    records: dict[str, tuple[int, int]] = {}
    directory = "/"
    for line in isoinfo_text(image, "-l", *flags).splitlines():
        if line.startswith("Directory listing of "):
            directory = line[len("Directory listing of "):].strip()
            continue
        m = re.match(r"^([-dlrwxsStT]{10})\s.*?\s(\d+)\s+\w{3}\s+\d+\s+\d{4}\s+\[\s*(\d+)\s+\d+\]\s+(.*?)\s*$", line)
        if m and m.group(4) not in (".", ".."):
            records[directory.rstrip("/") + "/" + m.group(4)] = (int(m.group(3)), int(m.group(2)))
    return records


def isoinfo_read(image: Path, path: str, *flags: str) -> bytes:
    need("isoinfo")
    return run(["isoinfo", *flags, "-i", str(image), "-x", path]).stdout


def dumpet_entries(image: Path) -> list[dict[str, str]]:
    """dumpet's catalog entries: {"emulation", "sectors", "lba", "bootable"} each."""
    need("dumpet")
    text = out(["dumpet", "-i", str(image)])
    entries = []
    for chunk in re.split(r"\n(?=Boot Catalog (?:Default|Section) Entry)", text)[1:]:
        entries.append({
            "emulation": re.search(r"Boot Media emulation type: (.+)", chunk).group(1).strip(),
            "sectors": re.search(r"Load Sectors: (\d+)", chunk).group(1),
            "lba": re.search(r"Load LBA: (\d+)", chunk).group(1),
            "bootable": "Entry is bootable" in chunk and "yes" or "no",
        })
    return entries


def image_bytes(image: Path, offset: int, size: int) -> bytes:
    with open(image, "rb") as f:
        f.seek(offset)
        return f.read(size)


def pycdlib_open(image: Path):
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    return iso


def pycdlib_read(iso, **path: str) -> bytes:
    buf = io.BytesIO()
    iso.get_file_from_iso_fp(buf, **path)
    return buf.getvalue()


# ---------------------------------------------------------------------------- givens

@given("xorriso.iso")
def xorriso_distro_iso(cwd: Path) -> None:
    """distro.iso, made by xorriso from a small tree (Rock Ridge and Joliet): a
    subdirectory, an executable, a 3000-byte binary, a symlink (Rock Ridge only)."""
    need("xorriso")
    tree = cwd / "distro-tree"
    (tree / "docs").mkdir(parents=True)
    (tree / "bin").mkdir()
    (tree / "docs" / "readme.txt").write_bytes(b"read me\n")
    (tree / "docs" / "blob.bin").write_bytes(bytes(range(256)) * 11 + b"end" * 64)
    (tree / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (tree / "bin" / "tool").chmod(0o755)
    os.symlink("docs/readme.txt", tree / "latest")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-V", "DISTRO", "-o", str(cwd / "distro.iso"), str(tree)])
    for p in sorted(tree.rglob("*"), reverse=True):          # only the image is given
        p.unlink() if p.is_symlink() or p.is_file() else p.rmdir()
    tree.rmdir()


# ---------------------------------------------------------------------------- checks

@check("new_basic")
def check_new_basic(cwd: Path, printed: str) -> None:
    """new.iso: interchange level 1, no extensions, FOO.;1 with its bytes and DIR1."""
    image = cwd / "new.iso"
    info = isoinfo_text(image, "-d")
    assert "NO Joliet present" in info and "NO Rock Ridge present" in info, info
    records = isoinfo_records(image)
    assert set(records) == {"/FOO.;1", "/DIR1", "/RELEASE_.TEX;1"}, records
    for path in records:                                          # ECMA-119 10.1: 8.3 d-characters
        assert re.fullmatch(r"/[A-Z0-9_]{1,8}(\.[A-Z0-9_]{0,3};1)?", path), path
    assert isoinfo_read(image, "/FOO.;1") == b"foo\n"
    assert isoinfo_read(image, "/RELEASE_.TEX;1") == b"v1\n"
    iso = pycdlib_open(image)
    try:
        assert not iso.has_joliet() and not iso.has_rock_ridge()
        assert iso.get_record(iso_path="/DIR1").is_dir()
        assert pycdlib_read(iso, iso_path="/FOO.;1") == b"foo\n"
    finally:
        iso.close()
    need("isovfy")
    assert "No errors found" in out(["isovfy", str(image)])


def _printed_listings(printed: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = printed.splitlines()
    views = ast.literal_eval(lines[0])
    listings = {}
    for line in lines[1:]:
        name, _, listing = line.partition(" ")
        listings[name] = ast.literal_eval(listing)
    return views, listings


@check("opened_listing")
def check_opened_listing(cwd: Path, printed: str) -> None:
    """What the block listed of each view of xorriso's image is what isoinfo lists there."""
    views, listings = _printed_listings(printed)
    assert views == ["rr", "joliet", "iso9660"]
    reader_view = {"rr": "rock_ridge", "joliet": "joliet", "iso9660": "iso9660"}
    for view in views:
        top = {p for p in isoinfo_paths(str(cwd / "distro.iso"), reader_view[view]) if "/" not in p}
        assert sorted(listings[view]) == sorted(top), (view, listings[view], top)
    assert "latest" in listings["rr"] and "latest" not in listings["joliet"]     # Rock Ridge's symlink


@check("walked")
def check_walked(cwd: Path, printed: str) -> None:
    """Every path the walk printed is one xorriso finds, with pycdlib's size or target."""
    walked = {}
    for line in printed.splitlines():
        kind, size, path, *target = line.split()
        walked[path] = (kind, int(size), target[0] if target else None)
    assert set(walked) == {"/"} | {"/" + p for p in xorriso_paths(str(cwd / "distro.iso"))}
    iso = pycdlib_open(cwd / "distro.iso")
    try:
        for path, (kind, size, target) in walked.items():
            rec = iso.get_record(rr_path=path)
            if kind == "dir":
                assert rec.is_dir(), path
            elif kind == "symlink":
                assert rec.rock_ridge.symlink_path().decode() == target, path
            else:
                assert kind == "file" and rec.get_data_length() == size, (path, size)
    finally:
        iso.close()


@check("extracted")
def check_extracted(cwd: Path, printed: str) -> None:
    """The tree the block extracted is what bsdtar extracts; the streamed copy and the
    ISO 9660 names' copy hold the bytes bsdtar and isoinfo read."""
    need("bsdtar")
    theirs = cwd / "by-bsdtar"
    theirs.mkdir()
    run(["bsdtar", "-xf", str(cwd / "distro.iso"), "-C", str(theirs)])
    assert tree_digest(cwd / "distro") == tree_digest(theirs)
    assert os.readlink(cwd / "distro" / "latest") == os.readlink(theirs / "latest")
    assert os.stat(cwd / "distro" / "bin" / "tool").st_mode & 0o777 == 0o755
    assert (cwd / "readme.copy").read_bytes() == (theirs / "docs" / "readme.txt").read_bytes()
    assert (cwd / "plain" / "DOCS" / "BLOB.BIN").read_bytes() == isoinfo_read(cwd / "distro.iso",
                                                                             "/DOCS/BLOB.BIN;1")
    assert int(printed.split()[0]) == len(bsdtar_paths(str(cwd / "distro.iso"))) + 1     # and "." itself


@check("eltorito")
def check_eltorito(cwd: Path, printed: str) -> None:
    """One bootable no-emulation x86 entry whose image is BOOT.;1's extent; the catalog
    is BOOT.CAT;1."""
    image = cwd / "eltorito.iso"
    records = isoinfo_records(image)
    assert set(records) == {"/BOOT.;1", "/BOOT.CAT;1"}, records
    (entry,) = dumpet_entries(image)
    assert entry == {"emulation": "no emulation", "sectors": "1", "lba": str(records["/BOOT.;1"][0]),
                     "bootable": "yes"}, entry
    need("xorriso")
    report = out(["xorriso", "-indev", str(image), "-report_el_torito", "plain"])
    assert re.search(r"El Torito catalog\s*:\s*%d\s" % records["/BOOT.CAT;1"][0], report), report
    assert re.search(r"El Torito boot img\s*:\s*1\s+BIOS\s+y\s+none", report), report
    assert re.search(r"El Torito img path\s*:\s*1\s+/BOOT\s*$", report, re.M), report
    assert image_bytes(image, records["/BOOT.;1"][0] * 2048, 5) == b"boot\n"
    iso = pycdlib_open(image)
    try:
        initial = iso.eltorito_boot_catalog.initial_entry
        assert (initial.load_rba, initial.boot_media_type, initial.boot_indicator) == (records["/BOOT.;1"][0], 0,
                                                                                      0x88)
    finally:
        iso.close()


@check("rock_ridge")
def check_rock_ridge(cwd: Path, printed: str) -> None:
    """rr.iso: Rock Ridge 1.09 names foo and dir1 over FOO.;1 and DIR1, no Joliet."""
    image = cwd / "rr.iso"
    info = isoinfo_text(image, "-d")
    assert "Rock Ridge signatures version 1 found" in info and "NO Joliet present" in info, info
    assert isoinfo_paths(str(image), "iso9660") == {"FOO", "DIR1"}
    listing = isoinfo_text(image, "-l", "-R")
    assert re.search(r"^-rw-r--r-- .* foo\s*$", listing, re.M) and re.search(r"^drwxr-xr-x .* dir1\s*$", listing,
                                                                             re.M), listing
    assert bsdtar_paths(str(image)) == {"foo", "dir1"}
    iso = pycdlib_open(image)
    try:
        assert iso.has_rock_ridge() and iso.rock_ridge == "1.09"
        assert iso.get_record(rr_path="/foo").rock_ridge.rr_version == "1.09"
        assert iso.get_record(rr_path="/foo").extent_location() == iso.get_record(iso_path="/FOO.;1").extent_location()
        assert pycdlib_read(iso, rr_path="/foo") == b"foo\n"
    finally:
        iso.close()


@check("joliet")
def check_joliet(cwd: Path, printed: str) -> None:
    """joliet.iso: a Joliet (UCS-2 level 3) tree foo, dir1 beside FOO.;1, DIR1; no Rock Ridge."""
    image = cwd / "joliet.iso"
    info = isoinfo_text(image, "-d")
    assert "Joliet with UCS level 3 found" in info and "NO Rock Ridge present" in info, info
    assert isoinfo_paths(str(image), "joliet") == {"foo", "dir1"}
    assert isoinfo_paths(str(image), "iso9660") == {"FOO", "DIR1"}
    assert isoinfo_read(image, "/foo", "-J") == b"foo\n"
    iso = pycdlib_open(image)
    try:
        assert iso.has_joliet() and not iso.has_rock_ridge()
        assert pycdlib_read(iso, joliet_path="/foo") == b"foo\n"
        assert iso.get_record(joliet_path="/dir1").is_dir()
    finally:
        iso.close()


@check("modified")
def check_modified(cwd: Path, printed: str) -> None:
    """Every reader, in every tree, sees the new bytes and size; the block said which
    records changed."""
    image = cwd / "foo.iso"
    new = b"bazzzzzz\n"
    need("bsdtar")
    assert ast.literal_eval(printed.strip()) == ("rr:/foo", "joliet:/foo")    # Rock Ridge's is the ISO record
    assert run(["bsdtar", "-xOf", str(image), "foo"]).stdout == new
    assert isoinfo_read(image, "/FOO.;1") == new
    assert isoinfo_read(image, "/foo", "-J") == new
    for flags in ((), ("-R",), ("-J",)):
        assert [size for _lba, size in isoinfo_records(image, *flags).values()] == [len(new)], flags
    for kind in ("iso_path", "joliet_path", "rr_path"):
        files = pycdlib_files(str(image), kind)
        assert list(files.values()) == [new], (kind, files)


@check("hard_links")
def check_hard_links(cwd: Path, printed: str) -> None:
    """FOO.;1 and BAR.;1 name one extent; Joliet names neither; the boot image is in no
    directory, only El Torito's entry names its bytes."""
    image = cwd / "links.iso"
    plain = isoinfo_records(image)
    joliet = isoinfo_records(image, "-J")
    assert set(plain) == {"/FOO.;1", "/BAR.;1", "/BOOT.CATALOG;1"}, plain
    assert set(joliet) == {"/boot.catalog"}, joliet
    assert plain["/FOO.;1"] == plain["/BAR.;1"]
    (entry,) = dumpet_entries(image)
    lba = int(entry["lba"])
    assert lba not in {lba for lba, _size in [*plain.values(), *joliet.values()]}
    assert image_bytes(image, lba * 2048, 2048) == b"\xeb\xfe" + bytes(2046)
    assert entry["sectors"] == "4"
    iso = pycdlib_open(image)
    try:
        assert iso.get_record(iso_path="/BAR.;1").extent_location() == plain["/FOO.;1"][0]
        assert pycdlib_read(iso, iso_path="/BAR.;1") == b"foo\n"
        assert iso.eltorito_boot_catalog.initial_entry.load_rba == lba
    finally:
        iso.close()
    assert set(pycdlib_files(str(image), "joliet_path")) == {"boot.catalog"}


def _check_record(image: Path, line: str) -> None:
    """A printed ``data OFFSET SIZE record NAME OFFSET BYTES`` line against the image:
    isoinfo's extent and size of NAME, and the directory record's own bytes there
    (ECMA-119 9.1: length, extent LBA, data length, identifier)."""
    _, data_offset, size, _, name, record_offset, record_bytes = line.split()
    lba, iso_size = isoinfo_records(image)["/" + name]
    assert (lba * 2048, iso_size) == (int(data_offset), int(size)), (line, lba, iso_size)
    record = image_bytes(image, int(record_offset), int(record_bytes))
    assert record[0] == int(record_bytes)
    assert (struct.unpack_from("<I", record, 2)[0], struct.unpack_from("<I", record, 10)[0]) == (lba, iso_size)
    assert record[33:33 + record[32]].decode() == name
    iso = pycdlib_open(image)
    try:
        assert iso.get_record(iso_path="/" + name).extent_location() == lba
    finally:
        iso.close()


@check("consistency")
def check_consistency(cwd: Path, printed: str) -> None:
    """What lookup() told after plan() is where isoinfo, pycdlib and the record's bytes
    put FOO.;1 in each written image; the add() after plan() was refused."""
    lines = printed.splitlines()
    data = [line for line in lines if line.startswith("data ")]
    assert len(data) == 2 and any(line.startswith("refused: ") for line in lines), printed
    _check_record(cwd / "consistent.iso", data[0])
    _check_record(cwd / "with-dir1.iso", data[1])
    assert isoinfo_paths(str(cwd / "consistent.iso"), "iso9660") == {"FOO"}
    assert isoinfo_paths(str(cwd / "with-dir1.iso"), "iso9660") == {"FOO", "DIR1"}


ISOHDPFX = "/usr/lib/ISOLINUX/isohdpfx.bin"


@check("isohybrid")
def check_isohybrid(cwd: Path, printed: str) -> None:
    """The MBR is syslinux's isohdpfx code naming isolinux.bin's LBA (xorriso, pycdlib
    and the bytes agree), El Torito boots the same file with a boot info table, and the
    GPT is valid."""
    image = cwd / "hybrid.iso"
    lba, size = isoinfo_records(image)["/ISOLINUX/ISOLINUX.BIN;1"]
    mbr = image_bytes(image, 0, 512)
    with open(ISOHDPFX, "rb") as f:
        assert mbr[:432] == f.read(432)
    assert struct.unpack_from("<II", mbr, 432) == (lba * 4, 0) and mbr[510:] == b"\x55\xaa"
    need("xorriso", "sgdisk")
    report = out(["xorriso", "-indev", str(image), "-report_el_torito", "plain", "-report_system_area", "plain"])
    assert re.search(r"System area summary: MBR isohybrid", report), report
    assert re.search(r"El Torito img opts\s*:\s*1\s+boot-info-table isohybrid-suitable", report), report
    (entry,) = dumpet_entries(image)
    assert (entry["emulation"], entry["sectors"], entry["lba"]) == ("no emulation", "4", str(lba))
    pvd_lba, file_lba, length = struct.unpack_from("<III", image_bytes(image, lba * 2048 + 8, 12))
    assert (pvd_lba, file_lba, length) == (16, lba, size)                 # the boot info table
    iso = pycdlib_open(image)
    try:
        assert iso.isohybrid_mbr is not None and iso.isohybrid_mbr.rba == lba * 4
    finally:
        iso.close()
    assert "No problems found" in out(["sgdisk", "-v", str(image)])
