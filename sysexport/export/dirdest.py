"""A directory as a destination: :class:`DirectoryWriter` writes file-info records as a real
tree (owners, modes, times, devices, FIFOs, sockets, symlinks and hard links kept).

It follows the :class:`~sysexport.writer.Writer` contract like the image writers:
``add()``/``add_tree()`` record, :meth:`DirectoryWriter.plan` returns a frozen
:class:`DirectoryPlan`, :meth:`DirectoryWriter.write` writes a plan below an open
*directory* descriptor, :meth:`DirectoryWriter.finish` is both, once.

How it is atomic (``finish()``):

* The destination missing or empty (the usual case): the tree is written into a new
  temporary directory beside it (``.NAME.XXXXXXXX.tmp``), every file synced when the
  writer is durable (below), and that directory is renamed onto the destination (rename(2)
  replaces an empty directory).  The destination shows the whole tree or, on any error
  or Ctrl-C, stays as it was: the temporary directory is removed.
* The destination not empty: refused (:class:`DestinationError`, ``rule="not-empty"``)
  unless ``allow_nonempty=True``.  Then the tree is merged in place, each file atomically:
  written under a temporary name in its directory and renamed over its name, so that no
  file is ever seen half-written.  Every conflict (a directory where a file goes, a file
  where a directory goes) is checked before anything is written; on a failure while
  writing, everything this build created is removed again (files it replaced stay
  replaced: their old contents are gone).

Owners are set when the process may (``owners=None``: when running as root; ``True``:
always, a refusal is an error; ``False``: never).  Modes are set after owners (chown clears
set-user-ID bits), directories' modes and times after their contents.  Devices need the
right to create them (CAP_MKNOD).  Times are the records' ``mtime`` (``atime`` when given),
``default_time`` for records without one.

Durability is the image outputs' (sysexport/output.py): ``fsync=None`` (the default) syncs
every file and directory only inside :func:`sysexport.output.durable` (the commands'
``--sync``), as cp and tar leave theirs to the kernel's write-back; ``True`` always,
``False`` never.  Atomicity does not depend on it.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from ..errors import CallOrderError, InvalidInputError, OutputError
from ..fileinfo import FileInfo, FileInfoSpec, HostPath, source_date_epoch, to_fileinfo, walk_host_fileinfo
from ..tree import Node, Tree
from ..writer import Lifecycle
from .errors import DestinationError


@dataclass(frozen=True, slots=True)
class DirectoryPlan:
    """What :meth:`DirectoryWriter.plan` computes (immutable).

    ``entries``: every record, parents before children, siblings sorted by name (the root
    first when it was added); ``link_to``: for each later name of a hard-linked file, the
    index of its first name in ``entries``; ``size_bytes``: the bytes of file data.
    """

    entries: tuple[FileInfo, ...]
    link_to: tuple[tuple[int, int], ...]
    size_bytes: int
    default_time: float

    def find(self, name: str) -> FileInfo | None:
        return next((e for e in self.entries if e.name == name), None)


class DirectoryWriter(Lifecycle):
    """Writer of a directory tree at ``path`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, allow_nonempty: bool = False, owners: bool | None = None,
                 default_time: float | None = None, fsync: bool | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.allow_nonempty = bool(allow_nonempty)
        self.owners = owners
        self.default_time = source_date_epoch() if default_time is None else default_time
        self.fsync = fsync
        self.tree: Tree[None] = Tree()
        self._last_plan: DirectoryPlan | None = None
        self.notes: list[str] = []
        """What was left out (owners not set without the right to), for the caller's log."""

    # ---------------------------------------------------------------- recording


    @property
    def durable(self) -> bool:
        """Whether files and directories are fsynced: ``fsync``, or when None, whether the
        build runs inside :func:`sysexport.output.durable` (read when the tree is written)."""
        if self.fsync is None:
            from ..output import SYNC
            return SYNC.get()
        return bool(self.fsync)
    def add(self, spec: FileInfoSpec) -> Node[None]:
        """Record one entry (a file-info mapping, shorthand tuple or FileInfo)."""
        self._require_open("add()")
        info = to_fileinfo(spec)
        return self.tree.add(info)

    def add_tree(self, host_dir: HostPath, dest: str = "") -> None:
        """Add a host directory and everything under it (lstat: symlinks, devices, hard links kept)."""
        self._require_open("add_tree()")
        for info in walk_host_fileinfo(host_dir, dest):
            self.add(info)

    # ---------------------------------------------------------------- planning

    def plan(self) -> DirectoryPlan:
        self._require_unfinished("plan()")
        nodes = list(self.tree.walk())
        if self.tree.root.info.implicit:
            nodes = nodes[1:]
        entries = tuple(n.info for n in nodes)
        first: dict[tuple[int, int], int] = {}
        links: list[tuple[int, int]] = []
        size = 0
        for i, info in enumerate(entries):
            key = info.link_key if info.is_file else None
            if key is not None:
                if key in first:
                    links.append((i, first[key]))
                    continue
                first[key] = i
            if info.is_file:
                size += info.size
        plan = DirectoryPlan(entries, tuple(links), size, self.default_time)
        self._mark_planned()
        self._last_plan = plan
        return plan

    # ---------------------------------------------------------------- writing

    def write(self, fd: int, plan: DirectoryPlan, /, *, atomic_files: bool = False,
              created: list[str] | None = None) -> None:
        """Write ``plan`` below the open directory ``fd``.

        ``atomic_files``: each file, symlink and device is made under a temporary name and
        renamed into place (merging into a tree that is in use); existing directories are
        kept.  ``created`` collects the names this call created (for clean-up)."""
        if plan is not self._last_plan:
            raise CallOrderError("DirectoryWriter.write(): the plan is stale or not this writer's; "
                                 "write the plan that the last plan() returned")
        _TreeWriter(fd, plan, self, atomic_files, created if created is not None else []).run()

    def finish(self) -> DirectoryPlan:
        """plan(), then write the tree to :attr:`path` (see the module docstring), once."""
        self._require_unfinished("finish()")
        plan = self.plan()
        existing = _existing_entries(self.path)
        if existing is None:
            self._write_fresh(plan, replace_empty=False)
        elif existing == 0:
            self._write_fresh(plan, replace_empty=True)
        elif not self.allow_nonempty:
            raise DestinationError(f"{self.path}: the destination directory is not empty ({existing} entries); "
                                   "refusing to write into it (allow_nonempty=True, or --allow-nonempty, merges)",
                                   path=self.path, rule="not-empty")
        else:
            self._write_merge(plan)
        self._mark_finished()
        return plan

    def _write_fresh(self, plan: DirectoryPlan, replace_empty: bool) -> None:
        parent, base = os.path.split(self.path)
        tmp = os.path.join(parent, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            os.mkdir(tmp, 0o700)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot create the temporary directory {tmp}: {e.strerror}",
                              path=self.path, errno=e.errno) from None
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                self.write(fd, plan)
                if plan.find("") is None:
                    os.fchmod(fd, 0o755)
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.rename(tmp, self.path)
            except OSError as e:
                what = "it is no longer empty" if e.errno in (errno.ENOTEMPTY, errno.EEXIST) else e.strerror
                raise OutputError(f"{self.path}: cannot rename the finished tree into place: {what}",
                                  path=self.path, errno=e.errno) from None
            if self.durable:
                _fsync_dir(parent or ".")
        except BaseException:
            _remove_tree(tmp)
            raise

    def _write_merge(self, plan: DirectoryPlan) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot open the destination: {e.strerror}", path=self.path,
                              errno=e.errno) from None
        created: list[str] = []
        try:
            _check_merge(fd, plan, self.path)
            self.write(fd, plan, atomic_files=True, created=created)
        except BaseException:
            for name in reversed(created):
                try:
                    if _is_dir_at(fd, name):
                        os.rmdir(name, dir_fd=fd)
                    else:
                        os.unlink(name, dir_fd=fd)
                except OSError:
                    pass
            raise
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------

def _existing_entries(path: str) -> int | None:
    """None when ``path`` does not exist, else the number of entries in the directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputError(f"{path}: cannot look at the destination: {e.strerror}", path=path, errno=e.errno) from None
    if not stat.S_ISDIR(st.st_mode):
        raise DestinationError(f"{path}: the destination exists and is not a directory (mode {st.st_mode:#o})",
                               path=path, rule="not-a-directory")
    return len(os.listdir(path))


def _is_dir_at(fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(name, dir_fd=fd).st_mode)
    except OSError:
        return False


def _check_merge(fd: int, plan: DirectoryPlan, top: str) -> None:
    """Refuse, before anything is written, a merge that would replace a directory with a
    file or need a directory where a non-directory is."""
    for info in plan.entries:
        if not info.name:
            continue
        try:
            st = os.lstat(info.name, dir_fd=fd)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            raise DestinationError(f"{top}/{info.name}: a parent of it in the destination is not a directory",
                                   path=f"{top}/{info.name}", rule="not-a-directory") from None
        if stat.S_ISDIR(st.st_mode) != info.is_dir:
            have = "a directory" if stat.S_ISDIR(st.st_mode) else f"a non-directory (mode {st.st_mode:#o})"
            raise DestinationError(f"{top}/{info.name}: the destination has {have} there, the export "
                                   f"{'a directory' if info.is_dir else f'mode {info.mode:#o}'}; not merging",
                                   path=f"{top}/{info.name}", rule="conflict")


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_tree(path: str) -> None:
    """Remove a temporary tree of ours (directories made writable first: modes were set)."""
    for dirpath, dirnames, filenames in os.walk(path, topdown=True):
        try:
            os.chmod(dirpath, 0o700)
        except OSError:
            pass
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                try:
                    os.chmod(p, 0o700)
                except OSError:
                    pass
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for n in filenames + dirnames:
            p = os.path.join(dirpath, n)
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    os.rmdir(p)
                else:
                    os.unlink(p)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


class _TreeWriter:
    """One write of a plan below a directory descriptor."""

    def __init__(self, top_fd: int, plan: DirectoryPlan, writer: DirectoryWriter, atomic: bool,
                 created: list[str]) -> None:
        self.top_fd = top_fd
        self.plan = plan
        self.writer = writer
        self.atomic = atomic
        self.created = created
        self.link_to = dict(plan.link_to)
        want = writer.owners
        self.chown = (os.geteuid() == 0) if want is None else want
        self.chown_strict = want is True
        self.stack: list[tuple[str, int]] = [("", top_fd)]
        self.dirs: list[FileInfo] = []

    def run(self) -> None:
        try:
            for i, info in enumerate(self.plan.entries):
                self._entry(i, info)
            for info in reversed(self.dirs):       # contents first, then the directory's mode and times
                self._finish_dir(info)
        finally:
            for _, fd in self.stack[1:]:
                os.close(fd)
            self.stack = self.stack[:1]

    # -- directories of the walk
    def _dir_fd(self, parent: str) -> int:
        """An open descriptor of directory ``parent`` (relative, '' for the top)."""
        while self.stack[-1][0] and not (parent == self.stack[-1][0] or parent.startswith(self.stack[-1][0] + "/")):
            os.close(self.stack.pop()[1])
        have = self.stack[-1][0]
        if have == parent:
            return self.stack[-1][1]
        rest = parent[len(have) + 1:] if have else parent
        for comp in rest.split("/"):
            cur = self.stack[-1]
            name = f"{cur[0]}/{comp}" if cur[0] else comp
            try:
                fd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur[1])
            except OSError as e:
                raise self._error(name, "cannot open the directory", e) from None
            self.stack.append((name, fd))
        return self.stack[-1][1]

    def _error(self, name: str, what: str, e: OSError) -> OutputError:
        where = os.path.join(self.writer.path, name)
        return OutputError(f"{where}: {what}: {e.strerror} ({errno.errorcode.get(e.errno or 0, e.errno)})",
                           path=where, errno=e.errno)

    def _entry(self, index: int, info: FileInfo) -> None:
        name = info.name
        if not name:
            self.dirs.append(info)
            return
        parent, _, base = name.rpartition("/")
        dfd = self._dir_fd(parent)
        if info.is_dir:
            try:
                os.mkdir(base, 0o700, dir_fd=dfd)
                self.created.append(name)
            except FileExistsError:
                if not self.atomic:
                    raise self._error(name, "cannot create the directory", FileExistsError(errno.EEXIST, "exists"))
            except OSError as e:
                raise self._error(name, "cannot create the directory", e) from None
            self.dirs.append(info)
            return
        tmp = f".{base}.{secrets.token_hex(4)}.tmp" if self.atomic else base
        if len(tmp.encode("utf-8", "surrogateescape")) > 255:
            tmp = f".sysexport.{secrets.token_hex(8)}.tmp"
        try:
            self._make(index, info, dfd, tmp, name)
            if self.atomic:
                existed = _exists_at(dfd, base)
                try:
                    os.rename(tmp, base, src_dir_fd=dfd, dst_dir_fd=dfd)
                except OSError:
                    os.unlink(tmp, dir_fd=dfd)
                    raise
                if not existed:
                    self.created.append(name)
            else:
                self.created.append(name)
        except OSError as e:
            raise self._error(name, "cannot write it", e) from None

    def _make(self, index: int, info: FileInfo, dfd: int, tmp: str, name: str) -> None:
        target_index = self.link_to.get(index)
        if target_index is not None:
            first = self.plan.entries[target_index].name
            os.link(first, tmp, src_dir_fd=self.top_fd, dst_dir_fd=dfd, follow_symlinks=False)
            return
        if info.is_file:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                if info.source is not None and info.size:
                    info.source.write_to(fd, 0)
                os.ftruncate(fd, info.size)
                self._owner(fd, None, info, name)
                os.fchmod(fd, stat.S_IMODE(info.mode))
                os.utime(fd, ns=self._times(info))
                if self.writer.durable:
                    os.fsync(fd)
            except BaseException:
                os.close(fd)
                fd = -1
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except OSError:
                    pass
                raise
            finally:
                if fd >= 0:
                    os.close(fd)
            return
        if info.is_symlink:
            os.symlink(os.fsdecode(info.target or b""), tmp, dir_fd=dfd)
        elif info.is_device or stat.S_ISFIFO(info.mode) or stat.S_ISSOCK(info.mode):
            rdev = os.makedev(info.rdev_major, info.rdev_minor) if info.is_device else 0
            try:
                os.mknod(tmp, stat.S_IFMT(info.mode) | 0o600, rdev, dir_fd=dfd)
            except PermissionError as e:
                raise OutputError(f"{os.path.join(self.writer.path, name)}: cannot create the "
                                  f"{'device' if info.is_device else 'special file'}: {e.strerror} "
                                  "(creating devices needs root, CAP_MKNOD)", path=name, errno=e.errno) from None
        else:   # pragma: no cover - to_fileinfo admits no other type
            raise InvalidInputError(f"{name}: mode {info.mode:#o} cannot be written to a directory")
        self._owner(None, (dfd, tmp), info, name)
        if not info.is_symlink:
            os.chmod(tmp, stat.S_IMODE(info.mode), dir_fd=dfd)   # not a symlink: made just now
        os.utime(tmp, ns=self._times(info), dir_fd=dfd, follow_symlinks=False)

    def _times(self, info: FileInfo) -> tuple[int, int]:
        mtime = info.mtime if info.mtime is not None else self.plan.default_time
        atime = info.atime if info.atime is not None else mtime
        return int(atime * 1e9), int(mtime * 1e9)

    def _owner(self, fd: int | None, at: tuple[int, str] | None, info: FileInfo, name: str) -> None:
        if not self.chown:
            return
        try:
            if fd is not None:
                os.fchown(fd, info.uid, info.gid)
            elif at is not None:
                os.chown(at[1], info.uid, info.gid, dir_fd=at[0], follow_symlinks=False)
        except PermissionError as e:
            if self.chown_strict:
                raise
            self.chown = False
            self.writer.notes.append(f"{self.writer.path}: owners not set ({e.strerror}); run as root to keep them")

    def _finish_dir(self, info: FileInfo) -> None:
        name = info.name
        try:
            if name:
                self._owner(None, (self.top_fd, name), info, name)
                os.chmod(name, stat.S_IMODE(info.mode), dir_fd=self.top_fd)   # a directory of ours
                os.utime(name, ns=self._times(info), dir_fd=self.top_fd, follow_symlinks=False)
            else:
                self._owner(self.top_fd, None, info, name)
                os.fchmod(self.top_fd, stat.S_IMODE(info.mode))
                os.utime(self.top_fd, ns=self._times(info))
            if self.writer.durable:
                fd = os.open(name or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=self.top_fd)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as e:
            raise self._error(name, "cannot set the directory's attributes", e) from None


def _exists_at(fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=fd)
        return True
    except FileNotFoundError:
        return False


__all__ = ["DirectoryWriter", "DirectoryPlan"]
