"""Palette Color images (PS3.3 C.7.6.3.1.5-6, C.7.9): the lookup tables, checked, then applied.

pydicom's ``apply_color_lut`` trusts the descriptors and expands segmented
tables recursively, so a table whose indirect segments refer back to each other
grows without end. Here every descriptor is checked against its data, a
segmented table is expanded iteratively and never past 65536 entries, and an
indirect segment may only copy direct ones (PS3.3 C.7.9.2.3): a palette that
breaks any of this is refused with the reason, never half applied.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset

MAX_ENTRIES = 65536
_COLOURS = ("Red", "Green", "Blue")


class PaletteError(ValueError):
    """A palette that cannot be applied as its descriptors say; the message says why."""


def _descriptor(ds: Dataset, colour: str) -> tuple[int, int, int]:
    value: Any = ds.get(f"{colour}PaletteColorLookupTableDescriptor")
    try:
        entries, first, bits = (int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise PaletteError(f"the {colour} palette descriptor is not three numbers") from exc
    entries = entries or MAX_ENTRIES  # 0 means 65536 (PS3.3 C.7.6.3.1.5)
    if not 0 < entries <= MAX_ENTRIES:
        raise PaletteError(f"the {colour} palette has {entries} entries (1 to 65536)")
    if not -32768 <= first <= 65535:
        raise PaletteError(f"the {colour} palette's first mapped value {first} is out of range")
    if bits not in (8, 16):
        raise PaletteError(f"the {colour} palette has {bits}-bit entries (8 or 16)")
    return entries, first, bits


def _words(raw: bytes, size: int, little: bool) -> np.ndarray:
    dtype = np.dtype("u1") if size == 1 else np.dtype("<u2" if little else ">u2")
    return np.frombuffer(raw[: len(raw) - len(raw) % size], dtype=dtype)


def _table(ds: Dataset, colour: str, entries: int, bits: int, little: bool) -> np.ndarray:
    raw = ds.get(f"{colour}PaletteColorLookupTableData")
    if isinstance(raw, (bytes, bytearray)):
        size = 1 if len(raw) in (entries, entries + 1) and bits == 8 else 2
        if len(raw) // size != entries:
            raise PaletteError(
                f"the {colour} palette's data holds {len(raw) // size} entries, "
                f"its descriptor says {entries}"
            )
        # pydicom hands OW values over little endian whatever the file's order.
        return _words(bytes(raw), size, True).astype(np.int64)
    segmented = ds.get(f"Segmented{colour}PaletteColorLookupTableData")
    if isinstance(segmented, (bytes, bytearray)):
        words = _words(bytes(segmented), bits // 8, little)
        return expand_segmented(words.tolist(), bits // 8, little)[:entries]
    raise PaletteError(f"the {colour} palette has no lookup table data")


def expand_segmented(data: list[int], size: int, little: bool) -> np.ndarray:
    """A segmented table (PS3.3 C.7.9.2) expanded; refused past MAX_ENTRIES entries."""
    out: list[int] = []
    # (offset, segments to read or None for all, inside an indirect copy); a stack,
    # so that what an indirect segment copies comes before what follows it.
    stack: list[tuple[int, int | None, bool]] = [(0, None, False)]
    steps = 0
    while stack:
        offset, count, copied = stack.pop()
        read = 0
        while offset + 1 < len(data) and (count is None or read < count):
            steps += 1
            if steps > MAX_ENTRIES:
                raise PaletteError(f"the segmented palette has more than {MAX_ENTRIES} segments")
            opcode, length = data[offset], data[offset + 1]
            if opcode == 0:  # discrete
                out.extend(data[offset + 2 : offset + 2 + length])
                offset += 2 + length
            elif opcode == 1:  # linear, from the last value
                if not out or offset + 2 >= len(data):
                    raise PaletteError("a linear palette segment has no value to start from")
                start, end = out[-1], data[offset + 2]
                out.extend(np.rint(np.linspace(start, end, length + 1)[1:]).astype(int).tolist())
                offset += 3
            elif opcode == 2:  # indirect: copy `length` segments from an offset
                if copied or not out:
                    raise PaletteError("an indirect palette segment refers to another one")
                words = data[offset + 2 : offset + (6 if size == 1 else 4)]
                target = _indirect_offset(words, size, little)
                offset += 6 if size == 1 else 4
                stack.append((offset, None, False))  # only the top level copies
                stack.append((target, length, True))
                break
            else:
                raise PaletteError(f"unknown palette segment type {opcode}")
            read += 1
            if len(out) > MAX_ENTRIES:
                raise PaletteError(f"the segmented palette expands past {MAX_ENTRIES} entries")
    if not out:
        raise PaletteError("the segmented palette is empty")
    return np.asarray(out, dtype=np.int64)


def _indirect_offset(words: list[int], size: int, little: bool) -> int:
    """The segment offset of an indirect segment, as pydicom reads it."""
    if size == 1:
        if len(words) < 4:
            raise PaletteError("an indirect palette segment is cut short")
        a, b, c, d = (words[i] for i in ((3, 2, 1, 0) if little else (2, 3, 0, 1)))
        return (a << 8 | b) << 16 | (c << 8 | d)
    if len(words) < 2:
        raise PaletteError("an indirect palette segment is cut short")
    return int(words[1]) << 16 | int(words[0])


def apply_palette(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Stored values → 8-bit RGB through the object's palette. Values below the
    first mapped one take the first entry, values above the last the last one."""
    encoding = getattr(ds, "original_encoding", (None, None))
    little = encoding[1] is not False
    channels = []
    for colour in _COLOURS:
        entries, first, bits = _descriptor(ds, colour)
        table = _table(ds, colour, entries, bits, little)
        if bits == 16 or int(table.max(initial=0)) > 255:
            table = table >> 8
        index = np.clip(arr.astype(np.int64) - first, 0, len(table) - 1)
        channels.append(table[index].astype(np.uint8))
    return np.stack(channels, axis=-1)
