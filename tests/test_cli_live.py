"""`sysexport live` with the menu options of issue 14.

Quick: the generated grub.cfg (title, timeout, default, no serial, several entries) and a
user's own grub.cfg are read back from the image by bsdtar (the ISO) and mtools (the ESP),
the entries' kernels and initrds by bsdtar with their host bytes, each stored once; the
ids, --exclude and --owner reach a live image too (isoinfo, bsdtar).  Slow: a user's
grub.cfg boots and prints its marker (SeaBIOS from disk, OVMF from CD); two --entry
kernels, the second the default with timeout 0, boot Debian's kernel under SeaBIOS and
OVMF, which prints the second entry's command line.
"""
from __future__ import annotations

import json
import os

import pytest

from helpers import need, out, run
from helpers.qemuboot import boot_firmware, need_grub

from sysexport.cli import main

MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}


@pytest.fixture(autouse=True)
def _grub(sde):
    need_grub()


def live(*args: str) -> None:
    assert main(["live", *map(str, args)]) == 0


def esp_offset(image: str) -> int:
    need("sfdisk")
    table = json.loads(out(["sfdisk", "--json", image]))["partitiontable"]
    return int(table["partitions"][0]["start"]) * 512


def iso_file(image: str, name: str) -> bytes:
    need("bsdtar")
    return run(["bsdtar", "-xOf", image, name]).stdout


def esp_file(image: str, name: str) -> bytes:
    need("mtype")
    return run(["mtype", "-i", f"{image}@@{esp_offset(image)}", f"::/{name}"], env_extra=MTOOLS_ENV).stdout


def grub_cfg(image: str) -> str:
    """boot/grub/grub.cfg as the ISO and the ESP hold it (the same bytes in both)."""
    iso, esp = iso_file(image, "boot/grub/grub.cfg"), esp_file(image, "boot/grub/grub.cfg")
    assert iso == esp
    return iso.decode("utf-8")


@pytest.fixture
def fake_boot(tmp_path):
    """Two kernels and two initrds (bytes GRUB never runs here; not PE, so no Secure Boot)."""
    files = {}
    for name in ("vmlinuz-a", "vmlinuz-b", "initrd-a", "initrd-b"):
        files[name] = tmp_path / name
        files[name].write_bytes(f"{name} ".encode() * 1000)
    return files


def test_generated_menu_options_in_the_image(tmp_path, fake_boot):
    f = fake_boot
    image = str(tmp_path / "menu.img")
    live("--kernel", f["vmlinuz-a"], "--initrd", f["initrd-a"], "--cmdline", "quiet splash", "--title", "My Live",
         "--timeout", "3", "--no-serial", "--default", "2",
         "--entry", f"Rescue shell|{f['vmlinuz-b']}|{f['initrd-b']}|console=ttyS0 init=/bin/sh a|b",
         "--entry", f"Same kernel, no initrd|{f['vmlinuz-a']}||ro",
         "-o", image)
    cfg = grub_cfg(image)
    lines = cfg.splitlines()
    assert "set timeout=3" in lines and "set default=2" in lines
    assert not any(line.startswith(("serial", "terminal_input serial", "terminal_output serial")) for line in lines)
    assert "menuentry 'My Live' --id sysexport-linux {" in lines
    assert "  linux /boot/vmlinuz quiet splash" in lines and "  initrd /boot/initrd.img" in lines
    assert "menuentry 'Rescue shell' --id sysexport-linux-1 {" in lines
    assert "  linux /boot/vmlinuz-2 console=ttyS0 init=/bin/sh 'a|b'" in lines      # GRUB's quoting
    assert "  initrd /boot/initrd-2.img" in lines
    third = lines[lines.index("menuentry 'Same kernel, no initrd' --id sysexport-linux-2 {"):]
    assert third[1:3] == ["  linux /boot/vmlinuz ro", "}"]          # the same host kernel: stored once
    for name, host in (("boot/vmlinuz", "vmlinuz-a"), ("boot/vmlinuz-2", "vmlinuz-b"),
                       ("boot/initrd.img", "initrd-a"), ("boot/initrd-2.img", "initrd-b")):
        assert iso_file(image, name) == f[host].read_bytes() == esp_file(image, name), name
    names = out(["bsdtar", "-tf", image]).split()
    assert "boot/vmlinuz-3" not in names and "boot/initrd-3.img" not in names


def test_default_menu_keeps_serial_and_title(tmp_path, fake_boot):
    image = str(tmp_path / "plain.img")
    live("--kernel", fake_boot["vmlinuz-a"], "--initrd", fake_boot["initrd-a"], "-o", image)
    lines = grub_cfg(image).splitlines()
    assert "serial --unit=0 --speed=115200" in lines and "set timeout=5" in lines and "set default=0" in lines
    assert "menuentry Linux --id sysexport-linux {" in lines


def test_user_grub_cfg_used_as_is(tmp_path, fake_boot):
    cfg = tmp_path / "my.cfg"
    cfg.write_bytes(b"# mine\nset timeout=1\nmenuentry 'Mine' {\n  linux /boot/vmlinuz quiet\n}\n")
    image = str(tmp_path / "user.img")
    live("--grub-cfg", cfg, "--kernel", fake_boot["vmlinuz-a"], "-o", image)
    assert grub_cfg(image) == cfg.read_text()
    assert iso_file(image, "boot/vmlinuz") == fake_boot["vmlinuz-a"].read_bytes()


def test_live_takes_the_source_options(tmp_path, fake_boot):
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "keep" / "a.txt").write_bytes(b"a")
    (src / "keep" / "b.o").write_bytes(b"o")
    (src / "big.sfs").write_bytes(b"s" * 3000)
    os.chmod(src / "keep" / "a.txt", 0o640)
    image = str(tmp_path / "src.img")
    live("--kernel", fake_boot["vmlinuz-a"], f"{src}:payload", "--exclude", "*.o", "--iso-only", "*.sfs",
         "--publisher", "LIVE PUB", "-r", "-o", image)
    need("isoinfo")
    assert "Publisher id: LIVE PUB" in out(["isoinfo", "-d", "-i", image])
    listing = {line.split(None, 8)[8]: line.split()[0:4]
               for line in out(["bsdtar", "-tvnf", image]).splitlines()}
    assert listing["payload/keep/a.txt"] == ["-r--r--r--", "1", "0", "0"]
    assert "payload/keep/b.o" not in listing and "payload/big.sfs" in listing
    esp = out(["mdir", "-/", "-b", "-i", f"{image}@@{esp_offset(image)}", "::/payload"], env_extra=MTOOLS_ENV)
    assert "::/payload/keep/a.txt" in esp and "big.sfs" not in esp


# ------------------------------------------------------------------------------ boots (slow)

USER_CFG = b"""serial --unit=0 --speed=115200
terminal_output serial console
echo "USER-MENU-MARKER platform=${grub_platform}"
menuentry 'Users own entry' {
  echo unused
}
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode,platform", [("bios-disk", "pc"), ("uefi-cd", "efi")])
def test_user_grub_cfg_boots(tmp_path, fake_boot, mode, platform):
    cfg = tmp_path / "user.cfg"
    cfg.write_bytes(USER_CFG)
    image = str(tmp_path / "user.img")
    live("--grub-cfg", cfg, "-o", image)
    text = boot_firmware(mode, image, str(tmp_path), expect=f"USER-MENU-MARKER platform={platform}",
                         deadline_s=90 if mode.startswith("bios") else 150)
    assert "sysexport-boot:" not in text          # none of the generated menu's lines: the user's menu ran


ENTRY_SCRIPT = 'echo "cmdline: $(cat /proc/cmdline)"\n'


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bios-disk", "uefi-disk"])
def test_second_entry_is_the_default_and_boots(tmp_path, mode):
    from helpers import linuxvm
    linuxvm.need_linux()
    kernel, _ = linuxvm.find_kernel()
    initrd = linuxvm.build_initramfs(str(tmp_path / "initrd.img"), ENTRY_SCRIPT)
    image = str(tmp_path / "entries.img")
    base = "console=ttyS0 quiet panic=-1"
    live("--entry", f"First|{kernel}|{initrd}|{base} entry=first",
         "--entry", f"Second|{kernel}|{initrd}|{base} entry=second",
         "--default", "1", "--timeout", "0", "-o", image)
    names = out(["bsdtar", "-tf", image]).split()
    assert "boot/vmlinuz-2" in names and "boot/vmlinuz-3" not in names     # one kernel for both entries
    text = boot_firmware(mode, image, str(tmp_path), expect=linuxvm.END_RE, deadline_s=240)
    status, printed, problems = linuxvm.script_output(text)
    assert status == 0 and not problems, printed
    assert "entry=second" in printed and "entry=first" not in printed, printed


def test_json_names_the_entries_and_validates(tmp_path, fake_boot, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from sysexport.schemas import load, load_all
    f = fake_boot
    image = str(tmp_path / "j.img")
    assert main(["live", "--entry", f"One|{f['vmlinuz-a']}|{f['initrd-a']}|quiet", "--entry",
                 f"Two|{f['vmlinuz-b']}||", "--default", "1", "-o", image, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    registry = referencing.Registry().with_resources(
        (sid, referencing.Resource.from_contents(s)) for sid, s in load_all().items())
    jsonschema.Draft202012Validator(load("live"), registry=registry).validate(doc)
    boot = doc["boot"]
    assert boot["kernel"] is None and boot["grub_cfg"] is None
    assert boot["entries"] == [
        {"title": "One", "kernel": str(f["vmlinuz-a"]), "initrd": str(f["initrd-a"]), "cmdline": "quiet"},
        {"title": "Two", "kernel": str(f["vmlinuz-b"]), "initrd": None, "cmdline": ""}]
    assert "set default=1" in grub_cfg(image).splitlines()
    assert {"boot/vmlinuz-2", "boot/vmlinuz-3", "boot/initrd-2.img"} <= set(out(["bsdtar", "-tf", image]).split())


def test_extra_el_torito_entries_after_grubs(tmp_path, fake_boot):
    need("mkfs.fat", "xorriso", "isoinfo")
    src = tmp_path / "src"
    src.mkdir()
    run(["mkfs.fat", "-C", str(src / "extra-efi.img"), "720"])
    image = str(tmp_path / "extra.img")
    live("--kernel", fake_boot["vmlinuz-a"], str(src), "--efi-boot", "extra-efi.img", "-o", image)
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    rows = [line.split()[6:7] + line.split()[-2:] for line in report.splitlines()
            if line.startswith("El Torito boot img :")]
    listing = out(["isoinfo", "-l", "-R", "-i", image])
    line = next(r for r in listing.splitlines() if r.rstrip().endswith(" extra-efi.img"))
    lba = int(line.split("[")[1].split()[0])
    assert [r[0] for r in rows] == ["BIOS", "UEFI", "UEFI"], report      # GRUB's, yours, the ESP's
    assert rows[1][1:] == ["1440", str(lba)]
    assert "/boot/grub/i386-pc/eltorito.img" in report                  # GRUB's BIOS image stays the default
