"""FAT compares names ignoring case: two entries of one directory must not differ only by
case (fatgen103 "Name Matching In Short And Long Names").  :class:`CaseIndex` is what
``VFAT.add()`` checks each new name against, per directory, kept small: an all-lower-case
ASCII name (most names) is found in the directory's own children, so it costs nothing
here; only the lower-case forms of other ASCII names and the folded forms of non-ASCII
ones (:func:`names.fold`) are kept."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from .names import fold


class CaseIndex:
    """The names of one directory that cannot be found by their lower-case form among its
    children: ``mixed``, the lower-case forms of ASCII names with an upper-case letter;
    ``other``, the folded forms of non-ASCII names."""

    __slots__ = ("mixed", "other")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.mixed: set[str] = set()
        self.other: set[str] = set()
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        """Record ``name`` (after :meth:`clash` found nothing)."""
        if name.isascii():
            low = name.lower()
            if low != name:
                self.mixed.add(low)
        else:
            self.other.add(fold(name))

    def discard(self, name: str) -> None:
        """Forget ``name`` (removed or renamed)."""
        if name.isascii():
            self.mixed.discard(name.lower())
        else:
            self.other.discard(fold(name))

    def clash(self, name: str, children: Mapping[str, object]) -> bool:
        """True when a name in ``children`` (the directory's, ``name`` not among them)
        equals ``name`` ignoring case as FAT compares."""
        if name.isascii():
            low = name.lower()
            if (low != name and low in children) or low in self.mixed:
                return True
            return bool(self.other) and name.upper() in self.other
        folded = fold(name)
        if folded in self.other:
            return True
        if folded.isascii():            # (a long s or dotless i folds to ASCII)
            low = folded.lower()
            return low in children or low in self.mixed
        return False


def case_twin(name: str, children: Iterable[str]) -> str | None:
    """The name among ``children`` that equals ``name`` ignoring case, for the message."""
    key = fold(name)
    return next((k for k in children if k != name and fold(k) == key), None)
