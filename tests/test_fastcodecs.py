"""Every hand-written fast copy of a construct declaration equals the declaration.

One generic property test over the ``FAST_CODECS`` registries that stand beside the
declarations (every module of the package that has one: the iso9660, vfat and cpio
declarations today; found by walking the package, so a new registry is checked too), after
construct's own ``tests/declarativeunittest.py`` helper ``common(format, data, obj, size)``:
for many random field values, the fast encoder's bytes are the declaration's, the fast
decoder gives what the declaration parses, the sizes agree; and on those bytes with one
byte changed, a fast decoder gives what construct parses or leaves the bytes to it.
"""
from __future__ import annotations

import importlib
import pkgutil
import random

import pytest
from construct import Container, ListContainer, SizeofError
from hypothesis import given, settings, strategies as st

import sysexport
from sysexport._fastcodec import FastCodec


def _registries() -> dict[str, object]:
    """Every module of the package with a FAST_CODECS registry (declaration modules only:
    their names start with an underscore and end in "structs")."""
    found = {}
    for mod in pkgutil.walk_packages(sysexport.__path__, "sysexport."):
        if mod.name.rsplit(".", 1)[-1].endswith("structs"):
            module = importlib.import_module(mod.name)
            if hasattr(module, "FAST_CODECS"):
                found[mod.name.removeprefix("sysexport.")] = module
    return found


REGISTRIES = _registries()


def test_every_registry_is_found():
    assert {"iso9660._structs", "iso9660._rrstructs", "vfat._structs", "cpio._structs"} <= set(REGISTRIES)
CODECS = [(f"{where}: {codec.name}", codec) for where, module in REGISTRIES.items() for codec in module.FAST_CODECS]


def plain(obj: object) -> object:
    """A parsed value as plain dicts and lists, without construct's private keys."""
    if isinstance(obj, (Container, dict)):
        return {k: plain(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (ListContainer, list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    return obj


def construct_outcome(declaration, data: bytes) -> object:
    try:
        return plain(declaration.parse(data))
    except Exception as e:            # construct's errors, and the adapters' ValueError
        return f"rejected: {type(e).__name__}"


def common(codec: FastCodec, rng: random.Random) -> None:
    """construct's common(format, data, obj, size), with the fast copy beside the declaration."""
    sample = codec.sample(rng)
    obj = codec.construct_obj(sample) if codec.construct_obj is not None else sample
    declaration = codec.declaration(sample)
    data = declaration.build(obj)
    assert declaration.build(declaration.parse(data)) == data
    try:
        static_size = declaration.sizeof()
    except SizeofError:
        static_size = None
    if static_size is not None:
        assert len(data) == static_size
    if codec.encode is not None:
        fast = codec.encode(sample)
        assert len(fast) == len(data)
        assert fast == data, f"fast {fast.hex()}\n   declared {data.hex()}"
    if codec.size is not None:
        assert codec.size(sample) == len(data)
    if codec.decode is not None:
        decoded = codec.decode(data)
        assert decoded is not None, "the fast decoder declined bytes the declaration built"
        assert plain(decoded) == plain(declaration.parse(data))
        if codec.decodes_any_bytes and data:
            changed = bytearray(data)
            at = rng.randrange(len(changed))
            changed[at] = (changed[at] + rng.randrange(1, 256)) % 256
            decoded = codec.decode(bytes(changed))
            if decoded is not None:
                assert plain(decoded) == construct_outcome(declaration, bytes(changed)), f"byte {at} changed"


def test_every_fast_copy_is_registered():
    names = [name for name, _ in CODECS]
    assert len(names) == len(set(names))
    for needle in ("layout.pack_record", "dirbytes.directory_bytes", "parse_directory_record",
                   "layout.path_table_record", "rockridge._px", "rockridge._tf", "rockridge._nm",
                   "rockridge._sl_entry", "rockridge._rr", "decode_su_entry", "DIR_ENTRY_FAST",
                   "LFN_ENTRY_FAST", "LFN_AND_DIR_ENTRY_FAST", "table.pack_fat", "reader._unpack_fat"):
        assert any(needle in n for n in names), needle


@pytest.mark.parametrize("name,codec", CODECS, ids=[name for name, _ in CODECS])
@settings(max_examples=300, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_fast_copy_equals_declaration(name, codec, rng):
    common(codec, rng)
