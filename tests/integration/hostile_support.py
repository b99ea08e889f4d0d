"""Hostile objects and measuring helpers for the test_hostile_* modules (no tests here).

The objects are written byte by byte, as an attacker would: pydicom refuses to
write most of them, which is the point.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil
from pydicom.uid import generate_uid

from telerad.dicom.part10 import PREAMBLE, file_meta_bytes

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
UNDEFINED = 0xFFFFFFFF
MIB = 1024 * 1024
_LONG = (b"OB", b"OW", b"SQ", b"UN", b"UT")


def element(group: int, elem: int, vr: bytes, value: bytes, explicit: bool = True) -> bytes:
    if not explicit:
        return struct.pack("<HHI", group, elem, len(value)) + value
    if vr in _LONG:
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def header(group: int, elem: int, vr: bytes, length: int, explicit: bool = True) -> bytes:
    """An element header declaring ``length`` (which need not be true)."""
    if not explicit or group == 0xFFFE:
        return struct.pack("<HHI", group, elem, length)
    if vr in _LONG:
        return struct.pack("<HH2sHI", group, elem, vr, 0, length)
    return struct.pack("<HH2sH", group, elem, vr, length)


def ui(value: str) -> bytes:
    raw = value.encode()
    return raw + b"\0" if len(raw) % 2 else raw


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def text(value: str) -> bytes:
    raw = value.encode()
    return raw + b" " if len(raw) % 2 else raw


@dataclass
class Ids:
    """Fresh identifying UIDs of one hostile object."""

    study: str = field(default_factory=lambda: generate_uid("2.25."))
    series: str = field(default_factory=lambda: generate_uid("2.25."))
    sop: str = field(default_factory=lambda: generate_uid("2.25."))
    sop_class: str = SECONDARY_CAPTURE


def head(ids: Ids, explicit: bool = True) -> bytes:
    """(0008,0016), (0008,0018) and a Patient ID: what comes before (0008,1140)."""
    return (
        element(0x0008, 0x0016, b"UI", ui(ids.sop_class), explicit)
        + element(0x0008, 0x0018, b"UI", ui(ids.sop), explicit)
        + element(0x0010, 0x0020, b"LO", text("HOSTILE1"), explicit)
    )


def tail(ids: Ids, explicit: bool = True) -> bytes:
    """Study and Series Instance UIDs (group 0020)."""
    return element(0x0020, 0x000D, b"UI", ui(ids.study), explicit) + element(
        0x0020, 0x000E, b"UI", ui(ids.series), explicit
    )


def part10(dataset: bytes, ids: Ids, ts: str = EXPLICIT, preamble: bytes = PREAMBLE[:128]) -> bytes:
    return preamble + b"DICM" + file_meta_bytes(ts, ids.sop_class, ids.sop) + dataset


def deflated(dataset: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(dataset) + packer.flush()


def nested(depth: int, explicit: bool, defined: bool) -> bytes:
    """(0008,1140) Referenced Image Sequence, one item inside the other ``depth`` deep."""
    inner = b""
    for _ in range(depth):
        if defined:
            item = struct.pack("<HHI", 0xFFFE, 0xE000, len(inner)) + inner
            inner = header(0x0008, 0x1140, b"SQ", len(item), explicit) + item
        else:
            inner = (
                header(0x0008, 0x1140, b"SQ", UNDEFINED, explicit)
                + struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED)
                + inner
                + struct.pack("<HHIHHI", 0xFFFE, 0xE00D, 0, 0xFFFE, 0xE0DD, 0)
            )
    return inner


def deflate_bomb(ids: Ids, inflated: int) -> bytes:
    """A deflated object whose dataset inflates to ``inflated`` bytes of a private OB
    value (zeros), about a thousandth of that on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    pieces = [packer.compress(head(ids) + tail(ids) + header(0x0009, 0x1010, b"OB", inflated))]
    zeros = bytes(16 * MIB)
    for _ in range(inflated // len(zeros)):
        pieces.append(packer.compress(zeros))
    pieces.append(packer.flush())
    return part10(b"".join(pieces), ids, DEFLATED)


def pe_preamble() -> bytes:
    """The 128 bytes of a Windows executable's start: an MZ (DOS) header whose
    e_lfanew points at a PE signature and COFF header inside the preamble (the
    DICOM/PE polyglot of CVE-2019-11687)."""
    dos = bytearray(128)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x40)  # e_lfanew
    dos[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<HH", dos, 0x44, 0x014C, 1)  # machine i386, one section
    dos[0x4E:0x76] = b"This program cannot be run in DOS mode.\r"
    return bytes(dos)


@dataclass
class Peak:
    """The highest RSS seen while sampling, and where it started."""

    start: int
    peak: int = 0

    @property
    def growth(self) -> int:
        return self.peak - self.start


@contextmanager
def rss_peak(pid: int | None = None, every: float = 0.005) -> Iterator[Peak]:
    """Sample a process's resident memory (this one by default) in a thread while
    the block runs: a decoder's allocation shows up even if freed before the end."""
    process = psutil.Process(pid)
    peak = Peak(process.memory_info().rss)
    peak.peak = peak.start
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak.peak = max(peak.peak, process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()
        peak.peak = max(peak.peak, process.memory_info().rss)
