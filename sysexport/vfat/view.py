"""The FAT view of an image: a FAT12/16/32 volume as a :class:`~sysexport.image.View`.

``FATView(file, image_size, volume_offset)`` reads the volume with
:class:`~sysexport.vfat.reader.FATVolume` (which documents what is decided as Linux and
libblkid decide) and offers the generic ``walk``/``listdir``/``stat``/``open``/``read``/
``extract``.  What an entry's :class:`~sysexport.image.Stat` holds:

* ``type`` "dir" or "file" (FAT has nothing else); ``size`` DIR_FileSize for files, the
  bytes of the directory's clusters (of the fixed root area) for directories, as Linux
  reports them;
* ``mode``: 0o40755 for directories, 0o100644 for files, 0o100444 for read-only files.  Linux
  mounts with ``fmask=umask`` by default and so shows files 0o755 (executable); sysexport
  gives what mtools and 7-Zip give extracted files, since nothing on FAT marks a file
  executable.  ATTR_READ_ONLY takes the write bits off files only: Linux ignores it on
  directories (its ``rodir`` option is off by default; Windows uses the bit on folders for
  "customised");
* ``mtime`` (DIR_WrtDate/DIR_WrtTime, 2 s), ``atime`` (DIR_LstAccDate, a date only),
  ``ctime`` the *creation* time with its 10 ms field (DIR_CrtDate/DIR_CrtTime/
  DIR_CrtTimeTenth), as Linux's vfat reports them (6.1: ctime is the creation time), read
  as UTC (see :func:`~sysexport.vfat.reader.fat_time`); None on the root, which has no entry;
* ``uid``/``gid`` None (FAT has no owners); ``nlink`` 1 for files, None for directories;
  ``inode`` the image byte offset of the 8.3 entry divided by 32 (Linux numbers inodes by
  the entry's position too), 1 for the root (Linux's MSDOS_ROOT_INO);
* ``extents`` the file's cluster runs as (image byte offset, bytes), contiguous clusters
  merged, the last cut to the file's size; a directory's whole clusters;
* ``link_id`` None: FAT has no hard links (two entries sharing clusters are a cross-link,
  reported by :meth:`FATView.check`);
* ``fields``: ``short_name`` (8.3, as stored), ``attributes`` (DIR_Attr), ``read_only``,
  ``hidden``, ``system``, ``archive``, ``nt_case`` (DIR_NTRes), ``first_cluster``,
  ``entry_offset`` (image byte offset of the 8.3 entry), ``long_name_offset`` (of its first
  long-name slot, or None), and ``error`` for a file whose chain is broken (reading it
  raises InvalidImageError with that message).

Hostile volumes: a broken entry is skipped or marked and recorded in :attr:`FATView.problems`
(a list of messages naming the structure and byte offset, for ``verify``), while the rest of
the volume is read; a directory entry pointing at the root, at itself or at a directory
already met elsewhere (a loop or a cross-link) is skipped.
"""
from __future__ import annotations

import io
from typing import IO, Any, BinaryIO

from ..errors import InvalidImageError
from ..image.view import ExtentReader, Stat, View
from ._structs import ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_HIDDEN, ATTR_READ_ONLY, ATTR_SYSTEM, DIR_ENTRY_BYTES
from .reader import DirRecord, FATVolume

DIR_MODE = 0o40755
FILE_MODE = 0o100644
READ_ONLY_FILE_MODE = 0o100444
ROOT_INODE = 1


class FATView(View):
    """A FAT12/16/32 volume at ``volume_offset`` of ``file`` (a seekable binary file, e.g.
    ``open(path, "rb")`` or a BytesIO), ``image_size`` bytes long (found when None).

    ``codepage``: the OEM code page of 8.3 names and labels (a Python codec name, cp437 by
    default as on Linux, or its number); ``volume_size``: the space the volume may use (its
    partition's size), the rest of the image when None; ``name``: the view's name ("fat",
    "fat:2").  Raises InvalidImageError when the boot sector cannot describe a FAT volume.
    """

    def __init__(self, file: BinaryIO, image_size: int | None = None, volume_offset: int = 0,
                 codepage: str | int = "cp437", *, volume_size: int | None = None, name: str = "fat") -> None:
        if isinstance(codepage, int) or str(codepage).isdigit():
            codepage = f"cp{codepage}"
        self.volume = FATVolume(file, image_size, volume_offset, volume_size=volume_size, codepage=codepage)
        self.name = name
        v = self.volume
        self._root_key = v.root_cluster if v.fat_type == 32 else 0
        self._owners: dict[int, str] = {self._root_key: "/"}

    # --- what the volume is -------------------------------------------------------------------
    @property
    def problems(self) -> list[str]:
        """Every deviation met so far (grows as directories are listed; :meth:`check` reads all)."""
        return self.volume.problems

    @property
    def fat_type(self) -> int:
        return self.volume.fat_type

    @property
    def label(self) -> str | None:
        """The root directory's volume label (libblkid's LABEL), None when it has none."""
        return self.volume.label

    @property
    def boot_label(self) -> str | None:
        """BS_VolLab of the boot sector (libblkid's LABEL_FATBOOT), None for "NO NAME" or none."""
        return self.volume.boot_label

    @property
    def volume_id(self) -> int:
        """BS_VolID, the serial number (blkid's UUID is it as XXXX-XXXX)."""
        return self.volume.volume_id

    def info(self) -> dict[str, Any]:
        """The volume's facts for ``inspect``: type, labels, serial, geometry, every BPB field."""
        v = self.volume
        return {"fat_type": v.fat_type, "label": v.label, "boot_label": v.boot_label,
                "volume_id": f"{v.volume_id >> 16:04X}-{v.volume_id & 0xFFFF:04X}", "oem_name": v.oem_name,
                "sector_size": v.sector_size, "cluster_size": v.cluster_size, "cluster_count": v.cluster_count,
                "volume_offset": v.volume_offset, "volume_bytes": v.volume_bytes, "active_fat": v.active_fat,
                "fsinfo_free_count": v.fsinfo_free_count, "fsinfo_next_free": v.fsinfo_next_free,
                "bpb": {k: (x.hex() if isinstance(x, bytes) else x) for k, x in v.bpb.items()}}

    def structures(self) -> list[tuple[str, int, int]]:
        """(name, image byte offset, size) of the boot sector, FATs, root directory, data region."""
        return self.volume.structures()

    # --- the View contract --------------------------------------------------------------------
    def _root(self) -> Stat:
        v = self.volume
        root = v.root()
        return Stat("/", "dir", root.size_bytes, mode=DIR_MODE, inode=ROOT_INODE, extents=root.extents,
                    fields={"first_cluster": self._root_key})

    def _children(self, directory: Stat) -> list[Stat]:
        v = self.volume
        first = directory.fields.get("first_cluster", 0)
        d = v.directory(first, directory.path, directory.fields.get("entry_offset"))
        prefix = "" if directory.path == "/" else directory.path
        out: list[Stat] = []
        names: set[str] = set()
        for rec in d.records:
            path = f"{prefix}/{rec.name}"
            if rec.name in names:
                v.problem(f"FAT directory {directory.path}: a second entry named {rec.name!r} at byte {rec.offset}; "
                          "skipped")
                continue
            st = self._dir_stat(rec, path, first) if rec.attr & ATTR_DIRECTORY else self._file_stat(rec, path)
            if st is not None:
                names.add(rec.name)
                out.append(st)
        return out

    def _content(self, entry: Stat) -> IO[bytes]:
        error = entry.fields.get("error")
        if error:
            raise InvalidImageError(f"{self.name}:{entry.path}: {error}")
        if entry.size == 0:
            return io.BytesIO(b"")
        return io.BufferedReader(ExtentReader(self.volume.file, entry.extents, entry.size,
                                              what=f"{self.name}:{entry.path}", image_size=self.volume.image_size))

    # --- entries ------------------------------------------------------------------------------
    def _fields(self, rec: DirRecord) -> dict[str, Any]:
        return {"short_name": rec.short_name, "attributes": rec.attr, "read_only": bool(rec.attr & ATTR_READ_ONLY),
                "hidden": bool(rec.attr & ATTR_HIDDEN), "system": bool(rec.attr & ATTR_SYSTEM),
                "archive": bool(rec.attr & ATTR_ARCHIVE), "nt_case": rec.ntres, "first_cluster": rec.first_cluster,
                "entry_offset": rec.offset, "long_name_offset": rec.lfn_offset}

    def _dir_stat(self, rec: DirRecord, path: str, parent_cluster: int) -> Stat | None:
        v = self.volume
        c = rec.first_cluster
        where = f"FAT directory entry {path} at byte {rec.offset}"
        if c == 0 or c == self._root_key:
            v.problem(f"{where}: its first cluster {c:#x} is the root directory's (a loop); skipped")
            return None
        if c == parent_cluster:
            v.problem(f"{where}: its first cluster {c:#x} is its own directory's (it contains itself); skipped")
            return None
        if not 2 <= c < v.cluster_count + 2:
            v.problem(f"{where}: first cluster {c:#x} is out of range (2..{v.cluster_count + 1:#x}); skipped")
            return None
        owner = self._owners.setdefault(c, path)
        if owner != path:
            v.problem(f"{where}: its first cluster {c:#x} is also that of {owner} (a directory loop or "
                      "cross-link); skipped")
            return None
        ch = v.entry_chain(rec.offset, c, None, f"FAT directory {path} (first cluster {c:#x})")
        if not ch.runs:
            v.problem(f"{where}: {ch.error}; skipped")
            return None
        extents = v.extents(ch.runs)
        return Stat(path, "dir", sum(s for _, s in extents), mode=DIR_MODE, mtime=rec.mtime, atime=rec.atime,
                    ctime=rec.ctime, inode=rec.offset // DIR_ENTRY_BYTES, extents=extents, fields=self._fields(rec))

    def _file_stat(self, rec: DirRecord, path: str) -> Stat:
        v = self.volume
        size = rec.size_bytes
        c = rec.first_cluster
        where = f"FAT file {path} (entry at byte {rec.offset})"
        fields = self._fields(rec)
        extents: tuple[tuple[int, int], ...] = ()
        if size == 0:
            if c != 0:
                v.problem(f"{where}: 0 bytes but a first cluster {c:#x} (fsck.fat truncates such a chain)")
        elif c == 0:
            fields["error"] = f"{where}: {size} bytes but no first cluster"
        else:
            want = -(-size // v.cluster_size)
            ch = v.entry_chain(rec.offset, c, want, where)
            extents = v.extents(ch.runs, size)
            if ch.error:
                fields["error"] = ch.error
            elif ch.continues:
                v.problem(f"{where}: its cluster chain goes on past its {size} bytes ({want} clusters)")
            beyond = v.extents_beyond(extents)
            if beyond is not None and not ch.error:
                fields["error"] = f"{where}: its clusters reach byte {beyond}, past the end of the volume or image"
        if "error" in fields:
            v.problem(f"{fields['error']}; reading the file fails")
        mode = READ_ONLY_FILE_MODE if rec.attr & ATTR_READ_ONLY else FILE_MODE
        return Stat(path, "file", size, mode=mode, mtime=rec.mtime, atime=rec.atime, ctime=rec.ctime, nlink=1,
                    inode=rec.offset // DIR_ENTRY_BYTES, extents=extents, fields=fields)

    # --- verify -------------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Read everything (every directory, every file's chain, the FAT copies, FAT[0]'s media
        byte) and return :attr:`problems`, cross-links (clusters two entries claim) among
        them.  Never raises for what the volume holds."""
        v = self.volume
        try:
            for _ in self.walk():       # every entry's chain: loops and cross-links are recorded
                pass
        except InvalidImageError as e:
            v.problem(str(e))
        try:
            v.compare_fats()
            if v.fat_entries:
                media = v.fat_entry(0) & 0xFF
                if media != v.bpb["BPB_Media"]:
                    v.problem(f"FAT at byte {v.fat_entry_offset(0)}: FAT[0] holds the media byte {media:#04x}, "
                              f"the BPB says {v.bpb['BPB_Media']:#04x}")
        except InvalidImageError as e:
            v.problem(str(e))
        return self.problems


__all__ = ["FATView", "DIR_MODE", "FILE_MODE", "READ_ONLY_FILE_MODE"]
