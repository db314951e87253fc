"""zisofs: files an ISO 9660 image stores compressed (a Rock Ridge ZF entry), read back
decompressed as a streaming, seekable binary file.

The format (mkzftree, the Linux kernel's fs/isofs/compress.c, libisofs' zisofs filter):
the recorded bytes start with a 16-byte header (``_rrstructs.ZisofsHeader``: magic,
uncompressed size, header size / 4, log2 of the block size), then a table of
``blocks + 1`` little-endian 32-bit byte offsets (from the start of the recorded bytes),
then the blocks: block ``i`` is the zlib stream between offsets ``i`` and ``i + 1``, and
decompresses to one block (the last one to the rest of the file); two equal offsets are a
block of zeros.

Everything is checked before it is used: the block size (2^15 to 2^17, as the kernel and
libisofs take), the table against the recorded size, every offset (rising, inside the
recorded bytes), every block's compressed size (at most twice the block size) and its
output (exactly one block).  Memory is one table (at most 4 bytes a block) and one block.
"""
from __future__ import annotations

import array
import sys
import zlib
from dataclasses import dataclass
from typing import IO, Any, Callable

from ..errors import InvalidImageError
from ..image.view import SeekableStream
from ._rrstructs import (ZF_ALGORITHM_ZISOFS, ZISOFS_HEADER_BYTES, ZISOFS_MAGIC, ZISOFS_MAX_LOG2_BLOCK,
                         ZISOFS_MIN_LOG2_BLOCK, ZISOFS_POINTER_BYTES)

MAX_BLOCK_OVERHEAD = 1024
"""A compressed block may exceed its block size by zlib's worst case; more than twice the
block size plus this is refused (a hostile pointer table cannot make us read GiBs)."""


@dataclass(frozen=True)
class ZisofsInfo:
    """What a ZF entry says about a compressed file (see the module docstring)."""

    algorithm: bytes
    header_size: int          # bytes (the entry's header_size_div4 * 4)
    log2_block_size: int
    uncompressed_size: int

    @property
    def block_size(self) -> int:
        return 1 << self.log2_block_size

    @property
    def supported(self) -> bool:
        return (self.algorithm == ZF_ALGORITHM_ZISOFS
                and ZISOFS_MIN_LOG2_BLOCK <= self.log2_block_size <= ZISOFS_MAX_LOG2_BLOCK
                and self.header_size >= ZISOFS_HEADER_BYTES)

    def fields(self, stored_size: int) -> dict[str, Any]:
        """What ``Stat.fields["zisofs"]`` shows."""
        return {"algorithm": self.algorithm.decode("latin-1"), "block_size": self.block_size,
                "header_size": self.header_size, "uncompressed_size": self.uncompressed_size,
                "stored_size": stored_size}

    @classmethod
    def from_zf(cls, zf: dict[str, Any]) -> ZisofsInfo:
        return cls(bytes(zf["algorithm"]), zf["header_size_div4"] * 4, zf["log2_block_size"],
                   zf["uncompressed_size"])


class UnsupportedCompression(InvalidImageError):
    """A ZF entry names an algorithm or block size this reader does not decode (zisofs2,
    blocks over 128 KiB): the file cannot be read decompressed."""


class ZisofsReader(SeekableStream):
    """The decompressed bytes of a zisofs file whose recorded bytes ``stored`` (a seekable
    binary stream of ``stored_size`` bytes, such as an ExtentReader) holds.

    ``note(message)`` receives deviations that do not stop the reading (a header that
    disagrees with the ZF entry).  Every error is an InvalidImageError naming ``what``.
    """

    def __init__(self, stored: IO[bytes], stored_size: int, info: ZisofsInfo, what: str = "file",
                 note: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self._stored = stored
        self._what = what
        self._size = info.uncompressed_size
        self._pos = 0
        self._cache_index = -1
        self._cache = b""
        try:
            self._setup(stored_size, info, note)
        except BaseException:
            stored.close()
            raise

    def _setup(self, stored_size: int, info: ZisofsInfo, note: Callable[[str], None] | None) -> None:
        what = self._what
        if info.algorithm != ZF_ALGORITHM_ZISOFS:
            raise UnsupportedCompression(f"{what}: ZF algorithm {info.algorithm!r} is not zisofs ('pz'); "
                                         "its bytes cannot be decompressed")
        if not ZISOFS_MIN_LOG2_BLOCK <= info.log2_block_size <= ZISOFS_MAX_LOG2_BLOCK:
            raise UnsupportedCompression(f"{what}: zisofs block size 2^{info.log2_block_size} (the kernel and "
                                         f"libisofs take 2^{ZISOFS_MIN_LOG2_BLOCK} to 2^{ZISOFS_MAX_LOG2_BLOCK})")
        if info.header_size < ZISOFS_HEADER_BYTES:
            raise InvalidImageError(f"{what}: zisofs header of {info.header_size} bytes (at least "
                                    f"{ZISOFS_HEADER_BYTES})")
        self._block = info.block_size
        blocks = -(-self._size // self._block)
        table_end = info.header_size + ZISOFS_POINTER_BYTES * (blocks + 1)
        if table_end > stored_size:
            raise InvalidImageError(f"{what}: zisofs file of {self._size} bytes needs a {table_end}-byte header "
                                    f"and block table, but only {stored_size} bytes are recorded")
        head = self._read_stored(0, ZISOFS_HEADER_BYTES)
        if head[:8] != ZISOFS_MAGIC:
            raise InvalidImageError(f"{what}: zisofs magic is {head[:8].hex()}, expected {ZISOFS_MAGIC.hex()}")
        if note is not None:
            h_size = int.from_bytes(head[8:12], "little")
            if h_size != self._size or head[12] * 4 != info.header_size or head[13] != info.log2_block_size:
                note(f"{what}: zisofs header (size {h_size}, header {head[12] * 4} bytes, block 2^{head[13]}) "
                     f"disagrees with its ZF entry (size {self._size}, header {info.header_size} bytes, block "
                     f"2^{info.log2_block_size}); the ZF entry is used, as the Linux kernel does")
        raw = self._read_stored(info.header_size, table_end - info.header_size)
        table = array.array("I")
        if table.itemsize != ZISOFS_POINTER_BYTES:          # pragma: no cover (every platform we run on)
            table = array.array("L")
        table.frombytes(raw)
        if sys.byteorder == "big":                          # pragma: no cover
            table.byteswap()
        limit = 2 * self._block + MAX_BLOCK_OVERHEAD
        prev = table[0]
        if prev < table_end and blocks:
            raise InvalidImageError(f"{what}: zisofs block 0 starts at byte {prev}, inside the block table "
                                    f"(which ends at byte {table_end})")
        for i in range(1, len(table)):
            cur = table[i]
            if cur < prev or cur > stored_size or cur - prev > limit:
                raise InvalidImageError(f"{what}: zisofs block {i - 1} spans bytes {prev}..{cur} of the "
                                        f"{stored_size} recorded (offsets must rise, stay inside the file and "
                                        f"hold at most {limit} bytes a block)")
            prev = cur
        self._table = table

    def _read_stored(self, offset: int, size: int) -> bytes:
        self._stored.seek(offset)
        data = self._stored.read(size)
        if data is None or len(data) != size:
            raise InvalidImageError(f"{self._what}: zisofs data ends before byte {offset + size}")
        return data

    def _decoded(self, index: int) -> bytes:
        if index == self._cache_index:
            return self._cache
        start, end = self._table[index], self._table[index + 1]
        want = min(self._block, self._size - index * self._block)
        if start == end:
            out = bytes(want)
        else:
            d = zlib.decompressobj()
            try:
                out = d.decompress(self._read_stored(start, end - start), want)
            except zlib.error as e:
                raise InvalidImageError(f"{self._what}: zisofs block {index} (bytes {start}..{end}) does not "
                                        f"decompress: {e}") from None
            if len(out) != want:
                raise InvalidImageError(f"{self._what}: zisofs block {index} decompresses to {len(out)} bytes, "
                                        f"expected {want}")
        self._cache_index, self._cache = index, out
        return out

    # --- io.RawIOBase (position and seeking: SeekableStream) ---------------------------------
    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            index, inner = divmod(self._pos, self._block)
            block = self._decoded(index)
            n = min(len(block) - inner, len(view) - done)
            view[done:done + n] = block[inner:inner + n]
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        if not self.closed:
            self._stored.close()
        super().close()
