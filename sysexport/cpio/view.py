"""The "cpio" view: an initramfs-style archive, as the kernel unpacks it.

An initramfs may be several archives one after another, each plain or compressed (the
kernel's ``unpack_to_rootfs``: an uncompressed early microcode archive, then a compressed
main one).  Every segment is read as a stream: newc ("070701") and newc with checksums
("070702") headers (``Documentation/driver-api/early-userspace/buffer-format.rst``), gzip,
xz, zstd, bzip2 and lzma compression.  The archive is indexed once, streaming, without
keeping file data; a file's bytes are read on demand (an uncompressed segment by its
extents in the image, a compressed one by decoding it again up to the file).

Hostile input: every header field is checked (hexadecimal, sizes within the stream, names
NUL-terminated and at most PATH_MAX), a truncated stream is an InvalidImageError naming the
byte offset, the number of entries and the decoded size are bounded.
"""
from __future__ import annotations

import bz2
import io
import lzma
import stat as _stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from ..errors import InvalidImageError
from ..image.view import MAX_ENTRIES, TYPES, ExtentReader, SeekableStream, Stat, View, normalize
from ._structs import NEWC_HEADER_BYTES, TRAILER_NAME, pad_bytes

NEWC_MAGICS = (b"070701", b"070702")
GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
LZMA_MAGIC = b"\x5d\x00\x00"
PATH_MAX = 4096
"""The kernel skips names longer than PATH_MAX (init/initramfs.c); we refuse them."""
SYMLINK_MAX = 4096
CHUNK = 1 << 20
FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor", "rdevmajor",
          "rdevminor", "namesize", "check")


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    if kind == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    if kind == "zstd":
        try:
            import zstandard
        except ImportError:
            raise InvalidImageError("cpio: a zstd-compressed archive needs the zstandard package "
                                    "(pip install sysexport[zstd])") from None
        return zstandard.ZstdDecompressor().decompressobj()
    raise InvalidImageError(f"cpio: unknown compression {kind!r}")


def _kind(head: bytes) -> str | None:
    if head[:6] in NEWC_MAGICS:
        return "newc"
    for magic, kind in ((GZIP_MAGIC, "gzip"), (XZ_MAGIC, "xz"), (ZSTD_MAGIC, "zstd"), (BZIP2_MAGIC, "bzip2"),
                        (LZMA_MAGIC, "lzma")):
        if head.startswith(magic):
            return kind
    return None


def looks_like_cpio(head: bytes) -> str | None:
    """The segment kind of bytes that start a cpio archive (plain or compressed), else None.
    A compressed stream is only a candidate: its content decides."""
    return _kind(head)


class _Stream:
    """The decoded bytes of one segment, read forward, with the decoded position."""

    def __init__(self, f: IO[bytes], start: int, end: int, kind: str) -> None:
        self.f, self.start, self.end, self.kind = f, start, end, kind
        self.raw_pos = start
        self.pos = 0
        self.buf = b""
        self.dec = None if kind == "newc" else _decompressor(kind)
        self.eof = False
        self.consumed_end: int | None = None     # image offset where a compressed stream ended

    def _fill(self, want: int) -> None:
        while len(self.buf) < want and not self.eof:
            n = min(CHUNK, self.end - self.raw_pos)
            if n <= 0:
                self.eof = True
                break
            self.f.seek(self.raw_pos)
            raw = self.f.read(n)
            if not raw:
                self.eof = True
                break
            self.raw_pos += len(raw)
            if self.dec is None:
                self.buf += raw
                continue
            try:
                out = self.dec.decompress(raw)
            except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as e:
                raise InvalidImageError(f"cpio: {self.kind} stream at byte {self.start}: {e}") from None
            self.buf += out
            if getattr(self.dec, "eof", False):
                unused = len(getattr(self.dec, "unused_data", b""))
                self.consumed_end = self.raw_pos - unused
                self.eof = True

    def read(self, n: int, what: str) -> bytes:
        self._fill(n)
        if len(self.buf) < n:
            raise InvalidImageError(f"cpio: {what} at decoded byte {self.pos} of the {self.kind} segment at "
                                    f"image byte {self.start}: the archive ends early")
        out, self.buf = self.buf[:n], self.buf[n:]
        self.pos += n
        return out

    def skip(self, n: int, what: str) -> None:
        while n:
            self._fill(min(n, CHUNK))
            if not self.buf:
                raise InvalidImageError(f"cpio: {what}: the {self.kind} segment at image byte {self.start} ends early")
            k = min(n, len(self.buf))
            self.buf = self.buf[k:]
            self.pos += k
            n -= k

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self.buf[:n]

    def skip_zeros(self) -> bool:
        """Skip zero bytes; False when the stream ends (it is then read to its end)."""
        while True:
            self._fill(1)
            if not self.buf:
                return False
            stripped = self.buf.lstrip(b"\0")
            self.pos += len(self.buf) - len(stripped)
            self.buf = stripped
            if stripped:
                return True


@dataclass(frozen=True)
class _Member:
    name: str
    fields: dict[str, int]
    segment: int
    data_pos: int        # decoded offset of the data in its segment
    target: str | None


@dataclass(frozen=True)
class _Segment:
    kind: str
    start: int
    end: int


class CPIOView(View):
    """The files of a (possibly multi-segment, compressed) initramfs archive."""

    name = "cpio"

    def __init__(self, f: IO[bytes], image_size: int, offset: int = 0) -> None:
        self.f = f
        self.image_size = image_size
        self.problems: list[str] = []
        self.segments: list[_Segment] = []
        members = self._index(offset)
        self._build_tree(members)

    # --- indexing ---------------------------------------------------------------------------
    def _index(self, offset: int) -> list[_Member]:
        members: list[_Member] = []
        pos = offset
        while pos < self.image_size:
            self.f.seek(pos)
            head = self.f.read(8)
            if not head.strip(b"\0"):
                # zero padding between archives (the kernel skips it, 4 bytes at a time)
                pos = self._skip_zeros(pos)
                continue
            kind = _kind(head)
            if kind is None:
                if not self.segments:
                    raise InvalidImageError(f"cpio: no newc archive or known compression at byte {pos}")
                self.problems.append(f"cpio: {self.image_size - pos} bytes of unknown data after the archives "
                                     f"at byte {pos}")
                break
            index = len(self.segments)
            stream = _Stream(self.f, pos, self.image_size, kind)
            self._read_members(stream, index, members)
            end = stream.consumed_end if stream.consumed_end is not None else stream.start + stream.pos
            if kind != "newc" and stream.consumed_end is None:
                raise InvalidImageError(f"cpio: the {kind} stream at byte {pos} is truncated")
            self.segments.append(_Segment(kind, pos, end))
            if end <= pos:
                raise InvalidImageError(f"cpio: no progress at byte {pos}")
            pos = end
        return members

    def _skip_zeros(self, pos: int) -> int:
        while pos < self.image_size:
            self.f.seek(pos)
            chunk = self.f.read(min(CHUNK, self.image_size - pos))
            stripped = chunk.lstrip(b"\0")
            if stripped:
                return pos + len(chunk) - len(stripped)
            pos += len(chunk)
        return pos

    def _read_members(self, s: _Stream, segment: int, members: list[_Member]) -> None:
        while True:
            at = s.pos
            raw = s.read(NEWC_HEADER_BYTES, "a newc header")
            if raw[:6] not in NEWC_MAGICS:
                raise InvalidImageError(f"cpio: bad magic {raw[:6]!r} at decoded byte {at} of segment {segment}")
            try:
                fields = {k: int(raw[6 + 8 * i:14 + 8 * i], 16) for i, k in enumerate(FIELDS)}
            except ValueError:
                raise InvalidImageError(f"cpio: a header field at decoded byte {at} of segment {segment} is not "
                                        "hexadecimal") from None
            namesize = fields["namesize"]
            if not 1 <= namesize <= PATH_MAX + 1:
                raise InvalidImageError(f"cpio: name size {namesize} at decoded byte {at} (at most {PATH_MAX + 1})")
            name_raw = s.read(namesize, "a name")
            s.skip(pad_bytes(NEWC_HEADER_BYTES + namesize), "name padding")
            if name_raw[-1:] != b"\0":
                raise InvalidImageError(f"cpio: the name at decoded byte {at} is not NUL-terminated")
            name = name_raw[:-1].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if name == TRAILER_NAME:
                # The trailer ends an archive.  A plain segment ends here (the next segment,
                # after zero padding, is found by the caller); inside a compressed stream the
                # kernel goes on with another archive after zero padding, and so do we.
                if s.kind == "newc" or not s.skip_zeros():
                    return
                if s.peek(6) in NEWC_MAGICS:
                    continue
                raise InvalidImageError(f"cpio: data that is no newc header after the trailer at decoded byte "
                                        f"{s.pos} of the {s.kind} segment at image byte {s.start}")
            size = fields["filesize"]
            target = None
            data_pos = s.pos
            if _stat.S_ISLNK(fields["mode"]):
                if size > SYMLINK_MAX:
                    raise InvalidImageError(f"cpio: {name}: symlink target of {size} bytes")
                target = s.read(size, f"{name}: the symlink target").decode("utf-8", "surrogateescape")
            else:
                s.skip(size, f"{name}: {size} bytes of data")
            s.skip(pad_bytes(size), "data padding")
            members.append(_Member(name, fields, segment, data_pos, target))
            if len(members) > MAX_ENTRIES:
                raise InvalidImageError(f"cpio: more than {MAX_ENTRIES} entries")

    # --- the tree -----------------------------------------------------------------------------
    def _build_tree(self, members: list[_Member]) -> None:
        self._members: dict[str, _Member] = {}
        self._kids: dict[str, dict[str, None]] = {"/": {}}
        data_of: dict[tuple[int, int, int], _Member] = {}
        for m in members:
            path = normalize(m.name)
            if path != "/" + m.name.strip("/").removeprefix("./") and m.name not in (".", "./"):
                self.problems.append(f"cpio: name {m.name!r} normalized to {path!r}")
            if path == "/":
                self._members["/"] = m
                continue
            self._members[path] = m          # a later entry replaces an earlier one (as the kernel does)
            parent = path.rsplit("/", 1)[0] or "/"
            while True:
                self._kids.setdefault(parent, {})
                grand = parent.rsplit("/", 1)[0] or "/"
                if parent == "/":
                    break
                self._kids.setdefault(grand, {})[parent] = None
                parent = grand
            self._kids[path.rsplit("/", 1)[0] or "/"][path] = None
            if _stat.S_ISDIR(m.fields["mode"]):
                self._kids.setdefault(path, {})
            key = (m.fields["devmajor"], m.fields["devminor"], m.fields["ino"])
            if m.fields["nlink"] > 1 and m.fields["filesize"] and _stat.S_ISREG(m.fields["mode"]):
                data_of[key] = m
        self._link_data = data_of

    def _stat(self, path: str) -> Stat:
        m = self._members.get(path)
        if m is None:
            return Stat(path, "dir", mode=0o40755)       # implied by a deeper name
        f = m.fields
        mode = f["mode"]
        kind = TYPES.get(_stat.S_IFMT(mode), "file")
        key = (f["devmajor"], f["devminor"], f["ino"])
        linked = f["nlink"] > 1 and kind == "file"
        holder = self._link_data.get(key, m) if linked else m
        size = holder.fields["filesize"] if kind == "file" else (len(m.target or "") if kind == "symlink" else 0)
        seg = self.segments[holder.segment]
        extents: tuple[tuple[int, int], ...] = ()
        if kind == "file" and seg.kind == "newc" and size:
            extents = ((seg.start + holder.data_pos, size),)
        return Stat(path, kind, size, mode=mode, uid=f["uid"], gid=f["gid"], mtime=float(f["mtime"]),
                    nlink=f["nlink"], inode=f["ino"], target=m.target,
                    rdev=(f["rdevmajor"], f["rdevminor"]) if kind in ("chardev", "blockdev") else None,
                    extents=extents, link_id=key if linked else None,
                    fields={"segment": holder.segment, "compression": seg.kind, "_member": holder})

    def _root(self) -> Stat:
        return self._stat("/")

    def _children(self, directory: Stat) -> list[Stat]:
        return [self._stat(p) for p in sorted(self._kids.get(directory.path, {}))]

    def _content(self, entry: Stat) -> IO[bytes]:
        m: _Member = entry.fields["_member"]
        seg = self.segments[m.segment]
        if seg.kind == "newc":
            return io.BufferedReader(ExtentReader(self.f, entry.extents, entry.size, entry.path, self.image_size))
        return io.BufferedReader(_DecodedFile(lambda: _Stream(self.f, seg.start, seg.end, seg.kind),
                                              m.data_pos, entry.size, entry.path))


class _DecodedFile(SeekableStream):
    """A file inside a compressed segment: decoded from the segment's start on demand
    (seeking backwards decodes again)."""

    def __init__(self, make: Callable[[], _Stream], data_pos: int, size: int, what: str) -> None:
        super().__init__()
        self._make, self._data_pos, self._size, self._what = make, data_pos, size, what
        self._stream: _Stream | None = None
        self._pos = 0

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        s = self._stream
        target = self._data_pos + self._pos
        if s is None or s.pos > target:
            s = self._stream = self._make()
        s.skip(target - s.pos, self._what)
        data = s.read(want, self._what)
        buffer[:want] = data
        self._pos += want
        return want


def iter_segments(view: CPIOView) -> Iterator[_Segment]:
    """The archive's segments (kind, start and end in the image)."""
    return iter(view.segments)
