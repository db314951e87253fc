"""The two directory hierarchies of an ISO 9660 image: ISO 9660 (with Rock Ridge) and Joliet.

Both are built from the writer's tree into :class:`~.layout.DirOut` values in path table
order (ECMA-119 6.9.1), each with a ``build`` that makes its records when they are sized
and again when they are written (:mod:`.layout`).

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
from functools import partial

from ..errors import InternalError, InvalidInputError, LayoutError
from ..fileinfo import FileInfo, implied_directory
from ..tree import Node, Tree
from . import names as _names
from .enums import FLAG_DIRECTORY, FLAG_MULTI_EXTENT, USER_FLAGS
from .layout import (K_CL, K_DIR, K_FILE, K_OTHER, RR_FROM_PAYLOAD, DirOut, Rec, RRArgs, RRSource, _rr_name,
                     _state, single_section_max)

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


def _file_records(node: Node, ident: bytes, rr: RRSource | None) -> list[Rec]:
    st = _state(node)
    flags = node.info.ISO9660_flags & USER_FLAGS
    if st.payload is None:
        return [Rec(ident, flags, node.info, K_OTHER, rr=rr)]
    if isinstance(rr, RRArgs) and rr.nlink == st.payload.nlink and rr.inode == st.payload.inode \
            and rr._name is node and not rr.sp_er and rr.relocated is None:
        rr = RR_FROM_PAYLOAD
    n = st.payload.section_count()
    if n == 1:
        return [Rec(ident, flags, node.info, K_FILE, payload=st.payload, rr=rr)]
    return [Rec(ident, flags | (FLAG_MULTI_EXTENT if i < n - 1 else 0), node.info, K_FILE,
                payload=st.payload, section=i, rr=rr) for i in range(n)]


def build_iso_hierarchy(tree: Tree, level: int, rock_ridge: bool, next_inode: int, *,
                        relocate: bool = False) -> list[DirOut]:
    """The ISO 9660 directories in path table order, records filled (sizes not yet).

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
        node = d.tree_node
        kids = iso_children(node)
        idents = _names.assign_iso_names([(c, c.name, c.info.is_dir, c.info.ISO9660_shortname) for c in kids],
                                         level, node.path)
        for c in kids:
            st = _state(c)
            ident = st.iso_ident = idents[c]
            if not rock_ridge:
                check_without_rock_ridge(c.info)
            if check_paths:
                n = path_bytes[id(d)] + 1 + len(ident)
                if n > MAX_PATH_BYTES:
                    _path_too_long(c, d, ident, n, level)
            if not c.info.is_dir:
                continue
            if rock_ridge and relocate and d.depth + 1 > MAX_DEPTH:
                if rr_moved is None:
                    rr_info = implied_directory("rr_moved")
                    rr_info.mtime = root.info.mtime
                    rr_moved = DirOut(rr_info, root, b"", 2, inode=next_inode)
                    next_inode += 1
                    root.children.append(rr_moved)
                cd = DirOut(c.info, rr_moved, b"", 3, node=c, real_parent=d, inode=st.inode, nlink=st.nlink)
                relocated.append((d, c))
                rr_moved.children.append(cd)
            else:
                cd = DirOut(c.info, d, ident, d.depth + 1, node=c, inode=st.inode, nlink=st.nlink)
                d.children.append(cd)
                if check_paths:
                    path_bytes[id(cd)] = path_bytes[id(d)] + 1 + len(ident)
            st.iso_dir = cd
            queue.append(cd)
    if rr_moved is not None:
        _name_rr_moved(root_node, rr_moved, relocated, level)
    ordered = _path_table_order(root)
    for d in ordered:
        d.build = partial(_iso_records, d, rock_ridge, root, rr_moved)
    return ordered


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


def _name_rr_moved(root_node: Node, rr_moved: DirOut, relocated: list[tuple[DirOut, Node]], level: int) -> None:
    """Identifiers of RR_MOVED and of the directories moved into it.

    A root entry with one of libarchive's names for the relocation directory cannot be
    told apart from it (libarchive takes the first root directory with such a Rock Ridge
    name, and a second ".rr_moved" would be a duplicate name in GRUB's and pycdlib's views):
    an InvalidInputError.  Any other root entry that maps to RR_MOVED (``RR_Moved``,
    ``rr-moved``, a file ``rr_moved``) keeps its identifier and RR_MOVED takes the first
    free RR_MOVnn: readers find the relocation directory by its RE entry (Linux, libisofs,
    pycdlib) or its Rock Ridge name (libarchive), never by its identifier."""
    for c in iso_children(root_node):
        if c.name == RR_MOVED_NAMES[1] or (c.name == RR_MOVED_NAMES[0] and c.info.is_dir):
            raise InvalidInputError(
                f"{c.path}: a root {'directory' if c.info.is_dir else 'entry'} named {c.name!r} cannot be told "
                "apart from the relocation directory that relocate_deep_dirs=True needs (RRIP 1.12 4.1.5; "
                "libarchive recognises it by that name): rename it, or leave relocate_deep_dirs off (deep "
                "directories are then written in place)")
    moved = _names.assign_iso_names([(c, c.name, True, None) for _, c in relocated], level, "rr_moved")
    for _, c in relocated:
        _iso_dir(c).ident = moved[c]
    taken = {_names.clash_key(_state(r).iso_ident) for r in iso_children(root_node)}
    ident = RR_MOVED_IDENT
    n = 0
    while ident in taken:
        n += 1
        ident = f"RR_MOV{n:02d}".encode()
    rr_moved.ident = ident
    rr_moved.nlink = 2 + len(relocated)


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


def _iso_records(d: DirOut, rock_ridge: bool, root: DirOut, rr_moved: DirOut | None) -> list[Rec]:
    parent = d.parent or d
    true_parent = d.real_parent or parent

    def rr(info: FileInfo, name: bytes | Node | None, nlink: int, inode: int, *, sp_er: bool = False,
           relocated: str | None = None, link: DirOut | None = None) -> RRArgs | None:
        return RRArgs(info, name, nlink, inode, sp_er, relocated, link) if rock_ridge else None

    dot = Rec(b"\x00", FLAG_DIRECTORY, d.info, K_DIR, target=d,
              rr=rr(d.info, None, d.nlink, d.inode, sp_er=d is root))
    if d.real_parent is not None:
        dotdot_rr = rr(true_parent.info, None, true_parent.nlink, true_parent.inode, relocated="PL",
                       link=true_parent)
    else:
        dotdot_rr = rr(parent.info, None, parent.nlink, parent.inode)
    records = [dot, Rec(b"\x01", FLAG_DIRECTORY, parent.info, K_DIR, target=parent, rr=dotdot_rr)]
    children: list[Rec] = []
    one_section = single_section_max()
    if d.node is not None:
        for c in iso_children(d.node):
            st = _state(c)
            if c.info.is_dir:
                cd = _iso_dir(c)
                flags = FLAG_DIRECTORY | (c.info.ISO9660_flags & USER_FLAGS)
                if cd.parent is d:
                    children.append(Rec(st.iso_ident, flags, c.info, K_DIR, target=cd,
                                        rr=rr(c.info, c, cd.nlink, cd.inode)))
                else:   # relocated: a file record carrying CL (RRIP 4.1.5.1)
                    children.append(Rec(st.iso_ident, c.info.ISO9660_flags & USER_FLAGS, c.info, K_CL, target=cd,
                                        rr=rr(c.info, _rr_name(c), cd.nlink, cd.inode, relocated="CL", link=cd)))
            else:
                pl = st.payload
                plain = rock_ridge and pl is not None and st.nlink == pl.nlink and st.inode == pl.inode
                if plain and pl is not None and pl.size_bytes <= one_section:  # _file_records(), one section
                    children.append(Rec(st.iso_ident, c.info.ISO9660_flags & USER_FLAGS, c.info, K_FILE,
                                        None, pl, 0, RR_FROM_PAYLOAD))
                    continue
                children.extend(_file_records(c, st.iso_ident, RR_FROM_PAYLOAD if plain
                                              else rr(c.info, c, st.nlink, st.inode)))
    if d is root and rr_moved is not None:
        children.append(Rec(rr_moved.ident, FLAG_DIRECTORY, rr_moved.info, K_DIR, target=rr_moved,
                            rr=rr(rr_moved.info, RR_MOVED_NAME, rr_moved.nlink, rr_moved.inode, relocated="RE")))
    if d is rr_moved:
        for cd in d.children:
            children.append(Rec(cd.ident, FLAG_DIRECTORY, cd.info, K_DIR, target=cd,
                                rr=rr(cd.info, _rr_name(cd.tree_node), cd.nlink, cd.inode, relocated="RE")))
    children.sort(key=lambda r: _names.iso_sort_key(r.ident))
    return records + children


def iso_children(node: Node) -> list[Node]:
    """The children the ISO 9660 tree (and its Rock Ridge records) shows, sorted: every
    one not ``hidden_from`` "iso9660"."""
    return [c for c in node.sorted_children() if "iso9660" not in c.info.hidden_from]


def _joliet_children(node: Node) -> list[Node]:
    """Joliet holds directories and regular files only: like xorriso, symlinks, devices,
    fifos and sockets exist only in the Rock Ridge view (Joliet cannot describe them).
    Entries ``hidden_from`` "joliet" are left out too."""
    return [c for c in node.sorted_children()
            if c.info.mode & 0o170000 in _JOLIET_TYPES and "joliet" not in c.info.hidden_from]


_JOLIET_TYPES = (stat.S_IFDIR, stat.S_IFREG)


def build_joliet_hierarchy(tree: Tree) -> list[DirOut]:
    """The Joliet directories (the true tree, UCS-2 names sorted by code unit) in path table order."""
    root = DirOut(tree.root.info, None, b"\x00", 1, node=tree.root)
    _state(tree.root).joliet_dir = root
    queue = [root]
    i = 0
    while i < len(queue):
        d = queue[i]
        i += 1
        kids = _joliet_children(d.tree_node)
        idents = _names.assign_joliet_names([(c, c.name, c.info.is_dir, c.info.joliet_name) for c in kids],
                                            d.tree_node.path)
        for c in kids:
            st = _state(c)
            st.joliet_ident = idents[c]
            if c.info.is_dir:
                cd = DirOut(c.info, d, idents[c], d.depth + 1, node=c)
                st.joliet_dir = cd
                d.children.append(cd)
                queue.append(cd)
    ordered = _path_table_order(root)
    for d in ordered:
        d.build = partial(_joliet_records, d)
    return ordered


def _joliet_records(d: DirOut) -> list[Rec]:
    parent = d.parent or d
    recs = [Rec(b"\x00", FLAG_DIRECTORY, d.info, K_DIR, target=d),
            Rec(b"\x01", FLAG_DIRECTORY, parent.info, K_DIR, target=parent)]
    kids: list[Rec] = []
    one_section = single_section_max()
    for c in _joliet_children(d.tree_node):
        st = _state(c)
        if c.info.is_dir:
            kids.append(Rec(st.joliet_ident, FLAG_DIRECTORY | (c.info.ISO9660_flags & USER_FLAGS), c.info,
                            K_DIR, target=st.joliet_dir))
        else:
            pl = st.payload
            if pl is not None and pl.size_bytes <= one_section:    # _file_records(), one section
                kids.append(Rec(st.joliet_ident, c.info.ISO9660_flags & USER_FLAGS, c.info, K_FILE, None, pl))
            else:
                kids.extend(_file_records(c, st.joliet_ident, None))
    kids.sort(key=lambda r: r.ident)
    return recs + kids


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
