"""Streaming CPIO (issue 16) and remastering a cpio archive (issue 13), checked by GNU cpio
and bsdtar: memory flat in the number of entries, entries in the output before finish(),
the bounded hard-link table and name memory (what happens past their bounds), a failed
batch removing the output, and CPIO.from_image with remove/rename/add on archives made by
GNU cpio, by bsdtar and by this writer, plain and compressed.
"""
from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tracemalloc

import pytest

from helpers import need, out, run
from sysexport.cpio import CPIO, iter_newc
from sysexport.cpio.sink import GATHER_BYTES, PIPELINE_CHUNKS
from sysexport.errors import CallOrderError, InvalidImageError, InvalidInputError, SourceError


def _entries(data: bytes) -> dict[str, tuple[dict[str, int], bytes]]:
    return {n: (h, b) for h, n, b in iter_newc(data)}


def _extract(tool: str, archive: str, dest) -> None:
    dest.mkdir()
    if tool == "bsdtar":
        run(["bsdtar", "-xf", archive, "-C", str(dest)])
    else:
        run(["sh", "-c", f"cd '{dest}' && cpio -idm --quiet < '{archive}'"])


def _specs(count: int, per_dir: int = 100):
    """``count`` small in-memory files, ``per_dir`` to a directory, made as they are asked for."""
    for i in range(count):
        yield ("file644", f"d{i // per_dir:05d}/f{i % per_dir:03d}", b"x" * (i % 50), {"mtime": 1_000_000_000})


# ------------------------------------------------------------------ memory and streaming

def _peak_bytes(count: int) -> int:
    c = CPIO(filehandle=open(os.devnull, "wb"), default_time=0)
    tracemalloc.start()
    try:
        for spec in _specs(count):
            c.add(spec)
        c.finish()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_entries():
    """Python's allocations while 8 times more entries are streamed stay within the same
    bound (a batch, the open directories, the bounded name memory, and the chunks on their
    way to the writing thread: its queue and the one it writes, which the smaller archive,
    under a MiB, never fills): flat, not per archive."""
    small, large = _peak_bytes(5_000), _peak_bytes(40_000)
    in_flight = (PIPELINE_CHUNKS + 1) * GATHER_BYTES
    assert large < 16 << 20, large
    assert large < small * 1.5 + (2 << 20) + in_flight, (small, large)


def test_entries_are_in_the_output_before_finish(tmp_path):
    path = tmp_path / "a.cpio"
    with open(path, "wb") as f:
        c = CPIO(filehandle=f, default_time=0, window_entries=16)
        for i in range(300):
            c.add(("file644", f"d00000/f{i:03d}", bytes([i % 256]) * 30_000))
        written = os.fstat(f.fileno()).st_size
        # streamed in batches of 16, gathered by the MiB and written by the writing thread:
        # at most its queue (two chunks) and the chunk it writes are not in the file yet
        assert written > 4 << 20
        plan = c.finish()
    data = path.read_bytes()
    assert written < len(data) == plan.size_bytes and plan.streamed_entries > 301 - 16
    assert len(_entries(data)) == plan.entry_count == 301          # 300 files and d00000


def test_add_tree_streams_depth_first_with_directory_link_counts(tmp_path):
    need("cpio")
    src = tmp_path / "src"
    for d in ("b/x", "b/y", "a", "c"):
        (src / d).mkdir(parents=True)
    for f in ("b/x/1", "b/2", "a/3", "z"):
        (src / f).write_bytes(f.encode())
    os.symlink("z", src / "zz")
    c = CPIO(str(tmp_path / "t.cpio"), default_time=0, window_entries=4)
    c.add_tree(src)
    plan = c.plan()
    # a small file goes out as it is read, with the directories queued before it; what
    # comes after the last file (the symlink) waits in the batch: the plan's rows
    assert [e.name for e in plan.entries[:-1]] == ["zz"] and plan.entries[0].inline == b"z"
    assert plan.streamed_entries == 10 and plan.count("dir") == 6 and plan.count("file") == 4
    c.finish()
    names = out(["cpio", "-t", "--quiet", "-F", str(tmp_path / "t.cpio")]).split()
    assert names == [".", "a", "a/3", "b", "b/2", "b/x", "b/x/1", "b/y", "c", "z", "zz"]
    hdr = _entries((tmp_path / "t.cpio").read_bytes())
    assert hdr["."][0]["c_nlink"] == 5 and hdr["b"][0]["c_nlink"] == 4 and hdr["a"][0]["c_nlink"] == 2


# ------------------------------------------------------------------ bounded tables, past their bounds

def test_hard_links_past_the_table_bound_become_copies(tmp_path):
    """With room for one awaited file, a second one pushes the first out: the first's later
    name is stored as a copy with its data (a new inode), never as an empty file."""
    need("bsdtar", "cpio")
    c = CPIO(str(tmp_path / "l.cpio"), default_time=0, link_table_files=1)
    for name, key, data in [("a1", 1, b"AAAA"), ("b1", 2, b"BBBBBB"), ("b2", 2, b"BBBBBB"), ("a2", 1, b"AAAA"),
                            ("c1", 3, b"C"), ("c2", 3, b"C"), ("c3", 3, b"C")]:
        c.add(("file644", name, data, {"dev": 7, "ino": key, "nlink": 2}))
    plan = c.finish()
    # A forgotten when b1 came; a2's copy forgotten when c1 came (it waits for a name of its own)
    assert plan.links_forgotten == 2 and plan.linked_names == 2        # b2 -> b1, c2 -> c1
    hdr = _entries((tmp_path / "l.cpio").read_bytes())
    assert hdr["a2"][1] == b"AAAA" and hdr["a2"][0]["c_ino"] != hdr["a1"][0]["c_ino"]
    assert hdr["b2"][1] == b"" and hdr["b2"][0]["c_ino"] == hdr["b1"][0]["c_ino"]
    assert hdr["c3"][1] == b"C" and hdr["c3"][0]["c_ino"] != hdr["c1"][0]["c_ino"]   # a third name of nlink 2
    for tool in ("bsdtar", "cpio"):
        dest = tmp_path / tool
        _extract(tool, str(tmp_path / "l.cpio"), dest)
        got = {n: (dest / n).read_bytes() for n in ("a1", "a2", "b1", "b2", "c1", "c2", "c3")}
        assert got == {"a1": b"AAAA", "a2": b"AAAA", "b1": b"BBBBBB", "b2": b"BBBBBB", "c1": b"C", "c2": b"C",
                       "c3": b"C"}, tool
        assert os.stat(dest / "b1").st_ino == os.stat(dest / "b2").st_ino, tool
        assert os.stat(dest / "c1").st_ino == os.stat(dest / "c2").st_ino, tool


def test_duplicates_are_refused_while_their_directory_is_remembered(tmp_path):
    need("bsdtar")
    c = CPIO(default_time=0)
    c.add(("file", "etc/a", b"1"))
    c.add(("file", "usr/b", b"2"))                       # etc is closed, its names remembered
    with pytest.raises(InvalidInputError, match="etc/a: this path was added twice"):
        c.add(("file", "etc/a", b"3"))
    with pytest.raises(InvalidInputError, match="usr/b/c: parent usr/b is not a directory"):
        c.add(("file", "usr/b/c", b"4"))
    # past the bound (no closed directory remembered) a name given again is written again,
    # and readers keep the later entry, as the kernel does
    c = CPIO(str(tmp_path / "d.cpio"), default_time=0, remember_names=0)
    c.add(("file", "etc/a", b"first"))
    c.add(("file", "usr/b", b"2"))
    c.add(("file", "etc/a", b"second"))
    c.add(("dir700", "etc"))                             # a directory given again: its entry again
    c.finish()
    names = [n for _, n, _ in iter_newc((tmp_path / "d.cpio").read_bytes())]
    assert names == ["etc", "etc/a", "usr", "usr/b", "etc/a", "etc"]
    dest = tmp_path / "x"
    _extract("bsdtar", str(tmp_path / "d.cpio"), dest)
    assert (dest / "etc/a").read_bytes() == b"second" and stat.S_IMODE(os.stat(dest / "etc").st_mode) == 0o700


# ------------------------------------------------------------------ a failed batch

def test_a_source_failing_in_a_batch_removes_the_output(tmp_path):
    target = tmp_path / "out.cpio"
    target.write_bytes(b"old")
    gone = tmp_path / "gone.bin"
    gone.write_bytes(b"12345")
    for compress in (None, "gzip"):
        c = CPIO(str(target), compress=compress, default_time=0, window_entries=2)
        c.add({"name": "gone", "mode": 0o100644, "data_path": str(gone)})
        os.truncate(gone, 2)
        with pytest.raises(SourceError, match="gone.bin.*changed size"):
            c.add(("file", "second", b"2"))             # the batch of two is written here
        with pytest.raises(CallOrderError, match="an earlier error ended this archive"):
            c.add(("file", "third", b"3"))
        with pytest.raises(CallOrderError, match="earlier error"):
            c.finish()
        assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["gone.bin", "out.cpio"]
        os.truncate(gone, 5)


def test_a_walked_file_that_reads_short_fails_add_tree_and_removes_the_output(tmp_path):
    """A small file is read as the walk reaches it: one that gives fewer bytes than its
    size (sysfs says 4096 for a line of text) fails add_tree() itself, naming it, and the
    output is gone; the writer refuses everything after."""
    tree = "/sys/kernel/mm/transparent_hugepage"
    if not os.path.isfile(os.path.join(tree, "enabled")):
        pytest.skip(f"{tree} is not mounted here")
    target = tmp_path / "t.cpio"
    target.write_bytes(b"old")
    for compress in (None, "gzip"):
        c = CPIO(str(target), compress=compress, default_time=0)
        with pytest.raises(SourceError, match=f"{tree}/defrag: short read: expected 4096 bytes"):
            c.add_tree(tree)
        with pytest.raises(CallOrderError, match="an earlier error ended this archive"):
            c.finish()
        assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.cpio"]


def test_a_walked_name_changed_after_the_listing(tmp_path):
    """Between the listing and the read a regular file may become a fifo, a symlink or
    nothing: the tight path opens without following or blocking and then trusts
    fstat, so each is archived as what it is then (bsdtar lists the types), and a name that
    is gone is an InvalidInputError naming it.  ``prune`` is called just before each entry
    is read: the hook that changes the tree at that moment."""
    need("bsdtar")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a-fifo", "b-link", "c-gone", "d-file"):
        (src / name).write_bytes(name.encode())

    def change(name: str) -> bool:
        path = src / name
        if name == "a-fifo":
            path.unlink()
            os.mkfifo(path)
        elif name == "b-link":
            path.unlink()
            os.symlink("d-file", path)
        return False

    c = CPIO(str(tmp_path / "t.cpio"), default_time=0)
    c.add_tree(src, prune=change)
    c.finish()
    listing = out(["bsdtar", "-tvf", str(tmp_path / "t.cpio")]).splitlines()
    kinds = {line.split()[-1] if "->" not in line else line.split()[-3]: line[0] for line in listing}
    assert kinds == {".": "d", "a-fifo": "p", "b-link": "l", "c-gone": "-", "d-file": "-"}, listing
    assert _entries((tmp_path / "t.cpio").read_bytes())["d-file"][1] == b"d-file"

    def remove(name: str) -> bool:
        if name == "c-gone":
            (src / name).unlink()
        return False

    c = CPIO(str(tmp_path / "u.cpio"), default_time=0)
    with pytest.raises(InvalidInputError, match=r"src/c-gone: cannot stat: No such file"):
        c.add_tree(src, prune=remove)


def test_prune_leaves_a_directory_unread(tmp_path):
    """An excluded directory is not listed: ``prune`` is never asked about what is under
    it, and nothing of it is in the archive (GNU cpio lists the archive)."""
    need("cpio")
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "keep/a").write_bytes(b"a")
    (src / "proc").mkdir()
    (src / "proc/b").write_bytes(b"b")
    asked = []

    def prune(name: str) -> bool:
        asked.append(name)
        return name == "proc"

    c = CPIO(str(tmp_path / "t.cpio"), default_time=0)
    c.add_tree(src, prune=prune)
    c.finish()
    assert asked == ["keep", "keep/a", "proc"]
    names = out(["cpio", "-t", "--quiet", "-F", str(tmp_path / "t.cpio")]).split()
    assert names == [".", "keep", "keep/a"]


# ------------------------------------------------------------------ from_image

def _gnu_source(tmp_path) -> tuple[str, str]:
    """A tree and GNU cpio's archive of it (hard-linked data on the LAST name, as GNU cpio writes)."""
    need("cpio")
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "bin").mkdir()
    (src / "etc/motd").write_bytes(b"welcome\n")
    (src / "etc/passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    (src / "bin/busybox").write_bytes(b"\x7fELF" + bytes(range(256)) * 300)
    os.link(src / "bin/busybox", src / "bin/sh")
    os.link(src / "bin/busybox", src / "etc/ls")
    os.symlink("busybox", src / "bin/ash")
    archive = os.path.abspath(tmp_path / "gnu.cpio")
    run(["sh", "-c", f"cd '{src}' && find . | LC_ALL=C sort | cpio -o -H newc --quiet > '{archive}'"])
    return str(src), archive


def test_remaster_a_gnu_cpio_archive(tmp_path, sde):
    need("bsdtar", "cpio")
    _src, archive = _gnu_source(tmp_path)
    hdr = _entries(open(archive, "rb").read())
    assert hdr["etc/ls"][0]["c_filesize"] > 0 and hdr["bin/busybox"][0]["c_filesize"] == 0   # data last
    out_path = str(tmp_path / "new.cpio.gz")
    c = CPIO.from_image(archive, out_path, compress="gzip")
    c.remove("etc/passwd")
    c.rename("bin", "usr/bin")                   # usr does not exist: written as an implied directory
    c.add(("file600", "etc/shadow", b"root:*:1::::::\n"))
    plan = c.finish()
    assert plan.compress == "gzip"
    names = [n for _, n, _ in iter_newc(gzip.decompress(open(out_path, "rb").read()))]
    # GNU cpio wrote bin/sh and bin/busybox (size 0) after etc, before etc/ls and its data;
    # the renamed entries come after the rest of the source, then what was added
    assert names == [".", "etc", "etc/ls", "etc/motd", "usr", "usr/bin", "usr/bin/ash", "usr/bin/sh",
                     "usr/bin/busybox", "etc/shadow"]
    for tool in ("bsdtar", "cpio"):
        dest = tmp_path / tool
        plain = tmp_path / f"{tool}.cpio"
        plain.write_bytes(gzip.decompress(open(out_path, "rb").read()))
        _extract(tool, str(plain), dest)
        big = b"\x7fELF" + bytes(range(256)) * 300
        assert (dest / "usr/bin/busybox").read_bytes() == big and (dest / "usr/bin/sh").read_bytes() == big
        assert (dest / "etc/ls").read_bytes() == big, tool
        inos = {os.stat(dest / n).st_ino for n in ("usr/bin/busybox", "usr/bin/sh", "etc/ls")}
        assert len(inos) == 1 and os.stat(dest / "etc/ls").st_nlink == 3, tool
        assert os.readlink(dest / "usr/bin/ash") == "busybox"
        assert (dest / "etc/motd").read_bytes() == b"welcome\n" and not (dest / "etc/passwd").exists()
        assert (dest / "etc/shadow").read_bytes() == b"root:*:1::::::\n"
        assert stat.S_IMODE(os.stat(dest / "etc/shadow").st_mode) == 0o600


@pytest.mark.parametrize("compress", [None, "gzip", "xz"])
def test_remaster_without_edits_keeps_every_entry(tmp_path, compress):
    """Our own archive, plain or compressed, through from_image unchanged: the same names,
    modes, owners, times, devices and bytes as bsdtar lists and reads them."""
    need("bsdtar")
    from test_cpio import SPECS
    first = str(tmp_path / f"a.cpio{'.' + compress if compress else ''}")
    c = CPIO(first, compress=compress, default_time=1_700_000_000)
    for s in SPECS:
        c.add(s)
    c.finish()
    again = str(tmp_path / "b.cpio")
    CPIO.from_image(first, again, default_time=5).finish()
    listing = out(["bsdtar", "-tvf", first, "--numeric-owner"]).splitlines()
    assert out(["bsdtar", "-tvf", again, "--numeric-owner"]).splitlines() == listing
    plain = gzip.decompress(open(first, "rb").read()) if compress == "gzip" else \
        __import__("lzma").decompress(open(first, "rb").read()) if compress == "xz" else open(first, "rb").read()
    assert open(again, "rb").read() == plain          # the same entries, inode numbers and all


def test_remaster_refuses_what_would_be_wrong(tmp_path):
    _src, archive = _gnu_source(tmp_path)
    c = CPIO.from_image(archive, str(tmp_path / "x.cpio"))
    with pytest.raises(InvalidInputError, match="etc/ls carries the data of a hard-linked file"):
        c.remove("etc/ls")
    c.remove("bin")                                # every name of the file whose data is in etc/ls... not all
    c.remove("no/such/file")
    with pytest.raises(InvalidInputError, match="no entry no/such/file in the source archive"):
        c.finish()
    assert not (tmp_path / "x.cpio").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["gnu.cpio", "src"]
    with pytest.raises(CallOrderError, match="only a writer made by CPIO.from_image"):
        CPIO(default_time=0).remove("a")
    c = CPIO.from_image(archive, str(tmp_path / "y.cpio"))
    c.add(("file", "new", b"n"))
    with pytest.raises(CallOrderError, match="until it streams them"):
        c.rename("etc", "etc2")
    with pytest.raises(InvalidInputError, match="into itself"):
        CPIO.from_image(archive).rename("etc", "etc/sub")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "bad-hex"])
def test_remaster_of_a_hostile_source_is_an_invalid_image(tmp_path, damage):
    _src, archive = _gnu_source(tmp_path)
    data = open(archive, "rb").read()
    bad = {"truncated": data[:len(data) // 2], "garbage": b"\x01" * 4096, "empty": b"",
           "bad-hex": data[:14] + b"ZZZZZZZZ" + data[22:]}[damage]
    path = tmp_path / "bad.cpio"
    path.write_bytes(bad)
    if damage == "empty":
        c = CPIO.from_image(str(path), str(tmp_path / "out.cpio"))     # no entries: an empty archive
        assert c.finish().entry_count == 0
        return
    with pytest.raises(InvalidImageError):
        CPIO.from_image(str(path), str(tmp_path / "out.cpio"))
    assert not (tmp_path / "out.cpio").exists()


def test_remaster_a_bsdtar_archive_into_a_stream(tmp_path):
    """bsdtar's newc (its own inode numbers, hard-linked data on the last name) remastered
    into a pipe that bsdtar reads."""
    need("bsdtar")
    src, _archive = _gnu_source(tmp_path)
    made = str(tmp_path / "bsd.cpio")
    run(["sh", "-c", f"cd '{src}' && bsdtar --format newc -cf '{made}' ."])
    c = CPIO.from_image(made, default_time=0)
    c.rename("etc/motd", "etc/issue")
    b = io.BytesIO()
    c.write_to_stream(b)
    p = subprocess.run(["bsdtar", "-tvf", "-"], input=b.getvalue(), capture_output=True, check=True)
    listing = p.stdout.decode()
    assert "etc/issue" in listing and "etc/motd" not in listing and "bin/sh" in listing


@pytest.mark.slow
def test_the_kernel_unpacks_a_remastered_archive(tmp_path):
    """Linux boots the test initramfs after CPIO.from_image changed it (an entry removed, a
    directory renamed after the rest, files added with a hard link): the kernel's unpacker
    creates every kept name under its new name, the link shared, the removed one gone."""
    from helpers import linuxvm
    linuxvm.need_linux()
    script = ("cat /etc/added; ls /bin/busybox; test -e /tmp && echo TMP-KEPT; test -e /bin/yes || echo YES-GONE; "
              "cat /usr/local/bin/hello; stat -c '%i %h' /etc/added /etc/same\n")
    harness = linuxvm.build_initramfs(str(tmp_path / "harness.cpio"), script)
    remastered = str(tmp_path / "remastered.cpio.gz")
    c = CPIO.from_image(harness, remastered, compress="gzip", default_time=0)
    c.remove("bin/yes")
    c.rename("root", "usr/local/bin")
    c.add(("file644", "etc/added", b"ADDED-OK\n", {"dev": 9, "ino": 1, "nlink": 2}))
    c.add(("file644", "etc/same", b"ADDED-OK\n", {"dev": 9, "ino": 1, "nlink": 2}))
    c.add(("file644", "usr/local/bin/hello", b"HELLO-OK\n"))
    c.finish()
    kernel, _ = linuxvm.find_kernel()
    log = str(tmp_path / "serial.log")
    subprocess.run([linuxvm.QEMU, "-nic", "none", "-nographic", "-no-reboot", "-m", "512", "-monitor", "none",
                    "-display", "none", "-kernel", kernel, "-append", linuxvm.KERNEL_CMDLINE, "-initrd", remastered,
                    "-serial", f"file:{log}"], stdin=subprocess.DEVNULL, capture_output=True, timeout=180)
    rc, body, problems = linuxvm.script_output(open(log, errors="replace").read())
    assert rc == 0 and not problems, body
    lines = body.strip().splitlines()
    assert lines[:5] == ["ADDED-OK", "/bin/busybox", "TMP-KEPT", "YES-GONE", "HELLO-OK"], body
    (ino1, n1), (ino2, n2) = (ln.split() for ln in lines[5:7])
    assert ino1 == ino2 and n1 == n2 == "2", body
