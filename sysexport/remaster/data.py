"""Data sources that read a file's bytes from the source image when the new one is written.

A remaster never reads a file whole: each regular file of the source becomes an
:class:`ExtentsData` (its extents of the source image, streamed with
``copy_file_range`` through :class:`~sysexport.data.FileObjData`) or, for a zisofs file, a
:class:`ViewFileData` (the reader's decompressing stream, opened at write time).  The
source image's file must stay open until the writer's ``finish()``.
"""
from __future__ import annotations

from typing import IO, Any, BinaryIO, Iterable, Iterator, cast

from ..data import CHUNK_BYTES, DataSource, FileObjData, pwrite_all, report_progress
from ..errors import InvalidInputError, SourceError


class ExtentsData(DataSource):
    """``size_bytes`` bytes stored in ``extents`` ((offset, size) pairs) of an open image
    file, in order (a multi-extent ISO file, a FAT cluster chain, a partition)."""

    __slots__ = ("image", "extents", "size_bytes", "what")

    def __init__(self, image: IO[bytes], extents: Iterable[tuple[int, int]], size_bytes: int, what: str) -> None:
        self.image = image
        self.size_bytes = int(size_bytes)
        self.what = what
        runs: list[tuple[int, int]] = []
        left = self.size_bytes
        for offset, size in extents:
            n = min(int(size), left)
            if n > 0:
                runs.append((int(offset), n))
                left -= n
        if left:
            raise SourceError(f"{what}: {size_bytes} bytes but its extents hold {size_bytes - left}", path=what)
        self.extents = tuple(runs)

    def describe(self) -> str:
        return self.what

    def _parts(self) -> Iterator[tuple[int, FileObjData]]:
        pos = 0
        for offset, size in self.extents:
            yield pos, FileObjData(cast(BinaryIO, self.image), size, offset)
            pos += size

    def write_to(self, out_fd: int, offset: int) -> None:
        for pos, part in self._parts():
            try:
                part.write_to(out_fd, offset + pos)
            except SourceError as e:
                raise SourceError(f"{self.what}: {e}", path=self.what) from e
        # FileObjData reported each part's bytes already.

    def iter_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        for _pos, part in self._parts():
            yield from part.iter_chunks(chunk_bytes)

    def read_all(self, limit: int = 1 << 20) -> bytes:
        if self.size_bytes > limit:
            raise InvalidInputError(f"{self.what}: {self.size_bytes} bytes, at most {limit} expected here")
        return b"".join(self.iter_chunks())


class ViewFileData(DataSource):
    """A file's decoded bytes as a read-side view gives them (zisofs decompressed), read
    in chunks when the image is written."""

    __slots__ = ("view", "path", "size_bytes")

    def __init__(self, view: Any, path: str, size_bytes: int) -> None:
        self.view = view
        self.path = path
        self.size_bytes = int(size_bytes)

    def describe(self) -> str:
        return f"{self.view.name}:{self.path}"

    def iter_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        left = self.size_bytes
        with self.view.open(self.path) as f:
            while left:
                piece = f.read(min(chunk_bytes, left))
                if not piece:
                    raise SourceError(f"{self.describe()}: short read: {left} of {self.size_bytes} bytes missing",
                                      path=self.describe())
                left -= len(piece)
                yield piece

    def write_to(self, out_fd: int, offset: int) -> None:
        pos = offset
        for piece in self.iter_chunks():
            if piece.count(0) != len(piece):
                pwrite_all(out_fd, piece, pos)
            pos += len(piece)
        report_progress(self.size_bytes)

    def read_all(self, limit: int = 1 << 20) -> bytes:
        if self.size_bytes > limit:
            raise InvalidInputError(f"{self.describe()}: {self.size_bytes} bytes, at most {limit} expected here")
        return b"".join(self.iter_chunks())


class HostFileData(DataSource):
    """A host file's bytes (a :class:`~sysexport.data.PathData`), written through its own
    ``write_to``: the VFAT writer gathers small PathData files into one buffer whose zero
    gaps would overwrite the source-image files a remaster writes between them (see the
    report of issue 13's remaster), so host files a remaster adds are not PathData."""

    __slots__ = ("inner", "size_bytes")

    def __init__(self, inner: DataSource) -> None:
        self.inner = inner
        self.size_bytes = inner.size_bytes

    def describe(self) -> str:
        return self.inner.describe()

    def write_to(self, out_fd: int, offset: int) -> None:
        self.inner.write_to(out_fd, offset)

    def read_all(self, limit: int = 1 << 20) -> bytes:
        return self.inner.read_all(limit)

    def iter_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        return self.inner.iter_chunks(chunk_bytes)
