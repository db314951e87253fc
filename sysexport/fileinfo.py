"""The file-info record that every writer's ``add()`` takes.

A port of Sys::Export's file-info hash.  A caller gives either a mapping with the same key
names (``name``, ``mode``, ``data``, ``data_path``, ``size``, ``mtime``...) or a shorthand
sequence such as ``("file644", "etc/motd", b"hi\\n")``; both become a :class:`FileInfo`.
Unknown keys are an :class:`InvalidInputError`: a typo must not pass silently.  The keys
are listed in docs/guide.md ("The file-info record"); its place among the modules in
docs/architecture.md.
"""
from __future__ import annotations

import operator
import os
import re
import stat
import sys
import time
from typing import Callable, Iterator, Mapping, Sequence, Union

from .data import TreeFileData, make_source
from .errors import InvalidInputError
from .filerecord import (DEFAULT_DIR_PERM, DEFAULT_FILE_PERM, DEFAULT_SYMLINK_PERM, FileInfo, host_record,
                         implied_directory, set_field)

NAME_MAX_BYTES = 255
"""Linux NAME_MAX: the bytes of one name component (UTF-8)."""
SYMLINK_MAX_BYTES = 4095
"""Linux PATH_MAX (4096) less the NUL: the longest symlink target symlink(2) accepts."""
TIME_MIN = -62135596800
"""0001-01-01T00:00:00Z: the earliest time a record may carry (each format clamps or refuses
what it cannot hold; see the writers)."""
TIME_MAX = 253402300799
"""9999-12-31T23:59:59Z: the latest time a record may carry."""
U32_MAX = 0xFFFFFFFF
U64_MAX = (1 << 64) - 1

# Keys of Sys::Export's file-info hash (stat fields, content, and writer-specific keys).
COMMON_KEYS = frozenset({
    "name", "mode", "data", "data_path", "size", "mtime", "atime", "ctime", "uid", "gid",
    "rdev", "rdev_major", "rdev_minor", "dev", "ino", "nlink", "blksize", "blocks",
    "FAT_shortname", "FAT_flags", "ISO9660_shortname", "ISO9660_flags",
    "device_offset", "device_align", "hybrid_target", "hidden_from", "joliet_name",
})

NAMESPACES = ("iso9660", "joliet", "fat")
"""The namespaces an entry can be hidden from (``hidden_from``): "iso9660", the primary
tree with its Rock Ridge records; "joliet", the Joliet tree; "fat", a FAT volume (the ESP
of a hybrid)."""
JOLIET_NAME_MAX_CHARS = 103
"""The longest ``joliet_name``: 103 UCS-2 characters, what xorriso and genisoimage write with
``-joliet-long`` (the Joliet specification of 1995 says 64; Windows, Linux, libarchive,
7-Zip and pycdlib read the longer names, and a remaster must keep them)."""
JOLIET_NAME_FORBIDDEN = frozenset("*/:;?\\")
"""Characters a Joliet identifier may not hold (besides controls 0x00-0x1F)."""

_TYPE_BITS = {
    "file": stat.S_IFREG, "dir": stat.S_IFDIR, "sym": stat.S_IFLNK, "chr": stat.S_IFCHR,
    "blk": stat.S_IFBLK, "fifo": stat.S_IFIFO, "sock": stat.S_IFSOCK,
}
_DEFAULT_PERM = {"file": DEFAULT_FILE_PERM, "dir": DEFAULT_DIR_PERM, "sym": DEFAULT_SYMLINK_PERM,
                 "chr": DEFAULT_FILE_PERM, "blk": DEFAULT_FILE_PERM, "fifo": DEFAULT_FILE_PERM,
                 "sock": DEFAULT_FILE_PERM}
_SHORTHAND_RE = re.compile(r"^(file|dir|sym|chr|blk|fifo|sock)([0-7]{3,4})?$")

HostPath = Union[str, "os.PathLike[str]"]
"""A directory of the host, as ``add_tree()`` takes it."""
FileInfoSpec = Union["FileInfo", Mapping[str, object], Sequence[object]]
"""What ``add()`` takes: a FileInfo, a file-info mapping, or a shorthand tuple (or list)."""


def source_date_epoch(fallback: int | None = None) -> int:
    """The build time: SOURCE_DATE_EPOCH when set (reproducible-builds.org), else now."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is not None and value.strip():
        try:
            seconds = int(value)
        except ValueError:
            raise InvalidInputError(f"SOURCE_DATE_EPOCH: expected an integer, found {value!r}") from None
        if not 0 <= seconds <= TIME_MAX:
            raise InvalidInputError(f"SOURCE_DATE_EPOCH: expected seconds since 1970-01-01 UTC, "
                                    f"0..{TIME_MAX} (9999-12-31), found {value!r}")
        return seconds
    return int(time.time()) if fallback is None else fallback


def sde_limit() -> int | None:
    """SOURCE_DATE_EPOCH as the latest time an entry may carry, or None when it is not set.

    With it set, every time later than it is clamped to it, as ``tar --clamp-mtime`` and
    xorriso do (reproducible-builds.org): touching the tree does not change the image."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or not value.strip():
        return None
    return source_date_epoch()


def clamp_times(info: FileInfo, limit: int) -> None:
    """Clamp ``info``'s mtime, atime and ctime to ``limit`` (see :func:`sde_limit`)."""
    if info.mtime is not None and info.mtime > limit:
        info.mtime = limit
    if info.atime is not None and info.atime > limit:
        info.atime = limit
    if info.ctime is not None and info.ctime > limit:
        info.ctime = limit


def normalize_name(name: object) -> str:
    """Return the '/'-separated path relative to the root ('' is the root itself)."""
    if isinstance(name, (bytes, bytearray)):
        raw = bytes(name)
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInputError(f"{raw!r}: name is not valid UTF-8 ({e.reason})") from None
    elif isinstance(name, os.PathLike):
        name = os.fsdecode(name)
    if not isinstance(name, str):
        raise InvalidInputError(f"name: expected str or bytes, found {type(name).__name__}")
    if "\0" in name:
        raise InvalidInputError(f"{name!r}: name contains a NUL character")
    if not name.isascii():
        check_utf8_name(name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidInputError(f"{name}: '..' is not allowed in a name")
    if len(name) > NAME_MAX_BYTES // 4:             # a component of 64 characters may be 256 bytes
        for p in parts:
            if len(p) > NAME_MAX_BYTES // 4 and len(p.encode("utf-8")) > NAME_MAX_BYTES:
                raise InvalidInputError(f"{name}: component {p[:40]}... is {len(p.encode('utf-8'))} bytes; "
                                        f"a name component holds at most {NAME_MAX_BYTES} bytes (Linux NAME_MAX)")
    return "/".join(parts)


def check_utf8_name(name: str, host_path: str | None = None) -> None:
    """A name must be UTF-8 text: a lone surrogate (what Python makes of a host file name
    that is not UTF-8, or of a broken str) cannot be written by any format here."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raw = os.fsencode(host_path if host_path is not None else name)
        what = f"host name {raw!r}" if host_path is not None else f"character {name[e.start]!r} at {e.start}"
        raise InvalidInputError(f"{name.encode('utf-8', 'backslashreplace').decode('ascii')}: name is not valid "
                                f"UTF-8 ({what}); rename it or give the name as UTF-8") from None


def _int_field(where: str, key: str, value: object, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{where}: {key} must be an integer, found {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        rule = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise InvalidInputError(f"{where}: {key} must be {rule}, found {value}")
    return value


def _time_field(where: str, key: str, value: object) -> float | None:
    if value is None:
        return None
    return check_time(where, key, value)


def check_time(where: str, key: str, value: object) -> float:
    """``value`` as seconds since the epoch: an int or a finite float between the years 1
    and 9999 (what a calendar can show); each format then clamps or refuses what it cannot
    hold (ISO 9660 clamps to 1900..2155 and FAT to 1980..2107 as xorriso, mtools and Linux
    do; newc refuses what its unsigned 32-bit field cannot hold)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{where}: {key} must be seconds since the epoch, found {value!r}")
    if not TIME_MIN <= value <= TIME_MAX:       # False for NaN too
        raise InvalidInputError(f"{where}: {key} must be a finite time between the years 1 and 9999 "
                                f"({TIME_MIN}..{TIME_MAX} seconds since the epoch), found {value!r}")
    return value


_SHORTHAND_ARGS = {"file": (1, 2), "dir": (1, 1), "sym": (2, 2), "chr": (2, 2), "blk": (2, 2),
                   "fifo": (1, 1), "sock": (1, 1)}
"""Arguments each shorthand kind takes between the kind and the attribute mapping (min, max)."""


def from_shorthand(spec: Sequence[object]) -> dict[str, object]:
    """Expand ``("file644", name, data, {attrs})`` and friends into a mapping."""
    if not spec or not isinstance(spec[0], str):
        raise InvalidInputError(f"{spec!r}: shorthand must start with a kind such as 'file' or 'dir755'")
    m = _SHORTHAND_RE.match(spec[0])
    if not m:
        raise InvalidInputError(f"{spec[0]!r}: unknown shorthand kind (expected file, dir, sym, chr, blk, "
                                "fifo or sock, optionally followed by octal permissions)")
    kind, perm = m.group(1), m.group(2)
    args = list(spec[1:])
    attrs: dict[str, object] = {}
    last = args[-1] if args else None
    if isinstance(last, Mapping):
        attrs = dict(last)
        args.pop()
    n_args = _SHORTHAND_ARGS[kind]
    if not n_args[0] <= len(args) <= n_args[1]:
        raise InvalidInputError(f"{spec!r}: '{kind}' takes {n_args[0]}..{n_args[1]} arguments before the attributes")
    mode = _TYPE_BITS[kind] | (int(perm, 8) if perm else _DEFAULT_PERM[kind])
    out: dict[str, object] = {"name": args[0], "mode": mode}
    if kind in ("file", "sym") and len(args) > 1:
        out["data"] = args[1]
    elif kind in ("chr", "blk"):
        dev = args[1]
        if not (isinstance(dev, Sequence) and len(dev) == 2):
            raise InvalidInputError(f"{args[0]}: device must be given as (major, minor), found {dev!r}")
        out["rdev_major"], out["rdev_minor"] = dev
    for k, v in attrs.items():
        if k == "mode" and isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            if not stat.S_IFMT(v):
                v |= stat.S_IFMT(mode)
            elif stat.S_IFMT(v) != stat.S_IFMT(mode):
                raise InvalidInputError(
                    f"{args[0]}: mode {v:#o} in the attributes has type bits {stat.S_IFMT(v):#o}, but the shorthand "
                    f"kind {kind!r} is {stat.S_IFMT(mode):#o} (permissions go up to 0o7777)")
        out[k] = v
    return out


_FILEINFO_KEYS = ("name", "mode", "size", "mtime", "atime", "ctime", "uid", "gid", "rdev_major", "rdev_minor",
                  "dev", "ino", "nlink", "FAT_shortname", "FAT_flags", "ISO9660_shortname", "ISO9660_flags",
                  "device_offset", "device_align", "hybrid_target", "hidden_from", "joliet_name")
"""The FileInfo attributes that are file-info keys of the same name (data is the source or target)."""
_U32_KEYS = ("uid", "gid", "rdev_major", "rdev_minor", "FAT_flags", "ISO9660_flags")
_COUNT_KEYS = ("dev", "ino", "nlink")
_TIME_KEYS = ("mtime", "atime", "ctime")
_NAME_KEYS = ("FAT_shortname", "ISO9660_shortname")
HYBRID_TARGETS = ("both", "iso", "esp")
"""Values of ``hybrid_target``: in both file systems of a hybrid, or only one."""


def to_fileinfo(spec: FileInfoSpec, extra_keys: frozenset[str] = frozenset(), **overrides: object) -> FileInfo:
    """Turn a file-info mapping, a shorthand sequence or a FileInfo into a checked FileInfo.

    ``extra_keys`` are writer-specific keys accepted besides :data:`COMMON_KEYS` (kept in
    ``FileInfo.extra``); ``overrides`` replace keys of ``spec``.  Raises InvalidInputError
    naming the path and the key for anything the record cannot hold.
    """
    if isinstance(spec, FileInfo) and not overrides:
        return spec
    d = _spec_mapping(spec, overrides)
    _check_keys(d, extra_keys)
    info = _new_record(d)
    where = info.name or "/"
    _set_attributes(info, d, where, extra_keys)
    _set_content(info, d, where)
    limit = sde_limit()
    if limit is not None:
        clamp_times(info, limit)
    return info


def _spec_mapping(spec: FileInfoSpec, overrides: Mapping[str, object]) -> dict[str, object]:
    """The file-info mapping of ``spec`` (a mapping, a shorthand, or a FileInfo), overrides applied."""
    d: dict[str, object]
    if isinstance(spec, FileInfo):
        d = {k: getattr(spec, k) for k in _FILEINFO_KEYS}
        d["data"] = spec.source if spec.is_file else spec.target
    elif isinstance(spec, Mapping):
        d = dict(spec)
    elif isinstance(spec, (list, tuple)):
        d = from_shorthand(spec)
    else:
        raise InvalidInputError(f"add(): expected a file-info mapping or a shorthand tuple, found {type(spec).__name__}")
    d.update(overrides)
    return d


def _check_keys(d: Mapping[str, object], extra_keys: frozenset[str]) -> None:
    """Unknown keys are an error (a typo must not pass silently); ``name`` is required."""
    unknown = set(d) - COMMON_KEYS - extra_keys
    if unknown:
        where = str(d.get("name", "?"))
        raise InvalidInputError(f"{where}: unknown file-info key(s): {', '.join(sorted(unknown))}")
    if "name" not in d:
        raise InvalidInputError("add(): the file-info record has no 'name'")


def _new_record(d: Mapping[str, object]) -> FileInfo:
    """A FileInfo of the checked ``name`` and ``mode`` (valid file type; the root a directory)."""
    name = normalize_name(d["name"])
    where = name or "/"
    if "mode" not in d:
        raise InvalidInputError(f"{where}: the file-info record has no 'mode'")
    mode = _int_field(where, "mode", d["mode"], 0, 0o177777)
    ftype = stat.S_IFMT(mode)
    if ftype not in _TYPE_BITS.values():
        raise InvalidInputError(f"{where}: mode {mode:#o} has no valid file type bits "
                                "(expected S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK)")
    if name == "" and ftype != stat.S_IFDIR:
        raise InvalidInputError(f"/: the root must be a directory, found mode {mode:#o}")
    return FileInfo(name=name, mode=mode)


def _set_attributes(info: FileInfo, d: Mapping[str, object], where: str, extra_keys: frozenset[str]) -> None:
    """The stat fields, writer-specific keys and ``extra_keys`` of ``d``, each checked."""
    # set_field: a rare field given its default stays unset (no per-record __dict__).
    for key in _U32_KEYS:
        if d.get(key) is not None:
            set_field(info, key, _int_field(where, key, d[key], 0, U32_MAX))
    if d.get("rdev") is not None and "rdev_major" not in d:
        rdev = _int_field(where, "rdev", d["rdev"], 0, U64_MAX)     # a 64-bit dev_t (glibc)
        set_field(info, "rdev_major", os.major(rdev))
        set_field(info, "rdev_minor", os.minor(rdev))
    for key in _COUNT_KEYS:
        if d.get(key) is not None:
            set_field(info, key, _int_field(where, key, d[key], 0, U64_MAX))
    for key in _TIME_KEYS:
        setattr(info, key, _time_field(where, key, d.get(key)))
    for key in _NAME_KEYS:
        value = d.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise InvalidInputError(f"{where}: {key} must be a str, found {value!r}")
            set_field(info, key, value)
    if d.get("device_offset") is not None:
        info.device_offset = _int_field(where, "device_offset", d["device_offset"])
    if d.get("device_align") is not None:
        align = _int_field(where, "device_align", d["device_align"], 1)
        if align & (align - 1):
            raise InvalidInputError(f"{where}: device_align must be a power of two, found {align}")
        info.device_align = align
    target = d.get("hybrid_target", "both")
    if not isinstance(target, str) or target not in HYBRID_TARGETS:
        raise InvalidInputError(f"{where}: hybrid_target must be 'both', 'iso' or 'esp', found {target!r}")
    set_field(info, "hybrid_target", target)
    if d.get("hidden_from") is not None:
        set_field(info, "hidden_from", check_hidden_from(where, d["hidden_from"]))
    if d.get("joliet_name") is not None:
        info.joliet_name = check_joliet_name(where, d["joliet_name"])
    for k in extra_keys:
        if k in d:
            info.extra[k] = d[k]


def check_hidden_from(where: str, value: object) -> frozenset[str]:
    """``hidden_from``: a tuple, list or set of namespace names (:data:`NAMESPACES`)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list, set, frozenset)):
        raise InvalidInputError(f"{where}: hidden_from must be a tuple of namespace names "
                                f"({', '.join(NAMESPACES)}), found {value!r}")
    for ns in value:
        if ns not in NAMESPACES:
            raise InvalidInputError(f"{where}: hidden_from names an unknown namespace {ns!r} "
                                    f"(expected {', '.join(NAMESPACES)})")
    return frozenset(value)


def check_namespace(where: str, value: object, allowed: Sequence[str] = NAMESPACES) -> str:
    """One namespace name out of ``allowed`` (InvalidInputError naming ``where`` otherwise)."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInputError(f"{where}: unknown namespace {value!r} (expected "
                                f"{', '.join(repr(a) for a in allowed)} or None for all)")
    return value


def check_joliet_name(where: str, value: object) -> str:
    """``joliet_name``: the entry's own Joliet basename, recorded as given: 1..103 UCS-2
    characters of the Basic Multilingual Plane (see :data:`JOLIET_NAME_MAX_CHARS`), none of
    ``* / : ; ? \\`` nor a control character, not "." or ".." (Joliet specification, 1995)."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{where}: joliet_name must be a non-empty str, found {value!r}")
    if len(value) > JOLIET_NAME_MAX_CHARS:
        raise InvalidInputError(f"{where}: joliet_name {value!r} has {len(value)} characters; a Joliet "
                                f"identifier holds {JOLIET_NAME_MAX_CHARS} (xorriso's -joliet-long; the "
                                "Joliet specification says 64)")
    if value in (".", ".."):
        raise InvalidInputError(f"{where}: joliet_name {value!r} is not a name")
    for i, ch in enumerate(value):
        code = ord(ch)
        if code < 0x20 or ch in JOLIET_NAME_FORBIDDEN or code > 0xFFFF or 0xD800 <= code <= 0xDFFF:
            raise InvalidInputError(f"{where}: joliet_name {value!r}: character {ch!r} at {i} cannot be in a "
                                    "Joliet name (it forbids controls, * / : ; ? \\ and characters outside UCS-2)")
    return value


def _set_content(info: FileInfo, d: Mapping[str, object], where: str) -> None:
    """``data``/``data_path``/``size``: a regular file's source, a symlink's target; no
    other type carries data."""
    size = d.get("size")
    if size is not None:
        size = _int_field(where, "size", size)
    ftype = stat.S_IFMT(info.mode)
    data, data_path = _text_as_bytes(where, d.get("data")), d.get("data_path")
    if isinstance(data_path, (str, bytes)) and ("\0" in data_path if isinstance(data_path, str)
                                                else b"\0" in data_path):
        raise InvalidInputError(f"{where}: data_path {data_path!r} contains a NUL character")
    if ftype == stat.S_IFREG:
        info.source = make_source(data, data_path, size, where)
        info.size = info.source.size_bytes if info.source is not None else (size or 0)
        if info.source is None and info.size:
            raise InvalidInputError(f"{where}: size is {info.size} but neither data nor data_path is given")
    elif ftype == stat.S_IFLNK:
        src = make_source(data, data_path, None, where)
        if src is None:
            raise InvalidInputError(f"{where}: a symlink needs its target in 'data'")
        if src.size_bytes > SYMLINK_MAX_BYTES:
            raise InvalidInputError(f"{where}: symlink target of {src.size_bytes} bytes; Linux takes at most "
                                    f"{SYMLINK_MAX_BYTES} (PATH_MAX 4096 with its NUL)")
        info.target = src.read_all(SYMLINK_MAX_BYTES + 1)
        if not info.target:
            raise InvalidInputError(f"{where}: a symlink target may not be empty")
        if len(info.target) > SYMLINK_MAX_BYTES:
            raise InvalidInputError(f"{where}: symlink target of {len(info.target)} bytes or more; Linux takes at "
                                    f"most {SYMLINK_MAX_BYTES} (PATH_MAX 4096 with its NUL)")
        if b"\0" in info.target:
            raise InvalidInputError(f"{where}: a symlink target may not contain NUL")
        info.size = len(info.target)
    else:
        if d.get("data") not in (None, b"", "") or d.get("data_path") is not None:
            raise InvalidInputError(f"{where}: only regular files and symlinks carry data, "
                                    f"this is mode {info.mode:#o}")


def _text_as_bytes(where: str, data: object) -> object:
    """``data`` given as str is stored as its UTF-8 bytes; a lone surrogate cannot be."""
    if not isinstance(data, str):
        return data
    try:
        return data.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(f"{where}: data is a str that is not valid UTF-8 text (character "
                                f"{data[e.start]!r} at {e.start}); give bytes") from None


def walk_host_tree(host_dir: HostPath, dest: str = "", *,
                   prune: Callable[[str], bool] | None = None) -> Iterator[dict[str, object]]:
    """Yield file-info mappings for a host directory, sorted, without reading file data.

    Uses lstat: symlinks stay symlinks; hard links carry (dev, ino) so writers recognise
    them; device nodes carry their numbers.  The top directory itself becomes ``dest``.
    ``prune(name)`` (the entry's normalised name in the image) True leaves an entry out, a
    directory with everything below it, which is then never read.
    """
    for path, name, st in _walk_lstat(host_dir, dest, prune):
        yield _info_from_stat(path, name, st)


SHARED_SIZE_LIMIT = 1 << 16
"""walk_host_fileinfo() shares the int objects of file sizes below this (so at most this
many are kept)."""


def walk_host_fileinfo(host_dir: HostPath, dest: str = "", *,
                       prune: Callable[[str], bool] | None = None) -> Iterator[FileInfo]:
    """Like :func:`walk_host_tree`, but yield checked :class:`FileInfo` records directly.

    The same records as ``to_fileinfo(m) for m in walk_host_tree(...)``, made without the
    intermediate mapping and without a second stat of every file (lstat already gave the
    size), which matters for trees of 100,000 files: the walk of :func:`_walk_lstat` and
    the records of regular files and directories in one loop (no generator between them).
    """
    if isinstance(os.fspath(host_dir), bytes):
        for mapping in walk_host_tree(host_dir, dest, prune=prune):
            yield to_fileinfo(mapping)
        return
    top = os.fspath(host_dir)
    root = top.rstrip("/")
    dest = normalize_name(dest)
    skip = len(dest) + bool(dest)       # the entry's name less dest/ is its path below root
    limit = sde_limit()
    # Equal modes, owners and small sizes share one int object: each lstat makes new ones,
    # 28 bytes each that 100,000 files held to the end of the build.
    ints: dict[int, int] = {}
    intern = sys.intern
    st = tree_top_stat(top)
    yield to_fileinfo(_info_from_stat(top, dest, st))
    stack = [(top, dest)]
    while stack:
        path, rel = stack.pop()
        subdirs: list[tuple[str, str]] = []
        prefix = f"{rel}/" if rel else ""
        for entry in _sorted_listing(path):
            name = prefix + entry.name
            if prune is not None and prune(name):
                continue
            if not entry.name.isascii():
                check_utf8_name(name, entry.path)      # a host name that is not UTF-8
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as e:
                raise InvalidInputError(f"{entry.path}: cannot stat: {e.strerror}") from e
            mode = ints.setdefault(st.st_mode, st.st_mode)
            kind = mode & 0o170000
            if kind != 0o100000 and kind != 0o040000:          # S_IFREG, S_IFDIR
                yield to_fileinfo(_info_from_stat(entry.path, name, st))
                continue
            # No atime (see _info_from_stat); equal times share one object (memory).
            mtime: float = st.st_mtime
            ctime: float = st.st_ctime
            if limit is not None:               # SOURCE_DATE_EPOCH clamps (see sde_limit)
                if mtime > limit:
                    mtime = limit
                if ctime > limit:
                    ctime = limit
            if ctime == mtime:
                ctime = mtime
            uid, gid = st.st_uid, st.st_gid
            if uid > 256:                       # CPython shares the ints up to 256 itself
                uid = ints.setdefault(uid, uid)
            if gid > 256:
                gid = ints.setdefault(gid, gid)
            if kind == 0o040000:
                yield host_record(name, intern(entry.name), mode, 0, None, mtime, ctime, uid, gid)
                subdirs.append((entry.path, name))
                continue
            size = st.st_size
            if size < SHARED_SIZE_LIMIT:
                size = ints.setdefault(size, size)
            # The basename interned: one string for a name that many directories hold.
            info = host_record(name, intern(entry.name), mode, size,
                               TreeFileData(root, name[skip:] if skip else name, size), mtime, ctime, uid, gid)
            if st.st_nlink > 1:
                info.dev, info.ino, info.nlink = st.st_dev, st.st_ino, st.st_nlink
            yield info
        stack.extend(reversed(subdirs))


def tree_top_stat(top: str) -> os.stat_result:
    """The lstat of a host tree's top directory (what every add_tree walk starts from), or
    an InvalidInputError naming it when it cannot be read or is not a directory."""
    try:
        st = os.lstat(top)
    except OSError as e:
        raise InvalidInputError(f"{top}: cannot read source tree: {e.strerror}") from e
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"{top}: add_tree expects a directory, found mode {st.st_mode:#o}")
    return st


def _walk_lstat(host_dir: HostPath, dest: str,
                prune: Callable[[str], bool] | None = None) -> Iterator[tuple[str, str, os.stat_result]]:
    """(host path, normalised name, lstat result) of every entry, sorted, parents first.
    ``prune(name)``: True leaves the entry out, and a directory is not even read (mkisofs -m
    prunes so: an excluded /proc or an unreadable directory costs nothing)."""
    top = os.fspath(host_dir)
    dest = normalize_name(dest)
    st = tree_top_stat(top)
    yield top, dest, st
    stack = [(top, dest)]
    s_isdir = stat.S_ISDIR
    while stack:
        path, rel = stack.pop()
        subdirs: list[tuple[str, str]] = []
        prefix = f"{rel}/" if rel else ""
        for entry in _sorted_listing(path):
            child_rel = prefix + entry.name
            if prune is not None and prune(child_rel):
                continue
            if not entry.name.isascii():
                check_utf8_name(child_rel, entry.path)      # a host name that is not UTF-8
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError as e:
                raise InvalidInputError(f"{entry.path}: cannot stat: {e.strerror}") from e
            yield entry.path, child_rel, est
            if s_isdir(est.st_mode):
                subdirs.append((entry.path, child_rel))
        stack.extend(reversed(subdirs))


def _sorted_listing(path: str) -> list[os.DirEntry[str]]:
    """The entries of the host directory ``path``, sorted by name (code point order)."""
    try:
        with os.scandir(path) as it:
            return sorted(it, key=_entry_name)
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot list directory: {e.strerror}") from e


_entry_name = operator.attrgetter("name")


def _info_from_stat(path: str, name: str, st: os.stat_result) -> dict[str, object]:
    d: dict[str, object] = {"name": name, "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
                         "mtime": st.st_mtime, "ctime": st.st_ctime}
    # No atime: reading the tree (an earlier build, a checksum) changes it, so recording it
    # would make two builds of the same tree differ.  Writers use mtime in its place.
    if stat.S_ISREG(st.st_mode):
        d["data_path"] = path
        d["size"] = st.st_size
        if st.st_nlink > 1:
            d.update(dev=st.st_dev, ino=st.st_ino, nlink=st.st_nlink)
    elif stat.S_ISLNK(st.st_mode):
        d["data"] = os.fsencode(os.readlink(path))
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        d["rdev_major"], d["rdev_minor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
    return d
