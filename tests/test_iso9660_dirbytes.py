"""The one-pass directories of the ISO writer (sysexport/iso9660/dirbytes.py, names.py).

* Names: :func:`names.directory_iso_names` and :func:`names.directory_joliet_names` (the
  per-directory fast path) give the identifiers and the record order of
  :func:`names.assign_iso_names` / :func:`names.assign_joliet_names` with ECMA-119 9.3's
  :func:`names.iso_sort_key`, on random directories (hypothesis): plain, dotted, dot-first,
  long, non-ASCII and colliding names, names given by the caller.
* Records: for random trees (every file type, hard links, names hidden per namespace,
  Rock Ridge 1.09 / 1.12 / off, names long enough to need a continuation area), every
  directory that :func:`dirbytes.size_directory` sized and :func:`dirbytes.directories_bytes`
  built (each Joliet directory with the record middles of its ISO 9660 twin) equals, byte for byte, the same directory laid out and built record by record
  through the general path (:func:`layout.lay_record`, :func:`layout.general_record`).
* Readers: such a tree's image, read by isoinfo (ISO 9660 and Joliet identifiers as the
  general path gives them) and bsdtar (Rock Ridge names and bytes), and checked by isovfy.
"""
from __future__ import annotations

import os
import stat
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import need

from sysexport import ISO9660
from sysexport.iso9660 import dirbytes, hierarchy, layout
from sysexport.iso9660 import names as iso_names

MTIME = 1_650_000_000
NAME_CHARS = "abcXYZ019._-~ é,;"


NAMES = st.one_of(
    st.text(alphabet="ab.", min_size=25, max_size=70).map(lambda s: s.strip(".") or "n"),   # at the limits
    st.text(alphabet=NAME_CHARS, min_size=1, max_size=8).map(lambda s: "." + s),
    st.text(alphabet="ab*:?\\\x01\U0001f600\udc80", min_size=1, max_size=6),   # what Joliet replaces
    st.text(alphabet=NAME_CHARS, min_size=1, max_size=14))


@st.composite
def directory(draw: st.DrawFn) -> list[tuple[str, bool, str | None]]:
    """One directory's children: (basename, is_dir, a name given by the caller or None)."""
    names = draw(st.lists(NAMES, max_size=12, unique=True))
    kids = []
    for i, name in enumerate(sorted(n for n in names if n not in (".", ".."))):
        given = f"GIVEN{i}" if draw(st.integers(0, 9)) == 0 else None
        kids.append((name, draw(st.booleans()), given))
    return kids


@settings(max_examples=400, deadline=None)
@given(kids=directory(), level=st.sampled_from([1, 2, 3]))
def test_iso_names_equal_the_general_rule(kids, level):
    texts, keys = iso_names.directory_iso_names(kids, level)
    named = iso_names.assign_iso_names([(i, *k) for i, k in enumerate(kids)], level)
    assert [t.encode("ascii") for t in texts] == [named[i] for i in range(len(kids))]
    fast_order = sorted(range(len(kids)), key=keys.__getitem__)
    general_order = sorted(range(len(kids)), key=lambda i: iso_names.iso_sort_key(named[i]))
    assert fast_order == general_order


@settings(max_examples=400, deadline=None)
@given(kids=directory())
def test_joliet_names_equal_the_general_rule(kids):
    kids = [(name, is_dir, None if given is None else given.lower()) for name, is_dir, given in kids]
    fast = iso_names.directory_joliet_names(kids)
    named = iso_names.assign_joliet_names([(i, *k) for i, k in enumerate(kids)])
    general = [named[i] for i in range(len(kids))]
    if fast is None:                    # the names themselves, in the names' order
        assert general == [name.encode("utf-16-be") for name, _, _ in kids]
        assert sorted(general) == general
    else:
        assert fast == general


# ------------------------------------------------------------------------------ records

@st.composite
def tree(draw: st.DrawFn) -> list[dict]:
    entries: list[dict] = []
    dirs = [""]
    for i in range(draw(st.integers(1, 40))):
        parent = draw(st.sampled_from(dirs))
        base = draw(st.sampled_from(["f", "File.TXT", "a.b.c", ".rc", "Ünï", "x" * 120, "long" * 60, "n"]))
        name = f"{parent}/{base}{i}".lstrip("/")
        kind = draw(st.sampled_from(["file", "file", "file", "empty", "dir", "sym", "fifo", "link"]))
        times = {"mtime": draw(st.sampled_from([MTIME, MTIME + 0.5, -1.5, 0, None]))}
        if draw(st.booleans()):
            times["atime"] = MTIME + 7
        owner = {"uid": draw(st.sampled_from([0, 1000, 0xFFFFFFFF])), "gid": draw(st.sampled_from([0, 5]))}
        hidden = draw(st.sampled_from([[], [], ["joliet"], ["iso9660"]]))
        common = {"name": name, **times, **owner, "hidden_from": hidden}
        if kind == "dir":
            entries.append({**common, "mode": 0o40755})
            dirs.append(name)
        elif kind == "sym":
            entries.append({**common, "mode": 0o120777, "data": "t" * draw(st.integers(1, 300))})
        elif kind == "fifo":
            entries.append({**common, "mode": 0o10644})
        elif kind == "link" and any(e["mode"] == 0o100644 and e.get("ino") for e in entries):
            target = next(e for e in entries if e["mode"] == 0o100644 and e.get("ino"))
            entries.append({**common, "mode": 0o100644, "data": target["data"], "dev": 1, "ino": target["ino"]})
        else:
            data = b"" if kind == "empty" else bytes([i % 256]) * draw(st.integers(1, 5000))
            entries.append({**common, "mode": 0o100644 | draw(st.sampled_from([0, 0o4000])), "data": data,
                            "dev": 1, "ino": i + 1})
    return entries


def _reference(d: layout.DirOut, rr_mod, version: str) -> tuple[bytes, int, dict, dict]:
    """The directory laid out and built one record at a time by the general path."""
    records = hierarchy.records_of(d, rr_mod is not None)
    used, conts = layout.lay_records(records, d, rr_mod, version, MTIME)
    buf = bytearray(d.placed_extent.size_bytes)
    continuation: dict[int, bytes] = {}
    for rec in records:
        data = layout.general_record(rec, rr_mod, version, MTIME, continuation)
        assert len(data) == rec.length
        buf[rec.pos:rec.pos + len(data)] = data
    return bytes(buf), used, conts, continuation


def _build(entries: list[dict], rock_ridge: str | None, path: str | None = None) -> tuple[ISO9660, object]:
    iso = ISO9660(path, rock_ridge=rock_ridge, default_time=MTIME)
    for e in entries:
        if rock_ridge is None and (e["mode"] in (0o120777, 0o10644) or e["name"].count("/") > 6):
            continue                    # what only Rock Ridge can record
        iso.add(e)
    return iso, iso.plan()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=tree(), rock_ridge=st.sampled_from(["1.09", "1.12", None]))
def test_fast_records_equal_the_general_path(entries, rock_ridge):
    iso, plan = _build(entries, rock_ridge)
    version = rock_ridge or ""
    written: list[int] = []
    got: dict[int, bytes] = {}
    every_continuation: dict[int, bytes] = {}
    # As the writer makes them: each Joliet directory after the ISO 9660 one of its node,
    # taking the middles of its files' records from it.
    for d, data in dirbytes.directories_bytes(plan.iso_dirs, plan.joliet_dirs, plan.rr_mod, version, MTIME, got):
        expected, used, conts, continuation = _reference(d, plan.rr_mod, version)
        assert used == d.used_bytes
        assert {i: c[0] for i, c in conts.items()} == {i: c[0] for i, c in (d.conts or {}).items()}
        assert data == expected
        every_continuation.update(continuation)
        written.append(id(d))
    assert got == every_continuation
    assert sorted(written) == sorted(id(d) for d in plan.iso_dirs + plan.joliet_dirs)


def _names_of(listing: str) -> set[str]:
    """The identifiers in an ``isoinfo -l`` listing (the last column), '.' and '..' left out."""
    out = set()
    for line in listing.splitlines():
        if line.startswith(("d", "-")) and "]" in line:
            name = line.rsplit("]", 1)[1].strip()
            if name not in (".", ".."):
                out.add(name)
    return out


def test_readers_see_the_general_names(tmp_path):
    """A directory of colliding, long, dot-first and non-ASCII names and one of plain names,
    read by isoinfo (ISO 9660 and Joliet identifiers: those the general path derives) and
    bsdtar (Rock Ridge names and bytes), and isovfy."""
    need("isoinfo", "bsdtar", "isovfy")
    names = ["read me.txt", "READ_ME.TXT", "read.me.txt", ".profile", "_profile", "Ünïcode.tar.gz",
             "a" * 40 + ".txt", "a" * 41 + ".txt", "x*y?z", "x_y_z", "n" * 70, "n" * 71, "e\U0001f600"]
    entries = [{"name": f"mixed/{n}", "mode": 0o100644, "data": n.encode("utf-8", "surrogateescape"),
                "mtime": MTIME} for n in names]
    entries += [{"name": f"plain/file{i:03d}.dat", "mode": 0o100644, "data": b"%d" % i, "mtime": MTIME}
                for i in range(300)]
    image = str(tmp_path / "names.iso")
    iso, _plan = _build(entries, "1.09", image)
    iso.finish()
    for tree_name, flag, kids_of in (("iso9660", [], lambda ks: iso_names.assign_iso_names(ks, 3)),
                                     ("joliet", ["-J", "-j", "iso8859-1"], iso_names.assign_joliet_names)):
        listing = subprocess.run(["isoinfo", "-l", *flag, "-i", image], check=True, capture_output=True,
                                 text=True, encoding="latin-1").stdout
        for sub, members in (("mixed", names), ("plain", [f"file{i:03d}.dat" for i in range(300)])):
            kids = [(n, n, False) if tree_name == "joliet" else (n, n, False, None) for n in members]
            want = {v.decode("ascii" if tree_name == "iso9660" else "utf-16-be") for v in kids_of(kids).values()}
            assert want <= _names_of(listing), (tree_name, sub)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["bsdtar", "-xf", image, "-C", str(out)], check=True)
    for n in names:
        assert (out / "mixed" / n).read_bytes() == n.encode("utf-8", "surrogateescape")
    assert len(os.listdir(out / "plain")) == 300
    check = subprocess.run(["isovfy", image], capture_output=True, text=True)
    assert "No errors found" in check.stdout + check.stderr
    assert stat.S_ISDIR(os.stat(out / "plain").st_mode)


def _numbered_by_counting(kids: list[tuple[str, bool]], level: int) -> dict[int, bytes]:
    """assign_iso_names's rule with the free number found by counting from 1 each time."""
    ordered = sorted(range(len(kids)), key=lambda i: kids[i][0].encode("utf-8", "surrogateescape"))
    cand = {i: iso_names.iso_candidate(kids[i][0], kids[i][1], level) for i in ordered}
    wanted = {iso_names.clash_key(iso_names.format_iso_identifier(*cand[i], kids[i][1])) for i in ordered}
    used: set[bytes] = set()
    out: dict[int, bytes] = {}
    later = []
    for i in ordered:
        ident = iso_names.format_iso_identifier(*cand[i], kids[i][1])
        if iso_names.clash_key(ident) in used:
            later.append(i)
        else:
            used.add(iso_names.clash_key(ident))
            out[i] = ident
    for i in later:
        n = 1
        while True:
            s, e = iso_names._numbered_iso(*cand[i], n, kids[i][1], level)
            ident = iso_names.format_iso_identifier(s, e, kids[i][1])
            if iso_names.clash_key(ident) not in used | wanted:
                break
            n += 1
        used.add(iso_names.clash_key(ident))
        out[i] = ident
    return out


@settings(max_examples=60, deadline=None)
@given(level=st.sampled_from([1, 2, 3]), count=st.integers(1, 400), width=st.integers(1, 6),
       stem=st.sampled_from(["file", "a", "longer_name_", "x" * 29, "dir"]), dirs=st.booleans())
def test_numbered_names_as_counting_from_one(level, count, width, stem, dirs):
    """Thousands of names colliding (level 1 truncates "file00001.txt" to FILE0000): the
    numbers assign_iso_names gives, found without walking every taken one, are those of
    counting from 1 for each name."""
    kids = [(f"{stem}{i:0{width}d}.txt" if not (dirs and i % 3 == 0) else f"{stem}{i:0{width}d}", dirs and i % 3 == 0)
            for i in range(count)]
    got = iso_names.assign_iso_names([(i, name, is_dir, None) for i, (name, is_dir) in enumerate(kids)], level)
    assert got == _numbered_by_counting(kids, level)
