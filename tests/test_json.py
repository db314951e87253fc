"""``--json`` of every command that builds or reads, validated against the schemas in
sysexport/schemas/ (jsonschema), and its values checked against readers nobody here wrote:
labels against isoinfo, pycdlib and blkid, partitions against sgdisk -p and fdisk -b 4096,
archives and listings against bsdtar, extraction against the host's own lstat."""
from __future__ import annotations

import gzip
import json
import os
import re
import stat
import subprocess
import sys

import pytest
from helpers import cut, need, out, run

from sysexport.cli import build_parser, main
from sysexport.schemas import command_schemas, load, load_all

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCH = "1700000000"


def validator(name: str):
    registry = referencing.Registry().with_resources(
        (sid, referencing.Resource.from_contents(s)) for sid, s in load_all().items())
    return jsonschema.Draft202012Validator(load(name), registry=registry)


def run_json(argv: list[str], capsys, status: int = 0) -> dict:
    """Run ``sysexport ARGV --json`` in this process; its stdout parsed, validated against
    the command's schema."""
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == status, captured.err
    doc = json.loads(captured.out)
    validator(argv[0]).validate(doc)
    return doc


def make_tree(top: str) -> dict[str, int]:
    """A small tree: files of several sizes (one empty), a symlink, nested directories;
    returns {relative path: size} of its regular files."""
    files = {"hello.txt": b"hello\n", "empty": b"", "EFI/BOOT/BOOTX64.EFI": b"MZ" + bytes(5000),
             "docs/deep/er/notes.md": b"# notes\n" * 300, "big.bin": os.urandom(300_000)}
    for rel, data in files.items():
        path = os.path.join(top, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    os.symlink("hello.txt", os.path.join(top, "link"))
    return {rel: len(data) for rel, data in files.items()}


@pytest.fixture(autouse=True)
def _epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[str, dict[str, int]]:
    top = str(tmp_path_factory.mktemp("src") / "tree")
    return top, make_tree(top)


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory) -> str:
    """An image ``build`` made of the tree, with an extra Linux partition."""
    work = tmp_path_factory.mktemp("built")
    extra = str(work / "root.part")
    with open(extra, "wb") as f:
        f.write(b"\x5a" * 100_000)
    img = str(work / "a.img")
    assert main(["build", tree[0], "-o", img, "--label", "JSONTEST", "--partition", f"linux:{extra}", "-q"]) == 0
    return img


def test_schemas_are_valid_and_every_json_command_has_one():
    """Every schema is a valid 2020-12 schema; every command whose parser takes --json has a
    schema file, and every schema names a command that takes --json (commands added to
    COMMANDS later are held to it too)."""
    for sid, schema in load_all().items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert sid == schema["$id"]
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    with_json = {name for name, p in commands.items()
                 if any("--json" in a.option_strings for a in p._actions)}
    assert with_json == set(command_schemas()), (sorted(with_json), command_schemas())
    for name in command_schemas():
        assert load(name)["properties"]["command"] == {"const": name}


def test_build_json_matches_isoinfo_pycdlib_blkid_sgdisk_fdisk(tree, tmp_path, capsys):
    need("isoinfo", "sgdisk", "fdisk", "blkid")
    top, files = tree
    extra = tmp_path / "root.part"
    extra.write_bytes(b"\x5a" * 100_000)
    img = str(tmp_path / "a.img")
    doc = run_json(["build", top, "-o", img, "--label", "JSONTEST", "--partition", f"linux:{extra}"], capsys)
    assert doc["command"] == "build" and doc["output"] == img and doc["sources"] == [top]
    assert doc["image_size"] == os.path.getsize(img)
    # Labels as the readers see them.
    info = out(["isoinfo", "-d", "-i", img])
    assert re.search(r"^Volume id: (.*)$", info, re.M).group(1).strip() == doc["iso9660"]["label"] == "JSONTEST"
    assert int(re.search(r"^Volume size is: (\d+)$", info, re.M).group(1)) * 2048 == doc["iso9660"]["volume_size"]
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.open(img)
    try:
        joliet = iso.joliet_vd.volume_identifier.decode("utf-16-be").rstrip()
    finally:
        iso.close()
    assert joliet == doc["iso9660"]["joliet_label"]
    # Partitions: sgdisk (512-byte LBAs, type codes, names) and fdisk with 4096-byte sectors.
    rows = {}
    for line in out(["sgdisk", "-p", img]).splitlines():
        m = re.match(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+([0-9A-F]{4})\s+(.*)$", line)
        if m:
            rows[int(m.group(1))] = (int(m.group(2)), int(m.group(3)), m.group(4), m.group(5).strip())
    assert sorted(rows) == [p["index"] for p in doc["partitions"]] == [1, 2]
    codes = {"C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EF00", "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "8300"}
    for p in doc["partitions"]:
        first, last, code, name = rows[p["index"]]
        assert (first, last) == (p["lba"]["512"]["first"], p["lba"]["512"]["last"])
        assert (first * 512, (last + 1 - first) * 512) == (p["offset"], p["size"])
        assert code == codes[p["type_guid"]] and name == p["name"]
    fdisk4k = out(["fdisk", "-b", "4096", "-l", img])
    for p in doc["partitions"]:
        m = re.search(rf"^{re.escape(img)}{p['index']}\s+(\d+)\s+(\d+)\s", fdisk4k, re.M)
        assert m, fdisk4k
        assert (int(m.group(1)), int(m.group(2))) == (p["lba"]["4096"]["first"], p["lba"]["4096"]["last"])
    assert doc["partitions"][1]["name"] == "root.part"
    # The ESP: its partition, FAT type and label as blkid reads the volume cut out.
    esp = doc["esp"]
    assert esp["partition"] == 1 and (esp["offset"], esp["size"]) == (doc["partitions"][0]["offset"],
                                                                      doc["partitions"][0]["size"])
    blk = dict(line.split("=", 1) for line in out(["blkid", "-p", "-o", "export",
                                                   cut(img, esp["offset"], esp["size"], tmp_path / "esp")]).split())
    assert blk["TYPE"] == "vfat" and blk["VERSION"] == f"FAT{esp['fat_type']}" and blk["LABEL"] == esp["label"]
    # Files: counted from the host tree, not from our reader.
    nonempty = [rel for rel, size in files.items() if size]
    assert doc["files"] == {"count": len(files) + 1, "stored_once": len(nonempty),
                            "stored_once_bytes": sum(files.values()), "data_bytes": sum(files.values())}
    assert doc["iso9660"]["metadata_end"] <= esp["offset"]


def test_build_json_guids_are_the_ones_sgdisk_reads(tree, tmp_path, capsys, monkeypatch):
    """The disk GUID and each partition's unique GUID, as sgdisk -p and sgdisk -i N read them
    from the image written; without SOURCE_DATE_EPOCH they are random, so two builds differ."""
    need("sgdisk")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    extra = tmp_path / "root.part"
    extra.write_bytes(b"\x5a" * 100_000)
    seen = []
    for n in range(2):
        img = str(tmp_path / f"g{n}.img")
        doc = run_json(["build", tree[0], "-o", img, "--partition", f"linux:{extra}"], capsys)
        disk = re.search(r"^Disk identifier \(GUID\): (\S+)$", out(["sgdisk", "-p", img]), re.M).group(1)
        assert doc["disk_guid"] == disk
        assert [p["index"] for p in doc["partitions"]] == [1, 2]
        for p in doc["partitions"]:
            info = out(["sgdisk", "-i", str(p["index"]), img])
            assert re.search(r"^Partition unique GUID: (\S+)$", info, re.M).group(1) == p["unique_guid"]
            assert re.search(r"^Partition GUID code: (\S+)", info, re.M).group(1) == p["type_guid"]
        guids = [doc["disk_guid"], *(p["unique_guid"] for p in doc["partitions"])]
        assert len(set(guids)) == len(guids)
        seen.append(guids)
    assert not set(seen[0]) & set(seen[1])


def test_build_json_says_what_each_file_system_got(tree, tmp_path, capsys):
    """With --iso-only, the ISO holds what the ESP does not: the JSON's per-file-system
    counts against bsdtar (the ISO) and mtools (the ESP cut out)."""
    need("bsdtar", "mdir")
    img = str(tmp_path / "a.img")
    doc = run_json(["build", tree[0], "-o", img, "--iso-only", "*.bin"], capsys)
    listing = out(["bsdtar", "-tvf", img]).splitlines()
    iso = {"files": sum(line[0] == "-" for line in listing), "symlinks": sum(line[0] == "l" for line in listing),
           "directories": sum(line[0] == "d" for line in listing) - 1}          # bsdtar lists the root "."
    assert {k: doc["iso9660"]["entries"][k] for k in iso} == iso
    esp = cut(img, doc["esp"]["offset"], doc["esp"]["size"], tmp_path / "esp")
    fat = [line for line in out(["mdir", "-/", "-b", "-i", esp, "::"], env_extra={"MTOOLS_SKIP_CHECK": "1"}).splitlines()
           if line.strip()]
    dirs = [line for line in fat if line.endswith("/")]
    assert doc["esp"]["entries"]["directories"] == len(dirs)
    assert doc["esp"]["entries"]["files"] == len(fat) - len(dirs) == iso["files"] - 1      # big.bin: ISO only
    assert doc["iso9660"]["entries"]["data_bytes"] - doc["esp"]["entries"]["data_bytes"] == tree[1]["big.bin"]


def test_build_json_goes_to_stderr_when_the_image_is_on_stdout(tree, tmp_path):
    p = subprocess.run([sys.executable, "-m", "sysexport", "build", tree[0], "-o", "-", "--json"],
                       capture_output=True, env=dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH=EPOCH))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stderr)
    validator("build").validate(doc)
    assert doc["image_size"] == len(p.stdout) and p.stdout[0x8001:0x8006] == b"CD001"


def test_live_json(tmp_path, capsys):
    """live with a small stand-in kernel: the JSON's boot member names what GRUB boots, and
    its BIOS boot partition is the one sgdisk shows with type EF02."""
    need("grub-mkimage", "/usr/lib/grub/i386-pc/boot.img", "/usr/lib/grub/x86_64-efi", "sgdisk", "bsdtar", "mdir")
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd"
    kernel.write_bytes(b"\x90" * 4096)
    initrd.write_bytes(b"07070" + bytes(1000))
    img = str(tmp_path / "live.img")
    doc = run_json(["live", "--kernel", str(kernel), "--initrd", str(initrd), "--cmdline", "console=ttyS0",
                    "--label", "LIVEJSON", "-o", img], capsys)
    boot = doc["boot"]
    assert boot["firmware"] == ["bios", "uefi"] and boot["arch"] == "amd64" and boot["cmdline"] == "console=ttyS0"
    assert doc["iso9660"]["label"] == "LIVEJSON" and doc["image_size"] == os.path.getsize(img)
    rows = [line.split() for line in out(["sgdisk", "-p", img]).splitlines() if re.match(r"^\s*\d+\s+\d+", line)]
    ef02 = [int(r[0]) for r in rows if "EF02" in r]
    assert ef02 == [boot["bios_boot_partition"]]
    iso = {line.rstrip("/") for line in out(["bsdtar", "-tf", img]).splitlines()}
    esp = cut(img, doc["esp"]["offset"], doc["esp"]["size"], tmp_path / "esp")
    fat = {line.split("::/", 1)[1] for line in out(["mdir", "-/", "-b", "-i", esp, "::"],
                                                   env_extra={"MTOOLS_SKIP_CHECK": "1"}).splitlines() if "::/" in line}
    assert boot["marker"].lstrip("/") in iso and "boot/grub/grub.cfg" in boot["files"]
    assert {f.lstrip("/") for f in boot["files"]} <= iso | fat and boot["files"]
    assert len(rows) == len(doc["partitions"])


@pytest.mark.parametrize("compress", [None, "gzip"])
def test_initramfs_json_matches_bsdtar(tree, tmp_path, capsys, compress):
    need("bsdtar")
    top, files = tree
    archive = str(tmp_path / ("a.cpio.gz" if compress else "a.cpio"))
    doc = run_json(["initramfs", top, "-o", archive] + (["--compress", compress] if compress else []), capsys)
    listing = out(["bsdtar", "-tvf", archive]).splitlines()
    assert doc["entries"] == len(listing)
    kinds = {"-": "file", "d": "dir", "l": "symlink"}
    seen: dict[str, int] = {}
    for line in listing:
        seen[kinds[line[0]]] = seen.get(kinds[line[0]], 0) + 1
    assert doc["types"] == seen and doc["data_bytes"] == sum(files.values())
    assert doc["size"] == os.path.getsize(archive) and doc["compress"] == compress
    raw = open(archive, "rb").read()
    assert doc["uncompressed_size"] == len(gzip.decompress(raw) if compress else raw)


def test_export_json(tmp_path, capsys):
    need("bsdtar")
    archive = str(tmp_path / "x.cpio")
    doc = run_json(["export", "--add", "/usr/bin/true", "-o", archive], capsys)
    listing = out(["bsdtar", "-tvf", archive]).splitlines()
    assert doc["format"] == "cpio" and doc["image"] is None and doc["source"] == "/"
    assert doc["entries"] == len([line for line in listing if not line.endswith(" .")])
    img = str(tmp_path / "x.img")
    doc = run_json(["export", "--add", "/usr/bin/true", "-o", img, "--label", "EXPORTED"], capsys)
    assert doc["format"] == "img" and doc["image"]["iso9660"]["label"] == "EXPORTED"
    assert doc["image"]["image_size"] == os.path.getsize(img)


def test_inspect_json_partitions_as_sgdisk_sees_them(built, capsys):
    need("sgdisk")
    img = built
    doc = run_json(["inspect", img], capsys)
    assert doc["image"] == img and doc["size"] == os.path.getsize(img) and not doc["problems"]
    parts = sorted((s["offset"], s["size"]) for s in doc["structures"] if s["kind"] == "partition")
    rows = [line.split() for line in out(["sgdisk", "-p", img]).splitlines() if re.match(r"^\s*\d+\s+\d+", line)]
    assert parts == [(int(r[1]) * 512, (int(r[2]) + 1 - int(r[1])) * 512) for r in rows]


def test_ls_json_lists_what_bsdtar_lists(built, tree, capsys):
    need("bsdtar")
    img = built
    doc = run_json(["ls", img, "-R"], capsys)
    assert doc["view"] == "rr" and doc["path"] == "/"
    ours = {e["path"].lstrip("/"): e for e in doc["entries"] if e["path"] != "/"}
    theirs = {line.rstrip("/") for line in out(["bsdtar", "-tf", img]).splitlines()} - {"."}
    assert set(ours) == theirs
    for rel, size in tree[1].items():
        assert ours[rel]["type"] == "file" and ours[rel]["size"] == size
    assert ours["link"]["type"] == "symlink" and ours["link"]["target"] == "hello.txt"
    one = run_json(["ls", img, "/docs", "--view", "fat"], capsys)
    assert one["view"].startswith("fat") and [e["path"] for e in one["entries"]] == ["/docs/deep"]


def test_extract_json_against_the_host(built, tree, tmp_path, capsys):
    img = built
    dest = str(tmp_path / "out")
    doc = run_json(["extract", img, dest], capsys)
    made = {"file": 0, "dir": 0, "symlink": 0}
    data = 0
    for dirpath, dirnames, filenames in os.walk(dest):
        for n in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, n))
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
            made[kind] += 1
            data += st.st_size if kind == "file" else 0
    made["dir"] += 1                                    # dest itself: the image's root
    assert doc["types"] == made and doc["entries"] == sum(made.values())
    assert doc["data_bytes"] == data == sum(tree[1].values()) and doc["skipped"] == [] and doc["paths"] == ["/"]
    part = run_json(["extract", img, str(tmp_path / "part"), "/docs"], capsys)
    assert part["paths"] == ["/docs"] and part["types"] == {"dir": 3, "file": 1}


def test_verify_json_ok_and_failing(built, tree, tmp_path, capsys):
    img = built
    doc = run_json(["verify", img], capsys)
    assert doc["ok"] is True and all(c["ok"] for c in doc["checks"])
    data = [c for c in doc["checks"] if c["check"] == "file data"][0]
    sizes = [size for size in tree[1].values() if size]   # each read once, though both views hold it
    assert data["detail"] == f"{len(sizes)} files, {sum(sizes):,} bytes read"
    # A file's bytes moved past the image's end: the check fails, the JSON says so, exit 1.
    bad = tmp_path / "bad.img"
    raw = bytearray(open(img, "rb").read())
    del raw[len(raw) - 300_000:]
    bad.write_bytes(raw)
    doc = run_json(["verify", str(bad)], capsys, status=1)
    assert doc["ok"] is False and any(not c["ok"] for c in doc["checks"])


def test_cat_has_no_json(built, capsys):
    with pytest.raises(SystemExit) as e:
        main(["cat", built, "/hello.txt", "--json"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("sysexport: error: unrecognized arguments: --json")


def test_remaster_json_matches_isoinfo(built, tree, tmp_path, capsys):
    need("isoinfo", "bsdtar")
    out_img = str(tmp_path / "re.img")
    doc = run_json(["remaster", built, "-o", out_img, "--label", "REMASTERED", "--remove", "/big.bin"], capsys)
    info = out(["isoinfo", "-d", "-i", out_img])
    assert re.search(r"^Volume id: (.*)$", info, re.M).group(1).strip() == doc["label"] == "REMASTERED"
    listing = [line.rstrip("/") for line in out(["bsdtar", "-tvf", out_img]).splitlines()]
    files = [line for line in listing if line.startswith("-")]
    assert doc["format"] == "hybrid" and doc["removed"] == ["/big.bin"]
    assert doc["entries"]["files"] == len(files) == len(tree[1]) - 1
