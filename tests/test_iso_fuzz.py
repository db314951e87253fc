"""Seeded mutation fuzzing of the ISO 9660 read side: real images (xorriso with zisofs and
appended sessions, genisoimage with relocation, hard links and El Torito, our writer) with
bytes flipped, set, inserted, and the image cut short, in the volume descriptors, the
directory records, the system use (SUSP) and continuation areas, the path tables, zisofs
headers and the boot catalog.  Every case opens the volume, walks, stats, opens and reads
every view (and the older API inspect uses): only InvalidImageError may come out, each case
within a time bound (no hang) and a memory bound: the cases run in a forked child whose
address space is limited (RLIMIT_AS: what it had plus ``MEMORY_BOUND``), so a size taken
on trust is a MemoryError there; every 16th case's tracemalloc peak is reported.

The quick tier runs a few hundred cases; the slow tier thousands (SYSEXPORT_FUZZ_CASES
overrides either)."""
from __future__ import annotations

import io
import json
import os
import random
import resource
import select
import signal
import time
import tracemalloc

import pytest

from helpers import need, run
from sysexport.errors import InvalidImageError
from sysexport.iso9660.reader import ISO9660Reader
from sysexport.iso9660.view import ISOView, open_iso_views

TIME_BOUND_S = 2.0
HANG_ALARM_S = 20
MEMORY_BOUND = 256 << 20
CHILD_DEADLINE_S = 600
READ_LIMIT = 1 << 20
QUICK_CASES = int(os.environ.get("SYSEXPORT_FUZZ_CASES", "360"))
SLOW_CASES = int(os.environ.get("SYSEXPORT_FUZZ_CASES", "4000"))


def _tree(root) -> None:
    rng = random.Random(7)
    deep = root / "/".join(f"d{i}" for i in range(1, 11))
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_bytes(b"deep\n")
    (root / "sub").mkdir()
    (root / "text.txt").write_bytes(b"zisofs me " * 9000)
    (root / "rand.bin").write_bytes(rng.randbytes(5000))
    (root / "a.txt").write_bytes(b"a\n")
    os.link(root / "a.txt", root / "sub" / "hard.txt")
    (root / ("n" * 200)).write_bytes(b"long name\n")
    os.symlink("../" * 2 + "/".join(["y" * 90] * 4), root / "sub" / "longlink")
    os.symlink("/", root / "rootlink")
    (root / "boot.img").write_bytes(bytes(range(256)) * 8)
    os.mkfifo(root / "fifo")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[tuple[str, bytes]]:
    need("xorriso", "genisoimage")
    d = tmp_path_factory.mktemp("fuzz")
    src = d / "src"
    src.mkdir()
    _tree(src)
    out: list[tuple[str, bytes]] = []
    x = d / "x.iso"
    run(["xorriso", "-outdev", str(x), "-joliet", "on", "-compliance", "new_rr", "-hardlinks", "on",
         "-map", str(src), "/", "-zisofs", "level=9", "-set_filter_r", "--zisofs", "/text.txt", "--",
         "-boot_image", "any", "bin_path=/boot.img", "-boot_image", "any", "cat_path=/boot.cat",
         "-boot_image", "any", "load_size=2048", "-commit"])
    out.append(("xorriso-zisofs-eltorito", x.read_bytes()))
    g = d / "g.iso"
    run(["genisoimage", "-quiet", "-R", "-J", "-cache-inodes", "-o", str(g), str(src)])
    out.append(("genisoimage-relocated", g.read_bytes()))
    ms = d / "ms.iso"
    for i in range(2):
        s = d / f"s{i}"
        s.mkdir()
        (s / "f.txt").write_bytes(b"session\n" * (i + 1))
        run(["xorriso", "-dev", str(ms), "-map", str(s), f"/s{i}", "-commit"])
    out.append(("xorriso-sessions", ms.read_bytes()))
    from sysexport import ISO9660
    ours = d / "ours.iso"
    iso = ISO9660(str(ours), volume_label="OURS", rock_ridge="1.12", default_time=1_700_000_000)
    iso.add_tree(str(src))
    iso.finish()
    out.append(("ours-112", ours.read_bytes()))
    return out


def regions(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """Where the structures of an intact image lie: descriptors, path tables, directories,
    system use areas (and continuation areas), zisofs headers, the boot catalog."""
    r = ISO9660Reader(io.BytesIO(data))
    found: dict[str, list[tuple[int, int]]] = {"descriptors": [], "path tables": [], "directories": [],
                                                "system use": [], "zisofs": [], "catalog": []}
    for s in r.sessions:
        found["descriptors"].append((r.lba_offset(s.descriptor_lba), 4 * 2048))
    p = r.pvd
    for lba in (p.location_of_type_l_path_table, p.location_of_type_m_path_table):
        found["path tables"].append((r.lba_offset(lba), max(p.path_table_size, 8)))
    if r.boot_catalog_lba is not None:
        found["catalog"].append((r.lba_offset(r.boot_catalog_lba), 2048))
    for kind in r.view_names:
        view = ISOView(r, kind)
        for e in view.walk():
            if e.is_dir:
                found["directories"].extend(e.extents)
            if e.fields.get("zisofs") and e.extents:
                found["zisofs"].append((e.extents[0][0], 64))
    for (lba, size), recs in list(r._dir_cache.items()):
        for rec in recs:
            if rec.su:
                found["system use"].append((rec.at + 33 + len(rec.ident) + 1 - len(rec.ident) % 2, len(rec.su)))
    return {k: v for k, v in found.items() if v}


def mutate(rng: random.Random, data: bytes, where: dict[str, list[tuple[int, int]]]) -> tuple[bytes, str]:
    kind = rng.choice(sorted(where))
    start, size = rng.choice(where[kind])
    size = max(1, min(size, len(data) - start))
    b = bytearray(data)
    op = rng.choice(["flip", "set", "field", "insert", "truncate", "burst", "zero"])
    pos = start + rng.randrange(size)
    if pos >= len(b):
        pos = len(b) - 1
    if op == "flip":
        b[pos] ^= 1 << rng.randrange(8)
    elif op == "set":
        b[pos] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif op == "field":                 # a both-endian or plain 32-bit number made hostile
        value = rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, len(data) // 2048, len(data), rng.getrandbits(32)])
        raw = value.to_bytes(4, "little") + (value.to_bytes(4, "big") if rng.randrange(2) else b"")
        b[pos:pos + len(raw)] = raw
    elif op == "insert":
        b[pos:pos] = rng.randbytes(rng.randrange(1, 40))
    elif op == "truncate":
        del b[pos:]
    elif op == "burst":
        n = rng.randrange(1, 16)
        b[pos:pos + n] = rng.randbytes(n)
    else:
        n = rng.randrange(1, 64)
        b[pos:pos + n] = bytes(len(b[pos:pos + n]))
    return bytes(b), f"{op} in {kind} at byte {pos}"


def exercise(data: bytes) -> int:
    """Everything a user may call on an ISO volume; returns the number of entries read.
    Only InvalidImageError may be raised (caught per call, as a user of the API would)."""
    n = 0
    f = io.BytesIO(data)
    try:
        found = open_iso_views(f, len(data))
    except InvalidImageError:
        return 0
    r = found.reader
    for s in range(len(r.sessions) - 1):                 # the older sessions: their trees
        try:
            older = ISO9660Reader(f, session=s, image_size=len(data))
            for kind in older.view_names:
                n += sum(1 for _ in ISOView(older, kind).walk())
        except InvalidImageError:
            pass
    for call in (r.boot_catalog, r.path_table, lambda: r.path_table("M"), lambda: r.volume):
        try:
            call()
        except InvalidImageError:
            pass
    for name, make in found.views.items():
        try:
            view = make()
            for e in view.walk():
                n += 1
                try:
                    view.stat(e.path)
                    if e.is_dir:
                        view.listdir(e.path)
                    elif e.is_file:
                        with view.open(e.path) as fh:
                            fh.read(READ_LIMIT)
                            fh.seek(e.size // 2)
                            fh.read(4096)
                except InvalidImageError:
                    pass
        except InvalidImageError:
            pass
    for legacy in r.views:
        try:
            for e in r.walk(legacy):
                if e.is_file:
                    for _ in r.iter_content(e, 65536):
                        break
        except InvalidImageError:
            pass
    return n


def _run_cases(corpus, cases: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    prepared = [(name, data, regions(data)) for name, data in corpus]
    stats = {"cases": 0, "opened": 0, "entries": 0, "slowest_ms": 0, "traced_peak_kib": 0}

    def alarm(signum, frame):
        raise TimeoutError("a fuzz case hangs")

    signal.signal(signal.SIGALRM, alarm)
    for i in range(cases):
        name, data, where = prepared[i % len(prepared)]
        mutated, what = mutate(rng, data, where)
        if rng.randrange(4) == 0:
            mutated, what2 = mutate(rng, mutated, where)
            what += "; " + what2
        traced = i % 16 == 0
        if traced:
            tracemalloc.start()
        t0 = time.monotonic()
        signal.alarm(HANG_ALARM_S)
        try:
            n = exercise(mutated)
        except BaseException as e:      # anything but InvalidImageError escaping is the failure
            raise AssertionError(f"case {i} ({name}: {what}): {type(e).__name__}: {e}") from e
        finally:
            signal.alarm(0)
            elapsed = time.monotonic() - t0
            if traced:
                stats["traced_peak_kib"] = max(stats["traced_peak_kib"], tracemalloc.get_traced_memory()[1] >> 10)
                tracemalloc.stop()
        if elapsed > TIME_BOUND_S * (4 if traced else 1):
            raise AssertionError(f"case {i} ({name}: {what}) took {elapsed:.2f} s")
        stats["cases"] += 1
        stats["opened"] += n > 0
        stats["entries"] += n
        stats["slowest_ms"] = max(stats["slowest_ms"], int(elapsed * 1000))
    return stats


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def run_bounded(corpus, cases: int, seed: int) -> dict[str, int]:
    """_run_cases in a forked child with its address space limited (the memory bound);
    the child's failure, or its not finishing within CHILD_DEADLINE_S, fails the test."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the child
        try:
            os.close(r)
            limit = _vm_bytes() + MEMORY_BOUND
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            payload = {"stats": _run_cases(corpus, cases, seed)}
        except BaseException as e:
            payload = {"error": f"{type(e).__name__}: {e}"}
        os.write(w, json.dumps(payload).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + CHILD_DEADLINE_S
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([r], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"the fuzz cases did not finish in {CHILD_DEADLINE_S} s")
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"error": "the fuzz child died"}')
    if "error" in result:
        raise AssertionError(result["error"])
    return result["stats"]


def test_intact_images_read_without_problems(corpus):
    for name, data in corpus:
        found = open_iso_views(io.BytesIO(data), len(data))
        assert exercise(data) > 10, name
        assert found.reader.problems == [], (name, [str(p) for p in found.reader.problems])


def test_fuzz_quick(corpus):
    stats = run_bounded(corpus, QUICK_CASES, 20240601)
    assert stats["cases"] == QUICK_CASES
    assert stats["opened"] > QUICK_CASES // 2          # most mutations leave a readable volume
    print(f"iso fuzz (quick): {stats}")


@pytest.mark.slow
def test_fuzz_slow(corpus):
    stats = run_bounded(corpus, SLOW_CASES, 977)
    assert stats["cases"] == SLOW_CASES
    print(f"iso fuzz (slow): {stats}")
