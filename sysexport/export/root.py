"""The source root: paths resolved inside it as ``chroot`` would, without leaving it.

Every path the exporter handles is an absolute path *inside* the source root ("/usr/bin/ls"
means ``ROOT/usr/bin/ls``).  :meth:`SourceRoot.resolve` walks a path one component at a
time with ``lstat``, as the kernel does under ``chroot(ROOT)``:

* an absolute symlink target starts again at the source root, never at the host's ``/``;
* a relative target continues from the directory holding the link, and ``..`` goes to the
  parent of the directory actually reached (physically, through symlinks already followed);
* ``..`` above the root is an error (:class:`SourcePathError`, ``rule="escape"``), where
  chroot would stay at the root: a path that needs it is broken in the source already;
* more than 40 symlinks on one walk is a loop (``rule="loop"``, Linux's ELOOP limit).

The result names every symlink met on the way (so that the exporter keeps them as
symlinks) and the *physical* path reached: no component of it is a symlink.  Results of
``lstat`` and ``readlink`` are cached: the source root is taken not to change during an
export.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from .errors import SourcePathError

MAX_SYMLINKS = 40
"""Linux's limit of symlinks followed in one path walk (MAXSYMLINKS, ELOOP)."""


def clean(path: str) -> str:
    """``path`` as an absolute path inside the root: '/' added in front, '.' and empty
    components dropped; '..' kept (only a walk can tell what it means)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def parent_of(path: str) -> str:
    """The parent of an absolute, clean path ('/' for a top-level name and for '/')."""
    head = path.rsplit("/", 1)[0]
    return head or "/"


def join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name if name else directory


def is_under(path: str, prefix: str) -> bool:
    """True when ``path`` is ``prefix`` or below it (whole components)."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


@dataclass(slots=True)
class Resolution:
    """What :meth:`SourceRoot.resolve` found.

    ``physical``: the path reached, without any symlink in it (None when something was
    missing); ``st``: its lstat (None when missing); ``links``: every symlink followed, in
    order, as (physical path of the link, its target); ``missing``: the first path that does
    not exist (its parent is physical), when one does not.  ``dangling`` is True when only
    the last step, a symlink's target, is missing.
    """

    path: str
    physical: str | None = None
    st: os.stat_result | None = None
    links: list[tuple[str, str]] = field(default_factory=list)
    missing: str | None = None
    dangling: bool = False

    def chain(self) -> str:
        """The symlinks followed, for messages ("/bin -> usr/bin, ...")."""
        return ", ".join(f"{link} -> {target}" for link, target in self.links)


class SourceRoot:
    """A directory of the host taken as the root of the system to export."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        top = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(top)
        except OSError as e:
            raise SourcePathError(f"{top}: the source root cannot be read: {e.strerror}",
                                  path=top, rule="missing") from None
        if not stat.S_ISDIR(st.st_mode):
            raise SourcePathError(f"{top}: the source root is not a directory", path=top, rule="not-a-directory")
        self.top = top.rstrip("/") if top != "/" else "/"
        self._lstat: dict[str, os.stat_result | None] = {}
        self._readlink: dict[str, str] = {}

    def host(self, path: str) -> str:
        """The host path of ``path`` (absolute, inside the root)."""
        if self.top == "/":
            return path
        return self.top + (path if path != "/" else "")

    def lstat(self, path: str) -> os.stat_result | None:
        """lstat of a path inside the root whose parent is physical; None when it is missing."""
        try:
            return self._lstat[path]
        except KeyError:
            pass
        try:
            st: os.stat_result | None = os.lstat(self.host(path))
        except FileNotFoundError:
            st = None
        except NotADirectoryError:
            st = None
        except OSError as e:
            raise SourcePathError(f"{path}: cannot read it in the source root {self.top}: {e.strerror}",
                                  path=path, rule="unreadable") from None
        self._lstat[path] = st
        return st

    def readlink(self, path: str) -> str:
        try:
            return self._readlink[path]
        except KeyError:
            pass
        try:
            target = os.readlink(self.host(path))
        except OSError as e:
            raise SourcePathError(f"{path}: cannot read the symlink: {e.strerror}", path=path,
                                  rule="unreadable") from None
        self._readlink[path] = target
        return target

    def listdir(self, path: str) -> list[str]:
        """The names in a physical directory, sorted (bytewise on the UTF-8 names)."""
        try:
            names = os.listdir(self.host(path))
        except OSError as e:
            raise SourcePathError(f"{path}: cannot list the directory: {e.strerror}", path=path,
                                  rule="unreadable") from None
        return sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape"))

    def resolve(self, path: str, *, follow: bool = True, start: str = "/") -> Resolution:
        """Walk ``path`` inside the root (see the module docstring).

        A relative ``path`` starts at ``start`` (a physical directory).  ``follow=False``
        leaves a final symlink as it is.  Raises SourcePathError for '..' above the root, a
        loop, or a component that is not a directory; a missing component is not an error
        here (see :attr:`Resolution.missing`)."""
        res = Resolution(path)
        if path.startswith("/"):
            cur: list[str] = []
        else:
            cur = [p for p in start.split("/") if p]
        pending = [p for p in reversed(path.split("/")) if p not in ("", ".")]
        followed = 0
        in_final_target = False     # walking the target of the path's last component, a symlink
        while pending:
            comp = pending.pop()
            if comp == "..":
                if not cur:
                    via = f" (through {res.chain()})" if res.links else ""
                    raise SourcePathError(f"{path}: '..' climbs above the source root{via}; a path must stay "
                                          "inside the root", path=path, rule="escape")
                cur.pop()
                continue
            candidate = "/" + "/".join(cur + [comp])
            st = self.lstat(candidate)
            if st is None:
                res.missing = candidate
                res.dangling = in_final_target
                return res
            last = not pending
            if stat.S_ISLNK(st.st_mode) and (follow or not last):
                followed += 1
                if followed > MAX_SYMLINKS:
                    raise SourcePathError(f"{path}: more than {MAX_SYMLINKS} symlinks on the way, a symlink loop "
                                          f"({res.chain()[:400]}...)", path=path, rule="loop")
                target = self.readlink(candidate)
                res.links.append((candidate, target))
                in_final_target = in_final_target or last
                if target.startswith("/"):
                    cur = []
                pending.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                continue
            if not last and not stat.S_ISDIR(st.st_mode):
                raise SourcePathError(f"{path}: {candidate} is not a directory (mode {st.st_mode:#o}), but the "
                                      "path goes on below it", path=path, rule="not-a-directory")
            cur.append(comp)
        res.physical = "/" + "/".join(cur)
        res.st = self.lstat(res.physical) if cur else self._root_stat()
        return res

    def _root_stat(self) -> os.stat_result:
        st = self.lstat("/")
        if st is None:      # pragma: no cover - checked in __init__
            raise SourcePathError(f"{self.top}: the source root vanished", path="/", rule="missing")
        return st

    def read_head(self, path: str, n_bytes: int) -> bytes:
        """The first ``n_bytes`` of a physical regular file (not following a symlink)."""
        try:
            fd = os.open(self.host(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            raise SourcePathError(f"{path}: cannot open it: {e.strerror}", path=path, rule="unreadable") from None
        try:
            return os.pread(fd, n_bytes, 0)
        except OSError as e:
            raise SourcePathError(f"{path}: cannot read it: {e.strerror}", path=path, rule="unreadable") from None
        finally:
            os.close(fd)

    def read_text(self, path: str) -> str | None:
        """A small text file of the root (symlinks followed inside the root), or None when
        it is missing."""
        res = self.resolve(path)
        if res.physical is None or res.st is None or not stat.S_ISREG(res.st.st_mode):
            return None
        try:
            with open(self.host(res.physical), "rb") as f:
                return f.read(16 << 20).decode("utf-8", "surrogateescape")
        except OSError as e:
            raise SourcePathError(f"{path}: cannot read it: {e.strerror}", path=path, rule="unreadable") from None
