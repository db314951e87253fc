"""The two directory hierarchies of an ISO 9660 image: ISO 9660 (with Rock Ridge) and Joliet.

Both are built from the writer's tree into :class:`~.layout.DirOut` values in path table
order (ECMA-119 6.9.1), in one pass per directory: its children named (both name rules
are in :mod:`.names`) and put in record order, their identifiers kept with the directory.
Records are not kept: :mod:`.dirbytes` sizes and builds them from that, and
:func:`records_of` makes them one by one for whoever needs them (lookup()).

Deep directories.  ECMA-119 6.8.2.1 allows eight levels (the root is the first):

* With Rock Ridge, by default, deeper directories are written in place, as xorriso
  (libisofs) does: the limit is broken knowingly.  GRUB, libarchive (bsdtar), pycdlib,
  isoinfo, xorriso and the Linux kernel read such trees; a path table numbers directories,
  not levels, so it and every record stay right.
* With Rock Ridge and ``relocate=True``, a directory that would sit at level 9 moves under
  RR_MOVED (RRIP 1.12 4.1.5), the way genisoimage writes it: a CL placeholder stays in its
  true parent, its ".." gets PL, its record in RR_MOVED gets RE; RR_MOVED itself carries
  RE, which Linux and libisofs read as "hide this entry".  GRUB and pycdlib's plain view
  do not follow CL: that is why it is not the default.  See :func:`extent_order` for the
  extent layout libarchive needs.
* Without Rock Ridge a directory past level 8 is an InvalidInputError, and so is, at
  interchange levels 1 and 2, a path of more than 255 bytes (ECMA-119 6.8.2.1).  Symlinks,
  devices, fifos and sockets cannot be recorded at all then (only Rock Ridge can describe
  them): :func:`check_without_rock_ridge` refuses them.
"""
from __future__ import annotations

import stat
from ..errors import InternalError, InvalidInputError, LayoutError
from ..fileinfo import FileInfo, implied_directory
from ..tree import Node, Tree
from . import names as _names
from .enums import FLAG_DIRECTORY, FLAG_MULTI_EXTENT, USER_FLAGS
from .layout import (K_CL, K_DIR, K_FILE, K_OTHER, RR_FROM_PAYLOAD, DirOut, Rec, RRArgs, RRSource, _rr_name,
                     _state, payload_of)

MAX_DEPTH = 8
"""ECMA-119 6.8.2.1: at most eight levels of directories, the root being level 1."""
MAX_PATH_BYTES = 255
"""ECMA-119 6.8.2.1: at interchange levels 1 and 2, the identifiers of a path, with a
separator between each two, take at most 255 bytes."""
RR_MOVED_IDENT = b"RR_MOVED"
RR_MOVED_NAME = b".rr_moved"
"""The Rock Ridge name of the relocation directory (RE hides it from Linux and libisofs)."""
RR_MOVED_NAMES = ("rr_moved", ".rr_moved")
"""The names by which libarchive recognises the relocation directory: the first root
directory with one of these Rock Ridge names (archive_read_support_format_iso9660.c)."""

_TYPE_NAMES = {stat.S_IFLNK: "symlink", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
               stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}


def check_without_rock_ridge(info: FileInfo) -> None:
    """What an image without Rock Ridge cannot hold: an entry that is neither a directory
    nor a regular file, or a directory past level 8 (InvalidInputError naming the path)."""
    where = info.name or "/"
    kind = _TYPE_NAMES.get(stat.S_IFMT(info.mode))
    if kind is not None:
        raise InvalidInputError(f"{where}: a {kind} cannot be recorded without Rock Ridge (ISO 9660 and Joliet "
                                "hold directories and regular files only); turn rock_ridge on or leave it out")
    parts = info.name.split("/") if info.name else []
    dirs = parts if info.is_dir else parts[:-1]
    if len(dirs) + 1 > MAX_DEPTH:
        deep = "/".join(dirs[:MAX_DEPTH])
        raise InvalidInputError(f"{where}: directory {deep} is at level {MAX_DEPTH + 1} of the hierarchy; "
                                f"without Rock Ridge ECMA-119 6.8.2.1 allows {MAX_DEPTH} levels (the root is "
                                "level 1): turn rock_ridge on (deep directories are then written in place, as "
                                "xorriso does) or flatten the tree")


def file_records(node: Node, ident: bytes, rr: RRSource | None) -> list[Rec]:
    """The records of a child that is not a directory: a file's (one a section, ECMA-119
    6.5.1), a symlink's, a device's..."""
    info = node.info
    flags = info.ISO9660_flags & USER_FLAGS
    p = payload_of(node)
    if p is None:
        return [Rec(ident, flags, info, K_OTHER, rr=rr)]
    n = p.section_count()
    if n == 1:
        return [Rec(ident, flags, info, K_FILE, payload=p, rr=rr)]
    return [Rec(ident, flags | (FLAG_MULTI_EXTENT if i < n - 1 else 0), info, K_FILE,
                payload=p, section=i, rr=rr) for i in range(n)]


def build_iso_hierarchy(tree: Tree, level: int, rock_ridge: bool, next_inode: int, *,
                        relocate: bool = False) -> list[DirOut]:
    """The ISO 9660 directories in path table order, each with its children named and in
    record order (:class:`~.layout.DirOut`; sizes not yet).

    ``rock_ridge``: deep directories stay in place, or with ``relocate`` move to RR_MOVED;
    without it the tree must keep ECMA-119's limits (see the module's docstring).
    """
    root_node = tree.root
    root_st = _state(root_node)
    root = DirOut(root_node.info, None, b"\x00", 1, node=root_node, inode=root_st.inode, nlink=root_st.nlink)
    root_st.iso_dir = root
    rr_moved: DirOut | None = None
    relocated: list[tuple[DirOut, Node]] = []
    check_paths = not rock_ridge and level < 3
    path_bytes: dict[int, int] = {id(root): -1}     # a path's identifiers and separators, without the root
    queue: list[DirOut] = [root]
    i = 0
    while i < len(queue):
        d = queue[i]
        i += 1
        kids = iso_children(d.tree_node)
        idents = _name_iso_children(d, kids, level)
        for (key, c), text in zip(kids, idents):
            info = c.info
            if not rock_ridge:
                check_without_rock_ridge(info)
            if check_paths:
                n = path_bytes[id(d)] + 1 + len(text)
                if n > MAX_PATH_BYTES:
                    _path_too_long(c, d, text.encode("ascii"), n, level)
            if c.children is None:
                continue
            st = _state(c)
            ident = text.encode("ascii")
            if rock_ridge and relocate and d.depth + 1 > MAX_DEPTH:
                if rr_moved is None:
                    rr_info = implied_directory("rr_moved")
                    rr_info.mtime = root.info.mtime
                    rr_moved = DirOut(rr_info, root, b"", 2, inode=next_inode)
                    next_inode += 1
                    root.children.append(rr_moved)
                cd = DirOut(info, rr_moved, b"", 3, node=c, real_parent=d, inode=st.inode, nlink=st.nlink)
                relocated.append((d, c))
                rr_moved.children.append(cd)
            else:
                cd = DirOut(info, d, ident, d.depth + 1, node=c, inode=st.inode, nlink=st.nlink)
                d.children.append(cd)
                if check_paths:
                    path_bytes[id(cd)] = path_bytes[id(d)] + 1 + len(ident)
            st.iso_dir = cd
            queue.append(cd)
    if rr_moved is not None:
        _name_rr_moved(root_node, root, rr_moved, relocated, level, rock_ridge)
    return _path_table_order(root)


def _name_iso_children(d: DirOut, kids: list[tuple[str, Node]], level: int) -> list[str]:
    """Name the children of ``d`` (:func:`.names.directory_iso_names`) and put them in
    record order (ECMA-119 9.3) into ``d.entries``, ``d.idents``, ``d.ident_lens``;
    returns each child's identifier, in the order of ``kids``."""
    texts, keys = _names.directory_iso_names(
        [(key, c.children is not None, c.info.ISO9660_shortname) for key, c in kids], level, d.tree_node.path)
    order = sorted(range(len(kids)), key=keys.__getitem__)
    d.entries = [kids[j][0] for j in order]
    ordered = [texts[j] for j in order]
    d.idents = "".join(ordered).encode("ascii")
    d.ident_lens = bytes(map(len, ordered))
    return texts
def _path_too_long(c: Node, d: DirOut, ident: bytes, n: int, level: int) -> None:
    names = [ident]
    p: DirOut | None = d
    while p is not None and p.parent is not None:
        names.append(p.ident)
        p = p.parent
    iso_path = b"/".join(reversed(names)).decode("ascii")
    raise InvalidInputError(f"{c.path}: its ISO 9660 path {iso_path} takes {n} bytes; without Rock Ridge "
                            f"ECMA-119 6.8.2.1 allows {MAX_PATH_BYTES} at interchange level {level}: use "
                            "interchange level 3, turn rock_ridge on or shorten the names")


def _name_rr_moved(root_node: Node, root: DirOut, rr_moved: DirOut, relocated: list[tuple[DirOut, Node]],
                   level: int, rock_ridge: bool) -> None:
    """Identifiers of RR_MOVED and of the directories moved into it, and their records
    (in the root and in RR_MOVED).

    A root entry with one of libarchive's names for the relocation directory cannot be
    told apart from it (libarchive takes the first root directory with such a Rock Ridge
    name, and a second ".rr_moved" would be a duplicate name in GRUB's and pycdlib's views):
    an InvalidInputError.  Any other root entry that maps to RR_MOVED (``RR_Moved``,
    ``rr-moved``, a file ``rr_moved``) keeps its identifier and RR_MOVED takes the first
    free RR_MOVnn: readers find the relocation directory by its RE entry (Linux, libisofs,
    pycdlib) or its Rock Ridge name (libarchive), never by its identifier."""
    for _, c in iso_children(root_node):
        if c.name == RR_MOVED_NAMES[1] or (c.name == RR_MOVED_NAMES[0] and c.info.is_dir):
            raise InvalidInputError(
                f"{c.path}: a root {'directory' if c.info.is_dir else 'entry'} named {c.name!r} cannot be told "
                "apart from the relocation directory that relocate_deep_dirs=True needs (RRIP 1.12 4.1.5; "
                "libarchive recognises it by that name): rename it, or leave relocate_deep_dirs off (deep "
                "directories are then written in place)")
    moved = _names.assign_iso_names([(c, c.name, True, None) for _, c in relocated], level, "rr_moved")
    for _, c in relocated:
        _iso_dir(c).ident = moved[c]
    taken = {_names.clash_key(ident) for _, ident in entry_idents(root)}
    ident = RR_MOVED_IDENT
    n = 0
    while ident in taken:
        n += 1
        ident = f"RR_MOV{n:02d}".encode()
    rr_moved.ident = ident
    rr_moved.nlink = 2 + len(relocated)
    rr_moved_rec = Rec(ident, FLAG_DIRECTORY, rr_moved.info, K_DIR, target=rr_moved,
                       rr=_rr(rock_ridge, rr_moved.info, RR_MOVED_NAME, rr_moved.nlink, rr_moved.inode,
                              relocated="RE"))
    _set_entries(root, entry_idents(root) + [(rr_moved_rec, ident)])
    _set_entries(rr_moved, [(Rec(cd.ident, FLAG_DIRECTORY, cd.info, K_DIR, target=cd,
                                 rr=_rr(rock_ridge, cd.info, _rr_name(cd.tree_node), cd.nlink, cd.inode,
                                        relocated="RE")), cd.ident) for cd in rr_moved.children])


def entry_idents(d: DirOut) -> list[tuple[str | Rec, bytes]]:
    """Each entry of ``d`` (a child's key, or a record made at plan()) with its identifier,
    in record order."""
    lens = d.ident_lens
    if lens is None:                        # Joliet: the names in UCS-2
        return [(e, e.encode("utf-16-be") if isinstance(e, str) else e.ident) for e in d.entries]
    out: list[tuple[str | Rec, bytes]] = []
    blob, at = d.idents, 0
    for e, n in zip(d.entries, lens):
        out.append((e, blob[at:at + n]))
        at += n
    return out


def _set_entries(d: DirOut, pairs: list[tuple[str | Rec, bytes]]) -> None:
    """``d``'s entries from (entry, identifier) pairs, sorted by ECMA-119 9.3."""
    pairs = sorted(pairs, key=lambda p: _names.iso_sort_key(p[1]))
    d.entries = [e for e, _ in pairs]
    d.idents = b"".join(i for _, i in pairs)
    d.ident_lens = bytes(len(i) for _, i in pairs)


def extent_order(dirs: list[DirOut]) -> list[DirOut]:
    """The ISO 9660 directories in the order their extents are allocated.

    In place (no RR_MOVED): path table order.  With RR_MOVED: the root, then RR_MOVED and
    every directory below it, then the others (each group in path table order), as
    genisoimage lays them out (it puts RR_MOVED first among the root's subdirectories and
    allocates depth first).

    That is what libarchive (bsdtar) needs.  It reads directories in the order of their
    extents and connects a relocated directory (RE) to its true parent when it meets the
    CL placeholder, which it sorts right after the RE directory's extent.  A CL placeholder
    found inside a relocated tree (a nested relocation) is connected only while the outer
    relocated directory still waits for its own CL ("Failed to connect 'CL' pointer to 'RE'
    rr_moved pointer" otherwise: the whole image is refused).  In path table order a
    top-level directory sorting before RR_MOVED brings the outer CL first; with every
    directory under RR_MOVED before the others, every nested CL comes before any outer one.
    """
    moved: set[int] = set()
    for d in dirs:
        if d.node is None or (d.parent is not None and id(d.parent) in moved):
            moved.add(id(d))
    if not moved:
        return list(dirs)
    return [dirs[0]] + [d for d in dirs if id(d) in moved] + [d for d in dirs[1:] if id(d) not in moved]


def _iso_dir(node: Node) -> DirOut:
    d = _state(node).iso_dir
    if d is None:
        raise InternalError(f"{node.path or '/'}: directory not in the ISO 9660 hierarchy")
    return d


def _rr(rock_ridge: bool, info: FileInfo, name: bytes | Node | None, nlink: int, inode: int, *,
        sp_er: bool = False, relocated: str | None = None, link: DirOut | None = None) -> RRArgs | None:
    return RRArgs(info, name, nlink, inode, sp_er, relocated, link) if rock_ridge else None


def dot_records(d: DirOut, rock_ridge: bool) -> list[Rec]:
    """The "." and ".." records of a directory (ECMA-119 6.8.2.2); in the ISO 9660 tree with
    Rock Ridge, the root's "." carries SP and ER (SUSP 5.3, 5.5) and a relocated
    directory's ".." PL (RRIP 4.1.5.2)."""
    parent = d.parent or d
    if d.joliet:
        return [Rec(b"\x00", FLAG_DIRECTORY, d.info, K_DIR, target=d),
                Rec(b"\x01", FLAG_DIRECTORY, parent.info, K_DIR, target=parent)]
    dot = Rec(b"\x00", FLAG_DIRECTORY, d.info, K_DIR, target=d,
              rr=_rr(rock_ridge, d.info, None, d.nlink, d.inode, sp_er=d.parent is None))
    true_parent = d.real_parent
    if true_parent is not None:
        dotdot_rr = _rr(rock_ridge, true_parent.info, None, true_parent.nlink, true_parent.inode, relocated="PL",
                        link=true_parent)
    else:
        dotdot_rr = _rr(rock_ridge, parent.info, None, parent.nlink, parent.inode)
    return [dot, Rec(b"\x01", FLAG_DIRECTORY, parent.info, K_DIR, target=parent, rr=dotdot_rr)]


def child_records(d: DirOut, node: Node, ident: bytes, rock_ridge: bool) -> list[Rec]:
    """The records of one child of ``d`` (a tree node), in either hierarchy."""
    info = node.info
    if node.children is not None:
        flags = FLAG_DIRECTORY | (info.ISO9660_flags & USER_FLAGS)
        if d.joliet:
            return [Rec(ident, flags, info, K_DIR, target=_state(node).joliet_dir)]
        cd = _iso_dir(node)
        if cd.parent is d:
            return [Rec(ident, flags, info, K_DIR, target=cd, rr=_rr(rock_ridge, info, node, cd.nlink, cd.inode))]
        # relocated: a file record carrying CL (RRIP 4.1.5.1)
        return [Rec(ident, info.ISO9660_flags & USER_FLAGS, info, K_CL, target=cd,
                    rr=_rr(rock_ridge, info, _rr_name(node), cd.nlink, cd.inode, relocated="CL", link=cd))]
    if d.joliet or not rock_ridge:
        return file_records(node, ident, None)
    if payload_of(node) is not None:        # a regular file: its Rock Ridge entries from its payload
        return file_records(node, ident, RR_FROM_PAYLOAD)
    st = _state(node)
    return file_records(node, ident, RRArgs(info, node, st.nlink, st.inode))


def records_of(d: DirOut, rock_ridge: bool) -> list[Rec]:
    """Every record of a directory, made afresh (with their continuation areas, once
    planned): what :func:`.dirbytes.size_directory` and :func:`.dirbytes.directory_bytes`
    go through without making them, for whoever needs them one by one (lookup())."""
    records = dot_records(d, rock_ridge)
    children = d.node.children if d.node is not None else None
    for entry, ident in entry_idents(d):
        if isinstance(entry, str):
            if children is None:
                raise InternalError(f"{d.info.name or '/'}: entry {entry!r} without a tree node")
            records += child_records(d, children[entry], ident, rock_ridge)
        else:
            records.append(entry)
    if d.conts:
        for i, (cont_len, cont_offset) in d.conts.items():
            records[i].cont_len = cont_len
            records[i].cont_offset = cont_offset
    return records


def iso_children(node: Node) -> list[tuple[str, Node]]:
    """The children the ISO 9660 tree (and its Rock Ridge records) shows, sorted, with
    their keys in ``node.children``: every one not ``hidden_from`` "iso9660"."""
    children = node.children
    if not children:
        return []
    return [(k, c) for k in sorted(children) if "iso9660" not in (c := children[k]).info.hidden_from]


def _joliet_children(node: Node) -> list[tuple[str, Node]]:
    """Joliet holds directories and regular files only: like xorriso, symlinks, devices,
    fifos and sockets exist only in the Rock Ridge view (Joliet cannot describe them).
    Entries ``hidden_from`` "joliet" are left out too."""
    children = node.children
    if not children:
        return []
    return [(k, c) for k in sorted(children)
            if (info := (c := children[k]).info).mode & 0o170000 in _JOLIET_TYPES and "joliet" not in info.hidden_from]


_JOLIET_TYPES = (stat.S_IFDIR, stat.S_IFREG)


def build_joliet_hierarchy(tree: Tree) -> list[DirOut]:
    """The Joliet directories (the true tree, UCS-2 names sorted by code unit) in path table
    order, each with its children named and in record order."""
    root = DirOut(tree.root.info, None, b"\x00", 1, node=tree.root, joliet=True)
    _state(tree.root).joliet_dir = root
    queue = [root]
    i = 0
    while i < len(queue):
        d = queue[i]
        i += 1
        node = d.tree_node
        kids = _joliet_children(node)
        idents = _names.directory_joliet_names([(k, c.children is not None, c.info.joliet_name) for k, c in kids],
                                               node.path)
        if idents is None:                  # every identifier is the name in UCS-2, sorted as the names
            d.entries = [k for k, _ in kids]
            d.ident_lens = None
        else:
            order = sorted(range(len(kids)), key=idents.__getitem__)
            d.entries = [kids[j][0] for j in order]
            d.idents = b"".join(idents[j] for j in order)
            d.ident_lens = bytes(len(idents[j]) for j in order)
        for j, (key, c) in enumerate(kids):
            if c.children is not None:
                ident = idents[j] if idents is not None else key.encode("utf-16-be")
                cd = DirOut(c.info, d, ident, d.depth + 1, node=c, joliet=True)
                _state(c).joliet_dir = cd
                d.children.append(cd)
                queue.append(cd)
    return _path_table_order(root)


def _path_table_order(root: DirOut) -> list[DirOut]:
    """ECMA-119 6.9.1: by level, then parent number, then identifier; numbers from 1."""
    out = [root]
    i = 0
    while i < len(out):
        d = out[i]
        d.number = i + 1
        out.extend(sorted(d.children, key=lambda c: c.ident))
        i += 1
    if len(out) > 0xFFFF:
        raise LayoutError(f"{len(out)} directories: a path table numbers at most 65535 (ECMA-119 9.4.4)")
    return out
