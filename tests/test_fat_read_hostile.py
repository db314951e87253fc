"""The FAT view on broken and hostile volumes: each fault is made in a real image (mkfs.fat +
mcopy) by patching the structure it is about, and the view must skip or mark that entry,
record the problem (naming the structure and its byte offset) and read the rest; a BPB
that cannot describe a volume gives InvalidImageError naming the field."""
from __future__ import annotations

import calendar
import io
import os
import struct

import pytest

from helpers import need, run
from helpers.fatimages import MTOOLS_ENV
from sysexport.errors import InvalidImageError, InvalidInputError
from sysexport.vfat.reader import VFATReader, fat_time, lfn_checksum
from sysexport.vfat.view import FATView

FILES = {"big.bin": bytes(range(256)) * 40, "small.txt": b"small\n", "Long File Name.txt": b"long\n",
         "d/e/f.txt": b"deep\n", "d/other.txt": b"other\n", "README.TXT": b"readme\n"}


def make(tmp_path, fat_type: int = 16, files: dict[str, bytes] = FILES) -> str:
    need("mkfs.fat", "mcopy", "mmd")
    img = str(tmp_path / f"h{fat_type}.img")
    size = {12: 1024, 16: 4096, 32: 34 * 1024}[fat_type]
    run(["mkfs.fat", "-C", "-F", str(fat_type), "-s", "1", "-n", "HOSTILE", img, str(size)])
    made: set[str] = set()
    for rel, data in files.items():
        parts = rel.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in made:
                run(["mmd", "-i", img, "::/" + d], env_extra=MTOOLS_ENV)
                made.add(d)
        src = str(tmp_path / "src.bin")
        with open(src, "wb") as f:
            f.write(data)
        run(["mcopy", "-i", img, src, "::/" + rel], env_extra=MTOOLS_ENV)
    return img


def view(img: str | bytes, **kw) -> FATView:
    f = io.BytesIO(img) if isinstance(img, bytes) else open(img, "rb")
    return FATView(f, **kw)


def patch(img: str, offset: int, data: bytes) -> None:
    with open(img, "r+b") as f:
        f.seek(offset)
        f.write(data)


def set_fat(img: str, cluster: int, value: int) -> None:
    """Write FAT[cluster] = value in every FAT copy."""
    v = view(img).volume
    for i in range(v.fat_count):
        base = v.fat_offset + i * v.fat_bytes
        with open(img, "r+b") as f:
            if v.fat_type == 12:
                at = base + cluster * 3 // 2
                f.seek(at)
                old = struct.unpack("<H", f.read(2))[0]
                new = (old & 0x000F) | (value << 4) if cluster & 1 else (old & 0xF000) | value
                f.seek(at)
                f.write(struct.pack("<H", new))
            elif v.fat_type == 16:
                f.seek(base + 2 * cluster)
                f.write(struct.pack("<H", value))
            else:
                f.seek(base + 4 * cluster)
                f.write(struct.pack("<I", value))


def entry(img: str, path: str):
    return view(img).stat(path)


def clusters(img: str, path: str) -> list[int]:
    v = view(img)
    e = v.stat(path)
    base = v.volume.data_offset
    cs = v.volume.cluster_size
    return [c for off, size in e.extents for c in range((off - base) // cs + 2, (off - base + size - 1) // cs + 3)]


def readable(v: FATView) -> dict[str, bytes]:
    out = {}
    for e in v.walk():
        if e.is_file and "error" not in e.fields:
            out[e.path] = v.read(e.path)
    return out


# --- chains ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fat_type", [12, 16, 32])
@pytest.mark.parametrize("fault,message", [
    ("loop", "loops back to cluster"),
    ("out_of_range", "out of range"),
    ("free", "free cluster"),
    ("short", "ends after"),
    ("bad", "bad-cluster mark"),
])
def test_broken_file_chain_marks_that_file_only(tmp_path, fat_type, fault, message):
    img = make(tmp_path, fat_type)
    cs = clusters(img, "/big.bin")
    assert len(cs) == -(-len(FILES["big.bin"]) // 512) >= 5
    v0 = view(img).volume
    eoc = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}[fat_type]
    if fault == "loop":
        set_fat(img, cs[3], cs[1])
    elif fault == "out_of_range":
        set_fat(img, cs[2], v0.cluster_count + 10)
    elif fault == "free":
        set_fat(img, cs[2], 0)
    elif fault == "short":
        set_fat(img, cs[2], eoc)
    elif fault == "bad":
        set_fat(img, cs[2], {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}[fat_type])
    v = view(img)
    big = v.stat("/big.bin")
    assert message in big.fields["error"] and "big.bin" in big.fields["error"]
    with pytest.raises(InvalidImageError, match=message):
        v.read("/big.bin")
    assert any(message in p for p in v.problems)
    want = {"/" + k: d for k, d in FILES.items() if k != "big.bin"}
    assert readable(v) == want
    assert v.check()                           # verify sees it


@pytest.mark.parametrize("fat_type", [12, 32])
def test_size_past_the_chain_and_chain_past_the_size(tmp_path, fat_type):
    img = make(tmp_path, fat_type)
    e = entry(img, "/small.txt")
    patch(img, e.fields["entry_offset"] + 28, struct.pack("<I", 10_000))     # DIR_FileSize
    v = view(img)
    error = v.stat("/small.txt").fields["error"]
    assert "ends after 1 clusters" in error and "20 are needed" in error
    with pytest.raises(InvalidImageError, match="needed"):
        v.read("/small.txt")
    assert v.read("/README.TXT") == FILES["README.TXT"]
    (tmp_path / "second").mkdir()
    img2 = make(tmp_path / "second", fat_type)
    cs = clusters(img2, "/README.TXT")
    set_fat(img2, cs[-1], cs[-1] + 200)                                       # the chain goes on
    v = view(img2)
    assert v.read("/README.TXT") == FILES["README.TXT"]                       # the size decides, as on Linux
    assert any("goes on past" in p for p in v.check())


def test_fat_entry_past_the_image(tmp_path):
    img = make(tmp_path, 32)
    with open(img, "rb") as f:
        data = f.read()
    v = view(img).volume
    cut = data[:v.fat_offset + 64]                  # the FAT cut after 16 entries: nothing else there
    vv = view(cut)                                  # the volume opens, with its problems ...
    assert vv.listdir("/") == []                    # ... and its root directory past the end is empty
    assert any("the image ends after 16" in p for p in vv.problems)
    assert any("claims" in p for p in vv.problems)
    assert any("past the end" in p for p in vv.problems)


# --- directories ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fat_type", [16, 32])
def test_directory_chain_that_cycles(tmp_path, fat_type):
    files = {f"d/file{i:03d}.txt": b"%d" % i for i in range(40)}     # 40 * 2 entries: several clusters
    img = make(tmp_path, fat_type, files)
    cs = clusters(img, "/d")
    assert len(cs) >= 3
    set_fat(img, cs[-1], cs[0])
    v = view(img)
    names = v.listdir("/d")
    assert len(names) == len(set(names)) == 40
    assert any("loops back" in p for p in v.problems)
    assert sum(1 for _ in v.walk()) == 42


@pytest.mark.parametrize("target", ["self", "root", "parent", "sibling"])
def test_directory_that_contains_itself_or_an_ancestor(tmp_path, target):
    img = make(tmp_path, 16, {"d/e/f.txt": b"f", "d/g/h.txt": b"h", "x.txt": b"x"})
    e = entry(img, "/d/e")
    cluster = {"self": e.fields["first_cluster"], "root": 0, "parent": entry(img, "/d").fields["first_cluster"],
               "sibling": entry(img, "/d/g").fields["first_cluster"]}[target]
    # a directory entry in /d/e pointing at the target
    g = entry(img, "/d/e/f.txt")
    patch(img, g.fields["entry_offset"] + 11, bytes([0x10]))          # f.txt becomes a directory ...
    patch(img, g.fields["entry_offset"] + 26, struct.pack("<H", cluster))   # ... of the target's cluster
    v = view(img)
    paths = [s.path for s in v.walk()]                                 # ends, every path once
    assert len(paths) == len(set(paths))
    assert "/d/e/f.txt" not in paths and "/x.txt" in paths and "/d/g/h.txt" in paths
    assert any("f.txt" in p and "skipped" in p for p in v.problems)
    assert v.read("/x.txt") == b"x"


def test_long_names_broken_fall_back_to_the_short_name(tmp_path):
    img = make(tmp_path, 16, {"Long File Name.txt": b"a", "Another Long One.txt": b"b", "Third Long One.txt": b"c",
                              "Fourth One Here.txt": b"d"})
    v = view(img)
    first = {n: v.stat("/" + n).fields for n in v.listdir("/")}
    # 1: the short name changed under its slots: their checksum no longer matches
    patch(img, first["Long File Name.txt"]["entry_offset"] + 10, b"X")
    # 2: the first stored slot (the 0x40 one) deleted: an orphaned rest
    patch(img, first["Another Long One.txt"]["long_name_offset"], b"\xe5")
    # 3: the short entry deleted: the slots are orphans, the file is gone
    patch(img, first["Third Long One.txt"]["entry_offset"], b"\xe5")
    v = view(img)
    names = set(v.listdir("/"))
    assert names == {first["Long File Name.txt"]["short_name"][:-1] + "X", first["Another Long One.txt"]["short_name"],
                     "Fourth One Here.txt"}
    assert any("checksum" in p and "its 8.3 name is used" in p for p in v.problems)
    assert any("belongs to no name" in p for p in v.problems)
    assert any("are followed by a deleted entry" in p for p in v.problems)
    assert v.read("/Fourth One Here.txt") == b"d"


def _slots(name: str, short11: bytes) -> bytes:
    """Long-name slots of ``name`` for ``short11`` (fatgen103), written here independently."""
    units = name.encode("utf-16-le", "surrogatepass")
    units += b"\0\0" if len(units) % 26 else b""
    units += b"\xff" * (-len(units) % 26)
    n = len(units) // 26
    out = b""
    csum = lfn_checksum(short11)
    for i in range(n, 0, -1):
        part = units[(i - 1) * 26:i * 26]
        out += struct.pack("<B10sBBB12sH4s", i | (0x40 if i == n else 0), part[:10], 0x0F, 0, csum, part[10:22], 0,
                           part[22:26])
    return out


def _short(name11: bytes, attr: int = 0x20, ntres: int = 0, cluster: int = 0, size: int = 0) -> bytes:
    return struct.pack("<11sBBBHHHHHHHI", name11, attr, ntres, 0, 0, 0, 0, cluster >> 16, 0, 0, cluster & 0xFFFF,
                       size)


def _root_slot(img: str, index: int) -> int:
    v = view(img).volume
    return v.volume_offset + v.root_offset + 32 * index


def test_crafted_names(tmp_path):
    """Astral characters (surrogate pairs), a lone surrogate, '/' in a long name, the NT case
    bits, a first byte 0x05, duplicates, a name after the end marker."""
    img = make(tmp_path, 16, {"keep.txt": b"k"})
    at = entry(img, "/keep.txt").fields["entry_offset"] + 32         # the end marker, after the last entry
    blob = b""
    blob += _slots("emoji 😀.bin", b"EMOJI~1 BIN") + _short(b"EMOJI~1 BIN")
    blob += _slots("lone \ud800.txt", b"LONE~1  TXT") + _short(b"LONE~1  TXT")
    blob += _slots("a/b", b"AB      TXT") + _short(b"AB      TXT")
    blob += _short(b"CASE    TXT", ntres=0x18) + _short(b"BASE    TXT", ntres=0x08) + _short(b"EXT     TXT", ntres=0x10)
    blob += _short(b"\x05SIGMA  TXT")
    blob += _short(b"DUP     TXT") + _short(b"DUP     TXT")
    blob += _short(b"..         ", attr=0x10) + _short(b"/SLASH  TXT")
    patch(img, at, blob + bytes(32) + _short(b"AFTER   TXT"))
    v = view(img)
    names = v.listdir("/")
    assert names[:2] == ["keep.txt", "emoji 😀.bin"]
    assert "lone \ufffd.txt" in names and any("not valid UTF-16" in p for p in v.problems)
    assert "AB.TXT" in names and any("'a/b'" in p and "8.3 name 'AB.TXT' is used" in p for p in v.problems)
    assert {"case.txt", "base.TXT", "EXT.txt", "σSIGMA.TXT"} <= set(names)
    assert names.count("DUP.TXT") == 1 and any("second entry named 'DUP.TXT'" in p for p in v.problems)
    assert not any(n in ("..", ".") or "/" in n for n in names)
    assert any("'/SLASH.TXT'" in p and "skipped" in p for p in v.problems)
    assert "AFTER.TXT" not in names and any("after the end marker" in p for p in v.problems)
    assert "ÕSIGMA.TXT" in view(img, codepage=850).listdir("/")          # 0xE5 is 'Õ' in cp850
    with pytest.raises(InvalidInputError, match="text encoding"):
        view(img, codepage="no-such-codepage")


def test_times_linux_arithmetic():
    """fat_time() is Linux's fat_time_fat2unix: the epoch, leap years, 2100, the 10 ms field,
    and out-of-range fields adding up rather than failing."""
    def ts(*a: int) -> float:
        return float(calendar.timegm((*a, 0, 0, 0)[:9]))
    assert fat_time(0) == ts(1980, 1, 1, 0, 0, 0) == 315532800.0          # date 0: 1980-01-01, as Linux
    assert fat_time((44 << 9) | (2 << 5) | 29) == ts(2024, 2, 29, 0, 0, 0)
    assert fat_time((120 << 9) | (3 << 5) | 1) == ts(2100, 3, 1, 0, 0, 0)    # 2100 is no leap year
    assert fat_time((120 << 9) | (2 << 5) | 28) == ts(2100, 2, 28, 0, 0, 0)
    assert fat_time((127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29) == ts(2107, 12, 31, 23, 59, 58)
    assert fat_time(0x0021, 0, 199) == 315532801.99                     # 10 ms units up to 1.99 s
    assert fat_time((1 << 5) | 1, (31 << 11) | (63 << 5) | 31) == 315532800.0 + 31 * 3600 + 63 * 60 + 62
    assert fat_time((1 << 9) | (15 << 5) | 1) == fat_time((1 << 9) | (1 << 5) | 1)   # month 13-15: January ...
    assert fat_time((15 << 5) | 1) == fat_time((1 << 5) | 2)             # ... plus Linux's leap day in 1980


@pytest.mark.parametrize("fat_type", [12, 16, 32])
def test_cross_link_and_differing_fats_reported_by_check(tmp_path, fat_type):
    img = make(tmp_path, fat_type)
    a = entry(img, "/small.txt")
    b = entry(img, "/README.TXT")
    patch(img, b.fields["entry_offset"] + 26, struct.pack("<H", a.fields["first_cluster"] & 0xFFFF))
    if fat_type == 32:
        patch(img, b.fields["entry_offset"] + 20, struct.pack("<H", a.fields["first_cluster"] >> 16))
    v = view(img).volume
    patch(img, v.fat_offset + v.fat_bytes + 3 * {12: 2, 16: 2, 32: 4}[fat_type], b"\x77")   # FAT 2 differs
    problems = view(img).check()
    assert any("cross-link" in p for p in problems)
    assert any("FAT 2" in p and "differs" in p for p in problems)


# --- the boot sector -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("offset,data,message", [
    (11, b"\x00\x00", "BPB_BytsPerSec .byte 11. is 0"),
    (11, b"\x01\x02", "BPB_BytsPerSec .byte 11. is 513"),
    (11, b"\x00\x20", "BPB_BytsPerSec .byte 11. is 8192"),
    (13, b"\x00", "BPB_SecPerClus .byte 13. is 0"),
    (13, b"\x03", "BPB_SecPerClus .byte 13. is 3"),
    (14, b"\x00\x00", "BPB_RsvdSecCnt .byte 14. is 0"),
    (16, b"\x00", "BPB_NumFATs .byte 16. is 0"),
    (21, b"\x00", "BPB_Media .byte 21. is 0x00"),
    (22, b"\x00\x00", "BPB_FATSz16 .byte 22. and BPB_FATSz32 .byte 36. are both 0"),  # bytes 36-39 zeroed too
    (19, b"\x00\x00", "BPB_TotSec16 .byte 19. and BPB_TotSec32 .byte 32. are both 0"),
    (22, b"\xff\xff", "the reserved sectors .1., 2 FATs of 65535 sectors .* end at sector 131103, past the "
                       "volume's 2048"),
])
def test_bpb_that_cannot_be_a_volume(tmp_path, offset, data, message):
    img = make(tmp_path, 12, {"a.txt": b"a"})
    with open(img, "rb") as f:
        raw = bytearray(f.read())
    raw[offset:offset + len(data)] = data
    if offset == 19:
        raw[32:36] = bytes(4)
    if offset == 22 and data == b"\x00\x00":
        raw[36:40] = bytes(4)
    with pytest.raises(InvalidImageError, match=f"FAT boot sector at byte 0: {message}"):
        view(bytes(raw))
    with pytest.raises(InvalidImageError):
        VFATReader(io.BytesIO(bytes(raw)))


def test_fat_of_gibibytes_is_never_read_whole(tmp_path):
    """BPB_FATSz32 and BPB_TotSec32 claiming a 2 TiB volume with a 1 GiB FAT, in a 34 MiB image:
    it opens (problems recorded), lists the root and reads files, in bounded memory."""
    import tracemalloc
    img = make(tmp_path, 32, {"a.txt": b"a" * 1000, "d/b.txt": b"b"})
    with open(img, "rb") as f:
        raw = bytearray(f.read())
    fatsz = struct.unpack_from("<I", raw, 36)[0]
    rsvd = struct.unpack_from("<H", raw, 14)[0]
    # keep FAT 1 where it is, claim it is huge, one FAT only (so the data region stays findable
    # through a larger FAT count would move it): the volume claims far more than the image
    raw[16] = 1
    struct.pack_into("<I", raw, 36, 1 << 28)              # 2**28 sectors of FAT = 128 GiB
    struct.pack_into("<I", raw, 32, 0xFFFFFFFF)
    tracemalloc.start()
    try:
        v = view(bytes(raw))
        assert v.fat_type == 32
        assert any("claims" in p for p in v.problems) and any("the image ends after" in p for p in v.problems)
        try:
            list(v.walk())
        except InvalidImageError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 48 << 20, peak
    assert rsvd and fatsz


def test_fat32_root_cluster_out_of_range(tmp_path):
    img = make(tmp_path, 32, {"a.txt": b"a"})
    patch(img, 44, struct.pack("<I", 0x0FFFFFF0))
    v = view(img)
    assert v.listdir("/") == [] and any("out of range" in p for p in v.problems)
    assert v.label is None and v.boot_label == "HOSTILE"


def test_truncated_image_and_volume_in_a_partition(tmp_path):
    img = make(tmp_path, 16)
    with open(img, "rb") as f:
        raw = f.read()
    v = view(raw[:len(raw) // 2])
    assert any("claims" in p for p in v.problems)
    assert v.read("/small.txt") == FILES["small.txt"]           # what lies before the cut is read
    padded = b"\xaa" * 1048576 + raw + b"\xbb" * 4096
    v = FATView(io.BytesIO(padded), len(padded), 1048576, volume_size=len(raw) - 512)
    assert readable(v) == {"/" + k: d for k, d in FILES.items()}
    assert any("claims" in p for p in v.problems)
    assert all(off >= 1048576 for e in v.walk() for off, _ in e.extents)


def test_missing_signature_is_a_problem_not_a_refusal(tmp_path):
    img = make(tmp_path, 12, {"a.txt": b"a"})
    patch(img, 510, b"\0\0")
    v = view(img)
    assert v.read("/a.txt") == b"a" and any("0x55 0xAA" in p for p in v.problems)


def test_older_interface_keeps_working(tmp_path):
    img = make(tmp_path, 16)
    with VFATReader(img) as r:
        assert r.fat_type == 16 and r.label == "HOSTILE"
        entries = {e.path: e for e in r.walk()}
        assert {p: r.read(e) for p, e in entries.items() if not e.is_dir} == FILES
        assert len(r.chain(entries["big.bin"].first_cluster)) == 20
        assert [e.name for e in r.list_dir(entries["d"].first_cluster, "d")] == ["e", "other.txt"]


def test_binary_file_objects(tmp_path):
    img = make(tmp_path, 12, {"a.txt": b"abc" * 1000})
    with open(img, "rb") as f:
        data = f.read()
    v = FATView(io.BytesIO(data))
    with v.open("/a.txt") as fh:
        fh.seek(1500)
        assert fh.read(3) == b"abc" and fh.tell() == 1503
    dest = tmp_path / "out"
    v.extract(dest)
    assert (dest / "a.txt").read_bytes() == b"abc" * 1000
    assert os.stat(dest / "a.txt").st_mtime == v.stat("/a.txt").mtime


def test_entries_leading_into_one_long_chain_cost_one_walk(tmp_path):
    """400 entries whose chains all run into one of 4,000 clusters, each claiming 4 GiB: the
    first walk claims the chain, the others stop where they meet it (a cross-link), so
    listing is one walk of the chain, not 400."""
    import time
    img = make(tmp_path, 16, {"big.bin": b"\x42" * (4000 * 512)})
    cs = clusters(img, "/big.bin")
    at = entry(img, "/big.bin").fields["entry_offset"] + 32
    blob = b"".join(_short(b"X%07d" % i + b"BIN", cluster=cs[5 + i * 9], size=0xFFFFFFF0) for i in range(400))
    patch(img, at, blob)
    t0 = time.monotonic()
    v = view(img)
    entries = list(v.walk())
    assert time.monotonic() - t0 < 2.0
    assert len(entries) == 402
    assert v.read("/big.bin") == b"\x42" * (4000 * 512)
    errors = [e.fields.get("error", "") for e in entries if e.name.startswith("X")]
    assert all("cross-link" in err for err in errors), errors[:3]
