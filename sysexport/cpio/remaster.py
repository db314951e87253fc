"""A cpio archive as the preloaded source of a streaming writer (:meth:`CPIO.from_image`).

The source is held lazily: its path, and an index of its hard-linked names (which name
of each file carries the data); nothing per ordinary entry and no data.  When the writer
streams (its first ``add()``, ``plan()`` or ``finish()``) the source is decoded once more,
in order, and every entry kept is written at once with its data read from the source as
it passes (a compressed source is never decoded twice for it):

1. the entries neither removed nor renamed, in the source's order;
2. the renamed ones (a second pass over the source), under their new names, after every
   directory of the source is written, so that a new parent anywhere in the source exists;
3. then what ``add()`` gives.

Each entry goes through the writer's namespace (a missing parent is written as an implied
directory first).  Inode numbers are given anew (the writer's own count); the names of one
hard-linked file keep one number, ``nlink`` becomes the number of its names kept, and the
data stays on the name that carried it (GNU cpio, libarchive and the kernel accept data on
any name of the group).  Removing the name that carries the data while other names stay is
refused (the others would become empty).  ``remove()``/``rename()`` of a name the source
does not have is an InvalidInputError when the writer streams (its output is then removed).
Several segments (an early uncompressed archive and a compressed one) become one archive,
compressed as the writer says.  A hostile source is an InvalidImageError, as in the cpio
view (:mod:`sysexport.cpio.view`), whose decoder this uses.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from ..data import CHUNK_BYTES, DataSource, pwrite_all
from ..errors import InvalidImageError, InvalidInputError, SourceError
from ..fileinfo import FileInfo, HostPath, normalize_name
from .newc import NEWC_HEADER_BYTES, TRAILER_NAME, pad_bytes
from .view import FIELDS, NEWC_MAGICS, PATH_MAX, SYMLINK_MAX, _kind, _Stream

if TYPE_CHECKING:
    from .writer import CPIO


class SourceEntry:
    """One entry of the source as it passes: header fields, name, and its data unread."""

    __slots__ = ("name", "fields", "target", "stream", "left")

    def __init__(self, name: str, fields: dict[str, int], target: bytes | None, stream: _Stream) -> None:
        self.name, self.fields, self.target, self.stream = name, fields, target, stream
        self.left = 0 if target is not None else fields["filesize"]


class _PassingData(DataSource):
    """A source entry's data, read once, in order, while the source passes."""

    __slots__ = ("entry", "size_bytes", "what")

    def __init__(self, entry: SourceEntry, what: str) -> None:
        self.entry, self.size_bytes, self.what = entry, entry.left, what

    def describe(self) -> str:
        return self.what

    def iter_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        e = self.entry
        if e.left != self.size_bytes:
            raise SourceError(f"{self.what}: read twice from the passing source", path=self.what)
        while e.left:
            n = min(chunk_bytes, e.left)
            chunk = e.stream.read(n, self.what)
            e.left -= n
            yield chunk

    def read_all(self, limit: int = 1 << 20) -> bytes:
        return b"".join(self.iter_chunks())

    def write_to(self, out_fd: int, offset: int) -> None:
        for chunk in self.iter_chunks():
            pwrite_all(out_fd, chunk, offset)
            offset += len(chunk)


def iter_source(f: IO[bytes], size: int, what: str) -> Iterator[SourceEntry]:
    """Every entry of every segment, in order (a trailer ends a segment); the data of an
    entry not read by the caller is skipped."""
    pos = 0
    segments = 0
    while pos < size:
        f.seek(pos)
        head = f.read(min(CHUNK_BYTES, size - pos))
        stripped = head.lstrip(b"\0")
        if not stripped:
            pos += len(head)            # zero padding between archives (the kernel skips it)
            continue
        pos += len(head) - len(stripped)
        kind = _kind(stripped[:8])
        if kind is None:
            raise InvalidImageError(f"{what}: {'no newc archive or known compression' if not segments else 'data that is no archive'} at byte {pos}")
        stream = _Stream(f, pos, size, kind)
        yield from _members(stream, what)
        end = stream.consumed_end if stream.consumed_end is not None else stream.start + stream.pos
        if kind != "newc" and stream.consumed_end is None:
            raise InvalidImageError(f"{what}: the {kind} stream at byte {pos} is truncated")
        if end <= pos:
            raise InvalidImageError(f"{what}: no progress at byte {pos}")
        pos = end
        segments += 1


def _members(s: _Stream, what: str) -> Iterator[SourceEntry]:
    while True:
        at = s.pos
        raw = s.read(NEWC_HEADER_BYTES, "a newc header")
        if raw[:6] not in NEWC_MAGICS:
            raise InvalidImageError(f"{what}: bad magic {raw[:6]!r} at decoded byte {at}")
        try:
            fields = {k: int(raw[6 + 8 * i:14 + 8 * i], 16) for i, k in enumerate(FIELDS)}
        except ValueError:
            raise InvalidImageError(f"{what}: a header field at decoded byte {at} is not hexadecimal") from None
        namesize = fields["namesize"]
        if not 1 <= namesize <= PATH_MAX:
            raise InvalidImageError(f"{what}: name size {namesize} at decoded byte {at} (at most {PATH_MAX})")
        name_raw = s.read(namesize, "a name")
        s.skip(pad_bytes(NEWC_HEADER_BYTES + namesize), "name padding")
        if name_raw[-1:] != b"\0" or b"\0" in name_raw[:-1]:
            raise InvalidImageError(f"{what}: the name at decoded byte {at} is not one NUL-terminated string")
        name = name_raw[:-1].decode("utf-8", "surrogateescape")
        if name == TRAILER_NAME:
            if s.kind == "newc" or not s.skip_zeros():
                return
            if s.peek(6) in NEWC_MAGICS:
                continue
            raise InvalidImageError(f"{what}: data that is no newc header after the trailer at decoded byte {s.pos}")
        size = fields["filesize"]
        target = None
        if stat.S_ISLNK(fields["mode"]):
            if size > SYMLINK_MAX:
                raise InvalidImageError(f"{what}: {name}: symlink target of {size} bytes")
            target = s.read(size, f"{name}: the symlink target")
        elif not stat.S_ISREG(fields["mode"]) and size:
            raise InvalidImageError(f"{what}: {name}: {size} bytes of data on an entry of mode {fields['mode']:#o}")
        entry = SourceEntry(name, fields, target, s)
        yield entry
        s.skip(entry.left, f"{name}: {size} bytes of data")
        s.skip(pad_bytes(size), "data padding")


def archive_name(raw: str) -> str:
    """The writer's name for a source name ("./a/b", "/a/b", "a/b" -> "a/b"; "." -> "")."""
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name in (".", "") else name


class Preload:
    """The source archive ``src`` and the edits to apply when it is streamed."""

    def __init__(self, src: HostPath) -> None:
        self.path = os.fsdecode(src)
        try:
            self.size = os.stat(self.path).st_size
            with open(self.path, "rb") as f:
                self.links = self._scan(f)
        except OSError as e:
            raise InvalidInputError(f"{self.path}: cannot read the source archive: {e.strerror}") from e
        self.removes: dict[str, bool] = {}      # name -> matched
        self.renames: dict[str, list[object]] = {}   # old -> [new, matched]

    def _scan(self, f: IO[bytes]) -> dict[tuple[int, int, int], list[tuple[str, bool]]]:
        """One pass: the source is a valid archive; the names of each hard-linked file."""
        links: dict[tuple[int, int, int], list[tuple[str, bool]]] = {}
        for e in iter_source(f, self.size, self.path):
            fl = e.fields
            if fl["nlink"] > 1 and stat.S_ISREG(fl["mode"]):
                links.setdefault((fl["devmajor"], fl["devminor"], fl["ino"]), []).append(
                    (archive_name(e.name), fl["filesize"] > 0))
        return links

    def remove(self, path: str) -> None:
        name = normalize_name(path)
        for names in self.links.values():
            carriers = [n for n, data in names if data and _under(n, name)]
            kept = [n for n, _ in names if not _under(n, name)]
            if carriers and kept:
                raise InvalidInputError(f"{path}: {carriers[0]} carries the data of a hard-linked file whose other "
                                        f"names stay ({', '.join(kept[:3])}); remove those too, or rename instead")
        self.removes[name] = False

    def rename(self, old: str, new: str) -> None:
        o, n = normalize_name(old), normalize_name(new)
        if not o or not n or _under(n, o):
            raise InvalidInputError(f"rename({old!r}, {new!r}): the root cannot be renamed, nor a directory "
                                    "into itself")
        self.renames[o] = [n, False]

    def _fate(self, name: str) -> tuple[str | None, bool]:
        """(name to write, renamed?) of a source name; None when it is removed."""
        if self.removes or self.renames:
            probe = name
            while True:
                if probe in self.removes:
                    self.removes[probe] = True
                    return None, False
                slot = self.renames.get(probe)
                if slot is not None:
                    slot[1] = True
                    return str(slot[0]) + name[len(probe):], True
                if "/" not in probe:
                    break
                probe = probe.rsplit("/", 1)[0]
        return name, False

    def stream(self, writer: CPIO) -> None:
        """Write the kept source entries into ``writer`` (see the module docstring)."""
        kept = {key: sum(1 for n, _ in names if self._fate_quiet(n) is not None) for key, names in self.links.items()}
        inos: dict[tuple[int, int, int], int] = {}
        with open(self.path, "rb") as f:
            for renamed_pass in (False, True):
                if renamed_pass and not self.renames:
                    break
                f.seek(0)
                for e in iter_source(f, self.size, self.path):
                    name, renamed = self._fate(archive_name(e.name))
                    if name is None or renamed != renamed_pass:
                        continue
                    self._write(writer, e, name, kept, inos, strict=renamed)
        missing = [p for p, hit in self.removes.items() if not hit] + [p for p, s in self.renames.items() if not s[1]]
        if missing:
            raise InvalidInputError(f"{self.path}: no entry {', '.join(missing)} in the source archive "
                                    "(given to remove() or rename())")

    def _fate_quiet(self, name: str) -> str | None:
        saved = ({k: v for k, v in self.removes.items()}, {k: list(v) for k, v in self.renames.items()})
        out = self._fate(name)[0]
        self.removes, self.renames = saved
        return out

    def _write(self, writer: CPIO, e: SourceEntry, name: str, kept: dict[tuple[int, int, int], int],
               inos: dict[tuple[int, int, int], int], *, strict: bool) -> None:
        fl = e.fields
        mode = fl["mode"]
        if stat.S_IFMT(mode) == 0:
            raise InvalidImageError(f"{self.path}: {e.name}: mode {mode:#o} has no file type")
        info = FileInfo(name, mode, 0 if e.target is not None else e.left, None, e.target, fl["mtime"],
                        uid=fl["uid"], gid=fl["gid"], rdev_major=fl["rdevmajor"], rdev_minor=fl["rdevminor"])
        if info.size:
            info.source = _PassingData(e, f"{self.path}: {e.name}")
        key = (fl["devmajor"], fl["devminor"], fl["ino"])
        ino, nlink = 0, fl["nlink"] if info.is_dir else 1
        if key in kept and stat.S_ISREG(mode):
            nlink = max(kept[key], 1)
            ino = inos.get(key, 0)
        new_ino = writer._add_source(info, ino=ino, nlink=nlink, strict=strict)
        if key in kept and stat.S_ISREG(mode):
            inos.setdefault(key, new_ino)
        if info.source is not None:
            writer._flush()         # its data is read now, while the source passes


def _under(name: str, top: str) -> bool:
    return not top or name == top or name.startswith(top + "/")


__all__ = ["Preload", "SourceEntry", "iter_source", "archive_name"]
