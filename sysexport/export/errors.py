"""The exporter's errors: each a :class:`~sysexport.errors.SysExportError` naming the path
and the rule that was broken (docs/guide.md, "Exporting a system").

All of them are :class:`ExportError`, an :class:`~sysexport.errors.InvalidInputError`: the
source root or the calls asked for something the export cannot do.  ``path`` is the path
concerned (in the source root, or the destination name), ``rule`` a short name of the rule
(``"missing"``, ``"escape"``, ``"loop"``, ``"dangling-library"``, ``"collision"``...).
"""
from __future__ import annotations

from ..errors import InvalidInputError


class ExportError(InvalidInputError):
    """Base class of the exporter's errors."""

    def __init__(self, message: str, *, path: str | None = None, rule: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.rule = rule


class SourcePathError(ExportError):
    """A path of the source root cannot be exported: it is missing (``rule="missing"``),
    climbs above the root with ``..`` (``"escape"``), runs into a symlink loop (``"loop"``),
    goes through something that is not a directory (``"not-a-directory"``), or cannot be
    read (``"unreadable"``)."""


class DependencyError(ExportError):
    """A program's interpreter or library is not in the source root (``rule`` is
    ``"dangling-library"`` or ``"dangling-interpreter"``).  ``program`` is the program
    that needs it, ``library`` the DT_NEEDED name or interpreter path."""

    def __init__(self, message: str, *, path: str | None = None, rule: str = "", program: str = "",
                 library: str = "") -> None:
        super().__init__(message, path=path, rule=rule)
        self.program = program
        self.library = library


class ELFFileError(ExportError):
    """An ELF file that cannot be read (``rule="unreadable-elf"``) or is built for another
    machine than the export (``rule="foreign-architecture"``).  The exporter's
    ``bad_elf`` and ``foreign_arch`` options turn them into warnings."""


class CollisionError(ExportError):
    """Two different sources for one destination name (``rule="collision"``), with
    ``on_collision="error"`` (the default) or a callable that said so."""


class DestinationError(ExportError):
    """The destination cannot take the export: a directory destination that is not empty
    (``rule="not-empty"``) or not a directory (``"not-a-directory"``), an output kind that
    cannot be told from the name (``"unknown-format"``)."""


__all__ = ["ExportError", "SourcePathError", "DependencyError", "ELFFileError", "CollisionError",
           "DestinationError"]
