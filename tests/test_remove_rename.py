"""remove() and rename() on ISO9660, VFAT and ISO9660Hybrid (issue 13): every reader sees
exactly the tree that results, with the bytes and metadata the entries had; bad calls
are clear errors that change nothing."""
from __future__ import annotations

import os
import re

import pytest

from helpers import run
from helpers.namespaces import (bsdtar_paths, bsdtar_read, esp_of, fsck_fat, isoinfo_paths, mtools_paths,
                                mtools_read, pycdlib_files, with_parents, xorriso_paths)
from sysexport.errors import CallOrderError, InvalidInputError
from sysexport.hybrid import ISO9660Hybrid
from sysexport.iso9660.writer import ISO9660
from sysexport.vfat.writer import VFAT

MTIME = 1_600_000_000
START = {"a/b.txt": b"bee\n", "a/c/d.txt": b"dee\n", "a/c/e/f.txt": b"eff\n", "top.txt": b"top\n",
         "boot/x86.img": b"\xeb" * 2048, "keep/z.bin": b"z" * 5000}


@pytest.fixture(autouse=True)
def _sde(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


def fill(w) -> None:
    for name, data in START.items():
        w.add({"name": name, "mode": 0o100640, "data": data, "mtime": MTIME, "uid": 7, "gid": 9})


def change(w) -> dict[str, bytes]:
    """The same changes on any writer; returns the files that must result."""
    w.remove("a/c")                         # a directory with everything under it
    w.rename("top.txt", "a/Top Moved.txt")  # a file into another directory, new name
    w.rename("keep", "kept")                # a directory, its files with it
    w.remove("a/b.txt")
    w.rename("kept/z.bin", "kept/z2.bin")
    return {"a/Top Moved.txt": b"top\n", "kept/z2.bin": b"z" * 5000, "boot/x86.img": b"\xeb" * 2048}


def test_iso_readers_see_exactly_the_resulting_tree(tmp_path):
    iso = ISO9660(str(tmp_path / "x.iso"), volume_label="RR")
    fill(iso)
    iso.add_boot_catalog_entry(path="boot/x86.img", load_size=4)
    want = change(iso)
    iso.rename("boot", "B")                 # the El Torito entry follows its image
    want["B/x86.img"] = want.pop("boot/x86.img")
    iso.finish()
    image = str(tmp_path / "x.iso")
    names = with_parents(set(want)) | {"boot.catalog"}
    assert isoinfo_paths(image, "rock_ridge") == names
    assert isoinfo_paths(image, "joliet") == names
    assert isoinfo_paths(image, "iso9660") == {"A", "A/TOP_MOVED.TXT", "KEPT", "KEPT/Z2.BIN", "B", "B/X86.IMG",
                                               "BOOT.CATALOG"}
    assert bsdtar_paths(image) == names
    assert xorriso_paths(image) == names
    files = pycdlib_files(image, "rr_path")
    assert {k: v for k, v in files.items() if not k.endswith("/") and k != "boot.catalog"} == want
    assert bsdtar_read(image, "a/Top Moved.txt") == b"top\n"
    # Metadata kept: mode, owner, time (xorriso -lsl shows Rock Ridge's PX and TF).
    listing = run(["xorriso", "-indev", image, "-lsl", "/a"]).stdout.decode()
    line = next(x for x in listing.splitlines() if x.endswith("'Top Moved.txt'"))
    assert line.split()[:4] == ["-rw-r-----", "1", "7", "9"] and "Sep 13  2020" in line, line
    report = run(["xorriso", "-indev", image, "-report_el_torito", "plain"]).stdout.decode()
    lba = [x for x in report.splitlines() if x.startswith("El Torito boot img :   1  BIOS")][0].split()[-1]
    rec = run(["isoinfo", "-R", "-l", "-i", image]).stdout.decode()
    assert f"[{int(lba):7d} 00]  x86.img" in rec.replace("[ ", "[ "), (lba, rec)


def test_vfat_readers_see_exactly_the_resulting_tree(tmp_path):
    image = str(tmp_path / "v.img")
    v = VFAT(image)
    fill(v)
    want = change(v)
    v.rename("a", "A2")                     # FAT compares names ignoring case: A2 is new
    want = {("A2" + k[1:] if k.startswith("a/") else k): d for k, d in want.items()}
    v.finish()
    fsck_fat(image)
    assert mtools_paths(image) == with_parents(set(want))
    for path, data in want.items():
        assert mtools_read(image, path) == data


def test_hybrid_both_file_systems_see_the_resulting_tree(tmp_path):
    image = str(tmp_path / "h.img")
    h = ISO9660Hybrid(image)
    fill(h)
    h.add(("sym", "a/link", "b.txt", {"mtime": MTIME}))
    h.add({"name": "iso-only.txt", "mode": 0o100644, "data": b"iso\n", "hybrid_target": "iso"})
    want = change(h)
    h.rename("iso-only.txt", "a/iso-only.txt")
    h.rename("a/link", "kept/link")
    summary = h.finish()
    assert summary.file_count == 5 and summary.shared_file_count == 3
    iso_names = with_parents(set(want) | {"a/iso-only.txt", "kept/link"})
    assert isoinfo_paths(image, "rock_ridge") == iso_names
    assert bsdtar_paths(image) == iso_names
    assert xorriso_paths(image) == iso_names
    esp = esp_of(image, str(tmp_path))
    fsck_fat(esp)
    assert mtools_paths(esp) == with_parents(set(want))
    for path, data in want.items():
        assert mtools_read(esp, path) == data
        assert bsdtar_read(image, path) == data
    files = pycdlib_files(image, "rr_path")
    assert files["kept/link"] == b"->b.txt" and files["a/iso-only.txt"] == b"iso\n"


def test_a_directory_can_be_replaced_after_its_removal(tmp_path):
    image = str(tmp_path / "r.iso")
    iso = ISO9660(image)
    fill(iso)
    iso.remove("a")
    iso.add(("file644", "a", b"now a file\n"))
    iso.rename("top.txt", "a.txt")
    iso.add(("file644", "top.txt", b"new top\n"))
    iso.remove("boot")
    iso.finish()
    assert isoinfo_paths(image, "rock_ridge") == {"a", "a.txt", "top.txt", "keep", "keep/z.bin"}
    assert bsdtar_read(image, "a.txt") == b"top\n" and bsdtar_read(image, "top.txt") == b"new top\n"


@pytest.mark.parametrize("make", [ISO9660, VFAT, ISO9660Hybrid], ids=["iso", "vfat", "hybrid"])
def test_bad_calls_are_clear_and_change_nothing(make, tmp_path):
    w = make(str(tmp_path / "img"))
    fill(w)
    cases = [
        (lambda: w.remove("nope/x"), "nope/x", "not in the image"),
        (lambda: w.remove("/"), "root", "cannot"),
        (lambda: w.rename("top.txt", "a/b.txt"), "a/b.txt", "already exists"),
        (lambda: w.rename("top.txt", "missing/t.txt"), "missing", "does not exist"),
        (lambda: w.rename("a", "a/c/a"), "a/c/a", "below itself"),
        (lambda: w.rename("top.txt", "a/b.txt/x"), "a/b.txt", "not a directory"),
        (lambda: w.rename("ghost", "g2"), "ghost", "not in the image"),
    ]
    for call, name, rule in cases:
        with pytest.raises(InvalidInputError) as e:
            call()
        assert name in str(e.value) and rule in str(e.value), str(e.value)
    tree = (w.iso if isinstance(w, ISO9660Hybrid) else w).tree
    assert sorted(n.path for n in tree.walk()) == sorted(with_parents(set(START)) | {""})
    w.plan()
    with pytest.raises(CallOrderError):
        w.remove("top.txt")
    with pytest.raises(CallOrderError):
        w.rename("top.txt", "t")


def test_fat_refuses_a_rename_to_a_case_twin_and_the_hybrid_keeps_both_trees(tmp_path):
    v = VFAT(str(tmp_path / "v.img"))
    fill(v)
    with pytest.raises(InvalidInputError, match="differs only by case from 'top.txt'"):
        v.rename("a/b.txt", "TOP.TXT")
    v.rename("top.txt", "TOP.txt")          # its own name in another case is fine
    h = ISO9660Hybrid(str(tmp_path / "h.img"))
    fill(h)
    with pytest.raises(InvalidInputError, match="differs only by case"):
        h.rename("a/b.txt", "Top.txt")
    assert h.iso.tree.find("a/b.txt") is not None and h.esp.tree.find("a/b.txt") is not None
    assert h.iso.tree.find("Top.txt") is None and h.esp.tree.find("Top.txt") is None


def test_removing_a_boot_image_is_an_error_naming_both(tmp_path):
    iso = ISO9660(str(tmp_path / "b.iso"))
    fill(iso)
    iso.add_boot_catalog_entry(path="boot/x86.img", load_size=4)
    for path in ("boot/x86.img", "boot"):
        with pytest.raises(InvalidInputError, match="catalog entry 0 boots from boot/x86.img"):
            iso.remove(path)
    h = ISO9660Hybrid(str(tmp_path / "h.img"))
    fill(h)
    h.iso.add_boot_catalog_entry(path="boot/x86.img", load_size=4)
    with pytest.raises(InvalidInputError, match="boot/x86.img"):
        h.remove("boot")
    assert h.esp.tree.find("boot/x86.img") is not None


def test_rename_keeps_hard_links_together(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "one").write_bytes(b"linked\n" * 300)
    os.link(src / "d" / "one", src / "two")
    image = str(tmp_path / "l.iso")
    iso = ISO9660(image)
    iso.add_tree(str(src))
    iso.rename("d", "e")
    iso.rename("two", "e/three")
    iso.finish()
    from helpers.namespaces import pycdlib_record
    a = pycdlib_record(image, rr_path="/e/one")
    b = pycdlib_record(image, rr_path="/e/three")
    assert a == b and a[2] == 2


@pytest.mark.parametrize("make,key", [(ISO9660, "ISO9660_shortname"), (ISO9660, "joliet_name"),
                                      (VFAT, "FAT_shortname"), (ISO9660Hybrid, "FAT_shortname"),
                                      (ISO9660Hybrid, "ISO9660_shortname")])
def test_a_move_that_brings_a_taken_name_is_refused(make, key, tmp_path):
    """Moving keeps the names given for a basename; where a sibling has the same one, the
    rename is refused (not found later by plan()); a new basename drops them, and then the
    image is read with both files."""
    image = str(tmp_path / "img")
    w = make(image)
    w.add({"name": "x/alpha.txt", "mode": 0o100644, "data": b"a", key: "SAME.TXT"})
    w.add({"name": "y/beta.txt", "mode": 0o100644, "data": b"b", key: "SAME.TXT"})
    with pytest.raises(InvalidInputError, match=f"y/alpha.txt: its {key} 'SAME.TXT' is y/beta.txt's too"):
        w.rename("x/alpha.txt", "y/alpha.txt")
    w.rename("x/alpha.txt", "y/gamma.txt")
    w.finish()
    if key == "FAT_shortname":
        fat = image if make is VFAT else esp_of(image, str(tmp_path))
        assert mtools_paths(fat) == {"x", "y", "y/beta.txt", "y/gamma.txt"}
        listing = run(["mdir", "-i", fat, "::/y"], env_extra={"MTOOLS_SKIP_CHECK": "1"}).stdout.decode()
        assert re.search(r"^SAME\s+TXT\s+1 .* beta\.txt$", listing, re.M), listing
    else:
        assert isoinfo_paths(image, "rock_ridge") == {"x", "y", "y/beta.txt", "y/gamma.txt"}
        names = isoinfo_paths(image, "joliet" if key == "joliet_name" else "iso9660")
        assert ("y/SAME.TXT" if key == "joliet_name" else "Y/SAME.TXT") in names


def test_fat_case_rules_follow_removes_and_renames(tmp_path):
    """add() after remove()/rename() sees the names as they are now: a name freed by a
    remove or a rename may come back in another case, a renamed entry's new name may not."""
    image = str(tmp_path / "case.img")
    v = VFAT(image)
    v.add(("file", "d/a.txt", b"a"))
    v.add(("file", "d/b.txt", b"b"))
    v.remove("d/a.txt")
    v.add(("file", "d/A.TXT", b"A"))
    v.rename("d/b.txt", "d/c.txt")
    v.add(("file", "d/B.txt", b"B"))
    with pytest.raises(InvalidInputError, match="differs only by case from 'c.txt'"):
        v.add(("file", "d/C.TXT", b"C"))
    v.remove("d")
    v.add(("file", "D/x", b"x"))
    v.finish()
    fsck_fat(image)
    assert mtools_paths(image) == {"D", "D/x"}
