"""Construct declarations of ECMA-119 (ISO 9660) and El Torito structures.

Field names follow the standards; each comment gives the byte position (BP, 1-based as in
ECMA-119, or a 0-based offset for El Torito) and the section that defines the field.
Declarations only: the values that fill them are in :mod:`.enums`, the logic in
names.py, eltorito.py, layout.py, reader.py and writer.py.  The directory record and the
path table record are also packed and parsed in bulk by the precompiled ``struct.Struct``
declared beside them; :data:`FAST_CODECS` at the end lists every such fast copy with what
the property test (tests/test_fastcodecs.py) checks it against.
"""
from __future__ import annotations

import random
import struct
from typing import TypedDict

from construct import (Adapter, Bytes, Const, Construct, If, Int8sb, Int8ul, Int16ub, Int16ul, Int32ub, Int32ul,
                       Struct, ValidationError, this)

from .._fastcodec import FastCodec, date7_fields
from .enums import (USER_FLAGS, VD_TYPE_BOOT_RECORD, VD_TYPE_PRIMARY, VD_TYPE_SUPPLEMENTARY,  # noqa: F401
                    VD_TYPE_TERMINATOR)

SECTOR_BYTES = 2048
"""Logical block size used throughout (ECMA-119 6.1.2; the only size readers accept)."""
FIRST_DESCRIPTOR_LBA = 16
"""ECMA-119 6.2.1, 6.7.1: logical sectors 0..15 are the system area; the volume descriptor set starts at 16."""
SYSTEM_AREA_BYTES = FIRST_DESCRIPTOR_LBA * SECTOR_BYTES
"""ECMA-119 6.2.1: the system area, not recorded by ISO 9660 (the hybrid's MBR and GPT live there)."""
STANDARD_IDENTIFIER = b"CD001"
"""ECMA-119 8.1.2: bytes 2-6 of every volume descriptor."""


class _BothEndian(Adapter):
    """ECMA-119 7.2.3 / 7.3.3: the same number little-endian then big-endian."""

    def _decode(self, obj, context, path):
        if obj.le != obj.be:
            raise ValidationError(f"both-endian field (ECMA-119 7.2.3, 7.3.3): LE {obj.le} != BE {obj.be}",
                                  path=path)
        return obj.le

    def _encode(self, obj, context, path):
        return {"le": obj, "be": obj}


Int16lsbmsb = _BothEndian(Struct("le" / Int16ul, "be" / Int16ub))   # ECMA-119 7.2.3
Int32lsbmsb = _BothEndian(Struct("le" / Int32ul, "be" / Int32ub))   # ECMA-119 7.3.3

# ECMA-119 8.4.26.1: date and time as 16 digits plus a signed offset from GMT in 15 minute units.
DecDatetime = Struct(
    "digits" / Bytes(16),            # BP 1-16: YYYYMMDDHHMMSScc (all '0' when not specified)
    "offset_from_gmt" / Int8sb,      # BP 17
)

# ECMA-119 9.1.5: recording date and time of a directory record (7 bytes).
DirDatetime = Struct(
    "years_since_1900" / Int8ul,     # BP 1
    "month" / Int8ul,                # BP 2
    "day" / Int8ul,                  # BP 3
    "hour" / Int8ul,                 # BP 4
    "minute" / Int8ul,               # BP 5
    "second" / Int8ul,               # BP 6
    "offset_from_gmt" / Int8sb,      # BP 7 (15 minute units)
)

# ECMA-119 9.1: directory record; BP 1-33 also as a struct for the hot paths (layout.py packs,
# _fastread.py parses), the big-endian halves of the both-endian fields and the date as bytes.
DIRECTORY_RECORD_HEAD = struct.Struct("<BBI4sI4s7sBBBH2sB")
DIRECTORY_RECORD_FIXED_BYTES = DIRECTORY_RECORD_HEAD.size
DIRECTORY_RECORD_MIDDLE = struct.Struct("<I4sI4s14s")
"""BP 3-32 of a record: extent and data length (both-endian, the big-endian halves given as
bytes), then BP 19-32 (recording date, flags, unit size, gap size, volume sequence number),
which many records share, as one 14-byte field (dirbytes.py: the same in both trees)."""
"""33: the fixed part of a directory record, up to the file identifier (ECMA-119 9.1)."""
MAX_RECORD_BYTES = 254
"""9.1.1: a record holds at most 255 bytes, and its length is even (9.1.12, 9.1.13)."""
DirectoryRecord = Struct(
    "length_of_directory_record" / Int8ul,          # BP 1 (9.1.1)
    "extended_attribute_record_length" / Int8ul,    # BP 2 (9.1.2)
    "location_of_extent" / Int32lsbmsb,             # BP 3-10 (9.1.3)
    "data_length" / Int32lsbmsb,                    # BP 11-18 (9.1.4)
    "recording_date_and_time" / DirDatetime,        # BP 19-25 (9.1.5)
    "file_flags" / Int8ul,                          # BP 26 (9.1.6): FLAG_* in enums.py
    "file_unit_size" / Int8ul,                      # BP 27 (9.1.7)
    "interleave_gap_size" / Int8ul,                 # BP 28 (9.1.8)
    "volume_sequence_number" / Int16lsbmsb,         # BP 29-32 (9.1.9)
    "length_of_file_identifier" / Int8ul,           # BP 33 (9.1.10)
    "file_identifier" / Bytes(this.length_of_file_identifier),          # BP 34.. (9.1.11)
    "padding_field" / If(this.length_of_file_identifier % 2 == 0, Const(b"\x00")),  # 9.1.12
    "system_use" / Bytes(lambda ctx: ctx.length_of_directory_record - DIRECTORY_RECORD_FIXED_BYTES
                         - ctx.length_of_file_identifier - (1 - ctx.length_of_file_identifier % 2)),  # 9.1.13
)


def _path_table_record(int16: Construct, int32: Construct) -> Construct:
    # ECMA-119 9.4: path table record; the L table uses little-endian, the M table big-endian.
    return Struct(
        "length_of_directory_identifier" / Int8ul,   # BP 1 (9.4.1)
        "extended_attribute_record_length" / Int8ul,  # BP 2 (9.4.2)
        "location_of_extent" / int32,                # BP 3-6 (9.4.3)
        "parent_directory_number" / int16,           # BP 7-8 (9.4.4)
        "directory_identifier" / Bytes(this.length_of_directory_identifier),   # BP 9.. (9.4.5)
        "padding_field" / If(this.length_of_directory_identifier % 2 == 1, Const(b"\x00")),  # 9.4.6
    )


PathTableRecordL = _path_table_record(Int16ul, Int32ul)
PathTableRecordM = _path_table_record(Int16ub, Int32ub)
PATH_TABLE_RECORD_HEAD_L = struct.Struct("<BBIH")   # BP 1-8 of PathTableRecordL (hot path, layout.py)
PATH_TABLE_RECORD_HEAD_M = struct.Struct(">BBIH")   # BP 1-8 of PathTableRecordM
PATH_TABLE_RECORD_FIXED_BYTES = PATH_TABLE_RECORD_HEAD_L.size
"""8: the fixed part of a path table record, up to the directory identifier (ECMA-119 9.4)."""

# ECMA-119 8.4 (primary) and 8.5 (supplementary): one layout, 2048 bytes.
VolumeDescriptor = Struct(
    "volume_descriptor_type" / Int8ul,               # BP 1
    "standard_identifier" / Const(STANDARD_IDENTIFIER),  # BP 2-6
    "volume_descriptor_version" / Int8ul,            # BP 7 (1)
    "volume_flags" / Int8ul,                         # BP 8 (SVD 8.5.3; unused in PVD)
    "system_identifier" / Bytes(32),                 # BP 9-40
    "volume_identifier" / Bytes(32),                 # BP 41-72
    "unused_73" / Const(bytes(8)),                   # BP 73-80
    "volume_space_size" / Int32lsbmsb,               # BP 81-88
    "escape_sequences" / Bytes(32),                  # BP 89-120 (SVD 8.5.6; Joliet "%/E")
    "volume_set_size" / Int16lsbmsb,                 # BP 121-124
    "volume_sequence_number" / Int16lsbmsb,          # BP 125-128
    "logical_block_size" / Int16lsbmsb,              # BP 129-132
    "path_table_size" / Int32lsbmsb,                 # BP 133-140
    "location_of_type_l_path_table" / Int32ul,       # BP 141-144
    "location_of_optional_type_l_path_table" / Int32ul,  # BP 145-148
    "location_of_type_m_path_table" / Int32ub,       # BP 149-152
    "location_of_optional_type_m_path_table" / Int32ub,  # BP 153-156
    "directory_record_for_root_directory" / Bytes(34),   # BP 157-190
    "volume_set_identifier" / Bytes(128),            # BP 191-318
    "publisher_identifier" / Bytes(128),             # BP 319-446
    "data_preparer_identifier" / Bytes(128),         # BP 447-574
    "application_identifier" / Bytes(128),           # BP 575-702
    "copyright_file_identifier" / Bytes(37),         # BP 703-739
    "abstract_file_identifier" / Bytes(37),          # BP 740-776
    "bibliographic_file_identifier" / Bytes(37),     # BP 777-813
    "volume_creation_date_and_time" / DecDatetime,   # BP 814-830
    "volume_modification_date_and_time" / DecDatetime,  # BP 831-847
    "volume_expiration_date_and_time" / DecDatetime,    # BP 848-864
    "volume_effective_date_and_time" / DecDatetime,     # BP 865-881
    "file_structure_version" / Int8ul,               # BP 882 (1)
    "reserved_883" / Const(b"\x00"),                 # BP 883
    "application_use" / Bytes(512),                  # BP 884-1395
    "reserved_1396" / Const(bytes(653)),             # BP 1396-2048
)

# ECMA-119 8.2 with El Torito 1.0 section 2.0 (boot record volume descriptor at sector 17).
BootRecordDescriptor = Struct(
    "boot_record_indicator" / Const(VD_TYPE_BOOT_RECORD, Int8ul),  # offset 0
    "iso9660_identifier" / Const(STANDARD_IDENTIFIER),  # offset 1-5
    "descriptor_version" / Const(1, Int8ul),         # offset 6
    "boot_system_identifier" / Bytes(32),            # offset 7-0x26: enums.EL_TORITO_ID + zeros
    "boot_identifier" / Bytes(32),                   # offset 0x27-0x46 (unused, zeros)
    "boot_catalog_pointer" / Int32ul,                # offset 0x47-0x4A: LBA of the catalog
    "unused" / Const(bytes(1973)),                   # offset 0x4B-0x7FF
)

# ECMA-119 8.3: volume descriptor set terminator.
TerminatorDescriptor = Struct(
    "volume_descriptor_type" / Const(VD_TYPE_TERMINATOR, Int8ul),  # BP 1
    "standard_identifier" / Const(STANDARD_IDENTIFIER),  # BP 2-6
    "volume_descriptor_version" / Const(1, Int8ul),      # BP 7
    "reserved" / Const(bytes(2041)),                     # BP 8-2048
)

# El Torito 1.0, 2.1: validation entry (first 32 bytes of the boot catalog).
VALIDATION_CHECKSUM_OFFSET = 0x1C
ValidationEntry = Struct(
    "header_id" / Const(1, Int8ul),                  # offset 0
    "platform_id" / Int8ul,                          # offset 1: enums.BOOT_*
    "reserved" / Const(bytes(2)),                    # offset 2-3
    "id_string" / Bytes(24),                         # offset 4-0x1B (manufacturer)
    "checksum" / Int16ul,                            # offset 0x1C-0x1D: all 16 words sum to 0
    "key_55" / Const(0x55, Int8ul),                  # offset 0x1E
    "key_aa" / Const(0xAA, Int8ul),                  # offset 0x1F
)

# El Torito 1.0, 2.2: initial/default entry.
InitialEntry = Struct(
    "boot_indicator" / Int8ul,                       # offset 0: enums.BOOTABLE or NOT_BOOTABLE
    "boot_media_type" / Int8ul,                      # offset 1: emulation, enums.EMU_*
    "load_segment" / Int16ul,                        # offset 2-3 (0: 0x7C0)
    "system_type" / Int8ul,                          # offset 4 (partition type for HDD emulation)
    "unused_5" / Const(b"\x00"),                     # offset 5
    "sector_count" / Int16ul,                        # offset 6-7: virtual 512-byte sectors to load
    "load_rba" / Int32ul,                            # offset 8-0xB: LBA of the boot image
    "unused_c" / Const(bytes(20)),                   # offset 0xC-0x1F
)

# El Torito 1.0, 2.3: section header entry.
SECTION_ID_BYTES = 28
SectionHeader = Struct(
    "header_indicator" / Int8ul,                     # offset 0: enums.HEADER_MORE or HEADER_LAST
    "platform_id" / Int8ul,                          # offset 1: enums.BOOT_*
    "number_of_section_entries" / Int16ul,           # offset 2-3
    "id_string" / Bytes(SECTION_ID_BYTES),           # offset 4-0x1F
)

# El Torito 1.0, 2.4: section entry.
SectionEntry = Struct(
    "boot_indicator" / Int8ul,                       # offset 0
    "boot_media_type" / Int8ul,                      # offset 1
    "load_segment" / Int16ul,                        # offset 2-3
    "system_type" / Int8ul,                          # offset 4
    "unused_5" / Const(b"\x00"),                     # offset 5
    "sector_count" / Int16ul,                        # offset 6-7
    "load_rba" / Int32ul,                            # offset 8-0xB
    "selection_criteria_type" / Int8ul,              # offset 0xC
    "vendor_unique_selection_criteria" / Bytes(19),  # offset 0xD-0x1F
)

CATALOG_ENTRY_BYTES = InitialEntry.sizeof()
"""32: every boot catalog entry (validation, initial, section header, section entry) (El Torito 2.0)."""

# Boot info table (mkisofs convention, used by isolinux and GRUB's cdboot): 56 bytes at
# offset 8 of a no-emulation boot image.
BOOT_INFO_TABLE_OFFSET = 8
BOOT_INFO_CHECKSUM_START = 64
BootInfoTable = Struct(
    "bi_pvd" / Int32ul,                              # offset 8: LBA of the primary volume descriptor
    "bi_file" / Int32ul,                             # offset 12: LBA of the boot file
    "bi_length" / Int32ul,                           # offset 16: boot file length in bytes
    "bi_csum" / Int32ul,                             # offset 20: sum of 32-bit LE words from byte 64
    "bi_reserved" / Const(bytes(40)),                # offset 24-63
)


# --- Fast copies: every hand-written codec of the declarations above ---------------------
# tests/test_fastcodecs.py runs each entry on many random samples (docs/architecture.md).

class DirRecordSample(TypedDict):
    """The values of one directory record as the writer's packers take them."""

    ident: bytes
    lba: int
    data_length: int
    recorded: bytes             # the 7-byte date (ECMA-119 9.1.5), as layout.dir_datetime gives it
    flags: int
    system_use: bytes


def _dir_record_sample(rng: random.Random) -> DirRecordSample:
    ident = _ident(rng)
    room = MAX_RECORD_BYTES - DIRECTORY_RECORD_FIXED_BYTES - len(ident) - (1 - len(ident) % 2)
    recorded = bytes((rng.randrange(256), rng.randrange(1, 13), rng.randrange(1, 32), rng.randrange(24),
                      rng.randrange(60), rng.randrange(60), rng.randrange(256)))
    return DirRecordSample(ident=ident, lba=rng.getrandbits(32), data_length=rng.getrandbits(32),
                           recorded=recorded, flags=rng.randrange(256),
                           system_use=rng.randbytes(rng.randrange(room + 1)))


def _ident(rng: random.Random) -> bytes:
    """A file identifier as either hierarchy records it: '.', '..', d-characters, UCS-2."""
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice([b"\x00", b"\x01"])
    if kind == 1:
        return bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.;") for _ in range(rng.randrange(1, 38)))
    return "".join(chr(rng.randrange(0x20, 0xD800)) for _ in range(rng.randrange(1, 65))).encode("utf-16-be")


def _dir_record_obj(s: DirRecordSample) -> dict[str, object]:
    """The DirectoryRecord fields of a sample: a record padded to an even length (9.1.13)."""
    base = DIRECTORY_RECORD_FIXED_BYTES + len(s["ident"]) + (1 - len(s["ident"]) % 2)
    su = s["system_use"] + bytes((base + len(s["system_use"])) % 2)
    return dict(length_of_directory_record=base + len(su), extended_attribute_record_length=0,
                location_of_extent=s["lba"], data_length=s["data_length"],
                recording_date_and_time=DirDatetime.parse(s["recorded"]), file_flags=s["flags"],
                file_unit_size=0, interleave_gap_size=0, volume_sequence_number=1,
                length_of_file_identifier=len(s["ident"]), file_identifier=s["ident"], padding_field=None,
                system_use=su)


def _pack_record(s: DirRecordSample) -> bytes:
    from .layout import pack_record
    return pack_record(s["ident"], s["lba"], s["data_length"], s["recorded"], s["flags"], s["system_use"])


def _any_dir_record(rng: random.Random) -> dict[str, object]:
    """Every field random (what a reader may meet), the record still well formed."""
    ident = rng.randbytes(rng.randrange(1, 40))
    pad = 1 - len(ident) % 2
    su = rng.randbytes(rng.randrange(256 - DIRECTORY_RECORD_FIXED_BYTES - len(ident) - pad))
    return dict(length_of_directory_record=DIRECTORY_RECORD_FIXED_BYTES + len(ident) + pad + len(su),
                extended_attribute_record_length=rng.randrange(256), location_of_extent=rng.getrandbits(32),
                data_length=rng.getrandbits(32),
                recording_date_and_time=dict(years_since_1900=rng.randrange(256), month=rng.randrange(13),
                                             day=rng.randrange(32), hour=rng.randrange(24),
                                             minute=rng.randrange(60), second=rng.randrange(60),
                                             offset_from_gmt=rng.randrange(-128, 128)),
                file_flags=rng.randrange(256), file_unit_size=rng.randrange(256),
                interleave_gap_size=rng.randrange(256), volume_sequence_number=rng.getrandbits(16),
                length_of_file_identifier=len(ident), file_identifier=ident, padding_field=None, system_use=su)


def _parse_record(data: bytes) -> object:
    from ._fastread import parse_directory_record
    return parse_directory_record(data)


class FileRecordSample(TypedDict):
    """A regular file's record as layout.directory_bytes makes it on its fast path."""

    ident: bytes
    name: bytes                 # the Rock Ridge (NM) name
    rock_ridge: str | None      # None (the Joliet tree, or no Rock Ridge), "1.09" or "1.12"
    mode: int
    nlink: int
    inode: int
    uid: int
    gid: int
    mtime: float | None
    atime: float | None
    ctime: float | None
    default_time: int
    lba: int
    size_bytes: int
    flags: int


_TIMES = (-2_500_000_000, -2_208_988_800, -1, 0, 1_700_000_000, 5_992_300_799, 6_000_000_000)


def _time(rng: random.Random) -> float | None:
    pick = rng.randrange(6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice(_TIMES)
    if pick == 2:
        return rng.randrange(-2_300_000_000, 6_100_000_000) + rng.random()
    return rng.randrange(-2_300_000_000, 6_100_000_000)


def _file_record_sample(rng: random.Random) -> FileRecordSample:
    version = rng.choice([None, "1.09", "1.12"])
    ident = _ident(rng)
    base = DIRECTORY_RECORD_FIXED_BYTES + len(ident) + (1 - len(ident) % 2)
    fixed = {None: 0, "1.09": 5 + 36 + 5 + 26, "1.12": 44 + 5 + 26}[version]   # RR, PX, NM header, TF
    longest = max(1, min(250, MAX_RECORD_BYTES - base - fixed))
    name = bytes(rng.choice(b"abc.XYZ-_ 019~\x01\x7f\x80\xc3\xa9\xff") for _ in range(rng.randrange(1, longest + 1)))
    if name in (b".", b".."):
        name = b"_"
    return FileRecordSample(
        ident=ident, name=name, rock_ridge=version, mode=0o100000 | rng.randrange(0o10000),
        nlink=rng.randrange(1, 1 << 32), inode=rng.getrandbits(32), uid=rng.getrandbits(32),
        gid=rng.getrandbits(32), mtime=_time(rng), atime=_time(rng), ctime=_time(rng),
        default_time=rng.choice(_TIMES), lba=rng.randrange(SYSTEM_AREA_BYTES // SECTOR_BYTES, 1 << 31),
        size_bytes=rng.choice([0, 1, 2048, rng.randrange(0xFFFFF801)]), flags=rng.randrange(USER_FLAGS + 1) & USER_FLAGS)


def _file_record_obj(s: FileRecordSample) -> dict[str, object]:
    """The record built from the declarations alone: DirectoryRecord, its Rock Ridge entries
    from _rrstructs (RRIP 1.12 4.1: [RR (1.09)], PX, NM, TF with modify, access, attributes)."""
    from . import _rrstructs as R
    m = s["default_time"] if s["mtime"] is None else s["mtime"]
    su = b""
    if s["rock_ridge"] is not None:
        stamps = [date7_fields(int(m // 1) if t is None else int(t // 1)) | {"gmt_offset": 0}
                  for t in (s["mtime"], s["atime"], s["ctime"])]
        su = b"".join((
            R.RR.build(dict(flags=R.RR_FLAG_PX | R.RR_FLAG_NM | R.RR_FLAG_TF)) if s["rock_ridge"] == "1.09" else b"",
            R.PX.build(dict(file_mode=s["mode"], file_links=s["nlink"], file_user_id=s["uid"],
                            file_group_id=s["gid"],
                            file_serial_number=s["inode"] if s["rock_ridge"] == "1.12" else None)),
            R.NM.build(dict(flags=0, name_content=s["name"])),
            R.TF.build(dict(flags=R.TF_MODIFY | R.TF_ACCESS | R.TF_ATTRIBUTES, time_stamps=stamps))))
    lba = s["lba"] if s["size_bytes"] else 0
    return _dir_record_obj(DirRecordSample(
        ident=s["ident"], lba=lba, data_length=s["size_bytes"],
        recorded=bytes(date7_fields(int(m)).values()) + b"\x00", flags=s["flags"], system_use=su))


def _file_record(s: FileRecordSample) -> tuple[bytes, int]:
    """The record dirbytes.directory_bytes writes for the sample, and its length as
    dirbytes.size_directory planned it (the growth of the directory's records).  A first
    file with the same attributes but another name and serial number fills the cache of
    shared Rock Ridge prefixes the second one uses."""
    from ..extent import Extent
    from ..fileinfo import FileInfo
    from ..tree import Node
    from . import dirbytes, layout, rockridge
    dir_info = FileInfo(name="d", mode=0o40755)
    rr_mod = None if s["rock_ridge"] is None else rockridge
    version = s["rock_ridge"] or "1.09"
    used = []
    for files in (((b"first", s["inode"] ^ 1, b"A"),),
                  ((b"first", s["inode"] ^ 1, b"A"), (s["name"], s["inode"], s["ident"]))):
        dir_node: Node = Node(dir_info, None)
        children = dir_node.children
        assert children is not None
        for name, inode, _ in files:
            text = name.decode("utf-8", "surrogateescape")
            info = FileInfo(name="d/" + text, mode=s["mode"], uid=s["uid"], gid=s["gid"], mtime=s["mtime"],
                            atime=s["atime"], ctime=s["ctime"], ISO9660_flags=s["flags"])
            node: Node = Node(info, dir_node)
            node.w = layout.Payload(info, s["size_bytes"], Extent(s["lba"] * SECTOR_BYTES, s["size_bytes"]),
                                    nlink=s["nlink"], inode=inode)
            children[text] = node
        d = layout.DirOut(dir_info, None, b"\x00", 1, node=dir_node, entries=list(children),
                          idents=b"".join(f[2] for f in files), ident_lens=bytes(len(f[2]) for f in files))
        d.extent = Extent(0, dirbytes.size_directory(d, rr_mod, version, s["default_time"]))
        data = dirbytes.directory_bytes(d, rr_mod, version, s["default_time"], {})
        used.append(d.used_bytes)
    return data[used[0]:used[1]], used[1] - used[0]


def _path_table_sample(rng: random.Random) -> tuple[bytes, int, int]:
    return _ident(rng), rng.getrandbits(32), rng.randrange(1, 1 << 16)


def _path_table_obj(s: tuple[bytes, int, int]) -> dict[str, object]:
    ident, lba, parent = s
    return dict(length_of_directory_identifier=len(ident), extended_attribute_record_length=0,
                location_of_extent=lba, parent_directory_number=parent, directory_identifier=ident,
                padding_field=None)


def _path_table_codec(big_endian: bool) -> FastCodec[tuple[bytes, int, int]]:
    def encode(s: tuple[bytes, int, int]) -> bytes:
        from .layout import path_table_record
        return path_table_record(*s, big_endian=big_endian)

    declaration = PathTableRecordM if big_endian else PathTableRecordL
    return FastCodec(f"PathTableRecord{'M' if big_endian else 'L'}: layout.path_table_record",
                     lambda _: declaration, _path_table_sample, _path_table_obj, encode)


FAST_CODECS = (
    FastCodec("DirectoryRecord: layout.pack_record (every record but plain files')",
              lambda _: DirectoryRecord, _dir_record_sample, _dir_record_obj, _pack_record),
    FastCodec("DirectoryRecord: the plain-file path of dirbytes.directory_bytes, Rock Ridge spliced, "
              "sizes from dirbytes.size_directory", lambda _: DirectoryRecord, _file_record_sample,
              _file_record_obj, lambda s: _file_record(s)[0], size=lambda s: _file_record(s)[1]),
    FastCodec("DirectoryRecord: _fastread.parse_directory_record (reader)",
              lambda _: DirectoryRecord, _any_dir_record, decode=_parse_record),
    _path_table_codec(False),
    _path_table_codec(True),
)
"""Each hand-written codec of a declaration in this module, with its samples (docs/architecture.md)."""
