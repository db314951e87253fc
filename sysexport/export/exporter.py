"""The exporter: a minimal system taken from a source root, with everything it needs.

A port of the core of Perl's Sys::Export.  ``Exporter(src, dst)`` takes paths of the
source root and records what must go into the destination (any writer with ``add()`` and
``finish()``: :class:`~sysexport.cpio.CPIO`, :class:`~sysexport.iso9660.writer.ISO9660`,
:class:`~sysexport.hybrid.ISO9660Hybrid`, :class:`~sysexport.vfat.writer.VFAT`, or a
directory path, written by :class:`~sysexport.export.dirdest.DirectoryWriter`):

* a path given to :meth:`Exporter.add` is resolved inside the source root as chroot would
  (:mod:`.root`); every symlink on the way is kept as a symlink and its target exported;
* a directory is exported with its contents; the parents of everything exported are
  exported as the directories they are in the source (owner, mode, time);
* an ELF program or library brings its interpreter (``PT_INTERP``) and every library the
  loader would map for it (:mod:`.ldpath`: ``DT_NEEDED`` through ``DT_RPATH``,
  ``DT_RUNPATH``, ``$ORIGIN``, the root's ld.so.conf and the system directories);
* an executable script brings its ``#!`` interpreter (and, for ``#!/usr/bin/env NAME``,
  NAME found on :attr:`Exporter.path` inside the root);
* :meth:`Exporter.rewrite_path` renames (names and symlink targets), :meth:`rewrite_user`
  and :meth:`rewrite_group` change owners, :meth:`add_passwd` writes the minimal user
  database, :meth:`skip` leaves paths out.

Nothing is written before :meth:`Exporter.finish`, which adds every entry to the
destination in a fixed order (parents first, siblings sorted by name) and finishes it (the
image writers and the directory writer are atomic: no half-written output).  Every step
is logged with its reason (:attr:`Exporter.log`, and the ``sysexport.export`` logger).  A
call that fails leaves the exporter as it was before the call.
"""
from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

from ..data import BytesData
from ..errors import CallOrderError, InvalidInputError
from ..fileinfo import FileInfo, to_fileinfo
from .elf import Arch, ELFInfo, is_elf, read_elf
from .errors import CollisionError, DependencyError, ELFFileError, SourcePathError
from .ldpath import LibrarySearch, LoadedObject
from .root import Resolution, SourceRoot, clean, is_under, parent_of
from .userdb import UserDB

logger = logging.getLogger("sysexport.export")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""Where :meth:`Exporter.which` looks (Debian's PATH for root)."""
PSEUDO_DIRS = ("/proc", "/sys")
"""Skipped unless ``skip_pseudo=False``: their contents are made by the kernel when read."""
SCRIPT_HEAD_BYTES = 256
"""How much of a ``#!`` line the kernel reads (BINPRM_BUF_SIZE)."""
COLLISION_CHOICES = ("error", "overwrite", "ignore")
ARCH_NAMES = {
    "x86_64": Arch(64, True, "EM_X86_64"), "amd64": Arch(64, True, "EM_X86_64"),
    "i386": Arch(32, True, "EM_386"), "i686": Arch(32, True, "EM_386"),
    "aarch64": Arch(64, True, "EM_AARCH64"), "arm64": Arch(64, True, "EM_AARCH64"),
    "armhf": Arch(32, True, "EM_ARM", "hard"), "armel": Arch(32, True, "EM_ARM", "soft"),
    "ppc64el": Arch(64, True, "EM_PPC64"), "ppc64le": Arch(64, True, "EM_PPC64"),
    "ppc64": Arch(64, False, "EM_PPC64"), "s390x": Arch(64, False, "EM_S390"),
    "riscv64": Arch(64, True, "EM_RISCV"), "loong64": Arch(64, True, "EM_LOONGARCH"),
}
"""Names ``arch=`` takes (Debian's and the kernel's), besides an :class:`Arch`."""

PathArg = Union[str, "os.PathLike[str]"]
CollisionRule = Union[str, Callable[[str, "ExportEntry", "ExportEntry"], str]]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of :attr:`Exporter.log`: what was done to which name, from which source, why.

    ``action``: "add", "skip" (left out by a rule), "keep" and "replace" (a collision
    decided), "warn" (exported, or left out, with something to know), "note"."""

    action: str
    name: str | None
    source: str | None
    kind: str
    reason: str

    def __str__(self) -> str:
        parts = [f"{self.action:<7}"]
        if self.name is not None:
            parts.append("/" + self.name if self.name else "/")
        if self.source is not None and (self.name is None or self.source != "/" + self.name):
            parts.append(f"<- {self.source}")
        if self.kind:
            parts.append(f"[{self.kind}]")
        if self.reason:
            parts.append(f"({self.reason})" if self.action != "warn" else self.reason)
        return " ".join(parts)


@dataclass(eq=False, slots=True)
class ExportEntry:
    """One destination name and what it will be: the file-info record, where it comes from
    (``source``, a path of the source root, or None for a record given as such), and why."""

    name: str
    info: FileInfo
    source: str | None
    kind: str
    reason: str
    identity: tuple[object, ...]
    origin: str = "path"          # "path", "record", "add_passwd", "implied"

    def describe(self) -> str:
        what = self.source if self.source is not None else f"a {self.origin} entry"
        return f"{what} ({self.kind})"


def _kind(mode: int) -> str:
    return {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "chr",
            stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "sock"}.get(stat.S_IFMT(mode), "?")


def _sort_key(name: str) -> list[str]:
    return name.split("/") if name else []


class Exporter:
    """Export programs, files and trees of a source root, with their dependencies.

    ``src``: the source root (a host directory; default "/").  ``dst``: a writer with
    ``add()`` and ``finish()``, or a directory path (a
    :class:`~sysexport.export.dirdest.DirectoryWriter`; it refuses a non-empty
    directory); None to only look (:meth:`dependencies`, :attr:`entries`).

    Options: ``on_collision`` ("error", "overwrite", "ignore", or a function
    ``(name, existing, new) -> "error" | "overwrite" | "ignore"``), ``foreign_arch`` and
    ``bad_elf`` ("error" or "warn": an ELF file of another architecture than the export's,
    an ELF file that cannot be read), ``dangling_symlinks`` ("warn" or "error"), ``arch``
    (the export's architecture: an :class:`~sysexport.export.elf.Arch`, a name such as
    "x86_64", or None for that of the first ELF program exported), ``lib`` and
    ``platform`` (what ``$LIB`` and ``$PLATFORM`` expand to), ``system_dirs`` (the
    loader's built-in directories), ``path`` (for :meth:`which`), ``skip_pseudo`` (leave
    out /proc and /sys), ``tree_errors`` ("warn" or "error": what a file found by walking
    a directory does when its interpreter or a library is missing, it is an ELF file of
    another architecture or unreadable, or a symlink in the tree loops or leaves the root;
    with "warn", the default, it is exported without what it needs and the log says so;
    a path named in :meth:`add` always fails on those).
    """

    def __init__(self, src: PathArg = "/", dst: Any = None, *, on_collision: CollisionRule = "error",
                 foreign_arch: str = "error", bad_elf: str = "error", dangling_symlinks: str = "warn",
                 arch: Arch | str | None = None, lib: str | None = None, platform: str | None = None,
                 system_dirs: Sequence[str] | None = None, path: str = DEFAULT_PATH,
                 skip_pseudo: bool = True, tree_errors: str = "warn") -> None:
        self.src = SourceRoot(src)
        if isinstance(dst, (str, bytes, os.PathLike)):
            from .dirdest import DirectoryWriter
            dst = DirectoryWriter(os.fsdecode(dst))
        if dst is not None and not (callable(getattr(dst, "add", None)) and callable(getattr(dst, "finish", None))):
            raise InvalidInputError(f"Exporter: dst must be a writer with add() and finish() or a directory path, "
                                    f"found {type(dst).__name__}")
        self.dst = dst
        self.on_collision = on_collision
        self.foreign_arch = _choice("foreign_arch", foreign_arch, ("error", "warn"))
        self.bad_elf = _choice("bad_elf", bad_elf, ("error", "warn"))
        self.dangling_symlinks = _choice("dangling_symlinks", dangling_symlinks, ("warn", "error"))
        self.tree_errors = _choice("tree_errors", tree_errors, ("warn", "error"))
        self._walking = 0
        self.arch: Arch | None = _arch(arch)
        self.path = path
        self.log: list[LogEntry] = []
        self.users = UserDB(self.src)
        self._elf_cache: dict[str, ELFInfo | None] = {}
        self.search = LibrarySearch(self.src, self._read_elf, lib=lib, platform=platform, system_dirs=system_dirs)
        self._entries: dict[str, ExportEntry] = {}
        self._below: dict[str, int] = {}            # directory name -> number of entries below it
        self._done: dict[str, int] = {}
        self._rewrites: list[tuple[str, str]] = []
        self._uid_map: dict[int, int] = {}
        self._gid_map: dict[int, int] = {}
        self._skips: list[str] = []
        self._journal: list[tuple[str, str, object]] | None = None
        self._finished = False
        self._notes_seen = 0
        if skip_pseudo:
            self._skips.extend(PSEUDO_DIRS)

    # ------------------------------------------------------------------ options

    @property
    def on_collision(self) -> CollisionRule:
        """What to do with two different sources for one destination name."""
        return self._on_collision

    @on_collision.setter
    def on_collision(self, value: CollisionRule) -> None:
        if not callable(value):
            _choice("on_collision", value, COLLISION_CHOICES)
        self._on_collision = value

    # ------------------------------------------------------------------ rules

    def skip(self, *paths: PathArg) -> None:
        """Never export these paths of the source root, nor anything below them (also when
        a program needs them: the log says so)."""
        for p in paths:
            path = _root_path(p)
            self._skips.append(path)
            try:
                parent = self.src.resolve(parent_of(path))
            except SourcePathError:
                continue
            if parent.physical is not None and path != "/":
                physical = parent.physical.rstrip("/") + "/" + path.rsplit("/", 1)[1]
                if physical != path:
                    self._skips.append(physical)

    def rewrite_path(self, src_prefix: PathArg, dst_prefix: PathArg) -> None:
        """Export what is at or below ``src_prefix`` (a path of the source root, whole
        components) under ``dst_prefix`` instead; symlink targets pointing there follow.
        The longest matching prefix wins.  Give the rules before the first :meth:`add`."""
        self._before_adding("rewrite_path()")
        s, d = _root_path(src_prefix), _root_path(dst_prefix)
        self._rewrites = [(a, b) for a, b in self._rewrites if a != s] + [(s, d)]
        self._rewrites.sort(key=lambda r: -len(r[0]))

    def rewrite_user(self, src: int | str, dst: int | str) -> None:
        """Files owned by user ``src`` (a name of the source root's /etc/passwd, or a
        number) are exported as owned by ``dst`` (a name there, or a number)."""
        self._before_adding("rewrite_user()")
        self._uid_map[self.users.uid(src, f"rewrite_user({src!r})")] = self.users.uid(dst, f"rewrite_user(..., {dst!r})")

    def rewrite_group(self, src: int | str, dst: int | str) -> None:
        """Like :meth:`rewrite_user`, for groups (the source root's /etc/group)."""
        self._before_adding("rewrite_group()")
        self._gid_map[self.users.gid(src, f"rewrite_group({src!r})")] = self.users.gid(dst, f"rewrite_group(..., {dst!r})")

    def _before_adding(self, call: str) -> None:
        if self._entries:
            raise CallOrderError(f"Exporter.{call}: give the rewriting rules before the first add(); "
                                 f"{len(self._entries)} entries are already named")

    # ------------------------------------------------------------------ adding

    def add(self, *items: PathArg | Mapping[str, object] | Sequence[object] | FileInfo) -> None:
        """Export paths of the source root (absolute, or relative to the root), with what
        they need; or add file-info records (a mapping, a shorthand tuple, a FileInfo)
        under their own names, as they are.

        Raises SourcePathError (a missing path, '..' above the root, a symlink loop),
        DependencyError (a program's interpreter or library missing), ELFFileError,
        CollisionError; the exporter is then as it was before the call."""
        self._require_open("add()")
        with self._transaction():
            for item in items:
                if isinstance(item, (str, os.PathLike)):
                    self._add_path(_root_path(item), "requested", contents=True, deps=True, given=os.fspath(item))
                else:
                    self._add_record(item)

    def add_find(self, path: PathArg, predicate: Callable[[str], object] | None = None) -> None:
        """Walk the directory ``path`` of the source root (sorted, not following symlinks)
        and export each entry for which ``predicate(path_in_root)`` is true (every entry
        without one), with what it needs; a directory alone, without its contents (the walk
        reaches them).  Skipped paths are not walked."""
        self._require_open("add_find()")
        top = _root_path(path)
        with self._transaction():
            res = self.src.resolve(top)
            if res.physical is None or res.st is None:
                raise SourcePathError(self._missing_message(os.fspath(path), res), path=top, rule="missing")
            if not stat.S_ISDIR(res.st.st_mode):
                raise SourcePathError(f"{path}: add_find() walks a directory; this is mode {res.st.st_mode:#o}",
                                      path=top, rule="not-a-directory")
            self._find(res.physical, predicate, f"found in {top}")

    def _find(self, directory: str, predicate: Callable[[str], object] | None, reason: str) -> None:
        self._walking += 1
        try:
            self._find_walk(directory, predicate, reason)
        finally:
            self._walking -= 1

    def _find_walk(self, directory: str, predicate: Callable[[str], object] | None, reason: str) -> None:
        stack = [directory]
        while stack:
            d = stack.pop()
            if self._skipped(d):
                self._log("skip", None, d, "dir", "skip rule")
                continue
            if predicate is None or predicate(d):
                self._add_path(d, reason, contents=False, deps=True)
            subdirs = []
            for name in self.src.listdir(d):
                child = d.rstrip("/") + "/" + name
                st = self.src.lstat(child)
                if st is None:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    subdirs.append(child)
                    continue
                if self._skipped(child):
                    self._log("skip", None, child, _kind(st.st_mode), "skip rule")
                    continue
                if predicate is None or predicate(child):
                    self._tree_step(child, lambda: self._add_path(child, reason, contents=False, deps=True))
            stack.extend(reversed(subdirs))

    def add_passwd(self, *, shadow_from_source: bool = False) -> None:
        """Add /etc/passwd, /etc/group and /etc/shadow with the users and groups that own
        what was exported so far (after rewriting; root always, when the source has it).
        Shadow entries are locked ("*") unless ``shadow_from_source`` copies the source's
        lines.  A later call replaces the files of an earlier one."""
        self._require_open("add_passwd()")
        uids = {e.info.uid for e in self._entries.values() if e.origin != "add_passwd"} | {0}
        gids = {e.info.gid for e in self._entries.values() if e.origin != "add_passwd"} | {0}
        passwd, group, shadow, notes = self.users.minimal_files(uids, gids, self._uid_map, self._gid_map,
                                                                 shadow_from_source=shadow_from_source)
        for note in notes:
            self._log("warn", None, None, "", note)
        with self._transaction():
            for name, text, mode in (("etc/passwd", passwd, 0o644), ("etc/group", group, 0o644),
                                     ("etc/shadow", shadow, 0o600)):
                data = text.encode("utf-8", "surrogateescape")
                info = to_fileinfo({"name": name, "mode": stat.S_IFREG | mode, "data": data, "uid": 0, "gid": 0})
                self._put(ExportEntry(name, info, None, "file", "minimal user database (add_passwd)",
                                      ("data", hashlib.sha256(data).hexdigest()), origin="add_passwd"))

    def which(self, name: str) -> str | None:
        """The path (inside the source root) of program ``name`` on :attr:`path`, as a
        shell's PATH lookup would find it there (an executable regular file, symlinks
        followed inside the root); None when there is none.  A name with a '/' is checked
        as it is."""
        candidates = [_root_path(name)] if "/" in name else [
            clean(d) + "/" + name for d in self.path.split(":") if d.startswith("/")]
        for candidate in candidates:
            try:
                res = self.src.resolve(candidate)
            except SourcePathError:
                continue
            if res.st is not None and stat.S_ISREG(res.st.st_mode) and res.st.st_mode & 0o111:
                return candidate
        return None

    def dependencies(self, path: PathArg) -> list[LoadedObject]:
        """What the loader would map for the ELF program or library at ``path``: the object
        itself first, then its interpreter and libraries in load order (see
        :mod:`sysexport.export.ldpath`).  Exports nothing."""
        lexical = _root_path(path)
        res = self.src.resolve(lexical)
        if res.physical is None or res.st is None or not stat.S_ISREG(res.st.st_mode):
            raise SourcePathError(self._missing_message(os.fspath(path), res), path=lexical, rule="missing")
        info = self._read_elf(res.physical)
        if info is None:
            raise ELFFileError(f"{path}: not an ELF file", path=lexical, rule="unreadable-elf")
        return self.search.closure(info, res.physical, found_as=lexical)

    # ------------------------------------------------------------------ finishing

    @property
    def entries(self) -> list[ExportEntry]:
        """Every entry recorded so far, in the order :meth:`finish` adds them."""
        return [self._entries[k] for k in sorted(self._entries, key=_sort_key)]

    def finish(self) -> Any:
        """Add every entry to the destination (parents first, siblings sorted by name) and
        finish it; returns what the destination's ``finish()`` returns.  Once."""
        self._require_open("finish()")
        if self.dst is None:
            raise InvalidInputError("Exporter.finish(): there is no destination (give dst)")
        self._finished = True
        for entry in self.entries:
            self.dst.add(entry.info)
        result = self.dst.finish()
        for note in getattr(self.dst, "notes", []) or []:
            self._log("warn", None, None, "", note)
        return result

    def _require_open(self, call: str) -> None:
        if self._finished:
            raise CallOrderError(f"Exporter.{call}: the exporter has already finished")

    # ------------------------------------------------------------------ the log

    def _log(self, action: str, name: str | None, source: str | None, kind: str, reason: str) -> None:
        entry = LogEntry(action, name, source, kind, reason)
        self.log.append(entry)
        if action == "warn":
            logger.warning("%s", entry)
        else:
            logger.info("%s", entry)

    def _search_notes(self) -> None:
        notes = self.search.notes
        while self._notes_seen < len(notes):
            self._log("note", None, None, "", notes[self._notes_seen])
            self._notes_seen += 1

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._journal is not None:       # nested: the outer call undoes
            yield
            return
        self._journal = []
        log_len = len(self.log)
        arch = self.arch
        try:
            yield
        except BaseException:
            self.arch = arch
            for what, key, previous in reversed(self._journal):
                if what == "entry":
                    self._set_entry(key, previous if isinstance(previous, ExportEntry) else None, journal=False)
                elif isinstance(previous, int):
                    self._done[key] = previous
                else:
                    self._done.pop(key, None)
            del self.log[log_len:]
            raise
        finally:
            self._journal = None
        self._search_notes()

    def _set_entry(self, name: str, entry: ExportEntry | None, *, journal: bool = True) -> None:
        previous = self._entries.get(name)
        if journal and self._journal is not None:
            self._journal.append(("entry", name, previous))
        if entry is None:
            self._entries.pop(name, None)
        else:
            self._entries[name] = entry
        if (previous is None) != (entry is None):
            step = 1 if previous is None else -1
            parts = name.split("/")[:-1] if name else []
            for i in range(1, len(parts) + 1):
                above = "/".join(parts[:i])
                self._below[above] = self._below.get(above, 0) + step

    def _set_done(self, path: str, level: int) -> None:
        if self._journal is not None:
            self._journal.append(("done", path, self._done.get(path)))
        self._done[path] = level

    # ------------------------------------------------------------------ names

    def _map(self, path: str) -> str:
        """A source path as a destination path (absolute), the rewrite rules applied."""
        for s, d in self._rewrites:
            if is_under(path, s):
                rest = path[len(s):] if s != "/" else path
                return clean(d.rstrip("/") + "/" + rest.lstrip("/")) if rest.strip("/") else d
        return path

    def dest_name(self, path: str) -> str:
        """The destination name (relative, '/'-separated) of a path of the source root."""
        return self._map(clean(path)).lstrip("/")

    def _skipped(self, path: str) -> bool:
        return any(is_under(path, s) for s in self._skips)

    def _rewrite_target(self, link: str, target: str) -> str:
        """A symlink's target once the rewrite rules moved the link and/or what it points at."""
        if not self._rewrites:
            return target
        link_dest = self._map(link)
        if target.startswith("/"):
            absolute = posixpath.normpath(target)
            moved = self._map(absolute)
            return moved if moved != absolute else target
        absolute = posixpath.normpath(parent_of(link) + "/" + target)
        moved = self._map(absolute)
        if moved == absolute and link_dest == link:
            return target
        return posixpath.relpath(moved, parent_of(link_dest))

    # ------------------------------------------------------------------ resolving and recording

    def _missing_message(self, given: str, res: Resolution) -> str:
        where = f" ({res.missing} is missing)" if res.missing and res.missing != clean(given) else ""
        via = f" through {res.chain()}" if res.links else ""
        hint = ""
        if self.src.top != "/" and os.path.isabs(given) and is_under(clean(given), self.src.top):
            hint = f"; paths are inside the source root: did you mean {clean(given)[len(self.src.top):] or '/'}?"
        return f"{given}: not in the source root {self.src.top}{where}{via}{hint}"

    def _add_path(self, path: str, reason: str, *, contents: bool, deps: bool, given: str | None = None) -> str | None:
        """Export ``path`` with its symlink chain; returns the physical path, or None when a
        skip rule or a dangling symlink left it out."""
        if self._skipped(path):
            self._log("skip", None, path, "", f"skip rule ({reason})")
            return None
        res = self.src.resolve(path)
        for link, target in res.links:
            if self._skipped(link):
                self._log("skip", None, link, "symlink", f"skip rule (on the way to {path}, {reason})")
                return None
            why = reason if link == path else f"symlink on the way to {path} ({reason})"
            self._record_symlink(link, target, why)
        if res.physical is None or res.st is None:
            if res.dangling:
                message = f"{path}: dangling symlink ({res.chain()}; {res.missing} is missing)"
                if self.dangling_symlinks == "error":
                    raise SourcePathError(message + "; dangling_symlinks='error'", path=path, rule="dangling-symlink")
                self._log("warn", None, path, "symlink", message + "; exported as it is")
                return None
            raise SourcePathError(self._missing_message(given or path, res), path=path, rule="missing")
        if self._skipped(res.physical):
            self._log("skip", None, res.physical, "", f"skip rule ({reason})")
            return None
        self._record_node(res.physical, res.st, reason, contents=contents, deps=deps)
        return res.physical

    def _record_ancestors(self, physical: str, reason: str) -> None:
        dest = self.dest_name(physical)
        parts = physical.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            ancestor = "/" + "/".join(parts[:i])
            if self._done.get(ancestor, 0) >= 1:
                continue
            d = self.dest_name(ancestor)
            if not d or not dest.startswith(d + "/"):
                continue
            st = self.src.lstat(ancestor)
            if st is None or not stat.S_ISDIR(st.st_mode):     # pragma: no cover - physical paths
                continue
            self._set_done(ancestor, 1)
            self._put_stat(ancestor, st, f"parent of {physical}")

    def _record_symlink(self, link: str, target: str, reason: str) -> None:
        if self._done.get(link, 0) >= 1:
            return
        st = self.src.lstat(link)
        if st is None:          # pragma: no cover - just resolved
            return
        self._record_ancestors(link, reason)
        self._set_done(link, 1)
        self._put_stat(link, st, reason, target=self._rewrite_target(link, target))

    def _record_node(self, physical: str, st: os.stat_result, reason: str, *, contents: bool, deps: bool) -> None:
        level = 2 if (contents if stat.S_ISDIR(st.st_mode) else deps) else 1
        if self._done.get(physical, 0) >= level:
            return
        first = physical not in self._done
        self._set_done(physical, level)
        self._record_ancestors(physical, reason)
        if first and physical != "/":
            self._put_stat(physical, st, reason)
        if stat.S_ISDIR(st.st_mode):
            if contents:
                self._walking += 1
                try:
                    for name in self.src.listdir(physical):
                        self._add_child(physical.rstrip("/") + "/" + name, f"in {physical} ({reason})"
                                        if not reason.startswith("in ") else reason)
                finally:
                    self._walking -= 1
        elif stat.S_ISREG(st.st_mode) and deps:
            self._file_deps(physical, st)

    def _add_child(self, child: str, reason: str) -> None:
        st = self.src.lstat(child)
        if st is None:
            return
        if self._skipped(child):
            self._log("skip", None, child, _kind(st.st_mode), "skip rule")
            return
        if stat.S_ISLNK(st.st_mode):
            self._tree_step(child, lambda: self._add_path(child, reason, contents=True, deps=True))
        else:
            self._tree_step(child, lambda: self._record_node(child, st, reason, contents=True, deps=True))

    def _tree_step(self, path: str, step: Callable[[], object]) -> None:
        """One entry of a directory walk: its problems are warnings with tree_errors="warn"."""
        if self.tree_errors == "error":
            step()
            return
        try:
            step()
        except (SourcePathError, DependencyError, ELFFileError) as e:
            if e.rule in ("unexportable", "unreadable"):
                raise
            self._log("warn", None, path, "", f"{e}; found in a directory walk, exported without what it needs "
                      "(tree_errors='warn')")

    def _put_stat(self, physical: str, st: os.stat_result, reason: str, *, target: str | None = None) -> None:
        """Record the entry of a physical path from its lstat."""
        mode = st.st_mode
        kind = _kind(mode)
        name = self.dest_name(physical)
        record: dict[str, object] = {"name": name, "mode": mode, "uid": self._uid_map.get(st.st_uid, st.st_uid),
                                     "gid": self._gid_map.get(st.st_gid, st.st_gid), "mtime": st.st_mtime}
        identity: tuple[object, ...]
        if stat.S_ISREG(mode):
            record["data_path"] = self.src.host(physical)
            record["size"] = st.st_size
            if st.st_nlink > 1:
                record.update(dev=st.st_dev, ino=st.st_ino, nlink=st.st_nlink)
            identity = ("file", st.st_dev, st.st_ino)
        elif stat.S_ISLNK(mode):
            tgt = target if target is not None else self.src.readlink(physical)
            record["data"] = os.fsencode(tgt)
            identity = ("symlink", tgt)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            record["rdev_major"], record["rdev_minor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
            identity = (kind, st.st_rdev, stat.S_IMODE(mode))
        elif stat.S_ISDIR(mode):
            identity = ("dir",)
        else:
            identity = (kind, stat.S_IMODE(mode))
        try:
            info = to_fileinfo(record)
        except InvalidInputError as e:
            raise SourcePathError(f"{physical}: cannot be exported as /{name}: {e}", path=physical,
                                  rule="unexportable") from None
        self._put(ExportEntry(name, info, physical, kind, reason, identity))

    def _add_record(self, spec: Mapping[str, object] | Sequence[object] | FileInfo) -> None:
        info = to_fileinfo(spec)
        identity: tuple[object, ...]
        if info.is_file:
            src = info.source
            if isinstance(src, BytesData):
                identity = ("data", hashlib.sha256(src.data).hexdigest())
            else:
                identity = ("data", src.describe() if src is not None else "")
        elif info.is_symlink:
            identity = ("symlink", os.fsdecode(info.target or b""))
        elif info.is_dir:
            identity = ("dir",)
        else:
            identity = (_kind(info.mode), info.rdev_major, info.rdev_minor, info.permissions)
        self._put(ExportEntry(info.name, info, None, _kind(info.mode), "record given to add()", identity,
                              origin="record"))

    # ------------------------------------------------------------------ collisions

    def _put(self, entry: ExportEntry) -> None:
        name = entry.name
        # A non-directory above it: the name needs a directory there.
        parts = name.split("/")[:-1] if name else []
        for i in range(1, len(parts) + 1):
            above = "/".join(parts[:i])
            existing_above = self._entries.get(above)
            if existing_above is not None and existing_above.kind != "dir":
                implied = ExportEntry(above, to_fileinfo(("dir755", above)), None, "dir",
                                      f"directory needed by /{name}", ("dir",), origin="implied")
                if not self._collide(above, existing_above, implied, below_new=False):
                    self._log("keep", above, existing_above.source, existing_above.kind,
                              f"collision: /{name} ({entry.describe()}) not exported")
                    return
                self._set_entry(above, implied)
                self._log("replace", above, None, "dir", f"{implied.reason}; replaces {existing_above.describe()} "
                          "(on_collision)")
        existing = self._entries.get(name)
        if existing is None:
            if entry.kind != "dir" and name and self._below.get(name):
                implied = ExportEntry(name, to_fileinfo(("dir755", name)), None, "dir",
                                      "directory of the entries below it", ("dir",), origin="implied")
                if not self._collide(name, implied, entry, below_new=True):
                    return
            self._set_entry(name, entry)
            self._log("add", name, entry.source, entry.kind, entry.reason)
            return
        if existing.source is not None and existing.source == entry.source:
            return
        if existing.kind == "dir" and entry.kind == "dir":
            return                                  # directories merge; the first one's attributes stay
        if existing.identity == entry.identity and existing.kind == entry.kind:
            return                                  # the same file (hard link), the same symlink target
        if existing.origin == "add_passwd" and entry.origin == "add_passwd":
            self._set_entry(name, entry)
            self._log("replace", name, None, entry.kind, entry.reason)
            return
        below = existing.kind == "dir" and bool(self._below.get(name))
        if self._collide(name, existing, entry, below_new=below):
            self._set_entry(name, entry)
            self._log("replace", name, entry.source, entry.kind,
                      f"{entry.reason}; replaces {existing.describe()} (on_collision)")
        else:
            self._log("keep", name, existing.source, existing.kind,
                      f"collision: {entry.describe()} not exported (on_collision)")

    def _collide(self, name: str, existing: ExportEntry, new: ExportEntry, *, below_new: bool) -> bool:
        """Decide a collision: True to take ``new``, False to keep ``existing``."""
        rule = self._on_collision
        decision = rule(name, existing, new) if callable(rule) else rule
        if decision not in COLLISION_CHOICES:
            raise InvalidInputError(f"on_collision: the function returned {decision!r}; expected one of "
                                    f"{', '.join(COLLISION_CHOICES)}")
        message = (f"/{name}: two different sources for one destination name: {existing.describe()}, "
                   f"then {new.describe()} ({new.reason})")
        if decision == "error":
            raise CollisionError(message + "; on_collision='error' (the default; 'overwrite', 'ignore' or a "
                                 "function decide otherwise)", path="/" + name, rule="collision")
        if decision == "ignore":
            return False
        if below_new:
            raise CollisionError(message + f"; cannot overwrite: entries below /{name} need it to be a directory",
                                 path="/" + name, rule="collision")
        return True

    # ------------------------------------------------------------------ dependencies

    def _read_elf(self, physical: str) -> ELFInfo | None:
        if physical in self._elf_cache:
            return self._elf_cache[physical]
        head = self.src.read_head(physical, 4)
        info = read_elf(self.src.host(physical), physical) if is_elf(head) else None
        self._elf_cache[physical] = info
        return info

    def _file_deps(self, physical: str, st: os.stat_result) -> None:
        head = self.src.read_head(physical, SCRIPT_HEAD_BYTES)
        if is_elf(head):
            try:
                info = self._read_elf(physical)
            except ELFFileError as e:
                if self.bad_elf == "error":
                    raise ELFFileError(f"{e}; bad_elf='warn' exports it without its dependencies",
                                       path=physical, rule=e.rule) from None
                self._log("warn", self.dest_name(physical), physical, "file", f"{e}; exported without dependencies")
                return
            if info is not None and info.loadable:
                self._elf_deps(physical, info)
        elif head[:2] == b"#!" and st.st_mode & 0o111:
            self._script_deps(physical, head)

    def _elf_deps(self, physical: str, info: ELFInfo) -> None:
        if self.arch is None:
            self.arch = info.arch
            self._log("note", None, physical, "", f"the export's architecture is {info.arch} (from this program)")
        elif not self.arch.loads_with(info.arch):
            message = (f"{physical}: {info.arch}, but the export is {self.arch} (foreign architecture)")
            if self.foreign_arch == "error":
                raise ELFFileError(message + "; foreign_arch='warn' exports it without its dependencies",
                                   path=physical, rule="foreign-architecture")
            self._log("warn", self.dest_name(physical), physical, "file", message + "; exported without dependencies")
            return
        if not info.dynamic and info.interp is None:
            return                                  # statically linked
        objects = self.search.closure(info, physical, found_as=physical)
        self._search_notes()
        for obj in objects[1:]:
            if obj.how.startswith("interpreter"):
                reason = f"interpreter of {physical} (PT_INTERP)"
                self._check_interp_moved(physical, obj)
            else:
                needer = obj.loader.found_as if obj.loader is not None else physical
                reason = f"{obj.needed_name} needed by {needer} ({obj.how})"
                if obj.how == "ld.so.conf" and parent_of(obj.found_as) not in self.search.system_dirs(info.arch):
                    self._log("warn", None, obj.found_as, "file",
                              f"found through ld.so.conf only ({reason}): the exported system needs an "
                              "/etc/ld.so.cache that lists it (ldconfig -r DEST), or the library in a system directory")
            self._add_path(obj.found_as, reason, contents=False, deps=False)

    def _check_interp_moved(self, program: str, interp: LoadedObject) -> None:
        if not self._rewrites:
            return
        res = self.src.resolve(interp.found_as)
        moved = [p for p in [link for link, _ in res.links] + [res.physical or ""] if p and self._map(p) != p]
        if moved:
            self._log("warn", None, program, "file",
                      f"its interpreter {interp.found_as} is moved by a rewrite rule ({moved[0]} -> "
                      f"{self._map(moved[0])}): the program will not start where its PT_INTERP says")

    def _script_deps(self, physical: str, head: bytes) -> None:
        line = head[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").strip(" \t\r")
        if not line:
            self._log("warn", None, physical, "file", "a '#!' line without an interpreter")
            return
        words = line.split(None, 1)
        interp = words[0]
        arg = words[1] if len(words) > 1 else ""
        where = interp if interp.startswith("/") else "/" + interp
        res = self.src.resolve(where)
        if res.physical is None:
            raise DependencyError(f"{physical}: its interpreter {interp} (#! line) is not in the source root"
                                  + (f" (through {res.chain()})" if res.links else ""), path=physical,
                                  rule="dangling-interpreter", program=physical, library=interp)
        self._add_path(where, f"#! interpreter of {physical}", contents=False, deps=True)
        if posixpath.basename(interp) == "env" and arg:
            name = next((w for w in arg.split() if not w.startswith("-") and "=" not in w), None)
            if name is None:
                return
            found = self.which(name)
            if found is None:
                self._log("warn", None, physical, "file", f"'#!{line}': {name} is not on PATH ({self.path}) in "
                          "the source root; not exported")
                return
            self._add_path(found, f"run by {interp} for {physical} (#! line)", contents=False, deps=True)


def _choice(what: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInputError(f"{what}: expected one of {', '.join(map(repr, choices))}, found {value!r}")
    return value


def _arch(value: Arch | str | None) -> Arch | None:
    if value is None or isinstance(value, Arch):
        return value
    if isinstance(value, str) and value.lower() in ARCH_NAMES:
        return ARCH_NAMES[value.lower()]
    raise InvalidInputError(f"arch: expected an Arch or one of {', '.join(sorted(ARCH_NAMES))}, found {value!r}")


def _root_path(path: PathArg) -> str:
    """A path of the source root, absolute and clean ('..' kept for the walk to judge)."""
    p = os.fspath(path)
    if not isinstance(p, str):
        raise InvalidInputError(f"{p!r}: a path must be a str")
    if "\0" in p:
        raise InvalidInputError(f"{p!r}: a path may not contain NUL")
    return clean(p)


__all__ = ["Exporter", "ExportEntry", "LogEntry", "DEFAULT_PATH", "ARCH_NAMES"]
