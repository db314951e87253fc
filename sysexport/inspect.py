"""The read side of the ``sysexport`` command: ``inspect``, ``ls``, ``extract``, ``verify``.

``add_cli_commands(subparsers)`` registers the four commands; each handler takes the
parsed arguments and returns an exit code.  An image is probed for everything it may be
at once (ISO 9660 at offset 0, a protective or legacy MBR, GPTs for 512- and 4096-byte
blocks, FAT at offset 0 or inside a partition), so a hybrid shows all of them.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Iterator, TextIO

from .errors import InvalidImageError, InvalidInputError, SysExportError

if TYPE_CHECKING:
    from .iso9660.reader import ISO9660Reader, ISOEntry
    from .partition.gpt import GPT
    from .partition.mbr import MBR
    from .vfat.reader import Entry as FATEntry
    from .vfat.reader import VFATReader

# The on-disk facts come from the formats' _structs.py and enums.py, imported where used
# (importing a format package costs startup time the CLI's other commands need not pay).
ESP_VIEW = "esp"
ALL_VIEWS = ("rr", "joliet", "iso", ESP_VIEW)
GPT_BLOCK_SIZES = (512, 4096)
MBR_SECTOR_BYTES = 512                                    # MBR LBAs are in 512-byte sectors (UEFI 5.2.1)
FAT_DIR_MODE = 0o40755
FAT_FILE_MODE = 0o100644
FAT_READONLY_FILE_MODE = 0o100444
EXTRACT_MODE_MASK = 0o1777                                # never recreate setuid/setgid bits


@dataclass
class Probe:
    """What an image holds: each part is None when absent; errors found while probing."""

    path: str
    size_bytes: int
    iso: ISO9660Reader | None = None
    mbr: MBR | None = None
    gpts: dict[int, GPT] = field(default_factory=dict)
    fats: list[tuple[int, str, VFATReader]] = field(default_factory=list)   # (offset, where, reader)
    errors: list[str] = field(default_factory=list)
    file: BinaryIO | None = None

    @property
    def esp(self) -> tuple[int, VFATReader] | None:
        """(offset, VFATReader) of the EFI system partition, else of the first FAT found."""
        from .partition.enums import GPT_TYPE_ESP
        for gpt in self.gpts.values():
            for p in gpt.partitions:
                if p.type_guid == GPT_TYPE_ESP:
                    for off, _, fat in self.fats:
                        if off == p.device_offset:
                            return off, fat
        return (self.fats[0][0], self.fats[0][2]) if self.fats else None

    def esp_reader(self) -> tuple[int, VFATReader]:
        """:attr:`esp`, or InvalidInputError naming the image when it has no FAT file system."""
        esp = self.esp
        if esp is None:
            raise InvalidInputError(f"{self.path}: no FAT file system (ESP) in this image")
        return esp

    def iso_reader(self) -> ISO9660Reader:
        """:attr:`iso`, or InvalidImageError naming the image when it has no ISO 9660 volume."""
        if self.iso is None:
            raise InvalidImageError(f"{self.path}: no ISO 9660 volume in this image")
        return self.iso

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.iso is not None:
            self.iso.close()
        for _, _, fat in self.fats:
            fat.close()
        if self.file is not None:
            self.file.close()


def _try_fat(f: BinaryIO, offset: int) -> VFATReader | None:
    from .vfat._structs import BOOT_SECTOR_16, BOOT_SIGNATURE, JMP_BOOT_OPCODES
    from .vfat.reader import VFATReader
    f.seek(offset)
    n = BOOT_SECTOR_16.sizeof()
    head = f.read(n)
    if len(head) < n or head[0] not in JMP_BOOT_OPCODES or head[n - len(BOOT_SIGNATURE):n] != BOOT_SIGNATURE:
        return None
    try:
        return VFATReader(f, volume_offset=offset)
    except (InvalidImageError, ValueError, IndexError):
        return None


def probe(path: str) -> Probe:
    """Look for an ISO 9660 volume, an MBR, both GPTs and FAT volumes in the image at ``path``."""
    f = open(path, "rb")
    pr = Probe(path, f.seek(0, os.SEEK_END), file=f)
    try:
        _probe_into(pr, f)
    except BaseException:
        pr.close()
        raise
    return pr


def _probe_into(pr: Probe, f: BinaryIO) -> None:
    from .iso9660._structs import FIRST_DESCRIPTOR_LBA, SECTOR_BYTES
    from .iso9660.reader import ISO9660Reader, looks_like_iso9660
    from .partition._structs import GPT_SIGNATURE, MBR_SIGNATURE, MBR_SIGNATURE_OFFSET, MBR_SIZE_BYTES
    from .partition.enums import MBR_TYPE_GPT_PROTECTIVE
    from .partition.gpt import GPT
    from .partition.mbr import MBR

    size = pr.size_bytes
    if size >= (FIRST_DESCRIPTOR_LBA + 1) * SECTOR_BYTES and looks_like_iso9660(f, 0):
        try:
            pr.iso = ISO9660Reader(f, 0)
        except SysExportError as e:
            pr.errors.append(f"ISO 9660: {e}")
    f.seek(0)
    lba0 = f.read(MBR_SIZE_BYTES)
    if len(lba0) == MBR_SIZE_BYTES and lba0[MBR_SIGNATURE_OFFSET:] == MBR_SIGNATURE:
        try:
            pr.mbr = MBR.parse(lba0)
        except (InvalidImageError, InvalidInputError) as e:
            pr.errors.append(f"MBR: {e}")
    for bs in GPT_BLOCK_SIZES:
        f.seek(bs)
        if f.read(len(GPT_SIGNATURE)) == GPT_SIGNATURE:
            try:
                pr.gpts[bs] = GPT.parse(f.fileno(), bs)
            except SysExportError as e:
                pr.errors.append(f"GPT ({bs}-byte blocks): {e}")
    candidates: list[tuple[int, str]] = [(0, "whole image")]
    seen = {0}
    for bs, gpt in sorted(pr.gpts.items()):
        for p in gpt.partitions:
            if p.device_offset is not None and p.device_offset not in seen:
                seen.add(p.device_offset)
                candidates.append((p.device_offset, f"GPT partition {p.index}"))
    if pr.mbr is not None:
        for i, mp in enumerate(pr.mbr.partitions, 1):
            offset = mp.first_lba * MBR_SECTOR_BYTES if mp is not None else 0
            if mp is not None and mp.type_id != MBR_TYPE_GPT_PROTECTIVE and offset not in seen:
                seen.add(offset)
                candidates.append((offset, f"MBR partition {i}"))
    for offset, where in candidates:
        if offset == 0 and pr.iso is not None and pr.gpts:
            continue
        fat = _try_fat(f, offset)
        if fat is not None:
            pr.fats.append((offset, where, fat))


def _mib(n: int) -> str:
    return f"{n:,} bytes ({n / (1 << 20):.1f} MiB)"


def _named(name: str | None) -> str:
    return f" ({name})" if name else ""


def inspect_lines(pr: Probe) -> list[str]:
    """The one-screen summary ``sysexport inspect`` prints."""
    out = [f"{pr.path}: {_mib(pr.size_bytes)}"]
    if pr.iso is not None:
        from .iso9660.enums import MEDIA_TYPE_NAMES, PLATFORM_NAMES
        v = pr.iso.volume
        out.append(f"ISO 9660    label {v.volume_identifier!r}, {_mib(v.size_bytes)}, UUID {v.uuid}")
        out.append(f"  system {v.system_identifier!r}, publisher {v.publisher_identifier!r}, "
                   f"preparer {v.data_preparer_identifier[:40]!r}, application {v.application_identifier[:40]!r}")
        joliet = f"level {v.joliet_level}, label {v.joliet_volume_identifier!r}" if v.joliet_level else "no"
        out.append(f"  Joliet {joliet}; Rock Ridge {('RRIP ' + v.rock_ridge) if v.rock_ridge else 'no'}")
        try:
            catalog = pr.iso.boot_catalog()
        except SysExportError as err:
            catalog = []
            pr.errors.append(f"El Torito: {err}")
        for i, e in enumerate(catalog):
            out.append(f"  El Torito {i}: {PLATFORM_NAMES.get(e.platform_id, hex(e.platform_id))}, "
                       f"{'bootable' if e.bootable else 'not bootable'}, "
                       f"{MEDIA_TYPE_NAMES.get(e.media_type, e.media_type)}, "
                       f"{e.sector_count} sectors of 512 at byte {e.device_offset:,} (LBA {e.load_rba})")
    from .partition.enums import GPT_TYPE_NAMES, MBR_TYPE_NAMES
    if pr.mbr is not None:
        parts = [(i, mp) for i, mp in enumerate(pr.mbr.partitions, 1) if mp is not None]
        out.append(f"MBR         disk signature {pr.mbr.disk_signature:#010x}, boot code "
                   f"{'yes' if pr.mbr.boot_code else 'none'}, {len(parts)} entr{'y' if len(parts) == 1 else 'ies'}")
        for i, mp in parts:
            out.append(f"  {i}: type {mp.type_id:#04x}{' active' if mp.bootable else ''}, "
                       f"{mp.sector_count * MBR_SECTOR_BYTES:,} bytes at byte {mp.first_lba * MBR_SECTOR_BYTES:,}"
                       + _named(MBR_TYPE_NAMES.get(mp.type_id)))
    for bs, gpt in sorted(pr.gpts.items()):
        out.append(f"GPT {bs:<4}    disk {gpt.disk_guid}, {gpt.entry_count} entries, "
                   f"usable LBAs {gpt.first_usable_lba}..{gpt.last_usable_lba}")
        for p in gpt.partitions:
            out.append(f"  {p.index}: {p.name!r} type {p.type_guid}, {p.size_bytes:,} bytes at byte "
                       f"{p.device_offset:,}" + _named(GPT_TYPE_NAMES.get(p.type_guid)))
    for offset, where, fat in pr.fats:
        out.append(f"FAT{fat.fat_type:<2}       ({where}, byte {offset:,}) label {fat.label!r}, "
                   f"volume id {fat.volume_id:08X}, sector {fat.sector_size}, cluster {fat.cluster_size}, "
                   f"{fat.cluster_count:,} clusters")
    if pr.iso is None and pr.mbr is None and not pr.gpts and not pr.fats:
        out.append("  no ISO 9660, MBR, GPT or FAT found")
    out.extend(f"error: {e}" for e in pr.errors)
    return out


# -- views: one interface over the ISO views and the ESP ------------------------------------

def _pick_view(pr: Probe, view: str | None) -> str:
    if view is None:
        if pr.iso is not None:
            return pr.iso.views[0]
        if pr.esp is not None:
            return ESP_VIEW
        raise InvalidImageError(f"{pr.path}: neither an ISO 9660 volume nor a FAT file system found"
                                + "".join(f"; {e}" for e in pr.errors))
    if view == ESP_VIEW:
        if pr.esp is None:
            raise InvalidInputError(f"{pr.path}: no FAT file system (ESP) in this image")
    elif pr.iso is None and pr.errors:
        raise InvalidImageError(f"{pr.path}: {'; '.join(pr.errors)}")
    elif pr.iso is None or view not in pr.iso.views:
        have = (pr.iso.views if pr.iso else []) + ([ESP_VIEW] if pr.esp else [])
        raise InvalidInputError(f"{pr.path}: no {view!r} view (found: {', '.join(have) or 'none'})")
    return view


@dataclass
class Item:
    """A file of any view, with what ls and extract need."""

    path: str
    name: str
    mode: int
    size_bytes: int
    mtime: float | None = None
    atime: float | None = None
    uid: int = 0
    gid: int = 0
    target: str | None = None
    rdev: tuple[int, int] | None = None
    ref: ISOEntry | FATEntry | None = None


def _fat_item(e: FATEntry) -> Item:
    from .vfat._structs import ATTR_READ_ONLY
    if e.is_dir:
        mode = FAT_DIR_MODE
    else:
        mode = FAT_READONLY_FILE_MODE if e.attr & ATTR_READ_ONLY else FAT_FILE_MODE
    return Item(e.path, e.name, mode, 0 if e.is_dir else e.size_bytes, ref=e)


def _iso_item(e: ISOEntry) -> Item:
    return Item(e.path, e.name, e.mode, e.size_bytes, e.mtime, e.atime, e.uid, e.gid, e.target, e.rdev, e)


def _iso_entry(item: Item) -> ISOEntry:
    from .iso9660.reader import ISOEntry
    if not isinstance(item.ref, ISOEntry):
        raise InvalidInputError(f"{item.path}: not an entry of an ISO 9660 view")
    return item.ref


def _fat_entry(item: Item) -> FATEntry:
    from .vfat.reader import Entry
    if not isinstance(item.ref, Entry):
        raise InvalidInputError(f"{item.path}: not an entry of the esp view")
    return item.ref


def walk_view(pr: Probe, view: str) -> Iterator[Item]:
    """Every entry of a view, parents first; names are checked to be single path components."""
    if view == ESP_VIEW:
        _, fat = pr.esp_reader()
        for fe in fat.walk():
            if not fe.name or "/" in fe.name or "\0" in fe.name or fe.name in (".", ".."):
                raise InvalidImageError(f"FAT directory entry {fe.path!r}: name {fe.name!r} is not a single path "
                                        "component")
            yield _fat_item(fe)
    else:
        for ie in pr.iso_reader().walk(view):
            yield _iso_item(ie)


def list_view(pr: Probe, view: str, path: str) -> tuple[Item, list[Item]]:
    """The entry at ``path`` and, for a directory, its children."""
    path = path.strip("/")
    if view == ESP_VIEW:
        _, fat = pr.esp_reader()
        if not path:
            return Item("", "", FAT_DIR_MODE, 0), [_fat_item(e) for e in fat.list_dir(0)]
        cluster, prefix = 0, ""
        parts = path.split("/")
        for n, part in enumerate(parts):
            siblings = fat.list_dir(cluster, prefix)
            match = [e for e in siblings if e.name == part or e.short_name.upper() == part.upper()]
            if not match:
                raise InvalidInputError(f"{path}: no {part!r} in /{prefix} (esp view)")
            entry = match[0]
            cluster, prefix = entry.first_cluster, entry.path
            if not entry.is_dir and n < len(parts) - 1:
                raise InvalidInputError(f"{path}: {entry.path} is not a directory (esp view)")
        item = _fat_item(entry)
        kids = [_fat_item(e) for e in fat.list_dir(entry.first_cluster, entry.path)] if entry.is_dir else []
        return item, kids
    iso = pr.iso_reader()
    found = iso.find(path, view)
    kids = [_iso_item(c) for c in iso.listdir(found, view)] if found.is_dir else []
    return _iso_item(found), kids


def _content(pr: Probe, view: str, item: Item) -> Iterator[bytes]:
    if view == ESP_VIEW:
        return pr.esp_reader()[1].iter_content(_fat_entry(item))
    return pr.iso_reader().iter_content(_iso_entry(item))


def ls_line(item: Item, name: str | None = None) -> str:
    """One ``ls -l`` style line: mode, uid, gid, size, mtime (UTC), name, -> target."""
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(item.mtime)) if item.mtime is not None else "-" * 16
    size = f"{item.rdev[0]}, {item.rdev[1]}" if item.rdev is not None else str(item.size_bytes)
    line = f"{stat.filemode(item.mode)} {item.uid:>5} {item.gid:>5} {size:>12} {when} {name or item.name}"
    if item.target is not None:
        line += f" -> {item.target}"
    return line


# -- extract -------------------------------------------------------------------------------

def extract(pr: Probe, view: str, dest: str, err: TextIO | None = None) -> tuple[int, int]:
    """Write a view into ``dest`` (created if missing); returns (entries written, skipped).

    Never overwrites: every path is created with O_EXCL / mkdir / symlink, which fail on
    anything already there, so nothing is written outside ``dest`` even through a symlink.
    Modes (without setuid/setgid) and times are set when the view records them.
    """
    err = sys.stderr if err is None else err
    has_modes = view == "rr"
    os.makedirs(dest, exist_ok=True)
    written = skipped = 0
    dirs: list[tuple[str, Item]] = []
    for item in walk_view(pr, view):
        target = os.path.join(dest, *item.path.split("/"))
        try:
            if stat.S_ISDIR(item.mode):
                os.mkdir(target, 0o700)
                dirs.append((target, item))
            elif stat.S_ISLNK(item.mode):
                os.symlink(item.target or "", target)
                if item.mtime is not None:
                    os.utime(target, (item.atime or item.mtime, item.mtime), follow_symlinks=False)
            elif stat.S_ISREG(item.mode):
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                try:
                    for chunk in _content(pr, view, item):
                        os.write(fd, chunk) if len(chunk) < (1 << 16) else _write_all(fd, chunk)
                    if has_modes:
                        os.fchmod(fd, item.mode & EXTRACT_MODE_MASK)
                    if item.mtime is not None:
                        os.utime(fd, (item.atime or item.mtime, item.mtime))
                finally:
                    os.close(fd)
            else:
                print(f"sysexport: {item.path}: skipped (mode {item.mode:#o}: device, fifo or socket)", file=err)
                skipped += 1
                continue
        except FileExistsError:
            raise SysExportError(f"{target}: already exists; extract never overwrites") from None
        written += 1
    for target, item in reversed(dirs):
        if has_modes:
            os.chmod(target, item.mode & EXTRACT_MODE_MASK)
        else:
            os.chmod(target, 0o755)
        if item.mtime is not None:
            os.utime(target, (item.atime or item.mtime, item.mtime))
    return written, skipped


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# -- verify --------------------------------------------------------------------------------

def verify(pr: Probe) -> tuple[bool, str]:
    """Re-read every file of both views of a hybrid; each file in both must have one extent,
    the same in the ISO directory record and in the FAT chain, and the same bytes."""
    esp = pr.esp
    if pr.iso is None or esp is None:
        return False, "FAIL: not a hybrid (needs an ISO 9660 volume and a FAT ESP)"
    iso = pr.iso
    view = iso.views[0]
    esp_offset, fat = esp
    iso_files = {i.path: i for i in walk_view(pr, view) if stat.S_ISREG(i.mode)}
    fat_files = {i.path: i for i in walk_view(pr, ESP_VIEW) if stat.S_ISREG(i.mode)}
    problems: list[str] = []
    shared = 0
    for path in sorted(set(iso_files) & set(fat_files)):
        iso_e, fat_e = _iso_entry(iso_files[path]), _fat_entry(fat_files[path])
        if iso_e.size_bytes != fat_e.size_bytes:
            problems.append(f"{path}: ISO size {iso_e.size_bytes}, FAT size {fat_e.size_bytes}")
            continue
        if fat_e.size_bytes == 0:
            continue
        chain = fat.chain(fat_e.first_cluster)
        contiguous = chain == list(range(chain[0], chain[0] + len(chain)))
        fat_start = esp_offset + fat.data_offset + (chain[0] - 2) * fat.cluster_size
        iso_ext = iso_e.extents
        if not contiguous or len(iso_ext) != 1 or iso_ext[0] != (fat_start, fat_e.size_bytes):
            problems.append(f"{path}: ISO extents {iso_ext}, FAT at byte {fat_start}"
                            f"{'' if contiguous else ' (fragmented chain)'}")
            continue
        if _digest(iso.iter_content(iso_e)) != _digest(fat.iter_content(fat_e)):
            problems.append(f"{path}: the two views read different bytes")
            continue
        shared += 1
    for path in sorted(set(iso_files) - set(fat_files)):
        _digest(iso.iter_content(_iso_entry(iso_files[path])))
    for path in sorted(set(fat_files) - set(iso_files)):
        _digest(fat.iter_content(_fat_entry(fat_files[path])))
    counts = (f"{shared} shared files, {len(iso_files) - len(set(iso_files) & set(fat_files))} ISO-only, "
              f"{len(fat_files) - len(set(iso_files) & set(fat_files))} ESP-only ({view} view)")
    if problems:
        return False, f"FAIL: {len(problems)} problem(s), {counts}; first: {problems[0]}"
    return True, f"OK: {counts}; every shared file's ISO extent is its FAT extent"


def _digest(chunks: Iterator[bytes]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


# -- CLI -----------------------------------------------------------------------------------

def _probe_image(path: str) -> Probe:
    """:func:`probe` of an image named on the command line; a missing or unreadable file,
    or a directory, is an InvalidInputError naming it."""
    if os.path.isdir(path):
        raise InvalidInputError(f"{path}: is a directory, expected an image file")
    try:
        return probe(path)
    except OSError as e:
        if e.filename is None or os.fsdecode(e.filename) != path:
            raise
        raise InvalidInputError(f"{path}: cannot read the image: {e.strerror}") from None


def cmd_inspect(args: argparse.Namespace) -> int:
    with _probe_image(args.image) as pr:
        print("\n".join(inspect_lines(pr)))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with _probe_image(args.image) as pr:
        view = _pick_view(pr, args.view)
        if args.recursive:
            for item in walk_view(pr, view):
                print(ls_line(item, item.path))
            return 0
        item, kids = list_view(pr, view, args.path or "")
        for k in (kids if stat.S_ISDIR(item.mode) else [item]):
            print(ls_line(k))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    with _probe_image(args.image) as pr:
        view = _pick_view(pr, args.view)
        written, skipped = extract(pr, view, args.dest)
    print(f"{args.dest}: {written} entries extracted from the {view} view"
          + (f", {skipped} skipped" if skipped else ""))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with _probe_image(args.image) as pr:
        ok, line = verify(pr)
    print(line)
    return 0 if ok else 1


def add_cli_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``inspect``, ``ls``, ``extract`` and ``verify`` on an argparse subparsers object."""
    p = subparsers.add_parser("inspect", help="summarise an image: ISO 9660, El Torito, MBR, GPTs, FAT")
    p.add_argument("image")
    p.set_defaults(func=cmd_inspect)
    p = subparsers.add_parser("ls", help="list a directory of a view like ls -l")
    p.add_argument("image")
    p.add_argument("path", nargs="?", default="")
    p.add_argument("--view", choices=ALL_VIEWS, help="rr (default when present), joliet, iso or esp")
    p.add_argument("-R", "--recursive", action="store_true", help="list the whole view")
    p.set_defaults(func=cmd_ls)
    p = subparsers.add_parser("extract", help="write a view's files into a directory (never overwrites)")
    p.add_argument("image")
    p.add_argument("dest")
    p.add_argument("--view", choices=ALL_VIEWS, help="rr (default when present), joliet, iso or esp")
    p.set_defaults(func=cmd_extract)
    p = subparsers.add_parser("verify", help="check that a hybrid's ISO and ESP share each file's bytes")
    p.add_argument("image")
    p.set_defaults(func=cmd_verify)
