"""The read side's contract: what every view of an image offers, whatever its format.

A *view* is one namespace of an image: the Rock Ridge, Joliet or plain ISO 9660 tree of an
ISO session, a FAT volume, a CPIO archive.  Each format's view subclasses :class:`View`
and provides three things: :meth:`View._root`, :meth:`View._children` (the entries of one
directory) and :meth:`View._content` (the bytes of one file, as a stream).  Everything
else (path lookup, ``walk``, ``stat``, ``open``, ``extract``) is here, once, so that every
view behaves alike and extraction is safe for all of them.

Entries are :class:`Stat` values: what ``stat()`` gives and what ``ls --json`` prints.
Fields a view does not have are None (and absent from the JSON).
"""
from __future__ import annotations

import io
import os
import stat as _stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import InvalidImageError, InvalidInputError, SysExportError

TYPES = {_stat.S_IFREG: "file", _stat.S_IFDIR: "dir", _stat.S_IFLNK: "symlink", _stat.S_IFCHR: "chardev",
         _stat.S_IFBLK: "blockdev", _stat.S_IFIFO: "fifo", _stat.S_IFSOCK: "socket"}
"""The ``type`` of a :class:`Stat` by the file type bits of its mode."""
TYPE_BITS = {name: bits for bits, name in TYPES.items()}

MAX_DEPTH = 1024
"""Deeper trees are refused (a directory cycle in a hostile image would never end)."""
MAX_ENTRIES = 10_000_000
"""More entries than this in one walk are refused (bounded memory and time)."""


@dataclass(frozen=True)
class Stat:
    """One entry of a view (what ``stat()`` returns).

    ``path`` is '/'-separated and absolute within the view ("/" is the root).  ``extents``
    are (byte offset in the image, size) pairs holding the file's bytes as stored (a
    compressed zisofs file's compressed bytes).  ``link_id`` is the hard-link identity:
    two paths with the same ``link_id`` are one file.  ``fields`` holds what a format adds
    (the FAT 8.3 name and attributes, the ISO record's flags...), for ``inspect``.
    """

    path: str
    type: str
    size: int = 0
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    mtime: float | None = None
    atime: float | None = None
    ctime: float | None = None
    nlink: int | None = None
    inode: int | None = None
    target: str | None = None
    rdev: tuple[int, int] | None = None
    extents: tuple[tuple[int, int], ...] = ()
    link_id: Any = None
    fields: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1] if self.path != "/" else "/"

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"

    @property
    def is_file(self) -> bool:
        return self.type == "file"

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``sysexport ls --json`` prints: keys path, type, size, mode, uid,
        gid, mtime, nlink, inode, target, rdev ([major, minor]), extents ([[offset, size],
        ...]); a key is absent when the view has no such field."""
        out: dict[str, Any] = {"path": self.path, "type": self.type, "size": self.size}
        for key in ("mode", "uid", "gid", "mtime", "atime", "ctime", "nlink", "inode", "target"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.rdev is not None:
            out["rdev"] = [self.rdev[0], self.rdev[1]]
        if self.extents:
            out["extents"] = [[o, s] for o, s in self.extents]
        return out


def normalize(path: str) -> str:
    """An absolute, '/'-separated path with no '.', '..' or empty components ('..' never
    climbs above the root)."""
    if not isinstance(path, str):
        raise InvalidInputError(f"path: expected a str, found {type(path).__name__}")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


class View:
    """One namespace of an image (subclass it: see the module docstring).

    ``name`` is the view's name as :meth:`sysexport.image.Image.view` knows it ("rr",
    "joliet", "iso9660", "fat", "fat:2", "cpio").
    """

    name = "?"

    # --- what a format provides ---------------------------------------------------------------
    def _root(self) -> Stat:
        raise NotImplementedError

    def _children(self, directory: Stat) -> list[Stat]:
        """The entries of ``directory`` (not '.' and '..'), with full paths."""
        raise NotImplementedError

    def _content(self, entry: Stat) -> IO[bytes]:
        """A readable (and, where the format allows, seekable) binary stream of a regular
        file's bytes, decoded (zisofs decompressed)."""
        raise NotImplementedError

    # --- what every view offers ---------------------------------------------------------------
    def stat(self, path: str) -> Stat:
        """The entry at ``path``; InvalidInputError when there is none."""
        target = normalize(path)
        entry = self._root()
        if target == "/":
            return entry
        walked = ""
        for part in target[1:].split("/"):
            if not entry.is_dir:
                raise InvalidInputError(f"{self.name}:{target}: {walked or '/'} is not a directory")
            walked += "/" + part
            for child in self._children(entry):
                if child.name == part:
                    entry = child
                    break
            else:
                raise InvalidInputError(f"{self.name}:{target}: no such file or directory")
        return entry

    def listdir(self, path: str = "/") -> list[str]:
        """The names in the directory at ``path``, in the view's order."""
        entry = self.stat(path)
        if not entry.is_dir:
            raise InvalidInputError(f"{self.name}:{entry.path}: not a directory")
        return [c.name for c in self._children(entry)]

    def walk(self, path: str = "/") -> Iterator[Stat]:
        """Every entry under ``path`` (itself first), parents before children, depth first.

        Directory cycles and absurd depths in a hostile image end the walk with an
        InvalidImageError naming the path."""
        top = self.stat(path)
        seen: set[Any] = set()
        count = 0
        stack: list[tuple[Stat, int]] = [(top, 0)]
        while stack:
            entry, depth = stack.pop()
            count += 1
            if count > MAX_ENTRIES:
                raise InvalidImageError(f"{self.name}: more than {MAX_ENTRIES} entries under {top.path}")
            yield entry
            if not entry.is_dir:
                continue
            key = entry.link_id if entry.link_id is not None else (entry.extents or None)
            if key is not None:
                if key in seen:
                    raise InvalidImageError(f"{self.name}:{entry.path}: directory loop (it contains itself)")
                seen.add(key)
            if depth >= MAX_DEPTH:
                raise InvalidImageError(f"{self.name}:{entry.path}: directories nested deeper than {MAX_DEPTH}")
            stack.extend((c, depth + 1) for c in reversed(self._children(entry)))

    def open(self, path: str) -> IO[bytes]:
        """A binary file of the regular file at ``path`` (read, seek, tell; close it)."""
        entry = self.stat(path)
        if not entry.is_file:
            raise InvalidInputError(f"{self.name}:{entry.path}: not a regular file ({entry.type})")
        return self._content(entry)

    def read(self, path: str, limit: int = 64 << 20) -> bytes:
        """The whole content of a small file (at most ``limit`` bytes, else an error)."""
        with self.open(path) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidInputError(f"{self.name}:{normalize(path)}: more than {limit} bytes; use open()")
        return data

    def extract(self, dest: str | os.PathLike[str], paths: Iterable[str] | None = None, *,
                force: bool = False, devices: bool = False, same_owner: bool = False,
                skipped: list[str] | None = None) -> list[str]:
        """Write entries (all, or those under ``paths``) below the host directory ``dest``.

        Never outside ``dest``: names are normalized, symlinks inside ``dest`` are never
        followed (a file is created with O_NOFOLLOW below directories this call made or
        checked), hard links become hard links, setuid/setgid/sticky bits and owners only with
        ``same_owner``, device nodes only with ``devices``.  An existing file is an error
        unless ``force``.  Returns the paths written (relative to ``dest``); what was not
        made (devices without ``devices``, sockets) is listed in ``skipped`` when given.
        """
        from .extract import extract_entries
        roots = [self.stat(p) for p in paths] if paths else [self._root()]
        return extract_entries(self, roots, os.fspath(dest), force=force, devices=devices,
                               same_owner=same_owner, skipped=skipped)


class SeekableStream(io.RawIOBase):
    """The read-only, seekable stream a view's ``_content`` returns: subclasses set
    ``_size`` (the content's length), ``_pos`` and ``_what`` (for messages) and provide
    ``readinto``; position, seeking and the io protocol are here."""

    _size = 0
    _pos = 0
    _what = "file"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise InvalidInputError(f"{self._what}: seek to {pos}")
        self._pos = pos
        return pos


class ExtentReader(SeekableStream):
    """A seekable, read-only stream of bytes stored in ``extents`` of an image file.

    ``extents`` are (offset, size) pairs in ``image``; their concatenation is the content,
    cut to ``size_bytes``.  Every read is bounded by the image: reading past its end is an
    InvalidImageError naming the extent, never a short result.
    """

    def __init__(self, image: IO[bytes], extents: Iterable[tuple[int, int]], size_bytes: int,
                 what: str = "file", image_size: int | None = None) -> None:
        super().__init__()
        self._image = image
        self._extents = [(int(o), int(s)) for o, s in extents]
        self._size = int(size_bytes)
        self._pos = 0
        self._what = what
        if image_size is not None:
            for o, s in self._extents:
                if o < 0 or s < 0 or o + s > image_size:
                    raise InvalidImageError(f"{what}: extent [{o}, {o + s}) lies outside the image "
                                            f"({image_size} bytes)")
        if sum(s for _, s in self._extents) < self._size:
            raise InvalidImageError(f"{what}: {self._size} bytes but its extents hold "
                                    f"{sum(s for _, s in self._extents)}")

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        done = 0
        start = 0
        for off, size in self._extents:
            if done >= want:
                break
            end = start + size
            if self._pos + done < end:
                inner = self._pos + done - start
                n = min(size - inner, want - done)
                self._image.seek(off + inner)
                got = self._image.readinto(view[done:done + n])  # type: ignore[attr-defined]
                if got != n:
                    raise InvalidImageError(f"{self._what}: the image ends inside extent [{off}, {off + size})")
                done += n
            start = end
        self._pos += done
        return done


class Unsupported(SysExportError):
    """A view or feature this image has but sysexport cannot read (says which)."""
