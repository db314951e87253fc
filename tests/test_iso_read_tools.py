"""The ISO 9660 views (rr, joliet, iso9660) of images made by other tools (xorriso,
genisoimage, mkzftree, grub-mkrescue) and by our writer, entry by entry against the source
tree and against what other readers report: bsdtar and xorriso extracting (types, modes,
owners, times, sizes, bytes, symlink targets, device numbers, hard links), isoinfo -l,
xorriso -find -exec lsdl, pycdlib, xorriso -toc; the Linux kernel in the slow tier."""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import stat

import pytest

from helpers import need, out, run
from sysexport.image import Stat
from sysexport.iso9660.reader import ISO9660Reader
from sysexport.iso9660.view import ISOView, open_iso_views

MTIME = 1_600_000_000
ATIME = 1_600_000_321
ROOT = os.geteuid() == 0
LONG_NAME = "long-" + "n" * 248                      # 253 bytes: two NM entries (Linux cuts at 254)
LONG_TARGET = "../" * 3 + "/".join(["z" * 100] * 3)   # over 255 bytes: several SL entries
DEEP = "/".join(f"d{i}" for i in range(1, 11))       # 10 levels: genisoimage relocates (RRIP 4.1.5)
TYPE_OF = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "chardev",
           stat.S_IFBLK: "blockdev", stat.S_IFIFO: "fifo"}


def make_tree(root: str) -> str:
    """A tree with every kind of entry the writers record (devices and owners when root)."""
    rng = random.Random(12)
    os.makedirs(os.path.join(root, DEEP))
    for d in ("sub", "sticky", "dev", "run", "dir.x"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    files = {
        "a.txt": b"hello\n", "empty": b"", "exact2048": bytes(range(256)) * 8, "X": b"x",
        "big.bin": rng.randbytes(300_000), "text.txt": b"compress me please " * 20_000,
        "zeros.bin": bytes(200_000), "café ünï.txt": "unicode ✓\n".encode(), "日本語.txt": b"nihongo\n",
        LONG_NAME: b"long name\n", "sub/script.sh": b"#!/bin/sh\necho hi\n", DEEP + "/deep.txt": b"deep\n",
        "setuid": b"#!/bin/sh\n", "owned": b"owned\n",
    }
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    os.link(os.path.join(root, "a.txt"), os.path.join(root, "hard.txt"))
    os.link(os.path.join(root, "a.txt"), os.path.join(root, "sub", "hard2.txt"))
    os.symlink("a.txt", os.path.join(root, "link"))
    os.symlink("/abs/../x/y", os.path.join(root, "sub", "abslink"))
    os.symlink(LONG_TARGET, os.path.join(root, "sub", "longlink"))
    os.symlink(".", os.path.join(root, "dotlink"))
    os.symlink("/", os.path.join(root, "rootlink"))
    os.mkfifo(os.path.join(root, "run", "fifo"))
    os.chmod(os.path.join(root, "sub", "script.sh"), 0o755)
    os.chmod(os.path.join(root, "setuid"), 0o4755)
    os.chmod(os.path.join(root, "sub"), 0o750)
    os.chmod(os.path.join(root, "sticky"), 0o1777)
    os.chmod(os.path.join(root, "a.txt"), 0o640)
    if ROOT:
        os.mknod(os.path.join(root, "dev", "tty"), stat.S_IFCHR | 0o620, os.makedev(4, 64))
        os.mknod(os.path.join(root, "dev", "sda1"), stat.S_IFBLK | 0o660, os.makedev(8, 300))
        os.mknod(os.path.join(root, "dev", "big"), stat.S_IFCHR | 0o600, os.makedev(300, 70000))
        os.chown(os.path.join(root, "owned"), 1000, 100)
        os.chown(os.path.join(root, "sub", "script.sh"), 12345, 54321)
        os.chown(os.path.join(root, "link"), 7, 8, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (ATIME, MTIME), follow_symlinks=False)
    os.utime(root, (ATIME, MTIME))
    return root


def host_tree(root: str, *, nlink: bool = True) -> dict[str, dict]:
    """{"/path": fields} of a host tree, in the terms of our Stat."""
    result: dict[str, dict] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            kind = TYPE_OF.get(stat.S_IFMT(st.st_mode), "other")
            e: dict = {"type": kind, "perm": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                       "mtime": int(st.st_mtime)}
            if kind == "file":
                with open(p, "rb") as f:
                    e["sha256"] = hashlib.sha256(f.read()).hexdigest()
                e["size"] = st.st_size
                if nlink:
                    e["nlink"] = st.st_nlink
            elif kind == "symlink":
                e["target"] = os.readlink(p)
            elif kind in ("chardev", "blockdev"):
                e["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            result["/" + os.path.relpath(p, root)] = e
    return result


def view_tree(view, *, nlink: bool = True) -> dict[str, dict]:
    """The same fields from one of our views (every file's bytes read through open())."""
    result: dict[str, dict] = {}
    for e in view.walk():
        if e.path == "/":
            continue
        d: dict = {"type": e.type, "perm": stat.S_IMODE(e.mode) if e.mode is not None else None, "uid": e.uid,
                   "gid": e.gid, "mtime": int(e.mtime) if e.mtime is not None else None}
        if e.type == "file":
            h = hashlib.sha256()
            with view.open(e.path) as f:
                data = f.read()
            h.update(data)
            assert len(data) == e.size, e.path
            d["sha256"] = h.hexdigest()
            d["size"] = e.size
            if nlink:
                d["nlink"] = e.nlink
        elif e.type == "symlink":
            d["target"] = e.target
            assert e.size == len(e.target.encode("utf-8", "surrogateescape"))
        elif e.type in ("chardev", "blockdev"):
            d["rdev"] = e.rdev
        result[e.path] = d
    return result


def pick(tree: dict[str, dict], *keys: str) -> dict[str, dict]:
    return {p: {k: v for k, v in e.items() if k in keys} for p, e in tree.items()}


def rr_view(img: str, session: int | None = None, name: str = "rr") -> ISOView:
    f = open(img, "rb")
    return ISOView.from_file(f, os.path.getsize(img), 0, session, name)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> str:
    return make_tree(str(tmp_path_factory.mktemp("src") / "tree"))


@pytest.fixture(scope="module")
def images(tree, tmp_path_factory) -> dict[str, str]:
    """The images every test here reads, made once."""
    need("xorriso", "genisoimage")
    d = tmp_path_factory.mktemp("img")
    made = {}
    made["xorriso"] = str(d / "x.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-joliet-long", "-V", "XLABEL", "-o", made["xorriso"], tree])
    made["xorriso-112"] = str(d / "x112.iso")         # RRIP 1.12: PX serial numbers, hard links kept
    run(["xorriso", "-outdev", made["xorriso-112"], "-compliance", "new_rr", "-hardlinks", "on", "-joliet", "on",
         "-map", tree, "/", "-commit"])
    made["xorriso-zisofs"] = str(d / "xz.iso")
    run(["xorriso", "-outdev", made["xorriso-zisofs"], "-joliet", "on", "-hardlinks", "on", "-map", tree, "/",
         "-zisofs", "level=9", "-set_filter_r", "--zisofs", "/", "--", "-commit"])
    made["genisoimage"] = str(d / "g.iso")
    run(["genisoimage", "-quiet", "-R", "-J", "-joliet-long", "-cache-inodes", "-o", made["genisoimage"], tree])
    made["genisoimage-r"] = str(d / "gr.iso")
    run(["genisoimage", "-quiet", "-r", "-o", made["genisoimage-r"], tree])
    made["genisoimage-plain"] = str(d / "gp.iso")       # no Rock Ridge, no Joliet (symlinks left out)
    run(["genisoimage", "-quiet", "-o", made["genisoimage-plain"], tree], ok_codes=(0,))
    return made


# --- against the source tree and the extracting readers -------------------------------------

RR_IMAGES = ["xorriso", "xorriso-112", "xorriso-zisofs", "genisoimage"]


@pytest.mark.parametrize("which", RR_IMAGES)
def test_rr_view_is_the_source_tree(tree, images, which):
    """Every entry: type, permissions, owner, mtime, size, bytes, target, device numbers,
    link count, as the host tree has them (the writers copy all of it)."""
    view = rr_view(images[which])
    got = view_tree(view)
    want = host_tree(tree)
    if which == "xorriso":             # xorriso -as mkisofs records no link counts (PX says 1)
        got = {p: {k: v for k, v in e.items() if k != "nlink"} for p, e in got.items()}
        want = {p: {k: v for k, v in e.items() if k != "nlink"} for p, e in want.items()}
    dirs = {p for p, e in want.items() if e["type"] == "dir"}
    assert got.keys() == want.keys()
    for p in sorted(want):
        w, g = want[p], got[p]
        if p in dirs:                  # writers record a directory's own mtime at the time of writing
            w, g = dict(w, mtime=None), dict(g, mtime=None)
        assert g == w, p
    assert view.problems == []


@pytest.mark.parametrize("which", RR_IMAGES)
def test_rr_atime_ctime_inode_and_links(tree, images, which):
    """TF access and attribute-change times; RRIP 1.12 serial numbers as inode; hard links
    recognised (one link_id for the three names of a.txt, none shared by others)."""
    view = rr_view(images[which])
    entries = {e.path: e for e in view.walk()}
    a = entries["/a.txt"]
    if which == "xorriso":          # made first: later writers record the atime the earlier ones' reading left
        assert a.atime == ATIME and int(a.ctime) == int(os.lstat(os.path.join(tree, "a.txt")).st_ctime)
    names = {p for p, e in entries.items() if e.link_id is not None and e.link_id == a.link_id}
    if which == "xorriso":
        assert a.nlink == 3 and names == {"/a.txt", "/hard.txt", "/sub/hard2.txt"}    # same extent, nlink 3
    else:
        assert names == {"/a.txt", "/hard.txt", "/sub/hard2.txt"}
    ids = [e.link_id for p, e in entries.items() if e.type == "file" and p not in names and e.link_id is not None]
    assert len(ids) == len(set(ids))
    if which == "xorriso-112":
        assert view.reader.rock_ridge == "1.12"
        inodes = {p: e.inode for p, e in entries.items()}
        assert all(i is not None for i in inodes.values())
        assert len({inodes[p] for p in names}) == 1
        others = [i for p, i in inodes.items() if p not in names]
        assert len(others) == len(set(others))


@pytest.mark.parametrize("which", RR_IMAGES + ["genisoimage-r"])
def test_bsdtar_extracts_what_we_read(images, which, tmp_path):
    """libarchive's extraction (as root: owners, devices, hard links) lstat'ed == our view."""
    need("bsdtar")
    dest = tmp_path / "bsdtar"
    dest.mkdir()
    genisoimage = which.startswith("genisoimage")
    p = run(["bsdtar", "-xpf", images[which], "-C", str(dest)], ok_codes=(0, 1) if genisoimage else (0,))
    want = host_tree(str(dest), nlink=which != "xorriso")
    got = view_tree(rr_view(images[which]), nlink=which != "xorriso")
    if genisoimage and ROOT:
        # libarchive reads PN as one 64-bit dev_t (high << 32 | low); genisoimage records
        # major and minor in the two words, so bsdtar cannot make those device nodes (EINVAL)
        assert b"dev/sda1: Can't create" in p.stderr
        assert {p: e["rdev"] for p, e in got.items() if "rdev" in e} == \
            {"/dev/tty": (4, 64), "/dev/sda1": (8, 300), "/dev/big": (300, 70000)}
        got = {p: e for p, e in got.items() if e["type"] not in ("chardev", "blockdev")}
    # libarchive sets no time on the symlinks and directories it makes (Linux symlinks have no
    # permissions); it joins SL entries without the "/" between components that end one entry
    # and start the next (xorriso splits LONG_TARGET there; Linux, pycdlib and we add it)
    for t in (got, want):
        for e in t.values():
            if e["type"] in ("symlink", "dir"):
                e["mtime"] = None
            if e["type"] == "symlink":
                e["perm"] = None
    if which.startswith("xorriso"):
        theirs = want["/sub/longlink"]["target"]
        assert theirs.replace("/", "") == LONG_TARGET.replace("/", "")
        assert theirs.count("/") == LONG_TARGET.count("/") - 1
        want["/sub/longlink"]["target"] = LONG_TARGET
    assert got.keys() == want.keys()
    for p in sorted(want):
        assert got[p] == want[p], p


@pytest.mark.parametrize("which", RR_IMAGES)
def test_xorriso_extracts_what_we_read(images, which, tmp_path):
    """xorriso -osirrox extraction (no devices, no hard links, no symlink times) == our view."""
    dest = tmp_path / "x"
    run(["xorriso", "-osirrox", "on", "-indev", images[which], "-extract", "/", str(dest)])
    want = pick(host_tree(str(dest)), "type", "perm", "uid", "gid", "mtime", "size", "sha256", "target")
    got = pick(view_tree(rr_view(images[which])), "type", "perm", "uid", "gid", "mtime", "size", "sha256", "target")
    got = {p: e for p, e in got.items() if e["type"] not in ("chardev", "blockdev")}
    for t in (got, want):
        for e in t.values():
            if e["type"] in ("symlink", "dir"):
                e["mtime"] = None
                e["uid"] = e["gid"] = None
    if which == "genisoimage":      # libisofs shows the emptied rr_moved (as Linux does); we hide it
        assert want.pop("/rr_moved")["type"] == "dir"
    assert got == want


# --- against the listing readers ------------------------------------------------------------

_LSDL = re.compile(r"^(\S{10})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+\w{3}\s+\d+\s+\S+\s+'(.*?)'(?: -> '(.*)')?$")


def xorriso_lsdl(img: str) -> dict[str, dict]:
    """xorriso -find / -exec lsdl: mode string, uid, gid, size (or major,minor), target."""
    text = out(["xorriso", "-indev", img, "-find", "/", "-exec", "lsdl", "--"])
    result = {}
    for line in text.splitlines():
        m = _LSDL.match(line)
        if not m or m.group(6) == "/":
            continue
        mode, _, uid, gid, size, path, target = m.groups()
        e: dict = {"mode": mode, "uid": int(uid), "gid": int(gid)}
        if "," in size:
            e["rdev"] = tuple(int(x) for x in size.split(","))
        elif mode[0] == "-":
            e["size"] = int(size)
        if target is not None:
            e["target"] = target
        result[path] = e
    return result


@pytest.mark.parametrize("which", RR_IMAGES)
def test_xorriso_lsdl(images, which):
    """Sizes as xorriso shows them (zisofs files decompressed), modes, owners, devices;
    xorriso normalises symlink targets (drops "//" and a trailing "/"), so those are
    compared as it does."""
    theirs = xorriso_lsdl(images[which])
    ours = {}
    for e in rr_view(images[which]).walk():
        if e.path == "/":
            continue
        d: dict = {"mode": stat.filemode(e.mode), "uid": e.uid, "gid": e.gid}
        if e.rdev is not None:
            d["rdev"] = e.rdev
        elif e.type == "file":
            d["size"] = e.size
        if e.target is not None:
            d["target"] = e.target
        ours[e.path] = d
    if which == "genisoimage":
        # libisofs reads PN as one 64-bit dev_t; genisoimage wrote major and minor (Linux's
        # reading, and ours): xorriso shows other numbers for genisoimage's devices
        assert theirs.pop("/rr_moved")["mode"].startswith("d")
        for p, e in ours.items():
            if "rdev" in e:
                major, minor = e["rdev"]
                dev = (major << 32) | minor
                assert theirs[p]["rdev"] == (os.major(dev), os.minor(dev)), p
                theirs[p]["rdev"] = e["rdev"]
    assert ours == theirs


def isoinfo_listing(img: str, *args: str) -> dict[str, dict]:
    """isoinfo -l (with -R or -J): {path: {mode, nlink, size, name}}, '.' and '..' left out."""
    text = out(["isoinfo", "-l", *args, "-i", img])
    result, current = {}, "/"
    for line in text.splitlines():
        if line.startswith("Directory listing of "):
            current = line[len("Directory listing of "):]
            continue
        m = re.match(r"^(\S{10})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\w{3}\s+\d+\s+\d{4}\s+\[\s*(\d+)\s+(\w+)\]\s\s(.*?) ?$",
                     line)
        if not m:
            continue
        mode, nlink, uid, gid, size, lba, flags, name = m.groups()
        if name in (".", ".."):
            continue
        target = None
        if name.endswith(" ->"):
            name, target = name[:-3], ""
        elif " -> " in name:
            name, target = name.split(" -> ", 1)
        if not name:                       # a '.' record with NM CURRENT (RRIP 1.12), shown nameless
            continue
        result[current + name] = {"mode": mode, "nlink": int(nlink), "size": int(size), "target": target,
                                  "lba": int(lba)}
    return result


@pytest.mark.parametrize("which", ["xorriso", "xorriso-112", "genisoimage"])
def test_isoinfo_rock_ridge_listing(images, which):
    """isoinfo -l -R: every name (below 255 bytes of path it prints), mode, link count,
    recorded size and extent (LBA), symlink target."""
    need("isoinfo")
    theirs = isoinfo_listing(images[which], "-R")
    view = rr_view(images[which])
    ours = {}
    for e in view.walk():
        if e.path == "/" or e.fields.get("relocated_from"):
            continue
        mode = stat.filemode(e.mode & ~0o7000)            # isoinfo shows no setuid, setgid, sticky bit
        size = sum(s for _, s in e.extents) if e.type in ("file", "dir") else 0
        lba = e.fields["lba"]
        ours[e.path] = {"mode": mode, "nlink": e.nlink, "size": size,
                        "target": e.target if e.type == "symlink" else None, "lba": lba}
    theirs = {p: v for p, v in theirs.items() if p in ours or not p.startswith("/d1")}
    for p, v in theirs.items():
        if v["mode"].startswith("f"):          # isoinfo's letter for a fifo
            v["mode"] = "p" + v["mode"][1:]
        if v["target"] is not None and (len(v["target"]) >= 255 or v["target"] == "") and p in ours:
            v["target"] = ours[p]["target"]           # isoinfo cuts long targets and prints "/" as ""
    theirs = {p: v for p, v in theirs.items() if not p.startswith("/rr_moved")}
    assert {p: ours.get(p) for p in theirs} == theirs


def test_plain_image_as_bsdtar_and_isoinfo_read_it(images, tmp_path):
    """genisoimage without -R/-J: one view, iso9660; names without version or empty
    extension's '.', as bsdtar extracts them and isoinfo -f lists them; the same bytes."""
    need("bsdtar", "isoinfo")
    img = images["genisoimage-plain"]
    r = ISO9660Reader(img)
    assert r.view_names == ["iso9660"] and r.rock_ridge is None
    view = ISOView(r, "iso9660")
    dest = tmp_path / "x"
    dest.mkdir()
    run(["bsdtar", "-xf", img, "-C", str(dest)])
    want = pick(host_tree(str(dest)), "type", "size", "sha256")
    assert pick(view_tree(view), "type", "size", "sha256") == want
    listed = {ln.rsplit(";", 1)[0].rstrip(".") for ln in out(["isoinfo", "-f", "-i", img]).split()}
    assert {e.path for e in view.walk() if e.path != "/"} == listed
    e = view.stat("/A.TXT")
    assert e.mode is None and e.uid is None and e.nlink is None and e.mtime == MTIME


def test_isoinfo_joliet_and_plain_names(images):
    """isoinfo -l -J and plain -l: the Joliet and ISO 9660 names and sizes of every file."""
    need("isoinfo")
    img = images["genisoimage"]
    j = {p: v["size"] for p, v in isoinfo_listing(img, "-J").items() if not v["mode"].startswith("d")}
    ours = {e.path: sum(s for _, s in e.extents) for e in rr_view(img, name="joliet").walk() if e.type == "file"}
    assert {p: s for p, s in ours.items() if p.isascii()} == {p: j.get(p) for p in ours if p.isascii()}
    assert len(ours) == len(j)                          # isoinfo prints Latin-1 only
    plain = {p.rsplit(";", 1)[0].rstrip("."): v["size"] for p, v in isoinfo_listing(img).items()
             if not v["mode"].startswith("d")}
    ours = {e.path: e.size for e in rr_view(img, name="iso9660").walk() if e.type == "file"}
    assert ours == plain


@pytest.mark.parametrize("which", ["xorriso", "genisoimage"])     # pycdlib refuses xorriso's two ER entries
def test_pycdlib_names_modes_and_bytes(images, which):
    """pycdlib's Rock Ridge, Joliet and ISO 9660 paths; its file modes and bytes."""
    import io

    import pycdlib
    img = images[which]
    p = pycdlib.PyCdlib()
    p.open(img)
    try:
        r = ISO9660Reader(img)
        for kind, key in (("rr", "rr_path"), ("joliet", "joliet_path"), ("iso9660", "iso_path")):
            if kind not in r.view_names:
                continue
            view = ISOView(r, kind)
            ours = {e.path: e for e in view.walk() if e.path != "/"}
            theirs = set()
            for path, dirs, files in p.walk(**{key: "/"}):
                for n in dirs + files:
                    full = (path.rstrip("/") + "/" + n)
                    theirs.add(full.rsplit(";", 1)[0].rstrip(".") if kind == "iso9660" and n in files else full)
            if kind == "rr":
                theirs = {t for t in theirs if not t.lower().startswith("/rr_moved")}
            assert set(ours) == theirs, kind
            for path, e in ours.items():
                if e.type != "file" or e.fields.get("zisofs"):
                    continue
                if kind == "rr":
                    rec = p.get_record(rr_path=path)
                    assert rec.rock_ridge.get_file_mode() == e.mode, path
                    buf = io.BytesIO()
                    p.get_file_from_iso_fp(buf, rr_path=path)
                    assert buf.getvalue() == view.read(path), path
    finally:
        p.close()


# --- zisofs -------------------------------------------------------------------------------------

def test_zisofs_files_are_decompressed(tree, images):
    """xorriso --zisofs: the compressible files carry ZF; every view reads them
    decompressed, seekable, Stat.size the uncompressed size, fields telling it is zisofs."""
    img = images["xorriso-zisofs"]
    r = ISO9660Reader(img)
    want = (open(os.path.join(tree, "text.txt"), "rb").read())
    for kind in ("rr", "joliet", "iso9660"):
        view = ISOView(r, kind)
        path = {"rr": "/text.txt", "joliet": "/text.txt", "iso9660": "/TEXT.TXT"}[kind]
        e = view.stat(path)
        z = e.fields["zisofs"]
        assert z["algorithm"] == "pz" and z["block_size"] == 32768 and z["stored_size"] < len(want) // 10
        assert e.size == len(want) and sum(s for _, s in e.extents) == z["stored_size"]
        assert view.read(path) == want
        with view.open(path) as f:             # seek into the middle of a block, read across blocks
            f.seek(100_000)
            assert f.read(70_000) == want[100_000:170_000]
            assert f.tell() == 170_000
            f.seek(-5, os.SEEK_END)
            assert f.read() == want[-5:]
    zipped = {e.path for e in ISOView(r, "rr").walk() if e.fields.get("zisofs")}
    assert {"/text.txt", "/zeros.bin"} <= zipped and "/big.bin" not in zipped
    assert r.problems == []


def test_mkzftree_and_genisoimage_z(tree, tmp_path):
    """mkzftree's zisofs files (genisoimage's package), recorded by genisoimage -z: read back
    decompressed, as bsdtar and xorriso read them."""
    need("mkzftree", "genisoimage", "bsdtar")
    z = tmp_path / "z"
    run(["mkzftree", tree, str(z)])
    img = str(tmp_path / "gz.iso")
    run(["genisoimage", "-quiet", "-R", "-z", "-o", img, str(z)])
    view = rr_view(img)
    got = pick(view_tree(view), "type", "sha256", "size")
    want = pick(host_tree(tree), "type", "sha256", "size")
    assert got == want
    assert view.stat("/text.txt").fields["zisofs"]["block_size"] == 32768
    dest = tmp_path / "bsdtar"
    dest.mkdir()
    run(["bsdtar", "-xf", img, "-C", str(dest)], ok_codes=(0, 1))    # 1: genisoimage's devices (see above)
    assert {p: e for p, e in pick(host_tree(str(dest)), "type", "sha256", "size").items() if "dev/" not in p} == \
        {p: e for p, e in want.items() if "dev/" not in p}


def test_zisofs_damage_is_an_invalid_image_error(images, tmp_path):
    """A zisofs file with a broken block table or block: InvalidImageError when read (the
    rest of the image reads), with a problem naming the file's byte offset."""
    from sysexport.errors import InvalidImageError
    img = tmp_path / "bad.iso"
    shutil.copy(images["xorriso-zisofs"], img)
    view = rr_view(str(img))
    e = view.stat("/text.txt")
    at = e.extents[0][0]
    with open(img, "r+b") as f:
        f.seek(at + 16 + 4 * 3)                 # the fourth block pointer: far past the file
        f.write((1 << 30).to_bytes(4, "little"))
        f.seek(at + 16 + 4 * 10)
    view = rr_view(str(img))
    with pytest.raises(InvalidImageError, match="zisofs block"):
        view.read("/text.txt")
    assert any(p.structure == "zisofs file" and p.offset == at for p in view.problems)
    assert view.read("/a.txt") == b"hello\n"


# --- sessions -----------------------------------------------------------------------------------

def _toc(img: str) -> list[tuple[int, int, int]]:
    text = out(["xorriso", "-indev", img, "-toc"])
    return [(int(a), int(b), int(c)) for a, b, c in
            re.findall(r"^ISO session\s*:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)s", text, re.M)]


def test_appended_sessions_as_xorriso_toc_reports_them(tmp_path):
    """xorriso -dev IMG -map DIR / -commit, three times: the sessions xorriso -toc lists
    (LBA, size), each session's own tree, the newest by default."""
    need("xorriso")
    img = str(tmp_path / "ms.iso")
    for i in range(3):
        d = tmp_path / f"s{i}"
        d.mkdir()
        (d / f"f{i}.txt").write_bytes(f"session {i}\n".encode())
        run(["xorriso", "-dev", img, "-map", str(d), f"/s{i}", "-commit"])
    toc = _toc(img)
    r = ISO9660Reader(img)
    assert [(s.number, s.start_lba, s.size_blocks) for s in r.sessions] == toc
    assert len(toc) == 3 and r.session.index == 2
    for i in range(3):
        view = rr_view(img, session=i)
        files = sorted(e.path for e in view.walk() if e.type == "file")
        assert files == [f"/s{k}/f{k}.txt" for k in range(i + 1)]
        assert view.read(f"/s{i}/f{i}.txt") == f"session {i}\n".encode()
    assert sorted(e.path for e in rr_view(img).walk() if e.type == "file") == [f"/s{k}/f{k}.txt" for k in range(3)]
    found = open_iso_views(open(img, "rb"), os.path.getsize(img))
    assert [s.kind for s in found.structures].count("iso9660-session") == 3
    from sysexport.errors import InvalidInputError
    with pytest.raises(InvalidInputError, match="session 3"):
        ISO9660Reader(img, session=3)
    # the second session's descriptors destroyed: libisoburn keeps the first and takes the
    # header copy at LBA 0 as the newest ("Chain of ISO session headers broken at #2")
    broken = str(tmp_path / "broken.iso")
    data = bytearray(open(img, "rb").read())
    second = r.sessions[1].descriptor_lba * 2048
    data[second:second + 2048] = bytes(2048)
    open(broken, "wb").write(data)
    r = ISO9660Reader(broken)
    assert [(s.number, s.start_lba, s.size_blocks) for s in r.sessions] == _toc(broken)
    assert [s.found_by for s in r.sessions] == ["emulated TOC", "LBA 0 copy"]
    assert [p for p in r.problems if "chain is broken at session 2" in p.message]
    assert sorted(e.path for e in rr_view(broken).walk() if e.type == "file") == \
        [f"/s{k}/f{k}.txt" for k in range(3)]


def test_single_session_images_have_one_session(images):
    for which in ("xorriso", "genisoimage"):
        toc = _toc(images[which])
        r = ISO9660Reader(images[which])
        assert [(s.number, s.start_lba, s.size_blocks) for s in r.sessions] == toc


@pytest.mark.parametrize("gap", [0, 45])
def test_mkisofs_session_after_the_first_is_found_by_scanning(tmp_path, gap):
    """genisoimage -M/-C writes a second session where a CD's next track starts: a copy of
    such a disc holds both (right after the first, as in util-linux's
    iso-multi-0-174-348-genisoimage test image, or after a gap); xorriso -toc reports only
    the first, we find both (scanning after the first session's end) and read the newest."""
    need("genisoimage")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "one.txt").write_bytes(b"one\n")
    (b / "two.txt").write_bytes(b"two\n")
    first = str(tmp_path / "first.iso")
    run(["genisoimage", "-quiet", "-R", "-o", first, str(a)])
    blocks = os.path.getsize(first) // 2048
    nwa = blocks + gap
    second = str(tmp_path / "second.part")
    run(["genisoimage", "-quiet", "-R", "-C", f"0,{nwa}", "-M", first, "-o", second, str(b)])
    img = str(tmp_path / "disc.iso")
    with open(img, "wb") as f:
        f.write(open(first, "rb").read())
        f.seek(nwa * 2048)
        f.write(open(second, "rb").read())
    r = ISO9660Reader(img)
    assert [(s.start_lba, s.found_by) for s in r.sessions] == [(0, "single"), (nwa, "scan")]
    assert sorted(e.path for e in rr_view(img).walk()) == ["/", "/one.txt", "/two.txt"]
    assert sorted(e.path for e in rr_view(img, session=0).walk()) == ["/", "/one.txt"]


# --- names --------------------------------------------------------------------------------------

def test_plain_directory_x_and_file_x_dot_are_two_names(tmp_path):
    """A directory X and a file X.;1 side by side (xorriso's Y.;1 renamed in place): two
    entries, "X" and "X.", not a duplicate; the Rock Ridge names are untouched."""
    need("xorriso")
    src = tmp_path / "s"
    (src / "X").mkdir(parents=True)
    (src / "X" / "in.txt").write_bytes(b"in\n")
    (src / "Y").write_bytes(b"file\n")
    img = str(tmp_path / "x.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-o", img, str(src)])
    data = open(img, "rb").read()
    assert data.count(b"Y.;1") == 1
    open(img, "wb").write(data.replace(b"Y.;1", b"X.;1"))
    view = rr_view(img, name="iso9660")
    assert sorted(view.listdir("/")) == ["X", "X."]
    assert view.stat("/X").is_dir and view.read("/X.") == b"file\n"
    assert sorted(rr_view(img).listdir("/")) == ["X", "Y"]
    assert not [p for p in view.problems if "already" in p.message]


def test_relocated_directories_in_place(tree, images):
    """genisoimage moves d9 and below to rr_moved (RRIP 4.1.5): the rr view shows them in
    place (CL), hides the moved copies (RE) and rr_moved; the iso9660 view shows the move."""
    view = rr_view(images["genisoimage"])
    deep = view.stat("/" + DEEP)
    assert deep.is_dir and view.read("/" + DEEP + "/deep.txt") == b"deep\n"
    assert any(e.fields.get("relocated_from") for e in view.walk())
    assert "rr_moved" not in view.listdir("/")
    plain = rr_view(images["genisoimage"], name="iso9660")
    assert "RR_MOVED" in plain.listdir("/")


# --- grub-mkrescue and our own writer -----------------------------------------------------------

def test_grub_mkrescue_image(tmp_path):
    """grub-mkrescue (xorriso underneath): the rr view equals bsdtar's extraction; the El
    Torito catalog names the BIOS and EFI images, checksums right."""
    need("grub-mkrescue", "bsdtar", "xorriso")
    if not (os.path.isdir("/usr/lib/grub/i386-pc") and os.path.isdir("/usr/lib/grub/x86_64-efi")):
        need("/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi")
    src = tmp_path / "s"
    (src / "boot" / "grub").mkdir(parents=True)
    (src / "boot" / "grub" / "grub.cfg").write_text("echo hi\n")
    img = str(tmp_path / "rescue.iso")
    run(["grub-mkrescue", "-o", img, str(src)], timeout=300)
    dest = tmp_path / "x"
    dest.mkdir()
    run(["bsdtar", "-xpf", img, "-C", str(dest)])
    want = host_tree(str(dest))
    got = view_tree(rr_view(img))
    for t in (got, want):
        for e in t.values():
            if e["type"] in ("symlink", "dir"):
                e["mtime"] = None
    assert got == want
    r = ISO9660Reader(img)
    catalog = r.boot_catalog()
    assert [e.platform_id for e in catalog] == [0, 0xEF] and all(e.bootable for e in catalog)
    assert not [p for p in r.problems if "catalog" in p.structure]
    report = out(["xorriso", "-indev", img, "-report_el_torito", "plain"])
    lbas = [int(m) for m in re.findall(r"El Torito boot img :\s+\d+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\d+)",
                                         report)]
    if lbas:
        assert [e.load_rba for e in catalog] == lbas


@pytest.mark.parametrize("version", ["1.09", "1.12"])
def test_our_writer(tree, tmp_path, sde, version):
    """Our writer's image: the rr view is the source tree, bsdtar agrees."""
    need("bsdtar")
    from sysexport import ISO9660
    img = str(tmp_path / "ours.iso")
    iso = ISO9660(img, volume_label="OURS", rock_ridge=version)
    iso.add_tree(tree)
    iso.finish()
    view = rr_view(img)
    got = view_tree(view)
    want = host_tree(tree)
    for t in (got, want):
        for e in t.values():
            if e["type"] == "dir":
                e["mtime"] = None
    assert got == want
    assert view.problems == []
    dest = tmp_path / "bsdtar"
    dest.mkdir()
    run(["bsdtar", "-xpf", img, "-C", str(dest)])
    theirs = pick(host_tree(str(dest)), "type", "perm", "size", "sha256", "target", "rdev", "nlink")
    assert pick(got, "type", "perm", "size", "sha256", "target", "rdev", "nlink") == theirs


def test_our_writer_devices(tmp_path, sde):
    """Device numbers above 255 and 4095: our writer's PN (glibc dev_t split) read back."""
    from sysexport import ISO9660
    img = str(tmp_path / "dev.iso")
    iso = ISO9660(img)
    devices = [(0, 5), (4, 64), (8, 300), (259, 70000), (4095, (1 << 20) - 1)]
    for i, (major, minor) in enumerate(devices):
        iso.add(("chr600", f"dev/c{i}", (major, minor)))
    iso.finish()
    view = rr_view(img)
    assert [view.stat(f"/dev/c{i}").rdev for i in range(len(devices))] == devices


# --- the Linux kernel (slow) --------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("which", ["xorriso-zisofs", "genisoimage"])
def test_linux_kernel_sees_what_we_read(images, which, tmp_path):
    """isofs (Rock Ridge, Joliet, plain names; zisofs decompressed by the kernel): every
    entry's type, mode, owner, mtime, size, device numbers, target and bytes."""
    from helpers.linuxvm import linux_views, need_linux
    need_linux()
    views = linux_views(tmp_path, images[which])
    r = ISO9660Reader(images[which])
    for kv, kind in (("rr", "rr"), ("joliet", "joliet"), ("plain", "iso9660")):
        theirs = views[kv]
        ours = {}
        for e in ISOView(r, kind).walk():
            if e.path == "/":
                continue
            path = e.path[1:] if kind != "iso9660" else e.path[1:].lower()
            d: dict = {"type": {"file": "f", "dir": "d", "symlink": "l", "chardev": "c", "blockdev": "b",
                                "fifo": "p"}[e.type]}
            if e.type == "file":
                d["size"] = e.size
                d["sha256"] = hashlib.sha256(ISOView(r, kind).read(e.path)).hexdigest()
                if kind != "rr" and e.fields.get("zisofs"):
                    # Linux decompresses zisofs only where it reads Rock Ridge (a ZF entry);
                    # we do in every view: its norock mounts show the recorded bytes
                    stored = b"".join(r.read_at(o, n) for o, n in e.extents)
                    d["size"], d["sha256"] = len(stored), hashlib.sha256(stored).hexdigest()
            if kind == "rr":
                d.update(mode=stat.S_IMODE(e.mode), uid=e.uid, gid=e.gid, mtime=int(e.mtime))
                if e.type == "symlink":
                    d["target"] = e.target
                if e.rdev is not None:
                    d["rdev"] = e.rdev
            ours[path] = d
        keys = {k for d in ours.values() for k in d}
        theirs = {p: {k: v for k, v in t.items() if k in keys and (k != "rdev" or t["type"] in "cb")
                      and (k != "size" or t["type"] == "f") and (k != "sha256" or t["type"] == "f")
                      and (k != "target" or t["type"] == "l")}
                  for p, t in theirs.items()}
        if kind == "rr":
            for d in list(ours.values()) + list(theirs.values()):
                if d["type"] == "d":
                    d["mtime"] = None
            theirs = {p: t for p, t in theirs.items() if not p.startswith("rr_moved")}
            if which.startswith("xorriso"):
                # libisofs records the glibc dev_t in PN's low word; Linux reads a low word
                # above 255 as MKDEV(low >> 8, low & 0xff), right for minors below 256 only
                for p, d in ours.items():
                    if "rdev" in d and d["rdev"][1] > 255:
                        assert theirs[p]["rdev"] == (d["rdev"][0], d["rdev"][1] & 0xFF), p
                        theirs[p]["rdev"] = d["rdev"]
        assert ours == theirs, kv
