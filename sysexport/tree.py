"""The directory tree every writer builds from ``add()`` calls.

Paths are '/'-separated and relative to the root.  Directories implied by a path are
created on the way and behave like explicit ones; an explicit entry added later fills in
their attributes.  Writers hang their own per-entry state on ``Node.w``.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterator

from .errors import InvalidInputError
from .fileinfo import FileInfo, implied_directory


class Node:
    """One entry of the tree: its FileInfo, its parent, and (for directories) children."""

    __slots__ = ("info", "parent", "children", "w")

    def __init__(self, info: FileInfo, parent: "Node | None") -> None:
        self.info = info
        self.parent = parent
        self.children: dict[str, Node] | None = {} if info.is_dir else None
        self.w: Any = None

    @property
    def name(self) -> str:
        return self.info.basename

    @property
    def path(self) -> str:
        return self.info.name

    @property
    def depth(self) -> int:
        return 0 if not self.info.name else self.info.name.count("/") + 1

    def sorted_children(self) -> list["Node"]:
        return [self.children[k] for k in sorted(self.children)] if self.children else []

    def __repr__(self) -> str:
        return f"Node({self.info.name!r}, mode={self.info.mode:#o})"


class Tree:
    """A rooted tree of :class:`Node`, filled by :meth:`add`.

    ``check_child(parent, info)`` lets a writer refuse a name (e.g. a FAT case-only
    duplicate) before the node is inserted; it raises InvalidInputError.
    """

    def __init__(self, check_child: Callable[[Node, FileInfo], None] | None = None) -> None:
        root = implied_directory("")
        self.root = Node(root, None)
        self._check_child = check_child
        self.count = 1
        self._last_parent: tuple[str, Node] | None = None

    def find(self, name: str) -> Node | None:
        node = self.root
        if not name:
            return node
        for part in name.split("/"):
            if node.children is None:
                return None
            node = node.children.get(part)
            if node is None:
                return None
        return node

    def add(self, info: FileInfo) -> Node:
        """Insert ``info``; returns its node.  Raises InvalidInputError on a conflict."""
        where = info.name or "/"
        if not info.name:
            # The root may be given again (several add_tree() calls): its attributes follow
            # the last explicit entry.
            info.implicit = False
            self.root.info = info
            return self.root
        parent_name, _, base = info.name.rpartition("/")
        # Names shared by several trees (a hybrid's ISO and ESP) are stored once.
        base = sys.intern(base)
        last = self._last_parent
        if last is not None and last[0] == parent_name:
            node = last[1]              # entries usually come directory by directory
        else:
            node = self._parent_node(parent_name, where)
            self._last_parent = (parent_name, node)
        existing = node.children.get(base)
        if existing is not None:
            if existing.info.is_dir and info.is_dir:
                # A directory given again (overlaid trees) merges: the last attributes win.
                existing.info = info
                return existing
            if existing.info.is_dir and not info.is_dir:
                raise InvalidInputError(f"{where}: a directory already exists there; "
                                        f"cannot replace it with mode {info.mode:#o}")
            raise InvalidInputError(f"{where}: this path was added twice")
        if self._check_child:
            self._check_child(node, info)
        new = node.children[base] = Node(info, node)
        self.count += 1
        return new

    def _parent_node(self, parent_name: str, where: str) -> Node:
        """The directory node of ``parent_name``, implied directories created on the way."""
        node = self.root
        if not parent_name:
            return node
        parts = parent_name.split("/")
        for i, part in enumerate(parts):
            child = node.children.get(part)
            if child is None:
                sub = implied_directory("/".join(parts[:i + 1]))
                if self._check_child:
                    self._check_child(node, sub)
                child = node.children[sys.intern(part)] = Node(sub, node)
                self.count += 1
            elif child.children is None:
                raise InvalidInputError(
                    f"{where}: parent {child.info.name} is not a directory (mode {child.info.mode:#o})")
            node = child
        return node

    def walk(self) -> Iterator[Node]:
        """Every node, parents before children, siblings sorted by name."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            if node.children:
                stack.extend(reversed(node.sorted_children()))

    def directories_breadth_first(self) -> list[Node]:
        """Directories level by level, each level in sorted order (path-table order)."""
        out = [self.root]
        i = 0
        while i < len(out):
            out.extend(c for c in out[i].sorted_children() if c.children is not None)
            i += 1
        return out
