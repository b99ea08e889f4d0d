"""The DICOM JSON Model (PS3.18 F.2): QIDO-RS results, instance metadata, STOW-RS responses.

QIDO-RS results are written by hand from index rows (no Dataset round trip).
Instance metadata comes from the parsed object once and is cached as text; its
BulkDataURIs are stored relative (``studies/…``) and made absolute per request
by :func:`absolutise`, so the cache does not depend on the host name a client used.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from telerad.domain.model import Level
from telerad.domain.query import ATTRIBUTES

RETRIEVE_URL = "00081190"
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
#: Binary values longer than this are sent as BulkDataURI; shorter ones inline.
BULK_THRESHOLD = 1024
_BULK_KEY = b'"BulkDataURI":"'


def _person_name(value: str) -> dict[str, str]:
    groups = value.split("=")
    out = {}
    for name, text in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
        if text:
            out[name] = text
    return out


def _value(vr: str, value: object) -> dict[str, Any]:
    if value is None or value == "" or value == []:
        return {"vr": vr}
    if isinstance(value, list):
        return {"vr": vr, "Value": value}
    if vr in ("IS", "US", "SS", "UL", "SL"):
        try:
            return {"vr": vr, "Value": [int(value)]}  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return {"vr": vr}
    text = str(value)
    if vr == "PN":
        names = [_person_name(v) for v in text.split("\\")]
        return {"vr": vr, "Value": [n if n else None for n in names]}
    if "\\" in text and vr not in ("UT", "ST", "LT", "UR"):
        return {"vr": vr, "Value": [v or None for v in text.split("\\")]}
    return {"vr": vr, "Value": [text]}


def _retrieve_url(level: Level, row: dict[str, object], base: str) -> str | None:
    study = row.get("StudyInstanceUID")
    if level is Level.PATIENT or not study:
        return None
    url = f"{base}/studies/{study}"
    if level in (Level.SERIES, Level.IMAGE):
        series = row.get("SeriesInstanceUID")
        if not series:
            return None
        url += f"/series/{series}"
    if level is Level.IMAGE:
        sop = row.get("SOPInstanceUID")
        if not sop:
            return None
        url += f"/instances/{sop}"
    return url


def _converter(vr: str) -> Callable[[object], dict[str, Any]]:
    """A value → DICOM JSON attribute function specialised for one VR (the QIDO hot loop)."""
    empty = {"vr": vr}
    if vr in ("IS", "US", "SS", "UL", "SL"):

        def number(value: object) -> dict[str, Any]:
            if type(value) is int:
                return {"vr": vr, "Value": [value]}
            return _value(vr, value)

        return number
    if vr == "PN":

        def person(value: object) -> dict[str, Any]:
            if not value:
                return empty
            if type(value) is str and "=" not in value and "\\" not in value:
                return {"vr": "PN", "Value": [{"Alphabetic": value}]}
            return _value(vr, value)

        return person

    def text(value: object) -> dict[str, Any]:
        if not value:
            return empty
        if type(value) is str and "\\" not in value:
            return {"vr": vr, "Value": [value]}
        return _value(vr, value)

    return text


def qido_results(
    level: Level, keys: Sequence[str], rows: Iterable[dict[str, object]], base: str
) -> bytes:
    """Index rows → ``application/dicom+json`` bytes, attributes in tag order."""
    columns = sorted((f"{ATTRIBUTES[k].tag:08X}", k, _converter(ATTRIBUTES[k].vr)) for k in keys)
    before = [c for c in columns if c[0] < RETRIEVE_URL]
    after = [c for c in columns if c[0] > RETRIEVE_URL]
    out = []
    for row in rows:
        get = row.get
        item = {tag: convert(get(keyword)) for tag, keyword, convert in before}
        url = _retrieve_url(level, row, base)
        if url:
            item[RETRIEVE_URL] = {"vr": "UR", "Value": [url]}
        for tag, keyword, convert in after:
            item[tag] = convert(get(keyword))
        out.append(item)
    return orjson.dumps(out)


# -- instance metadata ---------------------------------------------------------------
def _tag(tag: BaseTag) -> str:
    return f"{int(tag):08X}"


def _element(elem: DataElement, path: str) -> dict[str, Any] | None:
    vr = elem.VR
    if vr == "SQ":
        prefix = f"{path}{_tag(elem.tag)}/"
        items = [dataset_json(item, f"{prefix}{i}/") for i, item in enumerate(elem.value or [])]
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
    if vr in _BINARY_VRS or int(elem.tag) in _PIXEL_TAGS:
        value = elem.value
        if value is None or len(value) == 0:
            return {"vr": vr}
        if int(elem.tag) in _PIXEL_TAGS or len(value) > BULK_THRESHOLD:
            return {"vr": vr, "BulkDataURI": path + _tag(elem.tag)}
        if isinstance(value, (bytes, bytearray)):
            return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}
        return {"vr": vr}
    try:
        return elem.to_json_dict(None, BULK_THRESHOLD)
    except Exception:  # an undecodable value: keep the attribute, drop the value
        return {"vr": vr}


# The fast path: raw little-endian values of common VRs straight to JSON, without
# pydicom's per-element conversion (most of a cold metadata build). Anything it
# does not handle (other character sets, big endian, private tags in implicit VR,
# odd values) goes through pydicom's own conversion above.
_CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI", "UR"})
_SINGLE_VRS = frozenset({"LT", "ST", "UT", "UR"})
_STRUCTS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}


def _codec(ds: Dataset) -> str | None:
    value = ds.get("SpecificCharacterSet", "")
    if not isinstance(value, str):
        return None  # several character sets (ISO 2022 code extensions)
    return _CODECS.get(value.strip())


def _fast(tag: int, vr: str, raw: bytes, codec: str | None) -> dict[str, Any] | None:
    if not raw:
        return {"vr": vr}
    if vr in _ASCII_VRS or vr in _CHARSET_VRS or vr in ("DS", "IS"):
        if vr in _CHARSET_VRS:
            if codec is None:
                return None
            text = raw.decode(codec)
        else:
            text = raw.decode("ascii")
        text = text.rstrip(" \0") if vr != "UI" else text.rstrip("\0").strip()
        if not text:
            return {"vr": vr}
        values: list[Any] = [text] if vr in _SINGLE_VRS else text.split("\\")
        if vr == "PN":
            out = []
            for v in values:
                groups = v.split("=")
                name = {"Alphabetic": groups[0]}
                if len(groups) > 1:
                    name["Ideographic"] = groups[1]
                if len(groups) > 2:
                    name["Phonetic"] = groups[2]
                out.append(name)
            return {"vr": vr, "Value": out}
        if vr in ("DS", "IS"):
            values = [float(v) if vr == "DS" else int(v) for v in values]
        elif vr not in _SINGLE_VRS:
            values = [
                v.strip() if vr in ("CS", "DA", "TM", "DT", "AS", "AE") else v for v in values
            ]
        return {"vr": vr, "Value": values}
    code = _STRUCTS.get(vr)
    if code is not None:
        size = struct.calcsize(code)
        if len(raw) % size:
            return None
        return {"vr": vr, "Value": list(struct.unpack(f"<{len(raw) // size}{code}", raw))}
    if vr == "AT":
        if len(raw) % 4:
            return None
        pairs = struct.unpack(f"<{len(raw) // 2}H", raw)
        return {
            "vr": vr,
            "Value": [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)],
        }
    return None


def dataset_json(ds: Dataset, path: str) -> dict[str, Any]:
    """A dataset as DICOM JSON; bulk data as ``path + tag`` URIs (``path`` ends in '/')."""
    out: dict[str, Any] = {}
    codec = _codec(ds)
    for raw in ds.elements():
        tag = int(raw.tag)
        if tag & 0xFFFF == 0 or tag == 0xFFFCFFFC:  # group lengths, trailing padding
            continue
        converted = None
        if isinstance(raw, RawDataElement) and raw.is_little_endian and raw.value is not None:
            vr = raw.VR or (dictionary_vr(tag) if not raw.tag.is_private else None)
            if vr and vr not in _BINARY_VRS and vr != "SQ" and tag not in _PIXEL_TAGS:
                try:
                    converted = _fast(tag, vr, raw.value, codec)
                except (ValueError, UnicodeDecodeError, struct.error):
                    converted = None
        if converted is None:
            converted = _element(ds[raw.tag], path)
        if converted is not None:
            out[f"{tag:08X}"] = converted
    return out


def dictionary_vr(tag: int) -> str | None:
    """The VR of a standard tag when it is unambiguous (implicit VR data names none)."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr if " " not in vr else None


def instance_path(study: str, series: str, sop: str) -> str:
    return f"studies/{study}/series/{series}/instances/{sop}"


def instance_metadata(ds: Dataset, study: str, series: str, sop: str, ts: str) -> str:
    """Cacheable metadata of one instance (relative BulkDataURIs)."""
    body = dataset_json(ds, instance_path(study, series, sop) + "/bulkdata/")
    body["00083002"] = {"vr": "UI", "Value": [ts]}  # AvailableTransferSyntaxUID
    return orjson.dumps(dict(sorted(body.items()))).decode("utf-8")


def absolutise(cached: Iterable[str], base: str) -> bytes:
    """Join cached instance metadata into a JSON array with absolute BulkDataURIs.

    ``"BulkDataURI":"`` can only occur as a key: inside a JSON string its quotes
    would be escaped, so the replacement never touches a value.
    """
    body = b"[" + b",".join(c.encode("utf-8") for c in cached) + b"]"
    return body.replace(_BULK_KEY, _BULK_KEY + base.encode("utf-8") + b"/")


# -- STOW-RS response (PS3.18 10.5.3) ---------------------------------------------
def store_response(
    referenced: Sequence[dict[str, str]],
    failed: Sequence[dict[str, Any]],
    study_url: str | None,
) -> bytes:
    def sop_item(entry: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {
            "00081150": _value("UI", entry.get("sop_class_uid")),
            "00081155": _value("UI", entry.get("sop_instance_uid")),
        }
        if "failure_reason" in entry:
            item["00081197"] = {"vr": "US", "Value": [entry["failure_reason"]]}
        if entry.get("retrieve_url"):
            item["00081190"] = {"vr": "UR", "Value": [entry["retrieve_url"]]}
        if entry.get("reason"):
            # TransactionStatusComment: the reason in words, for the person reading it.
            item["00080418"] = {"vr": "LT", "Value": [str(entry["reason"])[:1024]]}
        return dict(sorted(item.items()))

    body: dict[str, Any] = {
        "00081198": {"vr": "SQ", "Value": [sop_item(f) for f in failed]}
        if failed
        else {"vr": "SQ"},
        "00081199": {"vr": "SQ", "Value": [sop_item(r) for r in referenced]}
        if referenced
        else {"vr": "SQ"},
    }
    if study_url:
        body[RETRIEVE_URL] = {"vr": "UR", "Value": [study_url]}
    return orjson.dumps(dict(sorted(body.items())))
