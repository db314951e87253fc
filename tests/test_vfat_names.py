"""8.3 short names made the Windows way (fatgen103 basis-name and numeric-tail rules)."""
from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from sysexport.errors import InvalidInputError
from sysexport.vfat.names import (SHORT_CHARS, basis_name, check_label, check_long_name, exact_short_name, fold,
                                  label_from, lfn_checksums, lfn_counts, make_short_names, parse_short_name,
                                  short_names)


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


# --- short names against every name of the directory ------------------------------------------

def shown(short: bytes) -> str:
    base, ext = short[:8].decode().rstrip(), short[8:].decode().rstrip()
    return base + ("." + ext if ext else "")


def test_generated_name_avoids_a_mixed_case_long_name():
    # "Foobar~1.txt" is no exact 8.3 name (mixed case), but a reader looking it up compares
    # it, ignoring case, with every short name: "Foo Bar.txt" must not be FOOBAR~1.TXT.
    assert short_of(["Foo Bar.txt", "Foobar~1.txt"]) == ["FOOBAR~2TXT", "FOOBAR~1TXT"]
    assert short_of(["Foo Bar.txt", "Foobar~1.txt", "foobar~2.TXT"]) == ["FOOBAR~3TXT", "FOOBAR~1TXT",
                                                                           "FOOBAR~2TXT"]
    # and a long name that sorts first does not take what a later one is called
    assert short_of(["FooBar~1", "Foo Bar"]) == ["FOOBAR~1   ", "FOOBAR~2   "]


def test_hashed_tail_avoids_long_names():
    names = [f"Long File Name {i}.html" for i in range(5)]
    fifth = shown(dict(zip(names, (s for s, _, _ in make_short_names(sorted(names), {}, ""))))[names[4]])
    assert fifth[2:6] != "~1" and fifth.endswith("~1.HTM")
    # a sixth entry whose long name is that short name in other case: the fifth goes elsewhere
    rival = fifth[:2].lower() + fifth[2:6] + "~1.Htm"
    res = dict(zip(sorted(names + [rival]), make_short_names(sorted(names + [rival]), {}, "")))
    assert shown(res[rival][0]) == fifth
    assert shown(res[names[4]][0]) != fifth and fold(rival) not in {shown(s) for n, (s, _, _) in res.items()
                                                                     if n != rival}


def test_fixed_short_name_equal_to_another_long_name_is_an_error():
    for other in ("Readme.txt", "README.TXT", "readme.txt"):
        names = sorted(["loader.efi", other])
        i = names.index("loader.efi")
        with pytest.raises(InvalidInputError, match=r"FAT_shortname 'README.TXT' equals the name of .*"
                           + other.replace(".", r"\.")):
            make_short_names(names, {i: parse_short_name("README.TXT", "x")}, "/d")
    # its own long name is fine
    assert make_short_names(["readme.txt"], {0: b"README  TXT"}, "")[0] == (b"README  TXT", 0, True)


def test_fixed_short_names_used_twice():
    with pytest.raises(InvalidInputError, match="already used by 'a'"):
        make_short_names(["a", "b"], {0: b"SAME       ", 1: b"SAME       "}, "")


def _valid_long(name: str) -> bool:
    try:
        check_long_name(name, "")
    except InvalidInputError:
        return False
    return name not in (".", "..")


STEMS = ["foo", "Foo", "FOO", "foo bar", "Foo Bar", "foobar", "FooBar", "foo.bar", "longfi", "LongFi",
         "longfilename", "Long File Name", "a", "A", "a b", "é", "café", "x+y", "fo", "lo"]
TAILS = ["", "~1", "~2", "~3", "~4", "~5", "~9", "~10", "0000~1", "1234~1"]
EXTS = ["", ".txt", ".TXT", ".Txt", ".tar.gz", ".html", ".HTM", ".htm", ".efi"]
ANY_CHAR = st.characters(min_codepoint=0x20, max_codepoint=0xFFFD,
                         blacklist_categories=("Cs", "Cc", "Co", "Cn", "Zl", "Zp"))
collision_names = st.builds(lambda a, b, c: a + b + c, st.sampled_from(STEMS), st.sampled_from(TAILS),
                            st.sampled_from(EXTS))
SHORTS = ["FOO.TXT", "FOO~1.TXT", "FOOBAR~1.TXT", "FOOBAR~2", "LONGFI~1.HTM", "A", "X_Y~1", "BOOTX64.EFI"]


@st.composite
def directories(draw):
    """One directory: names likely to collide with generated short names (unique ignoring case),
    some with a FAT_shortname.  Beside some names goes a rival: a long name that is, in mixed
    case, a short name the first one may be given (its basis with a numeric or hashed tail)."""
    rnd = draw(st.randoms(use_true_random=False))
    raw = draw(st.lists(collision_names | collision_names | st.text(ANY_CHAR, min_size=1, max_size=14),
                        min_size=1, max_size=30))
    return with_rivals(raw, rnd)


def with_rivals(raw: list[str], rnd: random.Random) -> tuple[list[str], dict[int, str]]:
    """``raw`` and rivals of some of its names, valid and unique ignoring case, sorted; and
    FAT_shortnames for a few of them (index -> short name)."""
    for name in list(raw):
        if rnd.random() < 0.4:
            base, ext, _ = basis_name(name)
            tail = rnd.choice([f"~{rnd.randint(1, 6)}", f"{zlib.crc32(name.encode('utf-16-le')) & 0xFFFF:04X}~1"])
            rival = (base[:8 - len(tail)] if len(tail) == 2 else base[:2]) + tail + ("." + ext if ext else "")
            raw.append("".join(c.lower() if rnd.random() < 0.5 else c for c in rival))
    names: dict[str, str] = {}
    for name in raw:
        if _valid_long(name):
            names.setdefault(fold(name), name)
    ordered = sorted(names.values())
    fixed = {i: rnd.choice(SHORTS) for i in range(len(ordered)) if rnd.random() < 0.04}
    return ordered, fixed


def fixed_collision(names: list[str], fixed: dict[int, str]) -> bool:
    """Whether a FAT_shortname equals another entry's long name or FAT_shortname (ignoring case)."""
    owners = {fold(n): i for i, n in enumerate(names)}
    seen: dict[str, int] = {}
    for i, s in fixed.items():
        if owners.get(s, i) != i or seen.setdefault(s, i) != i:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(directories())
def test_short_names_never_equal_another_name(directory):
    names, fixed_text = directory
    fixed = {i: parse_short_name(s, "") for i, s in fixed_text.items()}
    if fixed_collision(names, fixed_text):
        with pytest.raises(InvalidInputError, match="FAT_shortname"):
            make_short_names(names, fixed, "")
        return
    result = make_short_names(names, fixed, "")
    assert len(result) == len(names)
    longs = [fold(n) for n in names]
    shorts = [shown(s) for s, _, _ in result]
    assert len(set(shorts)) == len(shorts)
    for i, (short, flags, needs_lfn) in enumerate(result):
        assert all(c in SHORT_CHARS or c == " " for c in short.decode())
        # what a reader compares with: no other entry has this short name as its long name
        assert shorts[i] not in longs[:i] + longs[i + 1:], (names[i], shorts[i])
        if i in fixed:
            assert short == fixed[i]
        if not needs_lfn:           # the short name (with its NT case flags) is the name
            base, _, ext = shorts[i].partition(".")
            base = base.lower() if flags & 0x08 else base
            ext = ext.lower() if flags & 0x10 else ext
            assert base + ("." + ext if ext else "") == names[i]


def three_pass_short_names(names: list[str], fixed: dict[int, bytes]) -> list[tuple[bytes, int, bool]]:
    """fatgen103's order spelled out, as the writer did it before issue 16: every long name
    reserved, then the given short names, then the names that are 8.3 themselves, then
    basis names with ~1..~4, or two characters, four hex digits of the CRC and ~1."""
    result: list[tuple[bytes, int, bool] | None] = [None] * len(names)
    taken: dict[str, int] = {}
    for i, name in enumerate(names):
        taken.setdefault(fold(name), i)
    for i, given in fixed.items():
        shown_name = shown(given)
        if taken.setdefault(shown_name, i) != i:
            raise InvalidInputError(f"{names[i]}: FAT_shortname {shown_name!r} is taken")
        result[i] = (given, 0, shown_name != names[i])
    for i, name in enumerate(names):
        if result[i] is None and exact_short_name(name) is not None:
            short, flags = exact_short_name(name)
            result[i] = (short, flags, False)
    full: set[tuple[str, str]] = set()
    for i, name in enumerate(names):
        if result[i] is not None:
            continue
        base, ext, needs_tail = basis_name(name)
        dotted = "." + ext if ext else ""
        pick = base + dotted if not needs_tail and taken.get(base + dotted, i) == i else None
        if pick is None and (base, ext) not in full:
            pick = next((c for c in (f"{base[:6]}~{n}{dotted}" for n in range(1, 5)) if c not in taken), None)
            if pick is None:
                full.add((base, ext))
        h = zlib.crc32(name.encode("utf-16-le"))
        while pick is None:
            cand = f"{base[:2]}{h & 0xFFFF:04X}~1{dotted}"
            pick = cand if cand not in taken else None
            h += 1
        taken[pick] = i
        result[i] = (pick.partition(".")[0].ljust(8).encode() + ext.ljust(3).encode(), 0, True)
    return [r for r in result if r is not None]


@settings(max_examples=400, deadline=None)
@given(directories())
def test_one_pass_short_names_equal_the_three_pass_rules(directory):
    """short_names() takes the names in one pass (an exact 8.3 name only takes its own,
    already reserved, long name): the same names as the three passes, and lfn_counts()
    (what plan() counts entries with) says which need long names exactly as it does."""
    names, fixed_text = directory
    fixed = {i: parse_short_name(s, "") for i, s in fixed_text.items()}
    if fixed_collision(names, fixed_text):
        with pytest.raises(InvalidInputError):
            three_pass_short_names(names, fixed)
        with pytest.raises(InvalidInputError, match="FAT_shortname"):
            short_names(names, fixed, "")
        return
    want = three_pass_short_names(names, fixed)
    assert make_short_names(names, fixed, "") == want
    counts = lfn_counts(names)
    for i, (name, (_short, _flags, needs_lfn)) in enumerate(zip(names, want)):
        if i not in fixed:
            assert bool(counts[i]) == needs_lfn, name
            assert counts[i] == (-(-len(name.encode("utf-16-le")) // 26) if needs_lfn else 0)


def test_one_pass_short_names_of_a_large_directory():
    """1,000 names of one basis: ~1..~4, then hashed tails, the same as the three passes."""
    names = sorted(f"file{i:05d}.txt" for i in range(1000)) + ["zz.TXT"]
    assert make_short_names(names, {}, "") == three_pass_short_names(names, {})


@pytest.mark.parametrize("name,shared", [("\u017f.txt", "s.txt"), ("\u0131x", "IX"), ("\u212a", "k")])
def test_names_folding_to_ascii_are_never_8_3(name, shared):
    """A name with a character that folds to ASCII (long s, dotless i; the Kelvin sign does
    not fold) is not itself 8.3: it keeps its long name; one that folds to an ASCII name
    clashes with it (compared as FAT compares)."""
    (short, flags, needs_lfn), = make_short_names([name], {}, "")
    assert needs_lfn and flags == 0 and lfn_counts([name]) == b"\x01"
    assert (fold(name) == fold(shared)) == (name != "\u212a")


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 1000])
def test_checksums_of_a_directory_at_once(count):
    """lfn_checksums() (all names at once from 64 on) equals fatgen103's ChkSum() loop
    (rotate right, add) name by name, and the reader's own checksum."""
    from sysexport.vfat.reader import lfn_checksum as reader_checksum
    rng = random.Random(count)
    shorts = [rng.randbytes(11) for _ in range(count)] + [b"\xff" * 11, bytes(11)][:count]

    def chksum(short):
        s = 0
        for b in short:
            s = ((s & 1) * 0x80 + (s >> 1) + b) & 0xFF
        return s
    assert lfn_checksums(shorts) == bytes(chksum(x) for x in shorts) == bytes(reader_checksum(x) for x in shorts)


# --- labels -----------------------------------------------------------------------------------

@pytest.mark.parametrize("given_label,stored", [
    ("EFI", "EFI"), ("efi", "EFI"), ("My Live", "MY LIVE"), ("A-B_C!#$%&'", "A-B_C!#$%&'"),
    ("12345678901", "12345678901"), ("x  ", "X"), ("", ""), ("(){}^@`~", "(){}^@`~"),
])
def test_check_label(given_label, stored):
    assert check_label(given_label) == stored


@pytest.mark.parametrize("bad,why", [
    ("My Live 2026", "12 characters"), ("a.b", "'.'"), ("a+b=c", "'+='"), ("café", "'é'"),
    (" lead", "leading space"), ("x" * 33, "33 characters"), ("a:b", "':'"), ('q"', "'\"'"),
])
def test_check_label_refuses(bad, why):
    with pytest.raises(InvalidInputError) as e:
        check_label(bad, "esp_label")
    msg = str(e.value)
    assert msg.startswith(f"esp_label {bad!r}:") and why in msg and "at most 11 characters" in msg


def test_check_label_type():
    with pytest.raises(InvalidInputError, match="expected str"):
        check_label(11)


@pytest.mark.parametrize("text,label", [
    ("My Live 2026", "MY LIVE 202"), ("sysexport demo", "SYSEXPORT D"), ("Café Live", "CAFE LIVE"),
    ("a.b+c", "A_B_C"), ("  x", "X"), ("Straße", "STRASSE"), ("日本語", "___"), ("x" * 49, "X" * 11),
    ("ISOHYBRID", "ISOHYBRID"), ("abcdefghij k", "ABCDEFGHIJ"), ("Disk!#1", "DISK!#1"),
])
def test_label_from(text, label):
    assert label_from(text) == label
    assert check_label(label) == label          # always a label FAT holds
