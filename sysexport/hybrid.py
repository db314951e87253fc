"""ISO9660Hybrid: one image that is a CD image and a GPT disk, every file stored once.

The image (byte offsets from its start)::

    0        protective MBR; bytes 0..439 are the caller's legacy boot code
    512      GPT header for 512-byte sectors            \\
    4096     GPT header for 4096-byte sectors            | the ISO9660 system area
    8192     4K GPT entry array (16 KiB, 128 entries)    | (16 sectors of 2048 bytes)
    32768    ISO9660 volume descriptors (PVD, boot record, Joliet SVD, terminator)
    ...      512-byte GPT entry array (16 KiB), in a gap the ISO writer leaves
    ...      ISO metadata: boot catalog, path tables, directories, RR continuation areas,
             the data of files that live only in the ISO
    ESP      partition 1, 4 KiB aligned: a FAT file system holding every shared file;
             each file is one contiguous run starting on a 2 KiB device boundary, and the
             ISO directory records point at the very same bytes
    ...      further partitions, if any
    end      backup arrays and headers of both GPTs (the 512-byte backup header lies in the
             last 512 bytes of the 4K backup header's block)

Booting (El Torito entries, MBR boot code, GRUB) is added by :mod:`sysexport.boot.grub`.
"""
from __future__ import annotations

import contextvars
import hashlib
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from . import parallel
from .contribution import BootContribution, BootPatches, PlacedBoot
from .data import BytesData, DataSource
from .errors import CallOrderError, InternalError, InvalidInputError, LayoutError
from .extent import Extent, align_up, check_no_overlap
from .fileinfo import FileInfo, normalize_name, source_date_epoch, to_fileinfo, walk_host_fileinfo
from .identity import BuildIdentity, content_digest
from .iso9660._structs import SECTOR_BYTES as ISO_SECTOR_BYTES
from .iso9660._structs import SYSTEM_AREA_BYTES
from .iso9660.eltorito import BOOT_EFI
from .iso9660 import entries as _entries
from .iso9660.writer import ISO9660, ISOPlan, Located, RecordPlace
from .output import Output
from .partition.gpt import ENTRY_ARRAY_MIN_BYTES, GPT, GPT_TYPE_ESP, GPTLayout, GPTPartition
from .partition._structs import MBR_SIGNATURE_OFFSET
from .partition.mbr import BOOT_CODE_MAX_BYTES, MBR
from .tree import Node, subtree
from .vfat.names import check_label, label_from
from .vfat.writer import VFAT, VFATPlan
from .writer import OPEN, Lifecycle, gc_paused

FOUR_GIB = 1 << 32
GPT_ARRAY_BYTES = ENTRY_ARRAY_MIN_BYTES
"""Each GPT's entry array takes the minimum UEFI 5.3.1 reserves: 16 KiB, 128 entries."""
GPT4K_HEADER_OFFSET = 4096
GPT4K_ARRAY_OFFSET = 8192
GPT512_HEADER_OFFSET = 512
BACKUP_AREA_BYTES = 4096 + 2 * GPT_ARRAY_BYTES
"""Bytes at the end of the device for both backup arrays and the shared backup header block."""
DEFAULT_PARTITION_ALIGN = 4096
SHARED_FILE_ALIGN = ISO_SECTOR_BYTES
"""Every shared file starts on a 2 KiB device boundary so that an ISO extent can name it."""


@dataclass
class HybridSummary:
    """What finish() built: for the CLI's summary and for scripts.

    The labels are what each file system holds: ``iso_label`` the primary volume
    descriptor's volume identifier, ``joliet_label`` the Joliet one (None without Joliet),
    ``fat_label`` the ESP's ("" for none); trailing padding removed.
    """

    image_size_bytes: int
    iso_metadata_end: int
    esp_offset: int
    esp_size_bytes: int
    fat_type: int | None
    partitions: list[tuple[str, int, int]]
    file_count: int
    shared_file_count: int
    data_bytes: int
    iso_label: str = ""
    joliet_label: str | None = None
    fat_label: str = ""
    disk_guid: uuid.UUID | None = None
    """The GPT's disk GUID (both GPTs, 512 and 4096, hold the same one)."""
    partition_guids: tuple[uuid.UUID, ...] = ()
    """Each partition's unique GUID, in the order of ``partitions``."""

    def lines(self) -> list[str]:
        mib = 1 << 20
        out = [f"image      {self.image_size_bytes:>14,} bytes ({self.image_size_bytes / mib:.1f} MiB)",
               f"ISO meta   {self.iso_metadata_end:>14,} bytes before the first partition",
               f"ESP        {self.esp_size_bytes:>14,} bytes at offset {self.esp_offset:,}"
               + (f" (FAT{self.fat_type})" if self.fat_type else ""),
               f"files      {self.file_count:>14,} ({self.shared_file_count:,} stored once for both "
               f"file systems, {self.data_bytes:,} bytes of data)",
               f"labels     ISO9660 {self.iso_label!r}, "
               + (f"Joliet {self.joliet_label!r}, " if self.joliet_label is not None else "no Joliet, ")
               + (f"FAT {self.fat_label!r}" if self.fat_label else "FAT none")]
        for i, (name, off, size) in enumerate(self.partitions, 1):
            out.append(f"partition {i} {name!r}: {size:,} bytes at offset {off:,}")
        return out


@dataclass(frozen=True, eq=False)
class HybridPlan:
    """The complete layout of a hybrid image (what :meth:`ISO9660Hybrid.plan` returns).

    It composes its parts' plans: ``iso`` (with every shared file pointed at its bytes in
    the ESP and the volume spanning the device), ``esp`` (the FAT at the ESP's offset),
    the two GPT layouts (4096- and 512-byte blocks, the same partitions), and the MBR's
    boot code after every contribution's patches.  ``pieces`` are the top-level extents
    checked for overlap.
    """

    device_size_bytes: int
    iso: ISOPlan
    esp: VFATPlan
    gpt4k: GPTLayout
    gpt512: GPTLayout
    mbr_boot_code: bytes | None
    mbr_bootable: bool
    pieces: tuple[Extent, ...]
    summary: HybridSummary


class ISO9660Hybrid(Lifecycle):
    """An image that is both an ISO9660 file system and a GPT disk with one VFAT ESP.

    A port of Perl's Sys::Export::ISO9660Hybrid.  Every file added goes into both file
    systems (unless its ``hybrid_target`` says "iso" or "esp"); its bytes are stored once,
    inside the ESP, and the ISO9660 (and Joliet) directory records point at them.
    Symlinks, devices, fifos and sockets go to the ISO (Rock Ridge) only.

    ``ISO9660Hybrid(filename)``, ``ISO9660Hybrid(filehandle=fh)`` or keyword attributes.
    Its parts are ``iso`` (ISO9660), ``esp`` (VFAT) and ``gpt`` (the 4096-byte GPT; the
    512-byte one is derived from it); :meth:`plan` composes their plans.
    """

    ATTRIBUTES = ("volume_label", "esp_label", "mbr_boot_code", "mbr_bootable", "efi_boot",
                  "esp_min_size_bytes", "partition_align_bytes", "default_time", "relocate_deep_dirs",
                  "gpt_backup_at_device_end")

    def __init__(self, filename: str | os.PathLike[str] | None = None, *, filehandle: BinaryIO | None = None,
                 **attrs: Any) -> None:
        self.filename = os.fspath(filename) if filename is not None else None
        self.filehandle = filehandle
        self.iso = ISO9660()
        self.esp = VFAT()
        self.gpt = GPT(block_size=4096, alignment_bytes=DEFAULT_PARTITION_ALIGN)
        # Placeholder size: plan() fixes the ESP's extent once the FAT is laid out.
        self.esp_partition = self.gpt.add_partition(GPT_TYPE_ESP, size_bytes=4096, name="EFI System Partition")
        self.mbr_boot_code = None
        self.mbr_bootable = False
        self.efi_boot = False
        self.esp_min_size_bytes = 0
        self.partition_align_bytes = DEFAULT_PARTITION_ALIGN
        self.summary: HybridSummary | None = None
        self._efi_entry: int | None = None         # index of the El Torito EFI entry naming the ESP
        self._contributions: list[tuple[BootContribution, tuple[int, ...]]] = []
        # The files stored once for both, in the order added: the ESP node and the ISO node
        # at the same position of two lists (16 bytes a file; a dict of pairs took 100).
        # remove() blanks a pair (None); the index from either node's id to its position
        # is built by the first removal only (see _drop_shared).  Read by _shared_pairs().
        self._shared_fat: list[Node | None] = []
        self._shared_iso: list[Node | None] = []
        self._shared_index: dict[int, int] | None = None
        self._shared_count = 0
        self._files = 0
        self.total_data_bytes = 0
        self._iso_only_added = False                # an entry went to the ISO alone (see add())
        self._esp_label_given = False
        self.volume_label = "ISOHYBRID"
        for key, value in attrs.items():
            if key in ("filename", "filehandle") or key in self.ATTRIBUTES:
                setattr(self, key, value)
            else:
                raise InvalidInputError(f"ISO9660Hybrid: unknown attribute {key!r}")

    # -- attributes --------------------------------------------------------------------
    @property
    def volume_label(self) -> str:
        """The image's label, as given.  Each file system gets the most faithful label it
        can hold: the ISO9660 primary and Joliet descriptors what the ISO writer records
        (``iso.pvd_label``, ``iso.joliet_label``; it refuses a label longer than the primary
        descriptor holds), the ESP its first 11 FAT characters (see :attr:`esp_label`).
        The summary lists what each file system got."""
        return self.iso.volume_label

    @volume_label.setter
    def volume_label(self, label: str) -> None:
        if not isinstance(label, str) or not label:
            raise InvalidInputError(f"volume_label: expected a non-empty str, found {label!r}")
        self.iso.volume_label = label
        if not self._esp_label_given:
            self.esp.volume_label = label_from(label) or "ESP"

    @property
    def esp_label(self) -> str:
        """The ESP's FAT label as stored (upper case, at most 11 characters).  Unless set,
        derived from :attr:`volume_label`: accents dropped, upper case, characters FAT
        cannot hold as '_', the first 11 characters.  Set it to choose the label yourself
        (checked by FAT's rules: more than 11 characters is an error, not a truncation);
        "" for none, None to derive it from the volume label again."""
        return self.esp.volume_label

    @esp_label.setter
    def esp_label(self, label: str | None) -> None:
        if label is None:
            self._esp_label_given = False
            self.esp.volume_label = label_from(self.iso.volume_label) or "ESP"
            return
        self.esp.volume_label = check_label(label, "esp_label")
        self._esp_label_given = True

    @property
    def relocate_deep_dirs(self) -> bool:
        """The ISO part's :attr:`ISO9660.relocate_deep_dirs` (False: directories past level 8
        in place; True: moved to RR_MOVED)."""
        return self.iso.relocate_deep_dirs

    @relocate_deep_dirs.setter
    def relocate_deep_dirs(self, value: bool) -> None:
        self.iso.relocate_deep_dirs = value

    @property
    def default_time(self) -> float:
        """The time of every entry without one and of the volumes (SOURCE_DATE_EPOCH when set)."""
        return self.iso.default_time

    @default_time.setter
    def default_time(self, value: float | None) -> None:
        if value is None:
            value = source_date_epoch()
        self.iso.default_time = value
        self.esp.default_time = int(value)

    @property
    def reproducible(self) -> bool:
        """True when identifiers (GUIDs, the FAT serial, the ISO's UUID, the GRUB marker)
        derive from the content: SOURCE_DATE_EPOCH is set or ``default_time`` was given.
        Otherwise every build's are its own (random)."""
        return self.iso.reproducible

    def content_identity(self) -> BuildIdentity:
        """Where identifiers come from, for what has been added so far: a digest of both
        file systems' entries, the label, the partitions and the time when reproducible,
        else the system's random source."""
        if not self.reproducible:
            return BuildIdentity(None)
        return BuildIdentity(self._content_digest(self.iso.digest(), self.esp.digest()))

    def _content_digest(self, iso_digest: bytes | None, esp_digest: bytes | None) -> bytes:
        parts = []
        for p in self.gpt.partitions:
            source = p.source
            content = hashlib.sha256(source.data).hexdigest() if isinstance(source, BytesData) else ""
            parts.append((str(p.type_guid), p.name, p.attributes, p.size_rule, p.size_bytes,
                          source.size_bytes if source is not None else None, content))
        return content_digest((), "hybrid", iso_digest, esp_digest, parts, self.mbr_bootable, self.efi_boot,
                              self.esp_min_size_bytes, self.partition_align_bytes)

    @property
    def partitions(self) -> list[GPTPartition]:
        """The GPT's partitions (the ESP is the first)."""
        return self.gpt.partitions

    @property
    def mbr_boot_code(self) -> bytes | str | os.PathLike[str] | None:
        """Legacy BIOS boot code for the MBR's first 440 bytes: bytes, or the path of a file
        read when the image is planned (see :func:`validate_mbr_boot_code`); None for none."""
        return self._mbr_boot_code

    @mbr_boot_code.setter
    def mbr_boot_code(self, value: bytes | str | os.PathLike[str] | None) -> None:
        self._mbr_boot_code = validate_mbr_boot_code(value)

    @property
    def mbr_bootable(self) -> bool:
        """Set the protective MBR record's BootIndicator 0x80 (some BIOSes want it)."""
        return self._mbr_bootable

    @mbr_bootable.setter
    def mbr_bootable(self, value: bool) -> None:
        self._mbr_bootable = validate_flag("mbr_bootable", value)

    @property
    def efi_boot(self) -> bool:
        """Add an El Torito EFI entry naming the ESP (UEFI boot from CD)."""
        return self._efi_boot

    @efi_boot.setter
    def efi_boot(self, value: bool) -> None:
        self._efi_boot = validate_flag("efi_boot", value)

    @property
    def esp_min_size_bytes(self) -> int:
        """The ESP is made at least this large (0 for just large enough)."""
        return self._esp_min_size_bytes

    @esp_min_size_bytes.setter
    def esp_min_size_bytes(self, value: int) -> None:
        self._esp_min_size_bytes = validate_esp_min_size(value)

    @property
    def partition_align_bytes(self) -> int:
        """Where the ESP and the further partitions start: a positive multiple of 4096."""
        return self._partition_align_bytes

    @partition_align_bytes.setter
    def partition_align_bytes(self, value: int) -> None:
        self._partition_align_bytes = validate_partition_align(value)

    # -- adding --------------------------------------------------------------------------
    def add(self, spec: Any, /, **overrides: Any) -> FileInfo:
        """Add a file-info record (mapping or shorthand) to both file systems.

        ``hybrid_target`` chooses "both" (default), "iso" or "esp"; ``hidden_from``
        naming "fat" is the same as "iso", and "iso9660"/"joliet" hide the entry from
        those trees of the ISO (see docs/guide.md, "Names per namespace").  Symlinks, devices,
        fifos and sockets go to the ISO only; a file of 4 GiB or more must be marked
        ``hybrid_target="iso"`` (FAT cannot hold it).
        """
        if self._stage != OPEN:
            self._require_open("add()")
        info = spec if spec.__class__ is FileInfo and not overrides else to_fileinfo(spec, **overrides)
        fmt = info.mode & 0o170000
        if fmt == 0o100000 and info.hybrid_target == "both" and 0 < info.size < FOUR_GIB \
                and not info.hidden_from and info.joliet_name is None:
            # The common case, a file of 1 byte to 4 GiB - 1 for both file systems, not
            # hidden, without a Joliet name: the rules below, decided for it.  Checked by
            # the ISO (placed later), recorded by the ESP on a 2 KiB device boundary, then
            # by the ISO, and remembered as stored once.
            iso = self.iso
            iso.check_entry(info, True)
            if self._iso_only_added:
                self._check_iso_tree_takes(info, info.name or "/")
            align = info.device_align
            if align is None or align < SHARED_FILE_ALIGN:
                info.device_align = SHARED_FILE_ALIGN       # see below: one FileInfo for both writers
            fat_node = self.esp.add(info)
            iso_node = iso.add_checked(info, True)
            if fat_node is not None:
                self._add_shared(fat_node, iso_node)
            self._files += 1
            self.total_data_bytes += info.size
            return info
        where = info.name or "/"
        target = self._target_of(info, where)
        is_file = fmt == stat.S_IFREG
        is_dir = fmt == stat.S_IFDIR
        if not (is_file or is_dir):
            if target == "esp":
                raise InvalidInputError(f"{where}: FAT cannot hold mode {info.mode:#o}; "
                                        "only regular files and directories can go to the ESP")
            target = "iso"
        if is_file and info.size >= FOUR_GIB and target != "iso":
            raise InvalidInputError(f"{where}: {info.size} bytes is more than FAT can hold (4 GiB - 1); "
                                    "mark it hybrid_target='iso' to store it in the ISO only")
        fat_node = None
        shared = target == "both" and is_file and info.size > 0
        placed_later = shared or bool(info.extra_value("placed_later"))
        if target in ("both", "iso"):
            # What the ISO would refuse, refused before the ESP records anything.
            self.iso.check_entry(info, placed_later=placed_later)
            if target == "both" and self._iso_only_added:
                self._check_iso_tree_takes(info, where)
            elif target == "iso":
                self._iso_only_added = True
        if target in ("both", "esp"):
            if is_file and target == "both" and (info.device_align or 1) < SHARED_FILE_ALIGN:
                # One FileInfo serves both writers: the ISO ignores device_align of a file
                # placed later, the ESP puts the file on a 2 KiB device boundary.
                info.device_align = SHARED_FILE_ALIGN
            fat_node = self.esp.add(info)
        if target in ("both", "iso"):
            iso_node = self.iso.add_checked(info, placed_later)
            if shared and fat_node is not None:
                self._add_shared(fat_node, iso_node)
        if not is_dir:
            self._files += 1
        if is_file:
            self.total_data_bytes += info.size
        return info

    @staticmethod
    def _target_of(info: FileInfo, where: str) -> str:
        """Where an entry goes: ``hybrid_target``, with ``hidden_from`` "fat" meaning
        ``hybrid_target="iso"`` (one rule: an entry hidden from the ESP's FAT lives in the
        ISO alone).  Hidden from "iso9660" and "joliet" it still goes to the ISO writer,
        which records no name for it, so that an El Torito entry can name it."""
        target = info.hybrid_target
        if "fat" in info.hidden_from:
            if target == "esp":
                raise InvalidInputError(f"{where}: hidden_from names 'fat' but hybrid_target is 'esp': "
                                        "the entry would be in no file system")
            target = "iso"
        if target == "esp" and info.joliet_name is not None:
            raise InvalidInputError(f"{where}: a joliet_name for an entry with hybrid_target 'esp' "
                                    "(it has no Joliet name)")
        return target

    def _check_iso_tree_takes(self, info: FileInfo, where: str) -> None:
        """Once entries went to the ISO only, an entry for both may clash there alone: refuse
        it before the ESP records it (else the ESP would hold a file the ISO lacks)."""
        tree = self.iso.tree
        node = tree.find(info.name) if info.name else None
        if node is not None and not (node.info.is_dir and info.is_dir):
            raise InvalidInputError(f"{where}: the ISO already holds this path (mode {node.info.mode:#o}, "
                                    "added for the ISO only); this path was added twice")
        parent = info.parent_name
        while parent:
            p = tree.find(parent)
            if p is not None:
                if not p.info.is_dir:
                    raise InvalidInputError(f"{where}: {parent} is not a directory in the ISO "
                                            f"(mode {p.info.mode:#o}, added for the ISO only)")
                break
            parent = parent.rpartition("/")[0]

    def add_tree(self, host_dir: str | os.PathLike[str], dest: str = "") -> None:
        """Add a host directory tree (lstat, sorted; symlinks kept, hard links recognised)."""
        with gc_paused():
            for info in walk_host_fileinfo(host_dir, dest):
                self.add(info)

    # -- remove and rename (issue 13) -------------------------------------------------------
    def remove(self, path: str) -> None:
        """Take ``path`` out of every file system that holds it (a directory with everything
        under it), while the image is open (CallOrderError after plan()).  A missing path
        is an InvalidInputError naming it; so is a boot image an El Torito entry names by
        ``path`` (the error names both).  A shared file's bytes go with it."""
        self._require_open("remove()")
        call = "ISO9660Hybrid.remove()"
        iso_node, fat_node = self._nodes(path, call)
        if iso_node is not None:
            self.iso.check_removable(iso_node, call)
        gone: set[int] = set()
        counted: dict[str, FileInfo] = {}
        for top in (iso_node, fat_node):
            for n in subtree(top) if top is not None else ():
                gone.add(id(n))
                if n.children is None:
                    counted[n.path] = n.info
        self._files -= len(counted)
        self.total_data_bytes -= sum(i.size for i in counted.values() if i.is_file)
        self._drop_shared(gone)
        if iso_node is not None:
            self.iso.tree.remove(iso_node.path, call)
        if fat_node is not None:
            self.esp.remove(fat_node.path)

    def rename(self, old_path: str, new_path: str) -> None:
        """Move ``old_path`` (with its subtree) to ``new_path`` in every file system that
        holds it, metadata kept: the parent must exist and the target must not, in each
        (FAT's rules too: long names, no name differing only by case).  Nothing changes
        when either refuses.  El Torito entries naming a moved file follow it."""
        self._require_open("rename()")
        call = "ISO9660Hybrid.rename()"
        iso_node, fat_node = self._nodes(old_path, call)
        for tree, node in ((self.iso.tree, iso_node), (self.esp.tree, fat_node)):
            if node is not None:
                tree.check_rename(node.path, new_path, call)
        old = normalize_name(old_path)
        if fat_node is not None:
            self.esp.rename(old, new_path)
        if iso_node is not None:
            try:
                self.iso.rename(old, new_path)
            except InvalidInputError:
                if fat_node is not None:
                    self.esp.rename(new_path, old)      # undo: the free old name takes it back
                raise

    # -- names per namespace, hard links (issue 13) ------------------------------------------
    def add_link(self, existing_path: str, new_path: str, *, namespace: str | None = None) -> None:
        """A new name for the file at ``existing_path``, sharing its bytes: in the ISO's
        namespaces ("iso9660", with Rock Ridge, "joliet", or both for None); the ESP
        keeps one name per file.  Namespace "fat" is refused (FAT cannot hold two names
        for one cluster chain: fsck.fat calls that cross-linked), and so is a file the
        ISO does not hold (``hybrid_target="esp"``): a link cannot cross file systems."""
        self._require_open("add_link()")
        call = "ISO9660Hybrid.add_link()"
        _entries.namespaces_of(f"{call} {new_path}", namespace)       # "fat" and unknown names refused
        name = normalize_name(existing_path)
        if name and self.iso.tree.find(name) is None and self.esp.tree.find(name) is not None:
            raise InvalidInputError(f"{call}: {name} is in the ESP only (hybrid_target 'esp'); links live in "
                                    "the ISO's namespaces, which do not hold it: a link cannot cross file systems")
        before = self.iso.tree.count
        node = _entries.add_link(self.iso, existing_path, new_path, namespace)
        if "fat" not in node.info.hidden_from and self.esp.tree.find(node.path) is None:
            _entries.set_hidden(node, node.info.hidden_from | {"fat"})    # ISO only: hybrid_target "iso"
        if self.iso.tree.count > before:
            self._files += 1

    def remove_link(self, path: str, *, namespace: str | None = None) -> None:
        """Drop the name ``path`` from ``namespace`` ("iso9660", "joliet", "fat"; None:
        all).  Leaving "fat", a shared file's bytes move into the ISO; leaving the ISO's
        trees it stays in the ESP; with no name left anywhere it goes, bytes and all,
        unless an El Torito entry names it (then it stays, reachable from El Torito only)."""
        self._require_open("remove_link()")
        call = "ISO9660Hybrid.remove_link()"
        wanted = _entries.namespaces_of(f"{call} {path}", namespace, ("iso9660", "joliet", "fat"))
        iso_node, fat_node = self._nodes(path, call)
        for node in (iso_node, fat_node):
            if node is not None and not node.info.is_file:
                raise InvalidInputError(f"{call}: {node.path} is not a regular file (mode {node.info.mode:#o}); "
                                        "remove() takes directories and other entries out")
        iso_wanted = tuple(ns for ns in wanted if ns != "fat")
        if namespace == "fat" and fat_node is None:
            raise InvalidInputError(f"{call}: {normalize_name(path)} has no name in fat (it is in the ISO only)")
        if namespace in ("iso9660", "joliet") and iso_node is None:
            raise InvalidInputError(f"{call}: {normalize_name(path)} has no name in {namespace} (it is in the "
                                    "ESP only)")
        iso_gone = False
        if iso_node is not None and iso_wanted:
            iso_gone = _entries.remove_link(self.iso, iso_node.path, namespace if namespace != "fat" else None)
        if fat_node is not None and "fat" in wanted:
            self.esp.remove(fat_node.path)
            if iso_node is not None and not iso_gone:
                _entries.set_placed_later(iso_node, False)     # its bytes now live in the ISO
                _entries.set_hidden(iso_node, iso_node.info.hidden_from | {"fat"})
        gone = ({id(fat_node)} if fat_node is not None and "fat" in wanted else set()) | \
            ({id(iso_node)} if iso_gone else set())
        self._drop_shared(gone)
        left_iso = iso_node is not None and not iso_gone
        left_fat = fat_node is not None and "fat" not in wanted
        last = iso_node if iso_node is not None else fat_node
        if not (left_iso or left_fat) and last is not None:
            self._files -= 1
            self.total_data_bytes -= last.info.size

    def lookup(self, path: str, namespace: str | None = None) -> Located:
        """Where an entry is after :meth:`plan`: its bytes (``device_offset``,
        ``size_bytes``) and the directory records naming it in each namespace ("iso9660",
        "joliet", "fat"; or only ``namespace``), with the extent each points at.  A shared
        file's records all name the same bytes.  Changes after plan() are refused, so
        the answer stays right until the image is written."""
        call = f"ISO9660Hybrid.lookup({path!r})"
        if self._stage == "open":
            raise CallOrderError(f"{call}: call plan() first")
        wanted = _entries.namespaces_of(call, namespace, ("iso9660", "joliet", "fat"))
        iso_node, fat_node = self._nodes(path, call)
        iso = self.iso.lookup(path) if iso_node is not None else Located(None, 0)
        records = [r for r in iso.records if r.namespace in wanted]
        offset, size = iso.device_offset, iso.size_bytes
        if fat_node is not None and "fat" in wanted:
            at, length, name = self.esp.entry_location(path)
            placed = self.esp.lookup(fat_node.path)
            extent = Extent(placed.device_offset, placed.size_bytes) if placed.device_offset is not None else None
            records.append(RecordPlace("fat", name, at, length, extent))
            if iso_node is None:
                offset, size = placed.device_offset, placed.size_bytes
        return Located(offset, size, tuple(records))

    def _nodes(self, path: str, call: str) -> tuple[Node | None, Node | None]:
        """(ISO node, ESP node) of ``path``; InvalidInputError when neither holds it."""
        name = normalize_name(path)
        if not name:
            raise InvalidInputError(f"{call}: the root directory cannot be removed, renamed or linked")
        iso_node, fat_node = self.iso.tree.find(name), self.esp.tree.find(name)
        if iso_node is None and fat_node is None:
            raise InvalidInputError(f"{call}: {name} is not in the image")
        return iso_node, fat_node

    def _add_shared(self, fat_node: Node, iso_node: Node) -> None:
        """Record a file stored once for both file systems (its ESP and ISO nodes)."""
        index = self._shared_index
        if index is not None:
            index[id(fat_node)] = index[id(iso_node)] = len(self._shared_fat)
        self._shared_fat.append(fat_node)
        self._shared_iso.append(iso_node)
        self._shared_count += 1

    def _drop_shared(self, gone: set[int]) -> None:
        """Forget the shared files whose ESP or ISO node is in ``gone`` (node ids)."""
        index = self._shared_index
        if index is None:
            index = self._shared_index = {}
            for i, (f, n) in enumerate(zip(self._shared_fat, self._shared_iso)):
                if f is not None and n is not None:
                    index[id(f)] = index[id(n)] = i
        for key in gone:
            i = index.pop(key, -1)
            if i < 0:
                continue
            fat_node, iso_node = self._shared_fat[i], self._shared_iso[i]
            if fat_node is not None and iso_node is not None:
                index.pop(id(fat_node), None)
                index.pop(id(iso_node), None)
                self._shared_fat[i] = self._shared_iso[i] = None
                self._shared_count -= 1

    def _shared_pairs(self) -> Iterator[tuple[Node, Node]]:
        """(ESP node, ISO node) of every shared file, in the order added."""
        for fat_node, iso_node in zip(self._shared_fat, self._shared_iso):
            if fat_node is not None and iso_node is not None:
                yield fat_node, iso_node

    def add_partition(self, type_guid: uuid.UUID | str, size_bytes: int | None = None, *, name: str = "",
                      unique_guid: uuid.UUID | str | None = None, attributes: int = 0,
                      data: DataSource | bytes | str | os.PathLike[str] | None = None) -> GPTPartition:
        """A further GPT partition, placed after the ESP (4 KiB aligned) in both GPTs.

        Give ``size_bytes`` or ``data`` (a DataSource, bytes or a host path; the size is
        then the data's, rounded up to 4 KiB).
        """
        self._require_open("add_partition()")
        return self.gpt.add_partition(type_guid, size_bytes, name=name, unique_guid=unique_guid,
                                      attributes=attributes, data=data)

    def contribute(self, contribution: BootContribution) -> tuple[GPTPartition, ...]:
        """Take a boot loader's contribution (files, El Torito entries, the EFI entry,
        partitions, MBR boot code, and the patches made once the layout is known).
        Returns the partitions it asked for, in its order."""
        self._require_open("contribute()")
        if not isinstance(contribution, BootContribution):
            raise InvalidInputError(f"ISO9660Hybrid.contribute(): expected a BootContribution, "
                                    f"found {type(contribution).__name__}")
        contribution.check()
        for spec in contribution.files:
            self.add(spec)
        for req in contribution.eltorito:
            self.iso.add_boot_catalog_entry(**req.arguments())
        if contribution.efi_from_esp:
            self.efi_boot = True
        parts = tuple(self.gpt.add_partition(req.type_guid, size_bytes=req.size_bytes, name=req.name,
                                             data=req.data)
                      for req in contribution.partitions)
        if contribution.mbr_boot_code is not None:
            self.mbr_boot_code = contribution.mbr_boot_code
        self._contributions.append((contribution, tuple(p.index or 0 for p in parts)))
        return parts

    # -- layout ----------------------------------------------------------------------------
    def plan(self) -> HybridPlan:
        """Compute the whole layout (ISO, ESP, partitions, both GPTs, MBR); see the module
        docstring for the picture.  Returns the :class:`HybridPlan`; afterwards add() is
        refused."""
        self._require_unfinished("plan()")
        boot_code = self._boot_code()             # bad boot code: an error before any work
        if self.efi_boot and self._efi_entry is None:
            self.iso.add_boot_catalog_entry(platform=BOOT_EFI, extent=Extent(0, ISO_SECTOR_BYTES, "ESP"))
            self._efi_entry = len(self.iso.boot_entries) - 1
        self._mark_planned()
        # 1. ISO metadata, with a gap after the descriptors for the 512-byte GPT array.
        iso = self.iso.plan(reserve_after_descriptors=GPT_ARRAY_BYTES)
        gap = iso.reserved_extent
        if gap.size_bytes < GPT_ARRAY_BYTES or gap.device_offset % 512:
            raise InternalError(f"ISO reserved gap {gap} cannot hold a 16 KiB GPT array")
        # 2. Partitions after the ISO metadata: the ESP first, then the caller's.
        esp, extents, next_free = self._place_partitions(iso.end_bytes)
        device_size = align_up(next_free, 4096) + BACKUP_AREA_BYTES
        # 3. What the contributions patch now that the partitions are placed.
        boot_code, data = self._finalize_contributions(extents, device_size, boot_code, esp)
        # 4. Both GPTs: 4K arrays in the system area and before the backup header block,
        #    512-byte arrays in the ISO's gap and below the 4K backup array.  Their GUIDs
        #    are random, or derive from both file systems' content (reproducible builds).
        identity = BuildIdentity(self._content_digest(iso.content_digest, esp.content_digest)
                                 if self.reproducible else None)
        gpt4k, gpt512 = self._gpt_layouts(device_size, gap, extents, data, identity)
        # 5. Point every shared ISO file at its FAT extent; the EFI entry at the ESP.
        boot_extents = {}
        esp_offset, esp_size = extents[self._esp_index()]
        if self._efi_entry is not None:
            boot_extents[self._efi_entry] = Extent(esp_offset, esp_size, "ESP")
        iso = self.iso.place(iso, self._shared_placements(esp), volume_size_bytes=device_size,
                             boot_extents=boot_extents)
        pieces = self._check_layout(device_size, gap, iso.end_bytes, gpt4k)
        summary = HybridSummary(
            image_size_bytes=device_size, iso_metadata_end=iso.end_bytes, esp_offset=esp_offset,
            esp_size_bytes=esp_size, fat_type=esp.fat_type,
            partitions=[(p.name, p.device_offset, p.size_bytes) for p in gpt4k.partitions],
            file_count=self._files, shared_file_count=self._shared_count,
            data_bytes=sum(n.info.size for n, _ in self._shared_pairs()),
            disk_guid=gpt4k.disk_guid, partition_guids=tuple(p.unique_guid for p in gpt4k.partitions),
            **self._labels())
        self.summary = summary
        return HybridPlan(device_size, iso, esp, gpt4k, gpt512, boot_code, bool(self.mbr_bootable), pieces,
                          summary)

    def _labels(self) -> dict[str, Any]:
        """The label each file system holds (HybridSummary's label fields)."""
        return dict(iso_label=self.iso.pvd_label, joliet_label=self.iso.joliet_label,
                    fat_label=self.esp.volume_label)

    def _esp_index(self) -> int:
        index = self.esp_partition.index
        if index is None:
            raise InternalError("the ESP has no partition number")
        return index

    def _place_partitions(self, iso_end: int) -> tuple[VFATPlan, dict[int, tuple[int, int]], int]:
        """The ESP right after the ISO metadata (aligned), sized by its FAT's plan; then the
        other partitions, each aligned, in their order.  Returns the ESP's plan, every
        partition's (device_offset, size_bytes) by index, and the first byte past them."""
        align = self.partition_align_bytes
        if not isinstance(align, int) or align <= 0 or align % 4096:
            raise InvalidInputError(f"partition_align_bytes: must be a positive multiple of 4096, found {align!r}")
        esp_offset = align_up(iso_end, align)
        esp = self.esp.plan(volume_offset=esp_offset)
        if align_up(esp.size_bytes, 4096) < self.esp_min_size_bytes:
            esp = self.esp.plan(volume_offset=esp_offset, min_size_bytes=self.esp_min_size_bytes)
        esp_size = align_up(esp.size_bytes, 4096)
        extents = {self._esp_index(): (esp_offset, esp_size)}
        next_free = esp_offset + esp_size
        for part in self.gpt.partitions:
            if part is self.esp_partition:
                continue
            size = part.size_bytes
            if part.size_rule == "fill" or size is None:
                raise InvalidInputError(f"partition {part.name!r}: give size_bytes or data "
                                        "(the hybrid places extra partitions after the ESP)")
            source = part.source
            if part.size_rule == "data" and source is not None:
                size = align_up(source.size_bytes, 4096)
            offset = align_up(next_free, align) if part.auto_offset else part.device_offset
            if offset is None or offset % 4096:
                raise LayoutError(f"partition {part.name!r}: offset {offset} must be a multiple of 4096 "
                                  "(both GPTs describe it)")
            size = align_up(size, 4096)
            if part.index is None:
                raise InternalError(f"partition {part.name!r} has no number")
            extents[part.index] = (offset, size)
            next_free = max(next_free, offset + size)
        return esp, extents, next_free

    def _finalize_contributions(self, extents: dict[int, tuple[int, int]], device_size: int,
                                boot_code: bytes | None,
                                esp: VFATPlan) -> tuple[bytes | None, dict[int, DataSource]]:
        """Ask each contribution for the patches that depend on where its partitions (and
        the files it asks to locate) lie."""
        data: dict[int, DataSource] = {}
        for contribution, indices in self._contributions:
            if contribution.finalize is None:
                continue
            files = tuple(self._locate_file(path, esp) for path in contribution.locate)
            patches: BootPatches = contribution.finalize(PlacedBoot(tuple(extents[i] for i in indices),
                                                                    device_size, files))
            if patches.mbr_boot_code is not None:
                boot_code = _check_boot_code(patches.mbr_boot_code, "boot contribution")
            for index, blob in zip(indices, patches.partition_data):
                if blob is not None:
                    data[index] = BytesData(bytes(blob))
        return boot_code, data

    def _locate_file(self, path: str, esp: VFATPlan) -> tuple[int | None, int]:
        """(device_offset, size_bytes) of the file ``path`` of the image: where the FAT put
        a shared file, where the ISO put one of its own (an isohybrid MBR names the El
        Torito boot image's address)."""
        node = self.iso.tree.find(to_fileinfo({"name": path, "mode": 0o40755}).name)
        if node is None or not node.info.is_file:
            raise InvalidInputError(f"boot contribution: {path} is not a file of the image")
        for fat_node, iso_node in self._shared_pairs():
            if iso_node is node:
                return esp.device_offset_of(fat_node), node.info.size
        located = self.iso.lookup(path)
        return located.device_offset, located.size_bytes

    def _gpt_layouts(self, device_size: int, gap: Extent, extents: dict[int, tuple[int, int]],
                     data: dict[int, DataSource], identity: BuildIdentity) -> tuple[GPTLayout, GPTLayout]:
        """The 4096-byte GPT (its arrays in the system area and before the backup header
        block) and the 512-byte one derived from it (arrays in the ISO's gap and below the
        4K backup array; its backup header in the last 512 bytes of the device)."""
        first_usable = align_up(gap.end, 4096)
        last_usable_end = device_size - BACKUP_AREA_BYTES
        gpt4k = self.gpt.layout(device_size, extents=extents, data=data, identity=identity,
                                primary_entries_offset=GPT4K_ARRAY_OFFSET,
                                backup_header_offset=device_size - 4096,
                                backup_entries_offset=device_size - 4096 - GPT_ARRAY_BYTES,
                                first_usable_lba=first_usable // 4096,
                                last_usable_lba=last_usable_end // 4096 - 1)
        gpt512 = self.gpt.derive(512).layout(device_size, primary_entries_offset=gap.device_offset,
                                             backup_header_offset=device_size - 512,
                                             backup_entries_offset=device_size - 4096 - 2 * GPT_ARRAY_BYTES,
                                             first_usable_lba=first_usable // 512,
                                             last_usable_lba=last_usable_end // 512 - 1)
        return gpt4k, gpt512

    def _shared_placements(self, esp: VFATPlan) -> Iterator[tuple[Node, int]]:
        """(ISO node, device offset) of every shared file: where the FAT put its bytes.
        A hard-link group is placed once (its members share one ISO payload)."""
        placed: set[tuple[int, int]] = set()
        for fat_node, iso_node in self._shared_pairs():
            info = fat_node.info
            offset = esp.device_offset_of(fat_node)
            if offset is None or offset % SHARED_FILE_ALIGN:
                raise InternalError(f"{info.name}: FAT placed it at {offset}, not 2 KiB aligned")
            key = info.link_key
            if key is not None:
                if key in placed:
                    continue
                placed.add(key)
            yield iso_node, offset

    def _check_layout(self, device_size: int, gap: Extent, iso_end: int, gpt4k: GPTLayout) -> tuple[Extent, ...]:
        pieces = [Extent(0, 512, "protective MBR"),
                  Extent(GPT512_HEADER_OFFSET, 512, "512-byte GPT header"),
                  Extent(GPT4K_HEADER_OFFSET, 4096, "4K GPT header"),
                  Extent(GPT4K_ARRAY_OFFSET, GPT_ARRAY_BYTES, "4K GPT entry array"),
                  Extent(gap.device_offset, GPT_ARRAY_BYTES, "512-byte GPT entry array"),
                  Extent(SYSTEM_AREA_BYTES, gap.device_offset - SYSTEM_AREA_BYTES, "ISO descriptors"),
                  Extent(gap.end, iso_end - gap.end, "ISO metadata and ISO-only files"),
                  Extent(device_size - 4096 - 2 * GPT_ARRAY_BYTES, GPT_ARRAY_BYTES, "512-byte backup array"),
                  Extent(device_size - 4096 - GPT_ARRAY_BYTES, GPT_ARRAY_BYTES, "4K backup array"),
                  Extent(device_size - 4096, 4096, "backup GPT headers")]
        pieces += [Extent(p.device_offset, p.size_bytes, f"partition {p.name!r}") for p in gpt4k.partitions]
        check_no_overlap(pieces, device_size)
        return tuple(pieces)

    # -- writing ---------------------------------------------------------------------------
    def finish(self) -> HybridSummary:
        """Lay out and write the image (see the module docstring for the layout), once."""
        self._require_unfinished("finish()")
        if self.filename is None and self.filehandle is None:
            raise InvalidInputError("ISO9660Hybrid: set filename or filehandle before finish()")
        self._boot_code()                   # bad boot code: an error before any work
        with gc_paused():
            plan = self.plan()
            with Output(self.filename, self.filehandle) as out:
                image_size = plan.device_size_bytes
                if self.gpt_backup_at_device_end:
                    plan = _gpt_backup_at_device_end(plan, out.capacity)
                out.prepare(image_size)     # sized, and zeroed where the target held old bytes
                if plan.device_size_bytes > image_size:
                    out.prepare(BACKUP_AREA_BYTES, start=plan.device_size_bytes - BACKUP_AREA_BYTES)
                self.write(out.fd, plan)
        self._mark_finished()
        return plan.summary

    # -- the GPT backup at the device's end (Output's part of finish) ------------------------
    gpt_backup_at_device_end = False
    """When the output is larger than the image (a USB stick, a caller's larger file), put
    both GPTs' backup arrays and headers at its end and let their usable range reach there,
    as a partitioning tool would (so the kernel and firmware find the backup where UEFI
    5.3.2 says it is).  The ISO volume and the partitions stay as planned; the bytes between
    the image and the backup area are not written.  Off by default: the device then holds
    the very bytes of the image file."""

    def write(self, fd: int, plan: HybridPlan) -> None:
        """Write everything ``plan`` describes into ``fd`` (already sized): ISO metadata and
        the ESP with the file data, the 4K GPT with the partitions' data, the 512-byte GPT,
        and the protective MBR with its boot code."""
        if not isinstance(plan, HybridPlan):
            raise InvalidInputError(f"ISO9660Hybrid.write(): expected a HybridPlan, found {type(plan).__name__}")
        if self._stage == "open":
            raise CallOrderError("ISO9660Hybrid.write(): call plan() first")
        self._write_iso_and_esp(fd, plan)
        self.gpt.write(fd, plan.gpt4k)                   # 4K GPT (and data of the caller's partitions)
        for offset, blob in self.gpt.structures(plan.gpt512):   # then the 512-byte one
            os.pwrite(fd, blob, offset)
        mbr = MBR.protective(plan.device_size_bytes, 512, bootable=plan.mbr_bootable)
        if plan.mbr_boot_code:
            mbr.set_boot_code(plan.mbr_boot_code)
        os.pwrite(fd, mbr.to_bytes(), 0)

    def _write_iso_and_esp(self, fd: int, plan: HybridPlan) -> None:
        """Write the ISO metadata and the ESP (with the file data) at the same time.

        They fill disjoint parts of the device, so the order does not matter.  Where it is
        safe (:func:`sysexport.parallel.fork_refusal`) a forked child writes the ESP while
        this process writes the ISO, both cores working: the write phase takes the longer
        of the two instead of their sum.  Otherwise a thread writes the ESP: it spends some
        of its time in system calls (the GIL is released there) while this thread builds
        ISO directories, about 10% less wall time with 100,000 small files.
        """
        if parallel.fork_refusal(_sources_read(plan)) is None and parallel.run_beside(
                lambda: self.esp.write(fd, plan.esp), lambda: self.iso.write(fd, plan.iso), "the ESP"):
            return
        failure: list[BaseException] = []
        context = contextvars.copy_context()        # the progress callback lives in a ContextVar
        done = threading.Event()

        def write_esp() -> None:
            try:
                context.run(self.esp.write, fd, plan.esp)
            except BaseException as e:              # re-raised in the calling thread
                failure.append(e)
            finally:
                done.set()

        worker = threading.Thread(target=write_esp, name="sysexport-esp-write")
        worker.start()
        try:
            self.iso.write(fd, plan.iso)
        finally:
            _join_uninterrupted(worker, done)
        if failure:
            raise failure[0]

    def _boot_code(self) -> bytes | None:
        code = self.mbr_boot_code
        if code is None:
            return None
        if isinstance(code, (str, os.PathLike)):
            try:
                with open(code, "rb") as f:
                    code = f.read(512)
            except OSError as e:
                raise InvalidInputError(f"mbr_boot_code {os.fsdecode(code)}: cannot read it: {e.strerror}") from None
        return _check_boot_code(bytes(code), "mbr_boot_code")

    # -- remastering (issue 13) ----------------------------------------------------------
    @classmethod
    def from_image(cls, src: Any, output: Any = None) -> ISO9660Hybrid:
        """A hybrid holding everything the image ``src`` holds (a hybrid as it was, a plain
        ISO with an ESP made from its tree), with its El Torito entries, MBR boot code and
        extra partitions, file data read from ``src`` at finish().  See :mod:`sysexport.remaster`."""
        from .remaster import hybrid_from_image
        return hybrid_from_image(cls, src, output)


MAX_ESP_BYTES = 0xFFFFFFFF * 4096
"""The most a FAT volume of 4096-byte sectors holds (BPB_TotSec32)."""


def validate_flag(field: str, value: object) -> bool:
    """An on/off attribute: True or False."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"ISO9660Hybrid {field}: expected True or False, found {value!r}")
    return value


def validate_esp_min_size(value: object) -> int:
    """``esp_min_size_bytes``: 0 .. the most a FAT volume holds."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ESP_BYTES:
        raise InvalidInputError(f"ISO9660Hybrid esp_min_size_bytes: expected an integer 0..{MAX_ESP_BYTES}, "
                                f"found {value!r}")
    return value


def validate_partition_align(value: object) -> int:
    """``partition_align_bytes``: a positive multiple of 4096 (both GPTs describe every partition)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % 4096:
        raise InvalidInputError(f"ISO9660Hybrid partition_align_bytes: must be a positive multiple of 4096 "
                                f"(both GPTs describe the partitions), found {value!r}")
    return value


def validate_mbr_boot_code(value: object) -> bytes | str | os.PathLike[str] | None:
    """``mbr_boot_code``: None; bytes (at most 440, or a 512-byte sector whose partition
    table part is zero); or the path of an existing regular file (read at plan())."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        code = bytes(value)
        _check_boot_code(code, "mbr_boot_code")
        return code
    if isinstance(value, (str, os.PathLike)):
        path = os.fsdecode(value)
        try:
            st = os.stat(path)
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"mbr_boot_code {path!r}: cannot read it: "
                                    f"{getattr(e, 'strerror', None) or e}") from None
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(f"mbr_boot_code {path}: expected a regular file, found mode {st.st_mode:#o}")
        return value
    raise InvalidInputError(f"ISO9660Hybrid mbr_boot_code: expected bytes, a path or None, "
                            f"found {type(value).__name__}")


def _sources_read(plan: HybridPlan) -> Iterator[DataSource | None]:
    """Every data source the ISO's and the ESP's writes read (for the fork's safety check:
    a source read through a shared file position keeps both in one process)."""
    for payload, patched in plan.iso.owned:
        if patched is None:
            yield payload.info.source
    for d in plan.esp.dirs:
        for child in (d.children or {}).values():
            yield child.info.source


def _join_uninterrupted(worker: threading.Thread, done: threading.Event) -> None:
    """Wait for ``worker`` even through Ctrl-C or any exception a signal handler raises
    (a SIGTERM handler calling sys.exit()): the output's descriptor must stay open until
    the thread writing into it is done; the first interruption is raised afterwards.

    The thread sets ``done`` as its last act.  Its ``is_alive()`` is no proof: a join
    interrupted by a signal handler's exception marks a running thread stopped
    (CPython issue 90882; seen here with Python 3.11), and the descriptor would close
    under it."""
    interrupted: BaseException | None = None
    while True:
        try:
            done.wait()
            worker.join()
            break
        except BaseException as e:
            interrupted = interrupted or e
    if interrupted is not None:
        raise interrupted


def _check_boot_code(code: bytes, where: str) -> bytes:
    """Legacy boot code for the MBR: at most 440 bytes, or a whole sector whose bytes past
    440 (signature, entries) are zero; returns the first 440."""
    if len(code) > BOOT_CODE_MAX_BYTES and any(code[BOOT_CODE_MAX_BYTES:min(len(code), MBR_SIGNATURE_OFFSET)]):
        raise InvalidInputError(f"{where}: {len(code)} bytes with data past byte {BOOT_CODE_MAX_BYTES}; only "
                                f"{BOOT_CODE_MAX_BYTES} bytes of boot code fit before the partition table "
                                "(disk signature and entries at 440..511 belong to the MBR)")
    return code[:BOOT_CODE_MAX_BYTES]


def _gpt_backup_at_device_end(plan: HybridPlan, capacity: int | None) -> HybridPlan:
    """``plan`` with both GPTs' backup structures moved to the end of a target of
    ``capacity`` bytes (rounded down to 4 KiB), the end of their usable range with them, and
    the protective MBR spanning the target; unchanged when the target has no size or is
    not larger than the image.  The ISO volume, the ESP and the partitions are untouched."""
    import dataclasses
    if capacity is None:
        return plan
    device_size = capacity - capacity % 4096
    delta = device_size - plan.device_size_bytes
    if delta <= 0:
        return plan

    def moved(lay: GPTLayout) -> GPTLayout:
        return dataclasses.replace(lay, device_size_bytes=device_size,
                                   backup_entries_offset=lay.backup_entries_offset + delta,
                                   backup_header_offset=lay.backup_header_offset + delta,
                                   last_usable_lba=lay.last_usable_lba + delta // lay.block_size)

    return dataclasses.replace(plan, device_size_bytes=device_size, gpt4k=moved(plan.gpt4k),
                               gpt512=moved(plan.gpt512))
