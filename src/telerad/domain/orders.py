"""Orders (RIS): what a facility asked to be done, and where it stands.

An order is keyed by its facility and accession number (the number the RIS gives
the imaging procedure, DICOM (0008,0050)). Its status moves through the table
:data:`TRANSITIONS` only; a move the table does not hold raises
:class:`OrderError` with the reason, which the adapters turn into an HL7 AE, a
DIMSE failure status or an HTTP 409.

``study_instance_uid`` stays empty until a study is matched to the order (by
reconciliation); ``requested_study_uid`` is the UID the RIS asked the modality to
use (given to it through the modality worklist), which is not the same promise.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import datetime

from telerad.workflow.model import Priority


class OrderError(ValueError):
    """The order cannot be made or changed this way; the text says why."""


class OrderStatus(enum.StrEnum):
    ORDERED = "ordered"  # received, no appointment yet
    SCHEDULED = "scheduled"  # booked on a modality: the worklist offers it
    IN_PROGRESS = "in_progress"  # the modality started it (MPPS) or images arrive
    PERFORMED = "performed"  # the modality finished it (MPPS COMPLETED)
    DISCONTINUED = "discontinued"  # the modality stopped it (MPPS DISCONTINUED)
    READY = "ready"  # its study is complete: on the reading worklist
    CANCELLED = "cancelled"


class OrderEvent(enum.StrEnum):
    SCHEDULE = "schedule"
    START = "start"
    COMPLETE = "complete"
    DISCONTINUE = "discontinue"
    READY = "ready"
    REOPEN = "reopen"  # more images after it was ready: not readable until stable again
    CANCEL = "cancel"


_S, _E = OrderStatus, OrderEvent
#: (status, event) → new status. Everything not here is refused.
TRANSITIONS: dict[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (_S.ORDERED, _E.SCHEDULE): _S.SCHEDULED,
    (_S.SCHEDULED, _E.SCHEDULE): _S.SCHEDULED,  # rescheduled
    (_S.ORDERED, _E.START): _S.IN_PROGRESS,  # a walk-in: images without an appointment
    (_S.SCHEDULED, _E.START): _S.IN_PROGRESS,
    (_S.IN_PROGRESS, _E.START): _S.IN_PROGRESS,
    (_S.ORDERED, _E.COMPLETE): _S.PERFORMED,
    (_S.SCHEDULED, _E.COMPLETE): _S.PERFORMED,
    (_S.IN_PROGRESS, _E.COMPLETE): _S.PERFORMED,
    (_S.IN_PROGRESS, _E.DISCONTINUE): _S.DISCONTINUED,
    (_S.SCHEDULED, _E.DISCONTINUE): _S.DISCONTINUED,
    (_S.ORDERED, _E.READY): _S.READY,
    (_S.SCHEDULED, _E.READY): _S.READY,
    (_S.IN_PROGRESS, _E.READY): _S.READY,
    (_S.PERFORMED, _E.READY): _S.READY,
    (_S.DISCONTINUED, _E.READY): _S.READY,  # a partial study may still be read
    (_S.READY, _E.REOPEN): _S.IN_PROGRESS,
    (_S.PERFORMED, _E.REOPEN): _S.PERFORMED,
    (_S.IN_PROGRESS, _E.REOPEN): _S.IN_PROGRESS,
    (_S.ORDERED, _E.CANCEL): _S.CANCELLED,
    (_S.SCHEDULED, _E.CANCEL): _S.CANCELLED,
}

#: Statuses in which the order is still open to images and worklist queries.
OPEN = frozenset({_S.ORDERED, _S.SCHEDULED, _S.IN_PROGRESS, _S.PERFORMED, _S.DISCONTINUED})


def next_status(status: OrderStatus, event: OrderEvent) -> OrderStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise OrderError(f"an order that is {status.value} cannot {event.value}") from None


@dataclass(frozen=True)
class Procedure:
    """The requested procedure: a code and what the platform knows about it."""

    code: str
    description: str = ""
    coding_scheme: str = ""  # "CPT", "LN" (LOINC/RSNA Playbook), a local scheme
    modality: str = ""
    body_part: str = ""  # DICOM Body Part Examined ("HEAD", "CHEST")
    rvu: float = 1.0
    subspecialty: str = ""  # "" = general radiology


@dataclass(frozen=True)
class PatientDemographics:
    """The patient as the order names them; ``patient_id`` is facility-scoped."""

    patient_id: str
    name: str = ""  # DICOM PN form: Family^Given^Middle
    birth_date: str = ""  # YYYYMMDD
    sex: str = ""  # M, F, O


@dataclass(frozen=True)
class Order:
    facility_id: int
    accession_number: str
    patient: PatientDemographics
    procedure: Procedure
    priority: Priority = Priority.ROUTINE
    status: OrderStatus = OrderStatus.ORDERED
    placer_order_number: str = ""
    filler_order_number: str = ""
    reason: str = ""
    ordering_physician: str = ""  # DICOM PN form
    scheduled_at: datetime | None = None
    station_ae: str = ""  # the modality it is booked on (Scheduled Station AE Title)
    requested_procedure_id: str = ""
    requested_study_uid: str = ""
    study_instance_uid: str = ""  # empty until a study is matched
    mpps_status: str = ""  # "", "IN PROGRESS", "COMPLETED", "DISCONTINUED"
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        check_accession(self.accession_number)
        if not self.patient.patient_id.strip():
            raise OrderError("an order needs a patient identifier")
        if not self.procedure.code.strip():
            raise OrderError("an order needs a requested procedure code")
        if self.procedure.rvu < 0:
            raise OrderError("a procedure's RVU value cannot be negative")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def moved(self, event: OrderEvent, **changes: object) -> Order:
        """The order after ``event`` (and the given field changes), or OrderError."""
        status = next_status(self.status, event)
        return replace(self, status=status, **changes)  # type: ignore[arg-type]

    def revised(self, newer: Order) -> Order:
        """The order as an update (HL7 XO, a new FHIR version) describes it.

        What the update may change: patient details, procedure, priority, reason,
        physician, schedule. It may not move the order to another facility or
        accession, nor change a cancelled or read order.
        """
        if (newer.facility_id, newer.accession_number) != (
            self.facility_id,
            self.accession_number,
        ):
            raise OrderError("an update cannot change the facility or accession number")
        if self.status in (OrderStatus.CANCELLED, OrderStatus.READY):
            raise OrderError(f"an order that is {self.status.value} cannot be changed")
        return replace(
            self,
            patient=newer.patient,
            procedure=newer.procedure,
            priority=newer.priority,
            placer_order_number=newer.placer_order_number or self.placer_order_number,
            filler_order_number=newer.filler_order_number or self.filler_order_number,
            reason=newer.reason,
            ordering_physician=newer.ordering_physician,
            scheduled_at=newer.scheduled_at or self.scheduled_at,
            station_ae=newer.station_ae or self.station_ae,
            requested_procedure_id=newer.requested_procedure_id or self.requested_procedure_id,
            requested_study_uid=newer.requested_study_uid or self.requested_study_uid,
        )


@dataclass(frozen=True)
class OrderHistoryEntry:
    time: datetime
    event: str
    source: str
    detail: str


@dataclass(frozen=True)
class Station:
    """A modality a facility schedules procedures on (Scheduled Station AE Title)."""

    id: int
    facility_id: int
    ae_title: str
    modality: str
    name: str = ""


@dataclass(frozen=True)
class Slot:
    id: int
    station_id: int
    start: datetime
    end: datetime
    order_id: int | None


@dataclass(frozen=True)
class OrderFilter:
    """Which orders to list; ``facility_ids`` None means every facility."""

    facility_ids: frozenset[int] | None = None
    accession_number: str | None = None
    patient_id: str | None = None
    statuses: frozenset[OrderStatus] | None = None
    modality: str | None = None
    station_ae: str | None = None
    scheduled_from: datetime | None = None
    scheduled_to: datetime | None = None
    study_instance_uid: str | None = None
    #: Any of these studies (the reading worklist's rows).
    study_instance_uids: tuple[str, ...] | None = None
    limit: int = 100
    offset: int = 0


# DICOM SH: 16 characters, no backslash or control characters.
_ACCESSION = re.compile(r"^[^\\\x00-\x1f]{1,16}$")


def check_accession(value: str) -> None:
    if not _ACCESSION.match(value) or not value.strip():
        raise OrderError(
            "an accession number must be 1 to 16 characters without backslash or "
            f"control characters, got {value[:32]!r}"
        )


# -- priority ---------------------------------------------------------------------------

#: HL7 v2 priority codes (ORC-7.6 / TQ1-9 / OBR-5, table 0027) → tiers.
HL7_PRIORITY: dict[str, Priority] = {
    "S": Priority.STAT,
    "A": Priority.URGENT,  # ASAP
    "T": Priority.URGENT,  # timing critical
    "R": Priority.ROUTINE,
    "P": Priority.ROUTINE,  # pre-op
    "C": Priority.ROUTINE,  # callback
    "PRN": Priority.ROUTINE,
}
#: FHIR request-priority → tiers.
FHIR_PRIORITY: dict[str, Priority] = {
    "stat": Priority.STAT,
    "asap": Priority.URGENT,
    "urgent": Priority.URGENT,
    "routine": Priority.ROUTINE,
}
_STROKE = re.compile(r"\b(code stroke|stroke|cva|lvo|thromb\w*ctomy|hemiparesis|aphasia)\b", re.I)
_TRAUMA = re.compile(r"\b(trauma|polytrauma|mvc|mva|fall from height|gsw|stab)\b", re.I)
_HISTORY = re.compile(r"\b(history of|hx of|h/o|prior|old|follow[- ]?up)\b", re.I)


def triage_priority(ordered: Priority, reason: str) -> Priority:
    """The tier of an order: stroke and trauma are urgent orders whose reason says so.

    Only a STAT or urgent order is lifted (a routine follow-up "history of stroke"
    stays routine), and a reason that speaks of history does not lift it either.
    """
    if ordered not in (Priority.STAT, Priority.URGENT) or _HISTORY.search(reason):
        return ordered
    if _STROKE.search(reason):
        return Priority.STROKE
    if _TRAUMA.search(reason):
        return Priority.TRAUMA
    return ordered


def hl7_priority(code: str) -> Priority:
    """The tier of an HL7 priority code; empty or unknown codes are routine."""
    return HL7_PRIORITY.get(code.strip().upper(), Priority.ROUTINE)


def fhir_priority(code: str) -> Priority:
    """The tier of a FHIR request priority; empty or unknown codes are routine."""
    return FHIR_PRIORITY.get(code.strip().lower(), Priority.ROUTINE)
