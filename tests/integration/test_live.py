"""`sysexport live`: one command, an image that boots five ways, and a real Linux boot.

The image carries a payload of more than 48 MiB, so the ESP is larger than El Torito's
16-bit count of 512-byte sectors can describe (UEFI from CD must still work).  GRUB reports
on the serial port which platform it runs on and that it found the image's marker file; in
BIOS-from-disk and UEFI-from-disk mode GRUB goes on to boot Debian's kernel with an
initramfs written by sysexport's CPIO, whose init mounts the disk's ISO view and its ESP
and prints the sha256 of every payload file.
"""
from __future__ import annotations

import os
import random

import pytest

from helpers import need, out, sha256_file
from helpers.qemuboot import MARKER_LINE, boot_firmware, boot_report, need_grub

pytestmark = pytest.mark.slow      # the module's image holds Debian's kernel; its tests boot it in qemu

MIB = 1 << 20

INIT_SCRIPT = r"""
mkdir -p /iso /esp
# The whole disk (ISO view) and its partition cannot be mounted at once: the kernel's
# exclusive claim on /dev/sda makes /dev/sda1 busy.  One after the other.
for view in iso esp; do
  if [ $view = iso ]; then mount -t iso9660 -o ro,iocharset=utf8 /dev/sda /$view || echo "MOUNT-FAIL $view"
  else mount -t vfat -o ro,iocharset=utf8 /dev/sda1 /$view || echo "MOUNT-FAIL $view"; fi
  cd /$view/payload && find . -type f | sort | while read -r f; do
    echo "SUM $view $(sha256sum "$f")"
  done
  cd /
  umount /$view
done
echo "cmdline: $(cat /proc/cmdline)"
"""


@pytest.fixture(scope="module")
def live_image(tmp_path_factory):
    need_grub()
    from helpers import linuxvm
    linuxvm.need_linux()
    d = tmp_path_factory.mktemp("live")
    payload = d / "payload"
    (payload / "data").mkdir(parents=True)
    rnd = random.Random(7)
    (payload / "data" / "big.bin").write_bytes(rnd.randbytes(48 * MIB + 12345))
    (payload / "Grüße.txt").write_text("unicode name\n", encoding="utf-8")
    (payload / "a file with spaces.txt").write_bytes(b"spaces\n")
    for size in (0, 1, 2047, 2048, 2049):
        (payload / f"s{size}.bin").write_bytes(rnd.randbytes(size))
    kernel, _ = linuxvm.find_kernel()
    initrd = linuxvm.build_initramfs(str(d / "initrd.img"), INIT_SCRIPT, wait_devices=["/dev/sda1"])
    image = str(d / "live.img")
    from sysexport.cli import main
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        rc = main(["live", "--kernel", kernel, "--initrd", initrd, "--cmdline", "console=ttyS0 quiet panic=-1",
                   "--add-tree", f"{payload}:payload", "--label", "LIVETEST", "--timeout", "0", "-o", image])
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old
    assert rc == 0
    sums = {}
    for root, _dirs, names in os.walk(payload):
        for n in names:
            p = os.path.join(root, n)
            sums["./" + os.path.relpath(p, payload)] = sha256_file(p)
    return {"image": image, "sums": sums, "dir": d}


def test_live_image_structure(live_image):
    need("sgdisk", "xorriso")
    image = live_image["image"]
    assert "No problems found" in out(["sgdisk", "-v", image])
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    assert "BIOS" in report and "UEFI" in report, report
    # The ESP is past what El Torito's 16-bit count of 512-byte sectors can describe.
    parts = out(["sgdisk", "-p", image])
    assert "EF00" in parts and "EF02" in parts, parts


@pytest.mark.parametrize("mode,expected", [("bios-cd", ("pc", "cd")), ("bios-disk", ("pc", "hd0")),
                                           ("uefi-cd", ("efi", "cd0")), ("uefi-disk", ("efi", "hd0")),
                                           ("uefi-disk4k", ("efi", "hd0"))])
def test_live_boots_five_ways(live_image, tmp_path, mode, expected):
    text = boot_firmware(mode, live_image["image"], str(tmp_path), expect=MARKER_LINE,
                         deadline_s=90 if mode.startswith("bios") else 150)
    assert boot_report(text) == expected


@pytest.mark.parametrize("mode", ["bios-disk", "uefi-disk"])
def test_live_boots_linux_and_files_match(live_image, tmp_path, mode):
    from helpers import linuxvm
    text = boot_firmware(mode, live_image["image"], str(tmp_path), expect=linuxvm.END_RE, deadline_s=240)
    status, printed, problems = linuxvm.script_output(text)
    assert status == 0 and not problems, printed
    assert "MOUNT-FAIL" not in printed, printed
    seen: dict[str, dict[str, str]] = {"iso": {}, "esp": {}}
    for line in printed.splitlines():
        if line.startswith("SUM "):
            _, view, rest = line.split(" ", 2)
            digest, name = rest.split("  ", 1)
            seen[view][name.encode("latin-1").decode("utf-8")] = digest  # the serial log is read as latin-1
    assert seen["iso"] == live_image["sums"]
    assert seen["esp"] == live_image["sums"]
    assert boot_report(text)[0] == ("pc" if mode.startswith("bios") else "efi")
