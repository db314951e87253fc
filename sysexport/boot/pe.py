"""Reading PE/COFF images as far as booting needs: the machine type, the sections, and the
attribute certificate table that holds an Authenticode signature.

The structures are declared in :mod:`sysexport.boot._structs` (Microsoft's "PE Format"
names). This is a *presence* check: a kernel or loader whose certificate table holds a
WIN_CERTIFICATE of type PKCS_SIGNED_DATA carries a signature; whether the signature verifies
against a key is decided by shim and the firmware at boot (``sbverify --cert`` checks it on
the host). An image without one is certain to be refused with Secure Boot on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

from construct import ConstructError

from ..errors import InvalidInputError
from ..extent import align_up
from ._structs import (IMAGE_DIRECTORY_ENTRY_SECURITY, IMAGE_DOS_SIGNATURE, IMAGE_NT_SIGNATURE,
                       IMAGE_SIZEOF_SECTION_HEADER, PE_MACHINE_NAMES, WIN_CERT_REVISION_2_0,
                       WIN_CERT_TYPE_PKCS_SIGNED_DATA, WIN_CERTIFICATE_ALIGN, WIN_CERTIFICATE_HEADER_BYTES,
                       ImageDosHeader, ImageFileHeader, ImageNtHeaders, ImageSectionHeader, WinCertificate)

PE_SIGNATURE_AND_FILE_HEADER_BYTES = 4 + ImageFileHeader.sizeof()


def machine_name(machine: int) -> str:
    return PE_MACHINE_NAMES.get(machine, f"machine {machine:#06x}")


@dataclass(frozen=True)
class PESection:
    name: str
    virtual_address: int
    virtual_size: int
    raw_offset: int
    raw_size: int


@dataclass(frozen=True)
class PECertificate:
    """One WIN_CERTIFICATE of the attribute certificate table (``offset``: in the file)."""

    offset: int
    length: int
    revision: int
    type: int

    @property
    def authenticode(self) -> bool:
        return self.type == WIN_CERT_TYPE_PKCS_SIGNED_DATA and self.revision == WIN_CERT_REVISION_2_0


@dataclass(frozen=True)
class PEImage:
    """What :func:`read_pe` found."""

    size: int
    machine: int
    optional_magic: int
    subsystem: int
    sections: tuple[PESection, ...]
    certificate_table: tuple[int, int]
    """(file offset, size) of data directory 4; (0, 0) when there is none."""
    certificates: tuple[PECertificate, ...]

    @property
    def machine_name(self) -> str:
        return machine_name(self.machine)

    @property
    def signed(self) -> bool:
        """Whether an Authenticode signature (PKCS#7 SignedData, revision 2.0) is there."""
        return any(c.authenticode for c in self.certificates)

    def section(self, name: str) -> PESection | None:
        return next((s for s in self.sections if s.name == name), None)


class _Reader:
    def __init__(self, f: BinaryIO, size: int, where: str) -> None:
        self.f, self.size, self.where = f, size, where

    def read(self, offset: int, n: int, what: str) -> bytes:
        if offset < 0 or offset + n > self.size:
            raise InvalidInputError(f"{self.where}: damaged PE/COFF image: {what} ({n} bytes at {offset}) "
                                    f"lies past its end ({self.size} bytes)")
        self.f.seek(offset)
        return self.f.read(n)


def read_pe(source: str | os.PathLike[str] | bytes, where: str | None = None) -> PEImage | None:
    """The PE/COFF headers of ``source`` (a host path or bytes), or None when it is not a
    PE image at all (no "MZ" with a "PE\\0\\0" signature where e_lfanew points).
    InvalidInputError when it is one but its headers point outside the file."""
    import io
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _read(_Reader(io.BytesIO(data), len(data), where or "image"))
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            return _read(_Reader(f, os.fstat(f.fileno()).st_size, where or path))
    except OSError as e:
        raise InvalidInputError(f"{where or path}: cannot read it: {e.strerror}") from None


def _read(r: _Reader) -> PEImage | None:
    if r.size < ImageDosHeader.sizeof():
        return None
    try:
        dos = ImageDosHeader.parse(r.read(0, ImageDosHeader.sizeof(), "the MS-DOS header"))
        if dos.e_magic != IMAGE_DOS_SIGNATURE or dos.e_lfanew + PE_SIGNATURE_AND_FILE_HEADER_BYTES > r.size:
            return None
        head = r.read(dos.e_lfanew, PE_SIGNATURE_AND_FILE_HEADER_BYTES, "the COFF header")
        if head[:4] != IMAGE_NT_SIGNATURE:
            return None
        fh = ImageFileHeader.parse(head[4:])
        opt_size = fh.SizeOfOptionalHeader
        nt = ImageNtHeaders.parse(r.read(dos.e_lfanew, PE_SIGNATURE_AND_FILE_HEADER_BYTES + opt_size,
                                         "the optional header"))
    except ConstructError as e:
        raise InvalidInputError(f"{r.where}: damaged PE/COFF image: {e}") from None
    opt = nt.OptionalHeader
    table = dos.e_lfanew + PE_SIGNATURE_AND_FILE_HEADER_BYTES + opt_size
    raw = r.read(table, IMAGE_SIZEOF_SECTION_HEADER * fh.NumberOfSections, "the section table")
    sections = []
    for i in range(fh.NumberOfSections):
        s = ImageSectionHeader.parse(raw[i * IMAGE_SIZEOF_SECTION_HEADER:(i + 1) * IMAGE_SIZEOF_SECTION_HEADER])
        sections.append(PESection(s.Name.rstrip(b"\0").decode("latin-1"), s.VirtualAddress, s.VirtualSize,
                                  s.PointerToRawData, s.SizeOfRawData))
    cert_offset, cert_size = 0, 0
    if len(opt.DataDirectory) > IMAGE_DIRECTORY_ENTRY_SECURITY:
        d = opt.DataDirectory[IMAGE_DIRECTORY_ENTRY_SECURITY]
        cert_offset, cert_size = d.VirtualAddress, d.Size      # a file offset, not an RVA
    certificates: list[PECertificate] = []
    if cert_size:
        blob = r.read(cert_offset, cert_size, "the attribute certificate table")
        pos = 0
        while pos + WIN_CERTIFICATE_HEADER_BYTES <= cert_size:
            c = WinCertificate.parse(blob[pos:pos + WIN_CERTIFICATE_HEADER_BYTES])
            if c.dwLength < WIN_CERTIFICATE_HEADER_BYTES or pos + c.dwLength > cert_size:
                raise InvalidInputError(f"{r.where}: damaged PE/COFF image: WIN_CERTIFICATE at file offset "
                                        f"{cert_offset + pos} has dwLength {c.dwLength}, the table "
                                        f"{cert_size - pos} bytes left")
            certificates.append(PECertificate(cert_offset + pos, c.dwLength, c.wRevision, c.wCertificateType))
            pos += align_up(c.dwLength, WIN_CERTIFICATE_ALIGN)
    return PEImage(r.size, fh.Machine, opt.Magic, opt.Subsystem, tuple(sections), (cert_offset, cert_size),
                   tuple(certificates))


def section_bytes(source: str | os.PathLike[str] | bytes, image: PEImage, name: str) -> bytes | None:
    """The raw bytes of section ``name`` (None when there is no such section)."""
    s = image.section(name)
    if s is None:
        return None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)[s.raw_offset:s.raw_offset + s.raw_size]
    else:
        with open(os.fspath(source), "rb") as f:
            f.seek(s.raw_offset)
            data = f.read(s.raw_size)
    if len(data) != s.raw_size:
        raise InvalidInputError(f"section {name}: {s.raw_size} bytes at {s.raw_offset}, the file ends before")
    return data
