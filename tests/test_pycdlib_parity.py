"""The guide's "Coming from pycdlib" blocks against pycdlib's own images, and booted.

tests/test_docs.py runs each block and has readers check what it claims.  Here the same
task is also done with pycdlib's API (the reference), and isoinfo must see the same trees
with the same bytes in both images, view by view; pycdlib must be able to change our
image in place as it changes its own; the isohybrid block's image boots under SeaBIOS
from CD and from disk (slow); and the plain-ISO isohybrid layout the section points to
(`sysexport mkisofs -isohybrid-mbr`) is the one pycdlib's add_isohybrid() makes.  The
section's notes on UDF and on the hidden flag are checked against pycdlib's images too.
"""
from __future__ import annotations

import io
import os
import re
import struct
from pathlib import Path

import pytest

from helpers import need, run
from helpers.namespaces import isoinfo_paths
from helpers.qemuboot import boot_firmware
from test_docs import BLOCKS, Block, dumpet_entries, isoinfo_read, isoinfo_records, pycdlib_open, run_block

VIEWS = {"iso9660": (), "joliet": ("-J",), "rock_ridge": ("-R",)}


def block(check: str) -> Block:
    (found,) = [b for b in BLOCKS if b.check == check]
    return found


def seen(image: Path) -> dict[str, dict[str, bytes | None]]:
    """{view: {path: bytes, or None for a directory}} as isoinfo lists and reads each
    tree (a view the image lacks is empty)."""
    info = run(["isoinfo", "-d", "-i", str(image)]).stdout.decode("latin-1")
    result: dict[str, dict[str, bytes | None]] = {}
    for view, flags in VIEWS.items():
        if (view == "joliet" and "NO Joliet" in info) or (view == "rock_ridge" and "NO Rock Ridge" in info):
            result[view] = {}
            continue
        records = isoinfo_records(image, *flags)
        dirs = {p for p in isoinfo_paths(str(image), view)} - {p.lstrip("/").removesuffix(";1").rstrip(".")
                                                              for p in records}
        tree: dict[str, bytes | None] = {d: None for d in dirs}
        for path in records:
            tree[path.lstrip("/").removesuffix(";1").rstrip(".")] = isoinfo_read(image, path, *flags)
        result[view] = tree
    return result


def pycdlib_write(path: Path, build) -> None:
    import pycdlib
    iso = pycdlib.PyCdlib()
    build(iso)
    iso.write(str(path))
    iso.close()


def add_bytes(iso, data: bytes, iso_path: str, **names: str) -> None:
    iso.add_fp(io.BytesIO(data), len(data), iso_path, **names)


def reference_new_basic(iso) -> None:
    iso.new(interchange_level=1)
    add_bytes(iso, b"foo\n", "/FOO.;1")
    add_bytes(iso, b"v1\n", "/RELEASE_.TEX;1")
    iso.add_directory("/DIR1")


def reference_rock_ridge(iso) -> None:
    iso.new(rock_ridge="1.09")
    add_bytes(iso, b"foo\n", "/FOO.;1", rr_name="foo")
    iso.add_directory("/DIR1", rr_name="dir1")


def reference_joliet(iso) -> None:
    iso.new(joliet=3)
    add_bytes(iso, b"foo\n", "/FOO.;1", joliet_path="/foo")
    iso.add_directory("/DIR1", joliet_path="/dir1")


def reference_hard_links(iso) -> None:
    iso.new(joliet=3, interchange_level=3)           # BOOT.CATALOG;1, as our block's catalog
    add_bytes(iso, b"foo\n", "/FOO.;1", joliet_path="/foo")
    iso.add_hard_link(iso_old_path="/FOO.;1", iso_new_path="/BAR.;1")
    iso.rm_hard_link(joliet_path="/foo")
    add_bytes(iso, b"\xeb\xfe" + bytes(2046), "/BOOT.IMG;1", joliet_path="/boot.img")
    iso.add_eltorito("/BOOT.IMG;1", "/BOOT.CATALOG;1", joliet_bootcatfile="/boot.catalog", boot_load_size=4)
    iso.rm_hard_link(iso_path="/BOOT.IMG;1")
    iso.rm_hard_link(joliet_path="/boot.img")


REFERENCES = {"new_basic": ("new.iso", reference_new_basic), "rock_ridge": ("rr.iso", reference_rock_ridge),
              "joliet": ("joliet.iso", reference_joliet), "hard_links": ("links.iso", reference_hard_links)}


@pytest.mark.parametrize("check", sorted(REFERENCES))
def test_same_trees_as_pycdlib(tmp_path, sde, check):
    """The block's image and pycdlib's image of the same task: every view the same paths
    with the same bytes, as isoinfo reads them."""
    need("isoinfo")
    name, build = REFERENCES[check]
    ours = tmp_path / "ours"
    ours.mkdir()
    run_block(block(check), ours)
    reference = tmp_path / name
    pycdlib_write(reference, build)
    mine, pycdlibs = seen(ours / name), seen(reference)
    for trees in (mine, pycdlibs):              # a catalog's bytes name its own image's places
        for tree in trees.values():
            for path in [p for p in tree if p.lower() == "boot.catalog"]:
                tree[path] = b"(the boot catalog)"
    assert mine == pycdlibs
    if check == "hard_links":
        for image in (ours / name, reference):
            (entry,) = dumpet_entries(image)
            assert (entry["emulation"], entry["sectors"]) == ("no emulation", "4")
            with open(image, "rb") as f:
                f.seek(int(entry["lba"]) * 2048)
                assert f.read(2048) == b"\xeb\xfe" + bytes(2046)


def test_pycdlib_modifies_our_image_as_we_do(tmp_path, sde):
    """pycdlib's modify_file_in_place on the block's image before our change gives the
    bytes replace_file() gives: same size in every tree, same data."""
    import pycdlib
    run_block(block("modified"), tmp_path)
    ours = tmp_path / "foo.iso"
    theirs = tmp_path / "theirs.iso"
    run_block(Block(block("modified").code.split("\nwith sysexport.open")[0].replace("foo.iso", "theirs.iso"),
                    "", ""), tmp_path)
    if hasattr(pycdlib, "InPlaceEditor"):                  # pycdlib 1.22: modify_file_in_place deprecated
        with pycdlib.InPlaceEditor(str(theirs)) as editor:
            editor.modify_file(io.BytesIO(b"bazzzzzz\n"), 9, iso_path="/FOO.;1")
    else:
        with open(theirs, "r+b") as f:
            iso = pycdlib.PyCdlib()
            iso.open_fp(f)
            iso.modify_file_in_place(io.BytesIO(b"bazzzzzz\n"), 9, "/FOO.;1")
            iso.close()
    assert seen(ours) == seen(theirs)
    assert seen(ours)["rock_ridge"] == {"foo": b"bazzzzzz\n"}


def test_mkisofs_isohybrid_is_pycdlibs_layout(tmp_path, sde):
    """What the section says of `sysexport mkisofs -isohybrid-mbr`: a plain ISO whose MBR
    has one active partition from sector 0 over the image (type 0x17, as pycdlib's
    add_isohybrid() writes), no GPT, the code naming the boot image; pycdlib reads it."""
    need("/usr/lib/ISOLINUX/isohdpfx.bin", "/usr/lib/ISOLINUX/isolinux.bin", "xorriso")
    tree = tmp_path / "tree" / "isolinux"
    tree.mkdir(parents=True)
    (tree / "isolinux.bin").write_bytes(Path("/usr/lib/ISOLINUX/isolinux.bin").read_bytes())
    image = tmp_path / "out.iso"
    run(["python3", "-m", "sysexport", "mkisofs", "-b", "isolinux/isolinux.bin", "-no-emul-boot",
         "-boot-load-size", "4", "-boot-info-table", "-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin",
         "-o", str(image), str(tmp_path / "tree")],
        env_extra={"PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    lba = isoinfo_records(image)["/ISOLINUX/ISOLINUX.BIN;1"][0]
    report = run(["xorriso", "-indev", str(image), "-report_system_area", "plain"]).stdout.decode()
    assert "System area summary: MBR isohybrid" in report and "GPT" not in report, report
    (row,) = re.findall(r"^MBR partition\s*:\s*(.+)$", report, re.M)
    number, status, ptype, start, blocks = row.split()
    assert (number, status, ptype, start) == ("1", "0x80", "0x17", "0")
    assert int(blocks) * 512 == os.path.getsize(image)
    with open(image, "rb") as f:
        assert struct.unpack_from("<I", f.read(512), 432)[0] == lba * 4
    iso = pycdlib_open(image)
    try:
        assert (iso.isohybrid_mbr.rba, iso.isohybrid_mbr.ptype) == (lba * 4, 0x17)
    finally:
        iso.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bios-cd", "bios-disk"])
def test_isohybrid_block_boots(tmp_path, sde, mode):
    """The isohybrid block's image runs isolinux, which prints the block's SAY line on the
    serial port: from El Torito (CD) and from the patched MBR code (disk)."""
    run_block(block("isohybrid"), tmp_path)
    boot_firmware(mode, str(tmp_path / "hybrid.iso"), str(tmp_path), expect="hello from isolinux", deadline_s=60)


def test_udf_bridge_read_not_written(tmp_path):
    """The section's note on UDF: a UDF bridge pycdlib wrote opens with its ISO 9660 tree
    (the bytes pycdlib put there), and replace_file() refuses it (its UDF entries hold
    sizes too) leaving it byte for byte as it was."""
    import sysexport
    from sysexport import InvalidInputError
    image = tmp_path / "udf.iso"

    def build(iso) -> None:
        iso.new(udf="2.60", interchange_level=3)
        add_bytes(iso, b"foo\n", "/FOO.;1", udf_path="/foo")

    pycdlib_write(image, build)
    before = image.read_bytes()
    with sysexport.open(image, writable=True) as opened:
        assert opened.views() == ["iso9660"]
        assert opened.view("iso9660").read("/FOO") == b"foo\n"
        with pytest.raises(InvalidInputError, match="UDF"):
            opened.replace_file("/FOO", b"bar\n")
    assert image.read_bytes() == before


def test_hidden_flag_as_pycdlibs_set_hidden(tmp_path, sde):
    """ISO9660_flags FLAG_HIDDEN sets the record's flag pycdlib's set_hidden() sets: its
    reader sees the same file flags in both images."""
    from sysexport import FLAG_HIDDEN, ISO9660
    ours = tmp_path / "ours.iso"
    iso = ISO9660(ours, joliet=False, rock_ridge=None)
    iso.add({"name": "SECRET", "mode": 0o100644, "data": b"x", "ISO9660_flags": FLAG_HIDDEN})
    iso.add({"name": "SHOWN", "mode": 0o100644, "data": b"y"})
    iso.finish()
    theirs = tmp_path / "theirs.iso"

    def build(ref) -> None:
        ref.new(interchange_level=3)
        add_bytes(ref, b"x", "/SECRET.;1")
        add_bytes(ref, b"y", "/SHOWN.;1")
        ref.set_hidden(iso_path="/SECRET.;1")

    pycdlib_write(theirs, build)
    flags = []
    for image in (ours, theirs):
        opened = pycdlib_open(image)
        try:
            flags.append([opened.get_record(iso_path=p).file_flags for p in ("/SECRET.;1", "/SHOWN.;1")])
        finally:
            opened.close()
    assert flags[0] == flags[1] == [FLAG_HIDDEN, 0]
