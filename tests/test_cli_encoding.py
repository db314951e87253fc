"""Names that are not UTF-8 through the read commands, under encodings that refuse them.

A Rock Ridge or CPIO name is bytes; one that is not UTF-8 (a 0xff byte, a Latin-1 name)
must come out of ``ls``, ``extract``, ``cat``'s errors and every one-line error as the
same bytes, never as an internal error (UnicodeEncodeError) under
``PYTHONIOENCODING=utf-8:strict`` or ``LC_ALL=C.UTF-8``; ``--json`` as the JSON escape of
the surrogate (``"\\udcff"``), which ``os.fsencode`` turns back into the bytes.  To a
terminal (a pseudo-terminal here) names are escaped as GNU ``ls -b`` escapes them, and
the test compares the two listings.  The images
are made by tools nobody here wrote (GNU cpio, xorriso) from a host directory holding such
names, and the expected names are the host's own (``os.listdir`` of bytes).
"""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest
from helpers import need

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = {b"\xff": b"ff data\n", b"caf\xe9.txt": b"latin-1 name\n", b"ok": b"plain\n",
         b"e\x1b[1m": b"an escape sequence\n", b"back\\slash": b"a backslash\n"}
SUBDIR, INNER = b"d\xfe", b"in\xff"
ENVIRONMENTS = ({"PYTHONIOENCODING": "utf-8:strict"}, {"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": ""})


def sysexport(args: list[bytes | str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """``python3 -m sysexport ARGS`` in a child with ``env_extra``: its raw stdout/stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "LC_ALL", "LANG")}
    env.update({k: v for k, v in env_extra.items() if v})
    env["PYTHONPATH"] = ROOT
    return subprocess.run([sys.executable, "-m", "sysexport", *args], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, bytes]:
    """A host tree with non-UTF-8 names, as a newc archive (GNU cpio) and a Rock Ridge ISO
    (xorriso -as mkisofs -R); the image paths as bytes."""
    need("cpio", "xorriso")
    tmp = os.fsencode(tmp_path_factory.mktemp("encoding"))
    src = os.path.join(tmp, b"src")
    os.makedirs(os.path.join(src, SUBDIR))
    for name, data in NAMES.items():
        with open(os.path.join(src, name), "wb") as f:
            f.write(data)
    with open(os.path.join(src, SUBDIR, INNER), "wb") as f:
        f.write(b"inner\n")
    os.symlink(b"\xff", os.path.join(src, b"link"))
    found = subprocess.run(["find", ".", "-mindepth", "1"], cwd=src, capture_output=True, check=True).stdout
    cpio = os.path.join(tmp, b"tree.cpio")
    with open(cpio, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=src, input=found, stdout=f, check=True)
    iso = os.path.join(tmp, b"tree.iso")
    subprocess.run([b"xorriso", b"-as", b"mkisofs", b"-R", b"-quiet", b"-o", iso, src], check=True, capture_output=True)
    return {"cpio": cpio, "rr": iso, "src": src, "tmp": tmp}


def host_paths(src: bytes) -> set[bytes]:
    """Every path below ``src`` as the image should list it: b'/' + the host's bytes."""
    out = set()
    for top, dirs, files in os.walk(src):
        for name in dirs + files:
            out.add(b"/" + os.path.relpath(os.path.join(top, name), src))
    return out


def no_internal_error(result: subprocess.CompletedProcess[bytes]) -> None:
    assert b"internal error" not in result.stderr and b"Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=["strict", "C.UTF-8"])
@pytest.mark.parametrize("view", ["cpio", "rr"])
def test_ls_prints_the_name_bytes(images, view, env):
    r = sysexport(["ls", "-R", "--view", view, images[view]], env)
    no_internal_error(r)
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.splitlines()) - {b"/"} == host_paths(images["src"])
    r = sysexport(["ls", "-l", "--view", view, images[view], b"/" + SUBDIR], env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip(b"\n").endswith(b" " + INNER) and r.stdout.count(b"\n") == 1
    r = sysexport(["ls", "-l", "--view", view, images[view], b"/link"], env)
    assert r.returncode == 0 and r.stdout.endswith(b" link -> \xff\n"), r.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=["strict", "C.UTF-8"])
@pytest.mark.parametrize("view", ["cpio", "rr"])
def test_ls_json_escapes_the_surrogates(images, view, env):
    r = sysexport(["ls", "-R", "--json", "--view", view, images[view]], env)
    no_internal_error(r)
    assert r.returncode == 0, r.stderr
    r.stdout.decode("ascii")                                # valid UTF-8: the escapes are ASCII
    assert b"\\udcff" in r.stdout and b"\\udce9" in r.stdout
    doc = json.loads(r.stdout)
    assert {os.fsencode(e["path"]) for e in doc["entries"]} - {b"/"} == host_paths(images["src"])
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from sysexport.schemas import load, load_all
    registry = referencing.Registry().with_resources(
        (sid, referencing.Resource.from_contents(s)) for sid, s in load_all().items())
    jsonschema.Draft202012Validator(load("ls"), registry=registry).validate(doc)


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=["strict", "C.UTF-8"])
@pytest.mark.parametrize("view", ["cpio", "rr"])
def test_cat_and_its_errors(images, view, env):
    r = sysexport(["cat", "--view", view, images[view], b"/\xff"], env)
    assert r.returncode == 0 and r.stdout == NAMES[b"\xff"], r.stderr
    r = sysexport(["cat", "--view", view, images[view], b"/missing\xff"], env)
    no_internal_error(r)
    assert r.returncode == 1
    assert r.stderr.startswith(b"sysexport: error: ") and r.stderr.count(b"\n") == 1
    assert b"/missing\xff: " in r.stderr                    # the bytes, not an escape


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=["strict", "C.UTF-8"])
@pytest.mark.parametrize("view", ["cpio", "rr"])
def test_extract_verify_inspect(images, view, env, tmp_path):
    dest = os.fsencode(tmp_path / "out")
    r = sysexport(["extract", "--view", view, images[view], dest], env)
    no_internal_error(r)
    assert r.returncode == 0, r.stderr
    assert host_paths(dest) == host_paths(images["src"])
    for name, data in NAMES.items():
        with open(os.path.join(dest, name), "rb") as f:
            assert f.read() == data
    r = sysexport(["extract", "--json", "--view", view, images[view], dest + b"2"], env)
    assert r.returncode == 0 and json.loads(r.stdout)["entries"] == len(host_paths(images["src"])) + 1, r.stderr  # and /
    for command in ("verify", "inspect"):
        r = sysexport([command, images[view]], env)
        no_internal_error(r)
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=["strict", "C.UTF-8"])
def test_error_line_of_any_command(images, env):
    """The CLI's one-line error printer: a missing source of ``build`` named by its bytes."""
    missing = os.path.join(images["tmp"], b"missing\xff")
    r = sysexport(["build", "-o", os.path.join(images["tmp"], b"o.iso"), missing], env)
    no_internal_error(r)
    assert r.returncode == 1 and missing + b":" in r.stderr and r.stderr.count(b"\n") == 1, r.stderr
    assert not os.path.exists(os.path.join(images["tmp"], b"o.iso"))


def on_terminal(args: list[bytes | str], env_extra: dict[str, str]) -> bytes:
    """What ``sysexport ARGS`` writes with standard output and error on a pseudo-terminal
    (the terminal's CR LF turned back into LF)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "LC_ALL", "LANG")}
    env.update({k: v for k, v in env_extra.items() if v})
    env["PYTHONPATH"] = ROOT
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "sysexport", *args], env=env, stdin=subprocess.DEVNULL,
                             stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:                         # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        p.wait(timeout=120)
    return b"".join(chunks).replace(b"\r\n", b"\n")


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=["strict", "C.UTF-8"])
@pytest.mark.parametrize("view", ["cpio", "rr"])
def test_terminal_gets_the_escapes_ls_b_shows(images, view, env):
    """A name's control characters and stray bytes must not reach a terminal as they are
    (an image's names could drive it): they are shown as GNU ls -b shows them."""
    need("ls")
    for sub in (b"", SUBDIR):
        expected = subprocess.run(["ls", "-b", "-1", "-A", os.path.join(images["src"], sub)], capture_output=True,
                                  check=True, env=dict(os.environ, LC_ALL="C.UTF-8")).stdout
        shown = on_terminal(["ls", "--view", view, images[view], b"/" + sub], env)
        assert b"internal error" not in shown and b"\x1b" not in shown, shown
        assert sorted(shown.splitlines()) == sorted(expected.splitlines())
    shown = on_terminal(["ls", "-l", "--view", view, images[view], b"/link"], env)
    assert shown.endswith(b" link -> \\377\n"), shown
    shown = on_terminal(["cat", "--view", view, images[view], b"/missing\xff\x1b[2J"], env)
    assert shown.startswith(b"sysexport: error: ") and b"/missing\\377\\033[2J: " in shown, shown


@pytest.mark.parametrize("view", ["cpio", "rr"])
def test_shell_on_a_terminal_escapes_names(images, view):
    """The shell's listings and error lines on a terminal escape names as ls -b does; its
    cat writes the file's bytes unchanged."""
    expected = subprocess.run(["ls", "-b", "-1", "-A", images["src"]], capture_output=True, check=True,
                              env=dict(os.environ, LC_ALL="C.UTF-8")).stdout
    shown = on_terminal(["shell", "--no-history", "--view", view, images[view], "-c", "ls"], {"LC_ALL": "C.UTF-8"})
    assert b"\x1b" not in shown, shown
    assert sorted(shown.splitlines()) == sorted(expected.splitlines())
    shown = on_terminal(["shell", "--no-history", "--view", view, images[view], "-c", b"cat /missing\xff\x1b[2J"],
                        {"LC_ALL": "C.UTF-8"})
    assert b"\x1b" not in shown and b"missing\\377\\033[2J" in shown, shown
    shown = on_terminal(["shell", "--no-history", "--view", view, images[view], "-c", b"cat /e\x1b[1m"], {})
    assert shown == NAMES[b"e\x1b[1m"], shown
