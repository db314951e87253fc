"""``verify``: every check sysexport can make of any image, each reported with its result.

Checks (those that apply to the image): the partition tables (CRCs, both GPT copies, the
512- and 4096-byte GPTs describing the same partitions, partitions inside the image and
apart from each other), every FAT volume (chains, cross-links, sizes, directory entries),
every ISO 9660 view (every directory read, every extent inside the image, the El Torito
catalog's checksums and boot info tables), and, when the ISO and a FAT view share bytes
(a hybrid), that every file both hold with the same size has the same extent in both.
Every problem a reader met is a failed check: the image deviates from its format there.
Last, unless asked not to, every file's data is read to its end (a file both an ISO and a
FAT view name with the same extents once), through the views' own readers (zisofs
decompressed, FAT chains followed), reporting each chunk to the progress callback
(:data:`sysexport.data.PROGRESS`).
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..data import report_progress
from ..errors import InvalidImageError, SysExportError

if TYPE_CHECKING:
    from . import Image
    from .view import Stat, View


@dataclass
class Check:
    """One check: its name, whether it passed, what it saw."""

    name: str
    ok: bool
    detail: str
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "problems": list(self.problems)}


ProgressFactory = Callable[[int], AbstractContextManager[Any]]
"""Told the bytes of file data to read, returns the context (a progress bar) to read them in."""
READ_CHUNK_BYTES = 1 << 20
DATA_BUDGET_FACTOR, DATA_BUDGET_EXTRA_BYTES = 4, 256 << 20
"""The data check reads at most FACTOR times the image's size plus EXTRA: the files of an
honest image (shared extents counted once) hold no more than the image (a compressed cpio
archive somewhat more); a hostile one whose records all name overlapping extents would
otherwise be read over and over."""


def verify(img: Image, *, data: bool = True, progress: ProgressFactory | None = None) -> list[Check]:
    """Run every check that applies to ``img`` (see the module docstring); ``data`` False
    skips reading the files' data; ``progress`` gets the bytes to read before it is read."""
    checks = [_check_probe(img), _check_partitions(img)]
    walked: dict[str, dict[str, Stat]] = {}
    for name in img.views():
        if name == "fat" and any(n.startswith("fat:") for n in img.views()):
            continue                    # the same volume as one of the fat:N views
        checks.append(_check_view(img, name, walked))
    shared = _check_shared(walked)
    if shared is not None:
        checks.append(shared)
    if data and walked:
        checks.append(_check_data(img, walked, progress))
    return [c for c in checks if c is not None]


def _files_to_read(walked: dict[str, dict[str, Stat]]) -> list[tuple[str, Stat]]:
    """Every non-empty file of every view, a file with the same extents and size as one
    already listed (the other view of a hybrid, a hard link) left out."""
    seen: set[object] = set()
    todo: list[tuple[str, Stat]] = []
    for name, entries in walked.items():
        for e in entries.values():
            if not e.is_file or not e.size:
                continue
            key: object = (tuple(e.extents), e.size) if e.extents else (name, e.link_id or e.path)
            if key not in seen:
                seen.add(key)
                todo.append((name, e))
    return todo


def _check_data(img: Image, walked: dict[str, dict[str, Stat]], progress: ProgressFactory | None) -> Check:
    """Read every file's data to its end (see the module docstring)."""
    todo = _files_to_read(walked)
    total = sum(e.size for _, e in todo)
    budget = DATA_BUDGET_FACTOR * img.size_bytes + DATA_BUDGET_EXTRA_BYTES
    problems: list[str] = []
    read_bytes = files = 0
    with progress(total) if progress is not None else nullcontext():
        for name, e in todo:
            claimed = sum(size for _, size in e.extents) if e.extents else e.size
            if budget - claimed < 0:
                problems.append(f"{name}: the files claim more than {budget:,} bytes of an image of "
                                f"{img.size_bytes:,} bytes (overlapping extents); data read stopped at {name}:{e.path}")
                break
            budget -= claimed
            got = _read_file(img.view(name), e, problems)
            read_bytes += got
            files += 1
    return Check("file data", not problems, f"{files} files, {read_bytes:,} bytes read", problems)


def _read_file(view: View, e: Stat, problems: list[str]) -> int:
    """Read one file through its view; a read error or a short file is a problem."""
    got, name = 0, view.name
    try:
        with view._content(e) as src:
            while got <= e.size:
                chunk = src.read(min(READ_CHUNK_BYTES, e.size + 1 - got))
                if not chunk:
                    break
                got += len(chunk)
                report_progress(len(chunk))
    except SysExportError as err:
        problems.append(f"{name}:{e.path}: {err}")
        return got
    if got != e.size:
        problems.append(f"{name}:{e.path}: {got:,} bytes of data, its entry says {e.size:,}")
    return got


def _check_probe(img: Image) -> Check:
    problems = list(img.problems)
    return Check("structures", not problems,
                 f"{len(img.structures)} structures, views: {', '.join(img.views()) or 'none'}", problems)


def _check_partitions(img: Image) -> Check:
    parts = sorted((s.offset, s.offset + s.size, s.summary) for s in img.structures if s.kind == "partition")
    problems = []
    for start, end, what in parts:
        if end > img.size_bytes:
            problems.append(f"{what}: ends at byte {end}, past the image's end {img.size_bytes}")
    for (a0, a1, a), (b0, b1, b) in zip(parts, parts[1:]):
        if b0 < a1:
            problems.append(f"{a} [{a0}, {a1}) overlaps {b} [{b0}, {b1})")
    gpts = [s for s in img.structures if s.kind == "gpt"]
    return Check("partitions", not problems,
                 f"{len(parts)} partitions, {len(gpts)} GPT{'s' if len(gpts) != 1 else ''}", problems)


def _check_view(img: Image, name: str, walked: dict[str, dict[str, Stat]]) -> Check:
    problems: list[str] = []
    entries: dict[str, Stat] = {}
    try:
        view = img.view(name)
        for e in view.walk():
            entries[e.path] = e
            for off, size in e.extents:
                if off < 0 or off + size > img.size_bytes:
                    problems.append(f"{name}:{e.path}: extent [{off}, {off + size}) outside the image")
        check = getattr(view, "check", None)
        if callable(check):
            check()
        problems += [str(p) for p in getattr(view, "problems", [])]
    except InvalidImageError as e:
        problems.append(f"{name}: {e}")
    except SysExportError as e:
        problems.append(f"{name}: {e}")
    walked[name] = entries
    files = sum(1 for e in entries.values() if e.is_file)
    dirs = sum(1 for e in entries.values() if e.is_dir)
    unique = list(dict.fromkeys(problems))
    return Check(f"view {name}", not unique, f"{files} files, {dirs} directories read", unique)


def _check_shared(walked: dict[str, dict[str, Stat]]) -> Check | None:
    iso = next((walked[n] for n in ("rr", "joliet", "iso9660") if n in walked), None)
    fats = [walked[n] for n in walked if n.startswith("fat")]
    if iso is None or not fats:
        return None
    fat: dict[str, Stat] = {}
    for f in fats:
        fat.update(f)
    both = [(p, e, fat[p]) for p, e in iso.items() if e.is_file and p in fat and fat[p].is_file and e.size]
    same = [p for p, a, b in both if a.extents == b.extents]
    if not same:
        return Check("shared files", True, f"{len(both)} files in both the ISO and the FAT view; none share "
                     "their bytes (not a sysexport hybrid: nothing to compare)")
    problems = [f"{p}: ISO extents {list(a.extents)} but FAT extents {list(b.extents)}"
                for p, a, b in both if a.size == b.size and a.extents != b.extents]
    return Check("shared files", not problems, f"{len(same)} of {len(both)} files in both views share "
                 "one extent", problems)
