"""Where the ISO 9660 views are lenient (as Linux, libisofs and libarchive are) and where
strict, on real images with one deviation each: every deviation is a problem naming its
structure and byte offset, one bad record costs that entry only, loops and sizes taken
from the image end in InvalidImageError or a problem, never a hang or another error."""
from __future__ import annotations

import io
import os
import re

import pytest

from helpers import need, out, run
from sysexport.errors import InvalidImageError
from sysexport.iso9660 import susp
from sysexport.iso9660.reader import ISO9660Reader
from sysexport.iso9660.view import ISOView

PVD = 16 * 2048


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> bytes:
    """xorriso -R -J: a few files, a directory of 60 (its records fill two blocks), a
    subdirectory, a symlink, an El Torito catalog."""
    need("xorriso")
    d = tmp_path_factory.mktemp("lenient")
    src = d / "src"
    (src / "many").mkdir(parents=True)
    (src / "sub").mkdir()
    for i in range(60):
        (src / "many" / f"file-with-a-long-name-{i:03}.txt").write_bytes(f"{i}\n".encode())
    (src / "a.txt").write_bytes(b"a\n")
    (src / "b.txt").write_bytes(b"b\n")
    (src / "sub" / "c.txt").write_bytes(b"c\n")
    (src / "boot.img").write_bytes(bytes(2048))
    os.symlink("a.txt", src / "link")
    img = d / "base.iso"
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-b", "boot.img", "-no-emul-boot", "-c", "boot.cat",
         "-o", str(img), str(src)])
    return img.read_bytes()


def views(data: bytes, name: str = "rr") -> ISOView:
    return ISOView(ISO9660Reader(io.BytesIO(data)), name)


def record_of(data: bytes, path: str, name: str = "rr") -> int:
    return views(data, name).stat(path).fields["record_offset"]


def problems(view: ISOView) -> list[str]:
    return [str(p) for p in view.problems]


def files(view: ISOView) -> dict[str, bytes]:
    return {e.path: view.read(e.path) for e in view.walk() if e.is_file}


def test_intact(base):
    v = views(base)
    assert len(files(v)) == 65 and problems(v) == []        # with boot.cat


# --- descriptors -----------------------------------------------------------------------------

@pytest.mark.parametrize("offset,what", [(1400, "BP 1396-2048"), (75, "BP 73-80"), (882, "BP 883"),
                                         (7, "BP 8"), (100, "BP 89-120")])
def test_non_zero_reserved_byte_in_the_pvd(base, offset, what):
    data = bytearray(base)
    data[PVD + offset] = 0x55
    v = views(bytes(data))
    assert files(v) == files(views(base))
    assert [p for p in problems(v) if what in p and f"at byte {PVD + offset}" in p]


@pytest.mark.parametrize("length", [0, 33, 40, 255])
def test_root_record_whose_length_lies(base, length):
    data = bytearray(base)
    data[PVD + 156] = length
    v = views(bytes(data))
    assert files(v) == files(views(base))
    assert [p for p in problems(v) if p.startswith(f"root directory record at byte {PVD + 156}")]


def test_root_record_size_wrong_the_dot_record_is_used(base):
    data = bytearray(base)
    data[PVD + 156 + 10:PVD + 156 + 18] = (1 << 30).to_bytes(4, "little") + (1 << 30).to_bytes(4, "big")
    v = views(bytes(data))
    assert files(v) == files(views(base))
    assert [p for p in problems(v) if "'.' record says 2048; the latter is used" in p]


def test_both_endian_halves_that_differ(base):
    data = bytearray(base)
    data[PVD + 84:PVD + 88] = b"\x00\x00\x00\x01"            # volume_space_size, big-endian half
    at = record_of(base, "/b.txt")
    data[at + 14] ^= 0x40                                    # b.txt's data_length, big-endian half
    v = views(bytes(data))
    assert files(v) == files(views(base))
    ps = problems(v)
    assert [p for p in ps if "volume_space_size: little-endian" in p]
    assert [p for p in ps if p.startswith(f"directory record at byte {at}: data_length: little-endian")]


def test_missing_terminator(base):
    r = ISO9660Reader(io.BytesIO(base))
    term = [d.offset for d in r.descriptors if d.kind == "terminator"][0]
    data = bytearray(base)
    data[term:term + 2048] = bytes(2048)
    v = views(bytes(data))
    assert files(v) == files(views(base))
    assert [p for p in problems(v) if "no terminator" in p]


def test_strict_where_the_others_are(base, tmp_path):
    """No "CD001" at LBA 16, no primary descriptor, a block size other than 2048: not an ISO."""
    for patch, match in (((PVD + 1, b"CD002"), "standard identifier"), ((PVD, b"\x02"), "no primary"),
                         ((PVD + 128, b"\x00\x02\x02\x00"), "logical_block_size 512")):
        data = bytearray(base)
        at, new = patch
        data[at:at + len(new)] = new
        with pytest.raises(InvalidImageError, match=match):
            ISO9660Reader(io.BytesIO(bytes(data)))


# --- directory records ---------------------------------------------------------------------

def test_one_bad_record_skips_that_entry(base):
    """An identifier that runs past its record, in the middle of a directory: that entry is
    missing, with a problem naming the record's byte offset; the rest is read."""
    at = record_of(base, "/many/file-with-a-long-name-007.txt")
    data = bytearray(base)
    data[at + 32] = data[at] - 20                            # length_of_file_identifier too long
    v = views(bytes(data))
    got = files(v)
    want = files(views(base))
    del want["/many/file-with-a-long-name-007.txt"]
    assert got == want
    assert f"directory record at byte {at}: a file identifier of {data[at] - 20} bytes runs past the record's " \
           f"{data[at]} bytes; entry skipped" in problems(v)


def test_record_too_short_skips_the_rest_of_that_block(base):
    v0 = views(base)
    many = v0.stat("/many")
    start = many.extents[0][0]
    first_block = [e for e in v0.reader.children("rr", many) if e.fields["record_offset"] < start + 2048]
    victim = first_block[len(first_block) // 2]
    at = victim.fields["record_offset"]
    data = bytearray(base)
    data[at] = 20                                            # shorter than a record's fixed part
    v = views(bytes(data))
    names = v.listdir("/many")
    lost = [e.name for e in first_block if e.fields["record_offset"] >= at]
    assert names == [n for n in v0.listdir("/many") if n not in lost]
    assert len(names) > 20                                   # the second block is read
    assert f"directory record at byte {at}: length_of_directory_record 20 (at least 34); the rest of this " \
           "block is skipped" in problems(v)


def test_extent_outside_the_image_skips_the_entry(base):
    at = record_of(base, "/a.txt")
    data = bytearray(base)
    data[at + 2:at + 10] = (10 ** 7).to_bytes(4, "little") + (10 ** 7).to_bytes(4, "big")
    v = views(bytes(data))
    assert "/a.txt" not in files(v) and "/b.txt" in files(v)
    assert [p for p in problems(v) if p.startswith(f"directory record at byte {at}: its extent at byte")]


def test_interleaved_file_is_not_read(base):
    at = record_of(base, "/a.txt")
    data = bytearray(base)
    data[at + 26], data[at + 27] = 1, 1                      # file unit size, interleave gap
    v = views(bytes(data))
    assert "/a.txt" not in files(v) and v.read("/b.txt") == b"b\n"
    assert [p for p in problems(v) if p.startswith(f"directory record at byte {at}: an interleaved file")]


def test_truncated_image_reads_what_is_there(base):
    v0 = views(base)
    b = v0.stat("/b.txt").extents[0][0]
    cut = base[:b]                                           # every file from b.txt on is gone
    v = views(cut)
    got = files(v)
    assert got and set(got) < set(files(v0)) and "/b.txt" not in got
    assert [p for p in problems(v) if "lies outside the image" in p]


def test_directory_loop_is_an_invalid_image_error(base):
    """sub's record points at the root's extent: the walk stops with InvalidImageError
    (a loop), lookups of other paths still work, nothing hangs."""
    at = record_of(base, "/sub")
    root_lba = ISO9660Reader(io.BytesIO(base)).volume.root_lba
    data = bytearray(base)
    data[at + 2:at + 10] = root_lba.to_bytes(4, "little") + root_lba.to_bytes(4, "big")
    v = views(bytes(data))
    with pytest.raises(InvalidImageError, match="loop"):
        list(v.walk())
    assert v.read("/a.txt") == b"a\n"
    assert v.read("/sub/sub/sub/a.txt") == b"a\n"            # a path through the loop is finite


def test_duplicate_rock_ridge_names_keep_the_first(base):
    data = base.replace(b"NM\x0a\x01\x00b.txt", b"NM\x0a\x01\x00a.txt")
    assert data != base
    v = views(data)
    assert v.read("/a.txt") == b"a\n"
    assert [p for p in problems(v) if "name 'a.txt' is already in this directory (rr view)" in p]


@pytest.mark.parametrize("name", [b"a/b.c", b"x\x00y.z"])
def test_rock_ridge_name_that_is_not_a_component(base, name):
    at = record_of(base, "/b.txt")
    data = base.replace(b"NM\x0a\x01\x00b.txt", b"NM\x0a\x01\x00" + name)
    v = views(data)
    assert sorted(files(v)) == sorted(p for p in files(views(base)) if p != "/b.txt")
    assert [p for p in problems(v) if p.startswith(f"directory record at byte {at}: Rock Ridge name")]


def test_nm_current_or_parent_falls_back_to_the_plain_name(base):
    """An NM entry flagged CURRENT or PARENT names no file (RRIP 4.1.4): the ISO 9660 name
    is used, as Linux does."""
    data = base.replace(b"NM\x0a\x01\x00b.txt", b"NM\x0a\x01\x02b.txt")
    v = views(data)
    assert v.read("/B.TXT") == b"b\n" and "b.txt" not in v.listdir("/")


# --- names ----------------------------------------------------------------------------------

def test_plain_names_version_suffix_trailing_dot_lower_case(tmp_path):
    """genisoimage -N (no ";1"), -d (no '.' for an empty extension), -allow-lowercase, and
    identifiers patched to other versions (";2", ";"): the plain names, as isoinfo shows
    them without version; lower case and other characters noted once per directory."""
    need("genisoimage", "isoinfo")
    src = tmp_path / "s"
    src.mkdir()
    for n in ("README", "lower.txt", "UP.TXT", "NOEXT"):
        (src / n).write_bytes(n.encode())
    for flags, want in (([], {"README", "LOWER.TXT", "UP.TXT", "NOEXT"}),
                        (["-N", "-d"], {"README", "LOWER.TXT", "UP.TXT", "NOEXT"}),
                        (["-allow-lowercase"], {"README", "lower.txt", "UP.TXT", "NOEXT"})):
        img = str(tmp_path / f"p{len(flags)}.iso")
        run(["genisoimage", "-quiet", *flags, "-o", img, str(src)])
        v = views(open(img, "rb").read(), "iso9660")
        assert set(v.listdir("/")) == want, flags
        listed = {ln.strip("/").rsplit(";", 1)[0].rstrip(".") for ln in out(["isoinfo", "-f", "-i", img]).split()}
        assert listed == want
        assert {v.read("/" + n) for n in want} == {b"README", b"lower.txt", b"UP.TXT", b"NOEXT"}
        if "-allow-lowercase" in flags:
            assert [p for p in problems(v) if "other than d-characters" in p]
    data = open(str(tmp_path / "p0.iso"), "rb").read()
    data = data.replace(b"README.;1", b"README.;2").replace(b"UP.TXT;1", b"UP.TXT;;")
    v = views(data, "iso9660")
    assert set(v.listdir("/")) == {"README", "LOWER.TXT", "UP.TXT;", "NOEXT"}


# --- Rock Ridge continuation areas, SL, NM (the decoder on crafted areas) --------------------------

def _ce(block: int, offset: int, length: int) -> bytes:
    def both(v: int) -> bytes:
        return v.to_bytes(4, "little") + v.to_bytes(4, "big")
    return b"CE\x1c\x01" + both(block) + both(offset) + both(length)


def _area_reader(areas: dict[tuple[int, int], bytes], image_size: int = 1 << 20):
    def read(block: int, offset: int, length: int):
        at = block * 2048 + offset
        if at + length > image_size:
            return "outside the image"
        data = areas.get((block, offset), b"")
        return at, (data + bytes(length))[:length]
    return read


def _decode(system_use: bytes, areas: dict[tuple[int, int], bytes], size: int = 1 << 20):
    notes: list[str] = []
    items = susp.entries(system_use, 1000, _area_reader(areas, size), lambda at, m: notes.append(m))
    return susp.decode(items, 1000, lambda at, m: notes.append(m)), notes


def test_ce_chain_followed_and_loop_detected():
    nm1 = b"NM\x08\x01\x01abc"
    nm2 = b"NM\x08\x01\x00def"
    info, notes = _decode(nm1 + _ce(20, 0, 28 + len(nm2)), {(20, 0): nm2 + _ce(20, 0, 100)})
    assert info.name == b"abcdef"
    assert [n for n in notes if "a loop" in n]


def test_ce_chain_is_bounded_and_checked_against_the_image():
    areas = {(30 + i, 0): _ce(31 + i, 0, 28) for i in range(100)}
    info, notes = _decode(_ce(30, 0, 28), areas)
    assert [n for n in notes if f"more than {susp.MAX_CE_CHAIN} continuation areas" in n]
    info, notes = _decode(b"NM\x06\x01\x00x" + _ce(10 ** 6, 0, 50), {})
    assert info.name == b"x" and [n for n in notes if "outside the image" in n]
    info, notes = _decode(_ce(3, 0, 1 << 30), {})
    assert [n for n in notes if "continuation area of 1073741824 bytes" in n]


def test_sl_every_shape():
    def sl(flags: int, *comps: tuple[int, bytes]) -> bytes:
        area = b"".join(bytes((f, len(c))) + c for f, c in comps)
        return b"SL" + bytes((5 + len(area), 1, flags)) + area
    cases = [
        ([sl(0, (8, b""))], b"/"),
        ([sl(0, (8, b""), (0, b"usr"), (0, b"bin"))], b"/usr/bin"),
        ([sl(0, (2, b""), (4, b""), (0, b"x"))], b"./../x"),
        ([sl(1, (0, b"ab")), sl(0, (0, b"cd"))], b"ab/cd"),           # two entries, '/' between
        ([sl(1, (1, b"ab")), sl(0, (0, b"cd"))], b"abcd"),            # a component continued across
        ([sl(0, (1, b"ab"), (0, b"cd"))], b"abcd"),                   # continued within an entry
        ([sl(0, (0, b"a"), (0, b""), (0, b"b"))], b"a//b"),
        ([sl(0, (0x10, b""), (0, b"x"))], b"/x"),                      # volume root: left out
    ]
    for entries, want in cases:
        info, notes = _decode(b"PX\x24\x01" + bytes(32) + b"".join(entries), {})
        assert info.target == want, (entries, want)


def test_pn_both_conventions():
    assert susp.decode_pn(0, os.makedev(8, 300) & 0xFFFFFFFF) == (8, 300)    # libisofs, sysexport
    assert susp.decode_pn(8, 300) == (8, 300)                                 # mkisofs, genisoimage
    dev = os.makedev(5000, 3)
    assert susp.decode_pn(dev >> 32, dev & 0xFFFFFFFF) == (5000, 3)           # a 64-bit dev_t


# --- El Torito ---------------------------------------------------------------------------------

def test_el_torito_checksum_and_validation(base):
    r = ISO9660Reader(io.BytesIO(base))
    cat = r.lba_offset(r.boot_catalog_lba)
    assert len(r.boot_catalog()) == 1
    data = bytearray(base)
    data[cat + 0x1C] ^= 0xFF
    r = ISO9660Reader(io.BytesIO(bytes(data)))
    assert len(r.boot_catalog()) == 1
    assert [p for p in r.problems if p.structure == "boot catalog validation entry" and p.offset == cat]
    data[cat + 0x1E] = 0
    with pytest.raises(InvalidImageError, match=f"boot catalog validation entry at byte {cat}"):
        ISO9660Reader(io.BytesIO(bytes(data))).boot_catalog()
    data = bytearray(base)
    data[PVD + 2048 + 71:PVD + 2048 + 75] = (10 ** 8).to_bytes(4, "little")
    with pytest.raises(InvalidImageError, match="outside the image"):
        ISO9660Reader(io.BytesIO(bytes(data))).boot_catalog()


def test_problem_offsets_are_image_offsets(base):
    """A volume 1 MiB into a file: every offset in problems and extents is of the file."""
    data = bytearray(base)
    data[PVD + 1400] = 1
    shifted = bytes(1 << 20) + bytes(data)
    r = ISO9660Reader(io.BytesIO(shifted), offset=1 << 20)
    assert [p for p in r.problems if p.offset == (1 << 20) + PVD + 1400]
    v = ISOView(r, "rr")
    assert v.read("/a.txt") == b"a\n"
    assert v.stat("/a.txt").extents[0][0] == views(base).stat("/a.txt").extents[0][0] + (1 << 20)
    assert re.match(r"volume descriptor at byte \d+: primary descriptor", str(r.problems[0]))


# --- verify: everything checked at once ---------------------------------------------------------

def test_verify_boot_info_table_and_path_tables(tmp_path):
    """xorriso -boot-info-table: verify() finds nothing; a wrong checksum in the table, or a
    path table naming another block, is a problem there."""
    need("xorriso")
    from sysexport.iso9660.view import verify
    src = tmp_path / "s"
    (src / "d").mkdir(parents=True)
    (src / "boot.img").write_bytes(bytes(range(256)) * 16)
    img = tmp_path / "bit.iso"
    run(["xorriso", "-as", "mkisofs", "-R", "-b", "boot.img", "-no-emul-boot", "-boot-info-table",
         "-o", str(img), str(src)])
    data = img.read_bytes()
    r = ISO9660Reader(io.BytesIO(data))
    assert [str(p) for p in verify(r) if "d-characters" not in p.message] == []   # xorriso: "boot.img;1"
    entry = r.boot_catalog()[0]
    assert r.boot_info_table(entry, 4096)["ok"]
    bad = bytearray(data)
    bad[entry.device_offset + 20] ^= 1                      # bi_csum
    problems = verify(ISO9660Reader(io.BytesIO(bytes(bad))))
    assert [p for p in problems if p.structure == "boot info table" and p.offset == entry.device_offset + 8]
    bad = bytearray(data)
    table = r.lba_offset(r.pvd.location_of_type_l_path_table)
    bad[table + 2] += 1                                     # the root's extent, in the L table only
    problems = [str(p) for p in verify(ISO9660Reader(io.BytesIO(bytes(bad))))]
    assert [p for p in problems if "type M path table differs" in p]
    assert [p for p in problems if "not listed: blocks" in p]


def test_directories_pointing_into_each_other_cost_one_read(base):
    """Every record of /many made a directory pointing back at /many (each with another
    size) or into its middle: each is read once at most, quickly; the walk ends with an
    InvalidImageError (a loop) and the other trees' entries stay readable."""
    import time
    v0 = views(base)
    many = v0.stat("/many")
    lba = many.fields["_dir"][0]
    data = bytearray(base)
    for i, e in enumerate(v0.reader.children("rr", many)):
        at = e.fields["record_offset"]
        target = lba if i % 2 else lba + 1                    # the directory itself, or its second block
        size = 2048 * (1 + i % 3) + 34 * i
        data[at + 2:at + 10] = target.to_bytes(4, "little") + target.to_bytes(4, "big")
        data[at + 10:at + 18] = size.to_bytes(4, "little") + size.to_bytes(4, "big")
        data[at + 25] |= 0x02
    t0 = time.monotonic()
    r = ISO9660Reader(io.BytesIO(bytes(data)))
    for name in ("rr", "iso9660"):
        with pytest.raises(InvalidImageError, match="loop"):
            list(ISOView(r, name).walk())
    assert time.monotonic() - t0 < 2
    assert len(files(ISOView(r, "joliet"))) == 65              # the Joliet tree has its own records
    assert ISOView(r, "rr").read("/a.txt") == b"a\n"
    ps = [str(p) for p in r.problems]
    assert [p for p in ps if re.match(r"directory record at byte \d+: directory extent at byte \d+ lies inside", p)]
    assert [p for p in ps if re.match(r"directory record at byte \d+: the directory at byte \d+ is referred to", p)]
