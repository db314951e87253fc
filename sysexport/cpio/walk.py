"""A host tree, walked for a streaming archive: depth first, one open directory at a time.

Every entry comes after its parent and siblings come sorted by name, the order of the
in-memory tree's walk (``Tree.walk``), so an archive of one tree has the same order it had
when the writer sorted everything at ``finish()``.  A directory is listed (``scandir``,
sorted) when it is reached, before its own entry is given out, so that its link count (2
and one per subdirectory, as Linux counts) is known; the walk holds the sorted listings of
the directories on the current path and nothing else: memory grows with the depth and the
width of one directory, never with the number of files.

Records are made as :func:`sysexport.fileinfo.walk_host_fileinfo` makes them (lstat:
symlinks stay symlinks, hard links carry dev, ino and nlink, devices their numbers, times
clamped to SOURCE_DATE_EPOCH, no atime).
"""
from __future__ import annotations

import os
import stat
from stat import S_IFDIR, S_IFREG
from typing import Callable, Iterator

from ..data import PathData
from ..errors import InvalidInputError
from ..fileinfo import FileInfo, HostPath, check_utf8_name, normalize_name, sde_limit, to_fileinfo, tree_top_stat


class WalkedFile(PathData):
    """A :class:`PathData` whose size the walk's lstat just gave (no second stat)."""

    __slots__ = ()

    def __init__(self, path: str, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes


def _listing(path: str) -> tuple[list[str], int]:
    """The sorted names in directory ``path`` and its link count (2 and one per
    subdirectory, from the entries' types): names only, the least a listing can hold."""
    try:
        with os.scandir(path) as it:
            names = []
            subdirs = 0
            for e in it:
                names.append(e.name)
                if e.is_dir(follow_symlinks=False):
                    subdirs += 1
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot list directory: {e.strerror}") from e
    names.sort()
    return names, 2 + subdirs


PlainFile = Callable[[str, str, int, int, int, int, float], bool]
"""``plain_file(name, host_path, mode, uid, gid, size, mtime)``: takes a regular file with one
link without a FileInfo record being made; False leaves it to the record (its errors)."""


def walk_stream(host_dir: HostPath, dest: str = "", plain_file: PlainFile | None = None) -> Iterator[FileInfo]:
    """FileInfo records of a host tree (its top as ``dest``), depth first, siblings sorted.
    With ``plain_file``, regular files with one link go to it instead (a writer's fast path:
    no record per file)."""
    top = os.fsdecode(host_dir)
    rel_top = normalize_name(dest)
    st = tree_top_stat(top)
    limit = sde_limit()
    listing, nlink = _listing(top)
    yield _record(top, rel_top, st, limit, nlink)
    stack = [(top.rstrip("/"), rel_top, iter(listing))]     # "/" as "": children "/x"
    lstat = os.lstat
    while stack:
        host, rel, it = stack[-1]
        base = next(it, None)
        if base is None:
            stack.pop()
            continue
        child = f"{rel}/{base}" if rel else base
        path = f"{host}/{base}"
        if not base.isascii():
            check_utf8_name(child, path)            # a host name that is not UTF-8
        try:
            est = lstat(path)
        except OSError as e:
            raise InvalidInputError(f"{path}: cannot stat: {e.strerror}") from e
        mode = est.st_mode
        if plain_file is not None and mode & 0o170000 == S_IFREG and est.st_nlink == 1:
            mtime: float = est.st_mtime
            if limit is not None and mtime > limit:
                mtime = limit
            if plain_file(child, path, mode, est.st_uid, est.st_gid, est.st_size, mtime):
                continue
        if mode & 0o170000 == S_IFDIR:
            sub, nlink = _listing(path)
            yield _record(path, child, est, limit, nlink)
            stack.append((path, child, iter(sub)))
        else:
            yield _record(path, child, est, limit, 0)


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


__all__ = ["walk_stream", "WalkedFile", "PlainFile"]
