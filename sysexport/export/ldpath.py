"""Where the dynamic loader finds a program's libraries, worked out without running anything.

This follows glibc's ``elf/dl-load.c`` (``_dl_map_object``) for every ``DT_NEEDED`` name of
every object, breadth first from the program, as ``_dl_map_object_deps`` loads them:

1. A name already loaded (the name it was needed by, the path it was found at, or its
   ``DT_SONAME``; the program interpreter counts, so libc's ``ld-linux-x86-64.so.2`` is the
   interpreter) is not searched again; neither is a file already loaded under another name.
2. A name with a '/' is a path (``$ORIGIN`` and the other tokens expanded).
3. Otherwise, unless the object that needs it has ``DT_RUNPATH``: the ``DT_RPATH`` of that
   object, then of the object that loaded it, and so on up to the program, then the
   program's own ``DT_RPATH`` if not searched yet.  (An object with both ignores its
   ``DT_RPATH``.)  ``LD_LIBRARY_PATH`` is the environment's, not the system's: not used.
4. The ``DT_RUNPATH`` of the object that needs it (not inherited).
5. Unless that object has ``DF_1_NODEFLIB``: what ``ld.so.cache`` would give, i.e. the
   directories of the source root's ``/etc/ld.so.conf`` (with its ``include`` globs, in
   order; a file found there must have the name as its ``DT_SONAME`` or none, since
   ldconfig indexes libraries by soname), then the system directories (below).

A file of another ELF class, byte order or machine is passed over and the search goes on
(glibc does the same); a file that is not ELF where a library is looked for is an error,
as it is for glibc.

Dynamic string tokens: ``$ORIGIN`` is the directory of the object: for the program its
physical directory (the loader takes ``/proc/self/exe``, symlinks resolved), for a library
the directory of the path it was found at, as written (glibc does not resolve it).  ``$LIB``
is ``lib/<triplet>`` on a multiarch (Debian) root, else ``lib64`` for 64-bit objects and
``lib`` for 32-bit ones; ``$PLATFORM`` the baseline platform of the machine (``x86_64``...);
both can be given.  An empty element of a search path means the current directory, which an
export cannot know: it is passed over (and logged).

The system directories: on a root that has ``/lib/<triplet>`` or ``/usr/lib/<triplet>`` for
the object's machine (Debian's multiarch), Debian's list ``/lib/<triplet>``,
``/usr/lib/<triplet>``, ``/lib``, ``/usr/lib`` (what ``ld.so --help`` prints there); on any
other root glibc's own for the class, ``/lib64``, ``/usr/lib64`` (``/lib32``, ``/usr/lib32``
for 32-bit objects, ``/libx32``, ``/usr/libx32`` for x32), then ``/lib``, ``/usr/lib``.

Not modelled: the glibc-hwcaps and legacy hwcap subdirectories (which one is used depends
on the CPU that will run the program; the baseline library is exported), ``dlopen()``
(libraries a program opens by itself, such as NSS modules: add them by name), and
``ld.so.preload``.
"""
from __future__ import annotations

import fnmatch
import re
import stat
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .elf import Arch, ELFInfo, default_platform, multiarch_triplets
from .errors import DependencyError
from .root import SourceRoot, clean, parent_of

LD_SO_CONF = "/etc/ld.so.conf"
MAX_INCLUDE_DEPTH = 16
_DST_RE = re.compile(r"\$(?:\{(ORIGIN|PLATFORM|LIB)\}|(ORIGIN|PLATFORM|LIB)(?![A-Za-z0-9_]))")


@dataclass(eq=False)
class LoadedObject:
    """One object of a program's closure, as the loader would map it."""

    info: ELFInfo
    found_as: str                   # the path the loader opened (its l_name): search dir + name, as written
    physical: str                   # where that is in the source root, symlinks resolved
    loader: LoadedObject | None     # the object whose DT_NEEDED brought it in (None: the program)
    how: str                        # how it was found, for the log
    needed_name: str = ""           # the DT_NEEDED name it was found for ("" for the program, PT_INTERP)
    names: set[str] = field(default_factory=set)
    key: tuple[int, int] | None = None      # (st_dev, st_ino)

    @property
    def origin(self) -> str:
        """``$ORIGIN``: the directory of the program (physical) or of the path a library was found at."""
        return parent_of(self.physical if self.loader is None and self.how == "program" else self.found_as)

    def matches(self, name: str) -> bool:
        return name in self.names or name == self.info.soname


@dataclass(frozen=True, slots=True)
class Searched:
    """A directory the loader would try, and why."""

    directory: str
    why: str


class LibrarySearch:
    """The loader's search rules over one source root (see the module docstring).

    ``read_elf(physical_path)`` gives the ELFInfo of a regular file of the root, or None
    when it is not ELF; ``lib`` and ``platform`` fix ``$LIB`` and ``$PLATFORM``;
    ``system_dirs`` replaces the system directories; ``ld_so_conf`` is the configuration
    file inside the root (None: none).
    """

    def __init__(self, root: SourceRoot, read_elf: Callable[[str], ELFInfo | None], *, lib: str | None = None,
                 platform: str | None = None, system_dirs: Sequence[str] | None = None,
                 ld_so_conf: str | None = LD_SO_CONF) -> None:
        self.root = root
        self.read_elf = read_elf
        self.lib = lib
        self.platform = platform
        self._system_dirs = [clean(d) for d in system_dirs] if system_dirs is not None else None
        self.ld_so_conf = ld_so_conf
        self._conf_dirs: list[str] | None = None
        self.notes: list[str] = []
        """What the configuration parse passed over (unreadable includes...), for the log."""

    # ------------------------------------------------------------------ configuration

    def conf_dirs(self) -> list[str]:
        """The directories of ld.so.conf, in order, without duplicates."""
        if self._conf_dirs is None:
            dirs: list[str] = []
            if self.ld_so_conf is not None:
                self._parse_conf(self.ld_so_conf, dirs, 0)
            self._conf_dirs = dirs
        return self._conf_dirs

    def _parse_conf(self, path: str, dirs: list[str], depth: int) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            self.notes.append(f"{path}: includes nested more than {MAX_INCLUDE_DEPTH} deep; not read")
            return
        text = self.root.read_text(path)
        if text is None:
            if depth:
                self.notes.append(f"{path}: included from the ld.so configuration but not there")
            return
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            word, _, rest = line.partition(" ")
            if word == "include" or line.startswith("include\t"):
                for pattern in line[len("include"):].split():
                    if not pattern.startswith("/"):
                        pattern = parent_of(path) + "/" + pattern
                    for included in self.glob(pattern):
                        self._parse_conf(included, dirs, depth + 1)
            elif word.lower() == "hwcap" or line.lower().startswith("hwcap\t"):
                continue
            else:
                directory = line.split("=", 1)[0].strip()      # the old "DIR=TYPE" form
                if directory.startswith("/"):
                    directory = clean(directory)
                    if directory not in dirs:
                        dirs.append(directory)
                else:
                    self.notes.append(f"{path}: {line!r} is not an absolute directory; ldconfig ignores it")

    def glob(self, pattern: str) -> list[str]:
        """Paths of the root matching ``pattern`` (glob(3) rules, resolved inside the root), sorted."""
        matches = ["/"]
        for comp in [p for p in pattern.split("/") if p]:
            nxt: list[str] = []
            for base in matches:
                if any(c in comp for c in "*?["):
                    res = self.root.resolve(base)
                    if res.physical is None or res.st is None or not stat.S_ISDIR(res.st.st_mode):
                        continue
                    for name in self.root.listdir(res.physical):
                        if name.startswith(".") and not comp.startswith("."):
                            continue
                        if fnmatch.fnmatchcase(name, comp):
                            nxt.append(base.rstrip("/") + "/" + name)
                else:
                    candidate = base.rstrip("/") + "/" + comp
                    if self.root.resolve(candidate).physical is not None:
                        nxt.append(candidate)
            matches = nxt
        return sorted(m for m in matches if m != "/")

    def multiarch(self, arch: Arch) -> list[str]:
        """The triplets of ``arch`` whose /lib/<triplet> or /usr/lib/<triplet> is in the root."""
        found = []
        for t in multiarch_triplets(arch):
            for d in (f"/lib/{t}", f"/usr/lib/{t}"):
                res = self.root.resolve(d)
                if res.st is not None and stat.S_ISDIR(res.st.st_mode):
                    found.append(t)
                    break
        return found

    def system_dirs(self, arch: Arch) -> list[str]:
        """The loader's built-in directories for objects of ``arch`` (see the module docstring)."""
        if self._system_dirs is not None:
            return list(self._system_dirs)
        triplets = self.multiarch(arch)
        if triplets:
            dirs = []
            for t in triplets:
                dirs += [f"/lib/{t}", f"/usr/lib/{t}"]
            return dirs + ["/lib", "/usr/lib"]
        if arch.elfclass == 64:
            own = ["/lib64", "/usr/lib64"]
        elif arch.machine == "EM_X86_64":
            own = ["/libx32", "/usr/libx32"]
        else:
            own = ["/lib32", "/usr/lib32"]
        return own + ["/lib", "/usr/lib"]

    def lib_token(self, arch: Arch) -> str:
        """What ``$LIB`` expands to for objects of ``arch``."""
        if self.lib is not None:
            return self.lib
        triplets = self.multiarch(arch)
        if triplets:
            return f"lib/{triplets[0]}"
        return "lib64" if arch.elfclass == 64 else "lib"

    def platform_token(self, arch: Arch) -> str:
        return self.platform if self.platform is not None else default_platform(arch)

    def expand(self, text: str, obj: LoadedObject) -> str:
        """``text`` with $ORIGIN, $LIB and $PLATFORM (also in braces) expanded for ``obj``."""
        def one(m: re.Match[str]) -> str:
            token = m.group(1) or m.group(2)
            if token == "ORIGIN":
                return obj.origin
            if token == "LIB":
                return self.lib_token(obj.info.arch)
            return self.platform_token(obj.info.arch)
        return _DST_RE.sub(one, text)

    def path_dirs(self, text: str, obj: LoadedObject, what: str) -> list[Searched]:
        """The directories of a DT_RPATH/DT_RUNPATH string of ``obj``."""
        out = []
        for element in text.split(":"):
            if not element:
                self.notes.append(f"{obj.found_as}: an empty element of its {what} means the current directory, "
                                  "which an export cannot know; passed over")
                continue
            directory = self.expand(element, obj)
            if not directory.startswith("/"):
                self.notes.append(f"{obj.found_as}: {what} element {element!r} is relative to the current "
                                  "directory; taken from /")
            out.append(Searched(directory.rstrip("/") or "/", f"{what} of {obj.found_as}"))
        return out

    # ------------------------------------------------------------------ the closure

    def closure(self, program: ELFInfo, physical: str, found_as: str | None = None) -> list[LoadedObject]:
        """Every object the loader would map for ``program`` (at ``physical`` in the root),
        the program first, then the interpreter, then the libraries in load order.

        Raises DependencyError (naming the program and the library) when the interpreter
        or a DT_NEEDED library is not found."""
        main = LoadedObject(program, found_as or physical, physical, None, "program", names={found_as or physical})
        main.key = self._key(physical)
        objects = [main]
        if program.interp:
            objects.append(self._interpreter(main))
        queue = deque([main])
        while queue:
            needer = queue.popleft()
            for name in needer.info.needed:
                if any(o.matches(name) for o in objects):
                    continue
                obj = self._find(name, needer, main)
                same = next((o for o in objects if obj.key is not None and o.key == obj.key), None)
                if same is not None:
                    same.names.add(name)
                    continue
                objects.append(obj)
                queue.append(obj)
        return objects

    def _key(self, physical: str) -> tuple[int, int] | None:
        st = self.root.lstat(physical)
        return (st.st_dev, st.st_ino) if st is not None else None

    def _interpreter(self, main: LoadedObject) -> LoadedObject:
        interp = main.info.interp or ""
        res = self.root.resolve(interp)
        if res.physical is None or res.st is None or not stat.S_ISREG(res.st.st_mode):
            raise DependencyError(f"{main.found_as}: its interpreter {interp} (PT_INTERP) is not in the source root"
                                  + (f" (through {res.chain()})" if res.links else ""),
                                  path=main.found_as, rule="dangling-interpreter", program=main.found_as,
                                  library=interp)
        info = self.read_elf(res.physical)
        if info is None:
            raise DependencyError(f"{main.found_as}: its interpreter {interp} is not an ELF file",
                                  path=main.found_as, rule="dangling-interpreter", program=main.found_as,
                                  library=interp)
        obj = LoadedObject(info, interp, res.physical, main, "interpreter (PT_INTERP)", names={interp})
        obj.key = self._key(res.physical)
        return obj

    def search_dirs(self, name: str, needer: LoadedObject, main: LoadedObject) -> list[Searched]:
        """The directories tried for ``name`` needed by ``needer``, in order."""
        dirs: list[Searched] = []
        if needer.info.runpath is None:
            did_main = False
            link: LoadedObject | None = needer
            while link is not None:
                rpath = link.info.effective_rpath
                if rpath is not None:
                    dirs += self.path_dirs(rpath, link, "DT_RPATH")
                    did_main |= link is main
                link = link.loader
            if not did_main and main.info.effective_rpath is not None:
                dirs += self.path_dirs(main.info.effective_rpath, main, "DT_RPATH")
        if needer.info.runpath is not None:
            dirs += self.path_dirs(needer.info.runpath, needer, "DT_RUNPATH")
        if not needer.info.nodeflib:
            dirs += [Searched(d, "ld.so.conf") for d in self.conf_dirs()]
            dirs += [Searched(d, "system directory") for d in self.system_dirs(main.info.arch)]
        return dirs

    def _find(self, name: str, needer: LoadedObject, main: LoadedObject) -> LoadedObject:
        arch = main.info.arch
        passed: list[str] = []
        if "/" in name:
            candidates = [(self.expand(name, needer), Searched("", "a path in DT_NEEDED"))]
        else:
            candidates = [(d.directory.rstrip("/") + "/" + name, d) for d in self.search_dirs(name, needer, main)]
        for path, where in candidates:
            res = self.root.resolve(path)
            if res.physical is None or res.st is None or not stat.S_ISREG(res.st.st_mode):
                continue
            info = self.read_elf(res.physical)
            if info is None:
                raise DependencyError(f"{main.found_as}: library {name} (needed by {needer.found_as}) is found at "
                                      f"{path}, which is not an ELF file; the loader stops there",
                                      path=path, rule="dangling-library", program=main.found_as, library=name)
            if not arch.loads_with(info.arch):
                passed.append(f"{path} ({info.arch})")
                continue
            if where.why == "ld.so.conf" and info.soname is not None and info.soname != name:
                passed.append(f"{path} (its soname is {info.soname}; ld.so.cache holds it under that name)")
                continue
            obj = LoadedObject(info, path, res.physical, needer, where.why, needed_name=name, names={name, path})
            obj.key = self._key(res.physical)
            return obj
        tried = ", ".join(dict.fromkeys(p.rsplit("/", 1)[0] or "/" for p, _ in candidates)) or (
            "no directory to search (no DT_RPATH or DT_RUNPATH applies, and DF_1_NODEFLIB forbids the default ones)")
        other = f"; passed over {', '.join(passed)}" if passed else ""
        raise DependencyError(f"{main.found_as}: library {name} (DT_NEEDED of {needer.found_as}) is not in the source "
                              f"root; searched {tried}{other}", path=main.found_as, rule="dangling-library",
                              program=main.found_as, library=name)


__all__ = ["LibrarySearch", "LoadedObject", "Searched", "LD_SO_CONF"]
