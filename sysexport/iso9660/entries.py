"""Changing the entries of an open ISO writer: names per namespace and hard links (issue 13).

An ISO 9660 image has two directory trees, each a namespace: "iso9660" (the primary tree,
its Rock Ridge records with it) and "joliet".  The writer keeps one tree of entries; an
entry's ``hidden_from`` says in which namespaces it has no record, its ``joliet_name`` what
its Joliet record is called.  A hard link is one more entry of the same link group
(``FileInfo.link_key``): every member's records name one extent, the bytes are stored once,
and the Rock Ridge link count (PX) counts the members the "iso9660" tree shows.

What pycdlib's ``add_hard_link``/``rm_hard_link`` do on a finished image's records is done
here on the entries, before the layout: :func:`add_link` and :func:`remove_link`.  An entry
stays in the writer's tree, and its bytes in the image, while any namespace or an El Torito
entry names it; :func:`remove_link` of its last name takes it out, bytes and all, unless an
El Torito entry names it by path ("reachable from El Torito only").  An entry *added* hidden
from every tree is kept, as xorriso keeps a file hidden by ``-hide`` and ``-hide-joliet``.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING

from ..errors import InternalError, InvalidInputError
from ..extent import Extent
from ..fileinfo import FileInfo, check_namespace, normalize_name
from ..tree import Node
from .layout import K_CL, K_DIR, K_FILE, PLACED_LATER, NodeState, lay_records, record_location

if TYPE_CHECKING:
    from .writer import ISO9660, ISOPlan, RecordPlace

ISO_NAMESPACES = ("iso9660", "joliet")
"""The namespaces of an ISO 9660 image (Rock Ridge names belong to "iso9660")."""
LINK_DEV = (1 << 64) - 1
"""``dev`` given to a file that gets a hard link by :func:`add_link` when it has no (dev,
ino) of its own: no device has this number, so such link groups never meet a host's."""
FAT_LINK_REFUSED = ("FAT cannot hold two names for one cluster chain (fsck.fat reports such files as "
                    "cross-linked); a link lives in the ISO's namespaces, iso9660 and joliet")

_link_inodes = itertools.count(1)


def namespaces_of(where: str, namespace: str | None, allowed: tuple[str, ...] = ISO_NAMESPACES) -> tuple[str, ...]:
    """The namespaces a link call means: ``namespace`` alone, or all of ``allowed`` for None."""
    if namespace is None:
        return allowed
    if namespace == "fat" and "fat" not in allowed:
        raise InvalidInputError(f"{where}: namespace 'fat': {FAT_LINK_REFUSED}")
    return (check_namespace(where, namespace, allowed),)


def boot_index(iso: ISO9660, path: str) -> int | None:
    """The index of the first El Torito entry that names ``path`` (or a path below it)."""
    prefix = path + "/"
    for index, entry in enumerate(iso.boot_entries):
        if entry.path is not None and (entry.path == path or entry.path.startswith(prefix)):
            return index
    return None


def check_removable(iso: ISO9660, node: Node, call: str) -> None:
    """Refuse to remove an El Torito boot image given by ``path`` (or a directory holding
    one): the error names the catalog entry and the path."""
    index = boot_index(iso, node.path)
    if index is not None:
        booted = iso.boot_entries[index].path
        raise InvalidInputError(f"{call}: {node.path}: El Torito catalog entry {index} boots from {booted}; "
                                "removing it would leave the entry without its image (remove_link() keeps it "
                                "reachable from El Torito only)")


def follow_rename(iso: ISO9660, old: str, new: str) -> None:
    """Point the El Torito entries given by a path at or below ``old`` at ``new``."""
    for entry in iso.boot_entries:
        p = entry.path
        if p is not None and (p == old or p.startswith(old + "/")):
            entry.path = new + p[len(old):]


def check_names_free(iso: ISO9660, parent: Node, info: FileInfo, moving: Node, call: str) -> None:
    """Before ``moving`` lands in ``parent`` as ``info``: the names it brings along
    (``ISO9660_shortname``, ``joliet_name``) must not be another child's there, so that the
    clash is refused at rename() and not found later by plan()."""
    from .names import check_iso_override, clash_key
    where = info.name
    mine = (clash_key(check_iso_override(where, info.ISO9660_shortname, info.is_dir, iso.interchange_level))
            if info.ISO9660_shortname is not None else None)
    for sib in (parent.children or {}).values():
        if sib is moving:
            continue
        other = sib.info
        if mine is not None and other.ISO9660_shortname is not None and clash_key(check_iso_override(
                other.name, other.ISO9660_shortname, other.is_dir, iso.interchange_level)) == mine:
            raise InvalidInputError(f"{call}: {where}: its ISO9660_shortname {info.ISO9660_shortname!r} is "
                                    f"{other.name}'s too (one directory, one name)")
        if info.joliet_name is not None and other.joliet_name == info.joliet_name:
            raise InvalidInputError(f"{call}: {where}: its joliet_name {info.joliet_name!r} is {other.name}'s too "
                                    "(one directory, one name)")


def _linkable(iso: ISO9660, path: str, call: str) -> Node:
    """The node of a regular file of ``iso`` (InvalidInputError naming the rule otherwise)."""
    node = iso.tree.node_of(path, call)
    if not node.info.is_file:
        kind = "a directory" if node.info.is_dir else f"mode {node.info.mode:#o}"
        raise InvalidInputError(f"{call}: {node.path} is {kind}; only a regular file's bytes can have "
                                "several names (hard links of directories are not allowed)")
    return node


def _with_link_key(node: Node) -> tuple[int, int]:
    """The link group key of ``node``'s file, given one (LINK_DEV, a fresh number) if it
    has none; the node gets a copy of its FileInfo (the caller's record is not changed)."""
    old = node.info
    key = old.link_key
    if key is None:
        new = dataclasses.replace(old, dev=LINK_DEV, ino=next(_link_inodes))
        if old._extra is not None:
            new._extra = dict(old._extra)
        node.info = new
        key = (LINK_DEV, new.ino or 0)
    return key


def add_link(iso: ISO9660, existing_path: str, new_path: str, namespace: str | None) -> Node:
    """Give the file at ``existing_path`` the name ``new_path`` in ``namespace`` (None:
    both trees): a new entry of its link group, or, when ``new_path`` already is a member
    hidden from that namespace, that member shown there.  Returns the node named."""
    call = "add_link()"
    wanted = namespaces_of(f"{call} {new_path}", namespace)
    node = _linkable(iso, existing_path, call)
    name = normalize_name(new_path)
    if not name:
        raise InvalidInputError(f"{call}: the root directory cannot be a link")
    key = _with_link_key(node)
    other = iso.tree.find(name)
    if other is not None:
        if other.info.link_key != key:
            raise InvalidInputError(f"{call}: {name} already exists (another entry); one path names one entry "
                                    "in every namespace: remove it first, or give the link another path")
        shown = [ns for ns in wanted if ns in other.info.hidden_from]
        if not shown:
            raise InvalidInputError(f"{call}: {name} already names {node.path}'s bytes in "
                                    f"{', '.join(wanted)}")
        set_hidden(other, other.info.hidden_from - set(shown))
        return other
    hidden = frozenset(ns for ns in ISO_NAMESPACES if ns not in wanted) | (node.info.hidden_from & {"fat"})
    info = dataclasses.replace(node.info, name=name, hidden_from=hidden, joliet_name=None,
                               ISO9660_shortname=None, implicit=False)
    if node.info._extra is not None:
        info._extra = dict(node.info._extra)
    later = isinstance(node.w, NodeState) and node.w.placed_later
    iso.check_entry(info, later)
    new = iso.tree.add(info)
    new.w = PLACED_LATER if later else None
    return new


def remove_link(iso: ISO9660, path: str, namespace: str | None) -> bool:
    """Drop the name ``path`` from ``namespace`` (None: both trees).  When no tree names
    the entry any more it goes, unless an El Torito entry names it (it then stays,
    reachable from El Torito only).  Returns True when the entry left the tree."""
    call = "remove_link()"
    wanted = namespaces_of(f"{call} {path}", namespace)
    node = _linkable(iso, path, call)
    missing = [ns for ns in wanted if ns in node.info.hidden_from]
    if namespace is not None and missing:
        raise InvalidInputError(f"{call}: {node.path} has no name in {namespace} (hidden_from "
                                f"{sorted(node.info.hidden_from)})")
    hidden = node.info.hidden_from | set(wanted)
    if all(ns in hidden for ns in ISO_NAMESPACES) and boot_index(iso, node.path) is None:
        iso.tree.remove(node.path, call)
        return True
    set_hidden(node, hidden)
    return False


def set_hidden(node: Node, hidden: frozenset[str] | set[str]) -> None:
    """Give ``node`` a copy of its FileInfo with ``hidden_from`` = ``hidden``."""
    old: FileInfo = node.info
    node.info = dataclasses.replace(old, hidden_from=frozenset(hidden))
    if old._extra is not None:
        node.info._extra = dict(old._extra)


def set_placed_later(node: Node, later: bool) -> None:
    """Mark (or unmark) ``node`` as a file a coordinator places (the hybrid, when a file
    leaves or joins the ESP)."""
    node.w = PLACED_LATER if later else None


def record_places(iso: ISO9660, plan: ISOPlan, node: Node, namespace: str) -> list[RecordPlace]:
    """The directory records that name ``node`` in ``namespace`` of the planned image
    (none when it is hidden there, or has no such tree): their device offsets and lengths
    as the directory was laid out, and the extents they point at."""
    from .writer import RecordPlace
    parent = node.parent
    if parent is None or not isinstance(parent.w, NodeState) or namespace in node.info.hidden_from:
        return []
    d = parent.w.iso_dir if namespace == "iso9660" else parent.w.joliet_dir
    if d is None or d.extent is None:
        return []
    from .hierarchy import records_of
    version = iso.rock_ridge or ""
    out = []
    records = records_of(d, plan.rr_mod is not None)
    lay_records(records, d, plan.rr_mod, version, iso.default_time)     # positions as size_directory() found
    for rec in records:
        if rec.info is not node.info or rec.ident in (b"\x00", b"\x01"):
            continue
        unplaced = rec.kind == K_FILE and rec.payload is not None and rec.payload.offset < 0
        if unplaced:                        # placed later, not yet placed: no extent to name
            lba, length = 0, 0
        elif rec.kind in (K_DIR, K_FILE):
            lba, length = record_location(rec)
        else:
            lba, length = (rec.target.lba if rec.kind == K_CL and rec.target is not None else 0), 0
        extent = Extent(lba * 2048, length) if (length or rec.kind == K_DIR) else None
        ident = rec.ident.decode("utf-16-be" if namespace == "joliet" else "ascii", "replace")
        out.append(RecordPlace(namespace, ident, d.extent.device_offset + rec.pos, rec.length, extent))
    if not out and node.info.is_file:
        raise InternalError(f"{node.path}: no record in the {namespace} directory {d.info.name or '/'}")
    return out
