"""A host tree streamed into a :class:`~sysexport.cpio.writer.CPIO` archive (its ``add_tree``):
depth first, one open directory at a time.

Every entry comes after its parent and siblings come sorted by name, the order of the
in-memory tree's walk (``Tree.walk``), so an archive of one tree has the same order it had
when the writer sorted everything at ``finish()``.  A directory is listed (``scandir``,
sorted) when it is reached, before its own entry is given out, so that its link count (2
and one per subdirectory, as Linux counts) is known; the walk holds the sorted listings of
the directories on the current path and nothing else: memory grows with the depth and the
width of one directory, never with the number of files.

The common entry, a small regular file with one link, takes one tight path (issue 16): the
listing's entry type says it is a regular file, so it is opened (``O_NOFOLLOW``,
``O_NONBLOCK``: a name swapped for a symlink or a fifo since the listing is not followed and
does not block), its ``fstat`` gives the header, one ``read`` of one byte more than its size
gives the data (and shows a file that grew), and header, name and data go straight into the
sink's gathered buffer: no record, no batch row, no second pass over the entry.  Everything
else (directories, symlinks, devices, hard links, files over
:data:`~sysexport.data.SMALL_FILE_BYTES`, a file that cannot be opened, what a check must
name) becomes a :class:`~sysexport.fileinfo.FileInfo` as
:func:`sysexport.fileinfo.walk_host_fileinfo` makes them (lstat: symlinks stay symlinks,
hard links carry dev, ino and nlink, devices their numbers, times clamped to
SOURCE_DATE_EPOCH, no atime) and goes through the writer's ``add()`` path.
"""
from __future__ import annotations

import errno
import os
import stat
from binascii import hexlify
from stat import S_IFDIR, S_IFREG
from typing import TYPE_CHECKING, Callable, Iterator

from ..data import SMALL_FILE_BYTES, PathData, report_progress
from ..errors import InvalidInputError
from ..fileinfo import FileInfo, HostPath, check_utf8_name, normalize_name, sde_limit, to_fileinfo, tree_top_stat
from .newc import MAGIC_BYTES, MAX_FIELD, NAME_END, PLAIN_HEADER, TRAILER_NAME
from .entries import DATA_PAD
from .sink import GATHER_BYTES

if TYPE_CHECKING:
    from .writer import CPIO

NOATIME = getattr(os, "O_NOATIME", 0)
PLAIN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
"""How the tight path opens a file the listing calls regular; with :data:`NOATIME` where it
is allowed (the file's owner), as ``data._open_source`` reads, so the tree's atimes stay."""


class WalkedFile(PathData):
    """A :class:`PathData` whose size the walk's lstat just gave (no second stat)."""

    __slots__ = ()

    def __init__(self, path: str, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes


def _listing(path: str) -> tuple[list[str], int, set[str]]:
    """The sorted names in directory ``path``, its link count (2 and one per subdirectory,
    from the entries' types) and the names whose entry type is not a regular file (an
    unknown type is looked up by ``scandir``): names only, the least a listing can hold."""
    try:
        with os.scandir(path) as it:
            names = []
            others = set()
            subdirs = 0
            for e in it:
                name = e.name
                names.append(name)
                if not e.is_file(follow_symlinks=False):
                    others.add(name)
                    if e.is_dir(follow_symlinks=False):
                        subdirs += 1
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot list directory: {e.strerror}") from e
    names.sort()
    return names, 2 + subdirs, others


def _lstat(path: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot stat: {e.strerror}") from e


def _open_plain(path: str, flags: int) -> int:
    """The tight path's open of a listed regular file: a descriptor, or -1 when it cannot
    be opened (the file is then lstat'ed and read by its record, which names the error).
    Without O_NOATIME for a file of another owner (EPERM), as ``data._open_source``."""
    try:
        return os.open(path, flags)
    except OSError as e:
        if e.errno == errno.EPERM and flags & NOATIME:
            return _open_plain(path, flags & ~NOATIME)
        return -1


def stream_tree(w: CPIO, host_dir: HostPath, dest: str = "", *, prune: Callable[[str], bool] | None = None,
                root_owner: bool = False, mode_map: Callable[[int], int] | None = None) -> None:
    """Add the host tree ``host_dir`` (its top as ``dest``) to ``w``, depth first, siblings
    sorted (see the module docstring).  ``prune(name)`` True leaves the entry out, and a
    directory is not even listed; ``root_owner`` writes uid and gid 0, ``mode_map`` maps
    every mode (``sources.rational_mode``)."""
    top = os.fsdecode(host_dir)
    rel_top = normalize_name(dest)
    st = tree_top_stat(top)
    listing, nlink, others = _listing(top)
    walk = _Walk(w, sde_limit(), root_owner, mode_map)
    walk.add(_record(top, rel_top, st, walk.limit, nlink))
    walk.stack.append((top.rstrip("/"), rel_top, iter(listing), others))      # "/" as "": children "/x"
    walk.run(prune)


class _Walk:
    """The state of one :func:`stream_tree`: the open directories (``stack``: host path,
    archive name, the listing's iterator, its names that are not regular files) and the
    writer; :meth:`run` is the tight loop, the rest the ways out of it."""

    def __init__(self, w: CPIO, limit: int | None, root_owner: bool, mode_map: Callable[[int], int] | None) -> None:
        self.w = w
        self.limit = limit
        self.root_owner = root_owner
        self.mode_map = mode_map
        self.stack: list[tuple[str, str, Iterator[str], set[str]]] = []

    def add(self, info: FileInfo) -> None:
        """A record through the writer's add() path (owners and modes rewritten first)."""
        if self.root_owner:
            info.uid = info.gid = 0
        if self.mode_map is not None:
            info.mode = self.mode_map(info.mode)
        self.w._add_info(info)

    def other(self, path: str, child: str) -> bool:
        """An entry the listing calls other than a regular file: its record; True when it
        is a directory, now entered (listed, on the stack)."""
        est = _lstat(path)
        if est.st_mode & 0o170000 == S_IFDIR:
            sub, nlink, sub_others = _listing(path)
            self.add(_record(path, child, est, self.limit, nlink))
            self.stack.append((path, child, iter(sub), sub_others))
            return True
        self.add(_record(path, child, est, self.limit, 0))
        return False

    def run(self, prune: Callable[[str], bool] | None) -> None:
        """Walk the stack to its end.  One loop, longer than a function should be: each
        call taken out of it is a Python call per file (100,000 for the benchmark tree),
        so only the ways out (records, errors, directories) are functions."""
        w, limit, root_owner, mode_map, stack, add = self.w, self.limit, self.root_owner, self.mode_map, self.stack, \
            self.add
        ns_stack, pending = w._stack, w._pending
        os_open, fstat, read, close = os.open, os.fstat, os.read, os.close
        flags = PLAIN_FLAGS | NOATIME
        buf = None
        gather_bytes, pack, name_end, data_pad = GATHER_BYTES, PLAIN_HEADER.pack, NAME_END, DATA_PAD
        m0, m1, m2 = MAGIC_BYTES                # 07 07 01: hex is the magic 070701
        plain = data_bytes = reported = 0
        try:
            while stack:
                host, rel, it, others = stack[-1]
                prefix = host + "/"
                rel_prefix = rel + "/" if rel else ""
                for base in it:
                    child = rel_prefix + base
                    if prune is not None and prune(child):
                        continue
                    path = prefix + base
                    if not base.isascii():
                        check_utf8_name(child, path)            # a host name that is not UTF-8
                    if base in others:
                        if self.other(path, child):
                            break
                        continue
                    try:
                        fd = os_open(path, flags)
                    except OSError:
                        fd = _open_plain(path, flags)
                        if fd < 0:                          # gone, or no access: the record names it
                            add(_record(path, child, _lstat(path), limit, 0))
                            continue
                    try:
                        fst = fstat(fd)
                        mode = fst.st_mode
                        size = fst.st_size
                        if mode & 0o170000 == S_IFREG and fst.st_nlink == 1 and size <= SMALL_FILE_BYTES:
                            data = read(fd, size + 1) if size else b""
                        else:
                            data = None
                    except OSError:                         # read again by the record, which names it
                        data = None
                        mode = 0
                    finally:
                        close(fd)
                    if data is None:                        # a record: a type other than the listing said
                        add(_record(path, child, fst if mode & 0o170000 == S_IFREG else _lstat(path), limit, 0))
                        continue
                    mtime: float = fst.st_mtime
                    if limit is not None and mtime > limit:
                        mtime = limit
                    ino = w._next_ino
                    if not 0 <= mtime <= MAX_FIELD or len(child) >= 1024 or child == TRAILER_NAME or ino > MAX_FIELD:
                        add(_record(path, child, fst, limit, 0))     # the check names it
                        continue
                    if len(data) != size:
                        data = w._read_again(path, size)    # grew or shrank: an error naming it, or the bytes
                    ns_top = ns_stack[-1]
                    names = ns_top[1]
                    if ns_top[0] != rel or base in names:
                        w._place(child, False)              # implied parents; a duplicate is refused
                        ino = w._next_ino
                    else:
                        names[base] = False
                    w._next_ino = ino + 1
                    if pending:
                        w._flush()                          # what came before (directories) first
                    if buf is None:
                        buf = w._gather_buffer()
                    if mode_map is not None:
                        mode = mode_map(mode)
                    arc_name = child.encode()               # UTF-8, checked above
                    namesize = len(arc_name) + 1
                    # Every value is in range (checked above, or 32 bits from fstat): packed as it is.
                    buf += hexlify(pack(m0, m1, m2, ino, mode, 0 if root_owner else fst.st_uid,
                                        0 if root_owner else fst.st_gid, 1, int(mtime), size, namesize)).upper()
                    buf += arc_name
                    buf += name_end[(namesize + 2) & 3]     # (110 + namesize) % 4
                    if size:
                        buf += data
                        if size & 3:
                            buf += data_pad[size & 3]
                    w._offset += 110 + namesize + ((2 - namesize) & 3) + size + (-size & 3)
                    plain += 1
                    data_bytes += size
                    if len(buf) >= gather_bytes:
                        w._emit_gathered()
                        report_progress(data_bytes - reported)
                        reported = data_bytes
                else:
                    stack.pop()
        finally:
            w._plain += plain
            w._streamed += plain
            w._data_bytes += data_bytes
            report_progress(data_bytes - reported)


def _record(path: str, name: str, st: os.stat_result, limit: int | None, dir_nlink: int) -> FileInfo:
    mtime: float = st.st_mtime
    ctime: float = st.st_ctime
    if limit is not None:               # SOURCE_DATE_EPOCH clamps (see fileinfo.sde_limit)
        if mtime > limit:
            mtime = limit
        if ctime > limit:
            ctime = limit
    if ctime == mtime:
        ctime = mtime                   # one float object for both (as walk_host_fileinfo)
    mode = st.st_mode
    kind = mode & 0o170000
    if kind == stat.S_IFREG:
        size = st.st_size
        info = FileInfo(name, mode, size, WalkedFile(path, size), None, mtime, None, ctime, st.st_uid, st.st_gid)
        if st.st_nlink > 1:
            info.dev, info.ino, info.nlink = st.st_dev, st.st_ino, st.st_nlink
        return info
    if kind == stat.S_IFDIR:
        info = FileInfo(name, mode, 0, None, None, mtime, None, ctime, st.st_uid, st.st_gid)
        info.nlink = dir_nlink
        return info
    d: dict[str, object] = {"name": name, "mode": mode, "uid": st.st_uid, "gid": st.st_gid, "mtime": mtime,
                            "ctime": ctime}
    if kind == stat.S_IFLNK:
        try:
            d["data"] = os.fsencode(os.readlink(path))
        except OSError as e:
            raise InvalidInputError(f"{path}: cannot read the symlink: {e.strerror}") from e
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        d["rdev_major"], d["rdev_minor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
    return to_fileinfo(d)


__all__ = ["stream_tree", "WalkedFile"]
