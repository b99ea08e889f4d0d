"""Find the Pixel Data of a Part 10 object by walking element headers, without parsing values.

WADO-RS frames as stored need only where Pixel Data starts and the Image Pixel
attributes; a full ``dcmread`` costs a millisecond per request for nothing. This
walker reads tag and length of each element (skipping sequences, also those of
undefined length) and returns None whenever it meets anything it does not handle
(deflate, big endian, a malformed header): the caller then parses with pydicom.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_US = {
    0x00280002: "samples",
    0x00280010: "rows",
    0x00280011: "columns",
    0x00280100: "bits_allocated",
    0x00280101: "bits_stored",
    0x00280103: "pixel_representation",
    0x00280006: "planar_configuration",
}
_TEXT = {0x00280008: "frames", 0x00280004: "photometric"}
_HEADER = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_MAX_DEPTH = 16


class _Unsupported(Exception):
    pass


@dataclass(frozen=True)
class PixelLayout:
    transfer_syntax: str
    value_offset: int  # first byte of the Pixel Data value (an Item tag when encapsulated)
    value_length: int  # UNDEFINED when encapsulated
    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    planar_configuration: int
    frames: int


def _element(data: bytes, pos: int, explicit: bool) -> tuple[int, bytes, int, int]:
    """(tag, VR or b'', length, value offset) of the element at ``pos``."""
    if pos + 8 > len(data):
        raise _Unsupported
    group, elem = _HEADER.unpack_from(data, pos)
    tag = group << 16 | elem
    if group == 0xFFFE or not explicit:
        return tag, b"", _U32.unpack_from(data, pos + 4)[0], pos + 8
    vr = data[pos + 4 : pos + 6]
    if vr in _LONG_VRS:
        if pos + 12 > len(data):
            raise _Unsupported
        return tag, vr, _U32.unpack_from(data, pos + 8)[0], pos + 12
    return tag, vr, _U16.unpack_from(data, pos + 6)[0], pos + 8


def _skip_sequence(data: bytes, pos: int, explicit: bool, depth: int) -> int:
    """Offset after an undefined-length sequence whose items start at ``pos``."""
    if depth > _MAX_DEPTH:
        raise _Unsupported
    while True:
        tag, _vr, length, value = _element(data, pos, False)  # item tags carry no VR
        if tag == _SEQ_END:
            return value
        if tag != _ITEM:
            raise _Unsupported
        if length == UNDEFINED:
            pos = _skip_dataset(data, value, explicit, depth + 1)
        else:
            pos = value + length


def _skip_dataset(data: bytes, pos: int, explicit: bool, depth: int) -> int:
    """Offset after an undefined-length item's dataset (past its Item Delimitation)."""
    while True:
        tag, vr, length, value = _element(data, pos, explicit)
        if tag == _ITEM_END:
            return value
        pos = _after(data, vr, length, value, explicit, depth)


def _after(data: bytes, vr: bytes, length: int, value: int, explicit: bool, depth: int) -> int:
    if length != UNDEFINED:
        return value + length
    # Undefined length: a sequence (UN content is Implicit VR Little Endian).
    return _skip_sequence(data, value, explicit and vr != b"UN", depth)


def meta(data: bytes) -> tuple[str, int] | None:
    """(TransferSyntaxUID, offset of the dataset) from the File Meta group
    (None without the preamble; raises on a malformed group)."""
    if data[128:132] != b"DICM":
        return None
    tag, vr, length, value = _element(data, 132, True)
    if tag != 0x00020000 or vr != b"UL" or length != 4:
        return None
    end = value + 4 + _U32.unpack_from(data, value)[0]
    pos, ts = value + 4, None
    while pos < end:
        tag, vr, length, value = _element(data, pos, True)
        if tag == 0x00020010:
            ts = data[value : value + length].rstrip(b"\0 ").decode("ascii")
        pos = value + length
    return (ts, end) if ts else None


def _walkable(ts: str) -> bool:
    """Little endian, not deflated: element headers can be read where they lie."""
    return (
        ts in (EXPLICIT_LE, IMPLICIT_LE)
        or ts.startswith("1.2.840.10008.1.2.4.")
        or ts == "1.2.840.10008.1.2.5"
    )


def scan(data: bytes) -> PixelLayout | None:
    """Where Pixel Data lies and the Image Pixel attributes, or None (use pydicom)."""
    try:
        found_meta = meta(data)
        if found_meta is None:
            return None
        ts, pos = found_meta
        if not _walkable(ts):
            return None  # deflated, big endian, private: let pydicom handle them
        explicit = ts != IMPLICIT_LE
        found: dict[str, int | str] = {}
        size = len(data)
        while pos < size:
            tag, vr, length, value = _element(data, pos, explicit)
            if tag == PIXEL_DATA:
                return _layout(ts, value, length, found)
            if tag > PIXEL_DATA:
                return None
            if tag in _US and length == 2:
                found[_US[tag]] = _U16.unpack_from(data, value)[0]
            elif tag in _TEXT and length != UNDEFINED:
                found[_TEXT[tag]] = data[value : value + length].rstrip(b"\0 ").decode("ascii")
            pos = _after(data, vr, length, value, explicit, 0)
        return None
    except (_Unsupported, struct.error, UnicodeDecodeError, ValueError):
        return None


def text_values(data: bytes, tags: frozenset[int]) -> dict[int, str] | None:
    """Top-level text values of ``tags`` (File Meta ones included), or None when the
    header walk cannot be used. Stops at the largest wanted tag."""
    try:
        found_meta = meta(data)
        if found_meta is None:
            return None
        ts, end = found_meta
        if not _walkable(ts):
            return None
        found: dict[int, str] = {}
        pos = 132
        while pos < end:  # File Meta: always explicit VR
            tag, vr, length, value = _element(data, pos, True)
            if tag in tags:
                found[tag] = data[value : value + length].rstrip(b"\0 ").decode("ascii")
            pos = value + length
        explicit = ts != IMPLICIT_LE
        last = max(tags)
        while pos < len(data):
            tag, vr, length, value = _element(data, pos, explicit)
            if tag > last:
                break
            if tag in tags and length != UNDEFINED:
                found[tag] = data[value : value + length].rstrip(b"\0 ").decode("ascii")
            pos = _after(data, vr, length, value, explicit, 0)
        return found
    except (_Unsupported, struct.error, UnicodeDecodeError, ValueError):
        return None


def _layout(ts: str, offset: int, length: int, found: dict[str, int | str]) -> PixelLayout | None:
    try:
        frames_text = str(found.get("frames", "1")).split("\\")[0].strip() or "1"
        return PixelLayout(
            transfer_syntax=ts,
            value_offset=offset,
            value_length=length,
            rows=int(found["rows"]),
            columns=int(found["columns"]),
            samples=int(found.get("samples", 1)),
            bits_allocated=int(found["bits_allocated"]),
            bits_stored=int(found.get("bits_stored", found["bits_allocated"])),
            pixel_representation=int(found.get("pixel_representation", 0)),
            photometric=str(found.get("photometric", "MONOCHROME2")),
            planar_configuration=int(found.get("planar_configuration", 0)),
            frames=max(1, int(float(frames_text))),
        )
    except (KeyError, ValueError):
        return None


def fragments(data: bytes, offset: int) -> tuple[list[int], list[tuple[int, int]]] | None:
    """Basic Offset Table entries and (start, end) of each fragment of encapsulated data."""
    try:
        tag, _vr, length, value = _element(data, offset, False)
        if tag != _ITEM or length == UNDEFINED:
            return None
        table = list(struct.unpack_from(f"<{length // 4}I", data, value)) if length else []
        pos = value + length
        out: list[tuple[int, int]] = []
        while True:
            tag, _vr, length, value = _element(data, pos, False)
            if tag == _SEQ_END:
                return table, out
            if tag != _ITEM or length == UNDEFINED or value + length > len(data):
                return None
            out.append((value, value + length))
            pos = value + length
    except (_Unsupported, struct.error):
        return None


def top_level(data: bytes) -> tuple[str, list[tuple[int, bytes, int, int]]] | None:
    """(TransferSyntaxUID, every top-level element as (tag, VR, length, value offset))
    when the whole dataset walks cleanly to exactly the end of ``data``; None when
    the walker cannot be used or the data is cut short (the caller then parses with
    pydicom, which reports what is wrong)."""
    try:
        found_meta = meta(data)
        if found_meta is None:
            return None
        ts, pos = found_meta
        if not _walkable(ts):
            return None
        explicit = ts != IMPLICIT_LE
        elements = []
        size = len(data)
        while pos < size:
            tag, vr, length, value = _element(data, pos, explicit)
            if tag >> 16 == 0xFFFE:
                return None  # an item or delimiter at the top level: malformed
            pos = _after(data, vr, length, value, explicit, 0)
            if pos > size:
                return None
            elements.append((tag, vr, length, value))
        return ts, elements
    except (_Unsupported, struct.error, UnicodeDecodeError, ValueError):
        return None
