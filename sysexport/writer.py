"""The shape every writer has: the :class:`Writer` protocol and its call-order rules.

Each format writer (ISO9660, VFAT, CPIO, GPT, and the ISO9660Hybrid that composes them)
works in two phases (docs/architecture.md, "Plan, then write"):

* ``add(spec)`` / ``add_tree(host_dir, dest)`` record what is wanted; no file data is read;
* ``plan()`` computes the complete layout and returns it as an immutable *plan value*
  (:class:`~sysexport.iso9660.writer.ISOPlan`, :class:`~sysexport.vfat.writer.VFATPlan`,
  :class:`~sysexport.partition.gpt.GPTLayout`, :class:`~sysexport.cpio.CPIOPlan`,
  :class:`~sysexport.hybrid.HybridPlan`); once a writer has planned, ``add()`` is refused;
* ``write(fd, plan)`` writes exactly what the plan says into an already sized output;
* ``finish()`` is plan + write into the writer's own output, once.

A coordinator (the hybrid, a remaster, the mkisofs front end) composes the plans of its
parts; it never sets another writer's attributes.

A streaming writer (:class:`~sysexport.cpio.CPIO`) writes during ``add()``, in bounded
batches, and its plan describes the whole archive without listing what is already
written (docs/architecture.md, "Plan, then write").
"""
from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, runtime_checkable

from .errors import CallOrderError

PlanT = TypeVar("PlanT")

OPEN, PLANNED, FINISHED = "open", "planned", "finished"


@runtime_checkable
class Writer(Protocol[PlanT]):
    """What every writer offers (see the module docstring for the contract)."""

    def add(self, spec: Any, /) -> object:
        """Record one entry (a file-info mapping, shorthand tuple or FileInfo)."""
        ...

    def add_tree(self, host_dir: str | os.PathLike[str], dest: str = "") -> None:
        """Record a whole host directory tree under ``dest``."""
        ...

    def plan(self) -> PlanT:
        """Compute the layout; returns the immutable plan value."""
        ...

    def write(self, fd: int, plan: PlanT, /) -> None:
        """Write what ``plan`` describes into ``fd`` (already sized)."""
        ...

    def finish(self) -> object:
        """plan() then write() into the writer's own output, once."""
        ...


class Lifecycle:
    """Call-order bookkeeping shared by the writers: open -> planned -> finished.

    ``add()`` only while open; ``plan()`` may be repeated (a coordinator re-plans a part
    with other arguments) until ``finish()``; ``finish()`` once.
    """

    _stage: str = OPEN

    @property
    def stage(self) -> str:
        """"open", "planned" or "finished"."""
        return self._stage

    def _require_open(self, call: str) -> None:
        if self._stage != OPEN:
            what = "planned" if self._stage == PLANNED else "finished"
            raise CallOrderError(f"{type(self).__name__}.{call}: this writer has already {what}; "
                                 "add everything before plan() or finish()")

    def _require_unfinished(self, call: str) -> None:
        if self._stage == FINISHED:
            raise CallOrderError(f"{type(self).__name__}.{call}: this writer has already finished "
                                 "(finish() writes the image once)")

    def _mark_planned(self) -> None:
        if self._stage == OPEN:
            self._stage = PLANNED

    def _mark_finished(self) -> None:
        self._stage = FINISHED


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while records are made in bulk.

    Adding 100,000 files creates over a million long-lived objects; the collector would
    scan them again and again (about 12% of a build's time, measured) to find no garbage.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if not gc.get_freeze_count():
                # What was made meanwhile is all in the youngest generation: the collector's
                # next run would scan every record of it (0.15-0.27 s after adding 100,000
                # files, measured).  freeze() + unfreeze() moves everything to the oldest
                # generation without a scan; only a full collection looks there.  (Not when
                # the program froze objects itself: unfreeze() would release them.)
                gc.freeze()
                gc.unfreeze()
            gc.enable()
