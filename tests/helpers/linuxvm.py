"""The Linux kernel as an independent reader of images (test support, not a test file).

Boots Debian's kernel in qemu (TCG) with an initramfs written by :class:`sysexport.cpio.CPIO`
and lets a shell script run against attached images; see "The Linux kernel as a reader" in
docs/testing.md.

Needs (Debian packages): ``qemu-system-x86`` (qemu-system-x86_64), ``linux-image-amd64``
(a kernel /boot/vmlinuz-VERSION with its modules in /lib/modules/VERSION), and
``busybox-static`` (/bin/busybox, statically linked).  Override with the environment
variables SYSEXPORT_LINUX_KERNEL (a vmlinuz path; its modules are found by the version in
its name) and SYSEXPORT_BUSYBOX.  No KVM is needed; one boot takes about 6 s on an idle machine here, 10-17 s under load.

The initramfs holds /bin/busybox with a symlink per applet, /dev/console, the kernel
modules of ``MODULES`` (decompressed when the distribution ships .ko.xz/.ko.zst/.ko.gz, so
that busybox insmod never depends on its decompression support), and an /init that loads
them in order, waits for the attached devices, runs the caller's script between markers
on the serial console (ttyS0) and powers off.
"""
from __future__ import annotations

import glob
import gzip
import lzma
import os
import re
import stat
import subprocess
import sys
from typing import Iterable, Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from sysexport.cpio import CPIO  # noqa: E402

import pytest  # noqa: E402

from . import NO_SKIP, need  # noqa: E402

# In this order (dependencies first); see docs/testing.md.
MODULES = ("scsi_common scsi_mod libata ata_piix cdrom sr_mod crct10dif_common crct10dif_generic "
           "crc-t10dif crc64 crc64-rocksoft t10-pi sd_mod isofs fat vfat nls_cp437 nls_iso8859-1 "
           "nls_utf8 virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci "
           "virtio_blk").split()

BEGIN_MARK = "@@SYSEXPORT-BEGIN@@"
END_RE = re.compile(r"@@SYSEXPORT-END rc=(\d+)@@")
QEMU = "qemu-system-x86_64"
KERNEL_CMDLINE = "console=ttyS0 quiet panic=-1"

TYPE_CHARS = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c",
              stat.S_IFBLK: "b", stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}


class LinuxVMError(AssertionError):
    """The VM did not boot, did not finish the script, or the script reported a failure."""


# ------------------------------------------------------------------------------ the pieces

def find_kernel() -> tuple[str, str]:
    """(vmlinuz path, module directory) of the installed Debian kernel."""
    kernel = os.environ.get("SYSEXPORT_LINUX_KERNEL")
    candidates = [kernel] if kernel else sorted(glob.glob("/boot/vmlinuz-*"))
    for path in reversed(candidates):
        version = os.path.basename(path)[len("vmlinuz-"):]
        moddir = f"/lib/modules/{version}"
        if os.path.isdir(moddir) and os.access(path, os.R_OK):
            return path, moddir
    raise LinuxVMError("no readable /boot/vmlinuz-VERSION with /lib/modules/VERSION "
                       "(apt-get install linux-image-amd64)")


def need_linux() -> None:
    """Skip (user machine) or fail (CI) unless qemu, a readable kernel and static busybox are here."""
    need(QEMU, os.environ.get("SYSEXPORT_BUSYBOX", "/bin/busybox"))
    try:
        find_kernel()
    except LinuxVMError as e:
        # Debian's /boot/vmlinuz-* is readable by root only: non-root runs need a readable copy.
        msg = f"{e}; or set SYSEXPORT_LINUX_KERNEL to a readable copy"
        if NO_SKIP:
            pytest.fail(msg)
        pytest.skip(msg)


def _module_bytes(moddir: str, name: str) -> bytes | None:
    """The module's ELF bytes (decompressed), or None when it is built into the kernel."""
    variants = {name, name.replace("-", "_"), name.replace("_", "-")}
    found: list[str] = []
    for variant in variants:
        found += glob.glob(f"{moddir}/kernel/**/{variant}.ko*", recursive=True)
    if not found:
        try:
            with open(f"{moddir}/modules.builtin") as f:
                builtin = {os.path.basename(ln.strip()).split(".ko")[0] for ln in f}
        except OSError:
            builtin = set()
        if variants & builtin:
            return None
        raise LinuxVMError(f"kernel module {name} not found under {moddir}")
    path = sorted(found)[0]
    with open(path, "rb") as f:
        data = f.read()
    # Measured: Debian's busybox insmod takes .ko.xz but not .ko.zst; decompress them all.
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _busybox() -> tuple[str, list[str]]:
    busybox = os.environ.get("SYSEXPORT_BUSYBOX", "/bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, check=True, text=True).stdout.split()
    return busybox, sorted(a for a in applets if a and "/" not in a and a != "busybox")


INIT_TEMPLATE = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
dmesg -n 1
for m in {modules}; do
  insmod /lib/modules/$m.ko 2>/dev/null || echo "@@INSMOD-FAILED $m@@"
done
. /lib/waitdev.sh
for d in {wait}; do waitdev $d; done
mkdir -p /m /tmp
echo "{begin}"
sh /script.sh 2>&1
echo "@@SYSEXPORT-END rc=$?@@"
sync
poweroff -f
"""


WAITDEV = r"""waitdev() {  # wait up to 30 s for a device node
  i=0
  while [ ! -e "$1" ]; do
    i=$((i+1)); [ $i -gt 300 ] && { echo "@@WAITDEV-TIMEOUT $1@@"; return 1; }
    usleep 100000
  done
}
"""


def build_initramfs(path: str, script: str, wait_devices: Sequence[str] = (), *,
                    compress: str | None = None, extra: Iterable = (),
                    extra_compress: str | None = None) -> str:
    """Write the test initramfs (with CPIO) running ``script``; returns ``path``.

    ``compress``: of the main archive (busybox, modules, init).  ``extra``: more file-info
    specs (for example a payload the script checks), written as a second archive appended
    to the first and compressed with ``extra_compress``: the kernel unpacks concatenated
    archives in turn, as it does for Debian's early-microcode initrd.
    """
    _, moddir = find_kernel()
    busybox, applets = _busybox()
    c = CPIO(path, compress=compress, default_time=0)
    for d in ("bin", "dev", "proc", "sys", "lib", "lib/modules", "m", "tmp", "root"):
        c.add(("dir755", d))
    c.add({"name": "bin/busybox", "mode": 0o100755, "data_path": busybox})
    for a in applets:
        c.add(("sym", f"bin/{a}", "busybox"))
    c.add(("chr600", "dev/console", (5, 1)))
    c.add(("chr666", "dev/null", (1, 3)))
    loaded = []
    for m in MODULES:
        elf = _module_bytes(moddir, m)
        if elf is not None:
            c.add(("file644", f"lib/modules/{m}.ko", elf))
            loaded.append(m)
    init = INIT_TEMPLATE.format(modules=" ".join(loaded), wait=" ".join(wait_devices), begin=BEGIN_MARK)
    c.add(("file755", "init", init))
    c.add(("file644", "lib/waitdev.sh", WAITDEV))
    c.add(("file644", "script.sh", ". /lib/waitdev.sh\n" + script))
    c.finish()
    extra = list(extra)
    if extra:
        with open(path, "ab") as f:
            c2 = CPIO(filehandle=f, compress=extra_compress, default_time=0)
            for spec in extra:
                c2.add(spec)
            c2.finish()
    return path


def run_linux(tmp_path: str | os.PathLike, script: str, *, cdrom: str | None = None,
              disks: Sequence[str] = (), disk4k: str | None = None, timeout: float = 180,
              wait_devices: Sequence[str] = (), compress: str | None = None, extra: Iterable = (),
              extra_compress: str | None = None, check: bool = True) -> str:
    """Boot Linux, run ``script`` (busybox sh) and return what it printed (stdout+stderr).

    ``cdrom`` is attached read-only as /dev/sr0 (``if=ide,index=2,media=cdrom``); ``disks``
    as IDE disks /dev/sda, /dev/sdb (``if=ide,index=0`` and 1; use copies, they are
    writable); ``disk4k`` read-only as virtio-blk with 4096-byte sectors (/dev/vda).  The
    init waits for those whole-disk nodes (and for ``wait_devices``) before the script.
    ``compress``, ``extra`` and ``extra_compress`` go to :func:`build_initramfs`.
    ``check``: raise LinuxVMError when the script exits non-zero.
    """
    need_linux()
    if len(disks) > 2:
        raise ValueError("at most two IDE disks (index 2 is the CD)")
    tmp = os.fspath(tmp_path)
    kernel, _ = find_kernel()
    waits = list(wait_devices)
    args = [QEMU, "-nic", "none", "-nographic", "-no-reboot", "-m", "512", "-monitor", "none",
            "-display", "none", "-kernel", kernel, "-append", KERNEL_CMDLINE]
    for i, d in enumerate(disks):
        args += ["-drive", f"file={_q(d)},format=raw,if=ide,index={i}"]
        waits.insert(0, f"/dev/sd{'ab'[i]}")
    if cdrom is not None:
        args += ["-drive", f"file={_q(cdrom)},format=raw,if=ide,index=2,media=cdrom,readonly=on"]
        waits.insert(0, "/dev/sr0")
    if disk4k is not None:
        args += ["-drive", f"file={_q(disk4k)},format=raw,if=none,id=d4k,readonly=on",
                 "-device", "virtio-blk-pci,drive=d4k,logical_block_size=4096,physical_block_size=4096"]
        waits.insert(0, "/dev/vda")
    n = len(glob.glob(os.path.join(tmp, "linuxvm-*.log")))
    initrd = build_initramfs(os.path.join(tmp, f"linuxvm-{n}.cpio"), script, waits, compress=compress,
                             extra=extra, extra_compress=extra_compress)
    log = os.path.join(tmp, f"linuxvm-{n}.log")
    args += ["-initrd", initrd, "-serial", f"file:{log}"]
    try:
        p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        qemu_msg = (p.stdout + p.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired:
        qemu_msg = f"(qemu killed after {timeout} s)"
    text = _read(log)
    try:
        rc, body, problems = script_output(text)
    except LinuxVMError:
        raise LinuxVMError(f"Linux VM did not finish the script.\nqemu: {' '.join(args)}\n{qemu_msg[-2000:]}\n"
                           f"serial log (last 4000 characters):\n{text[-4000:]}") from None
    if check and (rc != 0 or problems):
        raise LinuxVMError(f"Linux VM script failed (rc={rc}, {problems}):\n{body[-6000:]}")
    return body


def script_output(serial_text: str) -> tuple[int, str, list[str]]:
    """(exit status, printed text, init problems) from a serial log of our /init.

    Also for boots started another way (e.g. GRUB loading a kernel with an initramfs made
    by :func:`build_initramfs`, command line ``console=ttyS0``).  Raises LinuxVMError when
    the end marker is missing (the VM did not get there).
    """
    text = serial_text.replace("\r\n", "\n").replace("\r", "")
    begin = text.find(BEGIN_MARK)
    end = END_RE.search(text, begin if begin >= 0 else 0)
    if begin < 0 or end is None:
        raise LinuxVMError("no script output between the markers in the serial log")
    body = text[begin + len(BEGIN_MARK):end.start()].lstrip("\n")
    problems = re.findall(r"@@(?:INSMOD-FAILED|WAITDEV-TIMEOUT) [^@]*@@", text[:begin])
    return int(end.group(1)), body, problems


def _q(path: str) -> str:
    """qemu -drive option value: commas doubled."""
    return os.fspath(path).replace(",", ",,")


def _read(log: str) -> str:
    try:
        with open(log, "rb") as f:
            return f.read().decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "")
    except FileNotFoundError:
        return ""


# ------------------------------------------------------------------------------ views

# Lists every entry under /m: names NUL-separated and hex-encoded (safe for any name),
# then one stat line per name in the same order, then the sha256 of each regular file and
# the hex target of each symlink, both in find's order (which is stable on a read-only mount).
LIST_SCRIPT = r"""
listview() {
  cd /m || return 1
  find . -mindepth 1 -print0 > /tmp/list
  echo "@@VIEW $1"
  echo "@@NAMES"; od -An -v -tx1 < /tmp/list | tr -d ' \n'; echo
  # Not `xargs -0 < /tmp/list`: busybox xargs -0 drops bytes at its buffer boundary on long
  # lists (seen: "./many/f61many/f453" at 3000 entries).  find walks in the same order.
  echo "@@STAT"; find . -mindepth 1 -exec stat -c '%f %u %g %Y %s %t %T' {} +
  echo "@@SHA"; find . -mindepth 1 -type f -exec sh -c 'for f; do sha256sum < "$f"; done' sh {} +
  echo "@@LINK"; find . -mindepth 1 -type l -exec sh -c \
    'for f; do readlink "$f" | od -An -v -tx1 | tr -d " \n"; echo; done' sh {} +
  echo "@@ENDVIEW"
  cd /
}
mountview() {  # view device type options
  waitdev "$2" || { echo "@@MOUNTFAIL $1 nodevice@@"; return 0; }
  if mount -t "$3" -o "$4" "$2" /m; then
    listview "$1"
    umount /m
  else
    echo "@@MOUNTFAIL $1 mount@@"
  fi
}
"""

ISO_OPTIONS = {"rr": "ro,iocharset=utf8", "joliet": "ro,iocharset=utf8,norock",
               "plain": "ro,iocharset=utf8,norock,nojoliet"}
VFAT_OPTIONS = "ro,iocharset=utf8"


def linux_views(tmp_path: str | os.PathLike, image: str | os.PathLike, *,
                iso_views: Iterable[str] = ("rr", "joliet", "plain"),
                vfat_partitions: Iterable[int] = (), vfat_4k: bool | Iterable[int] = False,
                timeout: float = 300) -> dict[str, dict[str, dict]]:
    """What the Linux kernel's isofs and vfat see in ``image``, all in one VM boot.

    Views (keys of the result): each of ``iso_views`` ("rr": Rock Ridge, "joliet",
    "plain": ISO9660 names) from the image as CD /dev/sr0; ``"vfatN"`` for each partition
    number N of ``vfat_partitions`` from a copy of the image as IDE disk /dev/sdaN; and
    ``"vfat4kN"`` from the image as a virtio disk with 4096-byte sectors /dev/vdaN (for the
    same partition numbers when ``vfat_4k`` is True, or the numbers given).  Each view maps
    a relative path to {"type": f|d|l|c|b|p|s, "mode": permission bits, "uid", "gid",
    "mtime", "size", "rdev": (major, minor), plus "sha256" for files and "target" (str)
    for symlinks}.  A view that fails to mount raises LinuxVMError.
    """
    image = os.fspath(image)
    tmp = os.fspath(tmp_path)
    iso_views = list(iso_views)
    vfat_partitions = list(vfat_partitions)
    parts4k = list(vfat_partitions) if vfat_4k is True else ([] if vfat_4k is False else list(vfat_4k))
    lines = [LIST_SCRIPT]
    for v in iso_views:
        lines.append(f"mountview {v} /dev/sr0 iso9660 {ISO_OPTIONS[v]}")
    for nr in vfat_partitions:
        lines.append(f"mountview vfat{nr} /dev/sda{nr} vfat {VFAT_OPTIONS}")
    for nr in parts4k:
        lines.append(f"mountview vfat4k{nr} /dev/vda{nr} vfat {VFAT_OPTIONS}")
    disks = []
    if vfat_partitions:
        copy = os.path.join(tmp, "linuxvm-disk-copy.img")
        subprocess.run(["cp", "--sparse=always", "--reflink=auto", image, copy], check=True)
        disks.append(copy)
    text = run_linux(tmp, "\n".join(lines) + "\n", cdrom=image if iso_views else None, disks=disks,
                     disk4k=image if parts4k else None, timeout=timeout)
    views = parse_views(text)
    expected = iso_views + [f"vfat{n}" for n in vfat_partitions] + [f"vfat4k{n}" for n in parts4k]
    missing = [v for v in expected if v not in views]
    if missing:
        raise LinuxVMError(f"views not read by Linux: {missing}\n{text[-6000:]}")
    return views


def parse_views(text: str) -> dict[str, dict[str, dict]]:
    """Parse the output of LIST_SCRIPT (see :func:`linux_views`)."""
    fails = re.findall(r"@@MOUNTFAIL (\S+) (\S+)@@", text)
    if fails:
        raise LinuxVMError(f"Linux could not mount: {fails}\n{text[-6000:]}")
    views: dict[str, dict[str, dict]] = {}
    for m in re.finditer(r"@@VIEW (\S+)\n(.*?)@@ENDVIEW", text, re.S):
        name, body = m.group(1), m.group(2)
        sections = dict(re.findall(r"@@(NAMES|STAT|SHA|LINK)\n(.*?)(?=@@|\Z)", body, re.S))
        raw = bytes.fromhex(sections["NAMES"].strip())
        names = [n.decode("utf-8", "surrogateescape") for n in raw.split(b"\0")[:-1]]
        stats = sections["STAT"].split("\n")[:len(names)]
        shas = [ln.split()[0] for ln in sections["SHA"].split("\n") if ln.strip()]
        links = [bytes.fromhex(ln.strip()) for ln in sections["LINK"].split("\n") if ln.strip()]
        view: dict[str, dict] = {}
        shas_it, links_it = iter(shas), iter(links)
        for n, st in zip(names, stats, strict=True):
            fmode, uid, gid, mtime, size, major, minor = st.split()
            mode = int(fmode, 16)
            entry = {"type": TYPE_CHARS[stat.S_IFMT(mode)], "mode": stat.S_IMODE(mode), "uid": int(uid),
                     "gid": int(gid), "mtime": int(mtime), "size": int(size),
                     "rdev": (int(major, 16), int(minor, 16))}
            if entry["type"] == "f":
                entry["sha256"] = next(shas_it)
            elif entry["type"] == "l":
                target = next(links_it)
                entry["target"] = target[:-1].decode("utf-8", "surrogateescape") if target.endswith(b"\n") \
                    else target.decode("utf-8", "surrogateescape")
            view[n[2:] if n.startswith("./") else n] = entry
        if next(shas_it, None) is not None or next(links_it, None) is not None:
            raise LinuxVMError(f"view {name}: listing sections disagree in length")
        views[name] = view
    return views


def host_view(root: str | os.PathLike) -> dict[str, dict]:
    """The same record as a Linux view, for a host directory (to compare with)."""
    import hashlib
    root = os.fspath(root)
    result: dict[str, dict] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            e = {"type": TYPE_CHARS[stat.S_IFMT(st.st_mode)], "mode": stat.S_IMODE(st.st_mode),
                 "uid": st.st_uid, "gid": st.st_gid, "mtime": int(st.st_mtime), "size": st.st_size,
                 "rdev": (os.major(st.st_rdev), os.minor(st.st_rdev))}
            if e["type"] == "f":
                with open(p, "rb") as f:
                    e["sha256"] = hashlib.sha256(f.read()).hexdigest()
            elif e["type"] == "l":
                e["target"] = os.readlink(p)
            result[rel] = e
    return result
