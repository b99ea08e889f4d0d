"""Modality Worklist matching (PS3.4 K.6, C.2.2.2), independent of transport and storage.

An order the worklist offers becomes a :class:`WorklistItem`: the attributes of
the Modality Worklist Information Model (PS3.4 Table K.6-1) with the values the
order holds. A C-FIND identifier becomes a tree of :class:`Key` (the adapter
reads the dataset; this module decides). :func:`matches` applies the matching
rules, :func:`answer` picks out what the requester asked for.

Matching: single value, ``*``/``?`` wildcards, date and time ranges, lists of
values (``CT\\MR``) and UIDs, universal matching (an empty key is returned, not
matched), sequence matching (the keys of a sequence's one item must all hold).
Person names match case-insensitively, with ``^`` and space alike. Scheduled
date and time are matched independently (combined date-time matching needs an
extended negotiation the archive does not offer).

Which orders are offered: scheduled ones, and ordered ones that carry a
scheduled time (a RIS that books its own appointments sends the time with the
order). Started, performed, read or cancelled orders leave the worklist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from telerad.domain.orders import Order, OrderStatus
from telerad.domain.query import (
    Exact,
    Match,
    QueryError,
    Range,
    UidList,
    Wildcard,
    normalise_person_name,
)
from telerad.workflow.model import Priority

# -- the information model ----------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: int
    vr: str


def _table(*attributes: Attribute) -> dict[str, Attribute]:
    return {a.keyword: a for a in attributes}


A = Attribute
#: Code Sequence item attributes (the procedure code, PS3.3 Table 8.8-1).
CODE = _table(
    A("CodeValue", 0x00080100, "SH"),
    A("CodingSchemeDesignator", 0x00080102, "SH"),
    A("CodeMeaning", 0x00080104, "LO"),
)
#: Scheduled Procedure Step Sequence item attributes.
STEP = _table(
    A("Modality", 0x00080060, "CS"),
    A("ScheduledStationAETitle", 0x00400001, "AE"),
    A("ScheduledProcedureStepStartDate", 0x00400002, "DA"),
    A("ScheduledProcedureStepStartTime", 0x00400003, "TM"),
    A("ScheduledPerformingPhysicianName", 0x00400006, "PN"),
    A("ScheduledProcedureStepDescription", 0x00400007, "LO"),
    A("ScheduledProtocolCodeSequence", 0x00400008, "SQ"),
    A("ScheduledProcedureStepID", 0x00400009, "SH"),
    A("ScheduledProcedureStepStatus", 0x00400020, "CS"),
)
#: Top-level attributes of a worklist item.
TOP = _table(
    A("AccessionNumber", 0x00080050, "SH"),
    A("ReferringPhysicianName", 0x00080090, "PN"),
    A("TimezoneOffsetFromUTC", 0x00080201, "SH"),
    A("PatientName", 0x00100010, "PN"),
    A("PatientID", 0x00100020, "LO"),
    A("PatientBirthDate", 0x00100030, "DA"),
    A("PatientSex", 0x00100040, "CS"),
    A("StudyInstanceUID", 0x0020000D, "UI"),
    A("RequestingPhysician", 0x00321032, "PN"),
    A("RequestedProcedureDescription", 0x00321060, "LO"),
    A("RequestedProcedureCodeSequence", 0x00321064, "SQ"),
    A("ScheduledProcedureStepSequence", 0x00400100, "SQ"),
    A("RequestedProcedureID", 0x00401001, "SH"),
    A("ReasonForTheRequestedProcedure", 0x00401002, "LO"),
    A("RequestedProcedurePriority", 0x00401003, "CS"),
    A("PlacerOrderNumberImagingServiceRequest", 0x00402016, "LO"),
    A("FillerOrderNumberImagingServiceRequest", 0x00402017, "LO"),
)
#: The attributes of each sequence's item.
ITEMS: dict[str, dict[str, Attribute]] = {
    "ScheduledProcedureStepSequence": STEP,
    "ScheduledProtocolCodeSequence": CODE,
    "RequestedProcedureCodeSequence": CODE,
}

#: Requested Procedure Priority (0040,1003) of each tier.
DICOM_PRIORITY: dict[Priority, str] = {
    Priority.STROKE: "STAT",
    Priority.TRAUMA: "STAT",
    Priority.STAT: "STAT",
    Priority.URGENT: "HIGH",
    Priority.ROUTINE: "ROUTINE",
}

#: Coding scheme names as orders carry them → DICOM Coding Scheme Designators (PS3.16 8).
CODING_SCHEMES: dict[str, str] = {"CPT": "C4", "CPT4": "C4", "LOINC": "LN", "SNOMED": "SCT"}
#: The designator of a code whose scheme the order does not name (PS3.16 8: private, "99…").
LOCAL_SCHEME = "99TELERAD"

# Lengths of the value representations the item's values are cut to (PS3.5 6.2).
_MAX = {"SH": 16, "LO": 64, "CS": 16, "AE": 16, "PN": 64 * 5}


def offered(order: Order) -> bool:
    """Whether the worklist offers this order to modalities."""
    if order.status is OrderStatus.SCHEDULED:
        return True
    return order.status is OrderStatus.ORDERED and order.scheduled_at is not None


#: The statuses :func:`offered` can accept (for narrowing a store query).
OFFERED_STATUSES = frozenset({OrderStatus.SCHEDULED, OrderStatus.ORDERED})


# -- the item -----------------------------------------------------------------------------

#: A value of an item: text, or the items of a sequence.
Value = str | tuple["Values", ...]
Values = Mapping[str, Value]


@dataclass(frozen=True)
class WorklistItem:
    order_id: int | None
    values: Values


def _cut(vr: str, value: str) -> str:
    limit = _MAX.get(vr)
    return value[:limit] if limit else value


def coding_scheme(scheme: str) -> str:
    scheme = scheme.strip()
    if not scheme:
        return LOCAL_SCHEME
    return CODING_SCHEMES.get(scheme.upper(), scheme[:16])


def utc_offset(moment: datetime) -> str:
    """DICOM Timezone Offset From UTC (``+HHMM``) of an aware datetime."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def worklist_item(order: Order, zone: tzinfo = UTC) -> WorklistItem:
    """The worklist item of an order; dates and times are shown in ``zone``.

    One order is one Requested Procedure with one Scheduled Procedure Step. A
    Requested Procedure ID and Scheduled Procedure Step ID the order does not
    carry are its accession number (both are Type 1 in IHE SWF).
    """
    proc = order.procedure
    code: Values = {
        "CodeValue": _cut("SH", proc.code),
        "CodingSchemeDesignator": coding_scheme(proc.coding_scheme),
        "CodeMeaning": _cut("LO", proc.description or proc.code),
    }
    start = order.scheduled_at.astimezone(zone) if order.scheduled_at else None
    procedure_id = order.requested_procedure_id or order.accession_number
    step: Values = {
        "Modality": proc.modality,
        "ScheduledStationAETitle": order.station_ae,
        "ScheduledProcedureStepStartDate": start.strftime("%Y%m%d") if start else "",
        "ScheduledProcedureStepStartTime": start.strftime("%H%M%S") if start else "",
        "ScheduledPerformingPhysicianName": "",
        "ScheduledProcedureStepDescription": _cut("LO", proc.description),
        "ScheduledProtocolCodeSequence": (code,),
        "ScheduledProcedureStepID": _cut("SH", procedure_id),
        "ScheduledProcedureStepStatus": "SCHEDULED",
    }
    values: Values = {
        "AccessionNumber": order.accession_number,
        "ReferringPhysicianName": order.ordering_physician,
        "TimezoneOffsetFromUTC": utc_offset(start) if start else "",
        "PatientName": order.patient.name,
        "PatientID": order.patient.patient_id,
        "PatientBirthDate": order.patient.birth_date,
        "PatientSex": order.patient.sex,
        "StudyInstanceUID": order.requested_study_uid,
        "RequestingPhysician": order.ordering_physician,
        "RequestedProcedureDescription": _cut("LO", proc.description),
        "RequestedProcedureCodeSequence": (code,),
        "ScheduledProcedureStepSequence": (step,),
        "RequestedProcedureID": _cut("SH", procedure_id),
        "ReasonForTheRequestedProcedure": _cut("LO", " ".join(order.reason.split())),
        "RequestedProcedurePriority": DICOM_PRIORITY[order.priority],
        "PlacerOrderNumberImagingServiceRequest": _cut("LO", order.placer_order_number),
        "FillerOrderNumberImagingServiceRequest": _cut("LO", order.filler_order_number),
    }
    return WorklistItem(order.id, values)


# -- the query ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One element of the identifier.

    ``keyword`` is empty for an attribute the worklist does not hold (returned
    empty). For a sequence, ``items`` holds the keys of its one item; an empty
    tuple (a sequence sent with no item, or an empty item) asks for all of it.
    """

    tag: int
    vr: str
    keyword: str = ""
    match: Match | None = None
    items: tuple[Key, ...] | None = None


_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def _date(value: str) -> str:
    legacy = value.strip().replace(".", "")  # ACR-NEMA style 2024.01.31
    if not _DA.match(legacy):
        raise QueryError(f"'{value.strip()}' is not a date (YYYYMMDD)")
    return legacy


def _time(value: str) -> str:
    legacy = value.strip().replace(":", "")
    if not _TM.match(legacy):
        raise QueryError(f"'{value.strip()}' is not a time (HHMMSS.FFFFFF)")
    return legacy


def parse_key(vr: str, raw: str | Sequence[str] | None) -> Match | None:
    """One key's value as a :class:`Match` (None: universal matching)."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        values = [str(v) for v in raw if str(v).strip()]
        raw = "\\".join(values)
    value = raw.rstrip() if vr == "PN" else raw.strip()
    if value in ("", "*"):
        return None
    if vr in ("DA", "TM"):
        norm = _date if vr == "DA" else _time
        if "-" in value:
            low, _, high = value.partition("-")
            if not low.strip() and not high.strip():
                return None
            return Range(norm(low) if low.strip() else None, norm(high) if high.strip() else None)
        return Exact(norm(value))
    if "\\" in value and vr in ("UI", "CS", "SH", "LO", "AE"):
        listed = tuple(v.strip() for v in value.split("\\") if v.strip())
        return Exact(listed[0]) if len(listed) == 1 else UidList(listed)
    if "*" in value or "?" in value:
        return Wildcard(value)
    return Exact(value)


def _pattern(wildcard: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in wildcard)


def _time_bounds(value: str) -> str:
    return value.split(".")[0]


def value_matches(match: Match | None, vr: str, value: str) -> bool:
    """Whether an item's value satisfies one key (PS3.4 C.2.2.2)."""
    if match is None:
        return True
    if not value:
        return False  # a key with a value never matches an attribute without one
    if vr == "PN":
        name = normalise_person_name(value)
        if isinstance(match, Wildcard):
            pattern = _pattern(normalise_person_name(match.pattern))
            return re.fullmatch(pattern, name, re.DOTALL) is not None
        if isinstance(match, Exact):
            return name == normalise_person_name(match.value)
        if isinstance(match, UidList):
            return any(name == normalise_person_name(v) for v in match.uids)
        return False
    if isinstance(match, Range):
        if vr == "TM":
            now = _time_bounds(value).ljust(6, "0")
            low = (match.low or "").split(".")[0].ljust(6, "0")
            high = (match.high or "").split(".")[0].ljust(6, "9") if match.high else ""
            return (not match.low or now >= low) and (not match.high or now <= high)
        return (match.low is None or value >= match.low) and (
            match.high is None or value <= match.high
        )
    if isinstance(match, Wildcard):
        return re.fullmatch(_pattern(match.pattern), value, re.DOTALL) is not None
    if isinstance(match, UidList):
        return value in match.uids
    if vr == "TM":  # 0930 asks for 09:30:00
        return _time_bounds(value).ljust(6, "0") == match.value.split(".")[0].ljust(6, "0")
    return value == match.value


def _item_matches(values: Values, keys: Sequence[Key]) -> bool:
    for key in keys:
        if not key.keyword:
            continue
        value = values.get(key.keyword, "")
        if key.items is not None:
            if not key.items:
                continue  # the whole sequence is asked for: universal
            items = value if isinstance(value, tuple) else ()
            if not any(_item_matches(item, key.items) for item in items):
                return False
        elif not value_matches(key.match, key.vr, value if isinstance(value, str) else ""):
            return False
    return True


def matches(item: WorklistItem, keys: Sequence[Key]) -> bool:
    """Whether the item satisfies every key of the identifier."""
    return _item_matches(item.values, keys)


def matching_value(keys: Sequence[Key], keyword: str) -> Match | None:
    """The match of ``keyword`` (at any depth), or None."""
    for key in keys:
        if key.keyword == keyword and key.match is not None:
            return key.match
        if key.items:
            found = matching_value(key.items, keyword)
            if found is not None:
                return found
    return None


# -- the answer ---------------------------------------------------------------------------

#: An answer: tag → (VR, text or None, or the items of a sequence).
Answer = dict[int, tuple[str, "str | None | list[Answer]"]]


def _all_keys(table: Mapping[str, Attribute]) -> tuple[Key, ...]:
    return tuple(
        Key(a.tag, a.vr, a.keyword, None, () if a.vr == "SQ" else None) for a in table.values()
    )


def _answer(values: Values, keys: Sequence[Key], table: Mapping[str, Attribute]) -> Answer:
    out: Answer = {}
    for key in keys:
        if not key.keyword:
            out[key.tag] = (key.vr, [] if key.vr == "SQ" else None)
            continue
        value = values.get(key.keyword, "")
        if key.items is not None:
            sub = ITEMS[key.keyword]
            wanted = key.items or _all_keys(sub)
            items = value if isinstance(value, tuple) else ()
            out[key.tag] = (key.vr, [_answer(item, wanted, sub) for item in items])
        else:
            text = value if isinstance(value, str) else ""
            out[key.tag] = (table[key.keyword].vr, text or None)
    return out


def answer(item: WorklistItem, keys: Sequence[Key]) -> Answer:
    """The requested keys of an item, with the item's values (only those asked for)."""
    return _answer(item.values, keys, TOP)
