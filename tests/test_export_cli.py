"""`sysexport export` as users call it, its output read back by readers nobody here wrote:
GNU cpio and bsdtar for the archives (names, owners after --user/--group, symlink targets
after --rewrite), and the same export into a directory and into the hybrid image, checked
by xorriso, bsdtar, isoinfo, isovfy, 7-Zip, mtools, fsck.fat and sgdisk (helpers.hybrid_checks).
"""
from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys

import pytest

from helpers import NO_SKIP, need, out, run, sha256_file
from helpers.hybrid_checks import check_esp, check_iso_readers, check_partition_tables, expected_views
from test_export import fake_root, link, put

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IS_ROOT = os.geteuid() == 0


def sysexport(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH="1700000000")
    p = subprocess.run([sys.executable, "-m", "sysexport", *args], capture_output=True, text=True, env=env)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def need_root() -> None:
    if not IS_ROOT:
        msg = "owners other than one's own can only be made as root"
        if NO_SKIP:
            pytest.fail(msg)
        pytest.skip(msg)


def owned_root(tmp_path) -> str:
    """fake_root() with /srv files owned by builder:builders (1234:5678) and daemon (1:1)."""
    r = fake_root(tmp_path)
    put(r, "/srv/app/run.sh", "#!/bin/prog\n", 0o755)
    put(r, "/srv/app/data.txt", "data\n", 0o640)
    link(r, "srv/app/current", "/srv/app/data.txt")
    put(r, "/srv/log/daemon.log", "log\n", 0o600)
    if IS_ROOT:
        for p in ("srv/app", "srv/app/run.sh", "srv/app/data.txt"):
            os.chown(os.path.join(r, p), 1234, 5678)
        os.lchown(os.path.join(r, "srv/app/current"), 1234, 5678)
        os.chown(os.path.join(r, "srv/log/daemon.log"), 1, 1)
    return r


def cpio_listing(archive: str) -> dict[str, tuple[str, str, str, str]]:
    """{name: (mode string, uid, gid, symlink target or "")} as GNU cpio lists a (gzip) archive."""
    data = open(archive, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = run(["cpio", "-itv", "--numeric-uid-gid", "--quiet"], input=data).stdout.decode()
    result = {}
    for line in text.splitlines():
        f = line.split(None, 8)
        name, _, target = f[8].partition(" -> ")
        result[name] = (f[0], f[2], f[3], target)
    return result


def bsdtar_listing(archive: str) -> dict[str, tuple[str, str, str, str]]:
    text = out(["bsdtar", "-tvf", archive, "--numeric-owner"])
    result = {}
    for line in text.splitlines():
        f = line.split(None, 8)
        name, _, target = f[8].partition(" -> ")
        result[name.rstrip("/")] = (f[0], f[2], f[3], target)
    return result


def test_export_cpio_rewrites_paths_users_and_groups(tmp_path):
    need("cpio", "bsdtar")
    need_root()
    r = owned_root(tmp_path)
    archive = str(tmp_path / "out.cpio.gz")
    p = sysexport("export", "--src", r, "--add", "/srv", "--add", "prog", "--rewrite", "/srv/app=/opt/app",
                  "--rewrite", "/srv/log=/var/log", "--user", "builder=root", "--user", "1=0", "--group", "builders=0",
                  "--group", "daemon=root", "--passwd", "-o", archive)
    assert re.match(rf"{re.escape(archive)}: cpio.gz archive of \d+ entries from {re.escape(r)} \(", p.stdout)
    for listing in (cpio_listing(archive), bsdtar_listing(archive)):
        assert listing["opt/app/run.sh"] == ("-rwxr-xr-x", "0", "0", "")
        assert listing["opt/app/data.txt"] == ("-rw-r-----", "0", "0", "")
        assert listing["opt/app/current"][0].startswith("l") and listing["opt/app/current"][3] == "/opt/app/data.txt"
        assert listing["opt/app"][:3] == ("drwxr-xr-x", "0", "0")
        assert listing["var/log/daemon.log"] == ("-rw-------", "0", "0", "")
        assert listing["bin"][3] == "usr/bin"
        assert "usr/bin/prog" in listing and "usr/lib/x86_64-linux-gnu/libfoo.so.1.2" in listing
        assert listing["etc/passwd"][:3] == ("-rw-r--r--", "0", "0")
        assert [n for n in listing if n.startswith("srv")] == ["srv"]      # what was below it moved
    data = gzip.decompress(open(archive, "rb").read())
    extracted = tmp_path / "x"
    extracted.mkdir()
    run(["cpio", "-idm", "--quiet", "-D", str(extracted)], input=data)
    assert open(extracted / "etc/passwd").read() == "root:x:0:0:root:/root:/bin/sh\n"
    assert open(extracted / "etc/group").read() == "root:x:0:\n"


def test_export_verbose_log_and_stdout(tmp_path):
    need("cpio")
    r = fake_root(tmp_path)
    p = subprocess.run([sys.executable, "-m", "sysexport", "export", "--src", r, "--add", "/bin/prog", "-v",
                        "--format", "cpio", "-o", "-"], capture_output=True,
                       env=dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH="1700000000"))
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode()
    assert "sysexport: add     /usr/bin/prog [file] (requested)" in err
    assert "interpreter of /usr/bin/prog (PT_INTERP)" in err and "libfoo.so.1 needed by /usr/bin/prog" in err
    assert "cpio archive of 14 entries" in err                     # the summary too, the archive is on stdout
    names = run(["cpio", "-it", "--quiet"], input=p.stdout).stdout.decode().split()
    assert names[:3] == ["bin", "lib", "lib64"] and "usr/lib64/ld-test.so.1" in names


def _export_host_programs(tmp_path, out: str, *extra: str) -> subprocess.CompletedProcess:
    top = tmp_path / "src"
    if not os.path.exists(top):
        put(top, "share/hello.txt", "hello from the export\n")
        os.symlink("hello.txt", top / "share/hello-link")
    return sysexport("export", "--add", "/usr/bin/xz", "/bin/ls", str(top / "share"), "--rewrite", f"{top}/share=/share",
                     "--label", "EXPORTED", *extra, "-o", out)


def test_export_into_directory_and_hybrid_read_by_other_tools(tmp_path):
    """The same export into a directory and into the hybrid image: xorriso, bsdtar, isoinfo,
    isovfy and 7-Zip read the ISO side (symlinks through Rock Ridge), mtools, fsck.fat,
    7-Zip and TSK the ESP (files only: FAT has no symlinks); every file is the directory's."""
    need("xorriso", "bsdtar", "sgdisk", "mcopy")
    d = str(tmp_path / "tree") + "/"
    _export_host_programs(tmp_path, d)
    files, links, dirs = expected_views(d)
    assert links["bin"] == "usr/bin" and links["share/hello-link"] == "hello.txt"
    assert {"usr/bin/xz", "usr/bin/ls", "usr/lib/x86_64-linux-gnu/libc.so.6", "share/hello.txt"} <= set(files)
    assert files["usr/bin/xz"] == sha256_file("/usr/bin/xz")
    img = str(tmp_path / "out.img")
    _export_host_programs(tmp_path, img)
    parts = check_partition_tables(img, 1)
    check_iso_readers(img, files, links, str(tmp_path), "EXPORTED")
    check_esp(img, parts[0], files, str(tmp_path), "EXPORTED")


def test_export_iso_and_formats(tmp_path):
    need("xorriso", "bsdtar", "xz", "zstd")
    iso = str(tmp_path / "out.iso")
    _export_host_programs(tmp_path, iso)
    dest = tmp_path / "iso"
    dest.mkdir()
    run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", str(dest)])
    assert sha256_file(dest / "usr/bin/xz") == sha256_file("/usr/bin/xz")
    assert os.readlink(dest / "lib64") == "usr/lib64"
    for name, check in (("a.cpio.xz", ["xz", "-t"]), ("a.cpio.zst", ["zstd", "-t", "-q"]), ("a.cpio", None)):
        path = str(tmp_path / name)
        _export_host_programs(tmp_path, path)
        if check:
            run([*check, path])
        assert "usr/bin/xz" in out(["bsdtar", "-tf", path]).split()


def test_export_errors(tmp_path):
    r = fake_root(tmp_path)
    p = sysexport("export", "--src", r, "--add", "/bin/prog", "-o", str(tmp_path / "out.what"), ok=False)
    assert p.returncode == 2 and "cannot tell the kind of output" in p.stderr and "--format" in p.stderr
    p = sysexport("export", "--src", r, "--add", "/bin/nothing", "-o", str(tmp_path / "out.cpio"), ok=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1
    assert "/bin/nothing: not in the source root" in p.stderr
    p = sysexport("export", "--src", r, "--add", "nothing", "-o", str(tmp_path / "out.cpio"), ok=False)
    assert p.returncode == 2 and "no program 'nothing' on PATH" in p.stderr
    put(r, "/usr/bin/needy", open(os.path.join(r, "usr/bin/prog"), "rb").read().replace(b"libfoo.so.1", b"libbar.so.1"),
        0o755)
    p = sysexport("export", "--src", r, "--add", "/usr/bin/needy", "-o", str(tmp_path / "out.cpio"), ok=False)
    assert p.returncode == 1 and "/usr/bin/needy: library libbar.so.1" in p.stderr and "not in the source root" in p.stderr
    p = sysexport("export", "--src", r, "-o", str(tmp_path / "out.cpio"), ok=False)
    assert p.returncode == 2 and "nothing to export" in p.stderr
    full = tmp_path / "full"
    put(full, "already-here", "x")
    p = sysexport("export", "--src", r, "--add", "/etc/passwd", "-o", str(full), ok=False)
    assert p.returncode == 1 and "not empty" in p.stderr and "--allow-nonempty" in p.stderr
    sysexport("export", "--src", r, "--add", "/etc/passwd", "--allow-nonempty", "-o", str(full))
    assert sorted(os.listdir(full)) == ["already-here", "etc"]
    p = sysexport("export", "--src", r, "--add", "/etc/passwd", "--rewrite", "nonsense", "-o", str(tmp_path / "a.cpio"),
                  ok=False)
    assert p.returncode == 2 and "expected SRC=DST" in p.stderr
    # nothing half-written anywhere
    assert sorted(os.listdir(tmp_path)) == ["full", "root"]


def test_export_add_find_skip_and_strict(tmp_path):
    r = fake_root(tmp_path)
    for n in ("Europe/Paris", "Europe/Berlin", "America/New_York", "posix/Europe/Paris"):
        put(r, f"/usr/share/zoneinfo/{n}", n)
    link(r, "usr/share/zoneinfo/Europe/Lisbon", "../America/New_York")       # its target comes along
    put(r, "/usr/lib/tools/broken", "#!/usr/bin/missing\n", 0o755)
    dest = tmp_path / "out"
    p = sysexport("export", "--src", r, "--add-find", "/usr/share/zoneinfo:Europe/*", "--add-find",
                  "/usr/share/zoneinfo/posix:Paris", "--skip", "/usr/share/zoneinfo/posix/Europe",
                  "--add", "/usr/lib/tools", "-o", f"{dest}/")
    found = sorted(os.path.relpath(os.path.join(d, n), dest) for d, ds, fs in os.walk(dest) for n in ds + fs)
    assert [f for f in found if "zoneinfo/" in f] == [
        "usr/share/zoneinfo/America", "usr/share/zoneinfo/America/New_York", "usr/share/zoneinfo/Europe",
        "usr/share/zoneinfo/Europe/Berlin", "usr/share/zoneinfo/Europe/Lisbon", "usr/share/zoneinfo/Europe/Paris"]
    assert "usr/lib/tools/broken" in found
    assert "sysexport: warn" in p.stderr and "/usr/bin/missing" in p.stderr             # a warning, not verbose
    p = sysexport("export", "--src", r, "--add", "/usr/lib/tools", "--strict", "-o", str(tmp_path / "s") + "/",
                  ok=False)
    assert p.returncode == 1 and "/usr/bin/missing (#! line) is not in the source root" in p.stderr
    assert not os.path.exists(tmp_path / "s")
