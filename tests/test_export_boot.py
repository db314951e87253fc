"""One `sysexport export` command makes an initramfs in which the exported programs run.

The export takes static busybox, dynamically linked programs of this machine (ls, xz,
perl, fsck.fat, python3 with its encodings, a #!/bin/sh script run by dash), and a program
built here with gcc whose library is found through DT_RUNPATH $ORIGIN, moved by --rewrite;
Debian's kernel boots the gzip archive in qemu and the /init runs each program, printing
between the markers helpers.linuxvm reads.  No module, no /dev/console in the archive: the
init mounts devtmpfs and takes the console from there.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from helpers import need, run
from helpers.linuxvm import QEMU, find_kernel, need_linux, script_output

pytestmark = pytest.mark.slow      # boots Linux in qemu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INIT = r"""#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /dev /proc /sys /tmp
$B mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
$B mount -t proc proc /proc
echo "@@SYSEXPORT-BEGIN@@"
rc=0
step() { echo "== $1"; shift; "$@" || { echo "!! failed: $? $*"; rc=1; }; }
step ls /bin/ls -l /usr/lib/x86_64-linux-gnu/libc.so.6
step xz-version /usr/bin/xz --version
echo hello-through-xz | /usr/bin/xz -c | /usr/bin/xz -dc || rc=1
step perl /usr/bin/perl -e 'print "perl says ", 6 * 7, "\n"'
step fsck /usr/sbin/fsck.fat -n /data/fat.img
step python /usr/bin/python3 -S -c 'import sys; print("python says", sys.version_info[:2], 6 * 7)'
step script /opt/hello.sh
step origin /opt/app/bin/greet
step users $B cat /etc/passwd
echo "@@SYSEXPORT-END rc=$rc@@"
$B sync
$B poweroff -f
"""


def _gcc_app(top: str) -> tuple[str, str]:
    """app/bin/greet needing app/lib/libgreet.so through DT_RUNPATH $ORIGIN/../lib."""
    os.makedirs(f"{top}/app/bin")
    os.makedirs(f"{top}/app/lib")
    with open(f"{top}/greet.c", "w") as f:
        f.write('#include <stdio.h>\nconst char *greeting(void);\nint main(void){puts(greeting());return 0;}\n')
    with open(f"{top}/libgreet.c", "w") as f:
        f.write('const char *greeting(void){return "greetings through $ORIGIN";}\n')
    run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1", "-o", f"{top}/app/lib/libgreet.so.1",
         f"{top}/libgreet.c"])
    run(["gcc", "-o", f"{top}/app/bin/greet", f"{top}/greet.c", f"{top}/app/lib/libgreet.so.1",
         "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"])
    return f"{top}/app/bin/greet", f"{top}/app"


def test_exported_programs_run_in_linux(tmp_path):
    need_linux()
    need("gcc", "/usr/bin/xz", "/usr/bin/perl", "/usr/sbin/fsck.fat", "/usr/bin/python3", "cpio")
    top = str(tmp_path / "src")
    os.makedirs(f"{top}/data")
    greet, app = _gcc_app(top)
    with open(f"{top}/init", "w") as f:
        f.write(INIT)
    os.chmod(f"{top}/init", 0o755)
    with open(f"{top}/hello.sh", "w") as f:
        f.write("#!/bin/sh\necho \"dash runs the script: $((6 * 7))\"\n")
    os.chmod(f"{top}/hello.sh", 0o755)
    sys.path.insert(0, ROOT)
    from sysexport import VFAT
    fat = VFAT(f"{top}/data/fat.img", volume_label="EXPORTED")
    fat.add(("file", "hello.txt", b"checked by fsck.fat in the VM\n"))
    fat.finish()

    pyver = run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.decode().strip()
    initrd = str(tmp_path / "initrd.cpio.gz")
    env = dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH="1700000000")
    p = subprocess.run([sys.executable, "-m", "sysexport", "export", "-v",
                        "--add", "/bin/busybox", "ls", "/usr/bin/xz", "/usr/bin/perl", "/usr/sbin/fsck.fat",
                        "/usr/bin/python3", f"/usr/lib/python{pyver}/encodings",
                        "--add", f"{top}/init", f"{top}/hello.sh", f"{top}/data/fat.img", greet,
                        "--rewrite", f"{top}/init=/init", "--rewrite", f"{top}/hello.sh=/opt/hello.sh",
                        "--rewrite", f"{top}/data=/data", "--rewrite", f"{app}=/opt/app",
                        "--skip", f"/usr/lib/python{pyver}/encodings/__pycache__",
                        "--passwd", "-o", initrd], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    # the log says why each thing came along
    assert "libgreet.so.1 needed by" in p.stderr and "DT_RUNPATH of" in p.stderr, p.stderr[-3000:]
    assert "#! interpreter of" in p.stderr and "interpreter of /usr/bin/ls (PT_INTERP)" in p.stderr
    listing = run(["sh", "-c", f"zcat {initrd} | cpio -it --quiet"]).stdout.decode().split()
    for name in ("init", "bin", "usr/bin/busybox", "opt/app/bin/greet", "opt/app/lib/libgreet.so.1",
                 "usr/bin/dash", "usr/lib/x86_64-linux-gnu/libc.so.6", "lib64", "etc/passwd"):
        assert name in listing, name

    kernel, _ = find_kernel()
    log = str(tmp_path / "serial.log")
    args = [QEMU, "-nic", "none", "-nographic", "-no-reboot", "-m", "512", "-monitor", "none", "-display", "none",
            "-kernel", kernel, "-append", "console=ttyS0 quiet panic=-1", "-initrd", initrd, "-serial", f"file:{log}"]
    try:
        subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=240)
    except subprocess.TimeoutExpired:
        pass
    with open(log, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    rc, body, _ = script_output(text)
    assert rc == 0, body
    # GNU ls ran, and named the owner from the exported /etc/passwd and /etc/group
    assert re.search(r"-rwxr-xr-x 1 root root \d+ .* /usr/lib/x86_64-linux-gnu/libc\.so\.6", body), body
    assert "xz (XZ Utils)" in body and "hello-through-xz" in body
    assert "perl says 42" in body
    assert re.search(r"/data/fat.img: \d+ files, \d+/\d+ clusters", body), body    # fsck.fat checked a FAT
    assert f"python says ({pyver.replace('.', ', ')}) 42" in body
    assert "dash runs the script: 42" in body
    assert "greetings through $ORIGIN" in body
    assert body.count("== ") == 8 and "!! failed" not in body, body
