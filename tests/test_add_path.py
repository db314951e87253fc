"""The add path made cheaper for 100,000 files (issue 16): the file-info record's layout, the
host walk's records, the content digest, the collector's pause and the summary's counts,
each against the plain definition it replaces, and a hybrid built that way read back by
bsdtar and mtools."""
from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys

import pytest

from sysexport.data import BytesData
from sysexport.filerecord import FileInfo, set_field
from sysexport.fileinfo import to_fileinfo, walk_host_fileinfo, walk_host_tree
from sysexport.identity import content_digest, entry_identity
from sysexport.summaries import _entries
from sysexport.tree import Tree
from sysexport.writer import gc_paused

FIELDS = [f.name for f in dataclasses.fields(FileInfo)]


def _has_dict_entries(info: FileInfo) -> bool:
    return bool(vars(info))


def test_record_keeps_rare_fields_out_of_its_dict():
    info = FileInfo("a/b", 0o100644, 3, None, None, 1.5, None, 1.5, 0, 0)
    assert info.basename == "b" and info.hidden_from == frozenset() and info.hybrid_target == "both"
    assert (info.dev, info.ino, info.nlink, info.rdev_major, info.joliet_name, info.implicit) == (None,) * 3 + (0, None, False)
    assert not _has_dict_entries(info)
    assert sys.getsizeof(info) < 200            # 240 as a slotted dataclass of all 26 fields
    info.dev = 5                                # a rare field set is stored, on this record only
    assert info.dev == 5 and FileInfo("c", 0o100644).dev is None and vars(info) == {"dev": 5}
    set_field(info, "hybrid_target", "both")    # its default: nothing stored
    assert "hybrid_target" not in vars(info)
    set_field(info, "dev", None)                # back to the default over a stored value
    assert info.dev is None


def test_record_constructor_takes_every_field_as_before():
    values = {"name": "d/e", "mode": 0o20600, "size": 0, "source": None, "target": None, "mtime": 1, "atime": 2,
              "ctime": 3, "uid": 4, "gid": 5, "rdev_major": 6, "rdev_minor": 7, "dev": 8, "ino": 9, "nlink": 2,
              "FAT_shortname": "E", "FAT_flags": 1, "ISO9660_shortname": "E.;1", "ISO9660_flags": 1,
              "device_offset": 4096, "device_align": 2048, "hybrid_target": "iso",
              "hidden_from": frozenset({"joliet"}), "joliet_name": "e", "implicit": True, "_extra": {"k": 1}}
    assert list(values) == FIELDS                # the dataclass order is the positional order
    positional = FileInfo(*values.values())
    keywords = FileInfo(**values)
    for info in (positional, keywords, dataclasses.replace(keywords)):
        assert {k: getattr(info, k) for k in FIELDS} == values
        assert info.basename == "e"
    moved = dataclasses.replace(keywords, name="x/y/z")
    assert moved.basename == "z" and moved.dev == 8
    assert FileInfo("", 0o40755).basename == "" and FileInfo("top", 0o40755).basename == "top"
    assert "rdev_major=6" in repr(keywords)
    with pytest.raises(TypeError, match="unexpected keyword argument 'color'"):
        FileInfo("a", 0o100644, color=1)         # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'rdev_major'"):
        FileInfo("a", 0o100644, 0, None, None, None, None, None, 0, 0, 1, rdev_major=2)  # type: ignore[misc]


def test_to_fileinfo_of_a_record_stores_no_default():
    base = FileInfo("a/b", 0o100644, 0)
    copy = to_fileinfo(base, uid=3)
    assert copy.uid == 3 and copy is not base and not _has_dict_entries(copy)


def _tree(root):
    os.makedirs(root / "d" / "sub")
    os.makedirs(root / "e")
    (root / "d" / "f.txt").write_bytes(b"hello")
    (root / "e" / "f.txt").write_bytes(b"")                 # the same name in two directories
    (root / "d" / "sub" / "caf\u00e9").write_bytes(b"x" * 70000)
    os.link(root / "d" / "f.txt", root / "d" / "hard")
    os.symlink("d/f.txt", root / "link")
    os.mkfifo(root / "fifo")
    os.utime(root / "d" / "f.txt", (1_000_000_000, 1_000_000_000.5))


@pytest.mark.parametrize("sde", [None, "1700000000", "1000000000"])
@pytest.mark.parametrize("dest", ["", "in/here"])
def test_walk_records_are_those_of_the_mapping_walk(tmp_path, monkeypatch, sde, dest):
    if sde is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", sde)
    _tree(tmp_path / "t")
    top = str(tmp_path / "t")

    def prune(name: str) -> bool:
        return name.endswith("sub/caf\u00e9")

    for kw in ({}, {"prune": prune}):
        fast = list(walk_host_fileinfo(top, dest, **kw))
        plain = [to_fileinfo(m) for m in walk_host_tree(top, dest, **kw)]
        assert [i.name for i in fast] == [i.name for i in plain]
        for a, b in zip(fast, plain):
            assert {k: getattr(a, k) for k in FIELDS if k != "source"} == \
                   {k: getattr(b, k) for k in FIELDS if k != "source"}, a.name
            assert a.basename == b.basename == a.name.rpartition("/")[2]
            if a.source is not None:
                assert (a.source.path, a.source.size_bytes) == (b.source.path, b.source.size_bytes)
            assert not _has_dict_entries(a) or a.nlink or a.rdev_major or a.implicit


def _reference_identity(info: FileInfo) -> bytes:
    content = hashlib.sha256(info.source.data).hexdigest() if isinstance(info.source, BytesData) else ""
    return "\0".join((info.name, f"{info.mode:o}", str(info.uid), str(info.gid), str(info.size),
                      repr(info.mtime), repr(info.atime), repr(info.ctime),
                      f"{info.rdev_major}:{info.rdev_minor}", repr(info.target), info.hybrid_target,
                      content)).encode("utf-8", "surrogateescape")


def _reference_digest(entries, *extra) -> bytes:
    h = hashlib.sha256(b"sysexport-content-v1\0")
    for value in extra:
        h.update(repr(value).encode("utf-8", "surrogateescape") + b"\0")
    for info in entries:
        h.update(_reference_identity(info) + b"\n")
    return h.digest()


def test_content_digest_is_the_entry_by_entry_digest():
    rnd = random.Random(16)
    times = [None, 1, 1.0, 0, 0.0, -0.0, 1.5e9, 1700000000, 1700000000.0, float("nan")]
    records = []
    for i in range(6000):
        t = rnd.choice(times)
        records.append(FileInfo(rnd.choice(["a", "d/b", "caf\u00e9", "x\udcff", f"n{i}"]),
                                rnd.choice([0o100644, 0o40755, 0o120777, 0o20600]), rnd.choice([0, 3, 1 << 40]),
                                rnd.choice([None, BytesData(b"abc")]), rnd.choice([None, b"t", b"\xff"]),
                                t, rnd.choice([None, t, 2.5]), rnd.choice([t, 3]), rnd.choice([0, 1000]),
                                rnd.choice([0, 7]), rnd.choice([0, 8]), hybrid_target=rnd.choice(["both", "iso"])))
    for info in records[:500]:
        assert entry_identity(info) == _reference_identity(info)
    assert content_digest(records, "label", 5) == _reference_digest(records, "label", 5)
    distinct = [FileInfo(f"f{i}", 0o100644, 1, None, None, 1e9 + i / 7) for i in range(3000)]
    assert content_digest(distinct) == _reference_digest(distinct)      # the memo gives up, same digest
    assert content_digest([]) == _reference_digest([])


def test_gc_paused_leaves_what_it_made_to_the_oldest_generation():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]
    assert gc.isenabled()
    young = {id(o) for o in gc.get_objects(generation=0)} | {id(o) for o in gc.get_objects(generation=1)}
    assert not any(id(o) in young for o in made)
    gc.freeze()                                 # the program's own frozen objects stay frozen
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            [[i] for i in range(100)]
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()


def test_summary_counts_are_those_of_the_tree_walk(tmp_path):
    _tree(tmp_path / "t")
    tree: Tree = Tree()
    for info in walk_host_fileinfo(str(tmp_path / "t"), "top"):
        tree.add(info)
    want = {"files": 0, "directories": 0, "symlinks": 0, "other": 0, "data_bytes": 0}
    for node in tree.walk():
        info = node.info
        if info.name:
            kind = ("files" if info.is_file else "directories" if info.is_dir else
                    "symlinks" if info.is_symlink else "other")
            want[kind] += 1
            want["data_bytes"] += info.size if info.is_file else 0
    assert _entries(tree) == want == {"files": 4, "directories": 4, "symlinks": 1, "other": 1,
                                      "data_bytes": 5 + 0 + 70000 + 5}


@pytest.mark.skipif(not shutil.which("bsdtar") or not shutil.which("mdir"), reason="needs bsdtar and mtools")
def test_hybrid_of_the_walk_read_by_bsdtar_and_mtools(tmp_path):
    """Every file of the tree with its bytes in the ISO (bsdtar) and in the ESP (mtools), and
    the JSON summary's counts what those readers list."""
    _tree(tmp_path / "t")
    os.remove(tmp_path / "t" / "fifo")
    img = tmp_path / "x.img"
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    out = subprocess.run([sys.executable, "-m", "sysexport", "build", str(tmp_path / "t"), "-o", str(img), "--json"],
                         check=True, capture_output=True, text=True, env=env).stdout
    summary = json.loads(out)
    iso_dir = tmp_path / "iso"
    iso_dir.mkdir()
    subprocess.run(["bsdtar", "-xf", str(img), "-C", str(iso_dir)], check=True)
    for rel in ("d/f.txt", "d/hard", "e/f.txt", "d/sub/caf\u00e9"):
        assert (iso_dir / rel).read_bytes() == (tmp_path / "t" / rel).read_bytes(), rel
    assert os.readlink(iso_dir / "link") == "d/f.txt"
    esp = summary["esp"]
    esp_img = tmp_path / "esp.img"
    with open(img, "rb") as src, open(esp_img, "wb") as dst:
        src.seek(esp["offset"])
        dst.write(src.read(esp["size"]))
    fat_dir = tmp_path / "fat"
    fat_dir.mkdir()
    subprocess.run(["mcopy", "-s", "-n", "-i", str(esp_img), "::*", str(fat_dir) + "/"], check=True,
                   env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    fat_files = [os.path.join(r, f) for r, _, fs in os.walk(fat_dir) for f in fs]
    assert sorted(os.path.relpath(p, fat_dir) for p in fat_files) == sorted(["d/f.txt", "d/hard", "e/f.txt",
                                                                             "d/sub/caf\u00e9"])
    assert (fat_dir / "d" / "sub" / "caf\u00e9").read_bytes() == b"x" * 70000
    iso_files = [p for p in iso_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    assert summary["iso9660"]["entries"]["files"] == len(iso_files) == 4
    assert summary["iso9660"]["entries"]["symlinks"] == 1
    assert summary["esp"]["entries"]["files"] == len(fat_files)
    assert stat.S_ISDIR(os.lstat(iso_dir / "d" / "sub").st_mode)
