"""The architectures a live image can be made for, and what differs between them.

One row per Debian architecture: GRUB's EFI platform (the ``grub-mkimage -O`` format and
the module directory), the removable-media loader name (UEFI 2.10 3.5.1.1, Table 3-2:
``\\EFI\\BOOT\\BOOT{x64,AA64,RISCV64}.EFI``), the PE/COFF machine type every UEFI image and
EFI-stub kernel of that architecture carries, whether PC BIOS boot exists (amd64 only:
GRUB's i386-pc), and the distribution's signed Secure Boot chain where there is one. The
El Torito EFI entry (platform 0xEF, naming the ESP) is the same for every architecture: the
firmware picks its own ``BOOT<arch>.EFI`` from the FAT.

Everything is built on the host with the host's ``grub-mkimage`` (it writes images for
every platform from that platform's modules); nothing of the target architecture runs. On
a host of another architecture, the target's packages are unpacked with
``apt-get download PKG:ARCH`` and ``dpkg-deb -x PKG.deb DIR`` and found under
``package_root=DIR`` (``--package-root DIR``): GRUB's modules in DIR/usr/lib/grub/<platform>,
shim in DIR/usr/lib/shim, the signed GRUB in DIR/usr/lib/grub/<platform>-signed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import InvalidInputError
from ._structs import IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_ARM64, IMAGE_FILE_MACHINE_RISCV64


@dataclass(frozen=True)
class SignedChain:
    """A distribution's Secure Boot chain for one architecture: where Debian's packages put
    each file (absolute paths, under the package root) and the name it gets in
    ``EFI/BOOT/`` of the image, next to shim (shim loads ``grub_name`` and ``mok_name`` from
    its own directory)."""

    shim: str
    """shim signed by Microsoft's UEFI CA (package shim-signed); becomes BOOT<arch>.EFI."""
    mok_manager: str
    """MokManager signed by Debian (shim-helpers-<arch>-signed, a dependency of shim-signed)."""
    grub: str
    """GRUB signed by Debian, the CD image (prefix /boot/grub; grub-efi-<arch>-signed)."""
    grub_name: str
    """What shim loads: ``grub<arch>.efi`` (shim's DEFAULT_LOADER)."""
    mok_name: str
    """What shim runs to enrol a key or hash (``mm<arch>.efi``)."""
    packages: dict[str, str]
    """The package holding each of the three files (by attribute name)."""


@dataclass(frozen=True)
class Arch:
    """One target architecture (see the module docstring)."""

    name: str
    """Debian's name: amd64, arm64, riscv64."""
    efi_platform: str
    """GRUB's platform and grub-mkimage format: x86_64-efi, arm64-efi, riscv64-efi."""
    efi_loader: str
    """The removable-media path of the UEFI loader in the image (UEFI 2.10 3.5.1.1)."""
    pe_machine: int
    """IMAGE_FILE_MACHINE_* of UEFI images and EFI-stub kernels for it."""
    grub_efi_package: str
    """Debian's package of GRUB's EFI modules."""
    bios_platform: str | None
    """GRUB's BIOS platform (i386-pc), or None: no BIOS boot there."""
    signed: SignedChain | None
    """Debian's signed shim and GRUB, or None where Debian signs none."""
    pc_serial: bool
    """grub.cfg's ``serial --unit=0`` names a PC COM port there; elsewhere the firmware's
    console (which UEFI on servers and qemu's virt machine put on the serial port) is used."""
    linux_console: str
    """The serial console a Linux command line names there (for docs and tests)."""

    def path(self, package_root: str | os.PathLike[str] | None, absolute: str) -> str:
        """``absolute`` (a path as a package installs it) under ``package_root``."""
        if package_root is None:
            return absolute
        return os.path.join(os.fspath(package_root), absolute.lstrip("/"))


def _signed(debian: str, suffix: str, platform: str) -> SignedChain:
    return SignedChain(
        shim=f"/usr/lib/shim/shim{suffix}.efi.signed",
        mok_manager=f"/usr/lib/shim/mm{suffix}.efi.signed",
        grub=f"/usr/lib/grub/{platform}-signed/gcd{suffix}.efi.signed",
        grub_name=f"grub{suffix}.efi", mok_name=f"mm{suffix}.efi",
        packages={"shim": "shim-signed", "mok_manager": f"shim-helpers-{debian}-signed",
                  "grub": f"grub-efi-{debian}-signed"})


ARCHITECTURES: dict[str, Arch] = {
    "amd64": Arch("amd64", "x86_64-efi", "EFI/BOOT/BOOTX64.EFI", IMAGE_FILE_MACHINE_AMD64, "grub-efi-amd64-bin",
                  "i386-pc", _signed("amd64", "x64", "x86_64-efi"), pc_serial=True, linux_console="ttyS0"),
    "arm64": Arch("arm64", "arm64-efi", "EFI/BOOT/BOOTAA64.EFI", IMAGE_FILE_MACHINE_ARM64, "grub-efi-arm64-bin",
                  None, _signed("arm64", "aa64", "arm64-efi"), pc_serial=False, linux_console="ttyAMA0"),
    # Debian (trixie on) builds GRUB for riscv64 but signs no shim for it.
    "riscv64": Arch("riscv64", "riscv64-efi", "EFI/BOOT/BOOTRISCV64.EFI", IMAGE_FILE_MACHINE_RISCV64,
                    "grub-efi-riscv64-bin", None, None, pc_serial=False, linux_console="ttyS0"),
}
"""Every architecture ``live --arch`` takes, by Debian's name."""
ALIASES = {"x86_64": "amd64", "x64": "amd64", "aarch64": "arm64"}


def get_arch(name: str | Arch) -> Arch:
    """The row for ``name`` (Debian's name, or x86_64 / aarch64)."""
    if isinstance(name, Arch):
        return name
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in ARCHITECTURES:
        raise InvalidInputError(f"arch: expected one of {', '.join(ARCHITECTURES)}, found {name!r}")
    return ARCHITECTURES[key]


def arch_of_platform(platform: str) -> Arch | None:
    """The architecture whose EFI or BIOS platform is ``platform``."""
    return next((a for a in ARCHITECTURES.values() if platform in (a.efi_platform, a.bios_platform)), None)


def host_arch() -> str:
    """Debian's name for the machine this runs on (x86_64 -> amd64, aarch64 -> arm64)."""
    import platform
    machine = platform.machine().lower()
    return ALIASES.get(machine, machine)
