"""The exporter on source roots built by the tests: chroot path rules, symlink chains,
ELF files of every class and byte order (made here byte by byte), the loader's search
order, scripts, rewriting of paths and owners, the user database, skips, collisions,
the log, deterministic order, calls that fail and leave nothing, and the directory writer.

Dependency sets of real programs against ldd and dracut are in test_export_deps.py; the
command line in test_export_cli.py; a boot of an exported initramfs in test_export_boot.py.
"""
from __future__ import annotations

import hashlib
import os
import stat
import struct

import pytest

from sysexport.cpio import CPIO, iter_newc
from sysexport.errors import CallOrderError, InvalidInputError, SourceError
from sysexport.export import (Arch, CollisionError, DependencyError, DestinationError, DirectoryWriter,
                              ELFFileError, Exporter, SourcePathError)
from sysexport.export.elf import read_elf

IS_ROOT = os.geteuid() == 0
MTIME = 1_600_000_000

# ------------------------------------------------------------------------------ ELF files by hand

EM = {"EM_386": 3, "EM_MIPS": 8, "EM_PPC": 20, "EM_PPC64": 21, "EM_S390": 22, "EM_ARM": 40, "EM_X86_64": 62,
      "EM_AARCH64": 183, "EM_RISCV": 243}
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
DT_FLAGS_1 = 0x6FFFFFFB
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3


def make_elf(*, bits: int = 64, little: bool = True, machine: str = "EM_X86_64", e_type: int = 3,
             interp: str | None = None, needed: tuple[str, ...] = (), soname: str | None = None,
             rpath: str | None = None, runpath: str | None = None, flags_1: int = 0, e_flags: int = 0,
             dynamic: bool = True) -> bytes:
    """A minimal ELF file: header, PT_LOAD over the whole file (addresses = offsets),
    PT_INTERP, PT_DYNAMIC with its string table."""
    e = "<" if little else ">"
    ehsize, phentsize = (64, 56) if bits == 64 else (52, 32)
    n_ph = 1 + (interp is not None) + dynamic
    strtab = b"\0"
    offsets = {}
    for s in [*needed, soname, rpath, runpath]:
        if s is not None and s not in offsets:
            offsets[s] = len(strtab)
            strtab += s.encode() + b"\0"
    pos = ehsize + n_ph * phentsize
    interp_off = pos
    interp_bytes = (interp.encode() + b"\0") if interp is not None else b""
    pos += len(interp_bytes)
    str_off = pos
    pos += len(strtab)
    pos += -pos % 8
    dyn_off = pos
    dyn = [(DT_NEEDED, offsets[n]) for n in needed]
    if soname is not None:
        dyn.append((DT_SONAME, offsets[soname]))
    if rpath is not None:
        dyn.append((DT_RPATH, offsets[rpath]))
    if runpath is not None:
        dyn.append((DT_RUNPATH, offsets[runpath]))
    if flags_1:
        dyn.append((DT_FLAGS_1, flags_1))
    dyn += [(DT_STRTAB, str_off), (DT_STRSZ, len(strtab)), (DT_NULL, 0)]
    dfmt = e + ("qQ" if bits == 64 else "iI")
    dyn_bytes = b"".join(struct.pack(dfmt, t, v) for t, v in dyn) if dynamic else b""
    size = dyn_off + len(dyn_bytes)

    def ph(p_type: int, off: int, sz: int) -> bytes:
        if bits == 64:
            return struct.pack(e + "IIQQQQQQ", p_type, 4, off, off, off, sz, sz, 8)
        return struct.pack(e + "IIIIIIII", p_type, off, off, off, sz, sz, 4, 4)
    phdrs = ph(PT_LOAD, 0, size)
    if interp is not None:
        phdrs += ph(PT_INTERP, interp_off, len(interp_bytes))
    if dynamic:
        phdrs += ph(PT_DYNAMIC, dyn_off, len(dyn_bytes))
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if little else 2, 1, 0]) + bytes(8)
    if bits == 64:
        header = ident + struct.pack(e + "HHIQQQIHHHHHH", e_type, EM[machine], 1, 0, ehsize, 0, e_flags, ehsize,
                                     phentsize, n_ph, 0, 0, 0)
    else:
        header = ident + struct.pack(e + "HHIIIIIHHHHHH", e_type, EM[machine], 1, 0, ehsize, 0, e_flags, ehsize,
                                     phentsize, n_ph, 0, 0, 0)
    data = header + phdrs + interp_bytes + strtab
    data += bytes(dyn_off - len(data)) + dyn_bytes
    assert len(data) == size
    return data


def put(root, path: str, data: bytes | str = b"", mode: int = 0o644) -> str:
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(full, mode)
    return full


def link(root, path: str, target: str) -> None:
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    os.symlink(target, full)


def names(e: Exporter) -> list[str]:
    return [x.name for x in e.entries]


def by_name(e: Exporter) -> dict:
    return {x.name: x for x in e.entries}


def fake_root(tmp_path, **elf) -> str:
    """A merged-/usr root (bin -> usr/bin, lib -> usr/lib, lib64 -> usr/lib64) whose
    /bin/prog needs libfoo.so.1 and libc.so.6 from the multiarch directory, as on Debian."""
    r = str(tmp_path / "root")
    kw = dict(bits=64, little=True, machine="EM_X86_64")
    kw.update(elf)
    triplet = {("EM_X86_64", 64): "x86_64-linux-gnu", ("EM_PPC", 32): "powerpc-linux-gnu",
               ("EM_S390", 64): "s390x-linux-gnu", ("EM_386", 32): "i386-linux-gnu",
               ("EM_AARCH64", 64): "aarch64-linux-gnu"}[(kw["machine"], kw["bits"])]
    link(r, "bin", "usr/bin")
    link(r, "lib", "usr/lib")
    link(r, "lib64", "usr/lib64")
    ld = "/lib64/ld-test.so.1"
    put(r, f"/usr/lib/{triplet}/ld-test.so.1", make_elf(**kw, soname="ld-test.so.1"), 0o755)
    link(r, "usr/lib64/ld-test.so.1", f"../lib/{triplet}/ld-test.so.1")
    put(r, f"/usr/lib/{triplet}/libc.so.6", make_elf(**kw, soname="libc.so.6", needed=("ld-test.so.1",)), 0o755)
    put(r, f"/usr/lib/{triplet}/libfoo.so.1.2", make_elf(**kw, soname="libfoo.so.1", needed=("libc.so.6",)))
    link(r, f"usr/lib/{triplet}/libfoo.so.1", "libfoo.so.1.2")
    put(r, "/usr/bin/prog", make_elf(**kw, e_type=3, interp=ld, needed=("libfoo.so.1", "libc.so.6")), 0o755)
    put(r, "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1234:5678:Builder:/home/b:/bin/sh\n"
                          "daemon:x:1:1::/:/bin/false\n")
    put(r, "/etc/group", "root:x:0:\nbuilders:x:5678:builder,daemon\ndaemon:x:1:\n")
    return r


# ------------------------------------------------------------------------------ ELF reading

@pytest.mark.parametrize("bits,little,machine", [(64, True, "EM_X86_64"), (32, True, "EM_386"),
                                                 (32, False, "EM_PPC"), (64, False, "EM_S390"),
                                                 (64, False, "EM_PPC64"), (32, True, "EM_ARM")])
def test_read_elf_every_class_and_byte_order(tmp_path, bits, little, machine):
    p = put(tmp_path, "x", make_elf(bits=bits, little=little, machine=machine, interp="/lib/ld.so.1",
                                    needed=("liba.so.1", "libb.so.2"), soname="libx.so.1", rpath="/r1:$ORIGIN",
                                    runpath="/run", flags_1=0x800, e_flags=0x400 if machine == "EM_ARM" else 0))
    info = read_elf(p, "/x")
    assert info.arch == Arch(bits, little, machine, "hard" if machine == "EM_ARM" else None)
    assert (info.interp, info.needed, info.soname, info.rpath, info.runpath) == \
        ("/lib/ld.so.1", ("liba.so.1", "libb.so.2"), "libx.so.1", "/r1:$ORIGIN", "/run")
    assert info.nodeflib and info.loadable and info.effective_rpath is None


@pytest.mark.parametrize("bits,little,machine", [(32, False, "EM_PPC"), (64, False, "EM_S390"), (32, True, "EM_386"),
                                                 (64, True, "EM_AARCH64")])
def test_foreign_roots_resolve_with_their_own_multiarch_directories(tmp_path, bits, little, machine):
    """A root of another machine: its loader, its libraries in /lib/<triplet>, nothing run."""
    r = fake_root(tmp_path, bits=bits, little=little, machine=machine)
    e = Exporter(r)
    deps = e.dependencies("/bin/prog")
    assert [(o.needed_name, o.found_as) for o in deps[1:]] == [
        ("", "/lib64/ld-test.so.1"),
        ("libfoo.so.1", f"/lib/{_triplet(machine, bits)}/libfoo.so.1"),
        ("libc.so.6", f"/lib/{_triplet(machine, bits)}/libc.so.6")]


def _triplet(machine: str, bits: int) -> str:
    return {("EM_X86_64", 64): "x86_64-linux-gnu", ("EM_PPC", 32): "powerpc-linux-gnu",
            ("EM_S390", 64): "s390x-linux-gnu", ("EM_386", 32): "i386-linux-gnu",
            ("EM_AARCH64", 64): "aarch64-linux-gnu"}[(machine, bits)]


def test_export_of_a_program_keeps_the_symlink_chains(tmp_path):
    r = fake_root(tmp_path)
    e = Exporter(r)
    e.add("/bin/prog")
    entries = by_name(e)
    assert names(e) == ["bin", "lib", "lib64", "usr", "usr/bin", "usr/bin/prog", "usr/lib", "usr/lib/x86_64-linux-gnu",
                        "usr/lib/x86_64-linux-gnu/ld-test.so.1", "usr/lib/x86_64-linux-gnu/libc.so.6",
                        "usr/lib/x86_64-linux-gnu/libfoo.so.1", "usr/lib/x86_64-linux-gnu/libfoo.so.1.2",
                        "usr/lib64", "usr/lib64/ld-test.so.1"]
    assert entries["bin"].info.target == b"usr/bin" and entries["lib64"].kind == "symlink"
    assert entries["usr/lib/x86_64-linux-gnu/libfoo.so.1"].info.target == b"libfoo.so.1.2"
    reasons = {x.name: x.reason for x in e.entries}
    assert reasons["usr/bin/prog"] == "requested"
    assert reasons["usr/lib/x86_64-linux-gnu/ld-test.so.1"] == "interpreter of /usr/bin/prog (PT_INTERP)"
    assert reasons["usr/lib/x86_64-linux-gnu/libfoo.so.1.2"].startswith("libfoo.so.1 needed by /usr/bin/prog")
    assert "parent of" in reasons["usr/lib"]
    assert str(e.log[0]) == "add     /bin [symlink] (symlink on the way to /bin/prog (requested))"
    assert any("the export's architecture is ELF64 LSB x86-64" in str(x) for x in e.log)


def test_wrong_class_libraries_are_passed_over_and_a_missing_one_named(tmp_path):
    r = fake_root(tmp_path)
    # a 32-bit libbar first in the search order, the right one later
    put(r, "/usr/local/lib/libbar.so.1", make_elf(bits=32, machine="EM_386", soname="libbar.so.1"))
    put(r, "/usr/lib/libbar.so.1", make_elf(soname="libbar.so.1"))
    put(r, "/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n")
    put(r, "/etc/ld.so.conf.d/local.conf", "# local\n/usr/local/lib\n")
    put(r, "/usr/bin/two", make_elf(interp="/lib64/ld-test.so.1", needed=("libbar.so.1", "libgone.so.3")), 0o755)
    e = Exporter(r)
    with pytest.raises(DependencyError) as err:
        e.add("/usr/bin/two")
    msg = str(err.value)
    assert err.value.library == "libgone.so.3" and err.value.program == "/usr/bin/two"
    assert "libgone.so.3" in msg and "/usr/bin/two" in msg and "/usr/local/lib" in msg and "/lib/x86_64-linux-gnu" in msg
    assert e.entries == []
    put(r, "/usr/bin/one", make_elf(interp="/lib64/ld-test.so.1", needed=("libbar.so.1",)), 0o755)
    (bar,) = [o for o in e.dependencies("/usr/bin/one") if o.needed_name == "libbar.so.1"]
    assert bar.found_as == "/lib/libbar.so.1" and bar.how == "system directory"     # /lib before /usr/lib


def test_ld_so_conf_order_and_soname_rule(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/etc/ld.so.conf", "/opt/b/lib\ninclude conf.d/*.conf\n")
    put(r, "/etc/conf.d/a.conf", "/opt/a/lib # comment\nhwcap 0 nosegneg\n")
    put(r, "/opt/b/lib/libq.so.1", make_elf(soname="libq.so.2"))     # ldconfig indexes it as libq.so.2
    put(r, "/opt/a/lib/libq.so.1", make_elf(soname="libq.so.1"))
    put(r, "/usr/bin/q", make_elf(interp="/lib64/ld-test.so.1", needed=("libq.so.1",)), 0o755)
    e = Exporter(r)
    assert e.search.conf_dirs() == ["/opt/b/lib", "/opt/a/lib"]
    (q,) = [o for o in e.dependencies("/usr/bin/q") if o.needed_name == "libq.so.1"]
    assert q.found_as == "/opt/a/lib/libq.so.1" and q.how == "ld.so.conf"
    e.add("/usr/bin/q")
    assert any(x.action == "warn" and "ld.so.cache" in x.reason for x in e.log)   # found through the cache only


def test_nodeflib_rpath_runpath_rules(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/opt/p/lib/libp.so.1", make_elf(soname="libp.so.1", needed=("libfoo.so.1",), flags_1=0x800))
    put(r, "/usr/bin/p", make_elf(interp="/lib64/ld-test.so.1", needed=("libp.so.1",), runpath="$ORIGIN/../../opt/p/lib"),
        0o755)
    with pytest.raises(DependencyError, match="libfoo.so.1.*no directory to search"):
        Exporter(r).dependencies("/usr/bin/p")          # libp has DF_1_NODEFLIB: no default directories
    put(r, "/opt/p/lib/libp.so.1", make_elf(soname="libp.so.1", needed=("libfoo.so.1",), flags_1=0x800,
                                            rpath="$ORIGIN"))
    put(r, "/opt/p/lib/libfoo.so.1", make_elf(soname="libfoo.so.1"))
    (foo,) = [o for o in Exporter(r).dependencies("/usr/bin/p") if o.needed_name == "libfoo.so.1"]
    assert foo.found_as == "/usr/bin/../../opt/p/lib/libfoo.so.1"        # $ORIGIN of libp: where it was found
    assert foo.how == "DT_RPATH of /usr/bin/../../opt/p/lib/libp.so.1"
    # an object with both: RPATH ignored
    put(r, "/usr/bin/both", make_elf(interp="/lib64/ld-test.so.1", needed=("libz9.so",), rpath="/opt/r",
                                     runpath="/opt/u"), 0o755)
    put(r, "/opt/r/libz9.so", make_elf())
    put(r, "/opt/u/libz9.so", make_elf())
    (z,) = [o for o in Exporter(r).dependencies("/usr/bin/both") if o.needed_name == "libz9.so"]
    assert z.found_as == "/opt/u/libz9.so"


def test_foreign_architecture_is_an_error_or_a_warning(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/usr/bin/arm", make_elf(bits=32, machine="EM_ARM", interp="/lib/ld-linux-armhf.so.3",
                                    needed=("libc.so.6",), e_flags=0x400), 0o755)
    e = Exporter(r)
    e.add("/bin/prog")
    with pytest.raises(ELFFileError) as err:
        e.add("/usr/bin/arm")
    assert err.value.rule == "foreign-architecture" and "ELF32 LSB ARM" in str(err.value) and "x86-64" in str(err.value)
    e2 = Exporter(r, foreign_arch="warn")
    e2.add("/bin/prog", "/usr/bin/arm")
    assert "usr/bin/arm" in names(e2)
    assert any(x.action == "warn" and "foreign architecture" in x.reason for x in e2.log)
    e3 = Exporter(r, arch="armhf")
    with pytest.raises(ELFFileError, match="foreign"):
        e3.add("/bin/prog")


def test_unreadable_elf_is_an_error_or_a_warning(tmp_path):
    r = fake_root(tmp_path)
    good = make_elf(interp="/lib64/ld-test.so.1", needed=("libc.so.6",))
    put(r, "/usr/bin/broken", good[:70], 0o755)      # the program headers cut off
    with pytest.raises(ELFFileError) as err:
        Exporter(r).add("/usr/bin/broken")
    assert err.value.rule == "unreadable-elf" and "/usr/bin/broken" in str(err.value)
    e = Exporter(r, bad_elf="warn")
    e.add("/usr/bin/broken")
    assert names(e) == ["usr", "usr/bin", "usr/bin/broken"]


def test_static_program_and_non_loadable_elf_have_no_dependencies(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/bin/static", make_elf(e_type=2, dynamic=False), 0o755)
    put(r, "/lib/modules/x.ko", make_elf(e_type=1, dynamic=False, machine="EM_S390", bits=64, little=False))
    e = Exporter(r)
    e.add("/bin/static", "/lib/modules/x.ko")
    assert names(e) == ["bin", "lib", "usr", "usr/bin", "usr/bin/static", "usr/lib", "usr/lib/modules",
                        "usr/lib/modules/x.ko"]


# ------------------------------------------------------------------------------ paths, chroot rules

def test_absolute_symlinks_resolve_inside_the_root(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/etc/real.conf", "x=1\n")
    link(r, "etc/alt/conf", "/etc/real.conf")        # absolute: ROOT/etc/real.conf, not the host's
    link(r, "etc/chain", "alt/conf")
    e = Exporter(r)
    e.add("/etc/chain")
    ent = by_name(e)
    assert ent["etc/chain"].info.target == b"alt/conf" and ent["etc/alt/conf"].info.target == b"/etc/real.conf"
    assert ent["etc/real.conf"].kind == "file" and ent["etc/real.conf"].source == "/etc/real.conf"
    assert ent["etc/real.conf"].info.source.describe() == os.path.join(r, "etc/real.conf")


def test_escape_loop_missing_not_a_directory(tmp_path):
    r = fake_root(tmp_path)
    link(r, "etc/out", "../../../../etc/passwd")
    link(r, "etc/loop1", "loop2")
    link(r, "etc/loop2", "loop1")
    put(r, "/etc/file", "f")
    e = Exporter(r)
    with pytest.raises(SourcePathError) as err:
        e.add("/etc/out")
    assert err.value.rule == "escape" and "above the source root" in str(err.value) and "/etc/out" in str(err.value)
    with pytest.raises(SourcePathError) as err:
        e.add("/../etc/passwd")
    assert err.value.rule == "escape"
    with pytest.raises(SourcePathError) as err:
        e.add("/etc/loop1")
    assert err.value.rule == "loop" and "symlink loop" in str(err.value)
    with pytest.raises(SourcePathError) as err:
        e.add("/etc/nothing/here")
    assert err.value.rule == "missing" and "/etc/nothing/here" in str(err.value) and r in str(err.value)
    with pytest.raises(SourcePathError) as err:
        e.add(os.path.join(r, "etc/file"))            # a host path given where a root path goes
    assert "did you mean /etc/file" in str(err.value)
    with pytest.raises(SourcePathError) as err:
        e.add("/etc/file/x")
    assert err.value.rule == "not-a-directory"
    assert e.entries == []


def test_dangling_symlink_warns_or_fails(tmp_path):
    r = fake_root(tmp_path)
    link(r, "etc/dangling", "/nowhere")
    e = Exporter(r)
    e.add("/etc/dangling")
    assert names(e) == ["etc", "etc/dangling"]
    assert any(x.action == "warn" and "dangling symlink" in x.reason for x in e.log)
    with pytest.raises(SourcePathError, match="dangling"):
        Exporter(r, dangling_symlinks="error").add("/etc/dangling")


def test_directory_with_contents_and_its_symlinks_targets(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/usr/share/x/a.txt", "a")
    put(r, "/usr/share/x/sub/b.txt", "b")
    put(r, "/usr/share/other/c.txt", "c")
    link(r, "usr/share/x/to-other", "../other")
    link(r, "usr/share/x/self", ".")                 # a loop by directory symlink: walked once
    e = Exporter(r)
    e.add("/usr/share/x")
    assert names(e) == ["usr", "usr/share", "usr/share/other", "usr/share/other/c.txt", "usr/share/x",
                        "usr/share/x/a.txt", "usr/share/x/self", "usr/share/x/sub", "usr/share/x/sub/b.txt",
                        "usr/share/x/to-other"]


def test_add_find_with_predicate_and_skip(tmp_path):
    r = fake_root(tmp_path)
    for n in ("Europe/Paris", "Europe/Berlin", "America/New_York", "posix/Europe/Paris"):
        put(r, f"/usr/share/zoneinfo/{n}", n)
    seen = []

    def europe(path: str) -> bool:
        seen.append(path)
        return "/Europe/" in path
    e = Exporter(r)
    e.skip("/usr/share/zoneinfo/posix")
    e.add_find("/usr/share/zoneinfo", europe)
    assert names(e) == ["usr", "usr/share", "usr/share/zoneinfo", "usr/share/zoneinfo/Europe",
                        "usr/share/zoneinfo/Europe/Berlin", "usr/share/zoneinfo/Europe/Paris"]
    assert "/usr/share/zoneinfo/posix/Europe/Paris" not in seen
    assert any(x.action == "skip" and x.source == "/usr/share/zoneinfo/posix" for x in e.log)
    with pytest.raises(SourcePathError, match="walks a directory"):
        e.add_find("/etc/passwd")


def test_skip_a_library_is_logged(tmp_path):
    r = fake_root(tmp_path)
    e = Exporter(r)
    e.skip("/lib/x86_64-linux-gnu/libfoo.so.1")        # as the loader names it, through the lib symlink
    e.add("/bin/prog")
    assert not any("libfoo" in n for n in names(e))
    assert any(x.action == "skip" and "libfoo.so.1 needed by" in x.reason for x in e.log)


def test_which_searches_path_inside_the_root(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/usr/sbin/tool", "#!/bin/prog\n", 0o755)
    put(r, "/usr/local/bin/notexec", "x", 0o644)
    e = Exporter(r)
    assert e.which("tool") == "/usr/sbin/tool"
    assert e.which("prog") == "/usr/bin/prog"
    assert e.which("notexec") is None and e.which("nothing") is None
    e.path = "/bin"
    assert e.which("prog") == "/bin/prog" and e.which("tool") is None


def test_scripts_bring_their_interpreters(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/usr/bin/script", "#! /bin/prog -x\necho\n", 0o755)
    put(r, "/usr/bin/envscript", "#!/usr/bin/env -S prog --flag\n", 0o755)
    put(r, "/usr/bin/env", make_elf(e_type=2, dynamic=False), 0o755)
    put(r, "/usr/share/doc/not-run", "#!/bin/missing\n", 0o644)     # not executable: not a script
    e = Exporter(r)
    e.add("/usr/bin/script", "/usr/share/doc/not-run")
    assert "usr/bin/prog" in names(e) and "usr/lib/x86_64-linux-gnu/libfoo.so.1.2" in names(e)
    assert by_name(e)["usr/bin/prog"].reason == "#! interpreter of /usr/bin/script"
    e2 = Exporter(r)
    e2.add("/usr/bin/envscript")
    assert {"usr/bin/env", "usr/bin/prog"} <= set(names(e2))
    assert "run by /usr/bin/env for /usr/bin/envscript" in by_name(e2)["usr/bin/prog"].reason
    put(r, "/usr/bin/broken", "#!/usr/bin/python9\n", 0o755)
    with pytest.raises(DependencyError) as err:
        Exporter(r).add("/usr/bin/broken")
    assert err.value.rule == "dangling-interpreter" and "/usr/bin/python9" in str(err.value)


def test_problems_in_a_walked_directory_are_warnings_unless_strict(tmp_path):
    """A tree holds files whose dependencies are not there (a script whose #! names a
    program that is not installed, a plugin needing a library of another package, firmware
    for another CPU): exported without them, with a warning; tree_errors="error" fails."""
    r = fake_root(tmp_path)
    put(r, "/usr/lib/py/cgi.py", "#! /usr/local/bin/python\n", 0o755)
    put(r, "/usr/lib/py/plugin.so", make_elf(needed=("libmissing.so.1",)))
    put(r, "/usr/lib/py/firmware.elf", make_elf(bits=32, machine="EM_ARM", e_type=2, dynamic=False))
    link(r, "usr/lib/py/loop", "loop")
    put(r, "/usr/lib/py/ok.so", make_elf(needed=("libfoo.so.1",)))
    e = Exporter(r)
    e.add("/bin/prog", "/usr/lib/py")
    assert {"usr/lib/py/cgi.py", "usr/lib/py/plugin.so", "usr/lib/py/firmware.elf", "usr/lib/py/ok.so"} <= set(names(e))
    warned = " ".join(x.reason for x in e.log if x.action == "warn")
    for what in ("/usr/local/bin/python", "libmissing.so.1", "foreign architecture", "symlink loop"):
        assert what in warned, what
    with pytest.raises(DependencyError):
        Exporter(r, tree_errors="error").add("/usr/lib/py")
    with pytest.raises(DependencyError):              # a path named in add() always fails
        Exporter(r).add("/usr/lib/py/cgi.py")
    with pytest.raises(DependencyError):
        Exporter(r, tree_errors="error").add_find("/usr/lib/py", lambda p: p.endswith(".so"))
    e = Exporter(r)
    e.add_find("/usr/lib/py", lambda p: p.endswith(".so"))
    assert any(x.action == "warn" and "libmissing.so.1" in x.reason for x in e.log)
    assert "usr/lib/x86_64-linux-gnu/libfoo.so.1.2" in names(e)          # ok.so's library came along


def test_pseudo_file_systems_are_skipped(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/proc/self/mounts", "fake")
    link(r, "etc/mtab", "../proc/self/mounts")
    e = Exporter(r)
    e.add("/etc/mtab")
    assert names(e) == ["etc", "etc/mtab"]
    assert any(x.action == "skip" and x.source == "/proc/self/mounts" for x in e.log)


# ------------------------------------------------------------------------------ rewriting

def test_rewrite_path_names_and_symlink_targets(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/usr/sbin/fsck.x", "#!/bin/prog\n", 0o755)
    link(r, "usr/sbin/fsck.alias", "fsck.x")                          # relative, both move
    link(r, "usr/sbin/to-etc", "../../etc/passwd")                     # relative, the link moves
    link(r, "etc/tool", "/usr/sbin/fsck.x")                            # absolute, the target moves
    link(r, "etc/tool-rel", "../usr/sbin/fsck.x")                      # relative, the target moves
    e = Exporter(r)
    e.rewrite_path("/usr/sbin", "/sbin")
    e.rewrite_path("/usr/sbin/fsck.x", "/sbin/fsck.renamed")            # the longest prefix wins
    e.add("/usr/sbin/fsck.alias", "/usr/sbin/to-etc", "/etc/tool", "/etc/tool-rel")
    ent = by_name(e)
    assert ent["sbin/fsck.renamed"].source == "/usr/sbin/fsck.x"
    assert ent["sbin/fsck.alias"].info.target == b"fsck.renamed"
    assert ent["sbin/to-etc"].info.target == b"../etc/passwd"
    assert ent["etc/tool"].info.target == b"/sbin/fsck.renamed"
    assert ent["etc/tool-rel"].info.target == b"../sbin/fsck.renamed"
    assert ent["sbin"].source == "/usr/sbin" and "usr/sbin" not in ent
    with pytest.raises(CallOrderError):
        e.rewrite_path("/a", "/b")


def test_rewrite_user_and_group_and_add_passwd(tmp_path):
    r = fake_root(tmp_path)
    f1 = put(r, "/srv/owned-by-builder", "b")
    f2 = put(r, "/srv/owned-by-daemon", "d")
    if IS_ROOT:
        os.chown(f1, 1234, 5678)
        os.chown(f2, 1, 1)
    e = Exporter(r)
    e.rewrite_user("builder", "root")
    e.rewrite_group("builders", 0)
    e.rewrite_user(1, 4000)          # daemon to a number the source has no user of
    e.add("/srv")
    ent = by_name(e)
    if IS_ROOT:
        assert (ent["srv/owned-by-builder"].info.uid, ent["srv/owned-by-builder"].info.gid) == (0, 0)
        assert (ent["srv/owned-by-daemon"].info.uid, ent["srv/owned-by-daemon"].info.gid) == (4000, 1)
    e.add_passwd()
    passwd = by_name(e)["etc/passwd"].info.source.read_all().decode()
    group = by_name(e)["etc/group"].info.source.read_all().decode()
    shadow = by_name(e)["etc/shadow"].info.source.read_all().decode()
    assert passwd.startswith("root:x:0:0:root:/root:/bin/sh\n")
    if IS_ROOT:
        assert "daemon:x:4000:1::/:/bin/false\n" in passwd and "builder" not in passwd
        assert group == "root:x:0:\ndaemon:x:1:\n"
    assert shadow.startswith("root:*:::::::\n")
    assert by_name(e)["etc/shadow"].info.mode == 0o100600
    e.add_passwd()                   # again: replaces, no collision
    with pytest.raises(Exception, match="no user 'nobody'"):
        Exporter(r).rewrite_user("nobody", 0)
    with pytest.raises(Exception, match="no group"):
        Exporter(r).rewrite_group(0, "wheel")


# ------------------------------------------------------------------------------ collisions

def test_collisions(tmp_path):
    r = fake_root(tmp_path)
    put(r, "/a/tool", "one")
    put(r, "/b/tool", "two")

    def make(rule):
        e = Exporter(r, on_collision=rule)
        e.rewrite_path("/a", "/x")
        e.rewrite_path("/b", "/x")
        return e
    e = make("error")
    e.add("/a/tool")
    with pytest.raises(CollisionError) as err:
        e.add("/b/tool")
    assert err.value.rule == "collision" and "/x/tool" in str(err.value)
    assert "/a/tool" in str(err.value) and "/b/tool" in str(err.value)
    assert by_name(e)["x/tool"].source == "/a/tool"           # as before the failed call
    e = make("overwrite")
    e.add("/a/tool", "/b/tool")
    assert by_name(e)["x/tool"].source == "/b/tool"
    e = make("ignore")
    e.add("/a/tool", "/b/tool")
    assert by_name(e)["x/tool"].source == "/a/tool"
    calls = []

    def decide(name, old, new):
        calls.append((name, old.source, new.source))
        return "overwrite"
    e = make(decide)
    e.add("/a/tool", "/b/tool")
    assert calls == [("x/tool", "/a/tool", "/b/tool")] and by_name(e)["x/tool"].source == "/b/tool"
    # the same file twice, or a hard link of it, is no collision
    os.link(os.path.join(r, "a/tool"), os.path.join(r, "a/hardlink"))
    e = Exporter(r)
    e.rewrite_path("/a/hardlink", "/a/tool")
    e.add("/a/tool", "/a/tool", "/a/hardlink")
    # a symlink where a directory is needed
    link(r, "c", "a")
    put(r, "/d/c/file", "f")
    e = Exporter(r)
    e.rewrite_path("/d", "/")
    e.add("/c")
    with pytest.raises(CollisionError, match="/c"):
        e.add("/d/c/file")
    with pytest.raises(InvalidInputError):
        Exporter(r, on_collision="replace")


def test_records_given_as_such(tmp_path):
    r = fake_root(tmp_path)
    e = Exporter(r)
    e.add(("file755", "init", b"#!/bin/sh\n"), {"name": "dev/console", "mode": 0o20600, "rdev_major": 5,
                                                 "rdev_minor": 1}, "/bin/prog")
    ent = by_name(e)
    assert ent["init"].origin == "record" and ent["dev/console"].kind == "chr"
    with pytest.raises(CollisionError):
        e.add(("file", "init", b"other"))
    e.add(("file755", "init", b"#!/bin/sh\n"))         # the same bytes again: fine


# ------------------------------------------------------------------------------ order, log, atomicity

def test_order_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    r = fake_root(tmp_path)
    put(r, "/etc/x.conf", "x")
    outs = []
    for i, order in enumerate([("/etc/x.conf", "/bin/prog", "/etc/passwd"), ("/etc/passwd", "/bin/prog", "/etc/x.conf")]):
        path = str(tmp_path / f"o{i}.cpio")
        e = Exporter(r, CPIO(path, default_time=0))
        e.add(*order)
        e.finish()
        with open(path, "rb") as f:
            outs.append(hashlib.sha256(f.read()).hexdigest())
    assert outs[0] == outs[1]
    with open(path, "rb") as f:
        archived = [name for _, name, _ in iter_newc(f.read())]
    assert archived[:3] == ["bin", "etc", "etc/passwd"]


def test_finish_once_and_failed_calls_leave_nothing(tmp_path):
    r = fake_root(tmp_path)
    out = str(tmp_path / "x.cpio")
    e = Exporter(r, CPIO(out))
    e.add("/etc/passwd")
    before = (names(e), len(e.log))
    with pytest.raises(SourcePathError):
        e.add("/etc/group", "/nothing")                # the first path is undone with the second
    assert (names(e), len(e.log)) == before
    e.finish()
    assert os.path.exists(out)
    with pytest.raises(CallOrderError):
        e.add("/etc/group")
    with pytest.raises(CallOrderError):
        e.finish()
    with pytest.raises(InvalidInputError, match="no destination"):
        Exporter(r).finish()
    with pytest.raises(InvalidInputError, match="writer"):
        Exporter(r, dst=42)


def test_a_source_that_vanishes_leaves_no_output(tmp_path):
    r = fake_root(tmp_path)
    victim = put(r, "/srv/big", b"x" * 100_000)
    out = str(tmp_path / "x.cpio")
    e = Exporter(r, CPIO(out))
    e.add("/srv")
    os.truncate(victim, 10)
    with pytest.raises(SourceError):
        e.finish()
    assert os.listdir(tmp_path) == ["root"]


# ------------------------------------------------------------------------------ the directory writer

def _stat_tree(top: str) -> dict[str, tuple]:
    out = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            extra = os.readlink(p) if stat.S_ISLNK(st.st_mode) else (st.st_rdev if stat.S_ISCHR(st.st_mode) else None)
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime), extra,
                                            st.st_size if stat.S_ISREG(st.st_mode) else None)
    return out


def test_directory_destination_keeps_everything(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    put(src, "bin/tool", b"\x7fELF not really", 0o4755)
    put(src, "data/sparse", b"", 0o640)
    with open(src / "data/sparse", "r+b") as f:
        f.truncate(1 << 20)
        f.seek(512 * 1024)
        f.write(b"middle")
    os.link(src / "bin/tool", src / "bin/tool-hardlink")
    os.symlink("tool", src / "bin/alias")
    os.mkfifo(src / "data/fifo", 0o600)
    os.chmod(src / "data", 0o750)
    if IS_ROOT:
        os.mknod(src / "data/null", 0o20666, os.makedev(1, 3))
        os.chown(src / "data/sparse", 1234, 5678)
        os.chown(src / "bin/tool", 0, 5678)
        os.chmod(src / "bin/tool", 0o4755)                 # chown cleared set-user-ID
    for d, dirs, files in os.walk(src):
        for n in dirs + files:
            os.utime(os.path.join(d, n), (MTIME, MTIME), follow_symlinks=False)
    os.utime(src, (MTIME, MTIME))
    dest = tmp_path / "dest"
    w = DirectoryWriter(dest)
    w.add_tree(src)
    w.finish()
    assert _stat_tree(str(dest)) == _stat_tree(str(src))
    assert os.lstat(dest).st_mode == os.lstat(src).st_mode
    assert os.stat(dest / "bin/tool").st_ino == os.stat(dest / "bin/tool-hardlink").st_ino
    assert os.stat(dest / "data/sparse").st_blocks * 512 < (1 << 20)            # holes kept
    with open(dest / "data/sparse", "rb") as f:
        f.seek(512 * 1024)
        assert f.read(6) == b"middle"
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_directory_destination_refuses_non_empty_and_merges_when_told(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    put(dest, "keep.txt", "mine")
    put(dest, "etc/motd", "old")
    w = DirectoryWriter(dest)
    w.add(("file644", "etc/motd", b"new\n"))
    with pytest.raises(DestinationError) as err:
        w.finish()
    assert err.value.rule == "not-empty" and str(dest) in str(err.value)
    assert open(dest / "etc/motd").read() == "old"
    w = DirectoryWriter(dest, allow_nonempty=True)
    w.add(("file644", "etc/motd", b"new\n"))
    w.add(("sym", "etc/link", "motd"))
    w.finish()
    assert open(dest / "etc/motd").read() == "new\n" and open(dest / "keep.txt").read() == "mine"
    assert os.readlink(dest / "etc/link") == "motd"
    # a conflict is found before anything is written
    w = DirectoryWriter(dest, allow_nonempty=True)
    w.add(("file644", "aaa-new", b"x"))
    w.add(("dir755", "keep.txt"))
    with pytest.raises(DestinationError, match="not merging"):
        w.finish()
    assert not os.path.exists(dest / "aaa-new")
    # a file where the destination should be
    put(tmp_path, "afile", "x")
    with pytest.raises(DestinationError, match="not a directory"):
        DirectoryWriter(tmp_path / "afile").finish()


def test_directory_destination_failure_leaves_nothing(tmp_path):
    src = tmp_path / "src"
    victim = put(src, "a/big", b"y" * 200_000)
    put(src, "b/other", b"z")
    dest = tmp_path / "dest"
    w = DirectoryWriter(dest)
    w.add_tree(src)
    os.truncate(victim, 5)
    with pytest.raises(SourceError):
        w.finish()
    assert sorted(os.listdir(tmp_path)) == ["src"]
    dest.mkdir()                                   # an empty directory is replaced the same way
    w = DirectoryWriter(dest)
    w.add(("file", "ok", b"ok"))
    w.finish()
    assert os.listdir(dest) == ["ok"] and sorted(os.listdir(tmp_path)) == ["dest", "src"]


def test_exporter_into_a_directory_path(tmp_path):
    r = fake_root(tmp_path)
    e = Exporter(r, str(tmp_path / "out"))
    e.add("/bin/prog", "/etc")
    e.finish()
    tree = _stat_tree(str(tmp_path / "out"))
    assert tree["bin"][4] == "usr/bin" and "usr/lib/x86_64-linux-gnu/libfoo.so.1.2" in tree
    assert set(tree) == set(names(e))
    assert stat.S_IMODE(tree["usr/bin/prog"][0]) == 0o755
