"""GRUB for the five boot paths of a hybrid image (see docs/booting.md).

Everything is made from the machine's GRUB installation (Debian: grub-pc-bin,
grub-efi-amd64-bin, grub-common) with ``grub-mkimage``:

* BIOS from CD: an El Torito no-emulation image (``-O i386-pc-eltorito``: GRUB's
  cdboot.img followed by its core), catalog entry with a boot info table.
* BIOS from disk: GRUB's boot.img as the MBR's 440 bytes of boot code, loading GRUB's
  core (``-O i386-pc``: diskboot.img followed by the core) from a GPT BIOS boot
  partition; :func:`patch_bios_boot` makes the patches grub-bios-setup would make.
* UEFI from CD, from disk, from a 4096-byte-sector disk: ``EFI/BOOT/BOOTX64.EFI``
  (``-O x86_64-efi``) in the ESP, reached through the El Torito EFI entry or the GPTs.

Each image carries the same embedded early configuration: ``search --file`` for a marker
file unique to the image, which sets ``root`` to whatever device shows the image's files
(the CD, the whole disk's ISO view, or the ESP), then ``prefix=($root)/boot/grub``; GRUB's
normal mode then reads ``$prefix/grub.cfg``.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from construct import ConstructError

from ..contribution import BootContribution, BootPatches, ElToritoRequest, PartitionRequest, PlacedBoot
from ..errors import InvalidInputError, SysExportError
from ..extent import align_up
from ..fileinfo import source_date_epoch
from ..identity import BuildIdentity, sde_is_set
from ..iso9660.eltorito import BOOT_X86, EMU_NONE
from ..partition.gpt import GPT_TYPE_BIOS_BOOT, GPTPartition
from .arch import ARCHITECTURES, Arch, arch_of_platform, get_arch, host_arch
from .menu import (MenuEntry, check_title, grub_linux_args, grub_quote,  # noqa: F401 (re-exported)
                   kernel_cmdline_words, make_grub_cfg)
from .secureboot import SignedFiles, check_kernel, config_names, find_signed_chain
if TYPE_CHECKING:
    from ..hybrid import ISO9660Hybrid
from ._structs import (GRUB_BOOT_DRIVE_FROM_BIOS, GRUB_BOOT_MACHINE_KERNEL_ADDR,  # noqa: F401 (re-exported)
                       GRUB_DRIVE_CHECK_NOPS, GRUB_FIRST_BLOCKLIST_OFFSET, GRUB_FIRST_BLOCKLIST_SEGMENT,
                       MBR_BOOT_CODE_BYTES, SECTOR_BYTES, GrubBlocklist, GrubBootCode)

GRUB_LIB_DIR = "/usr/lib/grub"
"""Where Debian's grub-pc-bin and grub-efi-amd64-bin put GRUB's images and modules."""
PLATFORM_BIOS = "i386-pc"
PLATFORM_EFI = "x86_64-efi"
EFI_PLATFORMS = tuple(a.efi_platform for a in ARCHITECTURES.values())
PLATFORMS = (PLATFORM_BIOS,) + EFI_PLATFORMS
DEBIAN_PACKAGES = {PLATFORM_BIOS: "grub-pc-bin", **{a.efi_platform: a.grub_efi_package for a in ARCHITECTURES.values()}}
MKIMAGE_PACKAGE = "grub-common"
MKIMAGE_NAMES = ("grub-mkimage", "grub2-mkimage")
REQUIRED_FILES = {PLATFORM_BIOS: ("kernel.img", "moddep.lst", "boot.img", "diskboot.img", "cdboot.img"),
                  **{p: ("kernel.img", "moddep.lst") for p in EFI_PLATFORMS}}

GRUB_DIR = "boot/grub"
"""The directory of grub.cfg and the module directories, in both file systems."""
KERNEL_NAME = "boot/vmlinuz"
INITRD_NAME = "boot/initrd.img"
EFI_LOADER_NAME = "EFI/BOOT/BOOTX64.EFI"
"""UEFI 2.x 3.5.1.1: the removable-media boot path for x64."""
ELTORITO_NAME = f"{GRUB_DIR}/{PLATFORM_BIOS}/eltorito.img"
ELTORITO_LOAD_SECTORS = 4
"""El Torito load size in 512-byte sectors: cdboot.img's 2048 bytes, which read the rest."""

COMMON_MODULES = ("part_gpt", "part_msdos", "fat", "iso9660", "search", "search_fs_file", "search_fs_uuid",
                  "search_label", "normal", "configfile", "echo", "test", "serial", "terminal", "terminfo",
                  "linux", "boot", "gzio", "ls", "cat", "halt", "reboot", "sleep", "minicmd")
BIOS_MODULES = ("biosdisk",) + COMMON_MODULES
EFI_MODULES = COMMON_MODULES + ("efi_gop", "efi_uga")
EFI_MODULES_BY_PLATFORM = {PLATFORM_EFI: EFI_MODULES,
                           **{p: COMMON_MODULES + ("efi_gop",) for p in EFI_PLATFORMS if p != PLATFORM_EFI}}
"""The modules of each EFI image (efi_uga exists on x86 only)."""

@dataclass(frozen=True)
class GrubInstall:
    """One GRUB platform directory and the grub-mkimage that builds images from it."""

    platform: str
    module_dir: str
    mkimage: str

    def path(self, name: str) -> str:
        return os.path.join(self.module_dir, name)

    def module_files(self) -> list[str]:
        """The files grub-mkrescue copies to /boot/grub/<platform>: modules and lists, sorted."""
        return sorted(n for n in os.listdir(self.module_dir) if n.endswith((".mod", ".lst")))


def find_grub(platform: str, *, lib_dir: str | os.PathLike | None = None,
              mkimage: str | None = None) -> GrubInstall:
    """Locate GRUB's ``platform`` directory (``i386-pc``, ``x86_64-efi``, ``arm64-efi``,
    ``riscv64-efi``) and grub-mkimage.

    ``lib_dir`` defaults to $SYSEXPORT_GRUB_LIB_DIR, else /usr/lib/grub; ``mkimage`` to
    $SYSEXPORT_GRUB_MKIMAGE, else grub-mkimage (or grub2-mkimage) on $PATH: the host's, which
    writes images for every platform from that platform's modules.  When something is
    missing the SysExportError names the Debian package that provides it (and, for another
    architecture than the host's, how to unpack it without installing it).
    """
    if platform not in PLATFORMS:
        raise InvalidInputError(f"find_grub(): platform must be one of {', '.join(PLATFORMS)}, found {platform!r}")
    base = os.fspath(lib_dir or os.environ.get("SYSEXPORT_GRUB_LIB_DIR") or GRUB_LIB_DIR)
    module_dir = os.path.join(base, platform)
    package = DEBIAN_PACKAGES[platform]
    missing = [n for n in REQUIRED_FILES[platform] if not os.path.isfile(os.path.join(module_dir, n))]
    if missing:
        arch = arch_of_platform(platform)
        hint = f"on Debian: apt-get install {package} {MKIMAGE_PACKAGE}"
        if arch is not None and arch.name != host_arch():
            hint += (f"; on a host of another architecture: apt-get download {package}:{arch.name}, "
                     f"dpkg-deb -x {package}_*.deb DIR and give DIR as package_root (--package-root)")
        raise SysExportError(f"GRUB for {platform} is not installed: {os.path.join(module_dir, missing[0])} "
                             f"is missing ({hint})")
    tool = mkimage or os.environ.get("SYSEXPORT_GRUB_MKIMAGE")
    if tool is None:
        tool = next((t for t in map(shutil.which, MKIMAGE_NAMES) if t), None)
    elif shutil.which(tool) is None:
        tool = None
    if tool is None:
        raise SysExportError(f"grub-mkimage not found on PATH (on Debian: apt-get install {MKIMAGE_PACKAGE} {package})")
    return GrubInstall(platform, module_dir, tool)


# -- the early configuration ------------------------------------------------------------------

_MARKER_RE = re.compile(r"/[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*")


def check_marker(marker: str) -> str:
    """Check a marker path (absolute, plain characters: it is written into GRUB scripts)."""
    if not isinstance(marker, str) or not _MARKER_RE.fullmatch(marker) or len(marker) > 200 \
            or any(part in (".", "..") for part in marker.split("/")):
        raise InvalidInputError(f"marker: expected an absolute path of letters, digits and _.+- "
                                f"(such as /boot/grub/my-image.marker), found {marker!r}")
    return marker


def default_marker(*identity: object) -> str:
    """A marker path derived from ``identity`` (deterministic, unique per image content)."""
    digest = hashlib.sha256("\0".join(map(repr, identity)).encode("utf-8")).hexdigest()[:16]
    return f"/{GRUB_DIR}/sysexport-{digest}.marker"


def early_config(marker: str) -> str:
    """The configuration embedded in every GRUB image: find the medium by its marker file.

    ``search --file`` looks at every device GRUB sees (CD, whole disks with their ISO view,
    partitions) and sets ``root`` to the first that has the marker; when it finds none,
    ``root`` stays the device GRUB was loaded from.  Normal mode then reads
    ``$prefix/grub.cfg`` (so no ``configfile`` here: grub.cfg would run twice).
    """
    check_marker(marker)
    return (f"search --no-floppy --set=root --file {marker}\n"
            f"set prefix=($root)/{GRUB_DIR}\n")


# -- images -------------------------------------------------------------------------------------

def _mkimage(grub: GrubInstall, image_format: str, config: str, modules: Sequence[str]) -> bytes:
    missing = [m for m in modules if not os.path.isfile(grub.path(f"{m}.mod"))]
    if missing:
        raise InvalidInputError(f"GRUB module(s) {', '.join(missing)} not found in {grub.module_dir}")
    with tempfile.TemporaryDirectory(prefix="sysexport-grub-") as tmp:
        cfg_path = os.path.join(tmp, "early.cfg")
        out_path = os.path.join(tmp, "image")
        with open(cfg_path, "w", encoding="utf-8") as f:
            f.write(config)
        cmd = [grub.mkimage, "-O", image_format, "-d", grub.module_dir, "-o", out_path,
               "-p", f"/{GRUB_DIR}", "-c", cfg_path, *modules]
        try:
            p = subprocess.run(cmd, capture_output=True, env=dict(os.environ, LC_ALL="C"), timeout=300)
        except OSError as e:
            raise SysExportError(f"{grub.mkimage}: cannot run: {e.strerror}") from e
        if p.returncode != 0:
            raise SysExportError(f"{' '.join(cmd)} exited {p.returncode}: "
                                 f"{p.stderr.decode(errors='replace').strip()}")
        with open(out_path, "rb") as f:
            return f.read()


def _modules(default: Sequence[str], modules: Sequence[str] | None, extra_modules: Sequence[str]) -> list[str]:
    chosen = list(default if modules is None else modules) + list(extra_modules)
    return list(dict.fromkeys(chosen))      # keep order, drop repeats: deterministic


def make_bios_eltorito_image(marker: str, *, modules: Sequence[str] | None = None,
                             extra_modules: Sequence[str] = (), grub: GrubInstall | None = None) -> bytes:
    """GRUB's El Torito no-emulation image for BIOS from CD (El Torito 1.0 2.2, 512-byte
    load size 4 with a boot info table: cdboot.img loads the rest itself)."""
    grub = grub or find_grub(PLATFORM_BIOS)
    return _mkimage(grub, "i386-pc-eltorito", early_config(marker), _modules(BIOS_MODULES, modules, extra_modules))


def make_efi_image(marker: str, *, modules: Sequence[str] | None = None,
                   extra_modules: Sequence[str] = (), grub: GrubInstall | None = None) -> bytes:
    """``EFI/BOOT/BOOTX64.EFI`` (``BOOTAA64.EFI``, ...): GRUB as a UEFI application for
    ``grub``'s platform (default x86_64-efi; UEFI 2.x 3.5.1.1)."""
    grub = grub or find_grub(PLATFORM_EFI)
    if grub.platform not in EFI_PLATFORMS:
        raise InvalidInputError(f"make_efi_image(): {grub.platform} is not an EFI platform")
    return _mkimage(grub, grub.platform, early_config(marker),
                    _modules(EFI_MODULES_BY_PLATFORM[grub.platform], modules, extra_modules))


def make_bios_disk_boot(marker: str, *, modules: Sequence[str] | None = None,
                        extra_modules: Sequence[str] = (), grub: GrubInstall | None = None) -> tuple[bytes, bytes]:
    """BIOS from disk: ``(mbr_boot_code, core_img)``.

    ``mbr_boot_code`` is GRUB's boot.img cut to the MBR's 440 bytes, ``core_img`` GRUB's
    i386-pc core (diskboot.img + compressed kernel and modules) padded to whole sectors,
    meant for a GPT BIOS boot partition.  Both still point at LBA 1: call
    :func:`patch_bios_boot` once the partition's device offset is known.
    """
    grub = grub or find_grub(PLATFORM_BIOS)
    core = _mkimage(grub, "i386-pc", early_config(marker), _modules(BIOS_MODULES, modules, extra_modules))
    core = core.ljust(align_up(len(core), SECTOR_BYTES), b"\0")
    with open(grub.path("boot.img"), "rb") as f:
        boot = f.read()
    if len(boot) != SECTOR_BYTES:
        raise SysExportError(f"{grub.path('boot.img')}: expected {SECTOR_BYTES} bytes, found {len(boot)}")
    return boot[:MBR_BOOT_CODE_BYTES], core


def patch_bios_boot(mbr_code: bytes, core_img: bytes, core_device_offset: int) -> tuple[bytes, bytes]:
    """Point GRUB's boot code at a core image stored contiguously at ``core_device_offset``.

    The patches grub-bios-setup makes (util/setup.c), with no file system in between:
    boot.img's ``kernel_sector`` (0x5C, u64) = LBA of the core's first sector,
    ``boot_drive`` (0x64) = 0xff, ``boot_drive_check`` (0x66) = two nops; the first
    blocklist of diskboot.img (core bytes 500..511) starts at that LBA + 1 and keeps the
    length grub-mkimage wrote (the core's sectors minus one) and segment 0x820.  LBAs are
    in 512-byte units (BIOS int 13h).  Returns ``(mbr_code[:440], core_img)`` patched.
    """
    if not isinstance(core_device_offset, int) or core_device_offset < SECTOR_BYTES \
            or core_device_offset % SECTOR_BYTES:
        raise InvalidInputError(f"patch_bios_boot(): core_device_offset must be a positive multiple of "
                                f"{SECTOR_BYTES}, found {core_device_offset!r}")
    if len(mbr_code) < MBR_BOOT_CODE_BYTES:
        raise InvalidInputError(f"patch_bios_boot(): mbr_code has {len(mbr_code)} bytes, expected GRUB's "
                                f"boot.img ({MBR_BOOT_CODE_BYTES} or 512 bytes)")
    sector_count = -(-len(core_img) // SECTOR_BYTES)
    if sector_count < 2:
        raise InvalidInputError(f"patch_bios_boot(): core_img has {len(core_img)} bytes, "
                                "expected GRUB's i386-pc core (diskboot.img and more)")
    try:
        boot = GrubBootCode.parse(bytes(mbr_code[:MBR_BOOT_CODE_BYTES]))
        first = GrubBlocklist.parse(core_img[GRUB_FIRST_BLOCKLIST_OFFSET:SECTOR_BYTES])
        second = GrubBlocklist.parse(core_img[GRUB_FIRST_BLOCKLIST_OFFSET - 12:GRUB_FIRST_BLOCKLIST_OFFSET])
    except ConstructError as e:
        raise InvalidInputError(f"patch_bios_boot(): {e}") from e
    if boot.kernel_address != GRUB_BOOT_MACHINE_KERNEL_ADDR:
        raise InvalidInputError(f"patch_bios_boot(): mbr_code is not GRUB's boot.img (kernel_address "
                                f"{boot.kernel_address:#x}, expected {GRUB_BOOT_MACHINE_KERNEL_ADDR:#x})")
    if first.segment != GRUB_FIRST_BLOCKLIST_SEGMENT or not 1 <= first.len <= sector_count - 1 or second.len:
        raise InvalidInputError(f"patch_bios_boot(): core_img does not start with GRUB's diskboot.img "
                                f"(first blocklist {dict(start=first.start, len=first.len, segment=first.segment)}, "
                                f"expected segment {GRUB_FIRST_BLOCKLIST_SEGMENT:#x}, 1..{sector_count - 1} "
                                "sectors and a terminator after it)")
    lba = core_device_offset // SECTOR_BYTES
    boot.kernel_sector = lba
    boot.boot_drive = GRUB_BOOT_DRIVE_FROM_BIOS
    boot.boot_drive_check = GRUB_DRIVE_CHECK_NOPS
    first.start = lba + 1
    core = bytearray(core_img)
    core[GRUB_FIRST_BLOCKLIST_OFFSET:SECTOR_BYTES] = GrubBlocklist.build(first)
    return GrubBootCode.build(boot), bytes(core)


# -- grub.cfg: the menu's parts live in :mod:`sysexport.boot.menu` ------------------------------

# -- putting it into a hybrid image -------------------------------------------------------------

@dataclass
class BootSetup:
    """What :func:`make_bootable` added (paths are relative to the image's root)."""

    marker: str
    grub_cfg: str
    files: list[str] = field(default_factory=list)
    bios_boot_partition: GPTPartition | None = None
    mbr_boot_code: bytes | None = None
    """GRUB's boot.img: as built, then as patched once the image is planned."""
    arch: str = "amd64"
    secure_boot: bool = False
    efi_loader: str | None = None
    """The removable-media loader in the image (``EFI/BOOT/BOOTX64.EFI``, ...): GRUB, or
    with ``secure_boot`` the signed shim."""
    signed: SignedFiles | None = None
    """With ``secure_boot``: the signed chain used (host paths, the signed GRUB's prefix)."""


def _file_spec(name: str, content: Any, target: str = "both") -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "mode": 0o100644, "hybrid_target": target}
    if isinstance(content, (bytes, bytearray, memoryview)):
        spec["data"] = bytes(content)
    elif isinstance(content, (str, os.PathLike)):
        spec["data_path"] = os.fspath(content)
    else:
        raise InvalidInputError(f"{name}: expected bytes or a host path, found {type(content).__name__}")
    return spec


def _identity(content: Any) -> object:
    if content is None:
        return None
    if isinstance(content, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(content)).hexdigest()
    try:
        st = os.stat(content)
    except OSError as e:
        raise InvalidInputError(f"{os.fspath(content)}: {e.strerror}") from e
    return (os.path.basename(os.fspath(content)), st.st_size)


def boot_contribution(*, kernel: str | os.PathLike[str] | bytes | None = None,
                      initrd: str | os.PathLike[str] | bytes | None = None, cmdline: str = "",
                      grub_cfg: str | bytes | None = None, marker: str | None = None,
                      bios: bool | None = None, efi: bool = True, copy_modules: bool = True, serial: bool = True,
                      timeout_s: int = 5, modules: Sequence[str] = (),
                      grub_lib_dir: str | os.PathLike[str] | None = None,
                      volume_label: str | None = None,
                      identity: BuildIdentity | None = None,
                      arch: str | Arch = "amd64", secure_boot: bool = False,
                      package_root: str | os.PathLike[str] | None = None, title: str = "Linux",
                      entries: Sequence[MenuEntry] = (),
                      default_entry: int = 0) -> tuple[BootContribution, BootSetup]:
    """What GRUB contributes to a hybrid image so that it boots five ways, as a value.

    Files for both file systems: ``boot/grub/grub.cfg`` (``grub_cfg``, or one made by
    :func:`make_grub_cfg` booting ``kernel``/``initrd`` with ``cmdline``), the marker file,
    ``boot/vmlinuz`` and ``boot/initrd.img`` (host paths or bytes), GRUB's modules
    (``copy_modules``) and ``EFI/BOOT/BOOTX64.EFI``; for the ISO only, the El Torito image
    ``boot/grub/i386-pc/eltorito.img``.  The El Torito BIOS entry (El Torito 2.2, no
    emulation, boot info table), the EFI entry naming the ESP, a GPT BIOS boot partition
    holding GRUB's core and GRUB's boot.img as MBR boot code; once the partition is
    placed, ``finalize`` patches both to name its LBA (:func:`patch_bios_boot`).
    ``title`` names the menu entry of ``kernel``; ``entries`` (:class:`~sysexport.boot.menu.MenuEntry`,
    host paths or bytes) are further entries, each kernel and initrd stored once
    (``boot/vmlinuz-2``, ``boot/initrd-2.img``, ...); ``default_entry`` is the one booted
    when the timeout runs out (0 the first).  A ``grub_cfg`` of the caller's replaces the
    generated menu as is (the entries' files are still added for it to name).
    ``modules`` are embedded in every image built here besides the defaults.  Every GRUB
    image is built (and every file found) here, so a missing piece fails before anything is
    added.  The marker file that GRUB searches for is unique to the image: random, or when
    ``identity`` (the hybrid's :meth:`~sysexport.hybrid.ISO9660Hybrid.content_identity`)
    is reproducible, derived from it and from these arguments.  See docs/booting.md.

    ``arch`` (:data:`~sysexport.boot.arch.ARCHITECTURES`: amd64, arm64, riscv64) chooses
    GRUB's EFI platform and the loader's name (``EFI/BOOT/BOOTAA64.EFI`` on arm64); BIOS
    boot (``bios``, default: where the architecture has it) exists on amd64 only.
    ``package_root`` is a directory holding the target's Debian packages unpacked with
    ``dpkg-deb -x`` (GRUB's modules in ``usr/lib/grub/<platform>``, shim in
    ``usr/lib/shim``); ``grub_lib_dir`` still wins for GRUB's modules.

    ``secure_boot``: the UEFI paths go through the distribution's signed chain instead of a
    GRUB built here (:mod:`sysexport.boot.secureboot`): signed shim as the loader, the signed
    GRUB beside it as ``grub<arch>.efi``, MokManager as ``mm<arch>.efi``; no EFI modules are
    copied (the signed GRUB has its own built in and loads none under Secure Boot), and
    grub.cfg must not ``insmod``.  The kernel must carry an Authenticode signature
    (:func:`~sysexport.boot.secureboot.check_kernel`).  The BIOS paths are unchanged.
    """
    a = get_arch(arch)
    if bios is None:
        bios = a.bios_platform is not None
    if bios and a.bios_platform is None:
        raise InvalidInputError(f"make_bootable(): {a.name} has no BIOS boot; leave bios unset or False")
    if not (bios or efi):
        raise InvalidInputError("make_bootable(): enable bios, efi or both")
    if secure_boot and not efi:
        raise InvalidInputError("make_bootable(): secure_boot is a UEFI path; it needs efi=True")
    lib_dir = grub_lib_dir
    if lib_dir is None and package_root is not None:
        lib_dir = a.path(package_root, GRUB_LIB_DIR)
    grub_bios = find_grub(a.bios_platform, lib_dir=lib_dir) if bios and a.bios_platform else None
    signed = find_signed_chain(a, package_root=package_root) if secure_boot else None
    grub_efi = find_grub(a.efi_platform, lib_dir=lib_dir) if efi and signed is None else None
    menu_files, menu = _menu_files(entries, kernel, initrd)
    for k in [kernel] + [e.kernel for e in entries]:
        if k is not None:
            check_kernel(k, a, secure_boot=secure_boot)
    if marker is None:
        variant: tuple[object, ...] = () if (a.name, secure_boot) == ("amd64", False) else (a.name, secure_boot)
        if entries or title != "Linux" or default_entry:     # the default menu keeps its marker
            variant += (title, default_entry, *((e.title, _identity(e.kernel), _identity(e.initrd), e.cmdline)
                                                for e in entries))
        marker = _unique_marker(identity, volume_label, kernel, initrd, cmdline, grub_cfg, *variant)
    check_marker(marker)
    cfg = _config_text(grub_cfg, marker, kernel is not None, initrd is not None, cmdline,
                       serial and a.pc_serial, timeout_s, title=title, entries=menu, default_entry=default_entry)
    setup = BootSetup(marker=marker, grub_cfg=cfg, arch=a.name, secure_boot=secure_boot,
                      efi_loader=a.efi_loader if efi else None, signed=signed)
    eltorito = make_bios_eltorito_image(marker, extra_modules=modules, grub=grub_bios) if grub_bios else None
    mbr_code, core = make_bios_disk_boot(marker, extra_modules=modules, grub=grub_bios) if grub_bios else (None, None)
    efi_image = make_efi_image(marker, extra_modules=modules, grub=grub_efi) if grub_efi else None

    files: list[dict[str, Any]] = []

    def add(name: str, content: Any, target: str = "both") -> None:
        files.append(_file_spec(name, content, target))
        setup.files.append(name)

    add(f"{GRUB_DIR}/grub.cfg", cfg.encode("utf-8"))
    if signed is not None:          # where the signed GRUB's built-in prefix points, if elsewhere
        for name in config_names(signed, GRUB_DIR):
            add(name, cfg.encode("utf-8"))
    add(marker.lstrip("/"), f"sysexport boot medium marker {marker}\n".encode("ascii"))
    if kernel is not None:
        add(KERNEL_NAME, kernel)
    if initrd is not None:
        add(INITRD_NAME, initrd)
    for name, content in menu_files:
        add(name, content)
    for grub in (grub_bios, grub_efi):
        if grub is not None and copy_modules:
            for name in grub.module_files():
                add(f"{GRUB_DIR}/{grub.platform}/{name}", grub.path(name))
    if efi_image is not None:
        add(a.efi_loader, efi_image)
    if signed is not None:
        for name, path in signed.files():
            add(name, path)
    if eltorito is None or mbr_code is None or core is None:
        return BootContribution(files=tuple(files), efi_from_esp=efi), setup
    add(ELTORITO_NAME, eltorito, target="iso")     # the boot info table is written into it
    setup.mbr_boot_code = mbr_code
    bios_code, bios_core = mbr_code, core

    def finalize(placed: PlacedBoot) -> BootPatches:
        (core_offset, _size), = placed.partitions
        code, patched = patch_bios_boot(bios_code, bios_core, core_offset)
        setup.mbr_boot_code = code
        return BootPatches(mbr_boot_code=code, partition_data=(patched,))

    contribution = BootContribution(
        files=tuple(files),
        eltorito=(ElToritoRequest(platform=BOOT_X86, path=ELTORITO_NAME, media_type=EMU_NONE,
                                  load_size=ELTORITO_LOAD_SECTORS, boot_info_table=True),),
        efi_from_esp=efi,
        partitions=(PartitionRequest(GPT_TYPE_BIOS_BOOT, align_up(len(core), 4096), "BIOS boot partition", core),),
        mbr_boot_code=mbr_code, finalize=finalize)
    return contribution, setup


def _unique_marker(identity: BuildIdentity | None, *inputs: object) -> str:
    """A marker path unique to the image: random, or derived from a reproducible
    ``identity`` and the boot inputs (the kernel's and initrd's identity, cmdline, config)."""
    if identity is None:
        identity = BuildIdentity(b"" if sde_is_set() else None)
    if not identity.reproducible:
        return f"/{GRUB_DIR}/sysexport-{identity.token('GRUB marker')}.marker"
    label, kernel, initrd, cmdline, grub_cfg, *variant = inputs     # variant: (arch, secure_boot) if not default
    return default_marker("sysexport-grub", label, source_date_epoch(), _identity(kernel), _identity(initrd),
                          cmdline, grub_cfg.hex() if isinstance(grub_cfg, bytes) else grub_cfg,
                          identity.token("GRUB marker"), *variant)


def _menu_files(entries: Sequence[MenuEntry], kernel: Any, initrd: Any) -> tuple[list[tuple[str, Any]],
                                                                              list[MenuEntry]]:
    """The kernels and initrds of ``entries`` as files of the image, each host file (or
    bytes) stored once: the main ``kernel`` and ``initrd`` are ``boot/vmlinuz`` and
    ``boot/initrd.img`` (added by the caller), the others ``boot/vmlinuz-2``,
    ``boot/initrd-2.img``, ... in their order.  Returns those files and the entries naming
    their image paths."""
    files: list[tuple[str, Any]] = []
    named: dict[tuple[str, object], str] = {}
    if kernel is not None:
        named[("kernel", _content_key(kernel))] = KERNEL_NAME
    if initrd is not None:
        named[("initrd", _content_key(initrd))] = INITRD_NAME

    def name_of(content: Any, kind: str) -> str:
        key = (kind, _content_key(content))
        if key not in named:
            number = 2 + sum(k[0] == kind and v not in (KERNEL_NAME, INITRD_NAME) for k, v in named.items())
            named[key] = f"boot/vmlinuz-{number}" if kind == "kernel" else f"boot/initrd-{number}.img"
            files.append((named[key], content))
        return named[key]

    menu = []
    for entry in entries:
        if not isinstance(entry, MenuEntry):
            raise InvalidInputError(f"entries: expected MenuEntry values, found {type(entry).__name__}")
        entry.check()
        menu.append(MenuEntry(entry.title, name_of(entry.kernel, "kernel"),
                              name_of(entry.initrd, "initrd") if entry.initrd is not None else None, entry.cmdline))
    return files, menu


def _content_key(content: Any) -> object:
    """What makes two kernels (initrds) the same file: the host file's real path, or the bytes' digest."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(content)).hexdigest()
    if isinstance(content, (str, os.PathLike)):
        return os.path.realpath(content)
    raise InvalidInputError(f"menu entry: expected a host path or bytes, found {type(content).__name__}")


def _config_text(grub_cfg: str | bytes | None, marker: str, kernel: bool, initrd: bool, cmdline: str,
                 serial: bool, timeout_s: int, *, title: str = "Linux", entries: Sequence[MenuEntry] = (),
                 default_entry: int = 0) -> str:
    if grub_cfg is None:
        return make_grub_cfg(marker=marker, kernel=KERNEL_NAME if kernel else None,
                             initrd=INITRD_NAME if initrd else None, cmdline=cmdline,
                             serial=serial, timeout_s=timeout_s, title=title, entries=entries,
                             default_entry=default_entry)
    if isinstance(grub_cfg, bytes):
        try:
            return grub_cfg.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInputError(f"grub_cfg: not UTF-8 ({e})") from None
    if isinstance(grub_cfg, str):
        return grub_cfg
    raise InvalidInputError(f"grub_cfg: expected str or bytes, found {type(grub_cfg).__name__}")


def make_bootable(hybrid: ISO9660Hybrid, *, kernel: str | os.PathLike[str] | bytes | None = None,
                  initrd: str | os.PathLike[str] | bytes | None = None, cmdline: str = "",
                  grub_cfg: str | bytes | None = None, marker: str | None = None,
                  bios: bool | None = None, efi: bool = True, copy_modules: bool = True, serial: bool = True,
                  timeout_s: int = 5, modules: Sequence[str] = (),
                  grub_lib_dir: str | os.PathLike[str] | None = None,
                  arch: str | Arch = "amd64", secure_boot: bool = False,
                  package_root: str | os.PathLike[str] | None = None, title: str = "Linux",
                  entries: Sequence[MenuEntry] = (), default_entry: int = 0) -> BootSetup:
    """Make an :class:`~sysexport.hybrid.ISO9660Hybrid` boot five ways with GRUB: the
    :func:`boot_contribution` for these arguments, given to ``hybrid.contribute()``.
    ``secure_boot=True``: UEFI through the distribution's signed shim and GRUB;
    ``arch="arm64"``: an arm64 image (UEFI only).  Returns what was added (:class:`BootSetup`)."""
    contribution, setup = boot_contribution(
        kernel=kernel, initrd=initrd, cmdline=cmdline, grub_cfg=grub_cfg, marker=marker, bios=bios, efi=efi,
        copy_modules=copy_modules, serial=serial, timeout_s=timeout_s, modules=modules,
        grub_lib_dir=grub_lib_dir, volume_label=hybrid.volume_label, identity=hybrid.content_identity(),
        arch=arch, secure_boot=secure_boot, package_root=package_root, title=title, entries=entries,
        default_entry=default_entry)
    parts = hybrid.contribute(contribution)
    if parts:
        setup.bios_boot_partition = parts[0]
    return setup
