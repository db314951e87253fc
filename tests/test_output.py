"""Output to any target a user names (sysexport/output.py): a new or existing file (atomic,
mode and owner kept), a symlink, /dev/null, standard output and pipes, a file opened for
appending, a Python file object, and, pre-filled with 0xAA bytes, a regular file and a
loop device as ``-o`` and as ``filehandle=`` of ISO9660Hybrid, VFAT and ISO9660.

Pre-filled targets are read back by readers nobody here wrote (sgdisk, fsck.fat, mtools,
bsdtar, xorriso), and the image's byte range is compared with the same build into a fresh
file (where every byte not written is a hole and reads as zero): any old byte showing
through (free FAT space, directory tails, all-zero files, holes of sparse sources, the ISO
system area) fails.  Bytes outside the image's range must still be 0xAA.
"""
from __future__ import annotations

import io
import os
import pty
import random
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import cut, need, out, run, tree_digest
from helpers.blockdev import FILL, device_bytes, fill_file, loop_device, mounted, need_root
from sysexport import CPIO, ISO9660, VFAT, ISO9660Hybrid
from sysexport import output as output_mod
from sysexport.errors import InvalidInputError, OutputError
from sysexport.output import Output

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20
SDE = "1700000000"
T0 = 1_700_000_000
OLD = bytes([FILL]) * 512


def sysexport_cli(*args: str, stdout=subprocess.PIPE, env_extra: dict | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH=SDE, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "sysexport", *args], stdout=stdout, stderr=subprocess.PIPE,
                          env=env, timeout=timeout)


def make_tree(root: Path) -> Path:
    """Everything a writer skips as zeros: an all-zero file, a sparse file, many small files
    (directory tails), a large file; plus some text."""
    root.mkdir()
    (root / "readme.txt").write_text("hello, stick\n")
    (root / "zeros.bin").write_bytes(bytes(300 * 1024))
    with open(root / "sparse.bin", "wb") as f:
        f.truncate(3 * MIB)
        f.seek(MIB)
        f.write(b"MIDDLE" * 100)
    (root / "big.bin").write_bytes(random.Random(1).randbytes(2 * MIB))
    sub = root / "dir" / "sub"
    sub.mkdir(parents=True)
    for i in range(40):
        (sub / f"file{i:02}.txt").write_bytes(b"%d\n" % i * (i + 1))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (T0, T0))
    return root


# --------------------------------------------------------------------------- the builds

def build_hybrid(tree: Path, **target) -> None:
    img = ISO9660Hybrid(**target)
    img.volume_label = "OUTTEST"
    img.esp_min_size_bytes = 20 * MIB            # free FAT space
    img.add_tree(str(tree))
    img.finish()


def build_vfat(tree: Path, **target) -> None:
    v = VFAT(volume_label="OUTTEST", size_bytes=12 * MIB, **target)
    v.add_tree(str(tree))
    v.finish()


def build_iso(tree: Path, **target) -> None:
    iso = ISO9660(volume_label="OUTTEST", **target)
    iso.add_tree(str(tree))
    iso.finish()


BUILDS = {"hybrid": build_hybrid, "vfat": build_vfat, "iso": build_iso}
VOLUME_OFFSET = {"hybrid": 0, "vfat": MIB, "iso": 0}


def fresh_image(tmp: Path, kind: str, tree: Path) -> bytes:
    """The image built into a new file (every byte not written reads as zero)."""
    path = tmp / f"fresh-{kind}.img"
    if kind == "vfat":
        BUILDS[kind](tree, filename=str(path), volume_offset=VOLUME_OFFSET[kind])
    else:
        BUILDS[kind](tree, filename=str(path))
    data = path.read_bytes()
    return data[VOLUME_OFFSET[kind]:]


def check_readers(kind: str, target: str, offset: int, size: int, tree: Path, tmp: Path, esp: tuple[int, int] | None):
    """The independent readers on the image at ``offset`` of ``target`` (a device or file)."""
    files = tree_digest(tree)
    if kind in ("hybrid", "iso"):
        need("bsdtar", "xorriso")
        listing = out(["bsdtar", "-tf", target])
        assert "dir/sub/file39.txt" in listing, listing
        dest = tmp / f"bsdtar-{kind}"
        dest.mkdir()
        run(["bsdtar", "-xf", target, "-C", str(dest)])
        assert tree_digest(dest) == files
        found = out(["xorriso", "-indev", f"stdio:{target}", "-find", "/", "-type", "f"])
        assert "/dir/sub/file00.txt" in found and "/zeros.bin" in found, found
        dest = tmp / f"xorriso-{kind}"
        run(["xorriso", "-osirrox", "on", "-indev", f"stdio:{target}", "-extract", "/", str(dest)])
        assert tree_digest(dest) == files
    if kind in ("hybrid", "vfat"):
        need("fsck.fat", "mdir", "mcopy")
        fat_at, fat_size = esp if esp else (offset, size)
        esp_img = cut(target, fat_at, fat_size, tmp / f"esp-{kind}.img")
        run(["fsck.fat", "-n", "-V", esp_img])
        run(["mdir", "-i", f"{target}@@{fat_at}", "::"])          # strict: no MTOOLS_SKIP_CHECK
        dest = tmp / f"mtools-{kind}"
        dest.mkdir()
        run(["mcopy", "-s", "-n", "-i", f"{target}@@{fat_at}", "::*", str(dest)],
            env_extra={"MTOOLS_SKIP_CHECK": "1"})
        assert tree_digest(dest) == files
    if kind == "hybrid":
        need("sgdisk")
        text = out(["sgdisk", "-p", target])
        assert "EFI System Partition" in text, text


def esp_of(image: bytes) -> tuple[int, int]:
    from sysexport.partition.gpt import GPT
    gpt = GPT.parse(image[:1 << 20], 512, check_backup=False)
    p = gpt.partitions[0]
    return p.device_offset, p.size_bytes or 0


def assert_image_then_old(data: bytes, image: bytes, offset: int, what: str) -> None:
    """``data`` holds ``image`` at ``offset``, and 0xAA everywhere else."""
    got = data[offset:offset + len(image)]
    if got != image:
        diff = next(i for i in range(len(image)) if got[i] != image[i])
        raise AssertionError(f"{what}: byte {offset + diff} differs from the fresh build "
                             f"({got[diff:diff + 8].hex()} vs {image[diff:diff + 8].hex()})")
    assert OLD not in got, f"{what}: old bytes inside the image"
    assert data[:offset] == bytes([FILL]) * offset, f"{what}: bytes before the image touched"
    rest = data[offset + len(image):]
    assert rest == bytes([FILL]) * len(rest), f"{what}: bytes after the image touched"


# --------------------------------------------------------------------------- pre-filled targets

@pytest.mark.parametrize("kind", ["hybrid", "vfat", "iso"])
def test_filehandle_on_prefilled_loop_device(tmp_path, sde, kind):
    need_root()
    tree = make_tree(tmp_path / "tree")
    image = fresh_image(tmp_path, kind, tree)
    backing = tmp_path / "stick.img"
    fill_file(backing, 40 * MIB)
    with loop_device(backing) as dev:
        with open(dev, "r+b") as f:
            if kind == "vfat":
                BUILDS[kind](tree, filehandle=f, volume_offset=VOLUME_OFFSET[kind])
            else:
                BUILDS[kind](tree, filehandle=f)
        data = device_bytes(dev)
        assert len(data) == 40 * MIB
        assert_image_then_old(data, image, VOLUME_OFFSET[kind], f"{kind} on {dev}")
        esp = esp_of(data) if kind == "hybrid" else None
        check_readers(kind, dev, VOLUME_OFFSET[kind], len(image), tree, tmp_path, esp)


@pytest.mark.parametrize("kind", ["hybrid", "vfat", "iso"])
def test_filehandle_on_prefilled_regular_file(tmp_path, sde, kind):
    tree = make_tree(tmp_path / "tree")
    image = fresh_image(tmp_path, kind, tree)
    target = tmp_path / "old.img"
    fill_file(target, 40 * MIB)
    before = dict(output_mod.ZERO_METHODS)
    with open(target, "r+b") as f:
        if kind == "vfat":
            BUILDS[kind](tree, filehandle=f, volume_offset=VOLUME_OFFSET[kind])
        else:
            BUILDS[kind](tree, filehandle=f)
    data = target.read_bytes()
    assert len(data) == 40 * MIB                   # a caller's file keeps its size
    assert_image_then_old(data, image, VOLUME_OFFSET[kind], f"{kind} in a pre-filled file")
    # The cheapest way was used: a hole punched, not megabytes of zeros written.
    assert output_mod.ZERO_METHODS.get("punch-hole", 0) > before.get("punch-hole", 0)
    esp = esp_of(data) if kind == "hybrid" else None
    check_readers(kind, str(target), VOLUME_OFFSET[kind], len(image), tree, tmp_path, esp)


def test_filehandle_shorter_than_the_image_grows_and_keeps_its_head(tmp_path, sde):
    """VFAT at 1 MiB in a caller's file of 1.5 MiB of old bytes: the part of the volume
    inside the old file is zeroed, the file grows to hold the rest, the head is kept."""
    tree = make_tree(tmp_path / "tree")
    image = fresh_image(tmp_path, "vfat", tree)
    target = tmp_path / "short.img"
    fill_file(target, MIB + MIB // 2)
    with open(target, "r+b") as f:
        build_vfat(tree, filehandle=f, volume_offset=MIB)
    data = target.read_bytes()
    assert len(data) == MIB + len(image)
    assert_image_then_old(data, image, MIB, "vfat in a short file")


def test_loop_device_as_cli_output(tmp_path):
    """``sysexport build TREE -o /dev/loopN`` writes the stick in place: the device stays a
    device, the image range holds exactly the image file's bytes, the rest is untouched."""
    need_root()
    tree = make_tree(tmp_path / "tree")
    fresh = tmp_path / "fresh.img"
    p = sysexport_cli("build", str(tree), "-o", str(fresh))
    assert p.returncode == 0, p.stderr
    image = fresh.read_bytes()
    backing = tmp_path / "stick.img"
    fill_file(backing, 24 * MIB)
    with loop_device(backing) as dev:
        p = sysexport_cli("build", str(tree), "-o", dev)
        assert p.returncode == 0, p.stderr
        assert stat.S_ISBLK(os.stat(dev).st_mode)
        assert b"hybrid ISO9660 + GPT image" in p.stdout
        data = device_bytes(dev)
        assert_image_then_old(data, image, 0, f"sysexport build -o {dev}")
        check_readers("hybrid", dev, 0, len(image), tree, tmp_path, esp_of(data))
        # Without the option the backup GPT stays where the image file has it.
        assert "No problems found" not in out(["sgdisk", "-v", dev])


@pytest.mark.parametrize("sector_size", [512, 4096])
def test_gpt_at_device_end(tmp_path, sector_size):
    """--gpt-at-device-end: both GPTs' backups at the end of the stick; sgdisk finds no
    problem (on 512- and 4096-byte sectors), fdisk reads both tables, the file systems are
    the image's."""
    need_root()
    need("sgdisk", "fdisk")
    tree = make_tree(tmp_path / "tree")
    fresh = tmp_path / "fresh.img"
    assert sysexport_cli("build", str(tree), "-o", str(fresh)).returncode == 0
    image = fresh.read_bytes()
    backing = tmp_path / "stick.img"
    fill_file(backing, 32 * MIB)
    with loop_device(backing, sector_size=sector_size) as dev:
        p = sysexport_cli("build", str(tree), "-o", dev, "--gpt-at-device-end")
        assert p.returncode == 0, p.stderr
        v = out(["sgdisk", "-v", dev])
        assert "No problems found" in v, v
        for block in (512, 4096):
            text = out(["fdisk", "-b", str(block), "-l", dev])
            assert "Disklabel type: gpt" in text and "EFI System" in text, text
        data = device_bytes(dev)
        esp = esp_of(data) if sector_size == 512 else esp_of(image)
        # The ISO metadata and the ESP are the image's bytes; the backup area at the
        # device's end is written in full; between image and backup, old bytes stay.
        assert data[32768:esp[0] + esp[1]][16384:] == image[32768:esp[0] + esp[1]][16384:]
        assert data[len(image):32 * MIB - 36864] == bytes([FILL]) * (32 * MIB - 36864 - len(image))
        assert OLD not in data[32 * MIB - 36864:]
        assert OLD not in data[:len(image)]
        check_readers("hybrid", dev, 0, len(image), tree, tmp_path, esp)


def test_gpt_finish_backup_at_device_end_fills_the_device(tmp_path):
    need_root()
    need("sgdisk")
    from sysexport.partition.gpt import GPT, GPT_TYPE_LINUX_FS
    backing = tmp_path / "disk.img"
    fill_file(backing, 16 * MIB)
    with loop_device(backing) as dev:
        with open(dev, "r+b") as f:
            g = GPT(filehandle=f, guid_seed="end")
            g.add_partition(GPT_TYPE_LINUX_FS, name="data", data=b"payload" * 100)
            g.add_partition(GPT_TYPE_LINUX_FS, name="rest")          # fills the rest of the disk
            lay = g.finish(backup_at_device_end=True)
        assert lay.device_size_bytes == 16 * MIB
        v = out(["sgdisk", "-v", dev])
        assert "No problems found" in v, v
        data = device_bytes(dev)
        p1, p2 = lay.partitions
        assert data[p1.device_offset:p1.device_offset + 700] == b"payload" * 100
        assert data[p1.device_offset + 700:p1.device_offset + p1.size_bytes] == bytes(p1.size_bytes - 700)
        assert p2.device_offset + p2.size_bytes > 15 * MIB
        # The partition without data is not the image's: its old bytes stay.
        assert data[p2.device_offset:p2.device_offset + 512] == OLD


def test_device_smaller_than_the_image(tmp_path, sde):
    need_root()
    tree = make_tree(tmp_path / "tree")
    backing = tmp_path / "small.img"
    fill_file(backing, 4 * MIB)
    with loop_device(backing) as dev:
        with pytest.raises(OutputError) as e:
            build_hybrid(tree, filename=dev)
        msg = str(e.value)
        assert dev in msg and "4,194,304 bytes" in msg and "the image needs" in msg, msg
        assert device_bytes(dev) == bytes([FILL]) * 4 * MIB          # nothing written


def test_mounted_loop_device_is_refused(tmp_path, sde):
    need_root()
    need("mkfs.ext4")
    backing = tmp_path / "fs.img"
    backing.write_bytes(b"")
    os.truncate(backing, 16 * MIB)
    with loop_device(backing) as dev:
        run(["mkfs.ext4", "-q", dev])
        with mounted(dev, tmp_path / "mnt", "ro", "noload"):     # read-only: the device's bytes hold still
            before = device_bytes(dev)
            with pytest.raises(OutputError) as e:
                ISO9660Hybrid(dev).finish()
            assert dev in str(e.value) and "is mounted on" in str(e.value) and str(tmp_path / "mnt") in str(e.value)
            with open(dev, "r+b") as f, pytest.raises(OutputError, match="is mounted on"):
                ISO9660(filehandle=f).finish()
            p = sysexport_cli("build", "-o", dev)
            assert p.returncode != 0 and b"is mounted on" in p.stderr and p.stderr.count(b"\n") == 1, p.stderr
            assert device_bytes(dev) == before


def test_device_with_a_mounted_partition_is_refused(tmp_path, sde):
    """The whole disk is refused while one of its partitions is mounted (the partition is
    made with addpart: this kernel may have no partition-table parsers)."""
    need_root()
    need("mkfs.ext4", "addpart")
    backing = tmp_path / "disk.img"
    backing.write_bytes(b"")
    os.truncate(backing, 32 * MIB)
    with loop_device(backing, partscan=True) as dev:
        run(["addpart", dev, "1", "2048", "20480"])
        part = f"{dev}p1"
        for _ in range(50):
            if os.path.exists(part):
                break
            threading.Event().wait(0.1)
        run(["mkfs.ext4", "-q", part])
        with mounted(part, tmp_path / "mnt"):
            with pytest.raises(OutputError) as e:
                ISO9660Hybrid(dev).finish()
            assert f"its partition {os.path.basename(part)} is mounted on" in str(e.value), str(e.value)


# --------------------------------------------------------------------------- regular files

def test_new_file_mode_follows_umask(tmp_path, sde):
    old = os.umask(0o027)
    try:
        ISO9660(str(tmp_path / "a.iso")).finish()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.iso").st_mode) == 0o640
    assert os.listdir(tmp_path) == ["a.iso"]


@pytest.mark.parametrize("tmpfile", [True, False], ids=["o_tmpfile", "named-temp"])
def test_replacing_keeps_mode_and_owner(tmp_path, sde, monkeypatch, tmpfile):
    monkeypatch.setattr(output_mod, "_USE_O_TMPFILE", tmpfile)
    target = tmp_path / "initrd.img"
    target.write_bytes(b"old initramfs")
    os.chmod(target, 0o600)
    if os.geteuid() == 0:
        os.chown(target, 1234, 5678)
    c = CPIO(str(target), default_time=0)
    c.add(("file", "etc/shadow", b"root:*:1::::::\n"))
    c.finish()
    st = os.stat(target)
    assert stat.S_IMODE(st.st_mode) == 0o600
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert target.read_bytes().startswith(b"070701")
    assert os.listdir(tmp_path) == ["initrd.img"]


def test_symlink_output_writes_its_target(tmp_path, sde):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "image.iso"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    link_dir = tmp_path / "links"
    link_dir.mkdir()
    link = link_dir / "current.iso"
    os.symlink("../real/image.iso", link)
    ISO9660(str(link), volume_label="LINKED").finish()
    assert os.readlink(link) == "../real/image.iso"                  # the symlink stays
    assert target.read_bytes()[32768 + 40:32768 + 46] == b"LINKED"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(os.listdir(real_dir)) == ["image.iso"] and sorted(os.listdir(link_dir)) == ["current.iso"]
    # A dangling symlink: its target is created.
    dangling = link_dir / "next.iso"
    os.symlink("../real/next.iso", dangling)
    ISO9660(str(dangling)).finish()
    assert os.path.islink(dangling) and (real_dir / "next.iso").stat().st_size > 32768


def test_directory_and_missing_directory(tmp_path, sde):
    with pytest.raises(InvalidInputError, match="is a directory"):
        ISO9660(str(tmp_path)).finish()
    with pytest.raises(OutputError) as e:
        ISO9660(str(tmp_path / "no" / "x.iso")).finish()
    assert str(tmp_path / "no" / "x.iso") in str(e.value) and "ENOENT" in str(e.value)


def test_a_missing_device_is_not_created_in_dev(sde):
    path = "/dev/sysexport-no-such-device"
    try:
        with pytest.raises(OutputError, match="no such device"):
            ISO9660(path).finish()
        assert not os.path.exists(path)
    finally:
        if os.path.isfile(path):
            os.unlink(path)


# --------------------------------------------------------------------------- character devices

def test_dev_null_just_works(sde):
    summary = ISO9660Hybrid("/dev/null").finish()
    assert summary.image_size_bytes > 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    with open("/dev/null", "wb") as f:
        ISO9660(filehandle=f).finish()


def test_dev_full_is_enospc(sde):
    with pytest.raises(OutputError) as e:
        ISO9660("/dev/full").finish()
    assert "/dev/full" in str(e.value) and "ENOSPC" in str(e.value)


def test_terminal_is_refused(tmp_path):
    master, slave = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "sysexport", "build", "-o", "-"], stdout=slave,
                           stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode != 0 and b"standard output: is a terminal" in p.stderr, p.stderr
    with pytest.raises(OutputError, match="is a terminal"):
        fd = os.open(os.ttyname(0), os.O_WRONLY) if os.isatty(0) else None
        if fd is None:
            m, s = pty.openpty()
            try:
                with open(s, "wb", closefd=False) as f:
                    ISO9660(filehandle=f).finish()
            finally:
                os.close(m)
                os.close(s)


# --------------------------------------------------------------------------- streams

def test_stdout_pipe_and_file(tmp_path):
    fresh = tmp_path / "fresh.img"
    assert sysexport_cli("build", "-o", str(fresh)).returncode == 0
    image = fresh.read_bytes()
    # A pipe: the image is streamed, the summary goes to stderr.
    p = sysexport_cli("build", "-o", "-")
    assert p.returncode == 0, p.stderr
    assert p.stdout == image and b"hybrid ISO9660 + GPT image" in p.stderr
    # A regular file as stdout, and /dev/stdout as the name.
    for name in ("-", "/dev/stdout"):
        with open(tmp_path / "redirected.img", "wb") as f:
            p = sysexport_cli("build", "-o", name, stdout=f)
        assert p.returncode == 0, p.stderr
        assert (tmp_path / "redirected.img").read_bytes() == image, name
    # The temporary file in $TMPDIR is gone.
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    p = sysexport_cli("initramfs", str(tmp_path / "tmpdir"), "-o", "-", env_extra={"TMPDIR": str(tmp)})
    assert p.returncode == 0 and p.stdout.startswith(b"070701") and os.listdir(tmp) == []
    p = sysexport_cli("build", "-o", "-", env_extra={"TMPDIR": str(tmp)})
    assert p.stdout == image and os.listdir(tmp) == []


def test_pipe_and_fifo_as_output(tmp_path, sde):
    fresh = tmp_path / "fresh.iso"
    ISO9660(str(fresh), volume_label="PIPE").finish()
    r, w = os.pipe()
    got = bytearray()
    reader = threading.Thread(target=lambda: got.extend(_read_all(r)))
    reader.start()
    with open(w, "wb") as f:
        ISO9660(filehandle=f, volume_label="PIPE").finish()
    reader.join()
    assert bytes(got) == fresh.read_bytes()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got2 = bytearray()
    reader = threading.Thread(target=lambda: got2.extend(_read_all(os.open(fifo, os.O_RDONLY))))
    reader.start()
    ISO9660(str(fifo), volume_label="PIPE").finish()
    reader.join()
    assert bytes(got2) == fresh.read_bytes() and stat.S_ISFIFO(os.stat(fifo).st_mode)


def _read_all(fd: int) -> bytes:
    parts = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            os.close(fd)
            return b"".join(parts)
        parts.append(b)


def test_cpio_streams_into_a_pipe_without_a_temporary_file(tmp_path, monkeypatch):
    """A sequential writer gets the pipe itself (no file in $TMPDIR)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "none"))          # would fail if it were used
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    r, w = os.pipe()
    got = bytearray()
    reader = threading.Thread(target=lambda: got.extend(_read_all(r)))
    reader.start()
    with open(w, "wb") as f:
        c = CPIO(filehandle=f, default_time=0)
        c.add(("file", "a", b"x" * 5000))
        c.finish()
    reader.join()
    assert bytes(got).startswith(b"070701") and b"TRAILER!!!" in got


def test_append_mode_appends(tmp_path, sde):
    fresh = tmp_path / "fresh.iso"
    ISO9660(str(fresh)).finish()
    target = tmp_path / "log.bin"
    target.write_bytes(b"HEAD")
    with open(target, "ab") as f:
        ISO9660(filehandle=f).finish()
    assert target.read_bytes() == b"HEAD" + fresh.read_bytes()


def test_python_file_object(tmp_path, sde):
    """A BytesIO: ISO written at 0; VFAT at its volume offset, nothing outside touched."""
    fresh = tmp_path / "fresh.iso"
    ISO9660(str(fresh)).finish()
    buf = io.BytesIO(b"\xaa" * (2 * MIB))
    ISO9660(filehandle=buf).finish()
    image = fresh.read_bytes()
    assert buf.getvalue()[:len(image)] == image and buf.getvalue()[len(image):] == OLD[:1] * (2 * MIB - len(image))
    tree = make_tree(tmp_path / "tree")
    vimage = fresh_image(tmp_path, "vfat", tree)
    buf = io.BytesIO(b"\xaa" * (MIB + len(vimage) + 4096))
    build_vfat(tree, filehandle=buf, volume_offset=MIB)
    assert_image_then_old(buf.getvalue(), vimage, MIB, "vfat in a BytesIO")


def test_read_only_filehandle_is_refused(tmp_path, sde):
    target = tmp_path / "ro.img"
    target.write_bytes(b"keep")
    with open(target, "rb") as f, pytest.raises(OutputError, match="open for reading only"):
        ISO9660(filehandle=f).finish()
    assert target.read_bytes() == b"keep"


# --------------------------------------------------------------------------- signal handlers

def test_handlers_installed_only_while_writing(tmp_path, sde):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    seen = {}

    def hook(n):
        if not seen:
            seen.update({s: signal.getsignal(s) for s in before})

    from sysexport.data import PROGRESS
    token = PROGRESS.set(hook)
    try:
        iso = ISO9660(str(tmp_path / "a.iso"))
        iso.add(("file", "a", b"x" * 100000))
        iso.finish()
    finally:
        PROGRESS.reset(token)
    after = {s: signal.getsignal(s) for s in before}
    assert after == before
    for s, h in before.items():
        if h == signal.SIG_DFL:
            assert seen[s] is output_mod._on_signal, s             # installed while writing
        else:
            assert seen[s] == h, s                                 # a handler of the caller's is kept
    # And after an error.
    with pytest.raises(OutputError):
        ISO9660(str(tmp_path / "no" / "a.iso")).finish()
    assert {s: signal.getsignal(s) for s in before} == before


def test_output_outside_the_main_thread(tmp_path, sde):
    """An Output in another thread installs nothing (signal.signal works only in the main
    thread) and still works."""
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    errors = []

    def work():
        try:
            ISO9660(str(tmp_path / "t.iso")).finish()
        except BaseException as e:          # re-raised below
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert not errors and (tmp_path / "t.iso").stat().st_size > 0
    assert {s: signal.getsignal(s) for s in before} == before


def test_output_api_errors(tmp_path):
    with pytest.raises(InvalidInputError):
        Output()
    with pytest.raises(InvalidInputError):
        Output(str(tmp_path / "a"), io.BytesIO())
    with pytest.raises(InvalidInputError, match="fileno"):
        with Output(filehandle=object()):
            pass
