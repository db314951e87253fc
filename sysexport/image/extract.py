"""Extraction of a view's entries into a host directory, safe against hostile images.

Every name is checked (no '', '.', '..', '/', NUL), every directory is entered by a file
descriptor opened with O_NOFOLLOW relative to its parent's, and every file is created with
O_CREAT|O_EXCL|O_NOFOLLOW relative to its directory's descriptor: a symlink in the image
(or one planted in ``dest`` by an earlier entry) is never followed, so nothing is ever
written outside ``dest``.  Hard links become hard links (within ``dest``); setuid, setgid
and sticky bits and owners only with ``same_owner``; device nodes only with ``devices``.
All-zero chunks of a file's data are left as holes (the file is sparse, as the image is),
and every chunk is reported to the progress callback (:data:`sysexport.data.PROGRESS`).
"""
from __future__ import annotations

import errno
import os
import stat as _stat
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Callable

from ..data import report_progress
from ..errors import InvalidImageError, InvalidInputError, SysExportError

if TYPE_CHECKING:
    from .view import Stat, View

ProgressFactory = Callable[[int], AbstractContextManager[Any]]
"""Told the bytes of file data to extract, returns the context (a progress bar) to copy them in."""

CHUNK_BYTES = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _components(path: str, where: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    for p in parts:
        if p in (".", "..") or "\0" in p:
            raise InvalidImageError(f"{where}: name {p!r} cannot be extracted (it would leave the destination)")
    return parts


class _Dest:
    """The destination directory, entered component by component without following links."""

    def __init__(self, dest: str, force: bool) -> None:
        os.makedirs(dest, exist_ok=True)
        try:
            self.fd = os.open(dest, _DIR_FLAGS)
        except OSError as e:
            raise SysExportError(f"{dest}: cannot open the destination directory: {e.strerror}") from e
        self.dest = dest
        self.force = force
        self._cache: dict[tuple[str, ...], int] = {(): self.fd}

    def close(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()

    def directory(self, parts: tuple[str, ...], create: bool = True) -> int:
        """The descriptor of the directory ``parts`` below dest (made when missing)."""
        fd = self._cache.get(parts)
        if fd is not None:
            return fd
        parent = self.directory(parts[:-1], create)
        name = parts[-1]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise SysExportError(f"{os.path.join(self.dest, *parts)}: exists and is not a directory "
                                     "(a symlink is never followed)") from None
            raise
        self._cache[parts] = fd
        return fd

    def make_room(self, parent: int, name: str, where: str) -> None:
        """Remove an existing non-directory entry when forced, else refuse."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not self.force:
            raise SysExportError(f"{where}: already exists (use --force to replace it)")
        if _stat.S_ISDIR(st.st_mode):
            raise SysExportError(f"{where}: already exists as a directory")
        os.unlink(name, dir_fd=parent)


def extract_entries(view: View, roots: Iterable[Stat], dest: str, *, force: bool, devices: bool,
                    same_owner: bool, skipped: list[str] | None = None,
                    progress: ProgressFactory | None = None, totals: dict[str, int] | None = None) -> list[str]:
    """Extract every entry under each of ``roots`` (see the module docstring); the paths of
    entries not made (device nodes without ``devices``, sockets) go to ``skipped``.
    ``progress`` is told the bytes of data to copy once the entries are listed, and its
    context is entered for the copying; ``totals`` counts what was made by kind (``file``,
    ``dir``, ``symlink``, ``hardlink``, ``fifo``, ``device``) and ``bytes`` of file data."""
    entries = [entry for root in roots for entry in view.walk(root.path)]
    data_bytes = sum(e.size for e in entries if e.type == "file")
    with progress(data_bytes) if progress is not None else nullcontext():
        return _extract_all(view, entries, dest, force=force, devices=devices, same_owner=same_owner,
                            skipped=skipped, totals={} if totals is None else totals)


def _extract_all(view: View, entries: list[Stat], dest: str, *, force: bool, devices: bool, same_owner: bool,
                 skipped: list[str] | None, totals: dict[str, int]) -> list[str]:
    out = _Dest(dest, force)
    written: list[str] = []
    first_link: dict[object, tuple[tuple[str, ...], str]] = {}
    dir_times: list[tuple[tuple[str, ...], Stat]] = []
    try:
        for entry in entries:
            rel = tuple(_components(entry.path, f"{view.name}:{entry.path}"))
            where = os.path.join(dest, *rel) if rel else dest
            try:
                made = _extract_one(view, out, entry, rel, where, first_link, devices, same_owner)
            except OSError as e:
                raise SysExportError(f"{where}: cannot extract {view.name}:{entry.path}: {e.strerror}") from e
            if made:
                written.append("/".join(rel) or ".")
                totals[made] = totals.get(made, 0) + 1
                if made == "file":
                    totals["bytes"] = totals.get("bytes", 0) + entry.size
            elif skipped is not None:
                skipped.append(f"{'/'.join(rel)}: skipped ({entry.type}"
                               f"{'; use --devices' if entry.type in ('chardev', 'blockdev') else ''})")
            if entry.is_dir:
                dir_times.append((rel, entry))
        for rel, entry in reversed(dir_times):       # after their contents, deepest first
            fd = out.directory(rel, create=False)
            _set_meta(fd, None, entry, same_owner)
    finally:
        out.close()
    return written


def _extract_one(view: View, out: _Dest, entry: Stat, rel: tuple[str, ...], where: str,
                 first_link: dict[object, tuple[tuple[str, ...], str]], devices: bool, same_owner: bool) -> str:
    """Make one entry; returns what was made (see :func:`extract_entries`'s ``totals``),
    or "" when it was skipped."""
    if entry.is_dir:
        out.directory(rel)
        return "dir"
    if not rel:
        raise InvalidInputError(f"{view.name}:{entry.path}: only a directory can be extracted as the destination")
    parent = out.directory(rel[:-1])
    name = rel[-1]
    if entry.link_id is not None and entry.type == "file":
        seen = first_link.get(entry.link_id)
        if seen is not None:
            out.make_room(parent, name, where)
            os.link(seen[1], name, src_dir_fd=out.directory(seen[0], create=False), dst_dir_fd=parent,
                    follow_symlinks=False)
            report_progress(entry.size)             # counted in the total, not copied again
            return "hardlink"
        first_link[entry.link_id] = (rel[:-1], name)
    out.make_room(parent, name, where)
    if entry.type == "file":
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     0o600, dir_fd=parent)
        try:
            _copy_content(view, entry, fd)
            _set_meta(fd, None, entry, same_owner)
        finally:
            os.close(fd)
        return "file"
    if entry.type == "symlink":
        os.symlink(entry.target or "", name, dir_fd=parent)
        _set_meta(parent, name, entry, same_owner)
        return "symlink"
    if entry.type == "fifo":
        os.mkfifo(name, 0o600, dir_fd=parent)
        _set_meta(parent, name, entry, same_owner)
        return "fifo"
    if entry.type in ("chardev", "blockdev"):
        if not devices:
            return ""
        kind = _stat.S_IFCHR if entry.type == "chardev" else _stat.S_IFBLK
        major, minor = entry.rdev or (0, 0)
        os.mknod(name, kind | 0o600, os.makedev(major, minor), dir_fd=parent)
        _set_meta(parent, name, entry, same_owner)
        return "device"
    return ""                                       # sockets are not made


def _copy_content(view: View, entry: Stat, fd: int) -> None:
    """Copy a file's data from the view into ``fd`` (a new, empty file), chunk by chunk:
    all-zero chunks are skipped (holes), the size set at the end."""
    pos = 0
    with view._content(entry) as src:
        while True:
            chunk = src.read(CHUNK_BYTES)
            if not chunk:
                break
            if chunk.count(0) != len(chunk):
                data = memoryview(chunk)
                at = pos
                while data:
                    n = os.pwrite(fd, data, at)
                    data, at = data[n:], at + n
            pos += len(chunk)
            report_progress(len(chunk))
    os.ftruncate(fd, pos)


def _set_meta(fd: int, name: str | None, entry: Stat, same_owner: bool) -> None:
    """Owner (when asked), permissions (setuid/setgid/sticky only with same_owner) and times.
    ``name`` None: ``fd`` is the entry itself; else ``name`` relative to directory ``fd``."""
    symlink = entry.type == "symlink"
    if same_owner and entry.uid is not None and entry.gid is not None:
        if name is None:
            os.fchown(fd, entry.uid, entry.gid)
        else:
            os.chown(name, entry.uid, entry.gid, dir_fd=fd, follow_symlinks=False)
    if not symlink:
        mode = entry.mode if entry.mode is not None else (0o755 if entry.is_dir else 0o644)
        perm = mode & (0o7777 if same_owner else 0o777)
        if name is None:
            os.fchmod(fd, perm)
        else:
            os.chmod(name, perm, dir_fd=fd)
    if entry.mtime is not None:
        atime = entry.atime if entry.atime is not None else entry.mtime
        try:
            if name is None:
                os.utime(fd, (atime, entry.mtime))
            else:
                os.utime(name, (atime, entry.mtime), dir_fd=fd, follow_symlinks=False)
        except (OverflowError, ValueError):
            pass                                    # a time the host cannot hold: keep now
