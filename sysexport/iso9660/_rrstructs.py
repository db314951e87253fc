"""construct declarations of SUSP 1.12 and RRIP 1.09 / 1.12 system use entries.

Declarations and the constants that fill them (flag bits, entry lengths, the ER texts);
the logic is in :mod:`rockridge`.  Byte offsets are from the start of the entry.  Every
entry starts with the common 4-byte header of SUSP 1.12 section 4 ("System Use Entry"):

  BP 1-2  signature word, two ASCII characters
  BP 3    LEN: length of the whole entry in bytes, header included
  BP 4    entry version (1 for every entry declared here)

"Both-endian" 32-bit fields are ISO 9660 section 7.3.3 numbers: little-endian copy
first, big-endian copy second, 8 bytes in all.  rockridge.py builds PX, TF, NM, SL and RR
with byte operations and _fastread.py decodes them by slicing (they are made and read for
every file); :data:`FAST_CODECS` at the end ties each of those to its declaration.
"""
from __future__ import annotations

import random
from typing import TypedDict

from construct import (
    Array, Bytes, Computed, Const, Construct, Container, FixedSized, GreedyRange, If, IfThenElse, Int8sl, Int8ul,
    Int32ul, Rebuild, Struct, len_, this,
)

from .._fastcodec import FastCodec, date7_fields
from ._structs import Int32lsbmsb

SUSP_ENTRY_VERSION = 1  # SUSP 1.12 section 4, BP 4: every entry declared here is version 1
SUSP_HEADER_SIZE = 4    # SUSP 1.12 section 4: signature (2) + LEN (1) + version (1)
SUSP_ENTRY_MAX_BYTES = 255   # SUSP 1.12 section 4: LEN is one byte

BothEndian32 = Int32lsbmsb   # ISO 9660 section 7.3.3: a 32-bit number recorded LE then BE (8 bytes)


def _header(signature: bytes, length: Construct) -> list[Construct]:
    """The 4-byte entry header (SUSP 1.12 section 4) as construct fields."""
    return [
        "signature" / Const(signature),                 # BP 1-2
        "length" / length,                              # BP 3: LEN of the whole entry
        "version" / Const(SUSP_ENTRY_VERSION, Int8ul),  # BP 4
    ]


def _fixed(size: int) -> Construct:
    """A LEN byte that must hold `size` (fixed-length entries)."""
    return Const(size, Int8ul)


# --- SUSP 1.12 entries --------------------------------------------------------------

# SUSP 1.12 section 5.1: CE, continuation area. Always 28 bytes.
CE_LENGTH = 28
CE = Struct(
    *_header(b"CE", _fixed(CE_LENGTH)),
    "block_location" / BothEndian32,             # BP 5-12: LBA of the continuation area
    "offset" / BothEndian32,                     # BP 13-20: byte offset inside that block
    "length_of_continuation_area" / BothEndian32,  # BP 21-28: bytes of the area
)

# SUSP 1.12 section 5.2: PD, padding field.
PD = Struct(
    *_header(b"PD", Rebuild(Int8ul, lambda ctx: SUSP_HEADER_SIZE + len(ctx.padding_area))),
    "padding_area" / Bytes(this.length - SUSP_HEADER_SIZE),  # BP 5-LEN_PD
)

# SUSP 1.12 section 5.3: SP, system use sharing protocol indicator. First entry of the
# system use area of the root directory's first ("." ) record. 7 bytes.
SP_CHECK_BYTES = b"\xbe\xef"
SP = Struct(
    *_header(b"SP", _fixed(7)),
    "check_bytes" / Const(SP_CHECK_BYTES),  # BP 5-6: BEh EFh
    "len_skp" / Int8ul,                     # BP 7: bytes skipped in every system use area
)

# SUSP 1.12 section 5.4: ST, system use sharing protocol terminator. 4 bytes.
ST = Struct(*_header(b"ST", _fixed(4)))

# SUSP 1.12 section 5.5 / RRIP section 5: ER, extensions reference, announcing the extension.
# RRIP 1.09 (as written by mkisofs and xorriso -R):
ER_ID_109 = b"RRIP_1991A"
ER_DES_109 = b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
ER_SRC_109 = (b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER "
              b"IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.")
# RRIP 1.12 (IEEE P1282 draft), and the final standard's identifier (read, not written):
ER_ID_112 = b"IEEE_P1282"
ER_DES_112 = b"THE IEEE P1282 PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS."
ER_SRC_112 = b"PLEASE CONTACT THE IEEE STANDARDS DEPARTMENT, PISCATAWAY, NJ, USA FOR THE P1282 SPECIFICATION."
ER_ID_1282 = b"IEEE_1282"
ER_EXT_VERSION = 1  # both: extension version 1
ER = Struct(
    *_header(b"ER", Rebuild(Int8ul, lambda ctx: 8 + len(ctx.ext_id) + len(ctx.ext_des)
                            + len(ctx.ext_src))),
    "len_id" / Rebuild(Int8ul, len_(this.ext_id)),   # BP 5
    "len_des" / Rebuild(Int8ul, len_(this.ext_des)),  # BP 6
    "len_src" / Rebuild(Int8ul, len_(this.ext_src)),  # BP 7
    "ext_ver" / Int8ul,                               # BP 8: extension version
    "ext_id" / Bytes(this.len_id),                    # BP 9 ...
    "ext_des" / Bytes(this.len_des),                  # ... then the descriptor
    "ext_src" / Bytes(this.len_src),                  # ... then the source
)

# --- RRIP entries ------------------------------------------------------------------

# RRIP 1.09 (dropped from 1.12): RR, Rock Ridge extensions in-use indicator. 5 bytes.
# Flag bits say which RRIP entries this record carries.
RR_FLAG_PX = 0x01
RR_FLAG_PN = 0x02
RR_FLAG_SL = 0x04
RR_FLAG_NM = 0x08
RR_FLAG_CL = 0x10
RR_FLAG_PL = 0x20
RR_FLAG_RE = 0x40
RR_FLAG_TF = 0x80
RR_LENGTH = 5
RR = Struct(
    *_header(b"RR", _fixed(RR_LENGTH)),
    "flags" / Int8ul,  # BP 5
)

# RRIP 1.12 section 4.1.1 (1.09 section 4.1.1): PX, POSIX file attributes.
# 1.09: 36 bytes (no serial number); 1.12: 44 bytes with the file serial number.
PX_LENGTH_109 = 36
PX_LENGTH_112 = 44
PX = Struct(
    *_header(b"PX", Rebuild(Int8ul, lambda ctx: PX_LENGTH_112
                            if ctx.get("file_serial_number") is not None else PX_LENGTH_109)),
    "file_mode" / BothEndian32,              # BP 5-12: st_mode (type and permission bits)
    "file_links" / BothEndian32,             # BP 13-20: st_nlink
    "file_user_id" / BothEndian32,           # BP 21-28: st_uid
    "file_group_id" / BothEndian32,          # BP 29-36: st_gid
    "file_serial_number" / If(this.length >= PX_LENGTH_112, BothEndian32),  # BP 37-44 (1.12)
)

# RRIP 1.12 section 4.1.2: PN, POSIX device number. 20 bytes.
PN = Struct(
    *_header(b"PN", _fixed(20)),
    "dev_t_high" / BothEndian32,  # BP 5-12: high 32 bits of the device number
    "dev_t_low" / BothEndian32,   # BP 13-20: low 32 bits
)

# RRIP 1.12 section 4.1.3: SL entry flags (BP 5) and component record flags (4.1.3.1).
SL_FLAG_CONTINUE = 0x01        # the link continues in the next SL entry
SL_COMPONENT_CONTINUE = 0x01   # this component continues in the next component record
SL_COMPONENT_CURRENT = 0x02    # "."
SL_COMPONENT_PARENT = 0x04     # ".."
SL_COMPONENT_ROOT = 0x08       # "/" (the root directory)
SL_HEADER_SIZE = 5             # the entry header and the flags byte, before the component area

# RRIP 1.12 section 4.1.3.1: one component record of an SL entry.
SL_COMPONENT = Struct(
    "flags" / Int8ul,                                 # BP 1: SL_COMPONENT_* bits
    "len" / Rebuild(Int8ul, len_(this.content)),      # BP 2: bytes of content
    "content" / Bytes(this.len),                      # BP 3 ...
)

# RRIP 1.12 section 4.1.3: SL, symbolic link.
SL = Struct(
    *_header(b"SL", Rebuild(Int8ul, lambda ctx: SL_HEADER_SIZE + sum(2 + len(c["content"])
                                                                     for c in ctx.component_area))),
    "flags" / Int8ul,  # BP 5: SL_FLAG_CONTINUE (the link goes on in the next SL entry)
    "component_area" / FixedSized(this.length - SL_HEADER_SIZE, GreedyRange(SL_COMPONENT)),  # BP 6-LEN
)

# RRIP 1.12 section 4.1.4: NM, alternate name.
NM_FLAG_CONTINUE = 0x01
NM_FLAG_CURRENT = 0x02
NM_FLAG_PARENT = 0x04
NM_HEADER_SIZE = 5   # the entry header and the flags byte, before the name
NM = Struct(
    *_header(b"NM", Rebuild(Int8ul, lambda ctx: NM_HEADER_SIZE + len(ctx.name_content))),
    "flags" / Int8ul,                       # BP 5: NM_FLAG_* bits
    "name_content" / Bytes(this.length - NM_HEADER_SIZE),  # BP 6-LEN
)

# RRIP 1.12 section 4.1.5.1: CL, child link (in the placeholder of a relocated directory).
CL = Struct(
    *_header(b"CL", _fixed(12)),
    "location_of_child_directory" / BothEndian32,  # BP 5-12: LBA of the moved directory
)

# RRIP 1.12 section 4.1.5.2: PL, parent link (in the ".." record of a moved directory).
PL = Struct(
    *_header(b"PL", _fixed(12)),
    "location_of_parent_directory" / BothEndian32,  # BP 5-12: LBA of the real parent
)

# RRIP 1.12 section 4.1.5.3: RE, relocated directory (the moved directory's own record).
RE = Struct(*_header(b"RE", _fixed(4)))

# RRIP 1.12 section 4.1.6.1 / ISO 9660 section 9.1.5: 7-byte recording date and time.
DATE7 = Struct(
    "years_since_1900" / Int8ul,  # BP 1
    "month" / Int8ul,             # BP 2: 1-12
    "day" / Int8ul,               # BP 3: 1-31
    "hour" / Int8ul,              # BP 4: 0-23
    "minute" / Int8ul,            # BP 5: 0-59
    "second" / Int8ul,            # BP 6: 0-59
    "gmt_offset" / Int8sl,        # BP 7: offset from GMT in 15-minute units
)

# ISO 9660 section 8.4.26.1: 17-byte date and time (TF with LONG_FORM).
DATE17 = Struct(
    "year" / Bytes(4), "month" / Bytes(2), "day" / Bytes(2),  # BP 1-8: ASCII digits
    "hour" / Bytes(2), "minute" / Bytes(2), "second" / Bytes(2),  # BP 9-14
    "hundredths" / Bytes(2),  # BP 15-16
    "gmt_offset" / Int8sl,    # BP 17: 15-minute units
)

# RRIP 1.12 section 4.1.6: TF entry flags: which time stamps follow, in this order.
TF_CREATION = 0x01
TF_MODIFY = 0x02
TF_ACCESS = 0x04
TF_ATTRIBUTES = 0x08
TF_BACKUP = 0x10
TF_EXPIRATION = 0x20
TF_EFFECTIVE = 0x40
TF_LONG_FORM = 0x80  # flag bit 7: 17-byte dates instead of 7-byte
TF_HEADER_SIZE = 5   # the entry header and the flags byte, before the time stamps


def _tf_count(ctx: Container) -> int:
    """Number of time stamps recorded: one per flag bit 0-6 that is set."""
    return bin(ctx.flags & 0x7F).count("1")


# RRIP 1.12 section 4.1.6: TF, time stamps. The dates follow in the order of the flag
# bits: creation, modify, access, attributes, backup, expiration, effective.
TF = Struct(
    *_header(b"TF", Rebuild(Int8ul, lambda ctx: TF_HEADER_SIZE + _tf_count(ctx)
                            * (DATE17.sizeof() if ctx.flags & TF_LONG_FORM else DATE7.sizeof()))),
    "flags" / Int8ul,  # BP 5: TF_* bits
    "count" / Computed(_tf_count),
    "time_stamps" / Array(this.count, IfThenElse(this.flags & TF_LONG_FORM, DATE17, DATE7)),
    # BP 6-LEN
)

# --- zisofs (read side): a file stored compressed -------------------------------------------
# Not part of RRIP 1.12: the extension of mkzftree (zisofs-tools), the Linux kernel
# (fs/isofs/rock.h, struct RR_ZF_s) and libisofs ("pz", zisofs version 1).  The ZF entry
# marks a file whose recorded bytes are a zisofs file; reader.py and zisofs.py decode it.
ZF_LENGTH = 16
ZF_ALGORITHM_ZISOFS = b"pz"
ZF = Struct(
    *_header(b"ZF", _fixed(ZF_LENGTH)),
    "algorithm" / Bytes(2),                 # BP 5-6: b"pz" (zisofs)
    "header_size_div4" / Int8ul,            # BP 7: the zisofs file header's size in 4-byte words (4)
    "log2_block_size" / Int8ul,             # BP 8: log2 of the block size (15, 16 or 17)
    "uncompressed_size" / BothEndian32,     # BP 9-16: the file's size once decompressed
)

# The zisofs file (mkzftree): this header, then a table of (blocks + 1) 32-bit little-endian
# byte offsets from the start of the file, block i being the zlib stream between entries i
# and i + 1 (equal entries: a block of zeros).  Offsets from the start of the file.
ZISOFS_MAGIC = bytes.fromhex("37e45396c9dbd607")
ZISOFS_HEADER_BYTES = 16
ZISOFS_POINTER_BYTES = 4
ZISOFS_MIN_LOG2_BLOCK = 15
ZISOFS_MAX_LOG2_BLOCK = 17
ZisofsHeader = Struct(
    "magic" / Const(ZISOFS_MAGIC),          # offset 0-7
    "uncompressed_size" / Int32ul,          # offset 8-11
    "header_size_div4" / Int8ul,            # offset 12: 4 (16 bytes)
    "log2_block_size" / Int8ul,             # offset 13: 15, 16 or 17
    "reserved" / Bytes(2),                  # offset 14-15: zero
)

# Every declared entry, by signature (the parser in rockridge.py dispatches on this).
ENTRY_STRUCTS = {
    "CE": CE, "PD": PD, "SP": SP, "ST": ST, "ER": ER,
    "RR": RR, "PX": PX, "PN": PN, "SL": SL, "NM": NM,
    "CL": CL, "PL": PL, "RE": RE, "TF": TF,
}


# --- Fast copies: rockridge.py's builders and _fastread.py's decoders of these entries ---
# tests/test_fastcodecs.py runs each entry on many random samples (docs/architecture.md).

def _decode(data: bytes) -> object:
    from ._fastread import decode_su_entry
    return decode_su_entry(data)


class PXFields(TypedDict):
    """PX (RRIP 1.12 4.1.1): the numbers rockridge._px takes."""

    file_mode: int
    file_links: int
    file_user_id: int
    file_group_id: int
    file_serial_number: int | None


def _px_sample(rng: random.Random) -> PXFields:
    return PXFields(file_mode=rng.getrandbits(32), file_links=rng.getrandbits(32), file_user_id=rng.getrandbits(32),
                    file_group_id=rng.getrandbits(32), file_serial_number=rng.choice([None, rng.getrandbits(32)]))


def _px(s: PXFields) -> bytes:
    from .rockridge import _px
    return _px(s["file_mode"], s["file_links"], s["file_user_id"], s["file_group_id"], s["file_serial_number"])


class FlagsFields(TypedDict):
    flags: int


def _rr(s: FlagsFields) -> bytes:
    from .rockridge import _rr
    return _rr(s["flags"])


class NMFields(TypedDict):
    flags: int
    name_content: bytes


def _nm_sample(rng: random.Random) -> NMFields:
    return NMFields(flags=0, name_content=rng.randbytes(rng.randrange(1, SUSP_ENTRY_MAX_BYTES - NM_HEADER_SIZE + 1)))


def _nm(s: NMFields) -> bytes:
    from .rockridge import _nm
    return b"".join(_nm(s["name_content"]))


class SLComponent(TypedDict):
    flags: int
    content: bytes


class SLFields(TypedDict):
    flags: int
    component_area: list[SLComponent]


def _sl_sample(rng: random.Random) -> SLFields:
    room = SUSP_ENTRY_MAX_BYTES - SL_HEADER_SIZE
    components: list[SLComponent] = []
    while rng.randrange(4) and room >= 2:
        kind = rng.choice([0, SL_COMPONENT_CONTINUE, SL_COMPONENT_CURRENT, SL_COMPONENT_PARENT, SL_COMPONENT_ROOT])
        content = rng.randbytes(rng.randrange(min(room - 2, 60) + 1)) if kind in (0, SL_COMPONENT_CONTINUE) else b""
        components.append(SLComponent(flags=kind, content=content))
        room -= 2 + len(content)
    return SLFields(flags=rng.choice([0, SL_FLAG_CONTINUE]), component_area=components)


def _sl(s: SLFields) -> bytes:
    from .rockridge import _sl_entry
    return _sl_entry(s["flags"], [(c["flags"], c["content"]) for c in s["component_area"]])


class TFSample(TypedDict):
    """What rockridge._tf makes a TF entry of: a file's three times (RRIP 1.12 4.1.6)."""

    mtime: float | None
    atime: float | None
    ctime: float | None
    default_time: int


def _seconds(rng: random.Random) -> float | None:
    pick = rng.randrange(5)
    if pick == 0:
        return None
    value = rng.randrange(-3_000_000_000, 7_000_000_000)
    return value + rng.random() if pick == 1 else value


def _tf_sample(rng: random.Random) -> TFSample:
    return TFSample(mtime=_seconds(rng), atime=_seconds(rng), ctime=_seconds(rng),
                    default_time=rng.randrange(-3_000_000_000, 7_000_000_000))


def _tf_obj(s: TFSample) -> dict[str, object]:
    m = s["default_time"] if s["mtime"] is None else s["mtime"]
    stamps = [date7_fields(int((m if t is None else t) // 1)) | {"gmt_offset": 0}
              for t in (s["mtime"], s["atime"], s["ctime"])]
    return dict(flags=TF_MODIFY | TF_ACCESS | TF_ATTRIBUTES, time_stamps=stamps)


def _tf(s: TFSample) -> bytes:
    from ..fileinfo import FileInfo
    from .rockridge import _tf
    return _tf(FileInfo(name="f", mode=0o100644, mtime=s["mtime"], atime=s["atime"], ctime=s["ctime"]),
               s["default_time"])


FAST_CODECS = (
    FastCodec("PX: rockridge._px, _fastread.decode_su_entry", lambda _: PX, _px_sample, encode=_px,
              decode=_decode),
    FastCodec("RR: rockridge._rr, _fastread.decode_su_entry", lambda _: RR,
              lambda rng: FlagsFields(flags=rng.randrange(256)), encode=_rr, decode=_decode),
    FastCodec("NM: rockridge._nm, _fastread.decode_su_entry", lambda _: NM, _nm_sample, encode=_nm,
              decode=_decode),
    FastCodec("SL: rockridge._sl_entry, _fastread.decode_su_entry", lambda _: SL, _sl_sample, encode=_sl,
              decode=_decode),
    FastCodec("TF: rockridge._tf and date7, _fastread.decode_su_entry", lambda _: TF, _tf_sample, _tf_obj,
              encode=_tf, decode=_decode),
)
"""Each hand-written codec of an entry declared here, with its samples (docs/architecture.md)."""
