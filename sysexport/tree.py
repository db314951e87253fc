"""The directory tree every writer builds from ``add()`` calls.

Paths are '/'-separated and relative to the root.  Directories implied by a path are
created on the way and behave like explicit ones; an explicit entry added later fills in
their attributes.  :meth:`Tree.remove` and :meth:`Tree.rename` take an entry (with its
subtree) out or move it while the owning writer is open (issue 13).  Writers hang their
own per-entry state on ``Node.w`` and say what that state is by their tree's type
argument: in a ``Tree[_Dir | None]``, ``node.w`` is a ``_Dir`` or None
(docs/architecture.md, "Types").
"""
from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterator

from .errors import InvalidInputError
from .fileinfo import FileInfo, implied_directory, normalize_name

if TYPE_CHECKING:
    from typing_extensions import TypeVar
    S = TypeVar("S", default=Any)
else:
    from typing import TypeVar
    S = TypeVar("S")
# S: the owning writer's per-node state, the type of ``Node.w``.  It must admit None, what
# every node starts with (``Tree[NodeState | None]``).  A plain ``Tree`` or ``Node``
# (PEP 696 default, Any) leaves ``w`` unchecked, as before S existed.


_new = object.__new__


class Node(Generic[S]):
    """One entry of the tree: its FileInfo, its parent, (for directories) its children, and
    ``w``, the owning writer's state of it (None until the writer sets it)."""

    __slots__ = ("info", "parent", "children", "w")

    def __init__(self, info: FileInfo, parent: Node[S] | None) -> None:
        self.info = info
        self.parent = parent
        self.children: dict[str, Node[S]] | None = {} if info.mode & 0o170000 == 0o040000 else None  # is_dir
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
        name = info.name
        if not name:
            # The root may be given again (several add_tree() calls): its attributes follow
            # the last explicit entry.
            if info.implicit:
                info.implicit = False
            self.root.info = info
            return self.root
        # The key is the record's basename, interned: one string for every tree holding
        # it (a hybrid's ISO and ESP).  The parent's name is what precedes it.
        base = info.basename
        cut = len(name) - len(base) - 1
        parent_name = name[:cut] if cut > 0 else ""
        last = self._last_parent
        if last is not None and last[0] == parent_name:
            _, node, children = last    # entries usually come directory by directory
        else:
            node, children = self._parent_node(parent_name, name)
            self._last_parent = (parent_name, node, children)
        existing = children.get(base)
        if existing is not None:
            return self._again(existing, info)
        if self._check_child is not None:
            self._check_child(node, info)
        # Node(info, node), without the constructor's call through the type (a third of
        # this method's cost; twice for every file of a hybrid).
        new: Node[S] = _new(Node)
        new.info = info
        new.parent = node
        new.children = {} if info.mode & 0o170000 == 0o040000 else None     # is_dir
        new.w = None  # type: ignore[assignment]
        children[base] = new
        self.count += 1
        return new

    @staticmethod
    def _again(existing: Node[S], info: FileInfo) -> Node[S]:
        """A path added a second time: a directory given again (overlaid trees) merges, the
        last attributes winning; anything else is an InvalidInputError."""
        where = info.name
        if existing.info.is_dir and info.is_dir:
            existing.info = info
            return existing
        if existing.info.is_dir and not info.is_dir:
            raise InvalidInputError(f"{where}: a directory already exists there; "
                                    f"cannot replace it with mode {info.mode:#o}")
        raise InvalidInputError(f"{where}: this path was added twice")

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

    # --- remove and rename (issue 13) ----------------------------------------------------------
    def node_of(self, path: object, call: str) -> Node[S]:
        """The node of ``path`` (any form :func:`normalize_name` takes), not the root;
        InvalidInputError naming the call and the path when it is not in the tree."""
        name = normalize_name(path)
        if not name:
            raise InvalidInputError(f"{call}: the root directory cannot be removed, renamed or linked")
        node = self.find(name)
        if node is None:
            raise InvalidInputError(f"{call}: {name} is not in the image")
        return node

    def remove(self, path: object, call: str = "remove()") -> Node[S]:
        """Take the entry at ``path`` out of the tree, and with a directory everything
        under it; returns its (detached) node.  InvalidInputError when it is missing."""
        node = self.node_of(path, call)
        parent = node.parent
        if parent is None or parent.children is None:
            raise InvalidInputError(f"{call}: {node.path} has no parent directory")
        del parent.children[node.name]
        self.count -= sum(1 for _ in subtree(node))
        node.parent = None
        self._last_parent = None
        return node

    def check_rename(self, old: object, new: object, call: str = "rename()") -> tuple[Node[S], Node[S], str]:
        """Check that ``old`` can move to ``new`` and change nothing: ``old`` exists and is
        not the root, ``new``'s parent exists and is a directory, ``new`` does not exist,
        and a directory does not move below itself.  Returns (node, new parent, new name)."""
        node = self.node_of(old, call)
        new_name = normalize_name(new)
        if not new_name:
            raise InvalidInputError(f"{call}: {node.path} -> /: the root already exists")
        if self.find(new_name) is not None:
            raise InvalidInputError(f"{call}: {node.path} -> {new_name}: {new_name} already exists "
                                    "(remove it first)")
        parent_name = new_name.rpartition("/")[0]
        parent = self.find(parent_name)
        if parent is None:
            raise InvalidInputError(f"{call}: {node.path} -> {new_name}: the parent directory {parent_name} "
                                    "does not exist (add it first)")
        if parent.children is None:
            raise InvalidInputError(f"{call}: {node.path} -> {new_name}: {parent_name} is not a directory "
                                    f"(mode {parent.info.mode:#o})")
        if node.children is not None and (new_name + "/").startswith(node.path + "/"):
            raise InvalidInputError(f"{call}: {node.path} -> {new_name}: a directory cannot move below itself")
        return node, parent, new_name

    def rename(self, old: object, new: object, call: str = "rename()",
               check: Callable[[Node[S], FileInfo], None] | None = None) -> Node[S]:
        """Move the entry at ``old`` (with its subtree) to ``new``, every attribute kept.

        Each moved entry gets a copy of its FileInfo with the new name (the caller's
        records, and those another writer holds, are not changed).  When the basename
        changes, the names given for the old one (``ISO9660_shortname``, ``FAT_shortname``,
        ``joliet_name``) are dropped: each namespace derives its name from the new one.
        ``check(new parent, new info)`` (a writer's name rule) runs before anything moves.
        """
        node, parent, new_name = self.check_rename(old, new, call)
        old_path = node.path
        base = new_name.rpartition("/")[2]
        info = node.info
        changes: dict[str, object] = {"name": new_name}
        if base != info.basename:
            changes.update(ISO9660_shortname=None, FAT_shortname=None, joliet_name=None)
        new_info = _copy_info(info, changes)
        if check is not None:
            check(parent, new_info)     # the writer's name rules (the tree's check_child is for add())
        old_parent = node.parent
        if old_parent is None or old_parent.children is None or parent.children is None:
            raise InvalidInputError(f"{call}: {old_path} has no parent directory")
        del old_parent.children[node.name]
        node.info = new_info
        node.parent = parent
        parent.children[sys.intern(base)] = node
        prefix = len(old_path)
        for sub in subtree(node):
            if sub is not node:
                sub.info = _copy_info(sub.info, {"name": new_name + sub.info.name[prefix:]})
        self._last_parent = None
        return node


def subtree(node: Node[Any]) -> Iterator[Node[Any]]:
    """``node`` and every node below it."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if n.children:
            stack.extend(n.children.values())


def _copy_info(info: FileInfo, changes: dict[str, object]) -> FileInfo:
    """A copy of ``info`` with ``changes``; writer-specific keys copied, not shared."""
    new = dataclasses.replace(info, **changes)  # type: ignore[arg-type]
    if info._extra is not None:
        new._extra = dict(info._extra)
    return new
