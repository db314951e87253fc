from __future__ import annotations

import os
import stat

import pytest

from sysexport.data import BytesData, PathData
from sysexport.errors import InvalidInputError, SysExportError
from sysexport.fileinfo import normalize_name, to_fileinfo, walk_host_tree
from sysexport.tree import Tree


def test_shorthand_kinds():
    f = to_fileinfo(("file", "etc/motd", b"hello\n"))
    assert f.name == "etc/motd" and f.mode == stat.S_IFREG | 0o644 and f.size == 6
    assert isinstance(f.source, BytesData)
    f = to_fileinfo(("file600", "/etc/shadow", "x", {"uid": 0, "gid": 42, "mtime": 5}))
    assert f.mode == stat.S_IFREG | 0o600 and f.gid == 42 and f.mtime == 5
    d = to_fileinfo(("dir", "usr/bin/"))
    assert d.name == "usr/bin" and d.mode == stat.S_IFDIR | 0o755
    s = to_fileinfo(("sym", "bin", "usr/bin"))
    assert s.mode == stat.S_IFLNK | 0o777 and s.target == b"usr/bin" and s.size == 7
    c = to_fileinfo(("chr666", "dev/null", (1, 3)))
    assert c.mode == stat.S_IFCHR | 0o666 and (c.rdev_major, c.rdev_minor) == (1, 3)
    b = to_fileinfo(("blk", "dev/sda", (8, 0)))
    assert stat.S_ISBLK(b.mode)
    assert stat.S_ISFIFO(to_fileinfo(("fifo", "run/p")).mode)
    assert stat.S_ISSOCK(to_fileinfo(("sock", "run/s")).mode)


def test_mapping_and_bytes_name():
    f = to_fileinfo({"name": "caf\xc3\xa9".encode("latin-1").decode("utf-8").encode(), "mode": 0o100600,
                     "data": b"", "uid": 7})
    assert f.name == "café" and f.size == 0 and f.uid == 7


@pytest.mark.parametrize("spec, fragment", [
    ({"name": "a", "mode": 0o100644, "mtiem": 1}, "unknown file-info key"),
    ({"name": "a", "mode": 0o644}, "file type bits"),
    ({"name": "a"}, "no 'mode'"),
    ({"mode": 0o100644}, "no 'name'"),
    ({"name": b"\xff", "mode": 0o100644}, "not valid UTF-8"),
    ({"name": "a/../b", "mode": 0o100644}, "'..'"),
    ({"name": "a", "mode": 0o100644, "data": b"abc", "size": 4}, "size is 4"),
    ({"name": "a", "mode": 0o120777}, "target"),
    ({"name": "a", "mode": 0o100644, "device_align": 3}, "power of two"),
    (("weird", "a"), "unknown shorthand"),
    (("chr", "a", 5), "(major, minor)"),
    (("dir", "a", "b"), "takes 1..1 arguments"),
    ((), "shorthand must start"),
    (42, "expected a file-info mapping"),
    ({"name": "", "mode": 0o100644}, "the root must be a directory"),
    ({"name": "a", "mode": 0o100644, "uid": -1}, "uid must be in 0..4294967295"),
    ({"name": "a", "mode": 0o100644, "uid": True}, "uid must be an integer"),
    ({"name": "a", "mode": 0o100644, "mtime": "now"}, "mtime must be seconds"),
    ({"name": "a", "mode": 0o100644, "FAT_shortname": 5}, "FAT_shortname must be a str"),
    ({"name": "a", "mode": 0o100644, "hybrid_target": "usb"}, "hybrid_target must be"),
    ({"name": "a", "mode": 0o100644, "size": 3}, "neither data nor data_path"),
    ({"name": "a", "mode": 0o120777, "data": "x\0y"}, "may not contain NUL"),
    ({"name": "a", "mode": 0o040755, "data": b"x"}, "only regular files and symlinks carry data"),
    ({"name": "zz", "mode": 0o100644, "bogus": 1, "junk": 2}, "zz: unknown file-info key(s): bogus, junk"),
])
def test_bad_input(spec, fragment):
    with pytest.raises(InvalidInputError) as e:
        to_fileinfo(spec)
    assert fragment in str(e.value)


def test_overrides_extra_keys_and_rdev():
    f = to_fileinfo(("file600", "a/b", b"xyz", {"uid": 3, "mtime": 7}))
    assert to_fileinfo(f) is f                              # a FileInfo without overrides: itself
    g = to_fileinfo(f, hybrid_target="iso", name="c")
    assert (g.name, g.mode, g.size, g.uid, g.mtime, g.hybrid_target) == ("c", f.mode, 3, 3, 7, "iso")
    assert g.source is f.source and g is not f
    s = to_fileinfo(to_fileinfo(("sym", "l", "t")), name="m")
    assert (s.name, s.target) == ("m", b"t")
    e = to_fileinfo({"name": "x", "mode": 0o100644, "placed_later": True}, frozenset({"placed_later"}))
    assert e.extra == {"placed_later": True} and to_fileinfo(("file", "y")).extra == {}
    d = to_fileinfo({"name": "dev/x", "mode": 0o20600, "rdev": os.makedev(8, 17)})
    assert (d.rdev_major, d.rdev_minor) == (8, 17)
    m = to_fileinfo(("file", "p", {"mode": 0o600}))        # permissions only: the type is kept
    assert m.mode == stat.S_IFREG | 0o600
    assert to_fileinfo({"name": "/", "mode": 0o40700}).name == ""


def test_tree_nodes_are_slotted_and_generic():
    t: Tree[int | None] = Tree()
    n = t.add(to_fileinfo(("file", "a/b", b"")))
    assert n.w is None and not hasattr(n, "__dict__")
    n.w = 5
    assert t.find("a/b").w == 5 and t.find("a").children == {"b": n} and t.count == 3


def test_normalize_name():
    assert normalize_name("/a//b/./c/") == "a/b/c"
    assert normalize_name("") == ""
    assert normalize_name(b"x/y") == "x/y"


def test_tree_implied_dirs_and_conflicts():
    t = Tree()
    t.add(to_fileinfo(("file", "a/b/c.txt", b"1")))
    a = t.find("a")
    assert a.info.is_dir and a.info.implicit
    t.add(to_fileinfo(("dir700", "a", {"uid": 5})))
    assert t.find("a").info.uid == 5 and not t.find("a").info.implicit
    t.add(to_fileinfo(("dir755", "a", {"uid": 6})))  # overlaid trees: directories merge
    assert t.find("a").info.uid == 6 and t.find("a/b/c.txt") is not None
    assert t.find("a/b/c.txt").parent is t.find("a/b")
    with pytest.raises(InvalidInputError, match="not a directory"):
        t.add(to_fileinfo(("file", "a/b/c.txt/d", b"")))
    with pytest.raises(InvalidInputError, match="added twice"):
        t.add(to_fileinfo(("file", "a/b/c.txt", b"")))
    with pytest.raises(InvalidInputError, match="directory already exists"):
        t.add(to_fileinfo(("file", "a/b", b"")))
    assert [n.path for n in t.walk()] == ["", "a", "a/b", "a/b/c.txt"]


def test_walk_host_tree(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"data")
    os.link(tmp_path / "d" / "f", tmp_path / "hl")
    os.symlink("d/f", tmp_path / "ln")
    os.mkfifo(tmp_path / "p")
    infos = [to_fileinfo(i) for i in walk_host_tree(tmp_path, "root")]
    names = [i.name for i in infos]
    assert names == ["root", "root/d", "root/hl", "root/ln", "root/p", "root/d/f"]
    by = {i.name: i for i in infos}
    assert isinstance(by["root/d/f"].source, PathData) and by["root/d/f"].size == 4
    assert by["root/hl"].link_key == by["root/d/f"].link_key is not None
    assert by["root/ln"].target == b"d/f"
    assert stat.S_ISFIFO(by["root/p"].mode)


def test_path_data_changed_size(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    src = PathData(str(p))
    p.write_bytes(b"abcd")
    with pytest.raises(SysExportError, match="changed size"):
        src.read_all()


def test_names_the_formats_cannot_hold():
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        normalize_name("caf\udce9")                 # a lone surrogate: Python's view of non-UTF-8 bytes
    assert normalize_name("x" * 255) == "x" * 255 and normalize_name("é" * 127) == "é" * 127
    with pytest.raises(InvalidInputError, match="256 bytes.*NAME_MAX"):
        normalize_name("d/" + "é" * 128)
    with pytest.raises(InvalidInputError, match="NUL"):
        to_fileinfo({"name": "a", "mode": 0o100644, "data_path": b"/etc/\0x"})


def test_host_name_not_utf8_is_refused_naming_its_bytes(tmp_path):
    from sysexport.fileinfo import walk_host_fileinfo
    (tmp_path / "ok").write_bytes(b"")
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9"), "wb"):
        pass
    for walk in (walk_host_tree, walk_host_fileinfo):
        with pytest.raises(InvalidInputError, match=r"b'.*caf\\xe9'.*not valid UTF-8|not valid UTF-8.*caf\\xe9"):
            list(walk(str(tmp_path)))


def test_times_ids_and_devices_bounds():
    import math
    for bad in (math.nan, math.inf, -math.inf, 1e300, -62135596801, 253402300800):
        with pytest.raises(InvalidInputError, match="mtime"):
            to_fileinfo({"name": "t", "mode": 0o100644, "mtime": bad})
    assert to_fileinfo({"name": "t", "mode": 0o100644, "mtime": -62135596800}).mtime == -62135596800
    with pytest.raises(InvalidInputError, match="rdev must be in 0..18446744073709551615"):
        to_fileinfo({"name": "d", "mode": 0o20600, "rdev": 1 << 64})
    with pytest.raises(InvalidInputError, match="size must be >= 0, found -1"):
        to_fileinfo({"name": "s", "mode": 0o100644, "size": -1})
    with pytest.raises(InvalidInputError, match="type bits 0o10000.*'file'"):
        to_fileinfo(("file", "p", {"mode": 0o17777}))          # permissions past 0o7777 are type bits
    assert to_fileinfo(("file", "p", {"mode": 0o107777})).mode == 0o107777


def test_symlink_targets_as_linux_takes_them():
    assert to_fileinfo(("sym", "l", "x" * 4095)).size == 4095
    with pytest.raises(InvalidInputError, match="4096 bytes.*PATH_MAX"):
        to_fileinfo(("sym", "l", "x" * 4096))
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        to_fileinfo(("sym", "l", "t\udcff"))
    assert to_fileinfo(("sym", "l", b"t\xff")).target == b"t\xff"     # bytes are taken as they are


@pytest.mark.parametrize("value", ["-1", "99999999999999999999", "1.5", "now"])
def test_source_date_epoch_must_be_a_time(monkeypatch, value):
    from sysexport.fileinfo import source_date_epoch
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(InvalidInputError, match="SOURCE_DATE_EPOCH.*" + value.replace(".", r"\.")):
        source_date_epoch()
