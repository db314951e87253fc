"""Opening any image: :func:`open` finds every structure and every view of it;
``open(path, writable=True)`` also lets :meth:`Image.replace_file` change a file in place.

``sysexport.open(path_or_file)`` returns an :class:`Image`: the structures found (MBR,
GPTs at 512 and 4096 bytes, El Torito catalog, ISO 9660 volume descriptors of every
session, every FAT volume: bare, in a GPT or MBR partition, or an El Torito image; CPIO
archives, plain or compressed) with their byte ranges, and the views they offer:
``rr``, ``joliet``, ``iso9660`` (the newest session, or ``session=N``), ``fat`` (the ESP,
else the first FAT volume), ``fat:N`` (the FAT volume in partition N), ``fat:eltorito``
(the FAT image an El Torito EFI entry names, when it is not a partition), ``cpio``.
:meth:`Image.view` gives a :class:`~sysexport.image.view.View` (walk, listdir, stat,
open, read, extract).

A probe that fails is recorded in :attr:`Image.problems` and does not hide what other
probes found; only when nothing at all is recognised is it an InvalidImageError.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from ..errors import InvalidImageError, InvalidInputError, SysExportError
from .view import ExtentReader, Stat, View, normalize

if TYPE_CHECKING:
    from .modify import Data, Replaced

__all__ = ["Image", "Structure", "open", "ExtentReader", "Stat", "View", "normalize", "VIEW_ORDER"]

VIEW_ORDER = ("rr", "joliet", "iso9660", "fat", "cpio")
"""The default view is the first of these an image has."""
ISO_VIEWS = ("rr", "joliet", "iso9660")
VIEW_ALIASES = {"esp": "fat", "iso": "iso9660", "rockridge": "rr"}
"""Other names accepted for views (``esp`` was the FAT view's name before there were others)."""


@dataclass(frozen=True)
class Structure:
    """One structure found in an image: ``kind`` (e.g. "mbr", "gpt", "iso9660", "eltorito",
    "fat", "cpio", "partition"), its byte range, a one-line ``summary`` and every field."""

    kind: str
    offset: int
    size: int
    summary: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "offset": self.offset, "size": self.size, "summary": self.summary,
                "fields": _jsonable(self.fields)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class Image:
    """An opened image: its structures and views (see the module docstring).  Close it (or
    use it as a context manager) to close a file it opened itself."""

    def __init__(self, f: BinaryIO, size_bytes: int, name: str, owned: bool, *, writable: bool = False,
                 session: int | None = None, codepage: str = "cp437") -> None:
        self.file = f
        self.size_bytes = size_bytes
        self.name = name
        self._owned = owned
        self.writable = writable
        """Whether :meth:`replace_file` may change the image (``open(..., writable=True)``)."""
        self._session = session
        self._codepage = codepage
        self.structures: list[Structure] = []
        self.problems: list[str] = []
        self._views: dict[str, Callable[[], View]] = {}
        self._made: dict[str, View] = {}
        self.sessions: list[Any] = []

    # --- views --------------------------------------------------------------------------------
    def views(self) -> list[str]:
        """The names of the views this image has, the default first."""
        names = list(self._views)
        return sorted(names, key=lambda n: (VIEW_ORDER.index(n.split(":")[0]) if n.split(":")[0] in VIEW_ORDER
                                            else len(VIEW_ORDER), n))

    def view(self, name: str | None = None) -> View:
        """The view ``name`` (default: the first of rr, joliet, iso9660, fat, cpio)."""
        names = self.views()
        if not names:
            raise InvalidImageError(f"{self.name}: no file system or archive found")
        if name is None:
            name = names[0]
        name = VIEW_ALIASES.get(name, name)
        if name not in self._views:
            raise InvalidInputError(f"{self.name}: no view {name!r} (this image has: {', '.join(names)})")
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = self._views[name]()
        return made

    def add_view(self, name: str, make: Callable[[], View]) -> None:
        if name not in self._views:
            self._views[name] = make

    # --- changing it in place -------------------------------------------------------------------
    def replace_file(self, path: str, data: Data, *, view: str | None = None) -> Replaced:
        """Rewrite the regular file at ``path`` (in ``view``, default the first of rr, joliet,
        iso9660, fat) with ``data`` (bytes, a host path, or a binary file object read from its
        position, streamed), in the space it already has, and its size in every record that
        names its bytes: the ISO 9660, Rock Ridge and Joliet directory records (hard links
        and every session too), the FAT directory entry and cluster chain; in a hybrid all
        three trees at once.  Returns a :class:`~sysexport.image.modify.Replaced`.

        The room is the file's 2048-byte blocks on ISO 9660, its clusters on FAT (the smaller
        of the two in a hybrid); no free space is taken.  More data is a LayoutError naming
        both sizes, and nothing is written.  Refused: a read-only open (CallOrderError), a
        missing path, a directory or symlink (InvalidInputError), an image or file this cannot
        change (InvalidInputError: cpio, an older session, UDF, zisofs, a boot image), and an
        image whose records disagree or whose file's room overlaps anything else
        (InvalidImageError); every check is made before the first byte is written.  The
        order of the writes and what a crash leaves: :mod:`sysexport.image.modify`.  Views
        got before the call show the image as it was: ask :meth:`view` again."""
        from .modify import replace_file
        return replace_file(self, path, data, view)

    def _reload(self) -> None:
        """Read the structures and views again (after a change)."""
        from .probe import probe_all
        self.structures, self.problems, self._views, self._made, self.sessions = [], [], {}, {}, []
        probe_all(self, session=self._session, codepage=self._codepage)

    # --- life ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self._owned:
            self.file.close()

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_json(self) -> dict[str, Any]:
        return {"image": self.name, "size": self.size_bytes, "views": self.views(),
                "structures": [s.to_json() for s in self.structures], "problems": list(self.problems)}


def open(source: str | os.PathLike[str] | IO[bytes] | bytes, *, session: int | None = None,
         codepage: str = "cp437", writable: bool = False) -> Image:
    """Open an image (a path, a seekable binary file such as BytesIO, or bytes) and find
    every structure and view in it.  ``session`` chooses an ISO session (0 is the first;
    default: the newest); ``codepage`` is the OEM code page of FAT 8.3 names.
    ``writable``: open a path for reading and writing (a file object must be writable;
    bytes cannot be), so that :meth:`Image.replace_file` can change files in place; a block
    device that is mounted or held is refused."""
    f, name, owned = _as_writable(source) if writable else _as_file(source)
    try:
        f.seek(0, io.SEEK_END)
        size = f.tell()
        img = Image(f, size, name, owned, writable=writable, session=session, codepage=codepage)
        from .probe import probe_all
        probe_all(img, session=session, codepage=codepage)
    except BaseException:
        if owned:
            f.close()
        raise
    if not img.views() and not img.structures:
        img.close()
        detail = f" ({'; '.join(img.problems[:3])})" if img.problems else ""
        raise InvalidImageError(f"{name}: not an image sysexport knows (no ISO 9660, FAT, GPT, MBR or cpio "
                                f"found){detail}")
    return img


def _as_writable(source: str | os.PathLike[str] | IO[bytes] | bytes) -> tuple[BinaryIO, str, bool]:
    """The image opened for reading and writing, in place (never truncated or replaced)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise InvalidInputError("open(writable=True): bytes cannot be changed; pass a path or a writable file")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            f = io.open(path, "r+b")
        except OSError as e:
            raise SysExportError(f"{path}: cannot open for writing: {e.strerror}") from e
        import stat as _stat
        st = os.fstat(f.fileno())
        if _stat.S_ISBLK(st.st_mode):
            from ..output import _block_in_use
            busy = _block_in_use(st.st_rdev)
            if busy:
                f.close()
                raise SysExportError(f"{path}: {busy}; unmount it (or release it) before changing it")
        elif not _stat.S_ISREG(st.st_mode):
            f.close()
            raise InvalidInputError(f"{path}: not a regular file or block device")
        return cast(BinaryIO, f), path, True
    handle, name, owned = _as_file(source)
    writable = getattr(source, "writable", None)
    if not callable(writable) or not writable():
        raise InvalidInputError(f"open(writable=True): {name} is not open for writing")
    return handle, name, owned


def _as_file(source: str | os.PathLike[str] | IO[bytes] | bytes) -> tuple[BinaryIO, str, bool]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), "<bytes>", True
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            return io.open(path, "rb"), path, True
        except OSError as e:
            raise SysExportError(f"{path}: cannot open: {e.strerror}") from e
    if hasattr(source, "read") and hasattr(source, "seek"):
        try:
            source.seek(0, io.SEEK_CUR)
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"open(): the file must be seekable ({e})") from e
        return cast(BinaryIO, source), str(getattr(source, "name", "<file>")), False
    raise InvalidInputError(f"open(): expected a path, a binary file or bytes, found {type(source).__name__}")
