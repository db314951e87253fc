"""What a streaming newc writer remembers of the names it wrote: bounded, not per archive.

A streaming archive is written in the order entries come, so the writer cannot sort or
look back; it must still write every directory before what is in it (the kernel's
``init/initramfs.c`` creates each name as it comes, and a file whose directory does not
exist yet is dropped) and must not write one name twice by mistake.  It keeps:

* the directories on the current path (:class:`Namespace`'s open stack), each with the
  names written in it: a name added twice there is refused, a parent that is a file
  refused, as the in-memory tree refused them;
* the names of directories left since, while they number at most ``remember_names`` in
  all (the oldest closed directory is forgotten first): an archive written directory by
  directory, as :meth:`CPIO.add_tree` and most callers write one, has every duplicate found;
* the set of every directory written (one string per directory, none per file), so that a
  directory entered again is not written again as an implied one (which would reset its
  mode and owner in the kernel).

Hard links (:class:`LinkTable`): the first name of a file carries its data and is
remembered with the number of names still to come (its ``nlink`` less one); each later
name is written with size 0 and the same inode number, and the file is forgotten after its
last name.  The table holds at most ``capacity`` files; when a new one would exceed it, the
oldest is forgotten.  A later name of a forgotten file (or a name past the file's ``nlink``)
is written as a separate copy: its own inode number and its data, later names linking to
that copy.  More bytes, never wrong bytes: GNU cpio, bsdtar and the kernel extract it as a
file with its content (tests/test_cpio_stream.py).
"""
from __future__ import annotations

from typing import NamedTuple

from ..errors import InvalidInputError

REMEMBER_NAMES = 32_768
"""Names of closed directories kept for the duplicate check (about 3 MiB at most)."""
LINK_TABLE_FILES = 16_384
"""Hard-linked files whose later names are still awaited, at most (about 2 MiB)."""


class Namespace:
    """The open directories (root first) with the names written in each, and the
    directories written so far.  ``""`` is the root; names are normalised ('/'-separated)."""

    def __init__(self, remember_names: int = REMEMBER_NAMES) -> None:
        self.remember_names = remember_names
        self.written: set[str] = set()
        self.stack: list[tuple[str, dict[str, bool]]] = [("", {})]
        self.closed: dict[str, dict[str, bool]] = {}
        self.closed_names = 0
        self.forgotten_dirs = 0

    def enter(self, parent: str, where: str) -> list[str]:
        """Make ``parent`` the innermost open directory; returns the directories that must
        be written first (implied: never written), outermost first.  InvalidInputError when
        a directory on the way is known as something else."""
        stack = self.stack
        if stack[-1][0] == parent:
            return []
        while len(stack) > 1 and stack[-1][0] != parent and not parent.startswith(stack[-1][0] + "/"):
            self._close(*stack.pop())
        base = stack[-1][0]
        if base == parent:
            return []
        rest = parent[len(base) + 1:] if base else parent
        implied: list[str] = []
        cur = base
        for part in rest.split("/"):
            names = stack[-1][1]
            child = f"{cur}/{part}" if cur else part
            kind = names.get(part)
            if kind is False:
                raise InvalidInputError(f"{where}: parent {child} is not a directory (it was added as another type)")
            if kind is None:
                names[part] = True
                if child not in self.written:
                    implied.append(child)
                    self.written.add(child)
            kept = self.closed.pop(child, None)
            if kept is not None:
                self.closed_names -= len(kept)
            stack.append((child, kept if kept is not None else {}))
            cur = child
        return implied

    def check(self, base: str, is_dir: bool, where: str) -> None:
        """Refuse ``base`` in the innermost open directory if it is there already (a
        directory given again is allowed: its entry is written again, its attributes win)."""
        kind = self.stack[-1][1].get(base)
        if kind is None:
            return
        if kind and is_dir:
            return
        if kind:
            raise InvalidInputError(f"{where}: a directory already exists there; cannot replace it with a "
                                    "file of another type")
        raise InvalidInputError(f"{where}: this path was added twice")

    def record(self, name: str, base: str, is_dir: bool) -> None:
        """``base`` (full name ``name``) is written in the innermost open directory."""
        names = self.stack[-1][1]
        if base not in names or is_dir:
            names[base] = is_dir
        if is_dir:
            self.written.add(name)

    def _close(self, name: str, names: dict[str, bool]) -> None:
        if not names:
            return
        self.closed[name] = names
        self.closed_names += len(names)
        while self.closed_names > self.remember_names and self.closed:
            oldest = next(iter(self.closed))
            self.closed_names -= len(self.closed.pop(oldest))
            self.forgotten_dirs += 1

    def held_names(self) -> int:
        """Names held now (open and remembered directories), for tests of the bound."""
        return self.closed_names + sum(len(n) for _, n in self.stack)


class LinkGroup(NamedTuple):
    """What the first name of a hard-linked file left for its later names."""

    ino: int
    nlink: int
    first: str
    mode: int
    size: int


class LinkTable:
    """Hard-linked files whose later names are still to come: (dev, ino) -> [group,
    names still awaited], at most ``capacity`` files (the oldest forgotten first)."""

    def __init__(self, capacity: int = LINK_TABLE_FILES) -> None:
        self.capacity = capacity
        self.groups: dict[tuple[int, int], list[object]] = {}
        self.forgotten = 0

    def get(self, key: tuple[int, int]) -> LinkGroup | None:
        slot = self.groups.get(key)
        return None if slot is None else slot[0]  # type: ignore[return-value]

    def add(self, key: tuple[int, int], group: LinkGroup) -> None:
        """The first name of a file with ``group.nlink`` names was written."""
        if self.capacity <= 0:
            self.forgotten += 1
            return
        while len(self.groups) >= self.capacity:
            del self.groups[next(iter(self.groups))]
            self.forgotten += 1
        self.groups[key] = [group, group.nlink - 1]

    def seen(self, key: tuple[int, int]) -> None:
        """One more name of ``key`` was written; forget the file after its last name."""
        slot = self.groups[key]
        left = slot[1] - 1  # type: ignore[operator]
        if left <= 0:
            del self.groups[key]
        else:
            slot[1] = left


__all__ = ["Namespace", "LinkTable", "LinkGroup", "REMEMBER_NAMES", "LINK_TABLE_FILES"]
