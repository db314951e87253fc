"""Extents (byte ranges of the output device), alignment helpers and an allocator."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import LayoutError


def align_up(value: int, align: int) -> int:
    """Smallest multiple of ``align`` that is >= value."""
    return -(-value // align) * align


@dataclass(frozen=True, slots=True)
class Extent:
    """A byte range of the output device: ``device_offset`` .. ``device_offset + size_bytes``."""

    device_offset: int
    size_bytes: int
    what: str = ""

    @property
    def end(self) -> int:
        return self.device_offset + self.size_bytes


def check_no_overlap(extents: list[Extent], device_size: int | None = None) -> None:
    """Raise LayoutError if two extents overlap or one passes the device end."""
    ordered = sorted((e for e in extents if e.size_bytes), key=lambda e: e.device_offset)
    for a, b in zip(ordered, ordered[1:]):
        if b.device_offset < a.end:
            raise LayoutError(f"{a.what or 'extent'} [{a.device_offset}, {a.end}) overlaps "
                              f"{b.what or 'extent'} [{b.device_offset}, {b.end})")
    if device_size is not None and ordered and ordered[-1].end > device_size:
        e = ordered[-1]
        raise LayoutError(f"{e.what or 'extent'} ends at byte {e.end}, past the device end {device_size}")
    if ordered and ordered[0].device_offset < 0:
        raise LayoutError(f"{ordered[0].what or 'extent'} starts at negative offset {ordered[0].device_offset}")


class Allocator:
    """Hands out consecutive aligned ranges from a starting offset, around the ``reserved`` extents."""

    def __init__(self, start: int = 0, reserved: list[Extent] | None = None) -> None:
        self.next_free = start
        self.reserved: list[Extent] = list(reserved or [])

    def alloc(self, size_bytes: int, align: int = 1, what: str = "") -> Extent:
        start = align_up(self.next_free, align)
        moved = True
        while moved:
            moved = False
            for r in self.reserved:
                if r.size_bytes and start < r.end and r.device_offset < start + max(size_bytes, 1):
                    start = align_up(r.end, align)
                    moved = True
        ext = Extent(start, size_bytes, what)
        self.next_free = max(self.next_free, start + size_bytes)
        return ext
