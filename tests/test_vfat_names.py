"""8.3 short names made the Windows way (fatgen103 basis-name and numeric-tail rules)."""
from __future__ import annotations

import pytest

from sysexport.errors import InvalidInputError
from sysexport.vfat.names import (check_long_name, exact_short_name, fold, make_short_names,
                                  parse_short_name)


@pytest.mark.parametrize("name,short,flags", [
    ("README.TXT", b"README  TXT", 0),
    ("readme.txt", b"README  TXT", 0x18),
    ("readme.TXT", b"README  TXT", 0x08),
    ("README.txt", b"README  TXT", 0x10),
    ("A", b"A          ", 0),
    ("12345678.123", b"12345678123", 0),
    ("X~1", b"X~1        ", 0),
])
def test_exact_short_names(name, short, flags):
    assert exact_short_name(name) == (short, flags)


@pytest.mark.parametrize("name", ["Readme.txt", "a b", "abcdefghi", "a.b.c", ".x", "a.abcd", "café",
                                  "a+b", "[x]", "x.", "é"])
def test_not_exact(name):
    assert exact_short_name(name) is None


def short_of(names):
    return [s.decode() for s, _, _ in make_short_names(names, {}, "")]


def test_generated_names():
    assert short_of(["Readme.txt"]) == ["README  TXT"]                  # fits: no tail
    assert short_of(["foo.tar.gz"]) == ["FOOTAR~1GZ "]
    assert short_of([".bashrc"]) == ["BASHRC~1   "]
    assert short_of(["a b.txt"]) == ["AB~1    TXT"]
    assert short_of(["café.txt"]) == ["CAF_~1  TXT"]                   # lossy
    assert short_of(["x+y=z"]) == ["X_Y_Z~1    "]
    assert short_of(["Long File Name.html"]) == ["LONGFI~1HTM"]


def test_tails_and_hash():
    names = [f"Long File Name {i}.html" for i in range(8)]
    shorts = short_of(names)
    assert shorts[:4] == [f"LONGFI~{i}HTM" for i in range(1, 5)]
    assert len(set(shorts)) == 8
    for s in shorts[4:]:
        assert s.startswith("LO") and s[6:8] == "~1" and all(c in "0123456789ABCDEF" for c in s[2:6])


def test_exact_names_keep_priority():
    # "LONGFI~1.HTM" exists as a real name; the generated one must avoid it
    shorts = short_of(["Long File Name.html", "LONGFI~1.HTM"])
    assert shorts == ["LONGFI~2HTM", "LONGFI~1HTM"]


def test_fixed_short_name_wins():
    res = make_short_names(["efi loader.efi", "x"], {0: parse_short_name("BOOTX64.EFI", "")}, "")
    assert res[0] == (b"BOOTX64 EFI", 0, True)


@pytest.mark.parametrize("bad", ["a:b", "a\\b", "a|b", "a?b", 'a"b', "a<b", "a>b", "a*b", "a\x1fb",
                                 "end.", "end ", "n" * 256, "\ud800"])
def test_bad_long_names(bad):
    with pytest.raises(InvalidInputError):
        check_long_name(bad, bad)


def test_fold():
    assert fold("Straße") == "STRAßE"          # no expansion to SS
    assert fold("ÉtÉ") == fold("été")


@pytest.mark.parametrize("bad", ["abc", "TOOLONGNAME", "A.B.C", "A B", "É"])
def test_bad_fixed_short_names(bad):
    with pytest.raises(InvalidInputError):
        parse_short_name(bad, "x")
