"""CPIO (newc) writer: checked by GNU cpio, bsdtar (libarchive), gzip/xz/zstd and the header spec.

The Linux kernel's own unpacker reads these archives in tests/test_linuxvm.py
(test_kernel_unpacks_cpio) and in every Linux boot, whose initramfs is written by CPIO.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import io
import lzma
import os
import random
import stat
import subprocess

import pytest

from helpers import need, out, run
from sysexport.cpio import (CPIO, FIELD_NAMES, NEWC_HEADER, CPIOEntry, CPIOPlan, add_cli_initramfs, build_header_fast,
                            iter_newc)
from sysexport.errors import CallOrderError, InvalidInputError, SysExportError
from sysexport.writer import Writer

IS_ROOT = os.geteuid() == 0
RNG = random.Random(1234)
BIG = RNG.randbytes(1_572_869)  # more than the 1 MiB a streaming write gathers

SPECS = [
    ("dir755", "etc", {"mtime": 1_000_000_000}),
    ("file644", "etc/motd", b"welcome\n", {"mtime": 1_000_000_001, "uid": 5, "gid": 6}),
    ("file600", "etc/shadow", b"", {"mtime": 1_000_000_002}),
    ("file755", "bin/tool with space ü", b"#!/bin/sh\necho hi\n"),
    ("file644", "data/big.bin", BIG),
    ("file644", "data/one", b"1"), ("file644", "data/two", b"22"), ("file644", "data/three", b"333"),
    ("file644", "data/four", b"4444"),
    ("sym", "data/link", "big.bin"),
    ("sym", "abs", "/etc/motd"),
    ("file640", "hl/a", b"shared bytes\n", {"dev": 1, "ino": 42, "nlink": 3}),
    ("file640", "hl/sub/b", b"shared bytes\n", {"dev": 1, "ino": 42, "nlink": 3}),
    ("file640", "z-last", b"shared bytes\n", {"dev": 1, "ino": 42, "nlink": 3}),
    ("chr666", "dev/null", (1, 3)),
    ("blk660", "dev/sda1", (8, 1)),
    ("fifo", "run/fifo"),
    ("sock640", "run/sock"),
]
WANT_FILES = {"etc/motd": b"welcome\n", "etc/shadow": b"", "bin/tool with space ü": b"#!/bin/sh\necho hi\n",
              "data/big.bin": BIG, "data/one": b"1", "data/two": b"22", "data/three": b"333",
              "data/four": b"4444", "hl/a": b"shared bytes\n", "hl/sub/b": b"shared bytes\n",
              "z-last": b"shared bytes\n"}
MODES = {"etc": 0o755, "etc/motd": 0o644, "etc/shadow": 0o600, "bin/tool with space ü": 0o755,
         "hl/a": 0o640, "dev/null": 0o666, "dev/sda1": 0o660, "run/fifo": 0o644}


def build(path=None, compress=None, specs=SPECS, default_time=1_700_000_000, **kw) -> bytes:
    c = CPIO(path, compress=compress, default_time=default_time, **kw)
    for s in specs:
        c.add(s)
    if path is None:
        b = io.BytesIO()
        c.write_to_stream(b)
        return b.getvalue()
    c.finish()
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ structure

def test_fast_header_equals_construct_declaration():
    rng = random.Random(99)
    for _ in range(2000):
        fields = {k: rng.choice([0, 1, 0xFFFFFFFF, rng.getrandbits(32), rng.getrandbits(8)]) for k in FIELD_NAMES}
        fast = build_header_fast(fields)
        assert fast == NEWC_HEADER.build(fields)
        assert len(fast) == 110
        parsed = NEWC_HEADER.parse(fast)
        assert {k: parsed[k] for k in FIELD_NAMES} == fields


def test_layout_hard_links_inodes_padding():
    data = build()
    assert data.startswith(b"070701") and len(data) % 4 == 0
    assert data.rstrip(b"\0").endswith(b"TRAILER!!!")
    entries = list(iter_newc(data))
    names = [n for _, n, _ in entries]
    # streamed in the order added, every parent before its children (implied ones written
    # when the first name under them comes)
    for i, n in enumerate(names):
        if "/" in n:
            assert names.index(n.rsplit("/", 1)[0]) < i, n
    assert names[:5] == ["etc", "etc/motd", "etc/shadow", "bin", "bin/tool with space ü"]
    assert names == _added_order(SPECS)
    # inode numbers: 1.. in archive order, hard links share one, nlink = the records' nlink
    by = {n: h for h, n, _ in entries}
    group = [by["hl/a"], by["hl/sub/b"], by["z-last"]]
    assert len({h["c_ino"] for h in group}) == 1 and all(h["c_nlink"] == 3 for h in group)
    inos = [h["c_ino"] for h, n, _ in entries if n not in ("hl/sub/b", "z-last")]
    assert inos == list(range(1, len(inos) + 1))
    # data once, on the FIRST name of the group (the stream cannot know the last)
    bodies = {n: b for _, n, b in entries}
    assert (bodies["hl/a"], bodies["hl/sub/b"], bodies["z-last"]) == (b"shared bytes\n", b"", b"")
    assert data.count(b"shared bytes\n") == 1
    assert bodies["data/link"] == b"big.bin" and by["data/link"]["c_mode"] == 0o120777
    assert (by["dev/sda1"]["c_rdevmajor"], by["dev/sda1"]["c_rdevminor"]) == (8, 1)
    assert stat.S_ISSOCK(by["run/sock"]["c_mode"]) and stat.S_ISFIFO(by["run/fifo"]["c_mode"])
    assert by["etc"]["c_mtime"] == 1_000_000_000 and by["bin"]["c_mtime"] == 1_700_000_000
    assert by["etc"]["c_nlink"] == 2 and by["hl"]["c_nlink"] == 2      # a streamed directory: 2
    assert by["bin"]["c_mode"] == 0o40755 and by["bin"]["c_uid"] == 0   # implied
    assert (by["etc/motd"]["c_uid"], by["etc/motd"]["c_gid"]) == (5, 6)
    assert "." not in names  # the root is written only when added


def _added_order(specs) -> list[str]:
    """The archive order a stream gives: each name, after its parents not yet written."""
    out: list[str] = []
    for s in specs:
        parts = s[1].split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in out:
                out.append(d)
        out.append(s[1])
    return out


def test_fast_header_is_registered():
    """The generic fast-codec property test finds the header pair in _structs.FAST_CODECS."""
    from sysexport.cpio._structs import FAST_CODECS
    fast, values = FAST_CODECS
    assert fast.declaration(None) is NEWC_HEADER and fast.encode is build_header_fast
    assert values.declaration(None) is NEWC_HEADER
    for codec in FAST_CODECS:
        sample = codec.sample(random.Random(5))
        assert set(sample) == set(FIELD_NAMES) and codec.encode(sample) == NEWC_HEADER.build(sample)


# ------------------------------------------------------------------ plan and the Writer protocol

def _planned(specs=SPECS, **kw) -> tuple[CPIO, CPIOPlan]:
    c = CPIO(default_time=1_700_000_000, **kw)
    for s in specs:
        c.add(s)
    return c, c.plan()


def test_plan_is_what_gets_written():
    c, plan = _planned()
    assert isinstance(c, Writer) and isinstance(plan, CPIOPlan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.size_bytes = 0  # type: ignore[misc]
    data = io.BytesIO()
    c.write_to_stream(data, plan)
    data = data.getvalue()
    assert data == build() and plan.size_bytes == len(data) and plan.compress is None
    names = [n for _, n, _ in iter_newc(data)]
    assert plan.entry_count == len(names) and plan.streamed_entries == 0 and plan.streamed_bytes == 0
    assert plan.data_bytes == sum(len(v) for k, v in WANT_FILES.items() if k not in ("hl/sub/b", "z-last"))
    assert (plan.linked_names, plan.links_forgotten) == (2, 0)
    # nothing streamed yet (fewer entries than a batch): every entry is in the plan
    assert [e.name for e in plan.entries] == names + ["TRAILER!!!"]
    for e in plan.entries:
        assert isinstance(e, CPIOEntry)
        assert data[e.offset:e.offset + len(e.head)] == e.head and e.head.startswith(b"070701")
        hdr = NEWC_HEADER.parse(e.head)
        assert (hdr.c_ino, hdr.c_nlink, hdr.c_mode, hdr.c_filesize) == (e.ino, e.nlink, e.mode, e.size_bytes)
        assert data[e.data_offset:e.data_offset + e.size_bytes] == \
            (e.inline or (e.source.read_all(1 << 24) if e.source else b""))
    assert [b.offset for b in plan.entries[1:]] == [a.end_offset for a in plan.entries[:-1]]
    assert plan.entries[-1].end_offset == plan.size_bytes
    members = [plan.find(n) for n in ("hl/a", "hl/sub/b", "z-last")]
    assert len({m.ino for m in members}) == 1 and {m.nlink for m in members} == {3}
    assert [m.size_bytes for m in members] == [13, 0, 0] and members[0].source is not None
    assert plan.find("missing") is None
    # planning again gives an equal plan (add() is refused, so nothing changed)
    assert c.plan() == plan


def test_plan_of_a_streamed_archive(tmp_path):
    """With a batch of 4, most entries are in the output before plan(): the plan counts them
    and holds only the rest and the trailer; the archive is the same as one batch."""
    c = CPIO(str(tmp_path / "s.cpio"), default_time=1_700_000_000, window_entries=4)
    for s in SPECS:
        c.add(s)
    assert (tmp_path / "s.cpio").exists() is False          # a temporary file beside it, not the target
    plan = c.plan()
    whole = build()
    assert plan.size_bytes == len(whole) and plan.entry_count == len(_added_order(SPECS))
    assert plan.streamed_entries + len(plan.entries) - 1 == plan.entry_count and plan.streamed_entries >= 20
    assert plan.entries[0].offset == plan.streamed_bytes
    assert whole[plan.streamed_bytes:plan.streamed_bytes + len(plan.entries[0].head)] == plan.entries[0].head
    with pytest.raises(CallOrderError, match="own output"):
        c.write(os.open(os.devnull, os.O_WRONLY), plan)
    assert c.finish() == plan
    assert (tmp_path / "s.cpio").read_bytes() == whole
    # a writer without an output spools what it streamed, and writes it out whole
    spooled = CPIO(default_time=1_700_000_000, window_entries=3)
    for s in SPECS:
        spooled.add(s)
    plan = spooled.plan()
    fd = os.open(tmp_path / "w.cpio", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    try:
        spooled.write(fd, plan)
    finally:
        os.close(fd)
    assert (tmp_path / "w.cpio").read_bytes() == whole
    b = io.BytesIO()
    spooled.write_to_stream(b, plan)
    assert b.getvalue() == whole


def test_write_fd_sparse_and_streamed(tmp_path):
    c, plan = _planned()
    fd = os.open(tmp_path / "a.cpio", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    try:
        c.write(fd, plan)
    finally:
        os.close(fd)
    assert (tmp_path / "a.cpio").read_bytes() == build()
    with open(tmp_path / "b.cpio", "wb") as f:
        f.write(b"old bytes" * 10_000)
    with open(tmp_path / "b.cpio", "r+b") as f:
        c.write(f.fileno(), plan, sparse=False)         # every byte written, from the position
    assert (tmp_path / "b.cpio").read_bytes()[:plan.size_bytes] == build()
    gz, gz_plan = _planned(compress="gzip")
    with open(tmp_path / "c.cpio.gz", "wb") as f:
        gz.write(f.fileno(), gz_plan)
    assert gz_plan.compress == "gzip" and gzip.decompress((tmp_path / "c.cpio.gz").read_bytes()) == build()


def test_call_order(tmp_path):
    c = CPIO(str(tmp_path / "x.cpio"), default_time=0)
    c.add(("file", "a", b"1"))
    old = c.plan()
    with pytest.raises(CallOrderError, match="already planned"):
        c.add(("file", "b", b"2"))
    with pytest.raises(CallOrderError, match="already planned"):
        c.add_tree(tmp_path)
    new = c.plan()
    assert new == old and new is not old
    with pytest.raises(CallOrderError, match="stale"):
        c.write_to_stream(io.BytesIO(), old)
    assert c.finish() == new
    with pytest.raises(CallOrderError, match="already finished"):
        c.finish()
    with pytest.raises(CallOrderError, match="already finished"):
        c.add(("file", "b", b"2"))
    with pytest.raises(CallOrderError, match="already finished"):
        c.plan()
    other, other_plan = _planned()
    with pytest.raises(CallOrderError, match="not this writer's"):
        CPIO(default_time=0).write_to_stream(io.BytesIO(), other_plan)


def test_finish_file_equals_stream(tmp_path):
    """The planned pwrite path (uncompressed file) and the streaming path give the same bytes."""
    assert build(str(tmp_path / "a.cpio")) == build()
    with open(tmp_path / "b.cpio", "wb") as f:
        c = CPIO(filehandle=f, default_time=1_700_000_000)
        for s in SPECS:
            c.add(s)
        c.finish()
    assert (tmp_path / "b.cpio").read_bytes() == build()


# ------------------------------------------------------------------ external readers

def _check_extracted(root: str, *, devices: bool) -> None:
    for name, content in WANT_FILES.items():
        with open(os.path.join(root, name), "rb") as f:
            assert f.read() == content, name
    for name, mode in MODES.items():
        st = os.lstat(os.path.join(root, name))
        assert stat.S_IMODE(st.st_mode) == mode, (name, oct(st.st_mode))
    assert os.readlink(os.path.join(root, "data/link")) == "big.bin"
    assert os.readlink(os.path.join(root, "abs")) == "/etc/motd"
    inos = {os.stat(os.path.join(root, n)).st_ino for n in ("hl/a", "hl/sub/b", "z-last")}
    assert len(inos) == 1 and os.stat(os.path.join(root, "hl/a")).st_nlink == 3
    assert stat.S_ISFIFO(os.lstat(os.path.join(root, "run/fifo")).st_mode)
    assert int(os.lstat(os.path.join(root, "etc/motd")).st_mtime) == 1_000_000_001
    if devices:
        st = os.lstat(os.path.join(root, "dev/null"))
        assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
        st = os.lstat(os.path.join(root, "dev/sda1"))
        assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (8, 1)


def test_gnu_cpio_lists_and_extracts(tmp_path):
    need("cpio")
    archive = str(tmp_path / "a.cpio")
    build(archive)
    listing = out(["cpio", "-t", "-F", archive]).splitlines()
    want = [n for _, n, _ in iter_newc(build())]
    assert listing == want
    verbose = out(["cpio", "-tv", "-F", archive])
    assert "data/link -> big.bin" in verbose
    dest = tmp_path / "x"
    dest.mkdir()
    p = subprocess.run(["cpio", "-idm", "--no-absolute-filenames", "-F", archive], cwd=dest,
                       capture_output=True)
    # as a user, cpio cannot create device nodes or a socket: it says so and exits non-zero
    assert p.returncode == 0 or not IS_ROOT, p.stderr
    _check_extracted(str(dest), devices=IS_ROOT)
    if IS_ROOT:
        assert stat.S_ISSOCK(os.lstat(dest / "run/sock").st_mode)


def test_bsdtar_lists_and_extracts(tmp_path):
    need("bsdtar")
    archive = str(tmp_path / "a.cpio")
    build(archive)
    listing = out(["bsdtar", "-tvf", archive])
    assert any(ln.startswith("lrwxrwxrwx") and ln.endswith("data/link -> big.bin") for ln in listing.splitlines())
    assert any(ln.startswith("crw-rw-rw-") and "dev/null" in ln for ln in listing.splitlines())
    assert any(ln.startswith("brw-rw----") and "dev/sda1" in ln for ln in listing.splitlines())
    assert any(ln.startswith("prw-r--r--") and "run/fifo" in ln for ln in listing.splitlines())
    assert "z-last" in listing and "bin/tool with space ü" in listing
    dest = tmp_path / "x"
    dest.mkdir()
    p = subprocess.run(["bsdtar", "-xpf", archive, "-C", str(dest)], capture_output=True)
    assert p.returncode == 0 or not IS_ROOT, p.stderr
    _check_extracted(str(dest), devices=IS_ROOT)


@pytest.mark.parametrize("compress,tool", [("gzip", ["gzip", "-t"]), ("xz", ["xz", "-t"]),
                                           ("zstd", ["zstd", "-t"])])
def test_compression_standard_tools(tmp_path, compress, tool):
    if compress == "zstd":
        pytest.importorskip("zstandard")
    need(tool[0])
    plain = build()
    path = str(tmp_path / f"a.cpio.{compress}")
    data = build(path, compress=compress)
    run(tool + [path])
    if compress == "gzip":
        assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0" and data[3] & 0x08 == 0  # no mtime, no name
        assert gzip.decompress(data) == plain
    elif compress == "xz":
        assert lzma.decompress(data) == plain
        # the kernel's xz unpacker accepts CRC32 (or none), not xz's default CRC64
        assert "CRC32" in out(["xz", "--robot", "--list", path])
        assert data[6:8] == b"\x00\x01"  # stream flags: check type 1 = CRC32
    else:
        import zstandard
        assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == plain
    decompressed = subprocess.run([tool[0], "-dc", path], capture_output=True, check=True).stdout
    assert decompressed == plain
    # bsdtar reads the compressed archive directly
    need("bsdtar")
    assert "data/big.bin" in out(["bsdtar", "-tf", path])


def test_zstd_unavailable_is_clear(monkeypatch):
    import sysexport.cpio.sink as m
    monkeypatch.setattr(m, "zstd_module", None)
    with pytest.raises(InvalidInputError, match="zstandard"):
        CPIO(compress="zstd")


# ------------------------------------------------------------------ host trees, determinism, CLI

def _host_tree(root):
    os.makedirs(root / "d" / "e")
    (root / "d" / "f.txt").write_bytes(b"f\n")
    (root / "g ü").write_bytes(BIG[:70_000])
    os.link(root / "g ü", root / "d" / "e" / "hard")
    os.symlink("../g ü", root / "d" / "sym")
    os.mkfifo(root / "fifo")
    return root


def test_add_tree_roundtrip_bsdtar_and_cpio(tmp_path):
    need("bsdtar", "cpio")
    src = _host_tree(tmp_path / "src")
    c = CPIO(str(tmp_path / "t.cpio"), default_time=0)
    c.add_tree(src)
    c.finish()
    for tool in (["bsdtar", "-xpf", str(tmp_path / "t.cpio"), "-C"], None):
        dest = tmp_path / ("x" if tool else "y")
        dest.mkdir()
        if tool:
            run(tool + [str(dest)])
        else:
            run(["sh", "-c", f"cd '{dest}' && cpio -idm -F '{tmp_path / 't.cpio'}'"])
        assert (dest / "g ü").read_bytes() == BIG[:70_000]
        assert os.stat(dest / "g ü").st_ino == os.stat(dest / "d/e/hard").st_ino
        assert os.readlink(dest / "d/sym") == "../g ü"
        assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
        assert (dest / "d/f.txt").read_bytes() == b"f\n"
    names = [n for _, n, _ in iter_newc((tmp_path / "t.cpio").read_bytes())]
    assert names[0] == "."  # add_tree adds the root itself


def test_deterministic(tmp_path, sde):
    a = build(default_time=None)
    b = build(default_time=None)
    assert a == b
    hdr = {n: h for h, n, _ in iter_newc(a)}
    assert hdr["bin"]["c_mtime"] == sde  # SOURCE_DATE_EPOCH for entries without mtime
    small = [s for s in SPECS if s[1] != "data/big.bin"]
    for comp in ("gzip", "xz") + (("zstd",) if _have_zstd() else ()):
        one = build(str(tmp_path / f"1.{comp}"), compress=comp, specs=small)
        assert one == build(str(tmp_path / f"2.{comp}"), compress=comp, specs=small)
        assert one != build(str(tmp_path / f"3.{comp}"), compress=comp, specs=small, default_time=1)
    # the order of add() is the archive's order (a stream); the same order, the same bytes
    rev = build(specs=list(reversed(SPECS)))
    assert rev != build() and [n for _, n, _ in iter_newc(rev)] == _added_order(list(reversed(SPECS)))


def _have_zstd() -> bool:
    try:
        import zstandard  # noqa: F401
        return True
    except ImportError:
        return False


def test_cli_initramfs(tmp_path, sde):
    need("bsdtar")
    src = _host_tree(tmp_path / "src")
    parser = argparse.ArgumentParser(prog="sysexport")
    add_cli_initramfs(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["initramfs", str(src), "-o", str(tmp_path / "i.img"), "--compress", "gzip"])
    assert args.func(args) == 0
    listing = out(["bsdtar", "-tf", str(tmp_path / "i.img")]).splitlines()
    assert {"d/f.txt", "g ü", "d/e/hard", "d/sym", "fifo"} <= set(listing)
    args = parser.parse_args(["initramfs", str(tmp_path / "missing"), "-o", str(tmp_path / "j.img")])
    with pytest.raises(InvalidInputError, match="missing: cannot read source tree"):
        args.func(args)           # sysexport.cli.main prints it as one line, exit status 1
    assert not (tmp_path / "j.img").exists()
    with pytest.raises(SystemExit):
        parser.parse_args(["initramfs", str(src), "-o", "x", "--compress", "bzip2"])


# ------------------------------------------------------------------ bad input

BAD = [
    ({"name": "x", "mode": 0o100644, "data": b"a", "mtime": -1}, "mtime"),
    ({"name": "x", "mode": 0o100644, "data": b"a", "mtime": 2 ** 32}, "mtime"),
    ({"name": "x", "mode": 0o100644, "bogus": 1}, "unknown file-info key"),
    ({"name": "../x", "mode": 0o100644}, r"'\.\.'"),
    ({"name": "x", "mode": 0o644}, "file type"),
]


@pytest.mark.parametrize("spec,message", BAD)
def test_bad_input(spec, message):
    c = CPIO(default_time=0)
    with pytest.raises(InvalidInputError, match=message):
        c.add(spec)


def test_bad_input_structural(tmp_path):
    c = CPIO(default_time=0)
    c.add(("file644", "a", b"1", {"dev": 1, "ino": 2}))
    with pytest.raises(InvalidInputError, match="hard link of a"):
        c.add(("file644", "b", b"22", {"dev": 1, "ino": 2}))
    with pytest.raises(InvalidInputError, match="hard link of a"):
        c.add(("file600", "b", b"1", {"dev": 1, "ino": 2}))
    with pytest.raises(InvalidInputError, match="added twice"):
        c.add(("file644", "a", b"1"))
    with pytest.raises(InvalidInputError, match="not a directory"):
        c.add(("file644", "a/b", b"1"))
    with pytest.raises(InvalidInputError, match="compress"):
        CPIO(compress="bzip2")
    with pytest.raises(InvalidInputError, match="not both"):
        CPIO("x", filehandle=io.BytesIO())
    with pytest.raises(InvalidInputError, match="default_time"):
        CPIO(default_time=-5)
    with pytest.raises(InvalidInputError, match="write_to_stream"):
        CPIO(default_time=0).finish()
    big = tmp_path / "huge"
    with open(big, "wb") as f:
        f.truncate(2 ** 32)
    with pytest.raises(InvalidInputError, match="at most 4294967295 bytes"):
        c.add({"name": "huge", "mode": 0o100644, "data_path": str(big)})


def test_failed_build_leaves_nothing(tmp_path):
    """A source that changed size after add(): error, no archive, no temp file, old file kept."""
    src = tmp_path / "src.bin"
    src.write_bytes(b"12345")
    target = tmp_path / "out.cpio"
    target.write_bytes(b"old")
    for compress in (None, "gzip"):
        c = CPIO(str(target), compress=compress, default_time=0)
        c.add({"name": "f", "mode": 0o100644, "data_path": str(src)})
        src.write_bytes(b"123")
        with pytest.raises(SysExportError, match="changed size"):
            c.finish()
        src.write_bytes(b"12345")
        assert target.read_bytes() == b"old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.cpio", "src.bin"]


def test_write_to_pipe(tmp_path):
    """write_to_stream into a pipe (no seeking): bsdtar reads the gzip stream from its stdin."""
    need("bsdtar")
    c = CPIO(compress="gzip", default_time=0)
    for s in SPECS:
        c.add(s)
    p = subprocess.Popen(["bsdtar", "-tf", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    c.write_to_stream(p.stdin)
    p.stdin.close()
    listing = p.stdout.read().decode().splitlines()
    assert p.wait() == 0
    assert listing == [n for _, n, _ in iter_newc(build())]


def test_kernel_limits_names_devices_trailer():
    from sysexport.cpio.writer import check_entry
    from sysexport.fileinfo import to_fileinfo
    c = CPIO(default_time=0)
    c.add(("chr", "dev/max", (4095, (1 << 20) - 1)))              # the largest Linux represents
    c.add(("file", "d/TRAILER!!!", b"not at the top: an ordinary name"))
    c.add(("file", "/".join(["n" * 254] * 16)[:4095], b""))      # namesize 4096 = PATH_MAX
    for spec, message in [
            (("chr", "dev/a", (4096, 0)), r"\(4096, 0\).*major 0..4095"),
            (("blk", "dev/b", (0, 1 << 20)), r"minor 0..1048575"),
            (("file", "TRAILER!!!", b""), "end of a newc archive"),
            (("file", "x" * 200 + "/" + "/".join(["n" * 250] * 16), b""), "PATH_MAX 4096")]:
        with pytest.raises(InvalidInputError, match=message):
            check_entry(to_fileinfo(spec))
    with pytest.raises(InvalidInputError, match="compress"):
        c.compress = "lz4"
    with pytest.raises(InvalidInputError, match="default_time"):
        c.default_time = 1 << 32
