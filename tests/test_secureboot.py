"""Secure Boot: `sysexport live --secure-boot` through Debian's signed shim and GRUB.

Quick tier: the PE/COFF reading (certificate table) on hand-built images and on Debian's
signed and unsigned files, the facts read from Debian's signed GRUB (its prefix and
embedded config), the contribution's files, the errors (missing packages, an unsigned
kernel). Slow tier (qemu, TCG): OVMF with Secure Boot enforced and Microsoft's keys
enrolled (OVMF_CODE_4M.secboot.fd + OVMF_VARS_4M.ms.fd, q35 with SMM) boots the image with
Debian's signed kernel to its init from a virtio disk, a 4096-byte-sector virtio disk and a
CD, and the init reads the SecureBoot variable; the same firmware refuses an image made
without --secure-boot; SeaBIOS still boots the image from CD and disk. See docs/booting.md.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from helpers import need, out, run
from helpers.qemuboot import MARKER_LINE, boot_firmware, boot_report, need_grub, serial_text

from sysexport.boot import _structs as S
from sysexport.boot import grub
from sysexport.boot.pe import read_pe
from sysexport.boot.secureboot import check_kernel, find_signed_chain, grub_image_objects, signed_grub_config
from sysexport.errors import InvalidInputError, SysExportError

SHIM = "/usr/lib/shim/shimx64.efi.signed"
SHIM_UNSIGNED = "/usr/lib/shim/shimx64.efi"
MOKMANAGER = "/usr/lib/shim/mmx64.efi.signed"
GCD = "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed"
GRUBX64 = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
OVMF_SECBOOT_CODE = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
OVMF_MS_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
SECUREBOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def need_signed() -> None:
    need(SHIM, MOKMANAGER, GCD, GRUBX64)


def signed_kernel() -> str:
    from helpers import linuxvm
    linuxvm.need_linux()
    kernel, _ = linuxvm.find_kernel()
    return kernel


# ------------------------------------------------------------------------------ PE/COFF

def make_pe(*, machine=S.IMAGE_FILE_MACHINE_AMD64, certificates=(), pe32=False, directories=16,
            cert_size=None) -> bytes:
    """A minimal PE image built from the declarations: headers, one section, and an
    attribute certificate table of ``certificates`` ((revision, type, payload) each)."""
    lfanew = 0x80
    magic = S.IMAGE_NT_OPTIONAL_HDR32_MAGIC if pe32 else S.IMAGE_NT_OPTIONAL_HDR64_MAGIC
    body = b"\xc3" * 0x200
    table = b""
    for revision, kind, payload in certificates:
        entry = S.WinCertificate.build(dict(dwLength=8 + len(payload), wRevision=revision,
                                            wCertificateType=kind)) + payload
        table += entry + bytes(-len(entry) % 8)
    zero = {k: 0 for k in ("MajorLinkerVersion", "MinorLinkerVersion", "SizeOfCode", "SizeOfInitializedData",
                           "SizeOfUninitializedData", "BaseOfCode", "ImageBase", "MajorOperatingSystemVersion",
                           "MinorOperatingSystemVersion", "MajorImageVersion", "MinorImageVersion",
                           "MajorSubsystemVersion", "MinorSubsystemVersion", "Win32VersionValue", "CheckSum",
                           "DllCharacteristics", "SizeOfStackReserve", "SizeOfStackCommit", "SizeOfHeapReserve",
                           "SizeOfHeapCommit", "LoaderFlags")}
    opt_probe = dict(zero, Magic=magic, BaseOfData=0 if pe32 else None, AddressOfEntryPoint=0x1000,
                     SectionAlignment=0x1000, FileAlignment=0x200, SizeOfImage=0x2000, SizeOfHeaders=0x200,
                     Subsystem=10, NumberOfRvaAndSizes=directories,
                     DataDirectory=[dict(VirtualAddress=0, Size=0)] * directories)
    opt_size = len(S.ImageOptionalHeader.build(opt_probe))
    headers_end = lfanew + 24 + opt_size + S.IMAGE_SIZEOF_SECTION_HEADER
    cert_offset = 0x200 + len(body)
    dirs = [dict(VirtualAddress=0, Size=0)] * directories
    if table and directories > 4:
        dirs = dirs[:4] + [dict(VirtualAddress=cert_offset, Size=len(table) if cert_size is None else cert_size)] \
            + dirs[5:]
    opt = S.ImageOptionalHeader.build(dict(opt_probe, DataDirectory=dirs))
    dos = S.ImageDosHeader.build(dict(e_magic=b"MZ", e_stub=bytes(0x3A), e_lfanew=lfanew))
    fh = S.ImageFileHeader.build(dict(Machine=machine, NumberOfSections=1, TimeDateStamp=0, PointerToSymbolTable=0,
                                      NumberOfSymbols=0, SizeOfOptionalHeader=opt_size, Characteristics=0x22))
    sec = S.ImageSectionHeader.build(dict(Name=b".text\0\0\0", VirtualSize=len(body), VirtualAddress=0x1000,
                                          SizeOfRawData=len(body), PointerToRawData=0x200, PointerToRelocations=0,
                                          PointerToLinenumbers=0, NumberOfRelocations=0, NumberOfLinenumbers=0,
                                          Characteristics=0x60000020))
    head = (dos + bytes(lfanew - len(dos)) + b"PE\0\0" + fh + opt + sec)
    assert len(head) == headers_end
    return head + bytes(0x200 - len(head)) + body + table


def test_pe_certificate_table_hand_built():
    signed = make_pe(certificates=[(S.WIN_CERT_REVISION_2_0, S.WIN_CERT_TYPE_PKCS_SIGNED_DATA, b"\x30\x82" + bytes(61))])
    img = read_pe(signed)
    assert img is not None and img.machine == S.IMAGE_FILE_MACHINE_AMD64 and img.subsystem == 10
    assert img.signed and [s.name for s in img.sections] == [".text"]
    (c,) = img.certificates
    assert (c.offset, c.length, c.revision, c.type) == (0x400, 71, 0x200, 2)
    # Two entries, the second 8-byte aligned after the first; PE32 headers too.
    two = make_pe(pe32=True, machine=S.IMAGE_FILE_MACHINE_I386,
                  certificates=[(S.WIN_CERT_REVISION_2_0, S.WIN_CERT_TYPE_X509, b"x" * 5),
                                (S.WIN_CERT_REVISION_2_0, S.WIN_CERT_TYPE_PKCS_SIGNED_DATA, b"y" * 16)])
    img = read_pe(two)
    assert img is not None and img.optional_magic == S.IMAGE_NT_OPTIONAL_HDR32_MAGIC and img.signed
    assert [(c.offset, c.type) for c in img.certificates] == [(0x400, 1), (0x400 + 16, 2)]
    # Not signed: no table, only an X.509 entry, a revision 1.0 entry, too few directories.
    for unsigned in (make_pe(), make_pe(certificates=[(S.WIN_CERT_REVISION_2_0, S.WIN_CERT_TYPE_X509, b"z")]),
                     make_pe(certificates=[(S.WIN_CERT_REVISION_1_0, S.WIN_CERT_TYPE_PKCS_SIGNED_DATA, b"z")]),
                     make_pe(directories=4, certificates=[(0x200, 2, b"z")])):
        img = read_pe(unsigned)
        assert img is not None and not img.signed
    # Not PE at all; damaged tables are named.
    assert read_pe(b"\x7fELF" + bytes(100)) is None and read_pe(b"MZ" + bytes(200)) is None
    with pytest.raises(InvalidInputError, match="past its end"):
        read_pe(make_pe(certificates=[(0x200, 2, b"z" * 8)], cert_size=4096))
    bad = bytearray(signed)
    bad[0x400:0x404] = (3).to_bytes(4, "little")       # dwLength below the header's 8 bytes
    with pytest.raises(InvalidInputError, match="dwLength 3"):
        read_pe(bytes(bad))


def test_pe_reads_debian_files_as_sbverify_does():
    need_signed()
    for path, signed in ((SHIM, True), (SHIM_UNSIGNED, False), (GCD, True), (MOKMANAGER, True)):
        img = read_pe(path)
        assert img is not None and img.machine == S.IMAGE_FILE_MACHINE_AMD64 and img.signed is signed, path
        if shutil.which("sbverify"):
            listing = subprocess.run(["sbverify", "--list", path], capture_output=True, text=True).stdout
            assert ("signature 1" in listing) is signed, listing
            assert listing.count("image signature issuers") == len(img.certificates), listing
    # Debian's kernel: an EFI-stub PE image with one Authenticode signature.
    kernel = signed_kernel()
    img = read_pe(kernel)
    assert img is not None and img.signed and img.certificate_table[0] + img.certificate_table[1] == img.size
    check_kernel(kernel, "amd64", secure_boot=True)


def test_signed_grub_facts():
    """Where Debian's signed GRUB looks for grub.cfg: read from the images themselves."""
    need_signed()
    need("mtype")
    assert signed_grub_config(GCD) == ("/boot/grub", "normal (memdisk)/grub.cfg\n")
    assert signed_grub_config(GRUBX64) == ("/EFI/debian", "normal (memdisk)/grub.cfg\n")
    (memdisk,) = [data for kind, data in grub_image_objects(GCD) if kind == S.OBJ_TYPE_MEMDISK]
    import tempfile
    with tempfile.NamedTemporaryFile() as f:
        f.write(memdisk)
        f.flush()
        cfg = out(["mtype", "-i", f.name, "::grub.cfg"], env_extra={"MTOOLS_SKIP_CHECK": "1"})
    lines = [ln.strip() for ln in cfg.splitlines() if ln.strip()]
    assert lines == ['if [ -z "$prefix" -o ! -e "$prefix" ]; then',
                     "if ! search --file --set=root /.disk/info; then",
                     "search --file --set=root /.disk/mini-info", "fi", "set prefix=($root)/boot/grub", "fi",
                     "if [ -e $prefix/x86_64-efi/grub.cfg ]; then", "source $prefix/x86_64-efi/grub.cfg",
                     "elif [ -e $prefix/grub.cfg ]; then", "source $prefix/grub.cfg", "else",
                     "source $cmdpath/grub.cfg", "fi"], cfg
    names = {kind for kind, _ in grub_image_objects(GCD)}
    assert S.OBJ_TYPE_ELF in names and S.OBJ_TYPE_DISABLE_SHIM_LOCK not in names
    with pytest.raises(InvalidInputError, match="mods"):
        grub_image_objects(SHIM)


# ------------------------------------------------------------------------------ the contribution

def test_secure_boot_contribution(tmp_path):
    need_grub()
    need_signed()
    from sysexport.fileinfo import to_fileinfo
    kernel = signed_kernel()
    contribution, setup = grub.boot_contribution(kernel=kernel, initrd=b"initrd", cmdline="console=ttyS0",
                                                 secure_boot=True, volume_label="SB")
    names = {i.name: i for i in map(to_fileinfo, contribution.files)}
    assert names["EFI/BOOT/BOOTX64.EFI"].source.read_all(1 << 24) == open(SHIM, "rb").read()
    assert names["EFI/BOOT/grubx64.efi"].source.read_all(1 << 24) == open(GCD, "rb").read()
    assert names["EFI/BOOT/mmx64.efi"].source.read_all(1 << 24) == open(MOKMANAGER, "rb").read()
    assert not any(n.startswith("boot/grub/x86_64-efi/") for n in names), "no EFI modules under Secure Boot"
    assert "boot/grub/i386-pc/normal.mod" in names and "boot/grub/i386-pc/eltorito.img" in names
    assert not any("fbx64" in n or n.endswith(".CSV") for n in names)
    cfg = names["boot/grub/grub.cfg"].source.read_all().decode()
    assert "insmod" not in cfg and "linux /boot/vmlinuz console=ttyS0" in cfg
    assert contribution.efi_from_esp and len(contribution.partitions) == 1 and contribution.mbr_boot_code
    assert setup.secure_boot and setup.signed is not None and setup.signed.grub_prefix == "/boot/grub"
    # Another marker than the same image without Secure Boot (both could be plugged in at once).
    _, plain = grub.boot_contribution(kernel=kernel, initrd=b"initrd", cmdline="console=ttyS0", volume_label="SB")
    assert plain.marker != setup.marker


def test_missing_packages_are_named(tmp_path):
    from sysexport import ISO9660Hybrid
    with pytest.raises(SysExportError, match="shim-signed") as e:
        find_signed_chain("amd64", package_root=tmp_path)
    assert str(tmp_path) in str(e.value) and "apt-get download shim-signed:amd64" in str(e.value)
    assert "grub-efi-amd64-signed:amd64" in str(e.value)
    (tmp_path / "usr/lib/shim").mkdir(parents=True)
    for name in ("shimx64.efi.signed", "mmx64.efi.signed"):
        (tmp_path / "usr/lib/shim" / name).write_bytes(b"")
    with pytest.raises(SysExportError, match="gcdx64.efi.signed is missing.*grub-efi-amd64-signed"):
        find_signed_chain("amd64", package_root=tmp_path)
    with pytest.raises(InvalidInputError, match="no signed shim and GRUB for riscv64"):
        find_signed_chain("riscv64")
    need_grub()
    h = ISO9660Hybrid(str(tmp_path / "x.img"))
    with pytest.raises(SysExportError, match="shim-signed"):
        grub.make_bootable(h, secure_boot=True, package_root=tmp_path / "empty", grub_lib_dir="/usr/lib/grub")
    with pytest.raises(InvalidInputError, match="needs efi"):
        grub.make_bootable(h, secure_boot=True, efi=False)
    assert list(h.iso.tree.walk()) == [h.iso.tree.root] and h.iso.boot_entries == [] and not h.efi_boot


def test_unsigned_kernel_is_refused(tmp_path, capsys):
    need_grub()
    need_signed()
    from sysexport.cli import main
    unsigned = tmp_path / "vmlinuz-unsigned"
    unsigned.write_bytes(make_pe())
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"\0" * 512)
    with pytest.raises(InvalidInputError, match="no Authenticode signature.*sbsign"):
        check_kernel(unsigned, secure_boot=True)
    check_kernel(unsigned)                      # without Secure Boot it is fine
    with pytest.raises(InvalidInputError, match="not a PE/COFF image"):
        check_kernel(b"bzImage without EFI stub", secure_boot=True)
    with pytest.raises(InvalidInputError, match="AArch64.*for amd64"):
        check_kernel(make_pe(machine=S.IMAGE_FILE_MACHINE_ARM64))
    rc = main(["live", "--secure-boot", "--kernel", str(unsigned), "--initrd", str(initrd),
               "-o", str(tmp_path / "x.img")])
    err = capsys.readouterr().err
    assert rc != 0 and "no Authenticode signature" in err and str(unsigned) in err, err
    assert not (tmp_path / "x.img").exists()


# ------------------------------------------------------------------------------ firmware

INIT_SCRIPT = r"""
insmod /lib/modules/efivarfs.ko 2>/dev/null
mount -t efivarfs efivarfs /sys/firmware/efi/efivars || echo "EFIVARFS-MOUNT-FAILED"
echo "SECUREBOOT-VAR $(od -An -tu1 {var} | tr -s ' ' | sed 's/^ //')"
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
echo "LOCKDOWN $(cat /sys/kernel/security/lockdown 2>/dev/null || echo none)"
dmesg | grep -i -o "secure boot enabled" | head -n 1 | sed 's/^/DMESG /'
echo "CMDLINE $(cat /proc/cmdline)"
""".replace("{var}", SECUREBOOT_VAR)


def boot_secure(mode: str, image: str, workdir: str, expect: re.Pattern | str, deadline_s: float = 170) -> str:
    """Boot ``image`` under OVMF with Secure Boot enforced and Microsoft's keys enrolled
    (q35 with SMM, the secure pflash); ``mode``: disk (virtio-blk), disk4k (virtio-blk
    with 4096-byte sectors) or cd.  Returns the serial log once ``expect`` is in it."""
    need("qemu-system-x86_64", OVMF_SECBOOT_CODE, OVMF_MS_VARS)
    log = os.path.join(workdir, f"secboot-{mode}.log")
    vars_copy = os.path.join(workdir, f"secboot-vars-{mode}.fd")
    shutil.copyfile(OVMF_MS_VARS, vars_copy)
    drives = {
        "disk": ["-drive", f"file={image},format=raw,if=none,id=d0,readonly=on",
                 "-device", "virtio-blk-pci,drive=d0,bootindex=1"],
        "disk4k": ["-drive", f"file={image},format=raw,if=none,id=d0,readonly=on",
                   "-device", "virtio-blk-pci,drive=d0,logical_block_size=4096,physical_block_size=4096,bootindex=1"],
        "cd": ["-drive", f"file={image},format=raw,if=none,id=cd0,media=cdrom,readonly=on",
               "-device", "ide-cd,drive=cd0,bootindex=1"],
    }[mode]
    cmd = ["qemu-system-x86_64", "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
           "-nic", "none", "-nographic", "-no-reboot", "-m", "512", "-monitor", "none", "-display", "none",
           "-serial", f"file:{log}",
           "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_SECBOOT_CODE}",
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
    assert pattern.search(text), (f"secure boot {mode}: {pattern.pattern!r} not on the serial port within "
                                  f"{deadline_s} s; qemu: {err.decode(errors='replace')[-500:]}\n"
                                  f"log tail:\n{text[-2500:]}")
    return text


def _live(tmp_path, name: str, *extra: str) -> str:
    """`sysexport live` with Debian's kernel and an initramfs whose init runs INIT_SCRIPT."""
    from helpers import linuxvm
    from sysexport.cli import main
    kernel = signed_kernel()
    _, moddir = linuxvm.find_kernel()
    efivarfs = linuxvm._module_bytes(moddir, "efivarfs")
    initrd = linuxvm.build_initramfs(str(tmp_path / f"{name}.cpio"), INIT_SCRIPT,
                                     extra=[("file644", "lib/modules/efivarfs.ko", efivarfs)] if efivarfs else [])
    image = str(tmp_path / f"{name}.img")
    assert main(["live", "--kernel", kernel, "--initrd", initrd, "--cmdline", "console=ttyS0 panic=-1",
                 "--label", "SECBOOT", "--timeout", "0", "-o", image, *extra]) == 0
    return image


@pytest.fixture(scope="module")
def secure_image(tmp_path_factory):
    need_grub()
    need_signed()
    return _live(tmp_path_factory.mktemp("secboot"), "secboot", "--secure-boot")


@pytest.mark.slow
@pytest.mark.parametrize("mode,root", [("disk", "hd0,gpt1"), ("disk4k", "hd0,gpt1"), ("cd", "cd0")])
def test_secure_boot_boots_debian_kernel(secure_image, tmp_path, mode, root):
    """shim (Microsoft's signature) -> signed GRUB -> signed kernel -> our init, which reads
    SecureBoot = 1; GRUB read /boot/grub/grub.cfg from the device it came from."""
    from helpers import linuxvm
    started = time.monotonic()
    text = boot_secure(mode, secure_image, str(tmp_path), linuxvm.END_RE)
    status, printed, problems = linuxvm.script_output(text)
    assert status == 0 and not problems, printed
    assert boot_report(text) == ("efi", root)
    assert "sysexport-boot: marker ok END" in text
    values = re.search(r"SECUREBOOT-VAR ([\d ]+)", printed)
    assert values and values.group(1).split()[-1] == "1", printed      # attributes (4 bytes), then 1
    assert "DMESG Secure boot enabled" in printed and "[integrity]" in printed, printed
    assert "prohibited by secure boot policy" not in text and "Access Denied" not in text
    print(f"secure boot {mode}: {time.monotonic() - started:.1f} s to the init's result")


@pytest.mark.slow
def test_unsigned_image_is_refused_by_the_same_firmware(tmp_path):
    """The negative control: the GRUB that `live` builds without --secure-boot is refused,
    so the firmware above really enforces signatures."""
    need_grub()
    image = _live(tmp_path, "plain")
    text = boot_secure("disk", image, str(tmp_path),
                       re.compile(r"No bootable option|failed to (load|start) Boot\d+ \"EFI Internal Shell\""),
                       deadline_s=120)
    assert re.search(r"failed to load Boot\d+ \"UEFI Misc Device\"[^\n]*: Access Denied", text), text[-2500:]
    assert "sysexport-boot:" not in text


@pytest.mark.slow
@pytest.mark.parametrize("mode,expected", [("bios-cd", ("pc", "cd")), ("bios-disk", ("pc", "hd0"))])
def test_secure_boot_image_still_boots_bios(secure_image, tmp_path, mode, expected):
    text = boot_firmware(mode, secure_image, str(tmp_path), expect=MARKER_LINE, deadline_s=90)
    assert boot_report(text) == expected


def test_secure_boot_image_layout(secure_image):
    """What the firmware and shim read: the ESP's EFI/BOOT, the El Torito entries."""
    need("xorriso", "sgdisk")
    report = out(["xorriso", "-indev", secure_image, "-report_el_torito", "plain"])
    assert "BIOS" in report and "UEFI" in report, report
    listing = out(["xorriso", "-indev", secure_image, "-find", "/EFI/BOOT", "-type", "f"])
    for name in ("BOOTX64.EFI", "grubx64.efi", "mmx64.efi"):
        assert f"/EFI/BOOT/{name}" in listing, listing
    assert "EF00" in out(["sgdisk", "-p", secure_image])
    run(["xorriso", "-osirrox", "on", "-indev", secure_image, "-extract", "/EFI/BOOT/BOOTX64.EFI",
         secure_image + ".shim"])
    with open(secure_image + ".shim", "rb") as a, open(SHIM, "rb") as b:
        assert a.read() == b.read()
