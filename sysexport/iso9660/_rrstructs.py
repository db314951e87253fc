"""construct declarations of SUSP 1.12 and RRIP 1.09 / 1.12 system use entries.

Declarations only; the logic that fills them is in :mod:`rockridge`.  Byte offsets are
from the start of the entry.  Every entry starts with the common 4-byte header of
SUSP 1.12 section 4 ("System Use Entry"):

  BP 1-2  signature word, two ASCII characters
  BP 3    LEN: length of the whole entry in bytes, header included
  BP 4    entry version (1 for every entry declared here)

"Both-endian" 32-bit fields are ISO 9660 section 7.3.3 numbers: little-endian copy
first, big-endian copy second, 8 bytes in all.
"""
from __future__ import annotations

from construct import (
    Adapter, Array, Bytes, Computed, Const, FixedSized, GreedyRange, If, IfThenElse, Int8sl, Int8ul,
    Int32ub, Int32ul, Rebuild, Struct, ValidationError, len_, this,
)

SUSP_ENTRY_VERSION = 1  # SUSP 1.12 section 4, BP 4: every entry declared here is version 1
SUSP_HEADER_SIZE = 4    # SUSP 1.12 section 4: signature (2) + LEN (1) + version (1)


class _BothEndian32(Adapter):
    """ISO 9660 section 7.3.3: a 32-bit number recorded LE then BE (8 bytes)."""

    def _decode(self, obj, context, path):
        if obj.le != obj.be:
            raise ValidationError(f"both-endian field: LE {obj.le} != BE {obj.be}", path=path)
        return obj.le

    def _encode(self, obj, context, path):
        return {"le": obj, "be": obj}


BothEndian32 = _BothEndian32(Struct("le" / Int32ul, "be" / Int32ub))


def _header(signature: bytes, length) -> list:
    """The 4-byte entry header (SUSP 1.12 section 4) as construct fields."""
    return [
        "signature" / Const(signature),                 # BP 1-2
        "length" / length,                              # BP 3: LEN of the whole entry
        "version" / Const(SUSP_ENTRY_VERSION, Int8ul),  # BP 4
    ]


def _fixed(size: int):
    """A LEN byte that must hold `size` (fixed-length entries)."""
    return Const(size, Int8ul)


# --- SUSP 1.12 entries --------------------------------------------------------------

# SUSP 1.12 section 5.1: CE, continuation area. Always 28 bytes.
CE = Struct(
    *_header(b"CE", _fixed(28)),
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

# SUSP 1.12 section 5.5: ER, extensions reference.
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
# Flag bits say which RRIP entries this record carries (RR_FLAG_* in rockridge.py).
RR = Struct(
    *_header(b"RR", _fixed(5)),
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

# RRIP 1.12 section 4.1.3.1: one component record of an SL entry.
SL_COMPONENT = Struct(
    "flags" / Int8ul,                                 # BP 1: SL_COMPONENT_* bits
    "len" / Rebuild(Int8ul, len_(this.content)),      # BP 2: bytes of content
    "content" / Bytes(this.len),                      # BP 3 ...
)

# RRIP 1.12 section 4.1.3: SL, symbolic link.
SL = Struct(
    *_header(b"SL", Rebuild(Int8ul, lambda ctx: 5 + sum(2 + len(c["content"])
                                                        for c in ctx.component_area))),
    "flags" / Int8ul,  # BP 5: bit 0 CONTINUE (the link goes on in the next SL entry)
    "component_area" / FixedSized(this.length - 5, GreedyRange(SL_COMPONENT)),  # BP 6-LEN
)

# RRIP 1.12 section 4.1.4: NM, alternate name.
NM = Struct(
    *_header(b"NM", Rebuild(Int8ul, lambda ctx: 5 + len(ctx.name_content))),
    "flags" / Int8ul,                       # BP 5: NM_FLAG_* bits
    "name_content" / Bytes(this.length - 5),  # BP 6-LEN
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

TF_LONG_FORM = 0x80  # RRIP 1.12 section 4.1.6, flag bit 7: 17-byte dates instead of 7-byte


def _tf_count(ctx) -> int:
    """Number of time stamps recorded: one per flag bit 0-6 that is set."""
    return bin(ctx.flags & 0x7F).count("1")


# RRIP 1.12 section 4.1.6: TF, time stamps. The dates follow in the order of the flag
# bits: creation, modify, access, attributes, backup, expiration, effective.
TF = Struct(
    *_header(b"TF", Rebuild(Int8ul, lambda ctx: 5 + _tf_count(ctx)
                            * (17 if ctx.flags & TF_LONG_FORM else 7))),
    "flags" / Int8ul,  # BP 5: TF_* bits
    "count" / Computed(_tf_count),
    "time_stamps" / Array(this.count, IfThenElse(this.flags & TF_LONG_FORM, DATE17, DATE7)),
    # BP 6-LEN
)

# Every declared entry, by signature (the parser in rockridge.py dispatches on this).
ENTRY_STRUCTS = {
    "CE": CE, "PD": PD, "SP": SP, "ST": ST, "ER": ER,
    "RR": RR, "PX": PX, "PN": PN, "SL": SL, "NM": NM,
    "CL": CL, "PL": PL, "RE": RE, "TF": TF,
}
