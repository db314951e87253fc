"""The exporter's dependency sets against the references: ldd (the loader itself, run on
the host's binaries only, as the reference), dracut's dracut-install, and programs built
here with gcc for the DT_RUNPATH / DT_RPATH / $ORIGIN / $LIB / $PLATFORM rules
(DF_1_NODEFLIB, which this binutils ignores, is in test_export.py with a handmade ELF).

The exporter never runs what it exports: these tests run ldd and the gcc-built programs
to know what the answer is.
"""
from __future__ import annotations

import os
import re
import stat
import subprocess

import pytest

from helpers import need, run

from sysexport.cpio import CPIO
from sysexport.export import DependencyError, DirectoryWriter, Exporter
from sysexport.export.root import SourceRoot

HOST_PROGRAMS = ["/bin/ls", "/usr/bin/xz", "/usr/bin/perl", "/usr/bin/python3", "/usr/bin/qemu-system-x86_64",
                 "/usr/bin/xorriso", "/usr/bin/bsdtar", "/usr/sbin/fsck.fat", "/usr/bin/mcopy", "/usr/sbin/sgdisk",
                 "/usr/sbin/parted", "/usr/bin/7zz", "/usr/bin/fls", "/usr/bin/grub-mkimage", "/usr/bin/cpio",
                 "/usr/bin/zstd", "/usr/sbin/e2fsck"]
"""Dynamically linked programs of packages tools/test installs (and of every Debian system)."""


def ldd(path: str) -> dict[str, str | None]:
    """{DT_NEEDED name (or "<interp>"): the path ldd says, None for "not found"} (vDSO left out)."""
    p = subprocess.run(["ldd", path], capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    result: dict[str, str | None] = {}
    for line in p.stdout.splitlines():
        line = line.strip()
        if m := re.match(r"(\S+) => not found", line):
            result[m.group(1)] = None
        elif m := re.match(r"(\S+) => (\S+) \(0x[0-9a-f]+\)", line):
            result[m.group(1)] = m.group(2)
        elif m := re.match(r"(/\S+) \(0x[0-9a-f]+\)", line):
            result["<interp>"] = m.group(1)
    return result


def ours(exporter: Exporter, path: str) -> dict[str, str | None]:
    """The same mapping from Exporter.dependencies()."""
    result: dict[str, str | None] = {}
    for obj in exporter.dependencies(path)[1:]:
        result["<interp>" if obj.how.startswith("interpreter") else obj.needed_name] = obj.found_as
    return result


@pytest.mark.parametrize("program", HOST_PROGRAMS)
def test_dependencies_equal_ldd(program):
    need("ldd", program)
    reference = ldd(program)
    assert reference, f"ldd printed nothing for {program}"
    assert ours(Exporter("/"), program) == reference


def test_exported_tree_equals_ldd_closure(tmp_path):
    """Exported into a directory: every library ldd names is there at the path ldd names,
    as a file or through the symlinks of the source (bin -> usr/bin, lib64, soname links)."""
    need("ldd")
    programs = ["/bin/ls", "/usr/bin/xz", "/usr/bin/bsdtar", "/usr/bin/qemu-system-x86_64"]
    dest = tmp_path / "out"
    e = Exporter("/", DirectoryWriter(dest))
    e.add(*programs)
    e.finish()
    wanted = set(programs)
    for p in programs:
        wanted.update(v for v in ldd(p).values() if v)
    tree = SourceRoot(dest)                     # the exported tree, its symlinks followed inside it
    for path in sorted(wanted):
        res = tree.resolve(path)
        assert res.physical is not None, (path, res.missing)
        with open(tree.host(res.physical), "rb") as a, open(os.path.realpath(path), "rb") as b:
            assert a.read() == b.read(), path
    # and nothing else: every regular file is a program asked for or a library ldd names
    real_wanted = {os.path.realpath(p) for p in wanted}
    files = {"/" + os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs
             if not os.path.islink(os.path.join(d, f))}
    assert files == real_wanted


DRACUT_INSTALL = "/usr/lib/dracut/dracut-install"


def _tree(top: str) -> tuple[set[str], dict[str, str]]:
    """(regular files, {symlink: the path it leads to inside the tree}) of a tree."""
    files, links = set(), {}
    tree = SourceRoot(top)
    for d, dirs, fs in os.walk(top):
        for n in dirs + fs:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, top)
            if os.path.islink(p):
                links[rel] = str(tree.resolve("/" + rel).physical)     # followed inside the tree
            elif stat.S_ISREG(os.lstat(p).st_mode):
                files.add(rel)
    return files, links


def test_same_as_dracut_install(tmp_path):
    """dracut-install -l (what dracut's inst uses) copies the same programs, libraries and
    symlinks.  It also copies the development names LIB.so (the libc.so linker script,
    liblzma.so) when they exist, which no program loads; those are its extras."""
    need(DRACUT_INSTALL, "ldd")
    programs = ["/bin/ls", "/usr/bin/xz", "/usr/bin/perl", "/usr/bin/bsdtar", "/usr/sbin/parted"]
    theirs = tmp_path / "dracut"
    theirs.mkdir()
    run([DRACUT_INSTALL, "-D", str(theirs), "-l", "-a", *programs])
    mine = tmp_path / "sysexport"
    e = Exporter("/", DirectoryWriter(mine))
    e.add(*programs)
    e.finish()
    d_files, d_links = _tree(str(theirs))
    o_files, o_links = _tree(str(mine))
    extras = {p for p in d_files | set(d_links) if p.endswith(".so")}
    assert o_files == d_files - extras
    assert o_links == {k: v for k, v in d_links.items() if k not in extras}
    assert len(o_files) > 15


# ------------------------------------------------------------------------------ built with gcc

MAIN_C = "int f(void); int main(void){return f();}\n"


def _c(tmp, name: str, text: str) -> str:
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _lib(tmp, out: str, name: str, body: str, *link: str) -> str:
    """A shared library OUT (soname its file name) defining NAME, linked with LINK args."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    src = _c(tmp, os.path.basename(out) + ".c", body)
    run(["gcc", "-shared", "-fPIC", f"-Wl,-soname,{os.path.basename(out)}", "-o", out, src, *link])
    return out


def _prog(tmp, out: str, *link: str, text: str = MAIN_C) -> str:
    os.makedirs(os.path.dirname(out), exist_ok=True)
    src = _c(tmp, os.path.basename(out) + ".main.c", text)
    run(["gcc", "-o", out, src, *link])
    return out


@pytest.fixture
def gcc():
    need("gcc", "ldd")


def test_runpath_origin(tmp_path, gcc):
    t = str(tmp_path)
    _lib(t, f"{t}/app/lib/libf.so.1", "f", "int f(void){return 0;}\n")
    prog = _prog(t, f"{t}/app/bin/prog", f"{t}/app/lib/libf.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
    e = Exporter("/")
    assert ours(e, prog) == ldd(prog)
    (obj,) = [o for o in e.dependencies(prog) if o.needed_name == "libf.so.1"]
    assert obj.found_as == f"{t}/app/bin/../lib/libf.so.1" and obj.how == f"DT_RUNPATH of {prog}"


def test_rpath_origin_and_inheritance(tmp_path, gcc):
    """DT_RPATH of the program is searched for its libraries' libraries too."""
    t = str(tmp_path)
    _lib(t, f"{t}/app/lib/libg.so.1", "g", "int g(void){return 0;}\n")
    _lib(t, f"{t}/app/lib/libf.so.1", "f", "int g(void); int f(void){return g();}\n", f"{t}/app/lib/libg.so.1")
    prog = _prog(t, f"{t}/app/bin/prog", f"{t}/app/lib/libf.so.1", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib",
                 f"-Wl,-rpath-link,{t}/app/lib")
    e = Exporter("/")
    found = ours(e, prog)
    assert found == ldd(prog)
    assert found["libg.so.1"] == f"{t}/app/bin/../lib/libg.so.1"
    (obj,) = [o for o in e.dependencies(prog) if o.needed_name == "libg.so.1"]
    assert obj.how == f"DT_RPATH of {prog}" and obj.loader is not None and obj.loader.needed_name == "libf.so.1"


def test_runpath_is_not_inherited_and_the_error_names_program_and_library(tmp_path, gcc):
    t = str(tmp_path)
    _lib(t, f"{t}/app/lib/libg.so.1", "g", "int g(void){return 0;}\n")
    _lib(t, f"{t}/app/lib/libf.so.1", "f", "int g(void); int f(void){return g();}\n", f"{t}/app/lib/libg.so.1")
    prog = _prog(t, f"{t}/app/bin/prog", f"{t}/app/lib/libf.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
                 f"-Wl,-rpath-link,{t}/app/lib")
    assert ldd(prog)["libg.so.1"] is None                   # the loader agrees: not found
    e = Exporter("/", CPIO(str(tmp_path / "x.cpio")))
    with pytest.raises(DependencyError) as err:
        e.add(prog)
    assert err.value.program == prog and err.value.library == "libg.so.1" and err.value.rule == "dangling-library"
    assert prog in str(err.value) and "libg.so.1" in str(err.value) and f"{t}/app/bin/../lib/libf.so.1" in str(err.value)
    assert e.entries == [] and e.log == []                  # nothing of the failed add() stays
    assert not os.path.exists(tmp_path / "x.cpio")


def test_library_runpath_origin_is_the_directory_it_was_found_in(tmp_path, gcc):
    t = str(tmp_path)
    _lib(t, f"{t}/app/lib/plugins/libg.so.1", "g", "int g(void){return 0;}\n")
    _lib(t, f"{t}/app/lib/libf.so.1", "f", "int g(void); int f(void){return g();}\n",
         f"{t}/app/lib/plugins/libg.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/plugins")
    # the library is reached through a symlinked directory: $ORIGIN stays the path as found
    os.symlink("app/lib", f"{t}/libdir")
    prog = _prog(t, f"{t}/app/bin/prog", f"{t}/app/lib/libf.so.1", f"-Wl,--enable-new-dtags,-rpath,{t}/libdir")
    e = Exporter("/")
    found = ours(e, prog)
    assert found == ldd(prog)
    assert found["libg.so.1"] == f"{t}/libdir/plugins/libg.so.1"


def test_origin_of_a_program_run_through_a_symlink_is_its_real_directory(tmp_path, gcc):
    """The kernel runs the program and the loader takes $ORIGIN from /proc/self/exe: the
    real directory.  ldd runs the loader on the symlink's path instead and gets it wrong;
    running the program shows who is right."""
    t = str(tmp_path)
    _lib(t, f"{t}/app/lib/libf.so.1", "f", "int f(void){return 0;}\n")
    prog = _prog(t, f"{t}/app/bin/prog", f"{t}/app/lib/libf.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
    os.makedirs(f"{t}/elsewhere/bin")
    os.symlink("../../app/bin/prog", f"{t}/elsewhere/bin/prog")
    assert ldd(f"{t}/elsewhere/bin/prog")["libf.so.1"] is None
    assert subprocess.run([f"{t}/elsewhere/bin/prog"]).returncode == 0
    e = Exporter("/")
    assert ours(e, f"{t}/elsewhere/bin/prog")["libf.so.1"] == f"{t}/app/bin/../lib/libf.so.1"
    assert ours(e, f"{t}/elsewhere/bin/prog") == ldd(prog)


def test_lib_token(tmp_path, gcc):
    t = str(tmp_path)
    for d in ("lib/x86_64-linux-gnu", "lib64", "lib"):
        _lib(t, f"{t}/app/{d}/libf.so.1", "f", "int f(void){return 0;}\n")
    prog = _prog(t, f"{t}/app/bin/prog", f"{t}/app/lib/libf.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../$LIB")
    e = Exporter("/")
    assert ours(e, prog) == ldd(prog)
    assert ours(e, prog)["libf.so.1"] == f"{t}/app/bin/../lib/x86_64-linux-gnu/libf.so.1"
    assert ours(Exporter("/", lib="lib64"), prog)["libf.so.1"] == f"{t}/app/bin/../lib64/libf.so.1"


def _host_platform() -> str | None:
    """The loader's AT_PLATFORM on this machine, as `ld.so --help` says (glibc may report a
    CPU-specific name such as "haswell")."""
    p = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--help"], capture_output=True, text=True)
    m = re.search(r"^\s*(\S+) \(AT_PLATFORM", p.stdout, re.M)
    return m.group(1) if m else None


def test_platform_token(tmp_path, gcc):
    t = str(tmp_path)
    platform = _host_platform()
    for d in {"x86_64", platform or "x86_64"}:
        _lib(t, f"{t}/app/{d}/libf.so.1", "f", "int f(void){return 0;}\n")
    prog = _prog(t, f"{t}/app/bin/prog", f"{t}/app/x86_64/libf.so.1",
                 "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../${PLATFORM}")
    # by default the baseline name: the export does not know the CPU that will run it
    assert ours(Exporter("/"), prog)["libf.so.1"] == f"{t}/app/bin/../x86_64/libf.so.1"
    if platform is not None:
        assert ours(Exporter("/", platform=platform), prog) == ldd(prog)


def test_gcc_program_exported_with_rewrite_keeps_its_origin(tmp_path, gcc):
    """Moved by rewrite_path as a whole, the $ORIGIN program still finds its library: the
    exported tree, run here from its own directory, proves it."""
    t = str(tmp_path)
    _lib(t, f"{t}/app/lib/libf.so.1", "f", "int f(void){return 42;}\n")
    prog = _prog(t, f"{t}/app/bin/prog", f"{t}/app/lib/libf.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
    dest = tmp_path / "out"
    e = Exporter("/", DirectoryWriter(dest))
    e.rewrite_path(f"{t}/app", "/opt/app")
    e.add(prog)
    e.finish()
    assert os.path.isfile(dest / "opt/app/lib/libf.so.1") and os.path.isfile(dest / "opt/app/bin/prog")
    assert subprocess.run([str(dest / "opt/app/bin/prog")]).returncode == 42
