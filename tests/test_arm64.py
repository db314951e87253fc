"""`sysexport live --arch arm64`, built on this x86 host, booted under AAVMF (qemu -M virt).

The arm64 packages (grub-efi-arm64-bin, shim-signed, shim-helpers-arm64-signed,
grub-efi-arm64-signed, the kernel's /boot and efivarfs.ko, busybox-static) are unpacked
into $SYSEXPORT_ARM64_ROOT (default /var/cache/sysexport-test/arm64) by tools/test; nothing
of arm64 is run on the host. Quick tier: the contribution (BOOTAA64.EFI an AArch64 PE image,
no BIOS parts, the signed chain), the riscv64 row and the errors. Slow tier (TCG,
cortex-a57): GRUB from a virtio disk and from a virtio-scsi CD boots Debian's arm64 kernel
to an init from busybox; with AAVMF's Secure Boot firmware (Microsoft's keys) a
`--secure-boot` image boots with SecureBoot = 1, and the unsigned image is refused.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import time

import pytest

from helpers import NO_SKIP, need
from helpers.linuxvm import BEGIN_MARK, END_RE, script_output
from helpers.qemuboot import BOOT_LINE, MARKER_LINE, serial_text

from sysexport.boot import grub
from sysexport.boot._structs import IMAGE_FILE_MACHINE_ARM64
from sysexport.boot.arch import ARCHITECTURES, get_arch
from sysexport.boot.pe import read_pe
from sysexport.errors import InvalidInputError, SysExportError

ROOT = os.environ.get("SYSEXPORT_ARM64_ROOT", "/var/cache/sysexport-test/arm64")
QEMU = "qemu-system-aarch64"
AAVMF_CODE = "/usr/share/AAVMF/AAVMF_CODE.fd"
AAVMF_VARS = "/usr/share/AAVMF/AAVMF_VARS.fd"
AAVMF_MS_CODE = "/usr/share/AAVMF/AAVMF_CODE.ms.fd"      # Secure Boot on, Microsoft's keys enrolled
AAVMF_MS_VARS = "/usr/share/AAVMF/AAVMF_VARS.ms.fd"
SECUREBOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def need_root() -> str:
    """The unpacked arm64 packages (tools/test makes them)."""
    wanted = [f"{ROOT}/usr/lib/grub/arm64-efi/kernel.img", f"{ROOT}/bin/busybox",
              f"{ROOT}/usr/lib/shim/shimaa64.efi.signed", f"{ROOT}/usr/lib/grub/arm64-efi-signed/gcdaa64.efi.signed"]
    missing = [p for p in wanted if not os.path.exists(p)] or ([] if glob.glob(f"{ROOT}/boot/vmlinuz-*")
                                                              else [f"{ROOT}/boot/vmlinuz-*"])
    if missing:
        msg = (f"arm64 packages not unpacked ({missing[0]} missing): run tools/test, which unpacks them into "
               f"{ROOT} (SYSEXPORT_ARM64_ROOT)")
        if NO_SKIP:
            pytest.fail(msg)
        pytest.skip(msg)
    return ROOT


def arm64_kernel() -> str:
    return sorted(glob.glob(f"{need_root()}/boot/vmlinuz-*"))[-1]


# ------------------------------------------------------------------------------ quick

def test_architecture_table():
    rows = {name: (a.efi_platform, a.efi_loader, a.bios_platform, a.signed is not None)
            for name, a in ARCHITECTURES.items()}
    assert rows == {"amd64": ("x86_64-efi", "EFI/BOOT/BOOTX64.EFI", "i386-pc", True),
                    "arm64": ("arm64-efi", "EFI/BOOT/BOOTAA64.EFI", None, True),
                    "riscv64": ("riscv64-efi", "EFI/BOOT/BOOTRISCV64.EFI", None, False)}
    assert get_arch("aarch64") is ARCHITECTURES["arm64"] and get_arch("x86_64") is ARCHITECTURES["amd64"]
    with pytest.raises(InvalidInputError, match="amd64, arm64, riscv64"):
        get_arch("mips")


def test_arm64_contribution_has_no_bios_parts():
    need("grub-mkimage")
    root = need_root()
    from sysexport.fileinfo import to_fileinfo
    contribution, setup = grub.boot_contribution(kernel=arm64_kernel(), initrd=b"initrd", cmdline="console=ttyAMA0",
                                                 arch="arm64", package_root=root)
    names = {i.name: i for i in map(to_fileinfo, contribution.files)}
    loader = names["EFI/BOOT/BOOTAA64.EFI"].source.read_all(1 << 24)
    pe = read_pe(loader)
    assert pe is not None and pe.machine == IMAGE_FILE_MACHINE_ARM64 and pe.subsystem == 10 and not pe.signed
    assert "EFI/BOOT/BOOTX64.EFI" not in names and "boot/grub/arm64-efi/normal.mod" in names
    assert not any("i386-pc" in n or "x86_64-efi" in n for n in names)
    assert contribution.eltorito == () and contribution.partitions == () and contribution.mbr_boot_code is None
    assert contribution.efi_from_esp and contribution.finalize is None
    cfg = names["boot/grub/grub.cfg"].source.read_all().decode()
    assert "serial" not in cfg and "linux /boot/vmlinuz console=ttyAMA0" in cfg    # the firmware's console
    assert setup.efi_loader == "EFI/BOOT/BOOTAA64.EFI" and setup.arch == "arm64"
    # Secure Boot: Debian's signed arm64 shim, GRUB (the CD image) and MokManager.
    contribution, setup = grub.boot_contribution(kernel=arm64_kernel(), initrd=b"initrd", arch="arm64",
                                                 secure_boot=True, package_root=root)
    names = {i.name: i for i in map(to_fileinfo, contribution.files)}
    for name, src in (("EFI/BOOT/BOOTAA64.EFI", "usr/lib/shim/shimaa64.efi.signed"),
                      ("EFI/BOOT/grubaa64.efi", "usr/lib/grub/arm64-efi-signed/gcdaa64.efi.signed"),
                      ("EFI/BOOT/mmaa64.efi", "usr/lib/shim/mmaa64.efi.signed")):
        with open(os.path.join(root, src), "rb") as f:
            assert names[name].source.read_all(1 << 24) == f.read(), name
    assert not any(n.startswith("boot/grub/arm64-efi/") for n in names)


def test_arm64_and_riscv64_errors(tmp_path):
    need("grub-mkimage")
    with pytest.raises(InvalidInputError, match="arm64 has no BIOS boot"):
        grub.boot_contribution(arch="arm64", bios=True, package_root=tmp_path)
    with pytest.raises(SysExportError, match=r"grub-efi-arm64-bin.*apt-get download grub-efi-arm64-bin:arm64"):
        grub.boot_contribution(arch="arm64", package_root=tmp_path)
    with pytest.raises(SysExportError, match="grub-efi-riscv64-bin"):
        grub.boot_contribution(arch="riscv64", package_root=tmp_path)
    with pytest.raises(InvalidInputError, match="no signed shim and GRUB for riscv64"):
        grub.boot_contribution(arch="riscv64", secure_boot=True, package_root=tmp_path)
    from sysexport.boot.secureboot import check_kernel
    with pytest.raises(InvalidInputError, match=r"built for AArch64 \(arm64\).*the image is for amd64"):
        check_kernel(arm64_kernel(), "amd64")
    check_kernel(arm64_kernel(), "arm64", secure_boot=True)


def test_cli_arm64_image(tmp_path, capsys):
    need("grub-mkimage", "sgdisk", "xorriso")
    from helpers import out
    from sysexport.cli import main
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"\0" * 512)
    image = tmp_path / "a.img"
    assert main(["live", "--arch", "arm64", "--package-root", need_root(), "--kernel", arm64_kernel(),
                 "--initrd", str(initrd), "-o", str(image)]) == 0
    assert "UEFI (arm64)" in capsys.readouterr().out
    parts = out(["sgdisk", "-p", str(image)])
    assert "EF00" in parts and "EF02" not in parts, parts
    report = out(["xorriso", "-indev", str(image), "-report_el_torito", "plain"])
    assert "UEFI" in report and "BIOS" not in report, report
    with open(image, "rb") as f:
        assert f.read(440) == bytes(440)            # no MBR boot code


# ------------------------------------------------------------------------------ qemu

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "{begin}"
echo "ARCH $(uname -m)"
echo "CMDLINE $(cat /proc/cmdline)"
insmod /lib/efivarfs.ko 2>/dev/null
mount -t efivarfs efivarfs /sys/firmware/efi/efivars && \
  echo "SECUREBOOT-VAR $(od -An -tu1 {var} | tr -s ' ' | sed 's/^ //')"
dmesg | grep -i -o "secure boot enabled" | head -n 1 | sed 's/^/DMESG /'
echo "@@SYSEXPORT-END rc=0@@"
poweroff -f
""".replace("{begin}", BEGIN_MARK).replace("{var}", SECUREBOOT_VAR)


def arm64_initramfs(path: str) -> str:
    """A newc initramfs (sysexport's CPIO) with arm64's static busybox and INIT."""
    from sysexport.cpio import CPIO
    root = need_root()
    c = CPIO(path, default_time=0)
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib"):
        c.add(("dir755", d))
    c.add({"name": "bin/busybox", "mode": 0o100755, "data_path": f"{root}/bin/busybox"})
    c.add(("chr600", "dev/console", (5, 1)))
    efivarfs = glob.glob(f"{root}/lib/modules/*/kernel/fs/efivarfs/efivarfs.ko")
    if efivarfs:
        c.add({"name": "lib/efivarfs.ko", "mode": 0o100644, "data_path": efivarfs[0]})
    c.add(("file755", "init", INIT))
    c.finish()
    return path


def arm64_live(tmp_path, name: str, *extra: str) -> str:
    need("grub-mkimage")
    from sysexport.cli import main
    image = str(tmp_path / f"{name}.img")
    initrd = arm64_initramfs(str(tmp_path / f"{name}.cpio"))
    assert main(["live", "--arch", "arm64", "--package-root", need_root(), "--kernel", arm64_kernel(),
                 "--initrd", initrd, "--cmdline", "console=ttyAMA0 panic=-1", "--timeout", "0",
                 "--label", "ARM64LIVE", "-o", image, *extra]) == 0
    return image


@pytest.fixture(scope="module")
def arm64_image(tmp_path_factory):
    return arm64_live(tmp_path_factory.mktemp("arm64"), "arm64")


def boot_aavmf(mode: str, image: str, workdir: str, expect: re.Pattern | str, *, secure: bool = False,
               deadline_s: float = 150) -> str:
    """qemu -M virt -cpu cortex-a57 with AAVMF (or its Secure Boot build): ``mode`` disk
    (virtio-blk), disk4k (virtio-blk with 4096-byte sectors) or cd (scsi-cd on virtio-scsi);
    the serial log once ``expect`` is in it."""
    code, store = (AAVMF_MS_CODE, AAVMF_MS_VARS) if secure else (AAVMF_CODE, AAVMF_VARS)
    need(QEMU, code, store)
    tag = f"{mode}{'-secure' if secure else ''}"
    log = os.path.join(workdir, f"aavmf-{tag}.log")
    vars_copy = os.path.join(workdir, f"aavmf-vars-{tag}.fd")
    shutil.copyfile(store, vars_copy)
    drives = {
        "disk": ["-drive", f"file={image},format=raw,if=none,id=d0,readonly=on",
                 "-device", "virtio-blk-pci,drive=d0,bootindex=1"],
        "disk4k": ["-drive", f"file={image},format=raw,if=none,id=d0,readonly=on", "-device",
                   "virtio-blk-pci,drive=d0,logical_block_size=4096,physical_block_size=4096,bootindex=1"],
        "cd": ["-device", "virtio-scsi-pci,id=scsi0",
               "-drive", f"file={image},format=raw,if=none,id=cd0,media=cdrom,readonly=on",
               "-device", "scsi-cd,drive=cd0,bootindex=1"],
    }[mode]
    cmd = [QEMU, "-M", "virt", "-cpu", "cortex-a57", "-m", "1024", "-nic", "none", "-nographic", "-no-reboot",
           "-monitor", "none", "-display", "none", "-serial", f"file:{log}",
           "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
           "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}", *drives]
    pattern = expect if isinstance(expect, re.Pattern) else re.compile(re.escape(expect))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    text = ""
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(0.25)
            if os.path.exists(log):
                text = serial_text(log)
                if pattern.search(text):
                    break
    finally:
        proc.kill()
        _, err = proc.communicate()
    text = serial_text(log)
    assert pattern.search(text), (f"AAVMF {tag}: {pattern.pattern!r} not on the serial port within {deadline_s} s; "
                                  f"qemu: {err.decode(errors='replace')[-500:]}\nlog tail:\n{text[-2500:]}")
    return text


@pytest.mark.slow
@pytest.mark.parametrize("mode,root", [("disk", "hd0"), ("disk4k", "hd0"), ("cd", "cd0")])
def test_arm64_boots_grub_and_linux(arm64_image, tmp_path, mode, root):
    """AAVMF runs BOOTAA64.EFI (GRUB built here from arm64-efi modules), which finds the
    marker and boots Debian's arm64 kernel with our initramfs to its init."""
    started = time.monotonic()
    text = boot_aavmf(mode, arm64_image, str(tmp_path), END_RE)
    m = BOOT_LINE.search(text)
    assert m and m.groups() == ("efi", root) and MARKER_LINE in text, text[-2500:]
    status, printed, _ = script_output(text)
    assert status == 0 and "ARCH aarch64" in printed, printed
    assert "CMDLINE BOOT_IMAGE=/boot/vmlinuz console=ttyAMA0 panic=-1" in printed, printed
    assert "error:" not in text.split(MARKER_LINE)[0], text[-2500:]          # grub.cfg ran cleanly
    print(f"arm64 {mode}: {time.monotonic() - started:.1f} s to the init's result")


@pytest.mark.slow
def test_arm64_secure_boot(tmp_path):
    """AAVMF with Secure Boot on and Microsoft's keys: the signed arm64 chain boots Debian's
    signed kernel (SecureBoot = 1); the image GRUB built here is refused."""
    need_root()
    image = arm64_live(tmp_path, "arm64-sb", "--secure-boot")
    text = boot_aavmf("disk", image, str(tmp_path), END_RE, secure=True)
    status, printed, _ = script_output(text)
    assert status == 0 and "ARCH aarch64" in printed, printed
    values = re.search(r"SECUREBOOT-VAR ([\d ]+)", printed)
    assert values and values.group(1).split()[-1] == "1", printed
    assert "DMESG Secure boot enabled" in printed, printed
    plain = arm64_live(tmp_path, "arm64-plain")
    text = boot_aavmf("disk", plain, str(tmp_path), re.compile(r"No bootable option"), secure=True, deadline_s=120)
    assert re.search(r"failed to load Boot\d+ [^\n]*: Access Denied", text), text[-2500:]
    assert "sysexport-boot:" not in text
