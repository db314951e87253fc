"""`sysexport shell`: the explorer driven through a pseudo-terminal (pexpect), by -c and by stdin.

Listings are compared with what other readers list for the same image (isoinfo and bsdtar for
ISO 9660, mtools for FAT, GNU cpio for an archive), file bytes with the files the image was
made from; completion is typed with a real TAB into readline.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pexpect
import pytest

from helpers import default_signals, need, out, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT_TIMEOUT_S = 30


def _env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_STATE_HOME", "PYTHONSTARTUP")}
    env.update(PYTHONPATH=ROOT, HOME=home, TERM="dumb", LC_ALL="C.UTF-8", SOURCE_DATE_EPOCH="1700000000")
    return env


def shell(image: str, *args: str, cwd: str, script: str | None = None) -> subprocess.CompletedProcess:
    """`sysexport shell IMAGE ARGS` with ``script`` on standard input (a pipe, not a terminal)."""
    return subprocess.run([sys.executable, "-m", "sysexport", "shell", image, *args], input=script or "",
                          capture_output=True, text=True, errors="replace", cwd=cwd, env=_env(cwd), timeout=120)


def sysexport(*args: str, cwd: str) -> None:
    run([sys.executable, "-m", "sysexport", *args], env_extra=dict(PYTHONPATH=ROOT, SOURCE_DATE_EPOCH="1700000000"))


class Session:
    """One interactive shell on a pseudo-terminal."""

    def __init__(self, image: str, *args: str, cwd: str, env: dict[str, str] | None = None) -> None:
        self.child = pexpect.spawn(sys.executable, ["-m", "sysexport", "shell", image, *args], cwd=cwd,
                                   env=dict(_env(cwd), **(env or {})), encoding="utf-8",
                                   timeout=PROMPT_TIMEOUT_S, dimensions=(50, 200), preexec_fn=default_signals)

    def prompt(self, prompt: str) -> str:
        """Wait for ``prompt``; what was printed before it (the echoed line first)."""
        self.child.expect_exact(prompt)
        return self.child.before.replace("\r\n", "\n")

    def run(self, line: str, prompt: str) -> str:
        """Type ``line`` and Enter; the output (without the echoed line)."""
        self.child.sendline(line)
        text = self.prompt(prompt)
        return text.split("\n", 1)[1] if "\n" in text else ""

    def close(self) -> int:
        self.child.sendline("exit")
        self.child.expect(pexpect.EOF)
        self.child.close()
        return self.child.exitstatus


@pytest.fixture
def tree(tmp_path):
    """A source tree with a nested directory, a name with spaces, a binary file and a symlink."""
    src = tmp_path / "src"
    (src / "etc" / "deep" / "er").mkdir(parents=True)
    (src / "etc" / "motd").write_text("hello from the shell\n")
    (src / "etc" / "deep" / "er" / "A file with spaces.txt").write_text("spaced out\n")
    (src / "boot").mkdir()
    (src / "boot" / "grub.cfg").write_text("set timeout=5\n" * 300)
    (src / "data.bin").write_bytes(bytes(range(256)) * 40 + b"tail")
    os.symlink("etc/motd", src / "motd-link")
    return src


@pytest.fixture
def hybrid(tmp_path, tree):
    image = str(tmp_path / "hybrid.img")
    sysexport("build", str(tree), "-o", image, "--label", "SHELL", cwd=str(tmp_path))
    return image


# --- the interactive shell ----------------------------------------------------------------------

def test_pty_list_cd_cat_complete_on_hybrid(tmp_path, tree, hybrid):
    s = Session(hybrid, cwd=str(tmp_path))
    s.prompt("rr:/> ")
    listing = s.run("ls", "rr:/> ").split()
    assert sorted(listing) == sorted(n + ("/" if (tree / n).is_dir() and not (tree / n).is_symlink() else "")
                                     for n in os.listdir(tree))
    s.run("cd etc", "rr:/etc> ")
    assert s.run("cat motd", "rr:/etc> ") == (tree / "etc" / "motd").read_text()
    assert s.run("pwd", "rr:/etc> ").strip() == "/etc"
    # a TAB completes a unique directory, a second one the escaped file name below it
    s.child.send("cat de\t")
    s.child.expect_exact("deep/")
    s.child.send("\t")
    s.child.expect_exact("er/")
    s.child.send("\t")
    s.child.expect_exact("A\\ file\\ with\\ spaces.txt ")
    assert s.run("", "rr:/etc> ").endswith("spaced out\n")
    # commands complete too, and a view name after `view`
    s.child.send("insp\t")
    s.child.expect_exact("inspect ")
    s.child.send("\x15view jo\t")                 # Ctrl-U: the line discarded
    s.child.expect_exact("joliet ")
    assert "view joliet" in s.run("", "joliet:/etc> ")
    assert "* joliet" in s.run("views", "joliet:/etc> ")
    # errors are one line each and the shell goes on
    err = s.run("cat nothere", "joliet:/etc> ")
    assert err.strip() == "sysexport: error: cat: joliet:/etc/nothere: no such file or directory"
    err = s.run("frobnicate now", "joliet:/etc> ")
    assert err.strip() == "sysexport: error: frobnicate: unknown command 'frobnicate' (type 'help' for the list)"
    s.child.send("ls -l\x03")                       # Ctrl-C abandons the line, the shell stays
    s.prompt("joliet:/etc> ")
    assert s.close() == 0
    history = (tmp_path / ".sysexport_history").read_text()
    assert "cd etc" in history and "frobnicate now" in history


def test_pty_help_and_eof(tmp_path, hybrid):
    s = Session(hybrid, "--view", "fat", cwd=str(tmp_path))
    s.prompt("fat:1:/> ")
    text = s.run("help", "fat:1:/> ")
    for name in ("cd", "ls", "stat", "cat", "get", "tree", "views", "view", "inspect", "exit"):
        assert f"\n  {name} " in "\n" + text or f"\n  {name}:" in "\n" + text, name
    assert "cat PATH" in s.run("help cat", "fat:1:/> ")
    s.child.sendeof()
    s.child.expect(pexpect.EOF)
    s.child.close()
    assert s.child.exitstatus == 0


def test_pty_history_in_the_xdg_state_dir_is_read_back(tmp_path, hybrid):
    state = tmp_path / "state"
    s = Session(hybrid, cwd=str(tmp_path), env={"XDG_STATE_HOME": str(state)})
    s.prompt("rr:/> ")
    s.run("cd /etc", "rr:/etc> ")
    assert s.close() == 0
    history = state / "sysexport" / "history"
    assert history.read_text().splitlines() == ["cd /etc", "exit"]
    s = Session(hybrid, cwd=str(tmp_path), env={"XDG_STATE_HOME": str(state)})
    s.prompt("rr:/> ")
    s.child.send("\x10\x10\r")                  # Ctrl-P twice: the line before 'exit', from the last session
    s.prompt("rr:/etc> ")
    assert s.close() == 0
    s = Session(hybrid, "--no-history", cwd=str(tmp_path), env={"XDG_STATE_HOME": str(state)})
    s.prompt("rr:/> ")
    s.run("pwd", "rr:/> ")
    assert s.close() == 0
    assert "pwd" not in history.read_text()
    assert not (tmp_path / ".sysexport_history").exists()


# --- scripts: -c and standard input ---------------------------------------------------------------

def _listing(image: str, view: str, cwd: str) -> list[str]:
    """Every path below the root in ``view``, by the shell's ``ls -R``."""
    p = shell(image, "--view", view, "-c", "ls -R /", cwd=cwd)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "/"
    return sorted(lines[1:])


def test_script_views_and_bytes_match_the_tools(tmp_path, tree, hybrid):
    need("bsdtar", "mdir")
    expected = sorted("/" + os.path.relpath(os.path.join(d, n), tree) for d, ds, fs in os.walk(tree) for n in ds + fs)
    rr = _listing(hybrid, "rr", str(tmp_path))
    assert rr == expected
    bsd = [line.rstrip("/") for line in out(["bsdtar", "-tf", hybrid]).splitlines() if line not in (".", "./")]
    assert rr == sorted("/" + (b[2:] if b.startswith("./") else b) for b in bsd)
    # the FAT view lists what mtools lists in the ESP (a symlink has no place in FAT)
    esp = _esp(tmp_path, hybrid)
    mt = out(["mdir", "-/", "-b", "-i", esp, "::"], env_extra={"MTOOLS_SKIP_CHECK": "1"}).splitlines()
    mt_paths = sorted(line[2:].rstrip("/") for line in mt if line.startswith("::/") and line != "::/")
    assert _listing(hybrid, "fat", str(tmp_path)) == mt_paths
    assert "/motd-link" not in mt_paths and "/etc/deep/er/A file with spaces.txt" in mt_paths
    iso = _listing(hybrid, "iso9660", str(tmp_path))
    assert "/DATA.BIN" in iso and "/ETC/MOTD" in iso
    # cat streams exact bytes (binary too) in every view
    for view, path in (("rr", "/data.bin"), ("fat", "/data.bin"), ("iso9660", "/DATA.BIN"), ("joliet", "/data.bin")):
        got = subprocess.run([sys.executable, "-m", "sysexport", "shell", hybrid, "--view", view, "-c",
                              f"cat {path}"], capture_output=True, env=_env(str(tmp_path)))
        assert got.returncode == 0, got.stderr
        assert got.stdout == (tree / "data.bin").read_bytes(), view


def _esp(tmp_path, image: str) -> str:
    """The ESP of a hybrid cut out (its offset from sgdisk's view of the GPT, through our inspect)."""
    import sysexport
    with sysexport.open(image) as img:
        fat = next(s for s in img.structures if s.kind == "fat")
    from helpers import cut
    return cut(image, fat.offset, fat.size, tmp_path / "esp.img")


def test_stdin_script_errors_set_the_exit_status(tmp_path, hybrid):
    script = "ls /etc\n# a comment\ncat /nope\nstat /etc/motd\nls -z\ncd '/etc;x'\nview udf\n'unclosed\nls /boot\n"
    p = shell(hybrid, cwd=str(tmp_path), script=script)
    assert p.returncode == 1
    errors = p.stderr.strip().split("\n")
    assert errors == [
        "sysexport: error: cat: rr:/nope: no such file or directory",
        "sysexport: error: ls: unknown option -z (this command takes: -l -R)",
        "sysexport: error: cd: rr:/etc;x: no such file or directory",
        f"sysexport: error: view: {hybrid}: no view 'udf' (this image has: rr, joliet, iso9660, fat, fat:1)",
        "sysexport: error: cannot split the line: no closing quotation",
    ]
    assert "motd" in p.stdout and "grub.cfg" in p.stdout and "size: 21 bytes" in p.stdout
    ok = shell(hybrid, "-c", "ls; cd etc; ls -l motd", cwd=str(tmp_path))
    assert ok.returncode == 0 and ok.stderr == "" and " 21 " in ok.stdout
    assert shell(str(tmp_path / "missing.img"), "-c", "ls", cwd=str(tmp_path)).stderr.startswith(
        f"sysexport: error: {tmp_path / 'missing.img'}: cannot open")


def test_view_switch_follows_the_directory(tmp_path, hybrid):
    p = shell(hybrid, "-c", "cd /etc/deep/er; view iso9660; view joliet; view fat; cd /boot; view cpio; "
              "view rr; cd /data.bin", cwd=str(tmp_path))
    assert p.stdout.splitlines() == ["view iso9660, in /ETC/DEEP/ER", "view joliet, in /etc/deep/er",
                                     "view fat:1, in /etc/deep/er", "view rr, in /boot"]
    assert p.stderr.splitlines() == [
        f"sysexport: error: view: {hybrid}: no view 'cpio' (this image has: rr, joliet, iso9660, fat, fat:1)",
        "sysexport: error: cd: rr:/data.bin: not a directory"]


def test_get_file_and_directory_safely(tmp_path, tree, hybrid):
    host = tmp_path / "host"
    host.mkdir()
    p = shell(hybrid, "-c", f"lcd {host}; get /etc/motd; get /boot; get /etc mine; get /data.bin copy.bin; "
              "get /motd-link", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert (host / "motd").read_bytes() == (tree / "etc" / "motd").read_bytes()
    assert (host / "boot" / "grub.cfg").read_bytes() == (tree / "boot" / "grub.cfg").read_bytes()
    assert (host / "mine" / "deep" / "er" / "A file with spaces.txt").read_text() == "spaced out\n"
    assert (host / "copy.bin").read_bytes() == (tree / "data.bin").read_bytes()
    assert os.readlink(host / "motd-link") == "etc/motd"
    # an existing file is kept unless -f; a symlink planted on the host is never followed
    (host / "motd").write_text("mine\n")
    os.symlink("/etc/passwd", host / "planted")
    p = shell(hybrid, "-c", f"lcd {host}; get /etc/motd; get /etc/motd planted", cwd=str(tmp_path))
    assert p.returncode == 1
    assert p.stderr.count("already exists (use --force to replace it)") == 2
    assert (host / "motd").read_text() == "mine\n"
    p = shell(hybrid, "-c", f"lcd {host}; get -f /etc/motd; get -f /etc/motd planted", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert (host / "motd").read_bytes() == (tree / "etc" / "motd").read_bytes()
    assert not os.path.islink(host / "planted") and (host / "planted").read_text() == "hello from the shell\n"
    p = shell(hybrid, "-c", f"get /etc/motd {host}/no/such/dir/x", cwd=str(tmp_path))
    assert p.returncode == 1 and "no such directory on the host" in p.stderr


# --- other images: a plain xorriso ISO, a mkfs.fat volume, a cpio archive ---------------------------

def test_session_on_xorriso_iso(tmp_path, tree):
    need("xorriso", "isoinfo")
    image = str(tmp_path / "plain.iso")
    run(["xorriso", "-outdev", image, "-volid", "PLAIN", "-joliet", "on", "-map", str(tree), "/"])
    p = shell(image, "-c", "views; cat /etc/motd; view iso9660; ls /; inspect iso9660", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:3] == ["* rr", "  joliet", "  iso9660"]
    want = sorted(line.rstrip("/") for line in out(["isoinfo", "-f", "-R", "-i", image]).splitlines())
    assert _listing(image, "rr", str(tmp_path)) == want
    want = sorted(line.rstrip("/") for line in out(["isoinfo", "-f", "-J", "-i", image]).splitlines())
    assert _listing(image, "joliet", str(tmp_path)) == want
    assert "hello from the shell\n" in p.stdout
    assert "ETC" in p.stdout and "label 'PLAIN'" in p.stdout
    s = Session(image, cwd=str(tmp_path))
    s.prompt("rr:/> ")
    s.child.send("cd etc/d\t")
    s.child.expect_exact("deep/")
    s.run("", "rr:/etc/deep> ")
    assert "A file with spaces.txt" in s.run("tree", "rr:/etc/deep> ")
    assert s.close() == 0


def test_sessions_of_a_multisession_xorriso_iso(tmp_path):
    need("xorriso")
    image = str(tmp_path / "ms.iso")
    for name in ("one", "two"):
        (tmp_path / name).write_text(name + "\n")
        run(["xorriso", "-dev", image, "-map", str(tmp_path / name), "/" + name, "-commit"])
    toc = out(["xorriso", "-indev", image, "-toc"])
    lbas = [int(m) for m in re.findall(r"^ISO session\s*:\s*\d+\s*,\s*(\d+)\s*,", toc, re.M)]
    assert len(lbas) == 2, toc
    p = shell(image, "--write", "-c", "session; ls; session 0; ls; cat /one; rm /one; session 1; cat two",
              cwd=str(tmp_path))
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["  0", "* 1"]
    assert [int(line.split(" at LBA ")[1].split(",")[0]) for line in lines[:2]] == lbas
    assert lines[2:] == ["one", "two", "session 0, view rr, in /", "one", "one", "session 1, view rr, in /", "two"]
    assert p.stderr == ("sysexport: error: rm: staged changes are made to the newest session (1); this is "
                        "session 0: type 'session 1' first\n")


def test_session_on_mkfs_fat_volume(tmp_path):
    need("mkfs.fat", "mcopy", "mmd")
    image = str(tmp_path / "fat.img")
    run(["mkfs.fat", "-C", "-n", "SHELLFAT", image, "4096"])
    env = {"MTOOLS_SKIP_CHECK": "1"}
    (tmp_path / "Long File Name.txt").write_text("long name content\n")
    run(["mmd", "-i", image, "::/Dir", "::/Dir/Sub"], env_extra=env)
    run(["mcopy", "-i", image, str(tmp_path / "Long File Name.txt"), "::/Dir/Sub/"], env_extra=env)
    p = shell(image, "-c", "views; tree /; cat '/Dir/Sub/Long File Name.txt'; stat /Dir/Sub/Long\\ File\\ Name.txt; "
              "inspect fat", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[0] == "* fat"
    assert "    Sub/\n        Long File Name.txt\n" in p.stdout
    assert "long name content\n" in p.stdout and "short_name: LONGFI~1.TXT" in p.stdout
    assert "SHELLFAT" in p.stdout
    s = Session(image, cwd=str(tmp_path))
    s.prompt("fat:/> ")
    s.child.send("cat Dir/Sub/Lo\t")
    s.child.expect_exact("Long\\ File\\ Name.txt ")
    assert s.run("", "fat:/> ").endswith("long name content\n")
    assert s.close() == 0


def test_session_on_cpio_archive(tmp_path, tree):
    need("cpio")
    image = str(tmp_path / "initrd.cpio")
    names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=tree, capture_output=True, text=True).stdout
    with open(image, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=names.encode(), stdout=f, check=True)
    p = shell(image, "-c", "views; cat etc/motd; stat /motd-link", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("* cpio\n")
    want = [n for n in out(["cpio", "-t", "--quiet"], input=open(image, "rb").read()).splitlines()]
    assert _listing(image, "cpio", str(tmp_path)) == sorted("/" + (n[2:] if n.startswith("./") else n) for n in want)
    s = Session(image, cwd=str(tmp_path))
    s.prompt("cpio:/> ")
    s.child.send("cd etc/deep/e\t")
    s.child.expect_exact("er/")
    s.run("", "cpio:/etc/deep/er> ")
    assert s.run("ls", "cpio:/etc/deep/er> ").strip() == "A file with spaces.txt"
    assert s.run("cat A\\ file\\ with\\ spaces.txt", "cpio:/etc/deep/er> ") == "spaced out\n"
    assert s.close() == 0
    assert "hello from the shell\n" in p.stdout and "target: etc/motd" in p.stdout


def test_missing_paths_and_wrong_types(tmp_path, hybrid):
    p = shell(hybrid, "-c", "cd /etc/motd; cat /etc; ls /x/y; get /nope; tree /nope; view; stat; inspect nosuch; "
              "cd ..; cd ../../..; pwd", cwd=str(tmp_path))
    assert p.returncode == 1
    errors = p.stderr.strip().split("\n")
    assert errors[:7] == [
        "sysexport: error: cd: rr:/etc/motd: not a directory",
        "sysexport: error: cat: rr:/etc: not a regular file (dir)",
        "sysexport: error: ls: rr:/x/y: no such file or directory",
        "sysexport: error: get: rr:/nope: no such file or directory",
        "sysexport: error: tree: rr:/nope: no such file or directory",
        "sysexport: error: view: expected a view name (this image has: rr, joliet, iso9660, fat, fat:1)",
        "sysexport: error: stat: expected a path",
    ]
    assert errors[7].startswith("sysexport: error: inspect: no structure of kind nosuch (this image has: ")
    assert "gpt" in errors[7] and len(errors) == 8
    assert p.stdout.strip().split("\n")[-1] == "/"          # '..' never climbs above the root


# --- --write: put changes a file in place ----------------------------------------------------------

def _sha(path: str) -> str:
    from helpers import sha256_file
    return sha256_file(path)


def test_pty_put_on_hybrid_read_back_by_bsdtar_and_mtools(tmp_path, tree, hybrid):
    need("bsdtar", "mcopy", "fsck.fat")
    new = tmp_path / "new-grub.cfg"
    new.write_bytes(b"set timeout=1\nmenuentry changed {\n}\n" * 20)     # shorter than the old one
    bigger = tmp_path / "bigger-motd"
    bigger.write_bytes(b"x" * 2000 + b"\n")                             # 21 bytes grow to 2001 (one 2 KiB block)
    s = Session(hybrid, "--write", cwd=str(tmp_path))
    s.prompt("rr:/> ")
    s.child.send("put new-g\t")                                          # a host path completes from the host
    s.child.expect_exact("new-grub.cfg ")
    text = s.run("boot/grub.cfg", "rr:/> ")
    old_size = (tree / "boot" / "grub.cfg").stat().st_size
    assert f"{old_size:,} -> {new.stat().st_size:,} bytes, in place" in text, text
    assert "fat:1:/boot/grub.cfg" in text and "joliet:/boot/grub.cfg" in text
    text = s.run("put bigger-motd /etc/motd", "rr:/> ")
    assert "21 -> 2,001 bytes" in text, text
    assert s.run("cat /etc/motd", "rr:/> ") == "x" * 2000 + "\n"
    err = s.run(f"put {hybrid} /etc/motd", "rr:/> ").strip()
    assert err.startswith("sysexport: error: put: ") and "do not fit" in err and "\n" not in err
    assert s.close() == 0
    # the ISO side as bsdtar reads it, the ESP as mtools reads it: the new bytes
    got = tmp_path / "got"
    got.mkdir()
    run(["bsdtar", "-xf", hybrid, "-C", str(got)])
    assert (got / "boot" / "grub.cfg").read_bytes() == new.read_bytes()
    assert (got / "etc" / "motd").read_bytes() == bigger.read_bytes()
    assert (got / "data.bin").read_bytes() == (tree / "data.bin").read_bytes()
    esp = _esp(tmp_path, hybrid)
    run(["fsck.fat", "-n", esp])
    env = {"MTOOLS_SKIP_CHECK": "1"}
    for name, want in (("boot/grub.cfg", new), ("etc/motd", bigger), ("data.bin", tree / "data.bin")):
        dest = tmp_path / ("m-" + name.replace("/", "-"))
        run(["mcopy", "-n", "-i", esp, "::/" + name, str(dest)], env_extra=env)
        assert dest.read_bytes() == want.read_bytes(), name


def test_put_refusals_leave_the_image_as_it_was(tmp_path, hybrid):
    before = _sha(hybrid)
    (tmp_path / "small").write_text("small\n")
    p = shell(hybrid, "-c", "put small /etc/motd", cwd=str(tmp_path))
    assert p.returncode == 1
    assert p.stderr == "sysexport: error: put: the image is open read-only: start the shell with --write\n"
    p = shell(hybrid, "--write", "-c", f"put small /etc; put small /nope; put missing /etc/motd; put {hybrid} "
              "/etc/motd; put small", cwd=str(tmp_path))
    assert p.returncode == 1
    errors = p.stderr.strip().split("\n")
    assert len(errors) == 5, errors
    assert errors[1] == "sysexport: error: put: rr:/nope: no such file or directory"
    assert errors[2] == f"sysexport: error: put: {tmp_path / 'missing'}: not a file on the host"
    assert "do not fit" in errors[3] and errors[4] == "sysexport: error: put: expected HOST_FILE PATH"
    assert _sha(hybrid) == before


def test_put_on_xorriso_iso_and_mkfs_fat(tmp_path, tree):
    need("xorriso", "mkfs.fat", "mcopy", "fsck.fat")
    iso = str(tmp_path / "plain.iso")
    run(["xorriso", "-outdev", iso, "-joliet", "on", "-map", str(tree), "/"])
    (tmp_path / "motd2").write_text("a new message of the day\n")
    p = shell(iso, "--write", "-c", "put motd2 /etc/motd; view joliet; cat /etc/motd", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("a new message of the day\n")
    xo = tmp_path / "xo"
    run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/etc/motd", str(xo)])
    assert xo.read_text() == "a new message of the day\n"
    fat = str(tmp_path / "fat.img")
    run(["mkfs.fat", "-C", fat, "2048"])
    env = {"MTOOLS_SKIP_CHECK": "1"}
    run(["mcopy", "-i", fat, str(tree / "boot" / "grub.cfg"), "::/grub.cfg"], env_extra=env)
    p = shell(fat, "--write", "-c", "put motd2 grub.cfg; stat grub.cfg", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "size: 25 bytes" in p.stdout
    run(["fsck.fat", "-n", fat])
    back = tmp_path / "back"
    run(["mcopy", "-n", "-i", fat, "::/grub.cfg", str(back)], env_extra=env)
    assert back.read_text() == "a new message of the day\n"


# --- --write: rm, mkdir, add, mv staged for commit OUT ---------------------------------------------

def _bsdtar_paths(image: str) -> list[str]:
    lines = out(["bsdtar", "-tf", image]).splitlines()
    return sorted("/" + (n[2:] if n.startswith("./") else n).rstrip("/") for n in lines if n not in (".", "./"))


def _mtools_paths(esp: str) -> list[str]:
    lines = out(["mdir", "-/", "-b", "-i", esp, "::"], env_extra={"MTOOLS_SKIP_CHECK": "1"}).splitlines()
    return sorted(line[2:].rstrip("/") for line in lines if line.startswith("::/") and line != "::/")


def test_pty_staged_changes_committed_to_a_new_hybrid(tmp_path, tree, hybrid):
    need("bsdtar", "mdir", "mcopy", "fsck.fat")
    before = _sha(hybrid)
    extra = tmp_path / "extra"
    (extra / "lib").mkdir(parents=True)
    (extra / "lib" / "thing.so").write_bytes(os.urandom(5000))
    (tmp_path / "notes.txt").write_text("added by the shell\n")
    s = Session(hybrid, "--write", cwd=str(tmp_path))
    s.prompt("rr:/> ")
    assert "staged: rm /etc/deep" in s.run("rm etc/deep", "rr:/> ")
    assert "staged: mkdir /opt/empty" in s.run("mkdir /opt/empty", "rr:/> ")
    s.child.send("add note\t")
    s.child.expect_exact("notes.txt ")
    assert "/opt/notes.txt" in s.run("\x08:/opt/", "rr:/> ")       # backspace the space, then :DEST
    assert "staged: add" in s.run("add extra:/usr", "rr:/> ")
    assert "staged: mv /boot/grub.cfg /boot/grub-old.cfg" in s.run("mv /boot/grub.cfg /boot/grub-old.cfg", "rr:/> ")
    err = s.run("rm /etc/nope", "rr:/> ").strip()
    assert err.startswith("sysexport: error: rm: ") and "etc/nope" in err and "\n" not in err
    err = s.run("mv /data.bin /no/such/dir/data.bin", "rr:/> ").strip()
    assert err.startswith("sysexport: error: mv: ") and "does not exist" in err
    listed = s.run("staged", "rr:/> ")
    assert len(listed.strip().split("\n")) == 5, listed
    text = s.run("commit new.img", "rr:/> ")
    assert f"{tmp_path / 'new.img'}: written with 5 change(s)" in text, text
    assert s.run("staged", "rr:/> ").strip() == "nothing staged"
    assert s.close() == 0
    assert _sha(hybrid) == before                   # the image explored is unchanged
    new = str(tmp_path / "new.img")
    want = [p for p in _bsdtar_paths(hybrid) if not p.startswith("/etc/deep") and p != "/boot/grub.cfg"]
    want += ["/boot/grub-old.cfg", "/opt", "/opt/empty", "/opt/notes.txt", "/usr", "/usr/lib", "/usr/lib/thing.so"]
    assert _bsdtar_paths(new) == sorted(want)
    got = tmp_path / "got"
    got.mkdir()
    run(["bsdtar", "-xf", new, "-C", str(got)])
    assert (got / "usr" / "lib" / "thing.so").read_bytes() == (extra / "lib" / "thing.so").read_bytes()
    assert (got / "boot" / "grub-old.cfg").read_bytes() == (tree / "boot" / "grub.cfg").read_bytes()
    assert (got / "opt" / "notes.txt").read_text() == "added by the shell\n"
    esp = _esp(tmp_path, new)
    run(["fsck.fat", "-n", esp])
    assert _mtools_paths(esp) == sorted(p for p in want if p != "/motd-link")
    back = tmp_path / "back.so"
    run(["mcopy", "-n", "-i", esp, "::/usr/lib/thing.so", str(back)], env_extra={"MTOOLS_SKIP_CHECK": "1"})
    assert back.read_bytes() == (extra / "lib" / "thing.so").read_bytes()


def test_staged_refusals_and_unstage(tmp_path, hybrid):
    p = shell(hybrid, "--write", "-c", "view iso9660; rm /ETC; view rr; add missing-host-file; rm /; mkdir; "
              "rm /etc; unstage; unstage; commit; commit a b; staged", cwd=str(tmp_path))
    assert p.returncode == 1
    assert p.stderr.strip().split("\n") == [
        "sysexport: error: rm: staged changes name Rock Ridge paths: type 'view rr' first (this is the iso9660 view)",
        f"sysexport: error: add: {tmp_path / 'missing-host-file'}: no such file or directory on the host",
        "sysexport: error: rm: the root cannot be removed",
        "sysexport: error: mkdir: expected a path",
        "sysexport: error: unstage: nothing staged",
        "sysexport: error: commit: expected [--iso|--hybrid] OUT, the new image's path",
        "sysexport: error: commit: expected [--iso|--hybrid] OUT, the new image's path",
    ]
    assert "unstaged: rm /etc" in p.stdout and p.stdout.endswith("nothing staged\n")
    assert not os.path.exists(tmp_path / "a")


def test_commit_onto_the_image_itself_reads_it_again(tmp_path, hybrid):
    need("bsdtar")
    p = shell(hybrid, "--write", "-c", f"cd /etc; rm deep; commit {hybrid}; ls", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("\nmotd\n")            # the shell reads the new image: deep is gone
    assert "/etc/deep" not in _bsdtar_paths(hybrid) and "/etc/motd" in _bsdtar_paths(hybrid)


def test_staged_on_xorriso_iso_stays_an_iso(tmp_path, tree):
    need("xorriso")
    iso = str(tmp_path / "plain.iso")
    run(["xorriso", "-outdev", iso, "-joliet", "on", "-map", str(tree), "/"])
    p = shell(iso, "--write", "-c", "rm /data.bin; mv /etc/motd /etc/motd.old; mkdir /srv; commit new.iso",
              cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    found = out(["xorriso", "-indev", str(tmp_path / "new.iso"), "-find", "/", "--"]).splitlines()
    names = sorted(line.strip("'") for line in found if line.startswith("'"))
    want = sorted(["/"] + [p for p in _listing(iso, "rr", str(tmp_path)) if p not in ("/data.bin", "/etc/motd")]
                  + ["/etc/motd.old", "/srv"])
    assert names == want
    assert shell(str(tmp_path / "new.iso"), "-c", "views", cwd=str(tmp_path)).stdout.split() == \
        ["*", "rr", "joliet", "iso9660"]                           # no GPT, no ESP: still a plain ISO


def test_staged_on_mkfs_fat_volume(tmp_path, tree):
    need("mkfs.fat", "mcopy", "mmd", "fsck.fat")
    fat = str(tmp_path / "fat.img")
    run(["mkfs.fat", "-C", "-n", "KEEPME", fat, "4096"])
    env = {"MTOOLS_SKIP_CHECK": "1"}
    run(["mmd", "-i", fat, "::/Old Dir"], env_extra=env)
    run(["mcopy", "-i", fat, str(tree / "data.bin"), "::/Old Dir/data.bin"], env_extra=env)
    run(["mcopy", "-i", fat, str(tree / "etc" / "motd"), "::/motd"], env_extra=env)
    p = shell(fat, "--write", "-c", f"mv '/Old Dir' '/New Dir'; rm /motd; add {tree / 'boot'}:/boot; "
              "commit new.img", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    new = str(tmp_path / "new.img")
    run(["fsck.fat", "-n", new])
    assert _mtools_paths(new) == ["/New Dir", "/New Dir/data.bin", "/boot", "/boot/grub.cfg"]
    back = tmp_path / "back.bin"
    run(["mcopy", "-n", "-i", new, "::/New Dir/data.bin", str(back)], env_extra=env)
    assert back.read_bytes() == (tree / "data.bin").read_bytes()
    assert "KEEPME" in out(["mlabel", "-s", "-i", new, "::"], env_extra=env)


# --- bounds: memory, hostile images -----------------------------------------------------------------

def _peak_rss_kib(image: str, commands: str, cwd: str) -> int:
    """The peak resident size of a shell process running ``commands`` (its output discarded)."""
    code = ("import os, resource, sys\n"
            "sys.stdout = open(os.devnull, 'w')\n"
            "from sysexport.cli import main\n"
            f"status = main(['shell', {image!r}, '-c', {commands!r}])\n"
            "sys.stderr.write(f'{status} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=_env(cwd))
    status, peak = p.stderr.rsplit("\n", 1)[-1].split()
    assert status == "0", p.stderr
    return int(peak)


def test_cat_and_get_stream_a_large_file(tmp_path):
    src = tmp_path / "big"
    src.mkdir()
    size = 96 << 20
    with open(src / "big.bin", "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    image = str(tmp_path / "big.img")
    sysexport("build", str(src), "-o", image, cwd=str(tmp_path))
    base = _peak_rss_kib(image, "ls -l", str(tmp_path))
    for commands in ("cat /big.bin", f"get /big.bin {tmp_path / 'got.bin'}"):
        grown = _peak_rss_kib(image, commands, str(tmp_path)) - base
        assert grown < 24 << 10, (commands, grown)               # KiB: far below the file's 96 MiB
    assert _sha(str(tmp_path / "got.bin")) == _sha(str(src / "big.bin"))


def test_mutated_images_give_error_lines_never_tracebacks(tmp_path, hybrid):
    """A seeded mutator over a hybrid's directories (ISO, Joliet, FAT), volume descriptors,
    path tables and FATs, the shell run in this process on each mutant: every failure is a
    one-line error, and some mutants do fail (the mutator reaches what is read)."""
    import io
    import random

    import sysexport
    from sysexport.errors import SysExportError
    from sysexport.shell import Explorer
    data = open(hybrid, "rb").read()
    with sysexport.open(hybrid) as img:
        spans = [x for v in ("rr", "joliet", "fat") for e in img.view(v).walk() if e.is_dir for x in e.extents]
        spans += [(s.offset, min(s.size, 4096)) for s in img.structures
                  if s.kind in ("fat", "iso9660-descriptor", "iso9660-path-table")]
    rng = random.Random(1414)
    failed = 0
    for case in range(16):
        mutant = bytearray(data)
        for _ in range(rng.randint(8, 64)):
            offset, size = rng.choice(spans)
            mutant[offset + rng.randrange(size)] = rng.randrange(256)
        path = tmp_path / f"m{case}.img"
        path.write_bytes(mutant)
        for view in ("rr", "fat"):
            err = io.StringIO()
            try:
                sh = Explorer(str(path), view=view, stdout=io.StringIO(), stderr=err, binary=io.BytesIO())
            except SysExportError:
                failed += 1                         # not an image any more, or no such view: one error line
                continue
            try:
                sh.run_script([f"lcd {tmp_path}; ls -R /; tree; inspect; stat /etc/motd; cat /boot/grub.cfg; "
                               f"get / out-{case}-{view}; ls -l /etc"])
            finally:
                sh.close()
            failed += bool(err.getvalue())
            for line in err.getvalue().splitlines():
                assert line.startswith("sysexport: error: ") and "internal error" not in line, (case, view, line)
    assert failed >= 4, failed


def test_a_name_that_is_not_utf8_is_written_as_its_bytes(tmp_path):
    need("cpio")
    src = tmp_path / "t"
    src.mkdir()
    name = b"bad\xffname"
    with open(os.path.join(os.fsencode(src), name), "wb") as f:
        f.write(b"odd\n")
    image = tmp_path / "odd.cpio"
    with open(image, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=src, input=name + b"\n", stdout=f, check=True)
    env = dict(_env(str(tmp_path)), PYTHONIOENCODING="utf-8:strict")     # a locale that refuses surrogates
    p = subprocess.run([sys.executable, "-m", "sysexport", "shell", str(image), "-c",
                        b"ls; cat /" + name + b"; get /" + name + b" copy"], capture_output=True, env=env,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(name + b"\nodd\n") and p.stderr == b""
    assert (tmp_path / "copy").read_bytes() == b"odd\n"


def test_staged_on_cpio_archive(tmp_path, tree):
    need("cpio")
    image = str(tmp_path / "initrd.cpio")
    names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=tree, capture_output=True, text=True).stdout
    with open(image, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=names.encode(), stdout=f, check=True)
    (tmp_path / "init").write_text("#!/bin/sh\nexec /sbin/init\n")
    p = shell(image, "--write", "-c", "rm /data.bin; mv /etc /config; add init:/; mkdir /dev; "
              "mv /config/motd /config/issue; rm /init; mv /etc/deep /x; staged; commit new.cpio", cwd=str(tmp_path))
    assert p.returncode == 1
    assert p.stderr.strip().split("\n") == [
        "sysexport: error: rm: cpio:/init: added by a staged change; only the archive's own entries can be "
        "removed or moved before commit",
        "sysexport: error: mv: cpio:/etc/deep: moved away by a staged change"]
    assert "   5  mv /etc/motd /config/issue" in p.stdout          # as the archive names it
    listed = sorted(n[2:] if n.startswith("./") else n
                    for n in out(["cpio", "-t", "--quiet"], input=open(tmp_path / "new.cpio", "rb").read()).splitlines())
    assert listed == sorted(["boot", "boot/grub.cfg", "config", "config/issue", "config/deep", "config/deep/er",
                             "config/deep/er/A file with spaces.txt", "motd-link", "init", "dev"])
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    run(["cpio", "-i", "-d", "--quiet", "-F", str(tmp_path / "new.cpio"), "-D", str(unpacked)])
    assert (unpacked / "config" / "issue").read_bytes() == (tree / "etc" / "motd").read_bytes()
    assert (unpacked / "init").read_text() == "#!/bin/sh\nexec /sbin/init\n"
    assert (unpacked / "dev").is_dir() and os.readlink(unpacked / "motd-link") == "etc/motd"
