"""Bounds on what a received object may make the platform do.

Every way in checks an object before keeping it (:mod:`telerad.dicom.part10`),
and every decoder is asked before it allocates (:mod:`telerad.dicom.transcode`):

* a deflated dataset is inflated only so far: at most ``INFLATE_RATIO`` times
  its deflated size beyond ``INFLATE_FLOOR``, and never past ``INFLATE_MAX``
  (a deflate bomb is refused after that much inflating, in bounded memory);
* sequences nest at most ``MAX_SEQUENCE_DEPTH`` deep, and every item and
  element inside them lies whole within its sequence, its item and the data
  (pydicom reads sequences recursively and lazily: deeper nesting, or an item
  running past its sequence, would only fail later, when a reader opens it);
* a frame is decoded only when it has at most ``MAX_DECODED_PIXELS`` pixels and
  its codestream (JPEG, JPEG-LS, JPEG 2000) is the size Rows and Columns say:
  the decoder allocates what the codestream declares, not what the header does.

The walkers here are iterative (no recursion, whatever the depth) and read
element headers only.
"""

from __future__ import annotations

import struct
import zlib

#: Inflation of deflated datasets (PS3.5 A.5): the ratio applies beyond the floor.
INFLATE_FLOOR = 64 * 1024 * 1024
INFLATE_RATIO = 200
INFLATE_MAX = 2 * 1024 * 1024 * 1024
_INFLATE_STEP = 1024 * 1024
#: Sequences inside sequences (an SR content tree nests two levels per content item).
MAX_SEQUENCE_DEPTH = 64
#: Pixels of one decoded frame (8192 × 8192).
MAX_DECODED_PIXELS = 8192 * 8192

UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_ITEM_LE, _ITEM_BE = b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00"


class LimitExceeded(ValueError):
    """An object beyond what the platform takes; the message says which bound."""


# -- deflate -----------------------------------------------------------------------
def inflate_limit(deflated_size: int) -> int:
    """The most bytes a deflated dataset of ``deflated_size`` bytes may inflate to."""
    return min(INFLATE_MAX, INFLATE_FLOOR + INFLATE_RATIO * deflated_size)


def inflate(stream: bytes | memoryview) -> bytes:
    """The inflated dataset of a Deflated Explicit VR Little Endian object.

    The stream is inflated twice: once counting, in steps of a MiB that are
    dropped at once, to refuse a bomb or a cut stream before anything is kept;
    then for real, into a buffer of the known size."""
    limit = inflate_limit(len(stream))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    size, pending = 0, stream
    try:
        while not inflater.eof:
            out = len(inflater.decompress(pending, _INFLATE_STEP))
            size += out
            if size > limit:
                raise LimitExceeded(
                    f"the deflated dataset inflates past {limit} bytes "
                    f"({len(stream)} deflated; at most {INFLATE_RATIO} times that "
                    f"beyond {INFLATE_FLOOR} bytes)"
                )
            pending = inflater.unconsumed_tail
            if not out and not pending:
                raise LimitExceeded("truncated: the deflated dataset ends before its stream does")
    except zlib.error as exc:
        raise LimitExceeded(f"malformed deflated dataset: {exc}") from exc
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(stream, size)


# -- sequences ---------------------------------------------------------------------
_DATASET, _SEQUENCE, _FRAGMENTS = 0, 1, 2


def check_dataset(data: bytes, start: int, explicit: bool, little: bool = True) -> None:
    """Walk the whole dataset from ``start`` to the end of ``data``: raise
    :class:`LimitExceeded` for nesting too deep or anything past its container."""
    _walk(data, start, [(_DATASET, len(data), explicit)], little, 0)


def check_value(data: bytes, tag: int, vr: bytes, length: int, offset: int, explicit: bool) -> None:
    """Walk one top-level value that holds items (a sequence or encapsulated Pixel
    Data) of a little-endian dataset; raise :class:`LimitExceeded` as above."""
    end = None if length == UNDEFINED else offset + length
    if end is not None and end > len(data):
        raise LimitExceeded(f"truncated: a sequence declares {length} bytes past the end")
    kind = _FRAGMENTS if tag == _PIXEL_DATA or vr in (b"OB", b"OW") else _SEQUENCE
    _walk(data, offset, [(kind, end, explicit and vr != b"UN")], True, 1)


def holds_items(data: bytes, vr: bytes, length: int, offset: int, explicit: bool) -> bool:
    """True for a top-level little-endian value whose content is items (see check_value)."""
    if vr == b"SQ" or length == UNDEFINED:
        return True
    if explicit and vr != b"UN":
        return False
    return length >= 8 and data[offset : offset + 4] == _ITEM_LE


def _walk(
    data: bytes,
    pos: int,
    stack: list[tuple[int, int | None, bool]],
    little: bool,
    depth: int,
) -> None:
    """The iterative walk: ``stack`` holds (kind, end or None for undefined, explicit)."""
    size = len(data)
    tag_format = "<HH" if little else ">HH"
    u16, u32 = ("<H", "<I") if little else (">H", ">I")
    item_prefix = _ITEM_LE if little else _ITEM_BE
    while stack:
        kind, end, explicit = stack[-1]
        if end is not None and pos >= end:
            if pos > end:
                raise LimitExceeded("malformed: an element runs past the end of its item")
            stack.pop()
            depth -= kind == _SEQUENCE
            continue
        if pos + 8 > size:
            raise LimitExceeded("truncated: a sequence or item has no end in the data")
        group, element = struct.unpack_from(tag_format, data, pos)
        tag = group << 16 | element
        if kind != _DATASET or group == 0xFFFE:
            length = struct.unpack_from(u32, data, pos + 4)[0]
            value, vr = pos + 8, b""
        elif explicit:
            vr = data[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > size:
                    raise LimitExceeded("truncated: an element header is cut short")
                length, value = struct.unpack_from(u32, data, pos + 8)[0], pos + 12
            else:
                length, value = struct.unpack_from(u16, data, pos + 6)[0], pos + 8
        else:
            length, value, vr = struct.unpack_from(u32, data, pos + 4)[0], pos + 8, b""
        if length != UNDEFINED and value + length > (size if end is None else end):
            where = "the data" if value + length > size else "its sequence or item"
            raise LimitExceeded(
                f"truncated: ({group:04X},{element:04X}) declares {length} bytes "
                f"past the end of {where}"
            )
        if kind != _DATASET:
            if tag == _SEQ_END and end is None:
                stack.pop()
                depth -= kind == _SEQUENCE
                pos = value
            elif tag != _ITEM:
                raise LimitExceeded(f"malformed: ({group:04X},{element:04X}) where an item belongs")
            elif kind == _FRAGMENTS:
                if length == UNDEFINED:
                    raise LimitExceeded("malformed: a Pixel Data fragment of undefined length")
                pos = value + length
            else:
                stack.append((_DATASET, None if length == UNDEFINED else value + length, explicit))
                pos = value
            continue
        if tag == _ITEM_END and end is None and len(stack) > 1:
            stack.pop()
            pos = value
            continue
        is_sequence = vr == b"SQ" or (
            (vr == b"UN" or not explicit)
            and (
                (length == UNDEFINED and tag != _PIXEL_DATA)
                or (length >= 8 and length != UNDEFINED and data[value : value + 4] == item_prefix)
            )
        )
        if is_sequence:
            depth += 1
            if depth > MAX_SEQUENCE_DEPTH:
                raise LimitExceeded(f"sequences nest deeper than {MAX_SEQUENCE_DEPTH} levels")
            inner = explicit and vr != b"UN"  # UN content is Implicit VR (PS3.5 6.2.2)
            stack.append((_SEQUENCE, None if length == UNDEFINED else value + length, inner))
            pos = value
        elif length == UNDEFINED:
            stack.append((_FRAGMENTS, None, explicit))
            pos = value
        else:
            pos = value + length


# -- pixels ------------------------------------------------------------------------
def check_frame_size(rows: int, columns: int) -> None:
    """Refuse to decode a frame with more than MAX_DECODED_PIXELS pixels."""
    if rows * columns > MAX_DECODED_PIXELS:
        raise LimitExceeded(
            f"a frame of {columns}×{rows} pixels is larger than the "
            f"{MAX_DECODED_PIXELS} pixels decoded at most"
        )


#: JPEG start-of-frame markers (ISO 10918-1 B.1.1.3) and JPEG-LS's SOF55 (ISO 14495-1).
_SOF = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC} | {0xF7})


def codestream_size(frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG, JPEG-LS or JPEG 2000 codestream declares, or None
    when the frame is none of these (RLE, native) or its header cannot be read."""
    if frame[4:8] == b"jP  ":  # a JP2 file around the codestream (ISO 15444-1 I.5.1)
        frame = frame[max(0, frame.find(b"\xff\x4f\xff\x51", 0, 65536)) :]
    if frame[:4] == b"\xff\x4f\xff\x51" and len(frame) >= 24:  # SOC, SIZ (ISO 15444-1 A.5.1)
        xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", frame, 8)
        return max(0, ysiz - yosiz), max(0, xsiz - xosiz)
    if frame[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(frame):
        if frame[pos] != 0xFF:
            return None
        marker = frame[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack_from(">H", frame, pos + 2)
        if marker in _SOF:
            if pos + 9 > len(frame):
                return None
            rows, columns = struct.unpack_from(">HH", frame, pos + 5)
            return rows, columns
        pos += 2 + length
    return None


def check_codestream(frame: bytes, rows: int, columns: int) -> None:
    """Refuse a compressed frame whose codestream is not the size Rows and Columns say."""
    declared = codestream_size(frame)
    if declared is not None and declared != (rows, columns):
        raise LimitExceeded(
            f"the frame's codestream is {declared[1]}×{declared[0]} pixels, "
            f"not the {columns}×{rows} of Rows and Columns"
        )
