"""The command line of ``xorriso -as mkisofs``, read into :class:`MkisofsOptions`.

mkisofs options are single-dash long words (``-iso-level 3``, ``-joliet-long``) mixed
with one-letter ones (``-J``, ``-o FILE``), some with a double-dash spelling
(``--mbr-force-bootable``, ``--modification-date=``), and values that themselves start
with dashes (``-e --interval:appended_partition_2:all::``).  argparse cannot read that, so
this is a small table-driven reader: each option has a number of values and a handler.
Options that depend on their position (the El Torito ones: ``-b``, ``-e``,
``-eltorito-alt-boot``, ``-no-emul-boot``, ``-boot-load-size``, ``-boot-info-table``,
``-isohybrid-gpt-basdat``) apply to the boot entry being described, as in xorriso.

The option names and what they mean come from xorrisofs(1) (xorriso 1.5); what is not
supported is refused by name (:class:`~sysexport.errors.UsageError`, exit status 2).
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import UsageError

APPENDED_INTERVAL = re.compile(r"--interval:appended_partition_([1-8]):all::")
"""``-e`` naming an appended partition (xorrisofs: the partition's whole extent)."""
MODIFICATION_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})")
"""``--modification-date=YYYYMMDDhhmmsscc`` (UTC, as xorriso reads it)."""
APPEND_PARTITION_NUMBERS = range(1, 9)
"""xorriso numbers appended partitions 1..8 (MBR slots 1-4, more in a GPT)."""


@dataclass
class BootImage:
    """One El Torito entry as the command line describes it (``-b`` or ``-e`` and the
    options after it until ``-eltorito-alt-boot``)."""

    platform: str                       # "bios" (-b) or "efi" (-e)
    path: str | None = None             # an image path, or None when ``appended`` is set
    appended: int | None = None         # -e --interval:appended_partition_N:all::
    no_emul: bool = False
    load_size: int | None = None        # 512-byte sectors
    boot_info_table: bool = False
    gpt_basdat: bool = False            # -isohybrid-gpt-basdat while this entry was current
    grub2_boot_info: bool = False       # --grub2-boot-info


@dataclass
class AppendedPartition:
    """``-append_partition N TYPE FILE``: TYPE an MBR type byte or a GPT type GUID."""

    number: int
    mbr_type: int | None
    type_guid: uuid.UUID | None
    path: str


@dataclass
class MkisofsOptions:
    """Everything a ``mkisofs`` command line says (see :func:`parse_mkisofs_args`)."""

    output: str | None = None
    paths: list[str] = field(default_factory=list)
    graft_points: bool = False
    iso_level: int = 1
    full_names: bool = False            # -l / -full-iso9660-filenames
    joliet: bool = False
    joliet_long: bool = False
    rational_rock: bool = False
    volume_id: str = ""
    application: str = ""
    publisher: str = ""
    preparer: str = ""
    system: str = ""
    catalog: str | None = None
    boot: list[BootImage] = field(default_factory=list)
    isohybrid_mbr: str | None = None
    grub2_mbr: str | None = None
    gpt_basdat: bool = False            # some entry asked for -isohybrid-gpt-basdat
    partition_offset: int = 0           # 2048-byte blocks
    appended: list[AppendedPartition] = field(default_factory=list)
    appended_as_gpt: bool = False
    mbr_force_bootable: bool = False
    protective_msdos_label: bool = False
    efi_boot_part_image: bool = False   # -efi-boot-part --efi-boot-image
    excludes: list[str] = field(default_factory=list)
    hide: list[str] = field(default_factory=list)
    hide_joliet: list[str] = field(default_factory=list)
    sort_file: str | None = None
    modification_date: float | None = None
    pad: bool = True
    sysexport_hybrid: bool = False
    json: bool = False                  # --json: the summary as one JSON object
    progress: bool = False              # --progress
    quiet: bool = False                 # -quiet: no summary lines
    help: bool = False
    current: BootImage | None = None    # the entry the El Torito options apply to
    alt_boot: bool = False              # -eltorito-alt-boot seen: the next -b/-e starts an entry


def _int(option: str, value: str, low: int, high: int) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise UsageError(f"{option}: expected a number, found {value!r}") from None
    if not low <= n <= high:
        raise UsageError(f"{option}: expected {low}..{high}, found {n}")
    return n


def _modification_date(value: str) -> float:
    import calendar
    m = MODIFICATION_DATE.fullmatch(value)
    if not m:
        raise UsageError(f"--modification-date: expected YYYYMMDDhhmmsscc (16 digits, UTC), found {value!r}")
    y, mo, d, h, mi, s, cs = (int(g) for g in m.groups())
    try:
        seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        import datetime
        datetime.datetime(y, mo, d, h, mi, s)
    except ValueError:
        raise UsageError(f"--modification-date: {value!r} is not a date") from None
    return seconds + cs / 100


def _partition_type(value: str) -> tuple[int | None, uuid.UUID | None]:
    """-append_partition's TYPE: ``0xNN`` (an MBR type byte) or a GUID."""
    if re.fullmatch(r"0[xX][0-9a-fA-F]{1,2}", value):
        code = int(value, 16)
        if code == 0:
            raise UsageError("-append_partition: type 0x00 marks an empty MBR slot")
        return code, None
    try:
        return None, uuid.UUID(value)
    except ValueError:
        raise UsageError(f"-append_partition: TYPE must be 0xNN (MBR) or a GPT type GUID, found {value!r}") from None


# -- the El Torito options (positional: they describe the current entry) --------------------

def _boot_entry(o: MkisofsOptions, platform: str, option: str) -> BootImage:
    """The entry ``-b``/``-e`` describes: a new one after -eltorito-alt-boot (or the first);
    else the current one (a second -b replaces the image, as in mkisofs)."""
    if o.current is None or o.alt_boot:
        o.current = BootImage(platform)
        o.boot.append(o.current)
        o.alt_boot = False
    elif o.current.platform != platform:
        raise UsageError(f"{option}: the entry being described is a {o.current.platform} one; "
                         "give -eltorito-alt-boot before starting another")
    return o.current


def _current(o: MkisofsOptions, option: str) -> BootImage:
    if o.current is None:
        raise UsageError(f"{option}: give -b or -e (the boot image) before it")
    return o.current


def _set_b(o: MkisofsOptions, v: list[str], option: str) -> None:
    entry = _boot_entry(o, "bios", option)
    entry.path = v[0].strip("/")


def _set_e(o: MkisofsOptions, v: list[str], option: str) -> None:
    entry = _boot_entry(o, "efi", option)
    m = APPENDED_INTERVAL.fullmatch(v[0])
    if m:
        entry.appended, entry.path = int(m.group(1)), None
    elif v[0].startswith("--interval:"):
        raise UsageError(f"{option} {v[0]}: only --interval:appended_partition_N:all:: is supported")
    else:
        entry.path = v[0].strip("/")


def _efi_boot(o: MkisofsOptions, v: list[str], option: str) -> None:
    """xorrisofs --efi-boot FILE: -eltorito-alt-boot -e FILE -no-emul-boot -eltorito-alt-boot."""
    if o.current is not None:
        o.alt_boot = True
    _set_e(o, v, option)
    _no_emul(o, v, option)
    o.alt_boot = True


def _alt_boot(o: MkisofsOptions, v: list[str], option: str) -> None:
    o.alt_boot = True


def _no_emul(o: MkisofsOptions, v: list[str], option: str) -> None:
    _current(o, option).no_emul = True


def _load_size(o: MkisofsOptions, v: list[str], option: str) -> None:
    _current(o, option).load_size = _int(option, v[0], 1, 0xFFFF)


def _info_table(o: MkisofsOptions, v: list[str], option: str) -> None:
    _current(o, option).boot_info_table = True


def _efi_boot_part(o: MkisofsOptions, v: list[str], option: str) -> None:
    if v[0] != "--efi-boot-image":
        raise UsageError(f"{option} {v[0]}: only --efi-boot-image (the -e image as the GPT's ESP) is supported; "
                         "append a file with -append_partition N C12A7328-F81F-11D2-BA4B-00A0C93EC93B FILE")
    o.efi_boot_part_image = True


def _grub2_boot_info(o: MkisofsOptions, v: list[str], option: str) -> None:
    _current(o, option).grub2_boot_info = True


def _gpt_basdat(o: MkisofsOptions, v: list[str], option: str) -> None:
    o.gpt_basdat = True
    if o.current is not None:
        o.current.gpt_basdat = True


# -- the rest ----------------------------------------------------------------------------------

def _setter(attr: str, convert: Callable[[str, str], object] = lambda opt, v: v) -> Callable[..., None]:
    def handler(o: MkisofsOptions, v: list[str], option: str) -> None:
        setattr(o, attr, convert(option, v[0]))
    return handler


def _flag(attr: str, value: object = True) -> Callable[..., None]:
    def handler(o: MkisofsOptions, v: list[str], option: str) -> None:
        setattr(o, attr, value)
    return handler


def _adder(attr: str) -> Callable[..., None]:
    def handler(o: MkisofsOptions, v: list[str], option: str) -> None:
        getattr(o, attr).append(v[0])
    return handler


def _ignored(o: MkisofsOptions, v: list[str], option: str) -> None:
    """Options whose effect is what sysexport always does (see docs/cli.md)."""


def _input_charset(o: MkisofsOptions, v: list[str], option: str) -> None:
    if v[0].lower().replace("-", "") != "utf8":
        raise UsageError(f"{option} {v[0]}: only UTF-8 file names are supported")


def _append_partition(o: MkisofsOptions, v: list[str], option: str) -> None:
    number = _int(option, v[0], 1, 8)
    if any(p.number == number for p in o.appended):
        raise UsageError(f"{option}: partition {number} given twice")
    mbr_type, type_guid = _partition_type(v[1])
    o.appended.append(AppendedPartition(number, mbr_type, type_guid, v[2]))


def _iso_level(opt: str, v: str) -> int:
    level = _int(opt, v, 1, 4)
    if level == 4:
        raise UsageError("-iso-level 4 (ISO 9660:1999) is not supported: use 1, 2 or 3")
    return level


def _partition_offset(opt: str, v: str) -> int:
    n = _int(opt, v, 0, 0xFFFFFFFF // 4)
    if 0 < n < 16:
        raise UsageError(f"{opt}: a partition offset is 0 or at least 16 blocks (the ISO's system area and "
                         f"descriptors), found {n}")
    return n


Handler = Callable[[MkisofsOptions, list[str], str], None]
OPTIONS: dict[str, tuple[int, Handler]] = {
    "-o": (1, _setter("output")), "-output": (1, _setter("output")),
    "-iso-level": (1, _setter("iso_level", _iso_level)),
    "-l": (0, _flag("full_names")), "-full-iso9660-filenames": (0, _flag("full_names")),
    "-J": (0, _flag("joliet")), "-joliet": (0, _flag("joliet")),
    "-joliet-long": (0, _flag("joliet_long")),
    "-R": (0, _ignored), "-rock": (0, _ignored),
    "-r": (0, _flag("rational_rock")), "-rational-rock": (0, _flag("rational_rock")),
    "-V": (1, _setter("volume_id")), "-volid": (1, _setter("volume_id")),
    "-A": (1, _setter("application")), "-appid": (1, _setter("application")),
    "-publisher": (1, _setter("publisher")),
    "-p": (1, _setter("preparer")), "-preparer": (1, _setter("preparer")),
    "-sysid": (1, _setter("system")),
    "-b": (1, _set_b), "-eltorito-boot": (1, _set_b),
    "-e": (1, _set_e), "--efi-boot": (1, _efi_boot),
    "-c": (1, _setter("catalog", lambda opt, v: v.strip("/"))),
    "-eltorito-catalog": (1, _setter("catalog", lambda opt, v: v.strip("/"))),
    "-no-emul-boot": (0, _no_emul), "-boot-load-size": (1, _load_size), "-boot-info-table": (0, _info_table),
    "-eltorito-alt-boot": (0, _alt_boot),
    "-isohybrid-mbr": (1, _setter("isohybrid_mbr")), "--grub2-mbr": (1, _setter("grub2_mbr")),
    "-isohybrid-gpt-basdat": (0, _gpt_basdat),
    "-partition_offset": (1, _setter("partition_offset", _partition_offset)),
    "-append_partition": (3, _append_partition),
    "-appended_part_as_gpt": (0, _flag("appended_as_gpt")),
    "--mbr-force-bootable": (0, _flag("mbr_force_bootable")),
    "--grub2-boot-info": (0, _grub2_boot_info),
    "--protective-msdos-label": (0, _flag("protective_msdos_label")),
    "-efi-boot-part": (1, _efi_boot_part),
    "-graft-points": (0, _flag("graft_points")),
    "-m": (1, _adder("excludes")), "-exclude": (1, _adder("excludes")), "-x": (1, _adder("excludes")),
    "-hide": (1, _adder("hide")), "-hide-joliet": (1, _adder("hide_joliet")),
    "-sort": (1, _setter("sort_file")),
    "-cache-inodes": (0, _ignored), "-no-cache-inodes": (0, _ignored),
    "-pad": (0, _flag("pad")), "-no-pad": (0, _flag("pad", False)),
    "-quiet": (0, _flag("quiet")), "--quiet": (0, _flag("quiet")), "-v": (0, _ignored), "-verbose": (0, _ignored),
    "-input-charset": (1, _input_charset),
    "--sysexport-hybrid": (0, _flag("sysexport_hybrid")),
    "--json": (0, _flag("json")), "--progress": (0, _flag("progress")),
    "-help": (0, _flag("help")), "--help": (0, _flag("help")), "-h": (0, _flag("help")),
}
"""Each option: (how many values follow it, what it does)."""
EQUALS_OPTIONS = {"--modification-date": lambda o, v: setattr(o, "modification_date", _modification_date(v))}
"""Options written ``--name=value``."""


def parse_mkisofs_args(argv: list[str]) -> MkisofsOptions:
    """Read a mkisofs command line (without the program name).  Anything not starting with
    ``-`` is a PATH; ``--`` ends the options.  An option sysexport does not know or does
    not support is a UsageError naming it."""
    o = MkisofsOptions()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            o.paths.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            o.paths.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if eq and name in EQUALS_OPTIONS:
            EQUALS_OPTIONS[name](o, value)
            continue
        if arg not in OPTIONS:
            raise UsageError(f"mkisofs option {arg} is not supported")
        count, handler = OPTIONS[arg]
        values = argv[i:i + count]
        if len(values) < count:
            raise UsageError(f"{arg}: expects {count} value{'s' if count > 1 else ''}")
        i += count
        handler(o, values, arg)
    return o
