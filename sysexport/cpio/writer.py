"""The newc CPIO writer: :class:`CPIO`, streaming, and its plan value :class:`CPIOPlan`.

Format facts (Linux ``Documentation/driver-api/early-userspace/buffer-format.rst`` and
``init/initramfs.c``; the header itself is declared in :mod:`sysexport.cpio._structs`):

* every entry is a 110-byte ASCII header, then the NUL-terminated name, padded with NULs so
  that header plus name is a multiple of 4 bytes, then the data, padded to a multiple of 4;
* a symlink's data is its target (no NUL); devices carry ``rdevmajor``/``rdevminor``;
* hard links share one inode number and carry ``nlink`` >= 2; the data is stored once.
  This writer streams, so it stores it on the FIRST name (later names have size 0): the
  kernel links each later name to the first and opens it without truncating, GNU cpio
  links deferred names at the end, libarchive makes them hard links (all measured);
* the archive ends with an entry named ``TRAILER!!!``.

Streaming (issue 16): entries are written in the order they are added, in batches of at
most ``window_entries`` (:data:`WINDOW_ENTRIES`): a batch holds headers and data *sources*,
never data, so memory does not grow with the archive.  Directories are written before what
is in them (a missing parent is written as an implied directory, mode 0755, when the first
name under it comes); what the writer remembers of names and hard links is bounded
(:mod:`sysexport.cpio.namespace`).  :meth:`CPIO.add_tree` walks a host tree depth first,
siblings sorted (:mod:`sysexport.cpio.walk`), the order the writer used to sort every entry
into, so one tree gives the same archive as before; its small regular files skip the batch
(read when reached, header and data gathered at once); entries given to :meth:`CPIO.add`
keep the caller's order.  An uncompressed output's gathered chunks are written by a thread
of their own (:class:`~sysexport.cpio.sink.BackgroundWrites`), as compression has one.

The :class:`~sysexport.writer.Writer` contract with streaming: ``add()`` may write (a full
batch goes out, with its files' data: a source that changed or cannot be read fails that
``add()``); :meth:`CPIO.plan` closes the archive to additions and returns the plan of the
whole archive as far as a stream can know it (counts, size, offsets) with the entries not
yet written and the trailer; :meth:`CPIO.finish` writes those and installs the output.  A
writer without an output spools what it streams into an unnamed temporary file, which
:meth:`CPIO.write` and :meth:`CPIO.write_to_stream` copy out.
"""
from __future__ import annotations

import os
import tempfile
from stat import S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG
import weakref
from typing import IO, TYPE_CHECKING, Any, Callable

from ..data import SMALL_FILE_BYTES, DataSource
from ..errors import CallOrderError, InvalidInputError, SysExportError
from ..fileinfo import FileInfo, FileInfoSpec, HostPath, source_date_epoch, to_fileinfo
from ..output import Output
from ..writer import FINISHED, Lifecycle, gc_paused
from .newc import MAX_FIELD, NEWC_HEADER_BYTES, TRAILER_NAME, build_header_values, pad_bytes
from .namespace import LINK_TABLE_FILES, REMEMBER_NAMES, LinkGroup, LinkTable, Namespace
from .rules import COMPRESSIONS, check_entry, validate_compress, validate_default_time
from .entries import NAME_END, TYPE_NAMES, CPIOEntry, CPIOPlan, new_entry, write_entries
from .sink import GZIP_LEVEL, XZ_PRESET, ZSTD_LEVEL, CompressSink, FdSink, FdWriter, Sink, StreamSink
from .walk import WalkedFile, stream_tree

if TYPE_CHECKING:
    from ..tree import Node
    from .remaster import Preload

WINDOW_ENTRIES = 1024
"""Entries added but not yet written, at most: a batch of headers and data sources."""
DIR_MODE = 0o040755
"""An implied directory (a parent nobody added): drwxr-xr-x, root, the default time."""


class CPIO(Lifecycle):
    """Streaming writer of a newc CPIO archive (Linux initramfs, ``buffer-format.rst``).

    ``compress`` is None, "gzip", "xz" (CRC32 check, as the kernel requires) or "zstd"
    (needs the ``zstandard`` module), compressed in a second thread.  ``default_time`` is
    used for entries without ``mtime`` (default: SOURCE_DATE_EPOCH, else now).  Give
    ``filename`` or ``filehandle`` to stream into it and :meth:`finish`; without either the
    archive is spooled and :meth:`write_to_stream` / :meth:`write` copy it out.
    ``window_entries``, ``link_table_files`` and ``remember_names`` bound what is held
    (see the module docstring and :mod:`sysexport.cpio.namespace`).
    """

    def __init__(self, filename: str | os.PathLike[str] | None = None, *, filehandle: IO[bytes] | None = None,
                 compress: str | None = None, default_time: int | None = None,
                 window_entries: int = WINDOW_ENTRIES, link_table_files: int = LINK_TABLE_FILES,
                 remember_names: int = REMEMBER_NAMES) -> None:
        if filename is not None and filehandle is not None:
            raise InvalidInputError("CPIO: give filename or filehandle, not both")
        if window_entries < 1:
            raise InvalidInputError(f"CPIO window_entries: must be at least 1, found {window_entries}")
        self.filename = filename
        self.filehandle = filehandle
        self.compress = compress
        self.default_time = source_date_epoch() if default_time is None else default_time
        self.window_entries = window_entries
        self._ns = Namespace(remember_names)
        self._stack = self._ns.stack        # the open directories (the same list, for the hot path)
        self._links = LinkTable(link_table_files)
        self._pending: list[CPIOEntry] = []
        self._next_ino = 1
        self._offset = 0            # uncompressed bytes of every entry so far, written or pending
        self._count = 0             # entries, but the plain files of add_tree (walk.stream_tree) ...
        self._plain = 0             # ... counted here (regular files too)
        self._types: dict[int, int] = {}
        self._data_bytes = 0
        self._linked = 0
        self._streamed = 0
        self._sink: Sink | None = None
        self._out: Output | None = None
        self._spool: IO[bytes] | None = None
        self._failed = ""
        self._last_plan: CPIOPlan | None = None
        self._preload: Preload | None = None
        self._finalizer: weakref.finalize[[Output, list[Sink]], CPIO] | None = None

    # ---------------------------------------------------------------- attributes

    @property
    def compress(self) -> str | None:
        """None, "gzip", "xz" or "zstd" (validated when set; fixed once something is streamed)."""
        return self._compress

    @compress.setter
    def compress(self, value: str | None) -> None:
        if getattr(self, "_sink", None) is not None:
            raise CallOrderError("CPIO.compress: entries are already streamed; set it before adding")
        self._compress = validate_compress(value)

    @property
    def default_time(self) -> int | float:
        """The mtime of entries without one (validated when set, see :func:`validate_mtime`)."""
        return self._default_time

    @default_time.setter
    def default_time(self, value: int | float) -> None:
        self._default_time = validate_default_time(value)

    # ---------------------------------------------------------------- remastering

    @classmethod
    def from_image(cls, src: HostPath, output: str | os.PathLike[str] | None = None, *,
                   filehandle: IO[bytes] | None = None, compress: str | None = None,
                   default_time: int | None = None) -> CPIO:
        """A writer preloaded with every entry of the cpio archive ``src`` (plain or
        compressed, one or more segments), its data streamed from ``src`` when the writer
        streams: at the first :meth:`add`, :meth:`plan` or :meth:`finish`.  Before that,
        :meth:`remove` and :meth:`rename` change which source entries are written and under
        what names (see :mod:`sysexport.cpio.remaster`)."""
        from .remaster import Preload
        writer = cls(output, filehandle=filehandle, compress=compress, default_time=default_time)
        writer._preload = Preload(src)
        return writer

    def remove(self, path: str) -> None:
        """Leave the source entry ``path`` (a directory: and everything under it) out."""
        self._preloaded("remove()").remove(path)

    def rename(self, old: str, new: str) -> None:
        """Write the source entry ``old`` (a directory: and everything under it) as ``new``."""
        self._preloaded("rename()").rename(old, new)

    def _preloaded(self, call: str) -> Preload:
        self._require_open(call)
        if self._preload is None:
            raise CallOrderError(f"CPIO.{call}: only a writer made by CPIO.from_image() has source entries, and "
                                 "only until it streams them (its first add(), plan() or finish())")
        return self._preload

    def _stream_preload(self) -> None:
        preload, self._preload = self._preload, None
        if preload is not None:
            self._guarded(lambda: preload.stream(self))

    # ---------------------------------------------------------------- adding

    def add(self, spec: FileInfoSpec) -> Node[None]:
        """Add one entry (a file-info mapping, shorthand tuple or FileInfo); returns a node
        holding its record.  The entry is written with the next batch.

        Raises InvalidInputError for what newc or the kernel's unpacker cannot hold (see
        :func:`~sysexport.cpio.rules.check_entry`), a name given twice in a directory the
        writer still knows, a hard link whose size or mode differs from its first name;
        SourceError / OutputError when the batch it completes cannot be read or written
        (the output is then removed); CallOrderError after :meth:`plan` or :meth:`finish`.
        """
        self._require_open("add()")
        info = to_fileinfo(spec)
        self._add_info(info)
        from ..tree import Node               # not imported for add_tree alone (the command line)
        return Node(info, None)

    def add_tree(self, host_dir: HostPath, dest: str = "", *, prune: Callable[[str], bool] | None = None,
                 root_owner: bool = False, mode_map: Callable[[int], int] | None = None) -> None:
        """Add a host directory and everything under it (lstat: symlinks, devices, hard links
        kept), depth first, siblings sorted, streamed as it is walked: a small file's data is
        read when it is reached, so a file that cannot be read fails this call.
        ``prune(name)`` True leaves an entry out (a directory is not even listed);
        ``root_owner`` writes uid and gid 0, ``mode_map`` maps every mode (the command
        line's ``--owner root`` and ``-r``: see :func:`sysexport.sources.normalise`)."""
        self._require_open("add_tree()")
        if self._preload is not None:
            self._stream_preload()
        with gc_paused():                   # a directory's records are all it makes
            stream_tree(self, host_dir, dest, prune=prune, root_owner=root_owner, mode_map=mode_map)

    def _gather_buffer(self) -> bytearray:
        """The sink's gathered buffer, for :func:`~.walk.stream_tree` to append entries to
        (the sink opened first; a failure removes the output)."""
        sink = self._sink
        if sink is None:
            self._guarded(self._open_sink)
            sink = self._sink
            assert sink is not None
        return sink.buf

    def _emit_gathered(self) -> None:
        """Pass the gathered buffer on (written, or to the compressor); a failure removes the output."""
        try:
            if self._out is not None and self.compress is None:
                self._out.check_fits(self._offset)
            assert self._sink is not None
            self._sink.flush()
        except BaseException as e:
            self._fail(e)
            raise

    def _read_again(self, path: str, size: int) -> bytes:
        """A walked file whose read did not give the ``size`` bytes its fstat said, read again
        by its source: its bytes, or (the output removed) the error naming it."""
        try:
            data = WalkedFile(path, size).read_all(SMALL_FILE_BYTES)
            if len(data) != size:
                raise SysExportError(f"{path}: expected {size} bytes, the source gave {len(data)}")
        except BaseException as e:
            self._fail(e)
            raise
        return data

    def _add_info(self, info: FileInfo) -> None:
        """The hot path (100,000 times for a large tree): the common cases inline, the rest
        through :func:`~.rules.check_entry` and :class:`~.namespace.Namespace`."""
        if self._preload is not None:
            self._stream_preload()
        name = info.name
        mode = info.mode
        kind = mode & 0o170000
        mtime = info.mtime
        if mtime is None or not 0 <= mtime <= MAX_FIELD or len(name) >= 1024 or info.size > MAX_FIELD \
                or kind == S_IFCHR or kind == S_IFBLK or name == TRAILER_NAME:
            check_entry(info)
            if mtime is None:
                mtime = self._default_time
        key = None
        if info.dev is not None and info.ino is not None and info.nlink != 1 and kind != S_IFDIR and kind != S_IFLNK:
            key = (info.dev, info.ino)
            group = self._links.get(key)
            if group is not None and (group.mode != mode or group.size != info.size):
                raise InvalidInputError(
                    f"{name or '/'}: hard link of {group.first} (dev, ino {key}) must have the same mode and size: "
                    f"expected mode {group.mode:#o} size {group.size}, found mode {mode:#o} size {info.size}")
        if name:
            self._place(name, kind == S_IFDIR)
        else:
            self._ns.written.add("")
        if kind == S_IFREG and key is None:
            self._push_entry(name, mode, info.uid, info.gid, 1, int(mtime), 0, 0, source=info.source, size=info.size)
        elif kind == S_IFDIR:
            self._push_entry(name, mode, info.uid, info.gid, info.nlink or 2, int(mtime), 0, 0)
        elif kind == S_IFLNK:
            self._push_entry(name, mode, info.uid, info.gid, 1, int(mtime), 0, 0, inline=info.target or b"")
        elif key is not None:
            self._push_link(info, key, int(mtime))
        else:
            device = kind == S_IFCHR or kind == S_IFBLK
            self._push_entry(name, mode, info.uid, info.gid, 1, int(mtime), info.rdev_major if device else 0,
                             info.rdev_minor if device else 0)

    def _place(self, name: str, is_dir: bool, *, strict: bool = True) -> None:
        """Open ``name``'s directory (its implied parents written first), refuse it when it
        is there already (``strict``), and record it."""
        parent, _, base = name.rpartition("/")
        ns = self._ns
        top = ns.stack[-1]
        if top[0] != parent:
            for implied in ns.enter(parent, name):
                self._push_entry(implied, DIR_MODE, 0, 0, 2, int(self._default_time), 0, 0)
            top = ns.stack[-1]
        names = top[1]
        known = names.get(base)
        if known is None:
            names[base] = is_dir
        elif strict:
            ns.check(base, is_dir, name)
        if is_dir:
            names[base] = True
            ns.written.add(name)

    def _add_source(self, info: FileInfo, *, ino: int, nlink: int, strict: bool) -> int:
        """An entry of a preloaded source (:mod:`.remaster`): its inode number and link
        count given (0: a new number); a name the source has twice is written twice unless
        ``strict`` (a renamed entry).  Returns the inode number written."""
        check_entry(info)
        name = info.name
        if name:
            self._place(name, info.is_dir, strict=strict)
        else:
            self._ns.written.add("")
        if ino and not info.size:
            self._linked += 1
        return self._push_entry(name, info.mode, info.uid, info.gid, nlink, int(info.mtime or 0),
                                info.rdev_major if info.is_device else 0, info.rdev_minor if info.is_device else 0,
                                source=info.source, size=info.size, inline=info.target or b"", ino=ino)

    def _push_link(self, info: FileInfo, key: tuple[int, int], mtime: int) -> None:
        group = self._links.get(key)
        rdev = (info.rdev_major, info.rdev_minor) if info.is_device else (0, 0)
        if group is not None:
            self._links.seen(key)
            self._linked += 1
            self._push_entry(info.name, info.mode, info.uid, info.gid, group.nlink, mtime, *rdev, ino=group.ino)
            return
        nlink = max(info.nlink or 2, 2)
        ino = self._push_entry(info.name, info.mode, info.uid, info.gid, nlink, mtime, *rdev,
                               source=info.source if info.is_file else None, size=info.size if info.is_file else 0)
        self._links.add(key, LinkGroup(ino, nlink, info.name or "/", info.mode, info.size))

    def _push_entry(self, name: str, mode: int, uid: int, gid: int, nlink: int, mtime: int, rdev_major: int,
                    rdev_minor: int, *, source: DataSource | None = None, size: int = 0, inline: bytes = b"",
                    ino: int = 0) -> int:
        """Queue one entry (header built now); returns its inode number."""
        if not ino:
            ino = self._next_ino
            self._next_ino = ino + 1
        if inline:
            size = len(inline)
        arc_name = name.encode("utf-8", "surrogateescape") if name else b"."
        namesize = len(arc_name) + 1
        head = build_header_values((ino, mode, uid, gid, nlink, mtime, size, 0, 0, rdev_major, rdev_minor,
                                    namesize, 0)) + arc_name + NAME_END[(NEWC_HEADER_BYTES + namesize) & 3]
        offset = self._offset
        self._pending.append(new_entry(CPIOEntry, (name or ".", offset, ino, nlink, mode, size, head,
                                                    source if size else None, inline)))
        self._offset = offset + len(head) + size + (-size & 3)
        self._count += 1
        kind = mode & 0o170000
        types = self._types
        types[kind] = types.get(kind, 0) + 1
        if source is not None:
            self._data_bytes += size
        if len(self._pending) >= self.window_entries:
            self._flush()
        return ino

    # ---------------------------------------------------------------- streaming

    def _flush(self) -> None:
        """Write the queued entries with their data into the output (or the spool)."""
        if not self._pending:
            return
        self._guarded(self._write_pending)

    def _write_pending(self) -> None:
        sink = self._open_sink()
        if self._out is not None and self.compress is None:
            self._out.check_fits(self._offset)
        write_entries(sink, self._pending)
        self._streamed += len(self._pending)
        self._pending.clear()

    def _guarded(self, step: object) -> None:
        """Run ``step``; on any error remove the output (nothing half-written) and refuse
        every later call."""
        try:
            step()  # type: ignore[operator]
        except BaseException as e:
            self._fail(e)
            raise

    def _open_sink(self) -> Sink:
        if self._sink is not None:
            return self._sink
        if self.filename is None and self.filehandle is None:
            self._spool = tempfile.TemporaryFile()
            self._sink = FdSink(self._spool.fileno(), sparse=True)
            return self._sink
        out = Output(filename=self.filename, filehandle=self.filehandle, sequential=True)
        out.__enter__()
        self._out = out
        sinks: list[Sink] = []          # stopped by _abandon before the output is closed
        self._finalizer = weakref.finalize(self, _abandon, out, sinks)
        if self.compress is not None:
            self._sink = CompressSink(self.compress, FdWriter(out.fd))
        else:
            # Holes only in a fresh file of ours; anything else (a caller's file from its
            # position, a device, a pipe) gets every byte in order, so nothing old shows.
            self._sink = FdSink(out.fd, sparse=out.fresh, background=True)
        sinks.append(self._sink)
        return self._sink

    def _fail(self, exc: BaseException) -> None:
        self._failed = f"{type(exc).__name__}: {exc}"
        self._stage = FINISHED
        self._pending.clear()
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.abort()
        out, self._out = self._out, None
        if out is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            out.__exit__(type(exc), exc, exc.__traceback__)     # an OSError comes out as an OutputError

    def _require_open(self, call: str) -> None:
        self._check_failed(call)
        super()._require_open(call)

    def _require_unfinished(self, call: str) -> None:
        self._check_failed(call)
        super()._require_unfinished(call)

    def _check_failed(self, call: str) -> None:
        if self._failed:
            raise CallOrderError(f"CPIO.{call}: an earlier error ended this archive ({self._failed}); "
                                 "its output was removed")

    # ---------------------------------------------------------------- planning and writing

    def plan(self) -> CPIOPlan:
        """Close the archive to additions; the plan of the whole archive (see
        :class:`CPIOPlan`).  ``plan()`` may be called again (an equal plan) until
        :meth:`finish`.  A preloaded writer streams its source entries first."""
        self._require_unfinished("plan()")
        self._stream_preload()
        head = build_header_values((0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(TRAILER_NAME) + 1, 0)) + \
            TRAILER_NAME.encode() + b"\0" * (1 + pad_bytes(NEWC_HEADER_BYTES + len(TRAILER_NAME) + 1))
        trailer = CPIOEntry(TRAILER_NAME, self._offset, 0, 1, 0, 0, head, None, b"")
        streamed_bytes = self._pending[0][1] if self._pending else self._offset
        types = dict(self._types)
        if self._plain:
            types[S_IFREG] = types.get(S_IFREG, 0) + self._plain
        pending = tuple(self._pending)
        plan = CPIOPlan(pending + (trailer,), self._count + self._plain, self._offset + len(head), self._data_bytes,
                        self._streamed, streamed_bytes, self._linked, self._links.forgotten, self.compress,
                        tuple((TYPE_NAMES.get(k, "other"), n) for k, n in sorted(types.items())))
        self._mark_planned()
        self._last_plan = plan
        return plan

    def _check_current(self, call: str, plan: CPIOPlan) -> None:
        if plan is not self._last_plan:
            raise CallOrderError(f"CPIO.{call}: the plan is stale or not this writer's; "
                                 "write the plan that the last plan() returned")

    def write(self, fd: int, plan: CPIOPlan, /, *, sparse: bool = True) -> None:
        """Write the archive ``plan`` describes into ``fd`` (a writer without an output:
        the spool, then the rest).  Uncompressed with ``sparse`` (a fresh file, empty):
        from byte 0, holes kept; compressed or with ``sparse=False``: every byte in order
        from the position of ``fd``."""
        self._check_current("write()", plan)
        if plan.compress is None and sparse:
            self._copy_out(FdSink(fd, sparse=True), plan)
            return
        with open(fd, "wb", closefd=False) as f:
            self.write_to_stream(f, plan)

    def write_to_stream(self, fileobj: IO[bytes], plan: CPIOPlan | None = None) -> None:
        """Write the whole archive (compressed as chosen) to a writable binary stream.
        Without ``plan``, plans first (so :meth:`add` is refused afterwards)."""
        if plan is None:
            plan = self.plan()
        self._check_current("write_to_stream()", plan)
        sink = CompressSink(plan.compress, fileobj) if plan.compress else StreamSink(fileobj)
        self._copy_out(sink, plan)

    def _copy_out(self, sink: Sink, plan: CPIOPlan) -> None:
        if self._out is not None or (self._sink is not None and self._spool is None):
            raise CallOrderError("CPIO.write(): this writer streams into its own output; finish() completes it")
        try:
            if self._spool is not None and self._sink is not None:
                self._sink.flush()
                sink.copy_range(self._spool.fileno(), plan.streamed_bytes)
            write_entries(sink, plan.entries)
            sink.close()
        except BaseException:
            sink.abort()
            raise

    def finish(self) -> CPIOPlan:
        """plan(), then write the rest of the archive and install the output: ``filename``
        (atomically: nothing is left on failure) or ``filehandle`` (from its position),
        once; returns the plan."""
        self._require_unfinished("finish()")
        if self.filename is None and self.filehandle is None:
            raise InvalidInputError("CPIO.finish(): no filename or filehandle was given; use write_to_stream()")
        plan = self.plan()
        self._guarded(lambda: self._finish_output(plan))
        self._mark_finished()
        return plan

    def _finish_output(self, plan: CPIOPlan) -> None:
        sink = self._open_sink()
        out = self._out
        assert out is not None
        if plan.compress is None:
            out.check_fits(plan.size_bytes)
        write_entries(sink, plan.entries)
        self._pending.clear()
        sink.close()
        self._sink = None
        if plan.compress is None and out.fresh:
            out.prepare(plan.size_bytes)        # a trailing hole of the last file is part of it
        self._out = None
        if self._finalizer is not None:
            self._finalizer.detach()
        out.__exit__(None, None, None)


def _abandon(out: Output, sinks: list[Sink]) -> None:
    """A writer dropped before finish(): its compressing thread is stopped (it may still
    hold queued chunks for the descriptor), then its temporary output goes."""
    try:
        for sink in sinks:
            sink.abort()
    finally:
        out._close_all(success=False)


__all__ = ["CPIO", "CPIOPlan", "CPIOEntry", "COMPRESSIONS", "GZIP_LEVEL", "XZ_PRESET", "ZSTD_LEVEL",
           "WINDOW_ENTRIES", "check_entry"]
