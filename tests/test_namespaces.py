"""Names per namespace, hard links and consistency on demand (issue 13), read back by readers
nobody here wrote: isoinfo (plain, -J, -R), bsdtar, xorriso, pycdlib (iso_path,
joliet_path, rr_path and record extents), dumpet, mtools and fsck.fat, and (slow) the
Linux kernel's isofs and vfat."""
from __future__ import annotations

import os
import re
import struct

import pytest

from helpers import need, out, run
from helpers.namespaces import (bsdtar_paths, bsdtar_read, esp_of, fsck_fat, isoinfo_paths, mtools_paths,
                                mtools_read, pycdlib_files, pycdlib_record, xorriso_paths)
from sysexport.errors import CallOrderError, InvalidInputError
from sysexport.hybrid import ISO9660Hybrid
from sysexport.iso9660.writer import ISO9660
from sysexport.vfat.writer import VFAT

BOOT_IMAGE = b"\xfa\xeb\xfe" + b"\x90" * 2045       # cli; jmp $ (a no-emulation image of one sector)


@pytest.fixture(autouse=True)
def _sde(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


def f(name: str, data: bytes, **keys) -> dict:
    return {"name": name, "mode": 0o100644, "data": data, **keys}


def namespaced_iso(path: str, **attrs) -> ISO9660:
    iso = ISO9660(path, **attrs)
    iso.add(f("both.txt", b"both\n"))
    iso.add(f("rr-only.txt", b"rock ridge and iso9660\n", hidden_from=("joliet",)))
    iso.add(f("joliet-only.txt", b"joliet\n", hidden_from=["iso9660"]))
    iso.add(f("named.txt", b"renamed in joliet\n", joliet_name="Windows Name.TXT"))
    iso.add({"name": "private", "mode": 0o40700, "hidden_from": ("joliet",)})
    iso.add(f("private/secret.txt", b"secret\n"))
    iso.add(f("boot/other.txt", b"other\n"))
    iso.add(f("boot/eltorito.img", BOOT_IMAGE, hidden_from=("iso9660", "joliet")))
    iso.add_boot_catalog_entry(path="boot/eltorito.img", load_size=4)
    return iso


def test_each_iso_reader_sees_each_namespace_exactly(tmp_path):
    image = str(tmp_path / "ns.iso")
    namespaced_iso(image).finish()
    rr = {"both.txt", "rr-only.txt", "named.txt", "private", "private/secret.txt", "boot", "boot/other.txt",
          "boot.catalog"}
    joliet = {"both.txt", "joliet-only.txt", "Windows Name.TXT", "boot", "boot/other.txt", "boot.catalog"}
    plain = {"BOTH.TXT", "RR_ONLY.TXT", "NAMED.TXT", "PRIVATE", "PRIVATE/SECRET.TXT", "BOOT", "BOOT/OTHER.TXT",
             "BOOT.CATALOG"}
    assert isoinfo_paths(image, "rock_ridge") == rr
    assert isoinfo_paths(image, "joliet") == joliet
    assert isoinfo_paths(image, "iso9660") == plain
    assert bsdtar_paths(image) == rr
    assert xorriso_paths(image) == rr
    by_joliet = pycdlib_files(image, "joliet_path")
    assert {k.rstrip("/") for k in by_joliet} == joliet
    assert by_joliet["Windows Name.TXT"] == b"renamed in joliet\n" and by_joliet["joliet-only.txt"] == b"joliet\n"
    by_rr = pycdlib_files(image, "rr_path")
    assert {k.rstrip("/") for k in by_rr} == rr and by_rr["private/secret.txt"] == b"secret\n"
    by_iso = pycdlib_files(image, "iso_path")
    assert {re.sub(r"\.?;1$", "", k.rstrip("/")) for k in by_iso} == plain
    assert bsdtar_read(image, "rr-only.txt") == b"rock ridge and iso9660\n"


def test_a_boot_image_reachable_from_el_torito_only(tmp_path):
    """Hidden from every tree, named by the catalog: its bytes are there, no record names them."""
    need("dumpet", "xorriso")
    image = str(tmp_path / "et.iso")
    namespaced_iso(image).finish()
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    lba = int(re.search(r"El Torito boot img :\s+1\s+BIOS\s+y\s+none\s+0x0000\s+0x00\s+4\s+(\d+)", report).group(1))
    dump = out(["dumpet", "-i", image])
    assert int(re.search(r"Load LBA: (\d+)", dump).group(1)) == lba
    with open(image, "rb") as fh:
        fh.seek(lba * 2048)
        assert fh.read(len(BOOT_IMAGE)) == BOOT_IMAGE
    for flag in (["-R"], ["-J"], []):
        listing = out(["isoinfo", "-l", *flag, "-i", image])
        assert not re.search(rf"\[\s*{lba} ", listing), listing       # no record points at it
        assert "eltorito" not in listing.lower()


def test_removing_the_last_name_drops_the_bytes_unless_el_torito_names_them(tmp_path):
    """remove_link() of the last name takes the bytes out; an entry added hidden from every
    tree keeps them (as xorriso's -hide and -hide-joliet do), and so does one El Torito names."""
    sizes = []
    for case in ("without", "hidden", "removed", "boot"):
        iso = ISO9660(str(tmp_path / f"{case}.iso"))
        iso.add(f("small.txt", b"s"))
        if case != "without":
            iso.add(f("big.bin", b"B" * 1_000_000, hidden_from=("iso9660", "joliet") if case == "hidden" else ()))
        if case == "removed":
            iso.add_link("big.bin", "alias.bin")
            iso.remove_link("big.bin")
            iso.remove_link("alias.bin", namespace="joliet")
            iso.remove_link("alias.bin", namespace="iso9660")
        if case == "boot":
            iso.add_boot_catalog_entry(path="big.bin")
            iso.remove_link("big.bin")
        iso.finish()
        sizes.append(os.path.getsize(tmp_path / f"{case}.iso"))
        assert isoinfo_paths(str(tmp_path / f"{case}.iso"), "rock_ridge") - {"boot.catalog"} == {"small.txt"}
    without, hidden, removed, boot = sizes
    assert removed == without and hidden >= without + 1_000_000 and boot >= without + 1_000_000


def test_links_share_one_extent_and_rock_ridge_counts_them(tmp_path):
    image = str(tmp_path / "links.iso")
    iso = ISO9660(image, rock_ridge="1.12")
    iso.add(f("data/big.bin", b"B" * 100_000))
    iso.add(f("other.bin", b"O" * 100_000))
    iso.add_link("data/big.bin", "alias.bin")                       # every namespace
    iso.add_link("data/big.bin", "J Only.bin", namespace="joliet")
    iso.add_link("data/big.bin", "rr-link.bin", namespace="iso9660")
    iso.finish()
    assert os.path.getsize(image) < 2 * 100_000 + 400_000            # one copy of big.bin's bytes
    ref = pycdlib_record(image, rr_path="/data/big.bin")
    assert ref[1] == 100_000 and ref[2] == 3                          # three names in the ISO 9660 tree
    for path in ("/alias.bin", "/rr-link.bin"):
        assert pycdlib_record(image, rr_path=path) == ref
    for path in ("/data/big.bin", "/alias.bin", "/J Only.bin"):
        assert pycdlib_record(image, joliet_path=path)[:2] == ref[:2]
    assert pycdlib_record(image, rr_path="/other.bin")[0] != ref[0]
    import pycdlib
    p = pycdlib.PyCdlib()
    p.open(image)
    try:
        serials = {p.get_record(rr_path=x).rock_ridge.dr_entries.px_record.posix_serial_number
                   for x in ("/data/big.bin", "/alias.bin", "/rr-link.bin")}
        assert len(serials) == 1                                      # RRIP 1.12 PX: one file serial number
    finally:
        p.close()
    listing = out(["bsdtar", "-tvf", image])
    assert re.search(r"alias\.bin link to", listing) or re.search(r"big\.bin link to", listing), listing
    assert isoinfo_paths(image, "joliet") == {"data", "data/big.bin", "other.bin", "alias.bin", "J Only.bin"}
    assert isoinfo_paths(image, "rock_ridge") == {"data", "data/big.bin", "other.bin", "alias.bin", "rr-link.bin"}


def test_remove_link_from_one_namespace(tmp_path):
    image = str(tmp_path / "rm.iso")
    iso = ISO9660(image)
    iso.add(f("a.bin", b"A" * 5000))
    iso.add_link("a.bin", "b.bin")
    iso.add_link("a.bin", "c.bin")
    iso.remove_link("b.bin", namespace="joliet")
    iso.remove_link("c.bin", namespace="iso9660")
    iso.remove_link("a.bin")
    iso.add_link("c.bin", "c.bin", namespace="iso9660")           # shown there again
    iso.finish()
    assert isoinfo_paths(image, "rock_ridge") == {"b.bin", "c.bin"}
    assert isoinfo_paths(image, "joliet") == {"c.bin"}
    assert pycdlib_record(image, rr_path="/b.bin") == pycdlib_record(image, rr_path="/c.bin")
    assert pycdlib_record(image, rr_path="/b.bin")[2] == 2


def lookup_checked(image: str, loc) -> None:
    """Every record lookup() names, read from the image's bytes: its length, identifier,
    extent and size are what the record there says."""
    with open(image, "rb") as fh:
        for r in loc.records:
            fh.seek(r.record_offset)
            raw = fh.read(r.record_bytes)
            if r.namespace == "fat":
                short = raw[-32:]
                first = struct.unpack_from("<H", short, 20)[0] << 16 | struct.unpack_from("<H", short, 26)[0]
                size = struct.unpack_from("<I", short, 28)[0]
                assert size == (r.extent.size_bytes if r.extent else 0)
                assert all(raw[i * 32 + 11] == 0x0F for i in range(len(raw) // 32 - 1))   # LFN entries
                assert bool(first) == (r.extent is not None and r.extent.size_bytes > 0)
                continue
            assert raw[0] == r.record_bytes
            lba, length = struct.unpack_from("<I", raw, 2)[0], struct.unpack_from("<I", raw, 10)[0]
            ident = raw[33:33 + raw[32]].decode("utf-16-be" if r.namespace == "joliet" else "ascii")
            assert ident == r.identifier
            if r.extent is None:
                assert length == 0
            else:
                assert (lba * 2048, length) == (r.extent.device_offset, r.extent.size_bytes)


def test_lookup_gives_every_record_of_every_namespace(tmp_path):
    image = str(tmp_path / "look.iso")
    iso = ISO9660(image)
    for i in range(70):                                 # several sectors of records
        iso.add(f(f"dir/a file with a long name {i:03d}.txt", b"x" * i))
    iso.add_link("dir/a file with a long name 010.txt", "alias.txt")
    iso.add_link("dir/a file with a long name 010.txt", "jonly.txt", namespace="joliet")
    iso.add(f("rr.txt", b"rr", hidden_from=("joliet",)))
    with pytest.raises(CallOrderError):
        iso.lookup("alias.txt")
    iso.finish()
    target = iso.lookup("dir/a file with a long name 010.txt")
    assert {r.namespace for r in target.records} == {"iso9660", "joliet"}
    for name in ("dir/a file with a long name 010.txt", "alias.txt", "jonly.txt", "dir/a file with a long name "
                 "069.txt", "dir/a file with a long name 000.txt", "dir", "rr.txt"):
        loc = iso.lookup(name)
        lookup_checked(image, loc)
        for r in loc.records:
            kind = "rr_path" if r.namespace == "iso9660" else "joliet_path"
            shown = "/" + name if r.namespace == "iso9660" or name != "jonly.txt" else "/jonly.txt"
            if loc.device_offset is not None and not name == "dir":
                assert pycdlib_record(image, **{kind: shown})[0] * 2048 == loc.device_offset
    assert [r.namespace for r in iso.lookup("jonly.txt").records] == ["joliet"]
    assert [r.namespace for r in iso.lookup("rr.txt").records] == ["iso9660"]
    assert iso.lookup("alias.txt", namespace="joliet").records[0].identifier == "alias.txt"
    with pytest.raises(InvalidInputError, match="unknown namespace 'rock_ridge'"):
        iso.lookup("alias.txt", namespace="rock_ridge")
    with pytest.raises(CallOrderError):
        iso.add_link("alias.txt", "late.txt")


def test_hybrid_names_per_namespace(tmp_path):
    image = str(tmp_path / "h.img")
    h = ISO9660Hybrid(image)
    h.add(f("shared.txt", b"S" * 3000))
    h.add(f("iso-only.txt", b"I" * 100, hidden_from=("fat",)))
    h.add(f("esp-only.txt", b"E" * 100, hidden_from=("iso9660", "joliet")))
    h.add(f("named.txt", b"N", joliet_name="Joliet Name.txt"))
    h.add(f("boot/eltorito.img", BOOT_IMAGE, hidden_from=("iso9660", "joliet", "fat")))
    h.iso.add_boot_catalog_entry(path="boot/eltorito.img", load_size=4)
    h.add_link("shared.txt", "alias.txt")
    h.add(f("moved-to-iso.txt", b"M" * 7000))
    h.remove_link("moved-to-iso.txt", namespace="fat")
    h.finish()
    shared = h.lookup("shared.txt")
    alias = h.lookup("alias.txt")
    assert {r.namespace for r in shared.records} == {"iso9660", "joliet", "fat"}
    assert {r.namespace for r in alias.records} == {"iso9660", "joliet"}
    assert len({r.extent.device_offset for r in shared.records + alias.records}) == 1
    esp = esp_of(image, str(tmp_path))
    fsck_fat(esp)
    assert mtools_paths(esp) == {"shared.txt", "esp-only.txt", "named.txt"}
    assert mtools_read(esp, "esp-only.txt") == b"E" * 100
    assert isoinfo_paths(image, "rock_ridge") == {"shared.txt", "iso-only.txt", "named.txt", "boot", "alias.txt",
                                                  "moved-to-iso.txt", "boot.catalog"}
    assert isoinfo_paths(image, "joliet") == {"shared.txt", "iso-only.txt", "Joliet Name.txt", "boot", "alias.txt",
                                              "moved-to-iso.txt", "boot.catalog"}
    assert bsdtar_read(image, "moved-to-iso.txt") == b"M" * 7000
    ref = pycdlib_record(image, rr_path="/shared.txt")
    assert pycdlib_record(image, rr_path="/alias.txt") == ref and ref[2] == 2
    assert ref[0] * 2048 == shared.device_offset
    esp_start = h.summary.esp_offset
    for name in ("shared.txt", "alias.txt", "named.txt", "esp-only.txt"):
        loc = h.lookup(name)
        lookup_checked(image, loc)
        fat = [r for r in loc.records if r.namespace == "fat"]
        if fat:
            first = out(["mshowfat", "-i", f"{esp}", f"::/{name}"], env_extra={"MTOOLS_SKIP_CHECK": "1"})
            cluster = int(re.search(r"<(\d+)", first).group(1))
            with open(esp, "rb") as fh:
                fh.seek(fat[0].extent.device_offset - esp_start)
                assert fh.read(fat[0].extent.size_bytes) == mtools_read(esp, name)
            raw = open(image, "rb").read()[fat[0].record_offset:fat[0].record_offset + fat[0].record_bytes]
            assert (struct.unpack_from("<H", raw, len(raw) - 6)[0]) == cluster & 0xFFFF
    report = out(["xorriso", "-indev", image, "-report_el_torito", "plain"])
    assert re.search(r"El Torito boot img :\s+1\s+BIOS", report)


def test_vfat_hides_what_is_hidden_from_fat(tmp_path):
    image = str(tmp_path / "v.img")
    v = VFAT(image)
    v.add(f("seen.txt", b"seen"))
    assert v.add(f("unseen.txt", b"unseen", hidden_from=("fat",))) is None
    v.add({"name": "dir", "mode": 0o40755, "hidden_from": ("fat", "joliet")})
    v.add(f("dir/below.txt", b"below"))                 # under a hidden directory: hidden too
    v.add(f("joliet-hidden.txt", b"j", hidden_from=("joliet",)))    # other namespaces: not FAT's
    v.finish()
    fsck_fat(image)
    assert mtools_paths(image) == {"seen.txt", "joliet-hidden.txt"}


def test_bad_names_and_links_are_clear_errors(tmp_path):
    iso = ISO9660(str(tmp_path / "e.iso"))
    iso.add(f("a.txt", b"a"))
    iso.add({"name": "d", "mode": 0o40755})
    cases = [
        (lambda: iso.add_link("d", "d2"), ("d is a directory", "hard links of directories")),
        (lambda: iso.add_link("a.txt", "x", namespace="fat"), ("FAT cannot hold two names", "cross-linked")),
        (lambda: iso.add_link("a.txt", "x", namespace="rr"), ("unknown namespace 'rr'",)),
        (lambda: iso.add_link("missing", "x"), ("missing is not in the image",)),
        (lambda: iso.add_link("a.txt", "d"), ("d already exists", "another entry")),
        (lambda: iso.add_link("a.txt", "a.txt"), ("already names a.txt's bytes",)),
        (lambda: iso.remove_link("d"), ("d is a directory",)),
        (lambda: iso.remove_link("a.txt", namespace="fat"), ("FAT cannot hold",)),
        (lambda: iso.add(f("b.txt", b"b", hidden_from="joliet")), ("hidden_from must be a tuple",)),
        (lambda: iso.add(f("b.txt", b"b", hidden_from=("windows",))), ("unknown namespace 'windows'",)),
        (lambda: iso.add(f("b.txt", b"b", joliet_name="a:b")), ("joliet_name 'a:b'", "':'")),
        (lambda: iso.add(f("b.txt", b"b", joliet_name="x" * 104)), ("104 characters", "holds 103")),
    ]
    for call, fragments in cases:
        with pytest.raises(InvalidInputError) as e:
            call()
        for frag in fragments:
            assert frag in str(e.value), str(e.value)
    iso.remove_link("a.txt", namespace="joliet")
    with pytest.raises(InvalidInputError, match="a.txt has no name in joliet"):
        iso.remove_link("a.txt", namespace="joliet")
    h = ISO9660Hybrid(str(tmp_path / "h.img"))
    h.add(f("esp.txt", b"e", hybrid_target="esp"))
    with pytest.raises(InvalidInputError, match="ESP only.*cannot cross file systems"):
        h.add_link("esp.txt", "iso.txt")
    with pytest.raises(InvalidInputError, match="hidden_from names 'fat' but hybrid_target is 'esp'"):
        h.add(f("x.txt", b"x", hidden_from=("fat",), hybrid_target="esp"))


def test_two_equal_joliet_names_collide(tmp_path):
    iso = ISO9660(str(tmp_path / "c.iso"))
    iso.add(f("one.txt", b"1", joliet_name="Same.txt"))
    iso.add(f("two.txt", b"2"))
    iso.rename("two.txt", "three.txt")
    iso.add(f("Same.txt", b"3"))            # a derived name makes way for the one given
    iso.add(f("four.txt", b"4", joliet_name="Same.txt"))
    with pytest.raises(InvalidInputError, match="one.txt: joliet_name 'Same.txt' is also the Joliet name of four.txt"):
        iso.plan()
    iso2 = ISO9660(str(tmp_path / "ok.iso"))
    iso2.add(f("one.txt", b"1", joliet_name="Same.txt"))
    iso2.add(f("Same.txt", b"3"))
    iso2.finish()
    assert isoinfo_paths(str(tmp_path / "ok.iso"), "joliet") == {"Same.txt", "Same~1.txt"}
    assert pycdlib_files(str(tmp_path / "ok.iso"), "joliet_path")["Same.txt"] == b"1"


@pytest.mark.slow
def test_linux_sees_each_namespace(tmp_path):
    """The kernel's isofs (Rock Ridge, Joliet, plain names) and vfat on the ESP."""
    from helpers.linuxvm import linux_views, need_linux
    need_linux()
    image = str(tmp_path / "linux.img")
    h = ISO9660Hybrid(image)
    h.add(f("shared.txt", b"S" * 3000))
    h.add(f("iso-only.txt", b"I", hidden_from=("fat",)))
    h.add(f("rr-only.txt", b"R", hidden_from=("joliet", "fat")))
    h.add(f("esp-only.txt", b"E", hidden_from=("iso9660", "joliet")))
    h.add(f("named.txt", b"N", joliet_name="Joliet Name.txt"))
    h.add_link("shared.txt", "alias.txt", namespace="joliet")
    h.finish()
    views = linux_views(tmp_path, image, vfat_partitions=[1])
    assert set(views["rr"]) == {"shared.txt", "iso-only.txt", "rr-only.txt", "named.txt"}
    assert set(views["joliet"]) == {"shared.txt", "iso-only.txt", "Joliet Name.txt", "alias.txt"}
    assert set(views["plain"]) == {"shared.txt", "iso_only.txt", "rr_only.txt", "named.txt"}   # Linux: lower case
    assert set(views["vfat1"]) == {"shared.txt", "esp-only.txt", "named.txt"}
    assert views["joliet"]["alias.txt"]["sha256"] == views["rr"]["shared.txt"]["sha256"]


def serial_boot_sector(message: bytes) -> bytes:
    """A no-emulation El Torito image (one sector, any load address): it writes ``message``
    to COM1 (port 0x3f8) and halts.  Hand-assembled 16-bit code:
    cli; push cs; pop ds; call next; next: pop si; add si, msg-next; mov dx, 0x3f8;
    loop: lodsb; test al, al; jz done; out dx, al; jmp loop; done: hlt; jmp done; msg: ..."""
    code = bytes.fromhex("fa 0e 1f e8 00 00 5e 83 c6 12 ba f8 03 ac 84 c0 74 03 ee eb f8 f4 eb fd")
    assert len(code) == 0x18
    return (code + message + b"\0").ljust(2048, b"\0")


@pytest.mark.slow
def test_an_el_torito_only_image_boots(tmp_path):
    """SeaBIOS boots a catalog entry whose image no directory names, in a plain ISO and in
    the hybrid (hidden from iso9660, joliet and fat)."""
    from helpers.qemuboot import boot_firmware
    for kind in ("iso", "hybrid"):
        image = str(tmp_path / f"{kind}.img")
        marker = f"ELTORITO-ONLY-{kind.upper()}-OK".encode()
        w = ISO9660(image) if kind == "iso" else ISO9660Hybrid(image)
        hidden = ("iso9660", "joliet") if kind == "iso" else ("iso9660", "joliet", "fat")
        w.add(f("visible.txt", b"v\n"))
        w.add(f("boot/serial.img", serial_boot_sector(marker), hidden_from=hidden))
        (w if kind == "iso" else w.iso).add_boot_catalog_entry(path="boot/serial.img", load_size=4)
        w.finish()
        assert isoinfo_paths(image, "rock_ridge") == {"visible.txt", "boot", "boot.catalog"}
        assert isoinfo_paths(image, "joliet") == {"visible.txt", "boot", "boot.catalog"}
        log = boot_firmware("bios-cd", image, str(tmp_path), expect=marker.decode(), deadline_s=60)
        assert marker.decode() in log


def test_a_joliet_long_name_is_kept_as_given(tmp_path):
    """103 UCS-2 characters (xorriso's -joliet-long): isoinfo, 7-Zip and pycdlib read it."""
    need("7zz")
    image = str(tmp_path / "long.iso")
    name = "Ünïcode " + "n" * 91 + ".txt"
    assert len(name) == 103
    iso = ISO9660(image)
    iso.add(f("d/short.txt", b"long\n", joliet_name=name))
    iso.finish()
    assert isoinfo_paths(image, "joliet") == {"d", f"d/{name}"}
    assert pycdlib_files(image, "joliet_path")[f"d/{name}"] == b"long\n"
    listing = out(["7zz", "l", "-tiso", image])
    assert f"d/{name}" in listing, listing


def test_hybrid_hard_link_groups_stay_coherent(tmp_path):
    """Host hard links (a, b) shared with the ESP, an ISO link c, b taken out of the FAT,
    a moved: every ISO record names the one extent the ESP's a has; fsck.fat is content."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"linked " * 1000)
    os.link(src / "a", src / "b")
    image = str(tmp_path / "hl.img")
    h = ISO9660Hybrid(image)
    h.add_tree(str(src))
    h.add_link("a", "c")
    h.remove_link("b", namespace="fat")
    h.add(("dir755", "d"))
    h.rename("a", "d/a")
    h.finish()
    esp = esp_of(image, str(tmp_path))
    fsck_fat(esp)
    assert mtools_paths(esp) == {"d", "d/a"}
    assert isoinfo_paths(image, "rock_ridge") == {"d", "d/a", "b", "c"}
    ref = pycdlib_record(image, rr_path="/d/a")
    assert ref[2] == 3 and all(pycdlib_record(image, rr_path=p) == ref for p in ("/b", "/c"))
    fat = h.lookup("d/a", namespace="fat").records[0]
    assert fat.extent is not None and fat.extent.device_offset == ref[0] * 2048
    assert mtools_read(esp, "d/a") == pycdlib_files(image, "rr_path")["c"] == b"linked " * 1000
