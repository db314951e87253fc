"""The exporter: a minimal system from a source root, with its dependencies (Sys::Export's core).

* :mod:`.exporter`: :class:`Exporter` (add, add_find, skip, rewrite_path, rewrite_user,
  rewrite_group, add_passwd, which, finish), its :class:`LogEntry` and :class:`ExportEntry`;
* :mod:`.root`: paths resolved inside the source root as chroot would;
* :mod:`.elf`: what is read from ELF files (pyelftools): interpreter, DT_NEEDED, RPATH,
  RUNPATH, SONAME, architecture;
* :mod:`.ldpath`: the loader's search rules (glibc's order), the program's closure;
* :mod:`.userdb`: the source root's /etc/passwd and /etc/group, the minimal files;
* :mod:`.dirdest`: :class:`DirectoryWriter`, a directory as the destination;
* :mod:`.cli`: ``sysexport export``;
* :mod:`.errors`: :class:`ExportError` and its subclasses.

The user's view is in docs/guide.md, "Exporting a system".
"""
from __future__ import annotations

from .dirdest import DirectoryPlan, DirectoryWriter
from .elf import Arch, ELFInfo
from .errors import CollisionError, DependencyError, DestinationError, ELFFileError, ExportError, SourcePathError
from .exporter import ExportEntry, Exporter, LogEntry
from .ldpath import LoadedObject

__all__ = ["Exporter", "ExportEntry", "LogEntry", "DirectoryWriter", "DirectoryPlan", "Arch", "ELFInfo",
           "LoadedObject", "ExportError", "SourcePathError", "DependencyError", "ELFFileError", "CollisionError",
           "DestinationError"]
