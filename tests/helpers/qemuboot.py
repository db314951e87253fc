"""Booting images in qemu (TCG) the five ways of docs/testing.md, judged by the serial port."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from . import need

BOOT_LINE = re.compile(r"sysexport-boot: platform=(\w+) root=([\w,]+) END")
MARKER_LINE = "sysexport-boot: marker ok END"
ANSI_ESCAPE = re.compile(r"\x1b(\[[0-9;?=]*[A-Za-z]|[()][0-9A-Za-z]|[A-Za-z=>])")
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
QEMU = "qemu-system-x86_64"


def need_grub() -> None:
    need("grub-mkimage", "/usr/lib/grub/i386-pc/boot.img", "/usr/lib/grub/x86_64-efi/kernel.img")


# ------------------------------------------------------------------------------ qemu

def boot_firmware(mode: str, image: str, workdir: str, expect: str | re.Pattern = MARKER_LINE,
                  deadline_s: float = 90) -> str:
    """Boot ``image`` in qemu in one of the five modes; return the serial log.

    Kills qemu as soon as ``expect`` (a string or regex) shows up in the serial log, or at
    the deadline.  OVMF gets its own copy of the variable store for every run.
    """
    need(QEMU)
    log = os.path.join(workdir, f"serial-{mode}.log")
    cmd = [QEMU, "-nic", "none", "-nographic", "-no-reboot", "-m", "512", "-monitor", "none",
           "-display", "none", "-serial", f"file:{log}"]
    if mode.startswith("uefi"):
        need(OVMF_CODE, OVMF_VARS)
        vars_copy = os.path.join(workdir, f"vars-{mode}.fd")
        shutil.copyfile(OVMF_VARS, vars_copy)
        cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,file={vars_copy}"]
    cmd += {
        "bios-cd": ["-cdrom", image, "-boot", "d"],
        "bios-disk": ["-drive", f"file={image},format=raw,if=ide", "-boot", "c"],
        "uefi-cd": ["-cdrom", image],
        "uefi-disk": ["-drive", f"file={image},format=raw,if=ide"],
        "uefi-disk4k": ["-drive", f"file={image},format=raw,if=none,id=d0", "-device",
                        "virtio-blk-pci,drive=d0,logical_block_size=4096,physical_block_size=4096,bootindex=1"],
    }[mode]
    pattern = expect if isinstance(expect, re.Pattern) else re.compile(re.escape(expect))
    text = ""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(0.25)
            if os.path.exists(log):
                text = serial_text(log)
                if _shows(pattern, text):
                    break
    finally:
        proc.kill()
        _, err = proc.communicate()
    text = serial_text(log)
    assert _shows(pattern, text), (f"{mode}: {pattern.pattern!r} not on the serial port within {deadline_s} s; "
                                  f"qemu stderr: {err.decode(errors='replace')[-500:]}\nlog tail:\n{text[-1500:]}")
    return text


def _shows(pattern: re.Pattern, text: str) -> bool:
    """Whether the serial text holds ``pattern``, also where a carriage return of the
    firmware's copy of the screen (SeaBIOS sends the VGA text to the serial port beside
    isolinux's own serial output) landed inside the line."""
    return bool(pattern.search(text) or pattern.search(text.replace("\r", "")))


def serial_text(log: str) -> str:
    """The serial log without terminal escapes (GRUB's terminfo moves the cursor mid-line)."""
    with open(log, "rb") as f:
        return ANSI_ESCAPE.sub("", f.read().decode("latin-1"))


def boot_report(text: str) -> tuple[str, str]:
    """(grub_platform, root) from the first complete report line."""
    m = BOOT_LINE.search(text)
    assert m, text[-1500:]
    return m.group(1), m.group(2)
