"""Construct declarations of ECMA-119 (ISO 9660) and El Torito structures.

Field names follow the standards; each comment gives the byte position (BP, 1-based as in
ECMA-119, or a 0-based offset for El Torito) and the section that defines the field.
Declarations only: the logic lives in names.py, eltorito.py, layout.py and writer.py.
The directory record and path table record are also packed by precompiled
``struct.Struct`` in layout.py (hot path); tests check both give the same bytes.
"""
from __future__ import annotations

from construct import (Adapter, Bytes, Const, If, Int8sb, Int8ul, Int16ub, Int16ul, Int32ub, Int32ul,
                       Struct, ValidationError, this)

SECTOR_BYTES = 2048
"""Logical block size used throughout (ECMA-119 6.1.2; the only size readers accept)."""
SYSTEM_AREA_BYTES = 16 * SECTOR_BYTES
"""ECMA-119 6.2.1: logical sectors 0..15 are the system area, not recorded by ISO 9660."""
STANDARD_IDENTIFIER = b"CD001"


class _BothEndian(Adapter):
    """ECMA-119 7.2.3 / 7.3.3: the same number little-endian then big-endian."""

    def _decode(self, obj, context, path):
        if obj.le != obj.be:
            raise ValidationError(f"both-endian field: little-endian {obj.le} != big-endian {obj.be}", path=path)
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

# ECMA-119 9.1: directory record.
DirectoryRecord = Struct(
    "length_of_directory_record" / Int8ul,          # BP 1 (9.1.1)
    "extended_attribute_record_length" / Int8ul,    # BP 2 (9.1.2)
    "location_of_extent" / Int32lsbmsb,             # BP 3-10 (9.1.3)
    "data_length" / Int32lsbmsb,                    # BP 11-18 (9.1.4)
    "recording_date_and_time" / DirDatetime,        # BP 19-25 (9.1.5)
    "file_flags" / Int8ul,                          # BP 26 (9.1.6)
    "file_unit_size" / Int8ul,                      # BP 27 (9.1.7)
    "interleave_gap_size" / Int8ul,                 # BP 28 (9.1.8)
    "volume_sequence_number" / Int16lsbmsb,         # BP 29-32 (9.1.9)
    "length_of_file_identifier" / Int8ul,           # BP 33 (9.1.10)
    "file_identifier" / Bytes(this.length_of_file_identifier),          # BP 34.. (9.1.11)
    "padding_field" / If(this.length_of_file_identifier % 2 == 0, Const(b"\x00")),  # 9.1.12
    "system_use" / Bytes(lambda ctx: ctx.length_of_directory_record - 33 - ctx.length_of_file_identifier
                         - (1 - ctx.length_of_file_identifier % 2)),   # 9.1.13
)


def _path_table_record(int16, int32):
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

VD_TYPE_BOOT_RECORD = 0         # ECMA-119 8.2
VD_TYPE_PRIMARY = 1             # ECMA-119 8.4
VD_TYPE_SUPPLEMENTARY = 2       # ECMA-119 8.5 (Joliet)
VD_TYPE_TERMINATOR = 255        # ECMA-119 8.3

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
    "boot_system_identifier" / Bytes(32),            # offset 7-0x26: "EL TORITO SPECIFICATION" + zeros
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
ValidationEntry = Struct(
    "header_id" / Const(1, Int8ul),                  # offset 0
    "platform_id" / Int8ul,                          # offset 1
    "reserved" / Const(bytes(2)),                    # offset 2-3
    "id_string" / Bytes(24),                         # offset 4-0x1B (manufacturer)
    "checksum" / Int16ul,                            # offset 0x1C-0x1D: all 16 words sum to 0
    "key_55" / Const(0x55, Int8ul),                  # offset 0x1E
    "key_aa" / Const(0xAA, Int8ul),                  # offset 0x1F
)

# El Torito 1.0, 2.2: initial/default entry.
InitialEntry = Struct(
    "boot_indicator" / Int8ul,                       # offset 0: 0x88 bootable, 0x00 not
    "boot_media_type" / Int8ul,                      # offset 1: emulation 0-4
    "load_segment" / Int16ul,                        # offset 2-3 (0: 0x7C0)
    "system_type" / Int8ul,                          # offset 4 (partition type for HDD emulation)
    "unused_5" / Const(b"\x00"),                     # offset 5
    "sector_count" / Int16ul,                        # offset 6-7: virtual 512-byte sectors to load
    "load_rba" / Int32ul,                            # offset 8-0xB: LBA of the boot image
    "unused_c" / Const(bytes(20)),                   # offset 0xC-0x1F
)

# El Torito 1.0, 2.3: section header entry.
SectionHeader = Struct(
    "header_indicator" / Int8ul,                     # offset 0: 0x90 more headers follow, 0x91 last
    "platform_id" / Int8ul,                          # offset 1
    "number_of_section_entries" / Int16ul,           # offset 2-3
    "id_string" / Bytes(28),                         # offset 4-0x1F
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
