"""UEFI Secure Boot through the distribution's signed chain (see docs/booting.md).

With Secure Boot on, the firmware runs only images signed by a key in its ``db`` (on PCs,
Microsoft's "UEFI CA 2011", which signs shim). Debian's chain is:

* ``EFI/BOOT/BOOT<arch>.EFI``: shim (``shim<arch>.efi.signed``, package shim-signed), signed by
  Microsoft; it carries Debian's Secure Boot CA in its ``.vendor_cert`` section and
  verifies what it loads against that CA, the firmware's db and the MOK list;
* ``EFI/BOOT/grub<arch>.efi``: GRUB signed by Debian (grub-efi-<arch>-signed). sysexport
  uses the CD image ``gcd<arch>.efi.signed``, whose built-in prefix is ``/boot/grub`` on the
  device it was loaded from, so it reads the image's ``/boot/grub/grub.cfg`` from the CD,
  the ESP and the 4K disk alike (:func:`signed_grub_config`). Its modules are built in;
  it loads none from disk (``insmod`` is "prohibited by secure boot policy");
* ``EFI/BOOT/mm<arch>.efi``: MokManager signed by Debian (shim-helpers-<arch>-signed),
  which shim starts to enrol a key or a hash when an image does not verify;
* the kernel, which GRUB hands to shim's verifier: Debian's is signed by Debian's kernel key
  (issued by the same CA). :func:`check_kernel` refuses a kernel with no signature at all.

Left out on purpose: shim's fallback ``fb<arch>.efi`` and ``BOOT<arch>.CSV``. On a removable
medium shim runs the fallback instead of GRUB when fb<arch>.efi lies beside it; the
fallback then writes boot entries for the installed systems that a BOOT<arch>.CSV describes
into the machine's NVRAM and resets, which is right for an installed disk's ESP, wrong for
a live medium.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from construct import ConstructError

from ..errors import InvalidInputError, SysExportError
from ._structs import (GRUB_MODS_SECTION, GRUB_MODULE_HEADER_BYTES, GRUB_MODULE_MAGIC, OBJ_TYPE_CONFIG,
                       OBJ_TYPE_PREFIX, GrubModuleHeader, GrubModuleInfo64)
from .arch import Arch, get_arch
from .pe import machine_name, read_pe, section_bytes


@dataclass(frozen=True)
class SignedFiles:
    """The signed chain found for one architecture (host paths) and the config GRUB reads."""

    arch: Arch
    shim: str
    mok_manager: str
    grub: str
    grub_prefix: str
    """The signed GRUB's built-in prefix (``/boot/grub`` for Debian's CD image): it reads
    ``<prefix>/grub.cfg`` on the device it was loaded from."""

    def files(self) -> list[tuple[str, str]]:
        """(name in the image, host path) of every file the chain puts into EFI/BOOT."""
        chain = self.arch.signed
        assert chain is not None
        loader_dir = os.path.dirname(self.arch.efi_loader)
        return [(self.arch.efi_loader, self.shim),
                (f"{loader_dir}/{chain.grub_name}", self.grub),
                (f"{loader_dir}/{chain.mok_name}", self.mok_manager)]


def _install_hint(arch: Arch, packages: list[str], package_root: str | os.PathLike[str] | None) -> str:
    if package_root is None:
        return f"on Debian: apt-get install {' '.join(packages)}"
    debs = " ".join(f"{p}:{arch.name}" for p in packages)
    return (f"unpack them there: apt-get download {debs}, then dpkg-deb -x each .deb into "
            f"{os.fspath(package_root)}")


def find_signed_chain(arch: str | Arch = "amd64", *,
                      package_root: str | os.PathLike[str] | None = None) -> SignedFiles:
    """Locate the distribution's signed shim, MokManager and GRUB for ``arch`` (under
    ``package_root`` when given, else as installed). A SysExportError names the packages
    when a file is missing."""
    a = get_arch(arch)
    chain = a.signed
    if chain is None:
        raise InvalidInputError(f"secure_boot: there is no signed shim and GRUB for {a.name} (Debian signs "
                                "them for amd64 and arm64); sign your own loader (docs/booting.md)")
    paths = {attr: a.path(package_root, getattr(chain, attr)) for attr in ("shim", "mok_manager", "grub")}
    missing = [attr for attr, p in paths.items() if not os.path.isfile(p)]
    if missing:
        # Installed, shim-signed brings MokManager's package along; downloaded, each is named.
        packages = list(dict.fromkeys(chain.packages["shim" if m == "mok_manager" and package_root is None else m]
                                      for m in missing))
        chain_packages = ", ".join(p for p in dict.fromkeys(chain.packages.values())
                                   if package_root is not None or not p.startswith("shim-helpers-"))
        raise SysExportError(f"Secure Boot needs the signed shim and GRUB for {a.name} ({chain_packages}): "
                             f"{paths[missing[0]]} is missing "
                             f"({_install_hint(a, packages, package_root)})")
    for attr, p in paths.items():
        image = read_pe(p)
        if image is None or image.machine != a.pe_machine or not image.signed:
            what = "not a PE/COFF image" if image is None else \
                f"a {image.machine_name} image" if image.machine != a.pe_machine else "not signed"
            raise SysExportError(f"{p}: expected the signed {a.name} {attr.replace('_', ' ')} "
                                 f"({chain.packages[attr]}), found {what}")
    prefix = signed_grub_config(paths["grub"])[0]
    if prefix is None:
        raise SysExportError(f"{paths['grub']}: no prefix in its module area: not a GRUB image grub-mkimage made")
    return SignedFiles(a, paths["shim"], paths["mok_manager"], paths["grub"], prefix)


def grub_image_objects(source: str | os.PathLike[str] | bytes) -> list[tuple[int, bytes]]:
    """The objects of an EFI GRUB image's module area (PE section "mods"): (OBJ_TYPE_*, bytes)
    for each module, memdisk, embedded config and prefix (include/grub/kernel.h)."""
    image = read_pe(source)
    if image is None:
        raise InvalidInputError("not a PE/COFF image: not an EFI GRUB image")
    mods = section_bytes(source, image, GRUB_MODS_SECTION.decode())
    if mods is None:
        raise InvalidInputError("no \"mods\" section: not an EFI GRUB image made by grub-mkimage")
    try:
        info = GrubModuleInfo64.parse(mods)
        if info.magic != GRUB_MODULE_MAGIC or info.size > len(mods):
            raise InvalidInputError(f"\"mods\" section: no grub_module_info64 (magic {info.magic:#x}, size "
                                    f"{info.size}): a 32-bit GRUB or not GRUB")
        objects = []
        pos = info.offset
        while pos + GRUB_MODULE_HEADER_BYTES <= info.size:
            h = GrubModuleHeader.parse(mods[pos:pos + GRUB_MODULE_HEADER_BYTES])
            if h.size < GRUB_MODULE_HEADER_BYTES or pos + h.size > info.size:
                raise InvalidInputError(f"\"mods\" section: object at {pos} of size {h.size} overruns the area")
            objects.append((h.type, mods[pos + GRUB_MODULE_HEADER_BYTES:pos + h.size]))
            pos += h.size
    except ConstructError as e:
        raise InvalidInputError(f"\"mods\" section: {e}") from None
    return objects


def signed_grub_config(source: str | os.PathLike[str] | bytes) -> tuple[str | None, str | None]:
    """(prefix, embedded config) of an EFI GRUB image, each None when absent.

    Measured on Debian 12's images: gcdx64.efi.signed and gcdaa64.efi.signed have prefix
    ``/boot/grub``, grubx64/grubaa64.efi.signed ``/EFI/debian``; both embed the config
    ``normal (memdisk)/grub.cfg``, and their memdisk's grub.cfg reads, in order,
    ``$prefix/<platform>/grub.cfg``, ``$prefix/grub.cfg``, ``$cmdpath/grub.cfg``, after
    setting ``root`` by ``search --file /.disk/info`` (then /.disk/mini-info) only when
    ``$prefix`` does not exist. The prefix is taken on the device GRUB was loaded from:
    (cd0) on a CD, the ESP on a disk.
    """
    prefix = config = None
    for kind, data in grub_image_objects(source):
        text = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        if kind == OBJ_TYPE_PREFIX:
            prefix = text
        elif kind == OBJ_TYPE_CONFIG:
            config = text
    return prefix, config


def config_names(files: SignedFiles, grub_dir: str) -> list[str]:
    """Where grub.cfg must be for the signed GRUB (besides ``grub_dir``/grub.cfg, which the
    image always has): ``<prefix>/grub.cfg`` when the prefix is a plain path elsewhere."""
    prefix = files.grub_prefix
    if prefix.startswith("(") or prefix.strip("/") == grub_dir.strip("/"):
        return []
    return [f"{prefix.strip('/')}/grub.cfg"]


def check_kernel(kernel: str | os.PathLike[str] | bytes, arch: str | Arch = "amd64", *,
                 secure_boot: bool = False) -> None:
    """Refuse a kernel that cannot boot: a PE image for another machine; with ``secure_boot``,
    one that is not a PE image or whose PE certificate table holds no Authenticode signature
    (shim and GRUB would refuse it: "bad shim signature")."""
    a = get_arch(arch)
    where = f"kernel {os.fspath(kernel)}" if not isinstance(kernel, (bytes, bytearray, memoryview)) else "kernel"
    image = read_pe(kernel, where)
    if image is not None and image.machine != a.pe_machine:
        raise InvalidInputError(f"{where}: is built for {image.machine_name} (PE machine {image.machine:#06x}); "
                                f"the image is for {a.name} ({machine_name(a.pe_machine)})")
    if not secure_boot:
        return
    if image is None:
        raise InvalidInputError(f"{where}: not a PE/COFF image (no EFI stub), so it carries no signature: "
                                "GRUB would refuse it with Secure Boot on")
    if not image.signed:
        found = ", ".join(f"type {c.type:#06x} revision {c.revision:#06x}" for c in image.certificates)
        raise InvalidInputError(
            f"{where}: carries no Authenticode signature (its PE certificate table "
            f"{'holds ' + found if found else 'is empty'}): shim would refuse it with Secure Boot on. "
            "Use the distribution's signed kernel (Debian: linux-image-" + a.name + ") or sign it "
            "with sbsign (docs/booting.md)")
