"""Volume labels (issue 11): each file system gets the most faithful label it can hold,
over-long labels are errors, and the build summary says what each got.

A FAT label (BS_VolLab and the root's volume entry) is stored upper case, as DOS, Windows
and mlabel store it (mlabel writes "My Live" as MY LIVE in the root entry, which blkid
reads; fatlabel keeps the case but warns "lowercase labels might not work properly on some
systems"); 11 characters A-Z 0-9 space !#$%&'()-@^_`{}~ (fatlabel refuses the same
*?.,;:/\\|+=<>[]"), ASCII only.  A VFAT given anything else refuses it; the hybrid's ESP
takes the first 11 FAT characters of the image label unless ``esp_label`` says otherwise.
Checked with blkid, fatlabel, mlabel -s, mdir and 7-Zip (FAT), isoinfo -d and pycdlib (the
ISO9660 primary and Joliet descriptors).
"""
from __future__ import annotations

import os
import re

import pytest

from sysexport import VFAT
from sysexport.cli import main
from sysexport.errors import InvalidInputError
from sysexport.hybrid import ISO9660Hybrid
from helpers import cut, need, out, run
from test_vfat_check import blkid

T0 = 1_700_000_000
MTOOLS = {"MTOOLS_SKIP_CHECK": "1"}


def fat_labels(img: str) -> dict[str, str | None]:
    """What each FAT reader says the label is (None: no label)."""
    need("fatlabel", "mlabel", "mdir", "7zz")
    tags = blkid(img)
    assert tags.get("TYPE") == "vfat", tags
    mlabel = out(["mlabel", "-s", "-i", img, "::"], env_extra=MTOOLS)
    m = re.match(r"^ Volume label is (.*?) *$", mlabel.splitlines()[0])
    mdir = out(["mdir", "-i", img, "::"])          # the strict check: without MTOOLS_SKIP_CHECK
    d = re.match(r"^ Volume in drive : is (.*?) *$", mdir.splitlines()[0])
    seven = re.search(r"^Label = (.*)$", out(["7zz", "l", "-slt", "-tfat", img]), re.M)
    fatlabel = out(["fatlabel", img]).rstrip("\n")
    return {"blkid": tags.get("LABEL"), "blkid_fatboot": tags.get("LABEL_FATBOOT"),
            "mlabel": m.group(1) if m else None, "mdir": d.group(1) if d else None,
            "7z": seven.group(1) if seven else None,
            "fatlabel": fatlabel if fatlabel not in ("", "NO NAME") else None}


def assert_fat_label(img: str, want: str | None) -> None:
    got = fat_labels(img)
    assert got == {k: want for k in got}, got


def iso_labels(img: str) -> tuple[str, str | None, str]:
    """(primary descriptor's label as isoinfo -d prints it, the Joliet descriptor's as pycdlib
    reads it, blkid's LABEL)."""
    need("isoinfo", "blkid")
    import pycdlib
    raw = run(["isoinfo", "-d", "-i", img]).stdout
    m = re.search(rb"^Volume id: (.*)$", raw, re.M)
    assert m, raw
    iso = pycdlib.PyCdlib()
    iso.open(img)
    try:
        jvd = iso.joliet_vd
        joliet = jvd.volume_identifier.decode("utf-16-be").rstrip(" ") if jvd is not None else None
        assert iso.pvd.volume_identifier.decode("utf-8").rstrip(" ") == m.group(1).decode("utf-8").rstrip(" ")
    finally:
        iso.close()
    label = out(["blkid", "-p", "-o", "value", "-s", "LABEL", img]).rstrip("\n")
    return m.group(1).decode("utf-8").rstrip(" "), joliet, label


# --- VFAT on its own --------------------------------------------------------------------------

@pytest.mark.parametrize("given_label,stored", [
    ("EFI", "EFI"),                         # ASCII
    ("My Live", "MY LIVE"),                 # mixed case, a space: upper case as Windows/mlabel store it
    ("a-b_c!#$%&'", "A-B_C!#$%&'"),         # punctuation FAT holds, 11 characters
    ("(){}^@`~ 09", "(){}^@`~ 09"),
    ("12345678901", "12345678901"),         # 11 characters: the most FAT holds
    ("", None),                             # no label
])
def test_vfat_label_as_readers_show_it(tmp_path, given_label, stored):
    img = str(tmp_path / "fat.img")
    v = VFAT(img, volume_label=given_label, default_time=T0)
    v.add(("file", "a.txt", b"a"))
    v.finish()
    assert v.volume_label == (stored or "")
    assert_fat_label(img, stored)


@pytest.mark.parametrize("bad,why", [
    ("My Live 2026", "12 characters"),      # 12
    ("x" * 32, "32 characters"),
    ("x" * 33, "33 characters"),
    ("x" * 49, "49 characters"),
    ("Café", "'é'"),                        # non-ASCII: the OEM code page is not on the volume
    ("日本", "'日本'"),
    ("v2.0", "'.'"),                        # characters fatlabel refuses too
    ("a+b", "'+'"),
    ("[x]", "'[]'"),
    (" lead", "a leading space"),
])
def test_vfat_refuses_labels_fat_cannot_hold(tmp_path, bad, why):
    with pytest.raises(InvalidInputError) as e:
        VFAT(str(tmp_path / "fat.img"), volume_label=bad)
    msg = str(e.value)
    assert msg.startswith(f"volume_label {bad!r}: a FAT label holds at most 11 characters"), msg
    assert msg.endswith(why), msg
    v = VFAT(str(tmp_path / "fat.img"), volume_label="KEEP")
    with pytest.raises(InvalidInputError, match="a FAT label holds"):
        v.volume_label = bad
    assert v.volume_label == "KEEP"
    assert os.listdir(tmp_path) == []


def test_vfat_label_type():
    with pytest.raises(InvalidInputError, match="volume_label: expected str, found int"):
        VFAT("x", volume_label=5)       # type: ignore[arg-type]


# --- the hybrid -------------------------------------------------------------------------------

def build_hybrid(path: str, **attrs) -> tuple[ISO9660Hybrid, object]:
    h = ISO9660Hybrid(path, default_time=T0, **attrs)
    h.add(("file", "EFI/BOOT/hello.txt", b"hello\n"))
    summary = h.finish()
    return h, summary


@pytest.mark.parametrize("label,fat", [
    ("ABCDEFGHIJK", "ABCDEFGHIJK"),         # 11: the whole label everywhere
    ("My Live 2026", "MY LIVE 202"),        # 12, mixed case and spaces: the example
    ("Live! (v2.0) #3", "LIVE! (V2_0"),     # punctuation: '.' is no FAT character
    ("x" * 32, "X" * 11),                   # 32: the most the primary descriptor holds
    ("Café Live", "CAFE LIVE"),             # non-ASCII: accents dropped for FAT
    ("Straße", "STRASSE"),
    ("日本語ライブ", "______"),               # nothing FAT can hold: one '_' each
])
def test_hybrid_labels_as_readers_show_them(tmp_path, label, fat):
    img = str(tmp_path / "hybrid.img")
    h, summary = build_hybrid(img, volume_label=label)
    assert h.volume_label == label and h.esp_label == fat
    assert summary.fat_label == fat
    pvd, joliet, shown = iso_labels(img)
    assert (summary.iso_label, summary.joliet_label) == (pvd, joliet)
    assert joliet is not None and label.startswith(joliet) and len(joliet) == min(len(label), 16)
    assert label.encode().startswith(pvd.encode()) and pvd                 # as much as the descriptor holds
    assert shown in (pvd, joliet)
    line = [ln for ln in summary.lines() if ln.startswith("labels")]
    assert line == [f"labels     ISO9660 {pvd!r}, Joliet {joliet!r}, FAT {fat!r}"]
    esp = cut(img, summary.esp_offset, summary.esp_size_bytes, str(tmp_path / "esp.img"))
    assert_fat_label(esp, fat)


@pytest.mark.parametrize("label", ["y" * 33, "My Live 2026 " * 3 + "xxxxxxxxxx", "é" * 17])
def test_hybrid_refuses_labels_longer_than_the_iso_holds(tmp_path, label):
    assert len(label.encode()) > 32
    img = str(tmp_path / "hybrid.img")
    with pytest.raises(InvalidInputError, match=re.escape(repr(label))):
        ISO9660Hybrid(img, volume_label=label)
    h = ISO9660Hybrid(img, volume_label="KEEP")
    with pytest.raises(InvalidInputError, match=re.escape(repr(label))):
        h.volume_label = label
    assert (h.volume_label, h.esp_label) == ("KEEP", "KEEP")
    assert os.listdir(tmp_path) == []


def test_esp_label_chosen(tmp_path):
    img = str(tmp_path / "hybrid.img")
    # esp_label before volume_label among the attributes: the volume label does not override it
    h, summary = build_hybrid(img, esp_label="boot", volume_label="My Live 2026")
    assert (h.esp_label, summary.fat_label) == ("BOOT", "BOOT")
    assert iso_labels(img)[:2] == ("My Live 2026", "My Live 2026")
    assert_fat_label(cut(img, summary.esp_offset, summary.esp_size_bytes, str(tmp_path / "esp.img")), "BOOT")


def test_esp_label_none_and_back(tmp_path):
    img = str(tmp_path / "hybrid.img")
    h = ISO9660Hybrid(img, default_time=T0, volume_label="Media One")
    assert h.esp_label == "MEDIA ONE"
    h.esp_label = ""                        # no FAT label at all
    h.volume_label = "Media Two"
    assert h.esp_label == ""
    h.add(("file", "a", b"a"))
    summary = h.finish()
    assert summary.fat_label == "" and "FAT none" in summary.lines()[4]
    assert_fat_label(cut(img, summary.esp_offset, summary.esp_size_bytes, str(tmp_path / "esp.img")), None)
    h2 = ISO9660Hybrid(str(tmp_path / "b.img"), esp_label="X", volume_label="Media Three")
    h2.esp_label = None                     # derived from the volume label again
    assert h2.esp_label == "MEDIA THREE"


@pytest.mark.parametrize("bad", ["My Live 2026", "boot.efi", "Café", " x"])
def test_esp_label_refused(tmp_path, bad):
    want = rf"^esp_label {re.escape(repr(bad))}: a FAT label holds at most 11"
    with pytest.raises(InvalidInputError, match=want):
        ISO9660Hybrid(str(tmp_path / "a.img"), esp_label=bad)
    h = ISO9660Hybrid(str(tmp_path / "a.img"), volume_label="Media")
    with pytest.raises(InvalidInputError, match="^esp_label"):
        h.esp_label = bad
    assert h.esp_label == "MEDIA"
    h.volume_label = "Other"                # still derived: the refused value did not count as a choice
    assert h.esp_label == "OTHER"
    assert os.listdir(tmp_path) == []


def test_summary_without_joliet(tmp_path):
    h = ISO9660Hybrid(str(tmp_path / "a.img"), default_time=T0, volume_label="NoJoliet")
    h.iso.joliet = False
    h.add(("file", "a", b"a"))
    summary = h.finish()
    assert summary.joliet_label is None
    assert "labels     ISO9660 'NoJoliet', no Joliet, FAT 'NOJOLIET'" in summary.lines()


def test_cli_build_prints_the_labels(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_bytes(b"hello\n")
    img = str(tmp_path / "out.img")
    assert main(["build", str(src), "-o", img, "--label", "My Live 2026"]) == 0
    printed = capsys.readouterr().out
    assert "  labels     ISO9660 'My Live 2026', Joliet 'My Live 2026', FAT 'MY LIVE 202'\n" in printed
    assert blkid(img)["LABEL"] == "My Live 2026"
