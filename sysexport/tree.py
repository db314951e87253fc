"""The directory tree every writer builds from ``add()`` calls.

Paths are '/'-separated and relative to the root.  Directories implied by a path are
created on the way and behave like explicit ones; an explicit entry added later fills in
their attributes.  Writers hang their own per-entry state on ``Node.w`` and say what that
state is by their tree's type argument: in a ``Tree[_Dir | None]``, ``node.w`` is a ``_Dir``
or None (docs/architecture.md, "Types").
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterator

from .errors import InvalidInputError
from .fileinfo import FileInfo, implied_directory

if TYPE_CHECKING:
    from typing_extensions import TypeVar
    S = TypeVar("S", default=Any)
else:
    from typing import TypeVar
    S = TypeVar("S")
# S: the owning writer's per-node state, the type of ``Node.w``.  It must admit None, what
# every node starts with (``Tree[NodeState | None]``).  A plain ``Tree`` or ``Node``
# (PEP 696 default, Any) leaves ``w`` unchecked, as before S existed.


class Node(Generic[S]):
    """One entry of the tree: its FileInfo, its parent, (for directories) its children, and
    ``w``, the owning writer's state of it (None until the writer sets it)."""

    __slots__ = ("info", "parent", "children", "w")

    def __init__(self, info: FileInfo, parent: Node[S] | None) -> None:
        self.info = info
        self.parent = parent
        self.children: dict[str, Node[S]] | None = {} if info.is_dir else None
        # None is an S: a tree's type argument admits None (see S).  No cast: this runs
        # once per entry, 100,000 times for a large tree.
        self.w: S = None  # type: ignore[assignment]

    @property
    def name(self) -> str:
        return self.info.basename

    @property
    def path(self) -> str:
        return self.info.name

    @property
    def depth(self) -> int:
        return 0 if not self.info.name else self.info.name.count("/") + 1

    def sorted_children(self) -> list[Node[S]]:
        children = self.children
        return [children[k] for k in sorted(children)] if children else []

    def __repr__(self) -> str:
        return f"Node({self.info.name!r}, mode={self.info.mode:#o})"


class Tree(Generic[S]):
    """A rooted tree of :class:`Node`, filled by :meth:`add`.

    ``check_child(parent, info)`` lets a writer refuse a name (e.g. a FAT case-only
    duplicate) before the node is inserted; it raises InvalidInputError.  The type argument
    is the writer's per-node state, None included: ``Tree[NodeState | None]``.
    """

    def __init__(self, check_child: Callable[[Node[S], FileInfo], None] | None = None) -> None:
        root = implied_directory("")
        self.root: Node[S] = Node(root, None)
        self._root_children: dict[str, Node[S]] = {}
        self.root.children = self._root_children
        self._check_child = check_child
        self.count = 1
        self._last_parent: tuple[str, Node[S], dict[str, Node[S]]] | None = None

    def find(self, name: str) -> Node[S] | None:
        """The node of ``name`` ('/'-separated, normalised; '' is the root), or None."""
        node = self.root
        if not name:
            return node
        for part in name.split("/"):
            if node.children is None:
                return None
            child = node.children.get(part)
            if child is None:
                return None
            node = child
        return node

    def add(self, info: FileInfo) -> Node[S]:
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
            _, node, children = last    # entries usually come directory by directory
        else:
            node, children = self._parent_node(parent_name, where)
            self._last_parent = (parent_name, node, children)
        existing = children.get(base)
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
        new = children[base] = Node(info, node)
        self.count += 1
        return new

    def _parent_node(self, parent_name: str, where: str) -> tuple[Node[S], dict[str, Node[S]]]:
        """The directory node of ``parent_name`` and its children, implied directories
        created on the way."""
        node = self.root
        children = self._root_children
        if not parent_name:
            return node, children
        parts = parent_name.split("/")
        for i, part in enumerate(parts):
            child = children.get(part)
            if child is None:
                sub = implied_directory("/".join(parts[:i + 1]))
                if self._check_child:
                    self._check_child(node, sub)
                child = children[sys.intern(part)] = Node(sub, node)
                self.count += 1
            grandchildren = child.children
            if grandchildren is None:
                raise InvalidInputError(
                    f"{where}: parent {child.info.name} is not a directory (mode {child.info.mode:#o})")
            node, children = child, grandchildren
        return node, children

    def walk(self) -> Iterator[Node[S]]:
        """Every node, parents before children, siblings sorted by name."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            if node.children:
                stack.extend(reversed(node.sorted_children()))

    def directories_breadth_first(self) -> list[Node[S]]:
        """Directories level by level, each level in sorted order (path-table order)."""
        out = [self.root]
        i = 0
        while i < len(out):
            out.extend(c for c in out[i].sorted_children() if c.children is not None)
            i += 1
        return out
