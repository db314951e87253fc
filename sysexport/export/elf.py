"""What the exporter reads from an ELF file, with pyelftools: nothing is ever run.

From the ELF header: the class (ELF32/ELF64), the byte order, the machine (``e_machine``)
and the ABI flags that matter for loading (ARM's hard/soft float); from the program
headers: ``PT_INTERP`` (the program interpreter, the dynamic loader) and ``PT_DYNAMIC``,
whose entries give ``DT_NEEDED``, ``DT_SONAME``, ``DT_RPATH``, ``DT_RUNPATH`` and
``DT_FLAGS_1`` (``DF_1_NODEFLIB``).  The dynamic segment is read through the program
headers, as the loader reads it, so stripped section headers do not matter.

:class:`Arch` names an ELF architecture; two objects load together only when their
:meth:`Arch.loads_with` agrees (glibc's check: same class, byte order and machine, and on
ARM the same float ABI).  :func:`multiarch_triplets` gives the Debian multiarch directory
names of an architecture (``x86_64-linux-gnu``...), :func:`default_platform` the value
``$PLATFORM`` takes without a better one.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ELFFileError

ELF_MAGIC = b"\x7fELF"
DF_1_NODEFLIB = 0x800
"""DT_FLAGS_1 bit: do not search the default library directories (nor ld.so.cache)."""
EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_ARM_ABI_FLOAT_HARD = 0x400
LOADABLE_TYPES = ("ET_EXEC", "ET_DYN")
"""ELF types that are programs or shared objects (the others are data to the exporter)."""

_TRIPLETS: dict[tuple[str, int, bool], tuple[str, ...]] = {
    ("EM_X86_64", 64, True): ("x86_64-linux-gnu",),
    ("EM_X86_64", 32, True): ("x86_64-linux-gnux32",),
    ("EM_386", 32, True): ("i386-linux-gnu",),
    ("EM_AARCH64", 64, True): ("aarch64-linux-gnu",),
    ("EM_AARCH64", 64, False): ("aarch64_be-linux-gnu",),
    ("EM_AARCH64", 32, True): ("aarch64-linux-gnu_ilp32",),
    ("EM_ARM", 32, True): ("arm-linux-gnueabihf", "arm-linux-gnueabi"),
    ("EM_ARM", 32, False): ("armeb-linux-gnueabihf", "armeb-linux-gnueabi"),
    ("EM_PPC64", 64, False): ("powerpc64-linux-gnu",),
    ("EM_PPC64", 64, True): ("powerpc64le-linux-gnu",),
    ("EM_PPC", 32, False): ("powerpc-linux-gnu", "powerpc-linux-gnuspe"),
    ("EM_S390", 64, False): ("s390x-linux-gnu",),
    ("EM_S390", 32, False): ("s390-linux-gnu",),
    ("EM_RISCV", 64, True): ("riscv64-linux-gnu",),
    ("EM_RISCV", 32, True): ("riscv32-linux-gnu",),
    ("EM_MIPS", 32, False): ("mips-linux-gnu", "mips64-linux-gnuabin32"),
    ("EM_MIPS", 32, True): ("mipsel-linux-gnu", "mips64el-linux-gnuabin32"),
    ("EM_MIPS", 64, False): ("mips64-linux-gnuabi64",),
    ("EM_MIPS", 64, True): ("mips64el-linux-gnuabi64",),
    ("EM_SPARCV9", 64, False): ("sparc64-linux-gnu",),
    ("EM_SPARC", 32, False): ("sparc-linux-gnu",),
    ("EM_68K", 32, False): ("m68k-linux-gnu",),
    ("EM_SH", 32, True): ("sh4-linux-gnu",),
    ("EM_ALPHA", 64, True): ("alpha-linux-gnu",),
    ("EM_PARISC", 32, False): ("hppa-linux-gnu",),
    ("EM_IA_64", 64, True): ("ia64-linux-gnu",),
    ("EM_LOONGARCH", 64, True): ("loongarch64-linux-gnu",),
}
"""Debian's multiarch tuples (https://wiki.debian.org/Multiarch/Tuples) by (machine, class,
little-endian): the names of /lib/<triplet> and /usr/lib/<triplet>."""

_PLATFORMS = {"EM_X86_64": "x86_64", "EM_386": "i686", "EM_AARCH64": "aarch64", "EM_ARM": "v7l",
              "EM_PPC64": "ppc64", "EM_PPC": "ppc", "EM_S390": "s390x", "EM_RISCV": "riscv64",
              "EM_MIPS": "mips", "EM_SPARCV9": "sparc64", "EM_SPARC": "sparc", "EM_68K": "m68k",
              "EM_SH": "sh4", "EM_ALPHA": "alpha", "EM_PARISC": "parisc", "EM_IA_64": "ia64",
              "EM_LOONGARCH": "loongarch64"}
"""``$PLATFORM`` when nothing better is known: the kernel's AT_PLATFORM of the machine's
baseline (glibc may report a CPU-specific name, such as "haswell", on the machine that runs
the program; an export cannot know that machine)."""

_MACHINE_NAMES = {"EM_X86_64": "x86-64", "EM_386": "i386", "EM_AARCH64": "AArch64", "EM_ARM": "ARM",
                  "EM_PPC64": "PowerPC64", "EM_PPC": "PowerPC", "EM_S390": "S/390", "EM_RISCV": "RISC-V",
                  "EM_MIPS": "MIPS", "EM_SPARCV9": "SPARC V9", "EM_SPARC": "SPARC", "EM_68K": "m68k",
                  "EM_SH": "SuperH", "EM_ALPHA": "Alpha", "EM_PARISC": "PA-RISC", "EM_IA_64": "IA-64",
                  "EM_LOONGARCH": "LoongArch"}


@dataclass(frozen=True, slots=True)
class Arch:
    """An ELF architecture: class (32 or 64), byte order, ``e_machine`` (pyelftools' name,
    such as "EM_X86_64", or the number as a string when pyelftools has no name for it),
    and ``float_abi`` ("hard", "soft" or None) where the machine has two (ARM)."""

    elfclass: int
    little_endian: bool
    machine: str
    float_abi: str | None = None

    def loads_with(self, other: Arch) -> bool:
        """True when an object of ``other`` can be loaded into a program of this one."""
        if (self.elfclass, self.little_endian, self.machine) != (other.elfclass, other.little_endian, other.machine):
            return False
        return self.float_abi is None or other.float_abi is None or self.float_abi == other.float_abi

    def describe(self) -> str:
        name = _MACHINE_NAMES.get(self.machine, self.machine)
        abi = f", {self.float_abi}-float" if self.float_abi else ""
        return f"ELF{self.elfclass} {'LSB' if self.little_endian else 'MSB'} {name}{abi}"

    def __str__(self) -> str:
        return self.describe()


def multiarch_triplets(arch: Arch) -> tuple[str, ...]:
    """The multiarch directory names of ``arch`` (the hard-float ARM one first for an ARM
    object that does not say)."""
    triplets = _TRIPLETS.get((arch.machine, arch.elfclass, arch.little_endian), ())
    if arch.machine == "EM_ARM" and arch.float_abi == "soft":
        triplets = tuple(reversed(triplets))
    return triplets


def default_platform(arch: Arch) -> str:
    """What ``$PLATFORM`` expands to for ``arch`` unless the exporter is told otherwise."""
    return _PLATFORMS.get(arch.machine, arch.machine.lower().removeprefix("em_"))


@dataclass(frozen=True, slots=True)
class ELFInfo:
    """What the loader needs from one ELF file (see the module docstring)."""

    path: str                           # in the source root
    arch: Arch
    e_type: str                         # "ET_EXEC", "ET_DYN", "ET_REL", "ET_CORE"...
    interp: str | None                  # PT_INTERP
    needed: tuple[str, ...]             # DT_NEEDED, in order
    soname: str | None
    rpath: str | None                   # DT_RPATH (ignored by the loader when runpath is set)
    runpath: str | None                 # DT_RUNPATH
    nodeflib: bool                      # DF_1_NODEFLIB
    dynamic: bool                       # has PT_DYNAMIC

    @property
    def loadable(self) -> bool:
        """A program or a shared object (the loader's business), not an object file or a core."""
        return self.e_type in LOADABLE_TYPES

    @property
    def effective_rpath(self) -> str | None:
        """DT_RPATH as the loader uses it: ignored when DT_RUNPATH is there (glibc's
        get-dynamic-info.h)."""
        return None if self.runpath is not None else self.rpath


def _tag_text(tag: object, attr: str) -> str:
    """The string of a dynamic tag (pyelftools sets ``needed``, ``soname``, ``rpath`` and
    ``runpath`` on the tags that have one, from the dynamic string table)."""
    return str(getattr(tag, attr))


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


def read_elf(host_path: str, path: str) -> ELFInfo:
    """Read the ELF file at ``host_path`` (``path`` names it in messages).

    Raises :class:`ELFFileError` (``rule="unreadable-elf"``) when pyelftools cannot make
    sense of it: a truncated file, a broken program header, a dynamic segment outside the
    file."""
    from elftools.elf.dynamic import Dynamic
    from elftools.elf.elffile import ELFFile

    try:
        with open(host_path, "rb") as f:
            elf = ELFFile(f)
            header = elf.header
            machine = header["e_machine"]
            machine_name = machine if isinstance(machine, str) else str(machine)
            float_abi = None
            if machine_name == "EM_ARM":
                flags = int(header["e_flags"])
                float_abi = "hard" if flags & EF_ARM_ABI_FLOAT_HARD else "soft" if flags & EF_ARM_ABI_FLOAT_SOFT else None
            arch = Arch(int(elf.elfclass), bool(elf.little_endian), machine_name, float_abi)
            e_type = header["e_type"]
            interp = None
            needed: list[str] = []
            soname = rpath = runpath = None
            nodeflib = dynamic = False
            for i in range(elf.num_segments()):
                # The program headers only; the sections are never needed (pyelftools'
                # DynamicSegment would walk them all to find the string table: read it
                # through DT_STRTAB instead, as the loader does).
                phdr = elf._get_segment_header(i)
                p_type = phdr["p_type"]
                if p_type == "PT_INTERP" and interp is None:
                    f.seek(int(phdr["p_offset"]))
                    raw = f.read(int(phdr["p_filesz"]))
                    interp = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif p_type == "PT_DYNAMIC" and not dynamic:
                    dynamic = True
                    table = Dynamic(f, elf, None, int(phdr["p_offset"]), int(phdr["p_filesz"]) == 0)
                    for tag in table.iter_tags():
                        d_tag = tag.entry.d_tag
                        if d_tag == "DT_NEEDED":
                            needed.append(_tag_text(tag, "needed"))
                        elif d_tag == "DT_SONAME" and soname is None:
                            soname = _tag_text(tag, "soname")
                        elif d_tag == "DT_RPATH" and rpath is None:
                            rpath = _tag_text(tag, "rpath")
                        elif d_tag == "DT_RUNPATH" and runpath is None:
                            runpath = _tag_text(tag, "runpath")
                        elif d_tag == "DT_FLAGS_1":
                            nodeflib = bool(int(tag.entry.d_val) & DF_1_NODEFLIB)
                        elif d_tag == "DT_NULL":
                            break
    except OSError as e:
        raise ELFFileError(f"{path}: cannot read the ELF file: {e.strerror}", path=path,
                           rule="unreadable-elf") from None
    except Exception as e:     # pyelftools' ELFError, construct's StreamError, bad offsets...
        raise ELFFileError(f"{path}: not a readable ELF file ({type(e).__name__}: {e}); the exporter "
                           "reads the ELF header, the program headers and the dynamic segment",
                           path=path, rule="unreadable-elf") from None
    return ELFInfo(path=path, arch=arch, e_type=str(e_type), interp=interp, needed=tuple(needed), soname=soname,
                   rpath=rpath, runpath=runpath, nodeflib=nodeflib, dynamic=dynamic)


__all__ = ["Arch", "ELFInfo", "read_elf", "is_elf", "multiarch_triplets", "default_platform", "ELF_MAGIC",
           "DF_1_NODEFLIB", "LOADABLE_TYPES"]
