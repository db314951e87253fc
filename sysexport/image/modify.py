"""Changing a file in place: :meth:`sysexport.image.Image.replace_file`.

The file keeps the space it has (see :mod:`.modify_plan` for what that is and for every
check made before a byte is written); its new bytes are written there and its size in every
record that names those bytes.

The order of the writes, each step flushed and fsynced before the next:

1. the new bytes past the old size (space no record shows yet), then the new bytes over
   the old ones;
2. the size fields: every ISO 9660 directory record (both byte orders, ECMA-119 7.3.3: eight
   bytes in one record) and every FAT directory entry (DIR_FileSize, and DIR_FstClusHI/LO
   when the file becomes empty);
3. when the file shrank out of FAT clusters: its new last cluster marked end-of-chain and
   the rest freed, in every FAT copy, FSInfo's free count raised by as many (when it was
   known);
4. the old bytes past the new size, in the blocks the file still has, zeroed.

What a crash leaves: every record states the old or the new size, and no size ever covers
bytes the file does not hold.  A view that shows the new size shows the new content whole
(the bytes are written and synced before any size).  A view that still shows the old size
shows the new bytes where they overwrote the old ones (a prefix of the new content, or a
mix of new and old bytes while step 1 was under way): overwriting in place cannot be
atomic.  Two views (the ISO and the FAT of a hybrid) may disagree until the call is run
again with the same data, which finishes it.  A shrink interrupted after step 2 leaves
clusters past the size still chained (fsck.fat cuts them; running the call again does too).
Each field is one small write inside one 2 KiB block; a device that tears a 512-byte sector
can still split one.
"""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Union

from ..errors import CallOrderError, InvalidInputError, LayoutError, SourceError
from ..vfat._structs import FAT32_ENTRY_MASK
from .modify_plan import FatNamer, Plan, Target, plan_replace, round_up

if TYPE_CHECKING:
    from . import Image

CHUNK_BYTES = 1 << 20
EOC = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}
"""fatgen103: the end-of-chain mark each FAT type's formatters write."""
FSINFO_FREE_OFFSET = 488           # FSI_Free_Count (fatgen103, FAT32 FSInfo sector)
FSINFO_UNKNOWN = 0xFFFFFFFF
DIR_FILE_SIZE_OFFSET = 28          # DIR_FileSize within a 32-byte entry
DIR_FST_CLUS_HI_OFFSET = 20
DIR_FST_CLUS_LO_OFFSET = 26
ISO_DATA_LENGTH_OFFSET = 10        # BP 11-18 of a directory record: data_length, both-endian

Data = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes]]


@dataclass(frozen=True)
class Replaced:
    """What :meth:`Image.replace_file` changed: the path as given, the old and new size,
    ``room_bytes``, the most the file may hold from now on (its blocks or clusters after the
    change: a shrunk file gives the rest back), and every record naming its bytes, as
    "view:path" names (``records``)."""

    path: str
    old_size_bytes: int
    size_bytes: int
    room_bytes: int
    records: tuple[str, ...]


# --- the new bytes ----------------------------------------------------------------------------------

class _Source:
    """The new content: its size known before anything is written, read by position
    (so the bytes past the old size can be written first) in bounded chunks."""

    def __init__(self, data: Any, what: str, limit: int) -> None:
        self.what = what
        self._close: list[Any] = []
        self._bytes: memoryview | None = None
        self._file: IO[bytes] | None = None
        self._base = 0
        if isinstance(data, (bytes, bytearray, memoryview)):
            self._bytes = memoryview(data).cast("B")
            self.size = len(self._bytes)
        elif isinstance(data, (str, os.PathLike)):
            self._open_path(os.fspath(data))
        elif hasattr(data, "read"):
            self._open_file(data, limit)
        else:
            raise InvalidInputError(f"{what}: data must be bytes, a path or a binary file, found "
                                    f"{type(data).__name__}")

    def _open_path(self, path: str) -> None:
        self.what = path
        try:
            f = io.open(path, "rb")
        except OSError as e:
            raise SourceError(f"{path}: cannot open: {e.strerror}", path=path, errno=e.errno) from e
        self._close.append(f)
        st = os.fstat(f.fileno())
        import stat
        if not stat.S_ISREG(st.st_mode):
            self.close()
            raise InvalidInputError(f"{path}: not a regular file (replace_file reads a file, bytes or a binary "
                                    "file object)")
        self._file, self.size = f, st.st_size

    def _open_file(self, f: Any, limit: int) -> None:
        seekable = False
        try:
            seekable = bool(f.seekable())
        except (AttributeError, OSError, ValueError):
            pass
        if seekable:
            if not isinstance(f.read(0), (bytes, bytearray)):
                raise InvalidInputError(f"{self.what}: the data file must be opened in binary mode")
            self._base = f.tell()
            self.size = f.seek(0, io.SEEK_END) - self._base
            self._file = f
            return
        spool = tempfile.TemporaryFile()          # measured by streaming, at most limit + 1 bytes kept
        self._close.append(spool)
        n = 0
        while n <= limit:
            chunk = f.read(min(CHUNK_BYTES, limit + 1 - n))
            if not chunk:
                break
            if not isinstance(chunk, (bytes, bytearray)):
                self.close()
                raise InvalidInputError(f"{self.what}: the data file must be opened in binary mode")
            spool.write(chunk)
            n += len(chunk)
        self._file, self.size = spool, n
        self.truncated = n > limit

    truncated = False
    """For an unseekable stream: more bytes came than there is room for (the rest was not read)."""

    def read_at(self, pos: int, n: int) -> bytes:
        if self._bytes is not None:
            return bytes(self._bytes[pos:pos + n])
        assert self._file is not None
        try:
            self._file.seek(self._base + pos)
            out = self._file.read(n)
        except OSError as e:
            raise SourceError(f"{self.what}: read failed: {e.strerror}", path=self.what, errno=e.errno) from e
        if len(out) != n:
            raise SourceError(f"{self.what}: {self.size} bytes when measured, but it ended at byte "
                              f"{pos + len(out)} (it changed while being written)", path=self.what)
        return out

    def close(self) -> None:
        for f in self._close:
            f.close()
        self._close = []


# --- writing ----------------------------------------------------------------------------------------

class _Writer:
    """Writes into the image file, flushing and fsyncing at each step."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def pwrite(self, offset: int, data: bytes) -> None:
        self.f.seek(offset)
        self.f.write(data)

    def sync(self) -> None:
        self.f.flush()
        try:
            os.fsync(self.f.fileno())
        except (AttributeError, io.UnsupportedOperation, OSError, ValueError):
            pass                                  # a BytesIO: nothing to sync

    def copy(self, src: _Source | None, runs: list[tuple[int, int]], lo: int, hi: int) -> None:
        """Bytes [lo, hi) of the content (zeros when ``src`` is None) into the runs."""
        start = 0
        for off, n in runs:
            a, b = max(lo, start), min(hi, start + n)
            pos = a
            while pos < b:
                k = min(CHUNK_BYTES, b - pos)
                self.pwrite(off + pos - start, src.read_at(pos, k) if src is not None else bytes(k))
                pos += k
            start += n


def replace_file(img: Image, path: str, data: Data, view: str | None = None) -> Replaced:
    """The body of :meth:`Image.replace_file` (see there and the module docstring)."""
    if not img.writable:
        raise CallOrderError(f"{img.name}: opened read-only; open it with sysexport.open(..., writable=True) to "
                             "change a file")
    plan = plan_replace(img, path, view)
    room = plan.room
    src = _Source(data, f"replace_file({path!r})", room)
    try:
        _check_fits(plan, src)
        if src.size == plan.old_size == 0 and not plan.targets[0].runs:
            return _result(plan, 0)
        try:
            _apply(img, plan, src)
        finally:
            img._reload()
    finally:
        src.close()
    return _result(plan, src.size)


def _check_fits(plan: Plan, src: _Source) -> None:
    n = src.size
    for t in plan.targets:
        if src.truncated or n > t.room:
            amount = f"more than {t.room}" if src.truncated else str(n)
            raise LayoutError(f"{plan.path}: {amount} bytes do not fit the {t.room} bytes allocated to it"
                              + (f" ({t.label})" if t is not plan.targets[0] else ""))
        if t.base and n <= t.base:
            raise LayoutError(f"{plan.path}: a multi-extent file changes only in its last section: it must stay "
                              f"above {t.base} bytes (at most {t.room})")


def _apply(img: Image, plan: Plan, src: _Source) -> None:
    w = _Writer(img.file)
    n = src.size
    for t in plan.targets:
        if n > t.old_size:
            w.copy(src, t.runs, t.old_size, n)
    w.sync()
    for t in plan.targets:
        w.copy(src, t.runs, 0, min(n, t.old_size))
    w.sync()
    if all(n == t.old_size == t.max_size and not _chain_too_long(t, n) for t in plan.targets):
        return
    for t in plan.targets:
        _write_sizes(w, t, n)
    w.sync()
    for t in plan.targets:
        for namer in t.fat:
            _trim_chain(w, namer, n)
    w.sync()
    for t in plan.targets:
        if n < t.max_size:
            w.copy(None, t.runs, n, min(t.max_size, round_up(n, t.unit)))
    w.sync()


def _chain_too_long(t: Target, n: int) -> bool:
    return any(len(namer.clusters) > -(-n // namer.volume.cluster_size) for namer in t.fat)


def _write_sizes(w: _Writer, t: Target, n: int) -> None:
    last = n - t.base
    for at in t.iso_records:
        w.pwrite(at + ISO_DATA_LENGTH_OFFSET, last.to_bytes(4, "little") + last.to_bytes(4, "big"))
    for namer in t.fat:
        w.pwrite(namer.entry_offset + DIR_FILE_SIZE_OFFSET, n.to_bytes(4, "little"))
        if n == 0:
            w.pwrite(namer.entry_offset + DIR_FST_CLUS_HI_OFFSET, bytes(2))
            w.pwrite(namer.entry_offset + DIR_FST_CLUS_LO_OFFSET, bytes(2))


def _trim_chain(w: _Writer, namer: FatNamer, n: int) -> None:
    """Give back the clusters a shrunk file no longer needs (fatgen103: an end-of-chain mark
    on the new last cluster, 0 for each freed one), in every FAT copy; FSInfo's free count
    (FAT32) raised by as many when it was known."""
    v = namer.volume
    keep = -(-n // v.cluster_size)
    freed = namer.clusters[keep:]
    if not freed:
        return
    changes = [(c, 0) for c in freed]
    if keep:
        changes.insert(0, (namer.clusters[keep - 1], EOC[v.fat_type]))
    for copy in range(v.fat_count):
        base = v.volume_offset + v.fat_offset + copy * v.fat_bytes
        for cluster, value in changes:
            _set_fat_entry(w, v.fat_type, base, cluster, value)
    if v.fat_type == 32 and v.fsinfo_free_count is not None:
        free = v.fsinfo_free_count
        if free != FSINFO_UNKNOWN and free + len(freed) <= v.cluster_count:
            sector = int(v.bpb.get("BPB_FSInfo", 0))
            w.pwrite(v.volume_offset + sector * v.sector_size + FSINFO_FREE_OFFSET,
                     (free + len(freed)).to_bytes(4, "little"))


def _set_fat_entry(w: _Writer, fat_type: int, base: int, cluster: int, value: int) -> None:
    """One FAT entry (fatgen103 "FAT Data Structure"): 12 bits packed in pairs, 16 bits, or
    the low 28 of 32 bits (the high 4 are kept)."""
    if fat_type == 16:
        w.pwrite(base + cluster * 2, value.to_bytes(2, "little"))
        return
    if fat_type == 32:
        at = base + cluster * 4
        w.f.seek(at)
        old = int.from_bytes(w.f.read(4), "little")
        w.pwrite(at, ((old & ~FAT32_ENTRY_MASK) | (value & FAT32_ENTRY_MASK)).to_bytes(4, "little"))
        return
    at = base + cluster * 3 // 2
    w.f.seek(at)
    word = int.from_bytes(w.f.read(2), "little")
    if cluster & 1:
        word = (word & 0x000F) | (value << 4)
    else:
        word = (word & 0xF000) | value
    w.pwrite(at, word.to_bytes(2, "little"))


def _room_after(t: Target, n: int) -> int:
    """The room a target keeps with ``n`` bytes: its blocks past the new size are named by no
    record any more, and a FAT chain keeps ceil(n / cluster size) clusters."""
    room = t.room
    if t.iso_records:
        room = min(room, t.base + round_up(n - t.base, t.unit))
    for namer in t.fat:
        v = namer.volume
        room = min(room, round_up(n, v.cluster_size))
    return room


def _result(plan: Plan, n: int) -> Replaced:
    names = tuple(dict.fromkeys(name for t in plan.targets for name in t.names))
    return Replaced(plan.path, plan.old_size, n, min(_room_after(t, n) for t in plan.targets), names)


__all__ = ["Replaced", "replace_file", "Data"]
