"""What the image-building commands put into an image: host trees, filtered and normalised.

``sysexport build``, ``live`` and ``initramfs`` take host directories as ``DIR[:DEST]``
sources (DEST: where DIR's contents go in the image, default the root), drop entries
matching ``--exclude GLOB``, keep entries matching ``--iso-only GLOB`` out of the ESP
(a hybrid's FAT cannot hold a file of 4 GiB or more, and some files must not be seen by
firmware), and can rewrite owners and modes as ``mkisofs -r`` does (:func:`rational_mode`).
Everything here works on the :class:`~sysexport.fileinfo.FileInfo` records the host-tree
walk yields, so no file data is read and memory does not grow with file sizes.
"""
from __future__ import annotations

import fnmatch
import itertools
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .errors import InvalidInputError, UsageError
from .fileinfo import FileInfo, normalize_name, walk_host_fileinfo

RATIONAL_READ = 0o444
"""mkisofs -r / xorriso mkisofs_r: read permission for everyone."""
RATIONAL_EXEC = 0o111
"""... and execute (search) permission for everyone where anyone had it."""
OWNER_CHOICES = ("keep", "root")
"""``--owner``: keep the host's uid/gid, or make every entry owned by uid 0, gid 0."""


def rational_mode(mode: int) -> int:
    """``mode`` as ``mkisofs -r`` (genisoimage, xorriso's ``mkisofs_r``) records it: the type
    bits kept; read bits set for all; execute bits set for all when any was set; write bits,
    set-uid, set-gid and sticky cleared.  The same for every type (a symlink's 0777 becomes
    0555, as both tools write it)."""
    perm = RATIONAL_READ | (RATIONAL_EXEC if mode & 0o111 else 0)
    return stat.S_IFMT(mode) | perm


def normalise(info: FileInfo, *, owner: str = "keep", rational: bool = False) -> FileInfo:
    """``info`` with owners and modes rewritten in place: ``owner="root"`` (or ``rational``)
    sets uid and gid to 0, ``rational`` also applies :func:`rational_mode`."""
    if owner == "root" or rational:
        info.uid = 0
        info.gid = 0
    if rational:
        info.mode = rational_mode(info.mode)
    return info


@dataclass(frozen=True)
class PathPattern:
    """One ``--exclude``/``--iso-only`` GLOB (fnmatch rules: ``*``, ``?``, ``[...]``).

    A pattern without ``/`` is matched against each entry's name (any depth, as
    ``mkisofs -m`` does); one with ``/`` against the entry's whole path in the image
    (``boot/*.img``, or ``/README.txt`` for the root's alone; ``*`` also matches ``/``).
    A directory that matches takes everything below it along.
    """

    option: str
    text: str
    anchored: bool = False
    """Matched against the whole path (the GLOB had a '/'), else against the name."""

    @classmethod
    def parse(cls, option: str, text: str) -> PathPattern:
        """Check ``text`` (UsageError naming ``option`` when it cannot be a pattern)."""
        if not text or not text.strip("/"):
            raise UsageError(f"{option} {text!r}: expected a GLOB such as '*.iso' or 'boot/big/*', found nothing")
        if "\0" in text:
            raise UsageError(f"{option} {text!r}: a GLOB cannot hold a NUL character")
        _check_brackets(option, text)
        body = text.strip("/")
        return cls(option, body, anchored=text.startswith("/") or "/" in body)

    def matches(self, name: str) -> bool:
        """Whether the entry ``name`` (normalised, relative to the image root) matches."""
        if self.anchored:
            return fnmatch.fnmatchcase(name, self.text)
        return fnmatch.fnmatchcase(name.rpartition("/")[2], self.text)


def _check_brackets(option: str, text: str) -> None:
    """Refuse a ``[`` that no ``]`` closes: fnmatch would take it literally, which is
    almost never what the user meant (``--exclude '[abc'``)."""
    i = 0
    while i < len(text):
        if text[i] == "[":
            j = i + 1
            if j < len(text) and text[j] in "!^":
                j += 1
            if j < len(text) and text[j] == "]":
                j += 1
            close = text.find("]", j)
            if close < 0:
                raise UsageError(f"{option} {text!r}: the '[' at {i} is never closed by ']'")
            i = close
        i += 1


def parse_patterns(option: str, texts: Sequence[str] | None) -> tuple[PathPattern, ...]:
    """Every GLOB given for ``option``, checked."""
    return tuple(PathPattern.parse(option, t) for t in texts or ())


@dataclass(frozen=True)
class Source:
    """One ``DIR[:DEST]`` source: a host directory and where its contents go in the image."""

    host_dir: str
    dest: str = ""

    @classmethod
    def parse(cls, spec: str, option: str = "DIR[:DEST]") -> Source:
        """``DIR`` or ``DIR:DEST``; a DIR that itself holds ':' is taken whole when it exists.
        The directory is checked here, so that a typo fails before anything is built."""
        host, sep, dest = spec.partition(":")
        if not sep or os.path.isdir(spec):
            host, dest = spec, ""
        if not host:
            raise UsageError(f"{option} {spec!r}: expected DIR or DIR:DEST, the directory is missing")
        try:
            st = os.stat(host)
        except OSError as e:
            raise InvalidInputError(f"{host}: cannot read source tree: {e.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"{host}: a source must be a directory, found mode {st.st_mode:#o}")
        return cls(host, normalize_name(dest))


@dataclass(frozen=True)
class Selection:
    """What goes where: ``exclude`` patterns drop entries, ``iso_only`` ones keep entries out
    of the ESP; owners and modes as :func:`normalise` says."""

    exclude: tuple[PathPattern, ...] = ()
    iso_only: tuple[PathPattern, ...] = ()
    iso_only_paths: frozenset[str] = frozenset()
    """Exact image paths kept out of the ESP too (El Torito images that get a boot info table)."""
    owner: str = "keep"
    rational: bool = False

    def entries(self, sources: Iterable[Source]) -> Iterator[FileInfo]:
        """FileInfo records of every source, in order, filtered and normalised; an entry
        below an excluded (or ISO-only) directory is excluded (ISO-only) with it."""
        exclude = self.exclude

        def excluded(name: str) -> bool:      # an excluded directory is not even read
            return any(p.matches(name) for p in exclude)

        prune = excluded if exclude else None
        walks = (walk_host_fileinfo(source.host_dir, source.dest, prune=prune) for source in sources)
        if not (self.iso_only or self.iso_only_paths or self.rational) and self.owner == "keep":
            return itertools.chain.from_iterable(walks)     # nothing to mark or rewrite: as walked
        return self._marked(walks)

    def _marked(self, walks: Iterable[Iterator[FileInfo]]) -> Iterator[FileInfo]:
        """The walks' records with ISO-only entries marked and owners and modes rewritten."""
        iso_dirs: set[str] = set()
        for walk in walks:
            for info in walk:
                name = info.name
                if name and (name in self.iso_only_paths or _below(name, iso_dirs)
                             or any(p.matches(name) for p in self.iso_only)):
                    info.hybrid_target = "iso"
                    if info.is_dir:
                        iso_dirs.add(name)
                yield normalise(info, owner=self.owner, rational=self.rational)


def _below(name: str, dirs: set[str]) -> bool:
    """Whether ``name`` lies inside one of ``dirs``."""
    if not dirs:
        return False
    parent = name.rpartition("/")[0]
    while parent:
        if parent in dirs:
            return True
        parent = parent.rpartition("/")[0]
    return False


__all__ = ["OWNER_CHOICES", "PathPattern", "Selection", "Source", "normalise", "parse_patterns", "rational_mode"]
