"""The sessions of a multi-session ISO 9660 image file.

A disc has a table of contents; an image file has none, so the sessions are found the way
libisoburn emulates a TOC for overwritable media and image files (``isoburn_emulate_toc``
in libisoburn/burn_wrap.c, what ``xorriso -indev IMG -toc`` reports):

* The descriptor set at LBA 16 gives the whole image's size.  xorriso, appending a session
  to an image file (``xorriso -dev IMG ... -commit``), writes every session at a 32-block
  boundary starting at LBA 32, each with its own descriptor set 16 blocks after its start
  and a volume space size that counts that session's blocks only, and then overwrites the
  first 64 KiB with a copy of the newest session's descriptors, so that a reader which
  knows nothing of sessions sees the newest tree.
* So the chain is read from LBA 32: a session, then the next one at its end rounded up
  to 32 blocks (or 16 blocks earlier, where growisofs' 16-block alignment puts it), until
  the image size is reached.  A broken chain after one session or more keeps the sessions
  found and adds the LBA 0 copy as the newest, as libisoburn does.

We check one thing more than libisoburn: the copy at LBA 0 must name the same root
directory as the newest session of the chain (an ISO that merely holds another ISO image
file at LBA 32 is not a multi-session image).

When there is no such chain the descriptor set at LBA 16 is the first session, and the
blocks after its end are scanned for more descriptor sets (any block, at most
``MAX_SCAN_GAP_BLOCKS`` past the previous session's end; a set counts when its root
directory lies inside the session it describes): what mkisofs ``-C``/``-M`` sessions
written where a CD's next track starts look like in a copy of the disc (util-linux's
iso-multi-0-174-348-genisoimage test image has sessions at LBA 0, 174 and 348).  xorriso
reports only the first of those; the Linux kernel mounts the one at LBA 16 of a file
(``session=`` needs a CD drive's TOC; ``sbsector=N`` mounts the others).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ._structs import FIRST_DESCRIPTOR_LBA, SECTOR_BYTES, STANDARD_IDENTIFIER
from .enums import VD_TYPE_PRIMARY

HEADER_BLOCKS = 32
"""libisoburn's ``target_iso_head_size`` (64 KiB) and its session alignment (Libisoburn_nwa_alignemenT)."""
GROWISOFS_ALIGN_BLOCKS = 16
MAX_SCAN_GAP_BLOCKS = 16384
"""How far past a session's end another descriptor set is looked for (32 MiB: more than a
CD's lead-out and lead-in between sessions, 11,400 blocks at most)."""
MAX_SESSIONS = 1000
SCAN_CHUNK_BLOCKS = 64
_PVD_HEAD = bytes((VD_TYPE_PRIMARY,)) + STANDARD_IDENTIFIER

ROOT_RECORD_OFFSET = 156
VSS_OFFSET = 80


@dataclass(frozen=True)
class Session:
    """One session: its descriptor set lies at ``start_lba + 16`` (LBAs of the volume);
    ``size_blocks`` is the volume space size its primary descriptor records (the session's
    own blocks, or up to its end for single-session writers: ``end_lba`` assumes the
    former only where the session does not start at 0).  ``index`` counts from 0,
    ``number`` from 1 (xorriso's ``Idx``); ``found_by`` says how it was found: "single",
    "emulated TOC" (libisoburn's chain), "LBA 0 copy" (the header copy ending a broken
    chain) or "scan"."""

    index: int
    start_lba: int
    size_blocks: int
    volume_identifier: str
    found_by: str

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def descriptor_lba(self) -> int:
        return self.start_lba + FIRST_DESCRIPTOR_LBA

    @property
    def end_lba(self) -> int:
        return self.start_lba + self.size_blocks


@dataclass(frozen=True)
class _Head:
    vss: int
    root_lba: int
    volume_identifier: str


def _head(read: Callable[[int], bytes | None], lba: int) -> _Head | None:
    """The primary volume descriptor at ``lba`` (libisoburn's isoburn_read_iso_head_parse:
    type 1 and "CD001"), or None."""
    raw = read(lba)
    if raw is None or len(raw) < SECTOR_BYTES or raw[0] != VD_TYPE_PRIMARY or raw[1:6] != STANDARD_IDENTIFIER:
        return None
    vss = int.from_bytes(raw[VSS_OFFSET:VSS_OFFSET + 4], "little")
    root_lba = int.from_bytes(raw[ROOT_RECORD_OFFSET + 2:ROOT_RECORD_OFFSET + 6], "little")
    volid = raw[40:72].decode("latin-1").rstrip(" \x00")
    return _Head(vss, root_lba, volid)


def find_sessions(read: Callable[[int], bytes | None], image_blocks: int,
                  note: Callable[[str], None] | None = None,
                  read_many: Callable[[int, int], bytes] | None = None) -> list[Session]:
    """The sessions of the volume whose block ``lba`` ``read(lba)`` gives (None past the
    image's end; ``read_many(lba, count)`` up to ``count`` blocks at once, for the scan);
    ``image_blocks`` is the image's size from the volume's start.  Empty when there is no
    primary descriptor at LBA 16.  ``note`` receives what is odd."""
    def say(msg: str) -> None:
        if note is not None:
            note(msg)

    first = _head(read, FIRST_DESCRIPTOR_LBA)
    if first is None:
        return []
    chain = _emulated_toc(read, image_blocks, first, say)
    if chain:
        return chain
    sessions = [Session(0, 0, first.vss, first.volume_identifier, "single")]
    sessions.extend(_scan(read, image_blocks, first.vss, say, read_many))
    return sessions


def _emulated_toc(read: Callable[[int], bytes | None], image_blocks: int, first: _Head,
                  say: Callable[[str], None]) -> list[Session]:
    image_size = first.vss
    lba = HEADER_BLOCKS
    found: list[tuple[int, int, _Head]] = []
    probe_minus_16 = False
    while lba < image_size and len(found) < MAX_SESSIONS:
        head = None
        at = lba
        if probe_minus_16:
            head = _head(read, lba)           # the first half of the 64 KiB at lba: a session 16 blocks earlier
            if head is not None:
                at = lba - GROWISOFS_ALIGN_BLOCKS
        if head is None:
            head = _head(read, lba + FIRST_DESCRIPTOR_LBA)
        if head is None or head.vss <= 0:
            if found:
                say(f"session headers: the chain is broken at session {len(found) + 1}, LBA {lba} (no "
                    f"descriptor set at LBA {lba + FIRST_DESCRIPTOR_LBA}); the copy at LBA 0 is taken as the "
                    "newest session, as libisoburn does")
                sessions = [Session(i, s, n, h.volume_identifier, "emulated TOC") for i, (s, n, h) in enumerate(found)]
                sessions.append(Session(len(found), 0, image_size, first.volume_identifier, "LBA 0 copy"))
                return sessions
            return []
        blocks = head.vss
        if at + blocks > image_blocks:
            say(f"session {len(found) + 1} at LBA {at}: {blocks} blocks, but the image ends at block {image_blocks}")
            blocks = max(1, image_blocks - at)
        found.append((at, blocks, head))
        lba = at + blocks
        growisofs_nwa = -(-lba // GROWISOFS_ALIGN_BLOCKS) * GROWISOFS_ALIGN_BLOCKS
        lba = -(-lba // HEADER_BLOCKS) * HEADER_BLOCKS
        probe_minus_16 = lba - growisofs_nwa == GROWISOFS_ALIGN_BLOCKS
    if not found:
        return []
    newest = found[-1][2]
    if newest.root_lba != first.root_lba:
        say(f"descriptor sets at LBA {', '.join(str(s + FIRST_DESCRIPTOR_LBA) for s, _, _ in found)} look like "
            f"appended sessions, but the header at LBA 16 names root directory block {first.root_lba}, not the "
            f"newest one's ({newest.root_lba}): read as a single session")
        return []
    return [Session(i, s, n, h.volume_identifier, "emulated TOC") for i, (s, n, h) in enumerate(found)]


def _scan(read: Callable[[int], bytes | None], image_blocks: int, end: int,
          say: Callable[[str], None], read_many: Callable[[int, int], bytes] | None = None) -> list[Session]:
    """Sessions after ``end``: the first block holding a primary descriptor whose root lies
    inside the session it describes, at any block (genisoimage -C puts a session where the
    previous one ended), at most MAX_SCAN_GAP_BLOCKS past the previous session's end."""
    out: list[Session] = []
    index = 1
    while len(out) < MAX_SESSIONS:
        first = max(end, 1) + FIRST_DESCRIPTOR_LBA            # a descriptor block of a session starting at end
        limit = min(image_blocks, end + FIRST_DESCRIPTOR_LBA + MAX_SCAN_GAP_BLOCKS)
        found = None
        block = first
        while block < limit and found is None:
            count = min(SCAN_CHUNK_BLOCKS, limit - block)
            chunk = read_many(block, count) if read_many is not None else \
                b"".join(read(block + i) or bytes(SECTOR_BYTES) for i in range(count))
            pos = chunk.find(_PVD_HEAD)
            while pos >= 0 and found is None:
                if pos % SECTOR_BYTES == 0:
                    lba = block + pos // SECTOR_BYTES - FIRST_DESCRIPTOR_LBA
                    head = _head(read, lba + FIRST_DESCRIPTOR_LBA)
                    if head is not None and head.vss > FIRST_DESCRIPTOR_LBA + 1 and \
                            lba + FIRST_DESCRIPTOR_LBA < head.root_lba < lba + head.vss:
                        found = (lba, head)
                pos = chunk.find(_PVD_HEAD, pos + 1)
            block += max(count, 1)
            if not chunk:
                break
        if found is None:
            return out
        lba, head = found
        blocks = head.vss
        if lba + blocks > image_blocks:
            say(f"session {index + 1} at LBA {lba}: {blocks} blocks, but the image ends at block {image_blocks}")
            blocks = image_blocks - lba
        out.append(Session(index, lba, blocks, head.volume_identifier, "scan"))
        index += 1
        end = lba + blocks
    return out
