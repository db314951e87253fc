"""The `sysexport` command as users call it (python -m sysexport ...)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import need, out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sysexport(*args: str, cwd: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH="1700000000")
    p = subprocess.run([sys.executable, "-m", "sysexport", *args], capture_output=True, text=True, cwd=cwd, env=env)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def test_build_default_tree_then_inspect_ls_verify_extract(tmp_path):
    image = str(tmp_path / "demo.img")
    p = sysexport("build", "-o", image, "--label", "DEMO")
    assert "ESP" in p.stdout and "stored once" in p.stdout
    need("blkid")
    blk = out(["blkid", "-p", "-o", "export", image])
    assert "TYPE=iso9660" in blk and "LABEL=DEMO" in blk and "PTTYPE=gpt" in blk
    text = sysexport("inspect", image).stdout
    assert "GPT for 512-byte blocks" in text and "GPT for 4096-byte blocks" in text and "FAT" in text
    assert "Rock Ridge" in text
    listing = sysexport("ls", image, "-R", "-l").stdout
    assert "/readme-link -> README.txt" in listing and "/docs/café.txt" in listing
    assert sysexport("verify", image).stdout.rstrip().endswith("OK: every check passed")
    assert sysexport("cat", image, "/docs/café.txt").stdout == open(
        os.path.join(ROOT, "sysexport", "demo", "docs", "café.txt"), encoding="utf-8").read()
    dest = tmp_path / "x"
    sysexport("extract", image, str(dest))
    assert (dest / "docs" / "café.txt").read_bytes() == open(
        os.path.join(ROOT, "sysexport", "demo", "docs", "café.txt"), "rb").read()
    # Same input, same time: same bytes.
    again = str(tmp_path / "again.img")
    sysexport("build", "-o", again, "--label", "DEMO")
    assert open(image, "rb").read() == open(again, "rb").read()


def test_error_exit_and_no_partial_output(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad:name.txt").write_bytes(b"x")
    image = tmp_path / "out.img"
    image.write_bytes(b"previous image")
    p = sysexport("build", str(src), "-o", str(image), ok=False)
    assert p.returncode == 1                                # an error; 2 is for usage errors
    assert p.stderr.startswith("sysexport: error: ") and p.stderr.count("\n") == 1
    assert "bad:name.txt" in p.stderr
    assert image.read_bytes() == b"previous image"
    assert sorted(os.listdir(tmp_path)) == ["out.img", "src"]


def test_initramfs_command(tmp_path):
    src = tmp_path / "root"
    (src / "bin").mkdir(parents=True)
    (src / "init").write_bytes(b"#!/bin/sh\n")
    out_path = tmp_path / "initrd.gz"
    sysexport("initramfs", str(src), "-o", str(out_path), "--compress", "gzip")
    need("bsdtar")
    listing = out(["bsdtar", "-tf", str(out_path)])
    assert "init" in listing and "bin" in listing


def test_command_table_registers_every_command(monkeypatch):
    import argparse

    import sysexport.cli as cli
    from sysexport.errors import InternalError
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(sub.choices) == [n for names, _ in cli.COMMANDS for n in names]
    assert {"build", "live", "initramfs", "inspect", "ls", "cat", "extract", "verify"} <= set(sub.choices)
    # a row whose function does not register what the table says is an error, not a missing command
    monkeypatch.setattr(cli, "COMMANDS", cli.COMMANDS + ((("mkisofs",), lambda sub: None),))
    with pytest.raises(InternalError, match="mkisofs"):
        cli.build_parser()


def test_a_command_module_that_fails_to_import_is_loud():
    code = ("import sys; sys.modules['sysexport.image.commands'] = None; from sysexport.cli import main; "
            "main(['--help'])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 1 and "ModuleNotFoundError" in p.stderr and "sysexport.image.commands" in p.stderr


def _main_with(monkeypatch, exc: BaseException, *argv: str) -> int:
    """Run sysexport.cli.main with `build`'s handler replaced by one raising ``exc``."""
    import sysexport.cli as cli

    def boom(args):
        raise exc
    original = cli.add_cli_build

    def add_build(sub):
        parser = original(sub)
        parser.set_defaults(func=boom)
        return parser
    monkeypatch.setattr(cli, "COMMANDS", ((("build",), add_build),) + cli.COMMANDS[1:])
    return cli.main([*argv, "build", "-o", "x.img"])


def test_a_bug_is_one_line_saying_so(monkeypatch, capsys):
    assert _main_with(monkeypatch, KeyError("oops")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sysexport: error: internal error, a bug in sysexport")
    assert "KeyError" in err and "--debug" in err and "Traceback" not in err
    assert _main_with(monkeypatch, KeyError("oops"), "--debug") == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("sysexport: error: internal error")


def test_interrupt_oserror_and_broken_pipe(monkeypatch, capsys):
    assert _main_with(monkeypatch, KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "sysexport: error: interrupted\n"
    assert _main_with(monkeypatch, OSError(28, "No space left on device", "/mnt/full/x.img")) == 1
    assert capsys.readouterr().err == "sysexport: error: /mnt/full/x.img: No space left on device\n"
    assert _main_with(monkeypatch, BrokenPipeError(32, "Broken pipe")) == 0
    assert capsys.readouterr().err == ""


def test_usage_errors_are_one_line_with_status_2(tmp_path):
    for args in (["build", "--nosuch"], ["ls"], ["initramfs", "x", "-o", "y", "--compress", "rar"], ["frobnicate"]):
        p = sysexport(*args, cwd=str(tmp_path), ok=False)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("sysexport: error: "), (args, p.stderr)


def test_the_quick_exit_still_runs_clean_ups_and_keeps_statuses(tmp_path):
    """``python -m sysexport`` leaves with os._exit after the command (sysexport/__main__.py):
    the exit handlers still run (one registered by a sitecustomize module writes its file),
    mkisofs --sysexport-hybrid's unpacked work directory is gone, what was printed is all
    there, and the statuses are the command's: 0, 1 for an error, 2 for a usage error."""
    need("xorriso")
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "boot" / "a.txt").write_text("a\n")
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "atexit-ran"
    (site / "sitecustomize.py").write_text(f"import atexit\natexit.register(open, {str(marker)!r}, 'w')\n")
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=f"{site}:{ROOT}")
    image = tmp_path / "h.img"
    p = subprocess.run([sys.executable, "-m", "sysexport", "mkisofs", "-R", "-J", "--sysexport-hybrid", "-o",
                        str(image), str(tree), "--json"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip().endswith("}") and '"files"' in p.stdout            # the whole JSON object
    assert list(tmp.iterdir()) == []
    assert marker.exists()
    assert "/boot/a.txt" in out(["xorriso", "-indev", str(image), "-find", "/", "-type", "f"])
    missing = subprocess.run([sys.executable, "-m", "sysexport", "ls", str(tmp_path / "nothing.img")],
                             capture_output=True, text=True, env=env)
    assert missing.returncode == 1 and missing.stderr.startswith("sysexport: error: ")
    usage = subprocess.run([sys.executable, "-m", "sysexport", "build", "--no-such-option"], capture_output=True,
                           text=True, env=env)
    assert usage.returncode == 2


def test_ctrl_c_while_the_command_is_imported_is_one_line(monkeypatch, capsys):
    """A KeyboardInterrupt while main() imports the command's modules and parses (the start
    of every run) is the one 'interrupted' line and status 130, never a traceback."""
    import sysexport.cli as cli

    def interrupted(sub):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "COMMANDS", ((("build",), interrupted),) + cli.COMMANDS[1:])
    assert cli.main(["build", "-o", "x.img"]) == 130
    assert capsys.readouterr().err == "sysexport: error: interrupted\n"


def test_initramfs_imports_only_its_own_modules(tmp_path):
    """A run imports its command's modules alone (cli.COMMANDS) and the archive writer's
    path no construct (cpio/newc.py): start-up is part of every initramfs run, and GNU cpio
    has none."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("a\n")
    code = ("import sys; from sysexport.cli import main; "
            f"status = main(['initramfs', {str(tree)!r}, '-o', {str(tmp_path / 'a.cpio')!r}, '-q']); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('construct', 'sysexport'))))); "
            "sys.exit(status)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0, p.stderr
    modules = set(p.stdout.split())
    assert "sysexport.cpio.writer" in modules
    for heavy in ("construct", "sysexport.buildcli", "sysexport.hybrid", "sysexport.iso9660", "sysexport.vfat",
                  "sysexport.cpio._structs"):
        assert heavy not in modules, (heavy, sorted(modules))
    need("cpio")
    listed = subprocess.run(["cpio", "-it", "--quiet", "-F", str(tmp_path / "a.cpio")], capture_output=True,
                            text=True, check=True).stdout.split()
    assert "a" in listed
