"""DICOM Part 10 files: building them from network datasets, reading their headers, checking them.

One reader for the whole platform: every way in (DIMSE, STOW-RS, import) ends up
here, so every way in applies the same checks.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

from telerad.dicom import limits, pixelscan
from telerad.domain.model import InstanceHeader
from telerad.domain.uids import InvalidUID, check_uid

PREAMBLE = b"\x00" * 128 + b"DICM"
UNDEFINED_LENGTH = 0xFFFFFFFF
IMPLEMENTATION_VERSION = "TELERAD_010"
#: Values above this size are not copied while checking an instance.
DEFER_SIZE = 16384
_PIXEL_DATA = Tag(0x7FE0, 0x0010)
#: (FFFE,E0DD) little and big endian.
_SEQUENCE_DELIMITERS = (b"\xfe\xff\xdd\xe0" + bytes(4), b"\xff\xfe\xe0\xdd" + bytes(4))
_TAGS: dict[str, BaseTag] = {
    keyword: Tag(keyword)
    for keyword in [
        "PatientID",
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
        "InstitutionName",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "SeriesTime",
        "BodyPartExamined",
        "InstanceNumber",
        "Rows",
        "Columns",
        "NumberOfFrames",
        "SpecificCharacterSet",
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "BitsAllocated",
        "SamplesPerPixel",
        "PhotometricInterpretation",
    ]
}


class InvalidInstance(ValueError):
    """Bytes that are not a complete, well-formed DICOM instance; the message says why."""


def _short_element(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _ui(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _text_value(value: str) -> bytes:
    raw = value.encode("ascii", "replace")
    return raw + b" " if len(raw) % 2 else raw


def file_meta_bytes(
    transfer_syntax_uid: str,
    sop_class_uid: str,
    sop_instance_uid: str,
    source_ae: str | None = None,
) -> bytes:
    """File Meta Information (PS3.10 7.1), encoded directly: the same bytes pydicom
    writes, at a fraction of the cost on the C-STORE hot path."""
    body = (
        struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2)
        + b"\x00\x01"
        + _short_element(0x0002, b"UI", _ui(sop_class_uid))
        + _short_element(0x0003, b"UI", _ui(sop_instance_uid))
        + _short_element(0x0010, b"UI", _ui(transfer_syntax_uid))
        + _short_element(0x0012, b"UI", _ui(PYDICOM_IMPLEMENTATION_UID))
        + _short_element(0x0013, b"SH", _text_value(IMPLEMENTATION_VERSION))
    )
    if source_ae:
        body += _short_element(0x0016, b"AE", _text_value(source_ae.strip()[:16]))
    return struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body)) + body


def build_part10(
    dataset_bytes: bytes,
    transfer_syntax_uid: str,
    sop_class_uid: str,
    sop_instance_uid: str,
    source_ae: str | None = None,
) -> bytes:
    """Wrap a dataset as received on the network into Part 10 file bytes (unchanged dataset)."""
    meta = file_meta_bytes(transfer_syntax_uid, sop_class_uid, sop_instance_uid, source_ae)
    return b"".join((PREAMBLE, meta, dataset_bytes))


def normalise_preamble(data: bytes) -> bytes:
    """Part 10 bytes whose 128-byte preamble is zeros, followed by 'DICM' (PS3.10 7.1).

    The preamble is free for applications (a TIFF header, say), and so for an
    executable header that makes the file a program too: what is kept is zeroed,
    as the platform's own files are. File Meta without a preamble (as
    dicomweb-client writes a plain Dataset) gets one. Anything else is returned
    as it is, for the checks to refuse."""
    if data[128:132] == b"DICM":
        if data[:128] == PREAMBLE[:128]:
            return data
        return b"".join((PREAMBLE[:128], memoryview(data)[128:]))
    if data[:2] == b"\x02\x00" and data[4:6].isalpha():
        return PREAMBLE + data
    return data


def read(data: bytes, stop_before_pixels: bool = False, defer_size: int | None = None) -> Dataset:
    """Parse Part 10 bytes (a missing preamble is tolerated, a missing meta is not).

    With ``defer_size``, larger values (pixel data) are left unread: their
    offsets and lengths are known, which is all the checks need."""
    try:
        return dcmread(
            io.BytesIO(data), stop_before_pixels=stop_before_pixels, defer_size=defer_size
        )
    except InvalidDicomError as exc:
        raise InvalidInstance(f"not a DICOM file: {exc}") from exc
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise InvalidInstance(f"malformed DICOM data: {exc}") from exc


def _check_complete(ds: Dataset, data: bytes) -> None:
    """Raise unless every element lies whole inside the data and nothing is left over
    (a truncated file, or a cut-off element pydicom would silently drop)."""
    total = len(data)
    last_end = 0
    # A deflated object is checked in its inflated form (see _plain), where
    # offsets are those of the data; without a preamble it is never inflated.
    offsets_comparable = ds.file_meta.TransferSyntaxUID != DeflatedExplicitVRLittleEndian
    if not offsets_comparable:
        raise InvalidInstance("a deflated dataset needs the preamble and File Meta")
    for elem in ds._dict.values():
        if not isinstance(elem, RawDataElement):
            continue
        where = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.length == UNDEFINED_LENGTH:
            # Encapsulated pixel data and sequences end with a Sequence Delimitation
            # Item; pydicom reads to the end of the data when it is missing.
            if not offsets_comparable:
                continue
            if isinstance(elem.value, bytes):
                end = elem.value_tell + len(elem.value)
                ends = end + 8 if data[end : end + 8] in _SEQUENCE_DELIMITERS else None
            else:  # deferred: walk its items to the delimiter
                ends = _items_end(data, elem.value_tell, elem.is_little_endian)
            if ends is None:
                raise InvalidInstance(f"truncated: element {where} has no sequence delimiter")
            last_end = max(last_end, ends)
            continue
        if elem.value is not None:
            present = len(elem.value)
        elif offsets_comparable:  # deferred (large): it must fit in what was received
            present = max(0, min(elem.length, total - elem.value_tell))
        else:
            continue
        if present < elem.length:
            raise InvalidInstance(
                f"truncated: element {where} declares {elem.length} bytes "
                f"but only {present} are present"
            )
        last_end = max(last_end, elem.value_tell + elem.length)
    # Only when the last element is still raw (pydicom converts some, e.g.
    # sequences, on reading; their offsets are gone) can its end be compared.
    last = ds._dict[max(ds._dict)] if ds._dict else None
    if offsets_comparable and isinstance(last, RawDataElement) and 0 < last_end < total:
        raise InvalidInstance(
            f"truncated: {total - last_end} bytes at the end are not a complete element"
        )
    pixel = ds._dict.get(_PIXEL_DATA)
    if (
        isinstance(pixel, RawDataElement)
        and pixel.length != UNDEFINED_LENGTH
        and not ds.file_meta.TransferSyntaxUID.is_encapsulated
    ):
        expected = _native_pixel_bytes(ds)
        if expected is not None and pixel.length < expected:
            raise InvalidInstance(
                f"truncated: Pixel Data holds {pixel.length} bytes, the image needs {expected}"
            )


def _items_end(data: bytes, offset: int, little_endian: bool) -> int | None:
    """Where the items from ``offset`` end with their Sequence Delimitation Item,
    or None when the data ends first. An item of undefined length is not walked:
    the rest of the data is then taken as the sequence."""
    fmt = "<HHI" if little_endian else ">HHI"
    while offset + 8 <= len(data):
        group, element, length = struct.unpack_from(fmt, data, offset)
        if (group, element) == (0xFFFE, 0xE0DD):
            return offset + 8
        if (group, element) != (0xFFFE, 0xE000):
            return None
        if length == UNDEFINED_LENGTH:
            return len(data)
        offset += 8 + length
    return None


def _native_pixel_bytes(ds: Dataset) -> int | None:
    return _native_size(
        _int(ds, "Rows"),
        _int(ds, "Columns"),
        _int(ds, "BitsAllocated"),
        _int(ds, "SamplesPerPixel"),
        _int(ds, "NumberOfFrames"),
        _text(ds, "PhotometricInterpretation"),
    )


def _native_size(
    rows: int | None,
    cols: int | None,
    bits: int | None,
    samples: int | None,
    frames: int | None,
    photometric: str,
) -> int | None:
    """Bytes of native (uncompressed) pixel data the image attributes call for."""
    if not rows or not cols or not bits:
        return None
    spp = samples or 1
    if photometric == "YBR_FULL_422":
        spp = 2  # chroma subsampled two to one: two values a pixel on average
    return (rows * cols * bits * spp * (frames or 1) + 7) // 8


def _text(ds: Dataset, keyword: str) -> str:
    """A text attribute as str. Plain ASCII values are decoded straight from the raw
    bytes (pydicom's general conversion is the slowest part of ingest); anything
    else goes through pydicom so character sets are honoured."""
    tag = _TAGS[keyword]
    elem = ds._dict.get(tag)
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
        raw = elem.value
        if raw.isascii():
            return raw.decode("ascii").strip(" \x00")
    value: Any = ds[tag].value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    tag = _TAGS[keyword]
    elem = ds._dict.get(tag)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement) and elem.VR == "IS" and isinstance(elem.value, bytes):
        try:
            return int(elem.value.strip(b" \x00") or b"x")
        except ValueError:
            return None
    value = ds[tag].value
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def header_of(ds: Dataset) -> InstanceHeader:
    """The index's view of a dataset, after checking its identifying UIDs."""
    return _make_header(
        lambda keyword: _text(ds, keyword),
        lambda keyword: _int(ds, keyword),
        ds.file_meta.get("TransferSyntaxUID"),
    )


def _make_header(
    text: Callable[[str], str], integer: Callable[[str], int | None], transfer_syntax: object
) -> InstanceHeader:
    try:
        sop_class = check_uid("SOPClassUID", text("SOPClassUID"))
        sop_instance = check_uid("SOPInstanceUID", text("SOPInstanceUID"))
        study = check_uid("StudyInstanceUID", text("StudyInstanceUID"))
        series = check_uid("SeriesInstanceUID", text("SeriesInstanceUID"))
        ts = check_uid("TransferSyntaxUID", transfer_syntax)
    except InvalidUID as exc:
        raise InvalidInstance(str(exc)) from exc
    except Exception as exc:
        raise InvalidInstance(f"malformed identifying attributes: {exc}") from exc
    # A MediaStorageSOPInstanceUID that disagrees with the dataset is common in
    # real files; the dataset's own SOPInstanceUID is the one the index uses.
    try:
        return InstanceHeader(
            StudyInstanceUID=study,
            SeriesInstanceUID=series,
            SOPInstanceUID=sop_instance,
            SOPClassUID=sop_class,
            TransferSyntaxUID=ts,
            PatientID=text("PatientID")[:64],
            PatientName=text("PatientName")[:324],
            PatientBirthDate=text("PatientBirthDate")[:8],
            PatientSex=text("PatientSex")[:16],
            StudyDate=text("StudyDate")[:8],
            StudyTime=text("StudyTime")[:16],
            AccessionNumber=text("AccessionNumber")[:16],
            StudyID=text("StudyID")[:16],
            StudyDescription=text("StudyDescription")[:64],
            ReferringPhysicianName=text("ReferringPhysicianName")[:324],
            InstitutionName=text("InstitutionName")[:64],
            Modality=text("Modality")[:16],
            SeriesNumber=integer("SeriesNumber"),
            SeriesDescription=text("SeriesDescription")[:64],
            SeriesDate=text("SeriesDate")[:8],
            SeriesTime=text("SeriesTime")[:16],
            BodyPartExamined=text("BodyPartExamined")[:16],
            InstanceNumber=integer("InstanceNumber"),
            Rows=integer("Rows"),
            Columns=integer("Columns"),
            NumberOfFrames=integer("NumberOfFrames"),
            SpecificCharacterSet=text("SpecificCharacterSet")[:128],
        )
    except InvalidInstance:
        raise
    except Exception as exc:  # undecodable values (bad character sets, bad numbers)
        raise InvalidInstance(f"cannot read attribute values: {exc}") from exc


def _plain(data: bytes) -> tuple[bytes, str | None]:
    """The bytes to check, and the stored transfer syntax when they differ from it.

    A deflated dataset is inflated (within :func:`limits.inflate`'s bounds) and
    checked as the Explicit VR Little Endian object it is underneath, element by
    element like any other; only its transfer syntax is reported as stored."""
    try:
        found = pixelscan.meta(data)
    except (struct.error, UnicodeDecodeError, ValueError):
        return data, None  # pydicom reports what is wrong with the File Meta
    if found is None or found[0] != DeflatedExplicitVRLittleEndian:
        return data, None
    ts, start = found
    at = data.find(b"\x02\x00\x10\x00UI", 132, start)
    if at < 0:
        raise InvalidInstance("no File Meta Information with a TransferSyntaxUID")
    (length,) = struct.unpack_from("<H", data, at + 6)
    value = at + 8
    try:
        inflated = limits.inflate(memoryview(data)[start:])
    except limits.LimitExceeded as exc:
        raise InvalidInstance(str(exc)) from exc
    # Same length: trailing NULs pad a UID value (PS3.5 9.1), so no offset moves.
    explicit = b"1.2.840.10008.1.2.1".ljust(length, b"\x00")
    plain = b"".join((data[:value], explicit, data[value + length : start], inflated))
    return plain, ts


def _check_structure(data: bytes) -> None:
    """Nesting and lengths inside sequences (:func:`limits.check_dataset`), when the
    dataset can be found; pydicom then reads nothing deeper than allowed."""
    try:
        found = pixelscan.meta(data)
    except (struct.error, UnicodeDecodeError, ValueError):
        return
    if found is None:
        return
    ts, start = found
    # pydicom reads a dataset in the VR encoding its first element shows, whatever
    # the transfer syntax says (a known quirk of some writers): walk it the same way.
    vr = data[start + 4 : start + 6]
    explicit = vr.isalpha() and vr.isupper() if len(vr) == 2 else ts != ImplicitVRLittleEndian
    try:
        limits.check_dataset(data, start, explicit, ts != ExplicitVRBigEndian)
    except limits.LimitExceeded as exc:
        raise InvalidInstance(str(exc)) from exc


def parse_instance(data: bytes) -> tuple[Dataset, InstanceHeader]:
    """Read, check completeness and extract the header of Part 10 bytes.

    A deflated object's dataset is read from its inflated form."""
    return _parse(*_plain(normalise_preamble(data)))


def _parse(plain: bytes, stored_ts: str | None) -> tuple[Dataset, InstanceHeader]:
    _check_structure(plain)
    ds = read(plain, defer_size=DEFER_SIZE)
    if "TransferSyntaxUID" not in ds.file_meta:
        raise InvalidInstance("no File Meta Information with a TransferSyntaxUID")
    _check_complete(ds, plain)
    header = header_of(ds)
    if stored_ts is not None:
        ds.file_meta.TransferSyntaxUID = UID(stored_ts)
        header = replace(header, TransferSyntaxUID=stored_ts)
    return ds, header


_BY_TAG: dict[int, str] = {int(tag): keyword for keyword, tag in _TAGS.items()}
_US_KEYWORDS = frozenset({"Rows", "Columns", "BitsAllocated", "SamplesPerPixel"})
#: VRs of elements that may hold items without saying so (implicit VR, UN).
_UNTYPED = (b"", b"UN")
_ENCAPSULATED_OR_DEFLATED = ("1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5")


def check_instance(data: bytes) -> InstanceHeader:
    """What :func:`parse_instance` checks and returns, without building a Dataset when
    a walk of the element headers can vouch for the data (little endian, ASCII
    values, every element whole and nothing left over); otherwise through pydicom."""
    plain, stored_ts = _plain(normalise_preamble(data))
    fast = _walked_header(plain)
    if fast is None:
        return _parse(plain, stored_ts)[1]
    return fast if stored_ts is None else replace(fast, TransferSyntaxUID=stored_ts)


def _walked_header(data: bytes) -> InstanceHeader | None:
    walked = pixelscan.top_level(data)
    if walked is None:
        return None
    ts, elements = walked
    explicit = ts != ImplicitVRLittleEndian
    texts: dict[str, str] = {}
    numbers: dict[str, int] = {}
    pixel_length: int | None = None
    for tag, vr, length, offset in elements:
        if (vr == b"SQ" or length == UNDEFINED_LENGTH or vr in _UNTYPED) and limits.holds_items(
            data, vr, length, offset, explicit
        ):
            try:
                limits.check_value(data, tag, vr, length, offset, explicit)
            except limits.LimitExceeded as exc:
                raise InvalidInstance(str(exc)) from exc
        if tag == pixelscan.PIXEL_DATA:
            pixel_length = length
            continue
        keyword = _BY_TAG.get(tag)
        if keyword is None:
            continue
        if length == UNDEFINED_LENGTH:
            return None
        raw = data[offset : offset + length]
        if keyword in _US_KEYWORDS:
            if length != 2:
                return None
            numbers[keyword] = struct.unpack("<H", raw)[0]
        elif raw.isascii():
            texts[keyword] = raw.decode("ascii").strip(" \x00")
        else:
            return None  # a character set to honour: pydicom decodes it

    def integer(keyword: str) -> int | None:
        if keyword in numbers:
            return numbers[keyword]
        try:
            return int(texts.get(keyword, "").split("\\")[0])
        except ValueError:
            return None

    if pixel_length not in (None, UNDEFINED_LENGTH) and not ts.startswith(
        _ENCAPSULATED_OR_DEFLATED
    ):
        expected = _native_size(
            integer("Rows"),
            integer("Columns"),
            integer("BitsAllocated"),
            integer("SamplesPerPixel"),
            integer("NumberOfFrames"),
            texts.get("PhotometricInterpretation", ""),
        )
        if expected is not None and (pixel_length or 0) < expected:
            return None  # pydicom's path reports it with the numbers
    return _make_header(lambda keyword: texts.get(keyword, ""), integer, ts)
