"""Progress and summaries of the ``sysexport`` commands: one place for every command.

Every command that builds or reads takes the options :func:`add_output_options` adds:

``--json``
    print one JSON object (the command's summary, validated by the tests against
    ``sysexport/schemas/<command>.json``) instead of the plain lines;
``--progress``
    show progress whatever the amount of data: a bar on a terminal, and where standard
    error is not a terminal (a log, a pipe) one plain line each time another tenth is done;
``-q``/``--quiet``
    print nothing but errors: no bar, no summary lines (``--json`` still prints its object:
    it was asked for).

Without either flag a bar is drawn only when standard error is a terminal and the job moves
more than :data:`AUTO_MIN_BYTES`.  The bar is on standard error, always: standard output may
be the image itself (``-o -``), the bytes of ``cat`` or the JSON object.  It counts bytes of
file data as they are copied, chunk by chunk (:data:`sysexport.data.PROGRESS`), so one large
file moves it as well as many small ones.

A command that writes an image (its parser has ``-o``/``--output`` when
:func:`add_output_options` is called: build, live, initramfs, export, remaster) also takes

``--sync``
    wait until the image is on the disk: the output is durable (fsynced before it is named,
    its directory after: :func:`sysexport.output.durable`); :func:`progress_for` applies it.

A new command uses the two helpers::

    add_output_options(parser)                  # --json, --progress, --quiet
    with progress_for(args, total_bytes, "writing"):
        ...                                     # writers and readers report through data.PROGRESS
    emit(args, {"command": "mine", ...}, ["plain line", ...])
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from contextlib import contextmanager
from typing import IO, Any, Callable, Iterator, Literal, Sequence

from .data import PROGRESS

AUTO_MIN_BYTES = 8 << 20
"""Below this many bytes a bar is not worth drawing unless ``--progress`` asks for one."""
LINE_STEP_PERCENT = 10
"""Where standard error is not a terminal, ``--progress`` prints a line per this many percent."""
LINE_STEP_BYTES = 256 << 20
"""... or, when the total is not known beforehand (a streamed archive), per this many bytes."""

Mode = Literal["auto", "on", "off"]
"""``auto``: a bar on a terminal for large jobs; ``on``: always (lines off a terminal); ``off``."""


def add_output_options(parser: argparse.ArgumentParser, *, json_output: bool = True,
                       sync: bool | None = None) -> None:
    """Add ``--json`` (unless ``json_output`` is False: a command whose output is data, like
    ``cat``), ``--progress`` and ``-q``/``--quiet`` to a command's parser, and ``--sync`` when
    ``sync`` is True or, None, when the parser already has ``-o``/``--output`` (it writes an
    image)."""
    group = parser.add_argument_group("output")
    if json_output:
        group.add_argument("--json", action="store_true",
                           help="print one JSON object summarising the command (see docs/cli.md) "
                                "instead of plain lines")
    group.add_argument("--progress", action="store_true",
                       help="show progress for any amount of data: a bar when standard error is a terminal, "
                            f"a line per {LINE_STEP_PERCENT}%% otherwise (default: a bar on a terminal for "
                            f"more than {AUTO_MIN_BYTES >> 20} MiB)")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="print nothing but errors (no progress, no summary; --json still prints its object)")
    if sync is None:
        sync = any(action.dest == "output" for action in parser._actions)
    if sync:
        group.add_argument("--sync", action="store_true",
                           help="return only when the image is on the disk (fsynced before it is renamed into "
                                "place, and its directory after), so that a crash or power cut right after "
                                "cannot lose it; by default a file is left to the kernel to write back, as cp "
                                "does (a block device is always flushed)")


def mode_of(args: argparse.Namespace) -> Mode:
    """The progress mode the command line asked for (see :data:`Mode`)."""
    if getattr(args, "quiet", False):
        return "off"
    return "on" if getattr(args, "progress", False) else "auto"


class Meter:
    """Counts bytes reported from any thread and draws them: a tqdm bar on a terminal, or
    plain lines at each :data:`LINE_STEP_PERCENT` (a hybrid writes its ESP in a second
    thread, so updates are serialised by a lock)."""

    def __init__(self, total_bytes: int, label: str, stream: IO[str], bar: bool) -> None:
        self.total_bytes = max(total_bytes, 0)
        self.label = label
        self.stream = stream
        self.done_bytes = 0
        self._lock = threading.Lock()
        self._next_line = LINE_STEP_PERCENT if self.total_bytes else LINE_STEP_BYTES
        self._bar: Any = None
        if bar:
            from tqdm import tqdm
            # No monitor thread: a build forks its ESP writer only while it is the process's one
            # thread (sysexport/parallel.py); the bar is redrawn by update() alone.
            tqdm.monitor_interval = 0
            # A terminal that reports no size (a bare pty) would make tqdm hide the bar.
            size = dict(dynamic_ncols=True) if all(_terminal_size(stream)) else dict(ncols=80, nrows=24)
            self._bar = tqdm(total=self.total_bytes or None, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                             file=stream, leave=False, mininterval=0.1, **size)

    def update(self, n_bytes: int) -> None:
        """``n_bytes`` more were copied or read."""
        with self._lock:
            self.done_bytes += n_bytes
            if self._bar is not None:
                self._bar.update(n_bytes)
            elif self.total_bytes:
                percent = min(100, self.done_bytes * 100 // self.total_bytes)
                if percent >= self._next_line:
                    self._next_line = percent - percent % LINE_STEP_PERCENT + LINE_STEP_PERCENT
                    print(f"sysexport: {self.label}: {percent}% ({self.done_bytes:,} of {self.total_bytes:,} bytes)",
                          file=self.stream, flush=True)
            elif self.done_bytes >= self._next_line:
                self._next_line = self.done_bytes - self.done_bytes % LINE_STEP_BYTES + LINE_STEP_BYTES
                print(f"sysexport: {self.label}: {self.done_bytes:,} bytes", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _terminal_size(stream: IO[str]) -> tuple[int, int]:
    try:
        return tuple(os.get_terminal_size(stream.fileno()))     # type: ignore[return-value]
    except (AttributeError, OSError, ValueError):
        return 0, 0


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(total_bytes: int, label: str, mode: Mode = "auto", stream: IO[str] | None = None) -> Iterator[Meter | None]:
    """Show the progress of the bytes reported through :data:`sysexport.data.PROGRESS` while
    the block runs (see the module docstring for when and how); yields the meter, or None
    when nothing is shown.  ``total_bytes`` 0: not known beforehand (a streamed archive):
    a byte counter instead of a bar, on a terminal whatever the amount."""
    out = sys.stderr if stream is None else stream
    terminal = _is_terminal(out)
    big = total_bytes > AUTO_MIN_BYTES or total_bytes <= 0
    show = mode == "on" or (mode == "auto" and terminal and big)
    meter = Meter(total_bytes, label, out, bar=terminal) if show else None
    hook: Callable[[int], None] | None = meter.update if meter is not None else None
    token = PROGRESS.set(hook)
    try:
        yield meter
    finally:
        PROGRESS.reset(token)
        if meter is not None:
            meter.close()


@contextmanager
def progress_for(args: argparse.Namespace, total_bytes: int, label: str) -> Iterator[Meter | None]:
    """:func:`progress` in the mode ``args`` asked for (``--progress``, ``--quiet``); with
    ``--sync``, every output opened in the block is durable (:func:`sysexport.output.durable`)."""
    with progress(total_bytes, label, mode_of(args)) as meter:
        if getattr(args, "sync", False):
            from .output import durable
            with durable():
                yield meter
        else:
            yield meter


def emit(args: argparse.Namespace, summary: dict[str, Any], lines: Sequence[str] = (),
         stream: IO[str] | None = None) -> None:
    """Print a command's result: ``summary`` as one JSON object with ``--json``, else
    ``lines`` unless ``--quiet``.  ``stream`` defaults to standard output; give
    standard error when the command's data goes to standard output (``-o -``)."""
    out = sys.stdout if stream is None else stream
    if getattr(args, "json", False):
        print(json.dumps(summary, indent=1, default=str), file=out)
    elif not getattr(args, "quiet", False):
        for line in lines:
            print(line, file=out)


__all__ = ["AUTO_MIN_BYTES", "Meter", "Mode", "add_output_options", "emit", "mode_of", "progress", "progress_for"]
