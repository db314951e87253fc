"""The file-info record, :class:`FileInfo`, in the shape 100,000 of them can afford.

Every writer's ``add()`` takes one (sysexport/fileinfo.py makes them from mappings and
shorthands, and re-exports everything here).  A large build holds one per file from
``add()`` to the end of ``write()``, so its size is the build's memory: the fields every
entry has (name, mode, size, source, target, times, owners, and ``device_align``, which
the hybrid sets on every shared file) are slots; the fields few entries carry (device
numbers, hard-link identity, per-format names and flags, ``hidden_from``...) read their
default from the class and are stored, in a per-record ``__dict__``, only once set.
A record is then 136 bytes where a slotted dataclass of all 26 fields took 240 (issue 16).

The record's ``basename`` is computed once, interned, when it is made: the trees of every
writer use that one string as their key (one for a hybrid's two trees, and one for the same
name in many directories), and the writers ask for it of every entry.
``name`` is therefore fixed for the life of a record: a rename makes a new record
(:meth:`sysexport.tree.Tree.rename`, ``dataclasses.replace``), which is what every caller
does.
"""
from __future__ import annotations

import stat
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import DataSource

DEFAULT_FILE_PERM = 0o644
DEFAULT_DIR_PERM = 0o755
DEFAULT_SYMLINK_PERM = 0o777

_SLOT_FIELDS = ("name", "mode", "size", "source", "target", "mtime", "atime", "ctime", "uid", "gid",
                "device_align")
"""The fields every record stores (slots); the others are class attributes until set."""
_LATER_FIELDS = ("rdev_major", "rdev_minor", "dev", "ino", "nlink", "FAT_shortname", "FAT_flags",
                 "ISO9660_shortname", "ISO9660_flags", "device_offset", "device_align", "hybrid_target",
                 "hidden_from", "joliet_name", "implicit", "_extra")
"""The fields after ``gid``, in the order FileInfo's positional arguments take them."""
_new = object.__new__
_intern = sys.intern


class _RecordSlots:
    """The storage of a :class:`FileInfo`: its common fields, its interned basename, and a
    ``__dict__`` made only when a rare field is set."""

    __slots__ = _SLOT_FIELDS + ("basename", "__dict__")
    basename: str


@dataclass(init=False, eq=False)
class FileInfo(_RecordSlots):
    """One entry of a file system: the normalised form of a file-info mapping.

    ``mode`` holds the type bits and the permissions.  ``source`` is where a regular
    file's bytes come from (None for an empty file); a symlink's target is ``target``.
    Times are seconds since the epoch (None: the writer's ``default_time``).
    ``basename`` is the last component of ``name`` ("" for the root), interned.
    """

    __slots__ = ()                      # the storage is _RecordSlots' (no __weakref__ either)
    name: str
    mode: int
    size: int = 0
    source: DataSource | None = None
    target: bytes | None = None
    mtime: float | None = None
    atime: float | None = None
    ctime: float | None = None
    uid: int = 0
    gid: int = 0
    rdev_major: int = 0
    rdev_minor: int = 0
    dev: int | None = None
    ino: int | None = None
    nlink: int | None = None
    FAT_shortname: str | None = None
    FAT_flags: int = 0
    ISO9660_shortname: str | None = None
    ISO9660_flags: int = 0
    device_offset: int | None = None
    device_align: int | None = None
    hybrid_target: str = "both"
    hidden_from: frozenset[str] = frozenset()
    joliet_name: str | None = None
    implicit: bool = False
    _extra: dict[str, object] | None = field(default=None, repr=False)

    if TYPE_CHECKING:
        def __init__(self, name: str, mode: int, size: int = 0, source: DataSource | None = None,
                     target: bytes | None = None, mtime: float | None = None, atime: float | None = None,
                     ctime: float | None = None, uid: int = 0, gid: int = 0, rdev_major: int = 0,
                     rdev_minor: int = 0, dev: int | None = None, ino: int | None = None,
                     nlink: int | None = None, FAT_shortname: str | None = None, FAT_flags: int = 0,
                     ISO9660_shortname: str | None = None, ISO9660_flags: int = 0,
                     device_offset: int | None = None, device_align: int | None = None,
                     hybrid_target: str = "both", hidden_from: frozenset[str] = frozenset(),
                     joliet_name: str | None = None, implicit: bool = False,
                     _extra: dict[str, object] | None = None) -> None: ...
    else:
        def __init__(self, name, mode, size=0, source=None, target=None, mtime=None, atime=None, ctime=None,
                     uid=0, gid=0, *later, **rare):
            # The signature above, made cheap: the common fields are stored, the rare ones
            # only when given a value other than their default (no __dict__ otherwise).
            self.name = name
            self.basename = _intern(name.rpartition("/")[2])
            self.mode = mode
            self.size = size
            self.source = source
            self.target = target
            self.mtime = mtime
            self.atime = atime
            self.ctime = ctime
            self.uid = uid
            self.gid = gid
            self.device_align = None
            if later or rare:
                self._set_later(later, rare)

    def _set_later(self, later: tuple[object, ...], rare: dict[str, object]) -> None:
        """The fields after ``gid`` given to ``__init__`` (positionally or by keyword)."""
        if len(later) > len(_LATER_FIELDS):
            raise TypeError(f"FileInfo() takes at most {10 + len(_LATER_FIELDS)} positional arguments")
        for key, value in zip(_LATER_FIELDS, later):
            if key in rare:
                raise TypeError(f"FileInfo() got multiple values for argument {key!r}")
            rare[key] = value
        for key, value in rare.items():
            if key not in _LATER_DEFAULTS:
                raise TypeError(f"FileInfo() got an unexpected keyword argument {key!r}")
            if key == "device_align" or not is_default(key, value):
                setattr(self, key, value)

    @property
    def extra(self) -> dict[str, object]:
        """Writer-specific keys (``extra_keys`` of :func:`to_fileinfo`).  The dict is stored
        only once a key is set, so that the common record without any costs no memory."""
        d = self._extra
        if d is None:
            return _PendingExtra(self)
        return d

    def extra_value(self, key: str) -> object:
        """``extra.get(key)`` without making the empty mapping (the hot paths ask of every
        file whether it carries a key that almost none carries)."""
        d = self._extra
        return None if d is None else d.get(key)

    def visible_in(self, namespace: str) -> bool:
        """False when ``hidden_from`` names ``namespace`` (one of :data:`NAMESPACES`)."""
        return namespace not in self.hidden_from

    # The type tests compare the type bits with constants (stat.S_IS*, inlined): writers ask
    # them of every entry several times.
    @property
    def file_type(self) -> int:
        return self.mode & 0o170000

    @property
    def is_dir(self) -> bool:
        return self.mode & 0o170000 == 0o040000          # stat.S_IFDIR

    @property
    def is_file(self) -> bool:
        return self.mode & 0o170000 == 0o100000          # stat.S_IFREG

    @property
    def is_symlink(self) -> bool:
        return self.mode & 0o170000 == 0o120000          # stat.S_IFLNK

    @property
    def is_device(self) -> bool:
        kind = self.mode & 0o170000
        return kind == 0o020000 or kind == 0o060000     # stat.S_IFCHR, stat.S_IFBLK

    @property
    def permissions(self) -> int:
        return stat.S_IMODE(self.mode)

    @property
    def parent_name(self) -> str:
        return self.name.rpartition("/")[0]

    @property
    def link_key(self) -> tuple[int, int] | None:
        """Identity shared by hard links of one file ((dev, ino)), or None."""
        if self.dev is None or self.ino is None or self.is_dir:
            return None
        return (self.dev, self.ino)


_LATER_DEFAULTS: dict[str, object] = {key: getattr(FileInfo, key) for key in _LATER_FIELDS if key != "device_align"}
_LATER_DEFAULTS["device_align"] = None
for _key in _SLOT_FIELDS:              # the slots' descriptors, not the dataclass defaults
    if _key in FileInfo.__dict__:
        delattr(FileInfo, _key)
del _key


def host_record(name: str, basename: str, mode: int, size: int, source: DataSource | None, mtime: float,
                ctime: float, uid: int, gid: int) -> FileInfo:
    """``FileInfo(name, mode, size, source, None, mtime, None, ctime, uid, gid)`` for a host
    tree's walk, which knows the ``basename`` (the directory entry's name, interned:
    ``name``'s last component) and has checked every value: the record without the constructor's call
    through the type, about 40% of its cost (100,000 records a large tree)."""
    info = _new(FileInfo)
    info.name = name
    info.basename = basename
    info.mode = mode
    info.size = size
    info.source = source
    info.target = None
    info.mtime = mtime
    info.atime = None
    info.ctime = ctime
    info.uid = uid
    info.gid = gid
    info.device_align = None
    return info


def is_default(key: str, value: object) -> bool:
    """Whether ``value`` is the default of the rare field ``key`` (same type, equal), so that
    storing it would only make the record's ``__dict__``."""
    default = _LATER_DEFAULTS[key]
    return value is default or (type(value) is type(default) and value == default)


def set_field(info: FileInfo, key: str, value: object) -> None:
    """``setattr(info, key, value)``, except that a rare field (see the module docstring)
    given its default is left unset, which reads the same and costs no memory."""
    if key in _LATER_DEFAULTS and key != "device_align" and is_default(key, value) \
            and is_default(key, getattr(info, key)):
        return
    setattr(info, key, value)


class _PendingExtra(dict[str, object]):
    """The empty ``extra`` of a FileInfo that has none yet: it attaches itself to the
    record when something is stored in it."""

    __slots__ = ("_owner",)

    def __init__(self, owner: FileInfo) -> None:
        super().__init__()
        self._owner: FileInfo | None = owner

    def _attach(self) -> None:
        owner = self._owner
        if owner is not None:
            if owner._extra is None:
                owner._extra = self
            self._owner = None

    def __setitem__(self, key: str, value: object) -> None:
        self._attach()
        super().__setitem__(key, value)

    def setdefault(self, key: str, default: object = None) -> object:
        self._attach()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kw: object) -> None:  # dict.update's overloads, passed on
        self._attach()
        super().update(*args, **kw)


def implied_directory(name: str) -> FileInfo:
    """A directory created because a path needs it; it behaves like an explicit one."""
    return FileInfo(name, stat.S_IFDIR | DEFAULT_DIR_PERM, implicit=True)


__all__ = ["DEFAULT_DIR_PERM", "DEFAULT_FILE_PERM", "DEFAULT_SYMLINK_PERM", "FileInfo", "host_record",
           "implied_directory", "is_default", "set_field"]
