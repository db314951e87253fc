"""Changes to a :class:`~.source.Source` before it is loaded into a writer.

``sysexport remaster`` applies its ``--remove``, ``--replace`` and ``--add-tree`` here,
on the model of the source, so that every one is checked (a path the source lacks, a
replacement file that is missing) before anything is planned or written, and one error
leaves no output behind.
"""
from __future__ import annotations

import dataclasses
import os
import stat as _stat

from ..data import PathData, stat_source
from ..errors import InvalidInputError
from ..fileinfo import FileInfo, normalize_name, walk_host_fileinfo
from .data import HostFileData
from .source import Source, SourceEntry


def _find(source: Source, path: str, what: str) -> str:
    name = normalize_name(path)
    if name not in source.entries:
        raise InvalidInputError(f"{what} {path}: no such file or directory in {source.name}")
    return name


def remove(source: Source, path: str, what: str = "remove") -> int:
    """Take ``path`` (and, for a directory, everything below it) out of the source model;
    returns how many entries went.  The root, a path the source lacks and a boot image
    that an El Torito entry names are refused."""
    name = _find(source, path, what)
    if not name:
        raise InvalidInputError(f"{what} {path}: the root directory cannot be removed")
    prefix = name + "/"
    for index, b in enumerate(source.boot):
        if b.path is not None and (b.path == name or b.path.startswith(prefix)):
            raise InvalidInputError(f"{what} {path}: El Torito catalog entry {index} boots from {b.path}; "
                                    "removing it would leave the entry without its image")
    gone = [key for key in source.entries if key == name or key.startswith(prefix)]
    for key in gone:
        del source.entries[key]
    return len(gone)


def replace(source: Source, path: str, host_file: str, what: str = "replace") -> None:
    """Give the file ``path`` the content of ``host_file`` (read when the image is written),
    keeping its other metadata; it leaves its hard-link group."""
    name = _find(source, path, what)
    entry = source.entries[name]
    if not entry.is_file:
        raise InvalidInputError(f"{what} {path}: not a regular file in {source.name} ({entry.stat.type})")
    st = stat_source(host_file, "replacement", f"{what} {path}")
    entry.data = HostFileData(PathData(host_file, st.st_size)) if st.st_size else None
    entry.stat = dataclasses.replace(entry.stat, size=st.st_size, extents=())
    entry.link_group = None
    entry.fat = None


def add_tree(source: Source, host_dir: str, dest: str = "", what: str = "add-tree") -> int:
    """Lay the host directory ``host_dir`` over the source at ``dest``: new entries are
    added, a file of the source at the same path takes the host file's content and
    metadata, a directory keeps its entries.  Returns how many entries were added or
    changed."""
    if not os.path.isdir(host_dir):
        raise InvalidInputError(f"{what} {host_dir}: not a directory")
    count = 0
    for info in walk_host_fileinfo(host_dir, dest):
        old = source.entries.get(info.name)
        if old is not None and old.is_dir and info.is_dir and info.name == normalize_name(dest):
            continue                # the directory the tree goes into keeps its metadata
        if old is not None and old.is_dir != info.is_dir:
            raise InvalidInputError(f"{what} {host_dir}: {info.name or '/'} is a "
                                    f"{'directory' if old.is_dir else old.stat.type} in {source.name} and "
                                    f"{'a directory' if info.is_dir else 'not a directory'} in the tree")
        source.entries[info.name] = host_entry(info, old)
        count += 1
    return count


def host_entry(info: FileInfo, old: SourceEntry | None) -> SourceEntry:
    """A model entry for a host file (``info``), in the place of ``old`` when there was one."""
    from ..image.view import Stat, TYPES
    kind = TYPES.get(_stat.S_IFMT(info.mode), "file")
    target = info.target.decode("utf-8", "surrogateescape") if info.target is not None else None
    st = Stat(path="/" + info.name, type=kind, size=info.size, mode=info.mode, uid=info.uid, gid=info.gid,
              mtime=info.mtime, atime=info.atime, ctime=info.ctime, target=target,
              rdev=(info.rdev_major, info.rdev_minor) if info.is_device else None)
    entry = SourceEntry(info.name, st, data=HostFileData(info.source) if info.source is not None else None)
    if old is not None:
        entry.target = "both" if old.target == "esp" else old.target
    return entry
