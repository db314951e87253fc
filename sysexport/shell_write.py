"""The commands ``sysexport shell --write`` adds: changes in place, and changes staged for a remaster.

``put HOST PATH`` rewrites one file's bytes in the image itself
(:meth:`sysexport.image.Image.replace_file` on an image opened ``writable=True``): the new
bytes must fit the room the file already has, and every record naming them is updated.

``rm``, ``mkdir``, ``add HOST[:DEST]`` and ``mv`` change the tree, which in-place editing
cannot do; they are *staged*: each is tried at once on a writer preloaded from the image
(``ISO9660Hybrid.from_image`` for one of our hybrids, ``ISO9660.from_image`` for any other
ISO, as ``sysexport remaster`` decides; ``VFAT.from_image`` for a FAT volume,
``CPIO.from_image`` for an archive), so a change the writer refuses is refused when it is
typed, and ``commit OUT`` writes a new image with all of them (the image explored changes
only when OUT is that image: it is then replaced once the new one is complete).  ``staged`` lists them, ``unstage`` drops
the last one (or all with ``-a``).  Paths are those of the view the shell is in; for an ISO
with Rock Ridge they are the Rock Ridge names (the remaster's tree), so the ``joliet`` and
``iso9660`` views cannot stage changes.
"""
from __future__ import annotations

import os
import shlex
import stat as _stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInputError
from .image import Image
from .image import open as open_image
from .image.view import normalize
from .progress import progress
from .shell import Explorer


@dataclass(frozen=True)
class Staged:
    """One staged change: ``op`` (rm, mkdir, add, mv) and its operands as typed, resolved."""

    op: str
    args: tuple[str, ...]

    def line(self) -> str:
        return " ".join([self.op, *(shlex.quote(a) for a in self.args)])


def _nothing() -> None:
    pass


class WritableExplorer(Explorer):
    """The shell with ``--write`` (see the module docstring)."""

    def __init__(self, image: str, **options: Any) -> None:
        self.staged: list[Staged] = []
        self._check: tuple[Any, Callable[[], None]] | None = None   # tries each change: (writer, close)
        super().__init__(image, **options)

    def _open_image(self) -> Image:
        return open_image(self.path, session=self.session, codepage=self.codepage, writable=True)

    def close(self) -> None:
        self._drop_check()
        super().close()

    # --- in place -----------------------------------------------------------------------------------
    def do_put(self, arg: str) -> None:
        """put HOST_FILE PATH: replace the bytes of file PATH in the image itself by HOST_FILE's
        (they must fit the room PATH has; every view of the file changes)."""
        words = shlex.split(arg)
        if len(words) != 2:
            raise InvalidInputError("expected HOST_FILE PATH")
        host = self.host(words[0])
        if not os.path.isfile(host):
            raise InvalidInputError(f"{host}: not a file on the host")
        path = self.resolve(words[1])
        self.view.stat(path)                        # a missing path named in this view's terms
        done = self.image.replace_file(path, host, view=self.view.name)
        self._reopen()
        self._drop_check()                          # staged changes are made again on what the image is now
        print(f"{self.view.name}:{path}: {done.old_size_bytes:,} -> {done.size_bytes:,} bytes, in place (room "
              f"{done.room_bytes:,}); records updated: {', '.join(done.records)}", file=self.stdout)

    # --- staged ---------------------------------------------------------------------------------------
    def _stage_view(self) -> None:
        newest = len(self.image.sessions) - 1
        if self.session is not None and self.session not in (newest, -1) and newest > 0:
            raise InvalidInputError(f"staged changes are made to the newest session ({newest}); this is session "
                                    f"{self.session}: type 'session {newest}' first")
        if self.view.name in ("joliet", "iso9660") and "rr" in self.image.views():
            raise InvalidInputError(f"staged changes name Rock Ridge paths: type 'view rr' first (this is the "
                                    f"{self.view.name} view)")

    def _writer(self, output: str | None, fmt: str | None = None) -> tuple[Any, Callable[[], None]]:
        """A writer preloaded from the image (see the module docstring; ``fmt`` "iso" or
        "hybrid" overrides what an ISO source is) and what closes its source afterwards."""
        views = self.image.views()
        if any(v in views for v in ("rr", "joliet", "iso9660")):
            from .hybrid import ISO9660Hybrid
            from .iso9660.writer import ISO9660
            from .remaster import read_source
            source = read_source(self.path)
            try:
                hybrid = fmt == "hybrid" or (fmt is None and source.hybrid)
                cls: Any = ISO9660Hybrid if hybrid else ISO9660
                return cls.from_image(source, output), source.image.close
            except BaseException:
                source.image.close()
                raise
        if fmt is not None:
            raise InvalidInputError(f"--{fmt} is for ISO images; this one is written as it is")
        if "fat" in views:
            from .vfat.writer import VFAT
            return VFAT.from_image(self.path, output), _nothing
        from .cpio import CPIO
        return CPIO.from_image(self.path, output), _nothing

    def _drop_check(self) -> None:
        if self._check is not None:
            self._check[1]()
            self._check = None

    def _apply(self, writer: Any, change: Staged) -> None:
        """Make one staged change on a writer preloaded from the image."""
        op, args = change.op, change.args
        tree = [a.lstrip("/") for a in args]
        if op == "rm":
            writer.remove(tree[0])
        elif op == "mv":
            writer.rename(tree[0], tree[1])
        elif op == "mkdir":
            writer.add(("dir", tree[0]))
        elif op == "add":
            host, dest = args[0], tree[1]
            st = os.lstat(host)
            if _stat.S_ISDIR(st.st_mode):
                writer.add_tree(host, dest)
            elif _stat.S_ISLNK(st.st_mode):
                writer.add(("sym", dest, os.readlink(host)))
            else:
                writer.add({"name": dest, "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
                            "mtime": st.st_mtime, "data_path": host, "size": st.st_size})
        else:
            raise InvalidInputError(f"unknown staged change {op!r}")

    def _stage(self, change: Staged) -> None:
        """Try ``change`` on the checking writer (made from the image on first use) and
        keep it; a change the writer refuses is not staged.  A cpio writer takes removes
        and renames only before its first add (it streams from then on): there they are
        checked against the archive, adds are not tried, and commit makes them last."""
        self._stage_view()
        archive = self._is_archive()
        if archive and change.op in ("rm", "mv"):           # named as the archive names it
            change = Staged(change.op, (self._archive_source(change.args[0]), *change.args[1:]))
        if not archive or change.op in ("rm", "mv"):
            if self._check is None:
                self._check = self._writer(None)
                for earlier in self._ordered():
                    if not archive or earlier.op in ("rm", "mv"):
                        self._apply(self._check[0], earlier)
            self._apply(self._check[0], change)
        self.staged.append(change)
        print(f"staged: {change.line()} ({len(self.staged)} waiting for commit)", file=self.stdout)

    def _is_archive(self) -> bool:
        return self.image.views() == ["cpio"]

    def _ordered(self) -> list[Staged]:
        """The staged changes in the order a writer takes them (a cpio one: removes and renames first)."""
        if not self._is_archive():
            return list(self.staged)
        return [c for c in self.staged if c.op in ("rm", "mv")] + [c for c in self.staged if c.op not in ("rm", "mv")]

    def _archive_source(self, path: str) -> str:
        """The archive's own name of ``path`` in the tree the staged changes leave (cpio
        removes and renames name source entries, the deepest rule winning); InvalidInputError
        when it is none of them."""
        source = path
        for change in reversed(self.staged):
            target = change.args[-1]
            inside = source == target or source.startswith(target.rstrip("/") + "/")
            if change.op == "mv" and inside:
                source = change.args[0] + source[len(target):]
            elif change.op == "mv" and (source == change.args[0] or source.startswith(change.args[0] + "/")):
                raise InvalidInputError(f"cpio:{path}: moved away by a staged change")
            elif change.op == "rm" and inside:
                raise InvalidInputError(f"cpio:{path}: removed by a staged change")
            elif change.op in ("add", "mkdir") and inside:
                raise InvalidInputError(f"cpio:{path}: added by a staged change; only the archive's own entries "
                                        "can be removed or moved before commit")
        return self.view.stat(source).path

    def do_rm(self, arg: str) -> None:
        """rm PATH...: remove files or directories (with everything below), staged for commit."""
        paths = shlex.split(arg)
        if not paths:
            raise InvalidInputError("expected a path")
        for p in paths:
            path = self.resolve(p)
            if path == "/":
                raise InvalidInputError("the root cannot be removed")
            self._stage(Staged("rm", (path,)))

    def do_mkdir(self, arg: str) -> None:
        """mkdir PATH...: make directories (parents too), staged for commit."""
        paths = shlex.split(arg)
        if not paths:
            raise InvalidInputError("expected a path")
        for p in paths:
            self._stage(Staged("mkdir", (self.resolve(p),)))

    def do_mv(self, arg: str) -> None:
        """mv OLD NEW: move or rename a file or directory (NEW's parent must exist), staged for commit."""
        words = shlex.split(arg)
        if len(words) != 2:
            raise InvalidInputError("expected OLD NEW")
        self._stage(Staged("mv", (self.resolve(words[0]), self.resolve(words[1]))))

    def do_add(self, arg: str) -> None:
        """add HOST[:DEST]...: add a host file or directory tree at DEST (default: its name in
        the current directory), staged for commit."""
        specs = shlex.split(arg)
        if not specs:
            raise InvalidInputError("expected HOST[:DEST]")
        for spec in specs:
            host, sep, dest = spec.rpartition(":") if ":" in spec and not os.path.exists(self.host(spec)) \
                else (spec, "", "")
            host_path = self.host(host)
            if not os.path.lexists(host_path):
                raise InvalidInputError(f"{host_path}: no such file or directory on the host")
            name = os.path.basename(os.path.normpath(host_path))
            target = self.resolve(dest) if sep and dest else self.resolve(name)
            if sep and dest.endswith("/"):
                target = normalize(self.resolve(dest) + "/" + name)
            self._stage(Staged("add", (host_path, target)))

    def do_staged(self, arg: str) -> None:
        """staged: list the changes waiting for commit."""
        if not self.staged:
            print("nothing staged", file=self.stdout)
        for i, change in enumerate(self.staged, 1):
            print(f"{i:>4}  {change.line()}", file=self.stdout)

    def do_unstage(self, arg: str) -> None:
        """unstage [-a]: drop the last staged change (-a: all of them)."""
        words = shlex.split(arg)
        if not self.staged:
            raise InvalidInputError("nothing staged")
        dropped = list(self.staged) if words == ["-a"] else [self.staged[-1]]
        if words not in ([], ["-a"]):
            raise InvalidInputError("expected nothing or -a")
        del self.staged[len(self.staged) - len(dropped):]
        self._drop_check()                          # made again, from the changes left
        for change in dropped:
            print(f"unstaged: {change.line()}", file=self.stdout)

    def do_commit(self, arg: str) -> None:
        """commit [--iso|--hybrid] OUT: write a new image OUT: this one with every staged change
        (an ISO stays an ISO, a hybrid a hybrid, unless --iso or --hybrid says otherwise); the
        changes are then cleared.  OUT may be the image itself: it is replaced when the new one
        is complete, and read again."""
        flags = {"--iso": "iso", "--hybrid": "hybrid"}
        words = shlex.split(arg)
        fmt = flags.get(words[0]) if words else None
        if fmt is not None:
            words = words[1:]
        if len(words) != 1 or words[0] in flags:
            raise InvalidInputError("expected [--iso|--hybrid] OUT, the new image's path")
        out = self.host(words[0])
        same = os.path.exists(out) and os.path.samefile(out, self.path)
        writer, close = self._writer(out, fmt)
        try:
            for change in self._ordered():
                self._apply(writer, change)
            total = getattr(writer, "total_data_bytes", 0)     # a bar on a terminal when the amount is known
            with progress(total, "writing", "auto" if total else "off"):
                summary = writer.finish()
        finally:
            close()
        print(f"{out}: written with {len(self.staged)} change(s)", file=self.stdout)
        for line in summary.lines() if hasattr(summary, "lines") else []:
            print("  " + line, file=self.stdout)
        self.staged.clear()
        self._drop_check()
        if same:
            self._reopen()

    def do_exit(self, arg: str) -> bool:
        """exit: leave the shell (also quit, or Ctrl-D); staged changes not committed are lost (say so)."""
        if self.staged:
            print(f"{len(self.staged)} staged change(s) not committed: dropped", file=self.stderr)
        return True


__all__ = ["Staged", "WritableExplorer"]
