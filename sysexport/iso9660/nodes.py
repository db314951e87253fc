"""The ISO writer's state of every entry, made afresh at each plan() (:func:`prepare_nodes`)."""
from __future__ import annotations

import stat

from ..errors import InvalidInputError
from ..tree import Node, Tree
from .layout import NodeState, Payload


def prepare_nodes(tree: Tree, rock_ridge: str | None) -> tuple[list[Payload], int]:
    """Fresh per-node state of ``tree``: payloads (one per hard-link group), inode numbers, link counts.

    A regular file's state (``Node.w``) is its payload, shared by its hard links; every
    other node gets a :class:`NodeState`.  A payload's link count (Rock Ridge PX) counts
    the names the ISO 9660 tree shows.  A group no tree names (every member
    ``hidden_from`` "iso9660" and "joliet") is still stored, as xorriso stores a file
    hidden by ``-hide`` and ``-hide-joliet``: an El Torito entry may name it, and
    lookup() tells where it is.  Nodes are numbered parents first, siblings sorted by
    name (:meth:`Tree.walk`'s order); a file keeps its number only where it is recorded
    (the PX serial number of RRIP 1.12), which saves an int object a file otherwise.
    Returns the payloads in that order and the next free inode number."""
    payloads: list[Payload] = []
    by_key: dict[tuple[int, int], Payload] = {}
    serials = rock_ridge == "1.12"     # only RRIP 1.12's PX records a file serial number
    inode = 1
    dirs: list[tuple[Node, NodeState]] = []
    stack = [tree.root]
    while stack:
        node = stack.pop()
        old = node.w
        later = old.placed_later if old is not None else False
        info = node.info
        children = node.children
        if info.mode & 0o170000 == stat.S_IFREG:        # info.is_file, inlined (100,000 times)
            key = (info.dev, info.ino) if info.ino is not None and info.dev is not None else None
            p = by_key.get(key) if key is not None else None
            if not later and info._extra is not None:
                later = bool(info.extra_value("placed_later"))
            if p is None:
                p = Payload(info, info.size, None, later and info.size > 0, inode if serials else 0)
                inode += 1
                payloads.append(p)
                if key is not None:
                    by_key[key] = p
            elif info.size != p.size_bytes:
                raise InvalidInputError(f"{info.name}: hard link of {p.info.name} with another size "
                                        f"({info.size} != {p.size_bytes})")
            elif later and info.size > 0:
                p.placed_later = True           # a link of a file a coordinator places
            if "iso9660" not in info.hidden_from:
                p.nlink += 1
            node.w = p
        else:
            st = node.w = NodeState(inode=inode, placed_later=later)
            inode += 1
            if children is not None:
                dirs.append((node, st))
        if children:
            stack.extend([children[k] for k in sorted(children, reverse=True)])
    for node, st in dirs:
        children = node.children or {}
        st.nlink = 2 + sum(1 for c in children.values()
                           if c.children is not None and "iso9660" not in c.info.hidden_from)
    return payloads, inode
