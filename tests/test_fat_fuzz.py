"""A seeded mutation fuzz of the read side over images the reference tools made.

The corpus: FAT12, FAT16 and a small FAT32 (mkfs.fat + mcopy), an sgdisk GPT disk with a
FAT volume in its first partition, an sfdisk MBR disk with a FAT volume in a logical
partition.  Each case applies one to four mutations aimed at one structure (the BPB, FAT
entries, directory entries, long-name slots, GPT headers with and without their CRC fixed,
GPT entry arrays, MBR and EBR records, or any byte of the metadata), then reads everything:
read_partition_tables, GPT.parse, MBR.parse, every FAT volume found (FATView: walk, read
every file, check; VFATReader: walk and read).  Only InvalidImageError may come out, each
case within CASE_SECONDS, and memory stays bounded (tracemalloc on a sample of the cases,
the process's peak RSS overall).  ``SYSEXPORT_FUZZ_CASES`` and ``SYSEXPORT_FUZZ_SEED``
change the count and the seed; the slow tier runs many more cases.
"""
from __future__ import annotations

import io
import os
import random
import resource
import signal
import struct
import time
import tracemalloc
import zlib
from dataclasses import dataclass

import pytest

from helpers import need, run
from helpers.fatimages import MTOOLS_ENV, shrink_fat32
from helpers.fatimages import FATImage
from sysexport.errors import InvalidImageError
from sysexport.partition.gpt import GPT
from sysexport.partition.mbr import MBR
from sysexport.partition.probe import read_partition_tables
from sysexport.vfat.reader import VFATReader
from sysexport.vfat.view import FATView

CASES = int(os.environ.get("SYSEXPORT_FUZZ_CASES", "300"))
SLOW_CASES = int(os.environ.get("SYSEXPORT_FUZZ_SLOW_CASES", "4000"))
SEED = int(os.environ.get("SYSEXPORT_FUZZ_SEED", "20240501"))
CASE_SECONDS = 2.0
CASE_MEMORY = 64 << 20          # tracemalloc peak per case (images are at most 6 MiB)
RSS_GROWTH = 256 << 20          # the process's peak RSS may grow this much over all cases
MiB = 1 << 20


@dataclass
class Seed:
    """One corpus image and where its structures lie (found once on the pristine image)."""

    name: str
    data: bytes
    fats: list[tuple[int, int]]              # (volume offset, volume size)
    bpb: list[int]                           # image offsets of boot sectors
    fat_entries: list[tuple[int, int, int]]  # (offset of FAT[0], bits per entry, entries in use)
    dir_entries: list[int]                   # image offsets of 8.3 entries
    lfn_entries: list[int]                   # image offsets of long-name slots
    gpt_headers: list[int]
    gpt_arrays: list[tuple[int, int]]        # (offset, bytes)
    mbr_records: list[int]
    meta: list[tuple[int, int]]              # byte ranges of metadata, for random flips


def _files(tmp: str, n: int) -> list[str]:
    paths = []
    for i in range(n):
        p = os.path.join(tmp, f"Fuzz File Number {i} with a long name.txt" if i % 3 else f"F{i}.TXT")
        with open(p, "wb") as f:
            f.write(bytes([65 + i % 26]) * (i * 700 % 5000 + 1))
        paths.append(p)
    return paths


def _fat(tmp: str, name: str, fat_type: int, kib: int, extra: list[str] | None = None) -> str:
    img = os.path.join(tmp, name)
    run(["mkfs.fat", "-C", "-F", str(fat_type), "-s", "1", *(extra or []), "-n", "FUZZ", img, str(kib)])
    src = os.path.join(tmp, name + ".src")
    os.makedirs(src)
    files = _files(src, 14)
    run(["mmd", "-i", img, "::/sub", "::/sub/deeper"], env_extra=MTOOLS_ENV)
    run(["mcopy", "-i", img, *files[:8], "::/"], env_extra=MTOOLS_ENV)
    run(["mcopy", "-i", img, *files[8:12], "::/sub"], env_extra=MTOOLS_ENV)
    run(["mcopy", "-i", img, *files[12:], "::/sub/deeper"], env_extra=MTOOLS_ENV)
    return img


def _locate(name: str, data: bytes) -> Seed:
    f = io.BytesIO(data)
    t = read_partition_tables(f, len(data))
    assert t.problems == [], t.problems
    fats: list[tuple[int, int]] = []
    if t.gpt512:
        fats += [(e.device_offset, e.size_bytes) for e in t.gpt512.entries]
    if t.mbr:
        fats += [(p.device_offset, p.size_bytes) for p in t.mbr.partitions if not p.extended and p.type_id != 0xEE]
    if not fats:
        fats = [(0, len(data))]
    s = Seed(name, data, [], [], [], [], [], [], [], [], [])
    for off, size in fats:
        try:
            v = FATView(f, len(data), off, volume_size=size)
        except InvalidImageError:
            continue
        assert v.check() == [], v.problems
        s.fats.append((off, size))
        vol = v.volume
        s.bpb.append(off)
        bits = {12: 12, 16: 16, 32: 32}[vol.fat_type]
        used = max(e.fields["first_cluster"] for e in v.walk() if e.path != "/") + 40
        s.fat_entries.append((off + vol.fat_offset, bits, min(used, vol.cluster_count + 2)))
        s.meta.append((off, vol.data_offset + 4 * vol.cluster_size))
        for e in v.walk():
            if e.path == "/":
                continue
            s.dir_entries.append(e.fields["entry_offset"])
            lfn = e.fields["long_name_offset"]
            if lfn is not None:
                s.lfn_entries.extend(range(lfn, e.fields["entry_offset"], 32))
    for g, bs in ((t.gpt512, 512), (t.gpt4096, 4096)):
        if g:
            s.gpt_headers += [g.primary.offset, g.backup.offset]
            s.gpt_arrays += [(g.primary.array_offset, g.primary.array_bytes), (g.backup.array_offset,
                                                                              g.backup.array_bytes)]
            s.meta += [(bs, bs + g.primary.array_bytes), (g.backup.array_offset, g.backup.array_bytes + bs)]
    if t.mbr:
        s.mbr_records += [446 + 16 * i for i in range(4)]
        s.mbr_records += [p.record_offset for p in t.mbr.partitions if p.logical]
        s.mbr_records += [p.ebr_lba * 512 + 462 for p in t.mbr.partitions if p.logical]
        s.meta.append((0, 512))
    assert s.fats, name
    return s


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Seed]:
    need("mkfs.fat", "mcopy", "mmd", "sgdisk", "sfdisk")
    tmp = str(tmp_path_factory.mktemp("fuzz"))
    seeds = []
    f12 = _fat(tmp, "f12.img", 12, 1024)
    f16 = _fat(tmp, "f16.img", 16, 4200)
    f32 = _fat(tmp, "f32.img", 32, 34 * 1024)
    small = shrink_fat32(FATImage(f32, 32, 512), os.path.join(tmp, "f32s.img"), 3000)
    for n, p in (("fat12", f12), ("fat16", f16), ("fat32-small", small.path)):
        with open(p, "rb") as fh:
            seeds.append(_locate(n, fh.read()))
    # a GPT disk (sgdisk) with the FAT12 volume in partition 1
    gpt = os.path.join(tmp, "gpt.img")
    with open(gpt, "wb") as fh:
        fh.truncate(4 * MiB)
    run(["sgdisk", "-o", "-n", "1:2048:+1M", "-t", "1:ef00", "-c", "1:EFI", "-n", "2:0:+1M", "-c", "2:two", gpt])
    with open(gpt, "r+b") as fh, open(f12, "rb") as src:
        fh.seek(2048 * 512)
        fh.write(src.read())
        fh.seek(0)
        seeds.append(_locate("gpt", fh.read()))
    # an MBR disk (sfdisk) with a primary and an extended partition; the FAT12 volume logical
    mbr = os.path.join(tmp, "mbr.img")
    with open(mbr, "wb") as fh:
        fh.truncate(6 * MiB)
    run(["sfdisk", mbr], input=b"label: dos\nunit: sectors\n\nstart=2048, size=2048, type=83\n"
                               b"start=4096, size=8192, type=5\nstart=6144, size=2048, type=1\n")
    with open(mbr, "r+b") as fh, open(f12, "rb") as src:
        fh.seek(6144 * 512)
        fh.write(src.read()[:2048 * 512])
        fh.seek(0)
        seeds.append(_locate("mbr", fh.read()))
    return seeds


# --- mutations -------------------------------------------------------------------------------------------------

SPECIAL = (0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x0FFFFFF7, 0x0FFFFFF8, 0xFFF7, 0xFF7)


def _value(rng: random.Random, bits: int) -> int:
    r = rng.random()
    if r < 0.4:
        return rng.choice(SPECIAL) & ((1 << bits) - 1)
    if r < 0.7:
        return rng.randrange(0, 64)
    return rng.getrandbits(bits)


def _put(data: bytearray, off: int, size: int, value: int) -> None:
    if 0 <= off and off + size <= len(data):
        data[off:off + size] = value.to_bytes(size, "little")


def _fix_gpt_crcs(data: bytearray, header: int, bs: int) -> None:
    if header + 92 > len(data) or data[header:header + 8] != b"EFI PART":
        return
    count, esize = struct.unpack_from("<II", data, header + 80)
    lba, = struct.unpack_from("<Q", data, header + 72)
    n = count * esize
    if n <= 16 * MiB and lba * bs + n <= len(data):
        struct.pack_into("<I", data, header + 88, zlib.crc32(bytes(data[lba * bs:lba * bs + n])))
    hsize = min(struct.unpack_from("<I", data, header + 12)[0], bs)
    struct.pack_into("<I", data, header + 16, 0)
    struct.pack_into("<I", data, header + 16, zlib.crc32(bytes(data[header:header + max(hsize, 0)])))


BPB_FIELDS = [(11, 2), (13, 1), (14, 2), (16, 1), (17, 2), (19, 2), (21, 1), (22, 2), (32, 4), (36, 4), (40, 2),
              (44, 4), (48, 2), (50, 2), (38, 1), (66, 1), (510, 2)]
DIR_FIELDS = [(0, 1), (0, 11), (11, 1), (12, 1), (13, 1), (14, 2), (16, 2), (18, 2), (20, 2), (22, 2), (24, 2),
              (26, 2), (28, 4)]
LFN_FIELDS = [(0, 1), (1, 2), (3, 2), (11, 1), (12, 1), (13, 1), (14, 2), (26, 2), (28, 2)]
GPT_FIELDS = [(8, 4), (12, 4), (20, 4), (24, 8), (32, 8), (40, 8), (48, 8), (72, 8), (80, 4), (84, 4)]
GPT_ENTRY_FIELDS = [(0, 16), (16, 16), (32, 8), (40, 8), (48, 8), (56, 2), (58, 2)]
MBR_FIELDS = [(0, 1), (4, 1), (8, 4), (12, 4)]


def mutate(seed: Seed, rng: random.Random) -> tuple[bytes, list[str]]:
    data = bytearray(seed.data)
    done = []
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        kind = rng.choice(["bpb", "fat", "fat", "dir", "dir", "lfn", "gpt", "gpt_array", "mbr", "flip"])
        if kind == "bpb":
            base = rng.choice(seed.bpb)
            off, size = rng.choice(BPB_FIELDS)
            _put(data, base + off, size, _value(rng, 8 * size))
        elif kind == "fat":
            fat, bits, used = rng.choice(seed.fat_entries)
            c = rng.randrange(0, used)
            v = rng.choice([_value(rng, bits if bits != 32 else 28), rng.randrange(0, used), c, max(c - 1, 0)])
            if bits == 12:
                at = fat + c * 3 // 2
                if at + 2 <= len(data):
                    old = struct.unpack_from("<H", data, at)[0]
                    v &= 0xFFF
                    struct.pack_into("<H", data, at, (old & 0x000F) | (v << 4) if c & 1 else (old & 0xF000) | v)
            else:
                _put(data, fat + c * bits // 8, bits // 8, v)
        elif kind == "dir" and seed.dir_entries:
            base = rng.choice(seed.dir_entries)
            off, size = rng.choice(DIR_FIELDS)
            if off == 0 and size == 11:
                data[base:base + 11] = bytes(rng.choice((0x2E, 0x2F, 0x00, 0x20, 0xE5, 0x05, rng.randrange(256)))
                                             for _ in range(11))
            else:
                _put(data, base + off, size, _value(rng, 8 * size))
        elif kind == "lfn" and seed.lfn_entries:
            base = rng.choice(seed.lfn_entries)
            off, size = rng.choice(LFN_FIELDS)
            v = rng.choice([_value(rng, 8 * size), 0xD800, 0xDC00, 0x002F, 0x0000, 0xFFFF]) & ((1 << 8 * size) - 1)
            _put(data, base + off, size, v)
        elif kind in ("gpt", "gpt_array") and seed.gpt_headers:
            i = rng.randrange(len(seed.gpt_headers))
            header = seed.gpt_headers[i]
            bs = 512
            if kind == "gpt":
                off, size = rng.choice(GPT_FIELDS)
                _put(data, header + off, size, _value(rng, 8 * size))
            else:
                arr, n = seed.gpt_arrays[i]
                e = arr + 128 * rng.randrange(0, 4)
                off, size = rng.choice(GPT_ENTRY_FIELDS)
                _put(data, e + off, size, _value(rng, min(64, 8 * size)) if size <= 8 else rng.getrandbits(128))
            if rng.random() < 0.7:
                _fix_gpt_crcs(data, header, bs)
        elif kind == "mbr" and seed.mbr_records:
            base = rng.choice(seed.mbr_records)
            off, size = rng.choice(MBR_FIELDS)
            _put(data, base + off, size, _value(rng, 8 * size))
        else:
            lo, n = rng.choice(seed.meta)
            for _ in range(rng.randrange(1, 8)):
                p = lo + rng.randrange(max(n, 1))
                if p < len(data):
                    data[p] ^= 1 << rng.randrange(8)
            kind = "flip"
        done.append(kind)
    return bytes(data), done


# --- reading everything ----------------------------------------------------------------------------------------

def read_everything(data: bytes) -> int:
    """Every reader over ``data``; returns how many entries were read.  Only InvalidImageError
    may escape from any call (caught here one call at a time)."""
    f = io.BytesIO(data)
    n = 0
    t = read_partition_tables(f, len(data))
    for bs in (512, 4096):
        try:
            GPT.parse(data, bs)
        except InvalidImageError:
            pass
    try:
        MBR.parse(data[:512])
    except InvalidImageError:
        pass
    places = [(0, None)]
    for g in t.gpts.values():
        places += [(e.device_offset, e.size_bytes) for e in g.entries[:4]]
    if t.mbr:
        places += [(p.device_offset, p.size_bytes) for p in t.mbr.partitions[:6]]
    for off, size in dict.fromkeys(places):
        if off >= len(data):
            continue
        try:
            v = FATView(f, len(data), off, volume_size=size)
        except InvalidImageError:
            continue
        try:
            for e in v.walk():
                n += 1
                if e.is_file:
                    try:
                        with v.open(e.path) as fh:
                            while fh.read(1 << 16):
                                pass
                    except InvalidImageError:
                        pass
        except InvalidImageError:
            pass
        v.check()
        try:
            with VFATReader(f, volume_offset=off) as r:
                for e2 in r.walk():
                    if not e2.is_dir:
                        try:
                            r.read(e2)
                        except InvalidImageError:
                            pass
        except InvalidImageError:
            pass
    return n


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout()


def run_cases(corpus: list[Seed], cases: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    stats = {"cases": 0, "entries": 0, "slowest_ms": 0, "peak_mib": 0}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for i in range(cases):
            s = corpus[i % len(corpus)]
            data, kinds = mutate(s, rng)
            traced = i % 25 == 0
            if traced:
                tracemalloc.start()
            t0 = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS * (3 if traced else 1))
            try:
                stats["entries"] += read_everything(data)
            except CaseTimeout:
                pytest.fail(f"case {i} (seed {seed}, {s.name}, {kinds}) took more than {CASE_SECONDS} s")
            except InvalidImageError:
                pass
            except Exception as e:          # the property: nothing else
                raise AssertionError(f"case {i} (seed {seed}, {s.name}, {kinds}): {type(e).__name__}: {e}") from e
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            ms = (time.monotonic() - t0) * 1000
            if not traced:
                stats["slowest_ms"] = max(stats["slowest_ms"], int(ms))
            else:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                stats["peak_mib"] = max(stats["peak_mib"], peak >> 20)
                assert peak < CASE_MEMORY, f"case {i} ({s.name}, {kinds}): {peak} bytes"
            stats["cases"] += 1
    finally:
        signal.signal(signal.SIGALRM, old)
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    assert growth < RSS_GROWTH, growth
    return stats


def test_corpus_reads_clean(corpus):
    for s in corpus:
        assert read_everything(s.data) > 0


def test_fuzz_quick(corpus):
    stats = run_cases(corpus, CASES, SEED)
    print(f"fuzz: {stats}")
    assert stats["cases"] == CASES and stats["entries"] > CASES


@pytest.mark.slow
def test_fuzz_many(corpus):
    stats = run_cases(corpus, SLOW_CASES, SEED + 1)
    print(f"fuzz: {stats}")
    assert stats["cases"] == SLOW_CASES
