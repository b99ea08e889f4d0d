"""HL7 v2 orders (ORM^O01, OMI^O23) and patient administration (ADT) read into commands.

Pure: message text in, commands out, no I/O. What the commands do to the
platform is :mod:`telerad.adapters.hl7.handling`; the interface specification a
facility's interface analyst reads is docs/hl7.md, which lists the same fields.

Where a value may come from several fields, the first non-empty one wins:

=========================  ==========================================================
accession number           IPC-1.1 (OMI, IHE SWF), OBR-18.1 (ORM), OBR-3.1 (filler)
placer / filler number     ORC-2.1 then OBR-2.1 / ORC-3.1 then OBR-3.1
procedure                  OBR-4 (CWE code^text^scheme), through the catalogue
modality                   IPC-5.1, then OBR-24 (HL7 table 0074 mapped to DICOM)
priority                   TQ1-9.1, ORC-7.6, OBR-27.6, OBR-5 (HL7 table 0027)
reason for study           OBR-31 (text, else code; repetitions joined with "; ")
ordering physician         ORC-12, then OBR-16 (XCN → DICOM PN Family^Given^Middle)
scheduled start            TQ1-7, ORC-7.4, OBR-27.4, OBR-36 (no offset: UTC)
station AE title           IPC-9, then OBR-21.1
requested procedure ID     IPC-2.1, then OBR-19
requested study UID        IPC-3.1, then ZDS-1.1
=========================  ==========================================================

A message is read whole before anything is applied: the first field in error
raises :class:`Hl7Error`, naming the field, and no command comes out of it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import hl7

from telerad.adapters.hl7.ack import ErrorCode, ErrorLocation, Verdict, segments
from telerad.domain.orders import (
    Order,
    OrderError,
    OrderStatus,
    PatientDemographics,
    check_accession,
    hl7_priority,
    triage_priority,
)
from telerad.domain.procedures import Catalogue


class Hl7Error(Exception):
    """The message cannot be applied: answer AE with this code, reason and location."""

    def __init__(
        self, error: ErrorCode, reason: str, location: ErrorLocation | None = None
    ) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.location = location

    @property
    def verdict(self) -> Verdict:
        return Verdict.application_error(self.error, self.reason, self.location)


class OrderAction(enum.StrEnum):
    PLACE = "place"  # a new order; a resent one revises the first copy
    REVISE = "revise"
    CANCEL = "cancel"


#: ORC-1 order control (HL7 table 0119) → what the platform does.
ORDER_CONTROLS: dict[str, OrderAction] = {
    "NW": OrderAction.PLACE,  # new order
    "XO": OrderAction.REVISE,  # change order request
    "SC": OrderAction.REVISE,  # status changed (the RIS's own change, e.g. rescheduled)
    "CA": OrderAction.CANCEL,  # cancel order request
    "OC": OrderAction.CANCEL,  # order cancelled
    "DC": OrderAction.CANCEL,  # discontinue order request
}

#: ADT events whose PID updates the patient's orders; A40 merges; others change nothing.
UPDATE_EVENTS = frozenset({"A01", "A04", "A08"})
MERGE_EVENT = "A40"

#: HL7 table 0074 (diagnostic service section) → DICOM modality, where they differ.
SECTION_MODALITY = {"NMR": "MR", "NMS": "NM", "RX": "CR", "XRC": "XA", "VUS": "US"}
#: DICOM modalities taken as they are in OBR-24 or IPC-5 (common RIS practice).
DICOM_MODALITIES = frozenset(
    {"CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF", "OT", "IO", "PX", "ES", "XC"}
)
#: HL7 table 0001 (administrative sex) → DICOM Patient's Sex; U (unknown) is empty.
SEX = {"M": "M", "F": "F", "O": "O", "A": "O", "N": "O", "U": ""}

_TIMESTAMP = re.compile(r"(\d{4}(?:\d{2}){0,5})(\.\d{1,4})?([+-]\d{4})?")
_UID = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*")
_AE = re.compile(r"[^\\\x00-\x1f]{1,16}")


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class OrderCommand:
    """What one ORC group asks for; ``key`` is where its accession number came from."""

    action: OrderAction
    control: str  # ORC-1 as sent
    order: Order
    key: ErrorLocation
    control_field: ErrorLocation  # ORC-1 of this group, for errors about the whole group
    cancel_reason: str = ""  # ORC-16 text


@dataclass(frozen=True)
class PatientUpdate:
    """A01/A04/A08: the patient's details as the PID now gives them."""

    patient: PatientDemographics


@dataclass(frozen=True)
class PatientMerge:
    """A40: the orders of ``prior_ids`` (MRG-1) now belong to ``patient`` (PID-3)."""

    patient: PatientDemographics
    prior_ids: tuple[str, ...]
    where: ErrorLocation  # MRG-1 of this pair


PatientCommand = PatientUpdate | PatientMerge


# --------------------------------------------------------------------------- segments


@dataclass(frozen=True)
class Segment:
    """One segment, its ID and which occurrence of that ID it is (from 1)."""

    raw: hl7.Segment
    name: str
    sequence: int

    def at(self, field: int = 0, component: int = 0) -> ErrorLocation:
        return ErrorLocation(self.name, self.sequence, field, component)

    def get(self, field: int, component: int = 1, repetition: int = 1, sub: int = 1) -> str:
        """A value, unescaped and stripped; "" when absent (and for HL7's null ``""``)."""
        try:
            value = self.raw.extract_field(1, field, repetition, component, sub)
        except IndexError:  # python-hl7: the path ends before this component
            return ""
        text = str(value).strip()
        return "" if text == '""' else text

    def repetitions(self, field: int) -> int:
        if field >= len(self.raw):
            return 0
        value = self.raw(field)
        return len(value) if value and isinstance(value[0], hl7.Repetition) else 1


def read_segments(text: str) -> list[Segment]:
    """The segments of ``text`` (after MSH) in order; Hl7Error if python-hl7 cannot split it."""
    try:
        message = hl7.parse("\r".join(segments(text)))
    except Exception:  # python-hl7 raises assorted errors on inputs it cannot split
        raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, "the message cannot be parsed") from None
    counts: dict[str, int] = {}
    read: list[Segment] = []
    for raw in message:
        name = str(raw[0])
        counts[name] = counts.get(name, 0) + 1
        read.append(Segment(raw, name, counts[name]))
    return read


def _missing(segment: str, why: str, sequence: int = 1) -> Hl7Error:
    return Hl7Error(ErrorCode.SEGMENT_SEQUENCE, why, ErrorLocation(segment, sequence))


def _required(seg: Segment, field: int, what: str, component: int = 0) -> Hl7Error:
    where = seg.at(field, component)
    return Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, f"{where} ({what}) is empty", where)


def _bad(where: ErrorLocation, what: str, value: str) -> Hl7Error:
    return Hl7Error(ErrorCode.DATA_TYPE, f"{where} ({what}) is not valid: {value[:24]!r}", where)


def _first(*candidates: tuple[Segment | None, int, int, int]) -> tuple[str, ErrorLocation | None]:
    """The first non-empty (segment, field, component, subcomponent) value and its place."""
    for seg, field, component, sub in candidates:
        if seg is not None and (value := seg.get(field, component, 1, sub)):
            return value, seg.at(field, component)
    return "", None


# --------------------------------------------------------------------------- values


def parse_timestamp(value: str, where: ErrorLocation, what: str) -> datetime:
    """An HL7 TS/DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) as an aware UTC datetime.

    Without an offset the time is taken as UTC: the platform keeps no time zone
    per facility, so senders should give the offset.
    """
    match = _TIMESTAMP.fullmatch(value)
    if match is None or (match.group(2) and len(match.group(1)) != 14):
        raise _bad(where, what, value)
    try:
        parsed: datetime = hl7.parse_datetime(value)
    except ValueError:  # month 13, 30 February, hour 25…
        raise _bad(where, what, value) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _date(value: str, where: ErrorLocation, what: str) -> str:
    """The date part of a TS as DICOM DA (YYYYMMDD); a TS shorter than a day is an error."""
    if len(value) < 8:
        raise _bad(where, what, value)
    parse_timestamp(value, where, what)
    return value[:8]


def _pn_part(text: str) -> str:
    # DICOM PN: ^ separates components and \ values; neither may sit inside one.
    return " ".join(text.replace("^", " ").replace("\\", " ").split())


def person_name(seg: Segment, field: int, first: int = 1) -> str:
    """An XPN (``first`` = 1) or XCN (``first`` = 2) as DICOM PN Family^Given^Middle."""
    family = seg.get(field, first, 1, 1)  # FN.1 surname, when subcomponents are sent
    given = seg.get(field, first + 1)
    middle = seg.get(field, first + 2)
    name = "^".join(_pn_part(p) for p in (family, given, middle)).rstrip("^")
    if len(name) > 324:
        raise _bad(seg.at(field), "name", name)
    return name


def _text_of(seg: Segment, field: int) -> str:
    """A CWE/CE field's text (component 2, else the code), repetitions joined."""
    parts = []
    for n in range(1, seg.repetitions(field) + 1):
        text = seg.get(field, 2, n) or seg.get(field, 1, n)
        if text:
            parts.append(text)
    return "; ".join(parts)


def read_patient(pid: Segment) -> PatientDemographics:
    """PID-3 (first identifier, CX.1), PID-5 (name), PID-7 (birth date), PID-8 (sex)."""
    patient_id = ""
    for n in range(1, pid.repetitions(3) + 1):
        if patient_id := pid.get(3, 1, n):
            break
    if not patient_id:
        raise _required(pid, 3, "patient identifier list", 1)
    if len(patient_id) > 64 or "\\" in patient_id:
        raise _bad(pid.at(3, 1), "patient identifier", patient_id)
    birth = pid.get(7)
    sex_code = pid.get(8).upper()
    if sex_code not in SEX and sex_code:
        where = pid.at(8)
        reason = f"{where} (administrative sex) {sex_code[:8]!r} is not in HL7 table 0001"
        raise Hl7Error(ErrorCode.TABLE_VALUE_NOT_FOUND, reason, where)
    return PatientDemographics(
        patient_id=patient_id,
        name=person_name(pid, 5),
        birth_date=_date(birth, pid.at(7), "date of birth") if birth else "",
        sex=SEX.get(sex_code, ""),
    )


def _modality(value: str) -> str:
    code = value.strip().upper()
    if code in DICOM_MODALITIES:
        return code
    return SECTION_MODALITY.get(code, "")


# --------------------------------------------------------------------------- orders


@dataclass
class _Group:
    """One ORC and the segments that follow it up to the next ORC."""

    orc: Segment
    number: int
    tq1: Segment | None = None
    obr: Segment | None = None
    ipc: Segment | None = None
    zds: Segment | None = None


def _groups(read: Sequence[Segment], message_code: str) -> tuple[Segment, list[_Group]]:
    pid: Segment | None = None
    groups: list[_Group] = []
    for seg in read:
        if seg.name == "PID":
            if groups:
                raise _missing("PID", "a PID after the first ORC: one patient per message")
            pid = pid or seg
        elif seg.name == "ORC":
            groups.append(_Group(seg, len(groups) + 1))
        elif seg.name in ("TQ1", "OBR", "IPC", "ZDS"):
            if not groups:
                raise _missing("ORC", f"{seg.name} before any ORC: each order starts with an ORC")
            group = groups[-1]
            slot = seg.name.lower()
            if getattr(group, slot) is None:  # repeats (further IPC steps) are not read
                setattr(group, slot, seg)
    if pid is None:
        raise _missing("PID", "no PID segment: an order needs its patient")
    if not groups:
        raise _missing("ORC", "no ORC segment: each order needs an ORC and an OBR")
    for group in groups:
        if group.obr is None:
            raise _missing("OBR", f"order {group.number} has no OBR", group.number)
        if message_code == "OMI" and group.ipc is None:
            raise _missing("IPC", f"order {group.number} has no IPC (OMI^O23)", group.number)
    return pid, groups


def read_orders(
    text: str, message_code: str, facility_id: int, catalogue: Catalogue
) -> list[OrderCommand]:
    """The orders of an ORM^O01 or OMI^O23, one per ORC group, all valid or Hl7Error."""
    pid, groups = _groups(read_segments(text), message_code)
    patient = read_patient(pid)
    commands: list[OrderCommand] = []
    seen: dict[str, ErrorLocation] = {}
    for group in groups:
        command = _read_group(group, patient, facility_id, catalogue)
        accession = command.order.accession_number
        if accession in seen:
            reason = f"{command.key} repeats accession number {accession!r} of {seen[accession]}"
            raise Hl7Error(ErrorCode.DUPLICATE_KEY, reason, command.key)
        seen[accession] = command.key
        commands.append(command)
    return commands


def _read_group(
    group: _Group, patient: PatientDemographics, facility_id: int, catalogue: Catalogue
) -> OrderCommand:
    orc, obr, tq1, ipc, zds = group.orc, group.obr, group.tq1, group.ipc, group.zds
    assert obr is not None
    control = orc.get(1).upper()
    if not control:
        raise _required(orc, 1, "order control")
    action = ORDER_CONTROLS.get(control)
    if action is None:
        where = orc.at(1)
        taken = ", ".join(ORDER_CONTROLS)
        reason = f"{where}: unsupported order control {control[:4]!r} (taken: {taken})"
        raise Hl7Error(ErrorCode.TABLE_VALUE_NOT_FOUND, reason, where)

    accession, key = _first((ipc, 1, 1, 1), (obr, 18, 1, 1), (obr, 3, 1, 1))
    if key is None:
        raise _required(ipc or obr, 1 if ipc else 18, "accession number")
    try:
        check_accession(accession)
    except OrderError:
        raise Hl7Error(
            ErrorCode.DATA_TYPE,
            f"{key} (accession number) must be 1 to 16 characters, got {len(accession)}",
            key,
        ) from None

    code = obr.get(4, 1)
    if not code:
        raise _required(obr, 4, "universal service identifier", 1)
    if len(code) > 64:
        raise _bad(obr.at(4, 1), "procedure code", code)
    scheme = obr.get(4, 3)
    if len(scheme) > 16:
        raise _bad(obr.at(4, 3), "coding system", scheme)
    modality_text, _ = _first((ipc, 5, 1, 1), (obr, 24, 1, 1))
    procedure = catalogue.resolve(code, obr.get(4, 2)[:128], scheme, _modality(modality_text))

    reason = _text_of(obr, 31)
    priority_code, _ = _first((tq1, 9, 1, 1), (orc, 7, 6, 1), (obr, 27, 6, 1), (obr, 5, 1, 1))
    priority = triage_priority(hl7_priority(priority_code), reason)

    start, start_at = _first((tq1, 7, 1, 1), (orc, 7, 4, 1), (obr, 27, 4, 1), (obr, 36, 1, 1))
    scheduled = parse_timestamp(start, start_at, "start date/time") if start_at else None

    station, station_at = _first((ipc, 9, 1, 1), (obr, 21, 1, 1))
    if station_at is not None and not _AE.fullmatch(station):
        raise _bad(station_at, "scheduled station AE title", station)
    procedure_id, procedure_id_at = _first((ipc, 2, 1, 1), (obr, 19, 1, 1))
    if procedure_id_at is not None and len(procedure_id) > 16:
        raise _bad(procedure_id_at, "requested procedure ID", procedure_id)
    study_uid, uid_at = _first((ipc, 3, 1, 1), (zds, 1, 1, 1))
    if uid_at is not None and (len(study_uid) > 64 or not _UID.fullmatch(study_uid)):
        raise _bad(uid_at, "study instance UID", study_uid)
    placer, placer_at = _first((orc, 2, 1, 1), (obr, 2, 1, 1))
    filler, filler_at = _first((orc, 3, 1, 1), (obr, 3, 1, 1))
    for value, at, what in ((placer, placer_at, "placer"), (filler, filler_at, "filler")):
        if at is not None and len(value) > 64:
            raise _bad(at, f"{what} order number", value)
    physician_field = orc if orc.get(12, 2) else obr
    physician = person_name(physician_field, 12 if physician_field is orc else 16, first=2)

    try:
        order = Order(
            facility_id=facility_id,
            accession_number=accession,
            patient=patient,
            procedure=procedure,
            priority=priority,
            status=OrderStatus.SCHEDULED if scheduled else OrderStatus.ORDERED,
            placer_order_number=placer,
            filler_order_number=filler,
            reason=reason,
            ordering_physician=physician,
            scheduled_at=scheduled,
            station_ae=station,
            requested_procedure_id=procedure_id,
            requested_study_uid=study_uid,
        )
    except OrderError as exc:  # the checks above should have caught it; say which order
        raise Hl7Error(ErrorCode.INTERNAL_ERROR, str(exc), orc.at(1)) from None
    return OrderCommand(
        action=action,
        control=control,
        order=order,
        key=key,
        control_field=orc.at(1),
        cancel_reason=_text_of(orc, 16),
    )


# --------------------------------------------------------------------------- ADT


def read_patients(text: str, trigger_event: str) -> list[PatientCommand]:
    """The patient changes of an ADT message; [] for events that change nothing here."""
    if trigger_event not in UPDATE_EVENTS and trigger_event != MERGE_EVENT:
        return []
    read = read_segments(text)
    pids = [seg for seg in read if seg.name == "PID"]
    if not pids:
        raise _missing("PID", f"ADT^{trigger_event} without a PID segment")
    if trigger_event in UPDATE_EVENTS:
        return [PatientUpdate(read_patient(pids[0]))]
    return list(_merges(read))


def _merges(read: Sequence[Segment]) -> Iterator[PatientMerge]:
    """A40: each PID and the MRG after it (before the next PID) form one merge."""
    pairs: list[tuple[Segment, Segment | None]] = []
    for seg in read:
        if seg.name == "PID":
            pairs.append((seg, None))
        elif seg.name == "MRG" and pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], seg)
    for pid, mrg in pairs:
        patient = read_patient(pid)
        if mrg is None:
            where = ErrorLocation("MRG", pid.sequence, 1)
            reason = f"{where} (prior patient identifier list) is missing: no MRG after PID"
            raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, reason, where)
        listed = (mrg.get(1, 1, n) for n in range(1, mrg.repetitions(1) + 1))
        priors = [p for p in listed if p]
        if not priors:
            raise _required(mrg, 1, "prior patient identifier list", 1)
        for prior in priors:
            if len(prior) > 64 or "\\" in prior:
                raise _bad(mrg.at(1, 1), "prior patient identifier", prior)
        yield PatientMerge(patient, tuple(dict.fromkeys(priors)), mrg.at(1, 1))
